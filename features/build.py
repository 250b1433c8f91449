"""Point-in-time features per order: what the ERP knew about the order and its customer when it was created.

For an order created at t every feature uses only facts known before t:

- invoices issued before t; an invoice is cleared only if ``cleared_at < t``;
- payments received, bureau reports, disputes opened, CRM interactions, holds placed and orders created
  strictly before t; a dispute is closed and a hold released only if that happened before t;
- the credit profile and the inventory snapshot in force at t (latest ``valid_from`` / ``as_of`` <= t);
- the order's own lines, amount, ship-to address and PO number, known at t.

Customer master data and the sanctions list carry no dates and are read as they are.

Every family is an event sweep (see :mod:`features.timeline`): events are sorted once per kind and each
order binary-searches its customer's running totals, so the build grows as O(E log E) in the number of
events, never as orders x invoices. One row per order comes out, indexed by ``order_id``, with exactly
:data:`FEATURE_COLUMNS`.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.timeline import NAT, Timeline, Window, encode, start, to_ns
from include.canonical import HOLD_REASONS, TABLES, empty_frame

logger = logging.getLogger(__name__)

FEATURE_VERSION = "1.1.0"
"""Bumped whenever a feature's meaning changes, so models and feature snapshots can be matched."""

DAY_NS = 86_400 * 10**9
TREND_WINDOW_DAYS = 90
"""Recent window of the payment trend, the CRM signals and failed payments."""
ORDER_FREQUENCY_DAYS = 30
MIN_LOG_AMOUNT_STD = 0.05
"""Floor of the spread of a customer's log order amounts in ``amount_zscore`` (about 5%): a customer
whose earlier orders were all the same size would otherwise make any other size look infinitely odd."""
DISPUTE_WINDOW_DAYS = 365
DEDUCTION_WINDOW_DAYS = 365
"""Window of the deductions: invoices the customer cleared short of their amount."""
OPEN_ORDER_WINDOW_DAYS = 90
"""An order neither invoiced nor known cancelled within this many days stops counting as open exposure.

Order status is today's state, not a point-in-time fact: only a rejected hold dates a cancellation.
Without this bound an order cancelled some other way would stay in the exposure for ever.
"""
CANCELLING_RELEASE_KINDS: frozenset[str] = frozenset({"rejected"})
"""Hold release kinds that cancel the order: from ``released_at`` on it is no longer open exposure."""

RISKY_COUNTRIES: frozenset[str] = frozenset({"AF", "BY", "CU", "IR", "KP", "MM", "RU", "SY", "VE", "YE"})
"""ISO 3166 alpha-2 ship-to countries that draw an export-control or sanctions review.

An illustrative list of comprehensively sanctioned or high-risk jurisdictions; a deployment replaces it
with its own compliance team's list.
"""

NAME_NOISE_WORDS: frozenset[str] = frozenset(
    {
        # legal forms
        "ab", "ag", "aps", "as", "bv", "cjsc", "co", "company", "corp", "corporation", "cv", "fzc",
        "fzco", "fze", "gmbh", "inc", "incorporated", "jsc", "kg", "limited", "llc", "llp", "lp", "ltd",
        "nv", "oao", "ojsc", "ooo", "oy", "pjsc", "plc", "pte", "pty", "sa", "sarl", "sas", "sl", "spa",
        "srl", "zao",
        # connecting words
        "and", "de", "del", "el", "la", "of", "the",
    }
)  # fmt: skip
"""Words dropped before name matching, with single letters: they carry no identity, so "Acme GmbH" and
"ACME Ltd." are the same name to a screener."""

FEATURE_FAMILIES: dict[str, list[str]] = {
    "receivables": [
        "inv_cleared_count",
        "inv_on_time_share",
        "inv_late_1_30_count",
        "inv_late_31_60_count",
        "inv_late_61_90_count",
        "inv_late_90p_count",
        "inv_avg_days_late",
        "inv_avg_days_to_pay",
        "inv_avg_days_late_90d",
        "inv_late_trend",
        "open_invoice_count",
        "open_receivables_amount",
        "overdue_count",
        "overdue_amount",
        "deductions_365d",
        "deducted_amount_365d",
    ],
    "credit": [
        "credit_limit",
        "internal_score",
        "risk_class",
        "bureau_score",
        "bureau_rating",
        "bureau_days_beyond_terms",
        "bureau_derogatory_flags",
        "days_since_bureau_report",
        "open_orders_amount",
        "exposure",
        "utilisation",
    ],
    "order": [
        "order_amount",
        "n_lines",
        "n_products",
        "max_price_deviation",
        "prior_order_count",
        "orders_last_30d",
        "days_since_prev_order",
        "amount_ratio_to_mean",
        "amount_zscore",
    ],
    "holds": [
        *(f"prior_holds_{reason}" for reason in HOLD_REASONS),
        "prior_holds_total",
        "open_holds_count",
        "days_since_last_hold",
    ],
    "master": [
        "segment",
        "industry",
        "size_band",
        "country",
        "payment_method",
        "tenure_days",
        "payment_terms_days",
        "currency_mismatch",
    ],
    "disputes": ["disputes_open_count", "disputes_open_amount", "disputes_365d"],
    "crm": ["broken_promises_90d", "collection_steps_90d", "promises_to_pay_90d"],
    "payments": ["failed_payments_90d"],
    "compliance": ["sanctions_name_score", "sanctions_exact_match", "risky_ship_to_country"],
    "completeness": [
        "po_missing",
        "ship_to_street_missing",
        "ship_to_city_missing",
        "ship_to_postcode_missing",
        "ship_to_country_missing",
    ],
    "inventory": ["inventory_cover_min", "lines_short_count"],
}
"""Feature columns by family, in output order."""

