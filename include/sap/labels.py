"""SAP's credit and block fields read as hold labels, one row per sales order.

What the fields say (values as ``API_SALES_ORDER_SRV`` sends them):

- ``TotalCreditCheckStatus``: ``"B"`` the credit check failed and the order is blocked, ``"D"`` it was
  blocked and a credit representative released it, ``"A"`` it passed, ``""`` no check was done.
  ``"B"`` and ``"D"`` are both credit holds (``"D"`` a released one).
- ``DeliveryBlockReason`` and ``HeaderBillingBlockReason`` on the header, ``ItemBillingBlockReason``
  on items and ``DelivBlockReasonForSchedLine`` on schedule lines: any code is a block, ``""`` is no
  block. What a code means is the customer's customizing, so ``block_reasons`` maps codes to hold
  reasons and an unmapped code is ``unspecified``.
- ``None`` (JSON ``null``) means the source did not deliver the field: the label is unknown
  (missing), never "no block".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from include import canonical
from include.sources.odata import pad_keys

if TYPE_CHECKING:
    import pandas as pd

CREDIT_STATUS = {"B": "blocked", "D": "released", "A": "passed", "": "not_performed"}
HEADER_BLOCKS = ("DeliveryBlockReason", "HeaderBillingBlockReason")


def _code(value) -> str | None:
    """A block code stripped of padding; ``None`` (or NaN) stays ``None``: not delivered."""
    return None if value is None or value != value else str(value).strip()


def credit_status(value) -> str | None:
    """``TotalCreditCheckStatus`` as a word; ``None`` when not delivered; an unknown code fails."""
    code = _code(value)
    if code is None:
        return None
    if code not in CREDIT_STATUS:
        raise ValueError(f"TotalCreditCheckStatus {value!r}: expected one of {sorted(CREDIT_STATUS)}")
    return CREDIT_STATUS[code]


def hold_labels(
    headers: pd.DataFrame,
    items: pd.DataFrame | None = None,
    schedule_lines: pd.DataFrame | None = None,
    *,
    block_reasons: dict[str, str] | None = None,
) -> pd.DataFrame:
    """One row per order: the credit status, each block found, and the hold reasons they imply.

    Args:
        headers, items, schedule_lines: raw frames as :meth:`SapExtract.frames` returns them.
        block_reasons: block code -> hold reason (one of :data:`include.canonical.HOLD_REASONS`).

    Returns:
        Columns ``order_id``, ``credit_status``, ``credit_hold`` (boolean, missing when not
        delivered), ``delivery_block``, ``billing_block``, ``item_billing_blocks``,
        ``schedule_line_blocks`` (codes joined by ``,``; ``""`` none; missing when not delivered),
        ``held`` (boolean, missing when nothing was delivered to decide) and ``reasons`` (sorted
        hold reasons joined by ``,``).
    """
    import pandas as pd

    mapping = dict(block_reasons or {})
    wrong = {
        c: r for c, r in mapping.items() if r not in (*canonical.HOLD_REASONS, canonical.UNSPECIFIED_REASON)
    }
    if wrong:
        raise ValueError(f"block_reasons {wrong}: expected reasons from {canonical.HOLD_REASONS}")

    out = pd.DataFrame({"order_id": pad_keys(headers["SalesOrder"]).astype(object)})
    statuses = [credit_status(v) for v in headers.get("TotalCreditCheckStatus", _nones(headers))]
    out["credit_status"] = pd.Series(statuses, index=out.index, dtype=object)
    out["credit_hold"] = pd.array(
        [None if s is None else s in ("blocked", "released") for s in out["credit_status"]], dtype="boolean"
    )
    texts = {
        "delivery_block": [_code(v) for v in headers.get("DeliveryBlockReason", _nones(headers))],
        "billing_block": [_code(v) for v in headers.get("HeaderBillingBlockReason", _nones(headers))],
        "item_billing_blocks": _child_blocks(out["order_id"], items, "ItemBillingBlockReason"),
        "schedule_line_blocks": _child_blocks(
            out["order_id"], schedule_lines, "DelivBlockReasonForSchedLine"
        ),
    }
    for name, values in texts.items():
        # Object dtype keeps None (not delivered) apart from "" (no block).
        out[name] = pd.Series(values, index=out.index, dtype=object)

    held, reasons = [], []
    block_columns = ["delivery_block", "billing_block", "item_billing_blocks", "schedule_line_blocks"]
    for row in out.itertuples(index=False):
        found: set[str] = set()
        known = row.credit_hold is not pd.NA
        if known and bool(row.credit_hold):
            found.add("credit")
        for column in block_columns:
            value = _code(getattr(row, column))
            if value is None:
                continue
            known = True
            for code in filter(None, value.split(",")):
                found.add(mapping.get(code, canonical.UNSPECIFIED_REASON))
        held.append(bool(found) if known or found else None)
        reasons.append(",".join(sorted(found)))
    out["held"] = pd.array(held, dtype="boolean")
    out["reasons"] = reasons
    return out


def _nones(frame: pd.DataFrame) -> list[None]:
    return [None] * len(frame)


def _child_blocks(order_ids: pd.Series, children: pd.DataFrame | None, column: str) -> list[str | None]:
    """Per order, the distinct block codes among its items or schedule lines (``""`` when none)."""
    if children is None or column not in getattr(children, "columns", ()):
        return [None] * len(order_ids)
    codes: dict[str, set[str]] = {}
    for order, value in zip(pad_keys(children["SalesOrder"]), children[column], strict=True):
        bucket = codes.setdefault(order, set())
        code = _code(value)
        if code:
            bucket.add(code)
    return [",".join(sorted(codes[o])) if o in codes else "" for o in order_ids]
