""" "What clears it": the smallest concrete steps that take an at-risk order off hold.

For credit-driven risk the line is the customer's credit limit and the order is over it by
``exposure - credit_limit`` (exposure counts open receivables, open orders and this order). Three
ways under the line are offered, each sized to that excess: collect overdue invoices (named, oldest
first, until the excess is covered), raise the limit (rounded up to the policy's step), or ship the
share of the order that fits under the line now. For incomplete information the missing fields are
named; for a sanctions name match the step is the compliance check itself.

Each decision carries its steps as a JSON list of ``{"step", "text", "amount"?, "invoices"?}``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

MISSING_FIELDS = {
    "po_missing": "the PO number",
    "ship_to_street_missing": "the ship-to street",
    "ship_to_city_missing": "the ship-to city",
    "ship_to_postcode_missing": "the ship-to postcode",
    "ship_to_country_missing": "the ship-to country",
}
"""Completeness flags and the words a customer message uses for them."""
SANCTIONS_SCORE_WORTH_CHECKING = 85.0
INVOICES_NAMED = 5
"""At most this many invoices are named in one step; the amount still covers the whole excess."""


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _number(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def overdue_invoices(invoices: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """Invoices open and past due at ``as_of``, oldest due date first, with ``days_overdue``.

    Open means issued by ``as_of`` and not cleared by then, as the features count them.
    """
    import pandas as pd

    if invoices.empty:
        return invoices.assign(days_overdue=pd.Series(dtype=float))
    now = pd.Timestamp(as_of)
    # Canonical times are UTC-aware; a frame of naive times is read as UTC.
    now = now.tz_convert("UTC") if now.tzinfo else now.tz_localize("UTC")
    if invoices["due_at"].dt.tz is None:
        now = now.tz_localize(None)
    cleared = invoices["cleared_at"]
    is_open = (invoices["issued_at"] <= now) & (cleared.isna() | (cleared > now))
    late = invoices[is_open & (invoices["due_at"] < now)]
    late = late.assign(days_overdue=(now - late["due_at"]).dt.days)
    return late.sort_values(["customer_id", "due_at", "invoice_id"])


def credit_steps(
    *,
    credit_limit: float | None,
    exposure: float | None,
    order_amount: float | None,
    overdue_amount: float | None,
    overdue: Sequence[tuple[str, float, int]] | None,
    round_to: float,
) -> list[dict[str, Any]]:
    """The ways to bring one order under its customer's credit line, smallest first within each kind.

    Args:
        credit_limit, exposure, order_amount, overdue_amount: the order's features.
        overdue: the customer's overdue invoices as ``(invoice_id, amount, days_overdue)``, oldest
            first (:func:`overdue_invoices` gives them for every customer), or None when unknown.
        round_to: limit increases are rounded up to a multiple of this.
    """
    limit, exposure = _number(credit_limit), _number(exposure)
    order_amount, overdue_amount = _number(order_amount) or 0.0, _number(overdue_amount) or 0.0
    if limit is None or exposure is None:
        return [{"step": "set_limit", "text": "no credit limit on file: set one before release"}]
    excess = exposure - limit
    if excess <= 0:
        if overdue_amount > 0:
            return [
                {
                    "step": "collect",
                    "amount": round(overdue_amount, 2),
                    "text": f"within the limit, but {_money(overdue_amount)} is overdue: collect it",
                }
            ]
        return []
    steps = [_collect_step(excess, overdue_amount, overdue)] if overdue_amount > 0 else []
    raise_by = math.ceil(excess / round_to) * round_to
    steps.append(
        {
            "step": "raise_limit",
            "amount": raise_by,
            "text": f"raise the limit by {_money(raise_by)} to {_money(limit + raise_by)}",
        }
    )
    headroom = limit - (exposure - order_amount)
    if 0 < headroom < order_amount:
        steps.append(
            {
                "step": "ship_partial",
                "amount": round(headroom, 2),
                "text": f"ship {headroom / order_amount:.0%} of the order ({_money(headroom)}) now, "
                "the rest once paid",
            }
        )
    return steps


def _collect_step(
    excess: float, overdue_amount: float, overdue: Sequence[tuple[str, float, int]] | None
) -> dict[str, Any]:
    if overdue_amount < excess:
        return {
            "step": "collect",
            "amount": round(overdue_amount, 2),
            "text": f"collecting all {_money(overdue_amount)} overdue still leaves "
            f"{_money(excess - overdue_amount)} over the limit",
        }
    named, covered = [], 0.0
    if overdue is not None:
        for invoice_id, amount, days in overdue:
            if covered >= excess:
                break
            named.append({"invoice_id": invoice_id, "amount": float(amount), "days": int(days)})
            covered += float(amount)
    if named and covered >= excess:
        listed = ", ".join(
            f"{i['invoice_id']} ({_money(i['amount'])}, {i['days']} days overdue)"
            for i in named[:INVOICES_NAMED]
        )
        more = f" and {len(named) - INVOICES_NAMED} more" if len(named) > INVOICES_NAMED else ""
        return {
            "step": "collect",
            "amount": round(excess, 2),
            "invoices": [i["invoice_id"] for i in named],
            "text": f"collect {_money(excess)} of the {_money(overdue_amount)} overdue: {listed}{more}",
        }
    return {
        "step": "collect",
        "amount": round(excess, 2),
        "text": f"collect {_money(excess)} of the {_money(overdue_amount)} overdue",
    }


def missing_fields(row: dict[str, Any]) -> list[str]:
    """The order data a customer must still send, from the completeness flags of the feature row."""
    return [words for flag, words in MISSING_FIELDS.items() if (_number(row.get(flag)) or 0.0) >= 0.5]


STEPPED_REASONS = frozenset({"credit", "incomplete_info", "compliance"})
"""The reasons :func:`steps_for` can name steps for; any other reason's steps are an empty list."""