FEATURE_COLUMNS: list[str] = [column for family in FEATURE_FAMILIES.values() for column in family]
CATEGORICAL_COLUMNS: list[str] = [
    "risk_class",
    "bureau_rating",
    "segment",
    "industry",
    "size_band",
    "country",
    "payment_method",
]
"""Columns of pandas ``string`` dtype (missing = ``<NA>``); every other column is float64."""


class FeatureInputError(ValueError):
    """A table handed to the feature build lacks a column or breaks a key."""


def build_order_features(
    tables: dict[str, pd.DataFrame],
    orders: pd.DataFrame | None = None,
    *,
    families: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Compute the point-in-time features of each order as of its ``created_at``.

    Args:
        tables: Canonical tables by name (see :mod:`include.canonical`); a missing table is read as
            empty. ``orders`` in it is the order history every "prior orders" feature looks at.
        orders: The orders to compute, with the columns of the canonical ``orders`` table; default
            all of ``tables["orders"]``. Orders not in the history are added to it.
        families: Compute only these families of :data:`FEATURE_FAMILIES` (the output then holds
            only their columns); default all.

    Returns:
        One row per order in the order given, indexed by ``order_id`` (string), with the columns
        :data:`FEATURE_COLUMNS`: :data:`CATEGORICAL_COLUMNS` as ``string``, the rest float64, NaN
        where a value is unknown (no credit profile, no prior order, ...).

    Raises:
        FeatureInputError: A table lacks a required column, ``orders`` repeats an order id, or a
            family name is unknown.
    """
    started = time.perf_counter()
    wanted = _families(families)
    history = _table(tables, "orders")
    targets = history if orders is None else _check_columns("orders", orders)
    missing_ids = int(targets["order_id"].isna().sum())
    repeated = targets.loc[targets["order_id"].duplicated() & targets["order_id"].notna(), "order_id"]
    if missing_ids or len(repeated):
        raise FeatureInputError(
            f"orders to featurise need unique order ids: {missing_ids} missing, "
            f"{len(repeated)} repeated (first: {repeated.head(5).tolist()})"
        )
    if orders is not None:
        if len(targets):
            new = targets[~targets["order_id"].isin(history["order_id"])]
            history = pd.concat([history, new], ignore_index=True) if len(history) else new
        # The later of two rows of an order wins. (Without ``orders`` the history is the targets,
        # which repeat no order id: checked above.)
        superseded = history["order_id"].duplicated(keep="last")
        if superseded.any():
            history = history[~superseded]

    q = _Orders.from_frame(targets)
    customers = functools.cache(lambda: _customer_rows(_table(tables, "customers"), q))
    lines = functools.cache(lambda: _target_lines(_table(tables, "order_lines"), q))
    out: dict[str, np.ndarray | pd.Series] = {}
    steps: list[tuple[str, Callable[[], dict]]] = [
        ("credit", lambda: _credit(tables, history, q)),
        ("order", lambda: _order_behaviour(history, lines(), q)),
        ("holds", lambda: _holds(_table(tables, "holds"), history, q)),
        ("master", lambda: _master(customers(), q)),
        ("disputes", lambda: _disputes(_table(tables, "disputes"), q)),
        ("crm", lambda: _crm(_table(tables, "interactions"), q)),
        ("payments", lambda: _payments(_table(tables, "payments"), q)),
        ("compliance", lambda: _compliance(customers(), _table(tables, "sanctions_entries"), q)),
        ("completeness", lambda: _completeness(q)),
        ("inventory", lambda: _inventory(lines(), _table(tables, "inventory"), q)),
    ]
    # Exposure in the credit family adds up the open receivables.
    computed = wanted | ({"receivables"} if "credit" in wanted else set())
    # The receivables family (three invoice timelines: most of the work on a large ledger) runs on
    # this thread while a second one computes the other families, then builds two of the timelines.
    # All spend their time in NumPy, which lets go of the interpreter lock, so the build uses two
    # cores. The clearing timeline, whose ledger-sized values are gathered and summed most often, stays
    # on this thread, whose heap reuses freed memory (include/runtime.py; the other thread maps each
    # array over 64 MiB afresh): 5.3 s against 7.0 s on one thread for 1M orders over 10M lines.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="holdcast-features") as pool:
        others = start(
            pool, lambda: [_timed_family(family, step) for family, step in steps if family in computed]
        )
        if "receivables" in computed:
            invoices = _table(tables, "invoices")
            out.update(_timed_family("receivables", lambda: _receivables(invoices, q, pool)))
        for values in others():
            out.update(values)
    if "credit" in computed:
        out.update(_exposure(out, q))

    frame = q.assemble(out, [c for name, cols in FEATURE_FAMILIES.items() if name in wanted for c in cols])
    logger.info(
        "Built %d features (version %s) for %d orders in %.1f s",
        frame.shape[1],
        FEATURE_VERSION,
        len(frame),
        time.perf_counter() - started,
    )
    return frame


def _timed_family(family: str, step: Callable[[], dict]) -> dict:
    begun = time.perf_counter()
    values = step()
    logger.debug("Feature family %s took %.2f s", family, time.perf_counter() - begun)
    return values


# --- inputs -------------------------------------------------------------------------------------


def _families(families: Iterable[str] | None) -> set[str]:
    if families is None:
        return set(FEATURE_FAMILIES)
    wanted = set(families)
    unknown = wanted - set(FEATURE_FAMILIES)
    if unknown:
        raise FeatureInputError(
            f"unknown feature families {sorted(unknown)}; known: {list(FEATURE_FAMILIES)}"
        )
    return wanted


def _check_columns(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in TABLES[name].required_columns if c not in frame.columns]
    if missing:
        raise FeatureInputError(f"table {name!r} lacks required column(s) {missing}")
    return frame


@functools.cache
def _empty(name: str) -> pd.DataFrame:
    # Shared safely: copy-on-write means no caller can change the cached frame.
    return empty_frame(name)


def _table(tables: dict[str, pd.DataFrame], name: str) -> pd.DataFrame:
    frame = tables.get(name)
    if frame is None or len(frame) == 0:
        return _empty(name)
    return _check_columns(name, frame)


def _text(frame: pd.DataFrame, column: str) -> pd.Series:
    """A text column as ``string`` with blanks read as missing; all missing if the column is absent."""
    if column not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype="string")
    values = frame[column].astype("string").str.strip()
    return values.mask(values == "")


def _number(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _times(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.full(len(frame), NAT, dtype=np.int64)
    return to_ns(frame[column])


def _flag(values: pd.Series) -> np.ndarray:
    """A boolean Series with missing values as a 0/1 int64 array, missing read as 0."""
    return values.to_numpy(dtype=bool, na_value=False).astype(np.int64)


def _cents(values: np.ndarray) -> np.ndarray:
    # Whole cents make every running total an exact integer sum.
    cents = np.multiply(values, 100.0)
    np.rint(cents, out=cents)
    cents[np.isnan(cents)] = 0.0
    return cents.astype(np.int64)


def _latest(timeline: Timeline, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Row of the latest event in each window (0 where none) and whether there was one."""
    row = timeline.latest(window)
    return np.maximum(row, 0), row >= 0


def _pick(values: np.ndarray, row: np.ndarray, found: np.ndarray) -> np.ndarray:
    if len(values) == 0:
        return np.full(len(row), np.nan)
    return np.where(found, values[row], np.nan)


def _pick_text(values: pd.Series, row: np.ndarray, found: np.ndarray) -> pd.Series:
    if len(values) == 0:
        return pd.Series(pd.NA, index=range(len(row)), dtype="string")
    picked = values.iloc[row].reset_index(drop=True)
    return picked.mask(~found)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


@dataclass
class _Orders:
    """The orders to featurise, sorted by (customer, created_at) so every binary search runs in order."""

    frame: pd.DataFrame
    customer: np.ndarray
    at: np.ndarray
    customers: pd.Index
    input_order: np.ndarray
    input_ids: pd.Series
    """The order ids in the order given, which the output keeps."""

    @classmethod
    def from_frame(cls, targets: pd.DataFrame) -> _Orders:
        codes, uniques = pd.factorize(targets["customer_id"].astype("string"))
        at = to_ns(targets["created_at"])
        if len(at) and codes.min() >= 0 and at.min() != NAT:
            # A timeline of the orders themselves holds them in (customer, time) order, ties in input
            # order: what lexsort gives, several times faster.
            order = Timeline(codes.astype(np.int64), at, len(uniques)).positions
        else:
            order = np.lexsort((at, codes))
        return cls(
            frame=targets.iloc[order].reset_index(drop=True),
            customer=codes[order].astype(np.int64),
            at=at[order],
            customers=pd.Index(uniques),
            input_order=order,
            input_ids=targets["order_id"],
        )

    def __len__(self) -> int:
        return len(self.at)

    def shifted(self, days: int) -> np.ndarray:
        return np.where(self.at != NAT, self.at - days * DAY_NS, NAT)

    def days_since(self, at: np.ndarray, found: np.ndarray) -> np.ndarray:
        return np.where(found & (at != NAT) & (self.at != NAT), (self.at - at) / DAY_NS, np.nan)

    def assemble(self, values: dict[str, np.ndarray | pd.Series], columns: list[str]) -> pd.DataFrame:
        restore = np.empty(len(self), dtype=np.int64)
        restore[self.input_order] = np.arange(len(self))
        index = pd.Index(self.input_ids.astype("string"), name="order_id")
        # The numeric columns go straight, back in input order, into the one float64 block pandas
        # keeps them in: building the frame from separate columns would copy them all once more.
        numeric = [column for column in columns if column not in CATEGORICAL_COLUMNS]
        block = np.empty((len(numeric), len(self)), dtype=np.float64)
        for row, column in zip(block, numeric, strict=True):
            # mode="clip" (restore is a permutation, so nothing is clipped) skips a buffered copy.
            np.take(np.asarray(values[column], dtype=np.float64), restore, out=row, mode="clip")
        frame = pd.DataFrame(block.T, index=index, columns=numeric, copy=False)
        for column in columns:
            if column in CATEGORICAL_COLUMNS:
                text = pd.array(values[column], dtype="string").take(restore)
                frame.insert(columns.index(column), column, text)
        return frame


# --- families -----------------------------------------------------------------------------------


def _receivables(invoices: pd.DataFrame, q: _Orders, pool: ThreadPoolExecutor) -> dict[str, np.ndarray]:
    """The receivables family; the issue and overdue timelines are built on ``pool``'s threads.

    ``pool`` may be busy: the parts submitted run when a worker is free, and this thread waits for them.
    """
    # Invoices of customers without an order here get code -1 and are dropped by each Timeline.
    customer = encode(invoices["customer_id"], q.customers)
    issued = _times(invoices, "issued_at")
    due = _times(invoices, "due_at")
    due = np.where(due == NAT, issued, due)
    cleared = _times(invoices, "cleared_at")
    amount = _cents(_number(invoices, "amount"))
    # A deduction: the invoice was cleared with less paid than billed (the paid amount is known at clearing).
    paid = _number(invoices, "paid_amount")
    paid_cents = _cents(paid)
    short = ~np.isnan(paid) & (paid_cents < amount)
    deducted = np.where(short, amount - paid_cents, 0)
    # An invoice cleared before it was issued (a data error) counts as cleared on issue, never open.
    cleared_eff = np.where(cleared != NAT, np.maximum(cleared, issued), NAT)
    overdue_from = np.maximum(issued, due)
    ever_overdue = (cleared == NAT) | (cleared_eff > overdue_from)
    n = len(q.customers)

    def issued_before() -> tuple[np.ndarray, np.ndarray]:
        """Per order, the count and amount of the customer's invoices issued before t."""
        issue = Timeline(customer, issued, n)
        window = issue.before(q.customer, q.at)
        return window.count, issue.total(amount, window)

    def overdue_before() -> tuple[np.ndarray, np.ndarray]:
        """Per order, the count and amount of the customer's invoices that fell overdue before t."""
        overdue = Timeline(customer, np.where(ever_overdue, overdue_from, NAT), n)
        window = overdue.before(q.customer, q.at)
        return window.count, overdue.total(amount, window)

    issued_part, overdue_part = start(pool, issued_before), start(pool, overdue_before)
    clear = Timeline(customer, cleared_eff, n)

    # The values of clearing events are derived per invoice, then put in the timeline's sorted order
    # once: each array taken is a pass of random reads.
    days_late = clear.take((cleared - due) // DAY_NS)
    days_to_pay = clear.take(np.maximum(cleared - issued, 0) // 10**9)
    was_overdue = clear.take(np.maximum(cleared, issued) > np.maximum(issued, due))
    c_amount, c_deducted = clear.take(amount), clear.take(deducted)
    c_short = c_deducted > 0  # a deduction is short payment: the same as taking ``short``, one gather less

    now = clear.before(q.customer, q.at)
    then = clear.before(q.customer, q.shifted(TREND_WINDOW_DAYS))
    year_ago = clear.before(q.customer, q.shifted(DEDUCTION_WINDOW_DAYS))

    def cleared_before(values: np.ndarray) -> np.ndarray:
        return clear.total(values, now, presorted=True)

    n_cleared = now.count
    late_now, late_then = clear.totals(np.maximum(days_late, 0), now, then, presorted=True)
    avg_late = _ratio(late_now, n_cleared)
    avg_recent = _ratio(late_now - late_then, n_cleared - then.count)
    issued_count, issued_amount = issued_part()
    overdue_count, overdue_total = overdue_part()
    open_amount = issued_amount - cleared_before(c_amount)
    overdue_amount = overdue_total - cleared_before(np.where(was_overdue, c_amount, 0))
    short_now, short_then = clear.totals(c_short, now, year_ago, presorted=True)
    deducted_now, deducted_then = clear.totals(c_deducted, now, year_ago, presorted=True)
    return {
        "inv_cleared_count": n_cleared,
        "inv_on_time_share": _ratio(cleared_before(days_late <= 0), n_cleared),
        "inv_late_1_30_count": cleared_before((days_late >= 1) & (days_late <= 30)),
        "inv_late_31_60_count": cleared_before((days_late >= 31) & (days_late <= 60)),
        "inv_late_61_90_count": cleared_before((days_late >= 61) & (days_late <= 90)),
        "inv_late_90p_count": cleared_before(days_late > 90),
        "inv_avg_days_late": avg_late,
        "inv_avg_days_to_pay": _ratio(cleared_before(days_to_pay) / 86_400, n_cleared),
        "inv_avg_days_late_90d": avg_recent,
        "inv_late_trend": avg_recent - avg_late,
        "open_invoice_count": issued_count - n_cleared,
        "open_receivables_amount": open_amount / 100,
        "overdue_count": overdue_count - cleared_before(was_overdue),
        "overdue_amount": overdue_amount / 100,
        "deductions_365d": short_now - short_then,
        "deducted_amount_365d": (deducted_now - deducted_then) / 100,
    }


def _credit(
    tables: dict[str, pd.DataFrame], history: pd.DataFrame, q: _Orders
) -> dict[str, np.ndarray | pd.Series]:
    """The credit family but exposure and utilisation, which need the receivables (:func:`_exposure`)."""
    n = len(q.customers)
    profiles = _table(tables, "credit_profiles")
    profile_line = Timeline(encode(profiles["customer_id"], q.customers), _times(profiles, "valid_from"), n)
    row, found = _latest(profile_line, profile_line.before(q.customer, q.at, inclusive=True))
    limit = _pick(_number(profiles, "credit_limit"), row, found)

    bureau = _table(tables, "bureau_reports")
    reported = _times(bureau, "reported_at")
    bureau_line = Timeline(encode(bureau["customer_id"], q.customers), reported, n)
    b_row, b_found = _latest(bureau_line, bureau_line.before(q.customer, q.at))

    open_orders = _open_orders_amount(history, _table(tables, "invoices"), _table(tables, "holds"), q)
    return {
        "credit_limit": limit,
        "internal_score": _pick(_number(profiles, "internal_score"), row, found),
        "risk_class": _pick_text(_text(profiles, "risk_class"), row, found),
        "bureau_score": _pick(_number(bureau, "score"), b_row, b_found),
        "bureau_rating": _pick_text(_text(bureau, "rating"), b_row, b_found),
        "bureau_days_beyond_terms": _pick(_number(bureau, "days_beyond_terms"), b_row, b_found),
        "bureau_derogatory_flags": _pick(_number(bureau, "derogatory_flags"), b_row, b_found),
        "days_since_bureau_report": q.days_since(reported[b_row] if len(reported) else q.at, b_found),
        "open_orders_amount": open_orders,
    }


def _exposure(out: dict[str, np.ndarray | pd.Series], q: _Orders) -> dict[str, np.ndarray]:
    """Exposure at t (open receivables, other open orders, the order itself) and its share of the limit."""
    exposure = (
        out["open_receivables_amount"] + out["open_orders_amount"] + np.nan_to_num(_number(q.frame, "amount"))
    )
    return {"exposure": exposure, "utilisation": _ratio(exposure, out["credit_limit"])}


def _open_orders_amount(
    history: pd.DataFrame, invoices: pd.DataFrame, holds: pd.DataFrame, q: _Orders
) -> np.ndarray:
    """Amount of the customer's other orders created before t and neither invoiced nor cancelled at t."""
    customer = encode(history["customer_id"], q.customers)
    created = _times(history, "created_at")
    orders = pd.Index(history["order_id"].astype("string"))

    # An order closes at its first invoice (from then on the invoice is the exposure), at its
    # cancellation, or when the open window expires, whichever comes first.
    expires = np.where(created != NAT, created + OPEN_ORDER_WINDOW_DAYS * DAY_NS, NAT)
    closes = expires.copy()
    cancelled = _text(holds, "release_kind").str.lower().isin(CANCELLING_RELEASE_KINDS)
    for frame, column, rows in (
        (invoices, "issued_at", slice(None)),
        (holds, "released_at", cancelled.to_numpy(dtype=bool, na_value=False)),
    ):
        position = encode(frame["order_id"], orders)[rows]
        at = _times(frame, column)[rows]
        known = (position >= 0) & (at != NAT)
        np.minimum.at(closes, position[known], at[known])
    # An invoice or cancellation dated before the order (a data error) closes it on creation.
    closes = np.where(created != NAT, np.maximum(closes, created), NAT)

    n = len(q.customers)
    amount = _cents(_number(history, "amount"))
    opened = Timeline(customer, created, n)
    closed = Timeline(customer, closes, n)
    total = opened.total(amount, opened.before(q.customer, q.at))
    return (total - closed.total(amount, closed.before(q.customer, q.at))) / 100


def _target_lines(lines: pd.DataFrame, q: _Orders) -> pd.DataFrame:
    """The lines of the orders to featurise: ``pos`` is the order's position in ``q``, ``product`` a code."""
    pos = encode(lines["order_id"], pd.Index(q.frame["order_id"].astype("string")))
    keep = np.flatnonzero(pos >= 0)
    product = lines["product_id"].astype("string").iloc[keep]
    codes, products = pd.factorize(product)
    out = pd.DataFrame(
        {
            "pos": pos[keep],
            "product": codes.astype(np.int64),
            "quantity": _number(lines, "quantity")[keep],
            "unit_price": _number(lines, "unit_price")[keep],
            "list_price": _number(lines, "list_price")[keep],
        }
    )
    out.attrs["products"] = pd.Index(products)
    return out


def _per_order(values: pd.Series, pos: np.ndarray, how: str, size: int, **kwargs) -> np.ndarray:
    """Aggregate per-line values to one per order position; NaN for an order without lines."""
    grouped = getattr(pd.Series(np.asarray(values)).groupby(pos), how)(**kwargs)
    out = np.full(size, np.nan)
    out[grouped.index.to_numpy(dtype=np.int64)] = grouped.to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def _order_behaviour(history: pd.DataFrame, lines: pd.DataFrame, q: _Orders) -> dict[str, np.ndarray]:
    customer = encode(history["customer_id"], q.customers)
    created = _times(history, "created_at")
    amount = _number(history, "amount")
    n = len(q.customers)
    past = Timeline(customer, created, n)
    now = past.before(q.customer, q.at)
    month = past.before(q.customer, q.shifted(ORDER_FREQUENCY_DAYS))
    prev_row, prev_found = _latest(past, now)

    count = now.count
    mean = _ratio(past.total(_cents(amount), now) / 100, count)
    # Order sizes are roughly log-normal: the z-score of log amounts, in fixed point for exact sums.
    log_amount = np.rint(np.log1p(np.clip(np.nan_to_num(amount), 0, None)) * 10_000).astype(np.int64)
    log_sum = past.total(log_amount, now).astype(np.float64)
    log_sq = past.total(log_amount * log_amount, now).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_mean = log_sum / count
        log_std = np.sqrt(np.maximum(log_sq / count - log_mean**2, 0) * count / np.maximum(count - 1, 1))
        log_std = np.maximum(log_std, MIN_LOG_AMOUNT_STD * 10_000)
        own = np.log1p(np.clip(_number(q.frame, "amount"), 0, None)) * 10_000
        zscore = np.where(count >= 2, (own - log_mean) / log_std, np.nan)

    own_amount = _number(q.frame, "amount")
    pos = lines["pos"].to_numpy()
    # An order without lines has 0, never "unknown": which orders have lines elsewhere must not matter.
    n_lines = np.bincount(pos, minlength=len(q)).astype(np.float64)
    distinct = lines[["pos", "product"]].drop_duplicates()
    n_products = np.bincount(distinct["pos"].to_numpy(), minlength=len(q)).astype(np.float64)
    deviation = np.abs(lines["unit_price"] - lines["list_price"]) / lines["list_price"].where(
        lines["list_price"] > 0
    )
    return {
        "order_amount": own_amount,
        "n_lines": n_lines,
        "n_products": n_products,
        "max_price_deviation": _per_order(deviation, pos, "max", len(q)),
        "prior_order_count": count,
        "orders_last_30d": count - month.count,
        "days_since_prev_order": q.days_since(created[prev_row] if len(created) else q.at, prev_found),
        "amount_ratio_to_mean": _ratio(own_amount, mean),
        "amount_zscore": zscore,
    }


def _holds(holds: pd.DataFrame, history: pd.DataFrame, q: _Orders) -> dict[str, np.ndarray]:
    # A hold belongs to the customer of its order; holds of orders outside the history are dropped.
    owner = encode(holds["order_id"], pd.Index(history["order_id"].astype("string")))
    # A sentinel after the last order: owner -1 (unknown order) picks no customer and no time.
    customer = np.append(encode(history["customer_id"], q.customers), -1)[owner]
    created = np.append(_times(history, "created_at"), NAT)[owner]
    placed = _times(holds, "placed_at")
    # A hold cannot be known before its order exists: one dated earlier (a data error) counts from then.
    placed = np.where((placed != NAT) & (created != NAT), np.maximum(placed, created), NAT)
    released = _times(holds, "released_at")
    released = np.where(released != NAT, np.maximum(released, placed), NAT)
    reason = _text(holds, "reason").str.lower()

    n = len(q.customers)
    placing = Timeline(customer, placed, n)
    releasing = Timeline(customer, released, n)
    now = placing.before(q.customer, q.at)
    last_row, last_found = _latest(placing, now)
    out = {f"prior_holds_{r}": placing.total(_flag(reason == r), now) for r in HOLD_REASONS}
    out["prior_holds_total"] = now.count
    out["open_holds_count"] = now.count - releasing.before(q.customer, q.at).count
    out["days_since_last_hold"] = q.days_since(placed[last_row] if len(placed) else q.at, last_found)
    return out


def _customer_rows(customers: pd.DataFrame, q: _Orders) -> pd.DataFrame:
    """The master record of each order's customer, aligned with ``q``; all missing for an unknown one."""
    customers = customers.drop_duplicates("customer_id", keep="last").reset_index(drop=True)
    row = encode(q.frame["customer_id"], pd.Index(customers["customer_id"].astype("string")))
    # Row -1 is no label of the RangeIndex, so reindex fills an unknown customer with missing values.
    return customers.reindex(row).reset_index(drop=True)


def _master(customers: pd.DataFrame, q: _Orders) -> dict[str, np.ndarray | pd.Series]:
    since = _times(customers, "customer_since")
    order_currency = _text(q.frame, "currency").str.upper()
    customer_currency = _text(customers, "currency").str.upper()
    mismatch = (order_currency != customer_currency).to_numpy(dtype=np.float64, na_value=np.nan)
    return {
        "segment": _text(q.frame, "segment").fillna(_text(customers, "segment")),
        "industry": _text(customers, "industry"),
        "size_band": _text(customers, "size_band"),
        "country": _text(customers, "country").str.upper(),
        "payment_method": _text(q.frame, "payment_method"),
        "tenure_days": q.days_since(since, since != NAT),
        "payment_terms_days": _number(customers, "payment_terms_days"),
        "currency_mismatch": mismatch,
    }


def _disputes(disputes: pd.DataFrame, q: _Orders) -> dict[str, np.ndarray]:
    customer = encode(disputes["customer_id"], q.customers)
    opened = _times(disputes, "opened_at")
    closed = _times(disputes, "closed_at")
    closed = np.where(closed != NAT, np.maximum(closed, opened), NAT)
    amount = _cents(_number(disputes, "amount"))
    n = len(q.customers)
    opening = Timeline(customer, opened, n)
    closing = Timeline(customer, closed, n)
    now_open = opening.before(q.customer, q.at)
    now_closed = closing.before(q.customer, q.at)
    year_ago = opening.before(q.customer, q.shifted(DISPUTE_WINDOW_DAYS))
    return {
        "disputes_open_count": now_open.count - now_closed.count,
        "disputes_open_amount": (opening.total(amount, now_open) - closing.total(amount, now_closed)) / 100,
        "disputes_365d": now_open.count - year_ago.count,
    }


def _recent_counts(frame: pd.DataFrame, column: str, q: _Orders, flags: dict[str, np.ndarray]) -> dict:
    """Per flag, how many of the customer's events in the last TREND_WINDOW_DAYS before t had it."""
    line = Timeline(encode(frame["customer_id"], q.customers), _times(frame, column), len(q.customers))
    now = line.before(q.customer, q.at)
    then = line.before(q.customer, q.shifted(TREND_WINDOW_DAYS))
    out = {}
    for name, flag in flags.items():
        in_now, in_then = line.totals(flag, now, then)
        out[name] = in_now - in_then
    return out


def _crm(interactions: pd.DataFrame, q: _Orders) -> dict[str, np.ndarray]:
    kind = _text(interactions, "kind").str.lower()
    flags = {
        "broken_promises_90d": _flag(kind == "broken_promise"),
        "collection_steps_90d": _flag(kind == "collection_step"),
        "promises_to_pay_90d": _flag(kind == "promise_to_pay"),
    }
    return _recent_counts(interactions, "at", q, flags)


def _payments(payments: pd.DataFrame, q: _Orders) -> dict[str, np.ndarray]:
    status = _text(payments, "status").str.lower()
    flags = {"failed_payments_90d": _flag(status.isin(["failed", "declined"]))}
    return _recent_counts(payments, "received_at", q, flags)


def normalise_name(name: str) -> str:
    """Lower-case words of a company or person name, without punctuation and :data:`NAME_NOISE_WORDS`."""
    words = re.findall(r"[^\W_]+", name.lower())
    return " ".join(w for w in words if len(w) > 1 and w not in NAME_NOISE_WORDS)


def sanctions_scores(names: pd.Series, entries: pd.DataFrame, block: int = 500) -> np.ndarray:
    """Best token-sort similarity (0-100) of each name to any sanctions entry name or alias.

    Args:
        names: Names to screen (one per customer).
        entries: Canonical ``sanctions_entries``; ``aliases`` holds further names split by ``;`` or ``|``.
        block: Names compared per batch, bounding the score matrix held in memory.

    Returns:
        float64 array aligned with ``names``: NaN for a missing name or an empty list.
    """
    from rapidfuzz import fuzz, process

    choices = sorted({n for n in map(normalise_name, _listed_names(entries)) if n})
    out = np.full(len(names), np.nan)
    if not choices:
        return out
    present = names.notna().to_numpy()
    queries = [normalise_name(n) for n in names[present]]
    scores = np.zeros(len(queries))
    for lo in range(0, len(queries), block):
        # token_sort_ratio compares the sorted words, so word order ("Petrov Ivan") does not matter.
        matrix = process.cdist(
            queries[lo : lo + block], choices, scorer=fuzz.token_sort_ratio, dtype=np.float32, workers=-1
        )
        scores[lo : lo + block] = matrix.max(axis=1)
    out[present] = scores
    return out


def _listed_names(entries: pd.DataFrame) -> list[str]:
    """Every name and alias of the sanctions entries, as written."""
    listed = list(_text(entries, "name").dropna())
    for aliases in _text(entries, "aliases").dropna():
        listed.extend(a for a in re.split(r"[;|]", aliases) if a.strip())
    return listed


def _as_written(name: str) -> str:
    return " ".join(name.casefold().split())


def sanctions_identical(names: pd.Series, entries: pd.DataFrame) -> np.ndarray:
    """1.0 where a name is written exactly as a sanctions entry name or alias, else 0.0.

    Only case and spacing are ignored. The fuzzy score cannot tell "Ivan Petrov" from "Petrov Ivan"
    or "Acme Ltd" from "Acme LLC" (a screener must review both); this flag says the name on the
    order is the listed one letter for letter. NaN for a missing name or an empty list.
    """
    listed = {_as_written(n) for n in _listed_names(entries)}
    listed.discard("")
    out = np.full(len(names), np.nan)
    if not listed:
        return out
    present = names.notna().to_numpy()
    out[present] = [float(_as_written(n) in listed) for n in names[present]]
    return out


def _compliance(customers: pd.DataFrame, sanctions: pd.DataFrame, q: _Orders) -> dict[str, np.ndarray]:
    # Score each distinct customer once, at its first order, then hand the score to all its orders.
    codes, first = np.unique(q.customer, return_index=True)
    known = codes >= 0
    names = _text(customers, "name").iloc[first[known]].reset_index(drop=True)
    # One slot per customer and a last one, NaN, where an order without a customer (code -1) looks.
    lookup = np.full(len(q.customers) + 1, np.nan)
    lookup[codes[known]] = sanctions_scores(names, sanctions)
    exact = np.full(len(q.customers) + 1, np.nan)
    exact[codes[known]] = sanctions_identical(names, sanctions)
    score = lookup[q.customer]
    country = _text(q.frame, "ship_to_country").str.upper()
    risky = country.isin(RISKY_COUNTRIES).to_numpy(dtype=float)
    return {
        "sanctions_name_score": score,
        "sanctions_exact_match": exact[q.customer],
        "risky_ship_to_country": np.where(country.notna().to_numpy(), risky, np.nan),
    }


def _completeness(q: _Orders) -> dict[str, np.ndarray]:
    fields = {
        "po_missing": "po_number",
        "ship_to_street_missing": "ship_to_street",
        "ship_to_city_missing": "ship_to_city",
        "ship_to_postcode_missing": "ship_to_postcode",
        "ship_to_country_missing": "ship_to_country",
    }
    return {name: _text(q.frame, column).isna().to_numpy(dtype=float) for name, column in fields.items()}


def _inventory(lines: pd.DataFrame, inventory: pd.DataFrame, q: _Orders) -> dict[str, np.ndarray]:
    """How far the latest stock snapshot at t covers each line: min of available / quantity."""
    if not len(lines) or not len(inventory):
        return {"inventory_cover_min": np.full(len(q), np.nan), "lines_short_count": np.full(len(q), np.nan)}
    products = lines.attrs["products"]
    at = _times(inventory, "as_of")
    snapshots = Timeline(encode(inventory["product_id"], products), at, len(products))
    pos = lines["pos"].to_numpy()
    window = snapshots.before(lines["product"].to_numpy(), q.at[pos], inclusive=True)
    row, found = _latest(snapshots, window)
    available = _pick(_number(inventory, "available"), row, found)
    quantity = lines["quantity"].to_numpy()
    cover = pd.Series(_ratio(available, quantity))
    short = pd.Series(np.where(np.isnan(cover), np.nan, (cover < 1).astype(float)))
    return {
        "inventory_cover_min": _per_order(cover, pos, "min", len(q)),
        "lines_short_count": _per_order(short, pos, "sum", len(q), min_count=1),
    }