def steps_for(
    reason: str, row: dict[str, Any], overdue: Sequence[tuple[str, float, int]] | None, round_to: float
) -> list[dict]:
    """What clears an at-risk order routed for ``reason``, given its feature row and its customer's
    overdue invoices (see :func:`credit_steps`)."""
    if reason == "credit":
        return credit_steps(
            credit_limit=row.get("credit_limit"),
            exposure=row.get("exposure"),
            order_amount=row.get("order_amount"),
            overdue_amount=row.get("overdue_amount"),
            overdue=overdue,
            round_to=round_to,
        )
    if reason == "incomplete_info":
        missing = missing_fields(row)
        if missing:
            return [{"step": "ask_customer", "fields": missing, "text": "get " + ", ".join(missing)}]
        return []
    if reason == "compliance":
        score = _number(row.get("sanctions_name_score"))
        if score is not None and score >= SANCTIONS_SCORE_WORTH_CHECKING:
            return [
                {
                    "step": "screen",
                    "text": "compliance confirms the customer is not the listed party "
                    f"(name match {score:.0f})",
                }
            ]
    return []


def what_clears(
    teams_reason: list[str | None],
    features: pd.DataFrame,
    overdue: pd.DataFrame | None,
    round_to: float,
) -> list[str | None]:
    """The JSON steps of each order (None for orders not at risk), in the row order of ``features``.

    Args:
        teams_reason: the reason each order is routed for, None when it is not at risk.
        features: the orders' feature rows with ``customer_id`` added.
        overdue: overdue invoices of every customer (:func:`overdue_invoices`), or None.
        round_to: limit increases are rounded up to a multiple of this.
    """
    wanted = [i for i, reason in enumerate(teams_reason) if reason in STEPPED_REASONS]
    out: list[str | None] = [None if reason is None else "[]" for reason in teams_reason]
    if not wanted:
        return out
    columns = [c for c in ("customer_id", "credit_limit", "exposure", "order_amount", "overdue_amount",
                           "sanctions_name_score", *MISSING_FIELDS) if c in features.columns]  # fmt: skip
    # Rows are put together from whole columns: taking them out of a wide frame one by one is slower.
    values = [features[c].to_numpy(dtype=object)[wanted] for c in columns]
    invoices_of = _invoices_by_customer(overdue)
    for k, i in enumerate(wanted):
        row = {c: column[k] for c, column in zip(columns, values, strict=True)}
        mine = None if invoices_of is None else invoices_of(row.get("customer_id"))
        out[i] = json.dumps(steps_for(teams_reason[i], row, mine, round_to))
    return out


def _invoices_by_customer(overdue: pd.DataFrame | None):
    """A lookup customer id -> that customer's overdue invoices as ``(invoice_id, amount, days_overdue)``
    in the frame's order (oldest first), or None when ``overdue`` is None.

    The frame is only indexed here; a customer's list is built the first time one of its orders asks.
    """
    if overdue is None:
        return None
    positions = overdue.groupby("customer_id", sort=False).indices
    ids = overdue["invoice_id"].to_numpy(dtype=object)
    amounts = overdue["amount"].to_numpy(dtype=float)
    days = overdue["days_overdue"].to_numpy(dtype=float)
    built: dict[Any, list[tuple[str, float, int]]] = {}

    def invoices_of(customer: Any) -> list[tuple[str, float, int]]:
        if customer not in built:
            rows = positions.get(customer, ())
            built[customer] = [(ids[r], amounts[r], days[r]) for r in rows]
        return built[customer]

    return invoices_of


def as_text(steps_json: str | None) -> str:
    """The steps as one line a person reads: "collect ... or raise the limit ..."."""
    steps = json.loads(steps_json) if steps_json else []
    return " or ".join(s["text"] for s in steps) if steps else "see the suggested action"


def overdue_at(as_of: datetime) -> pd.DataFrame:
    """Overdue invoices of the interval's canonical snapshot (:func:`overdue_invoices`)."""
    import pandas as pd

    from include import canonical, warehouse

    folder = warehouse.lake_path("canonical", "invoices", f"as_of={warehouse.as_of_label(as_of)}")
    parts = sorted(folder.glob("*.parquet"))
    if not parts:
        logger.info("No canonical invoices under %s: what clears an order names amounts only", folder)
        return overdue_invoices(canonical.empty_frame("invoices"), as_of)
    frame = canonical.coerce("invoices", pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True))
    return overdue_invoices(frame, as_of)
