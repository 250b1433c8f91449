"""Plain-language evidence for a feature value: what an analyst reads next to a predicted hold.

The model says which features pushed an order's risk up; :func:`evidence_for` turns the top ones into
short sentences ("exposure 112% of limit", "2 invoices 61-90 days late", "PO number missing"). A
value that says nothing on its own (no overdue invoice, a PO number present) gives no sentence.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import pandas as pd

from include.canonical import HOLD_REASONS

logger = logging.getLogger(__name__)

SANCTIONS_SCORE_WORTH_SAYING = 85.0
"""Name-match scores from here up are shown. Against the full SDN list, 15% of ordinary company names
score 70 or more (they share words such as "Trading" or "Metals") and about 0.2% score 85 or more;
``tests/unit/test_features_sanctions.py`` measures both."""
PRICE_DEVIATION_WORTH_SAYING = 0.05
ZSCORE_WORTH_SAYING = 2.0
TREND_DAYS_WORTH_SAYING = 1.0

_REASON_WORDS = {reason: reason.replace("_", " ") for reason in HOLD_REASONS} | {
    "incomplete_info": "incomplete information"
}


def _plural(count: float, singular: str, plural: str | None = None) -> str:
    n = int(round(count))
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _count(singular: str, rest: str = "", plural: str | None = None) -> Callable[[float], str | None]:
    def say(value: float) -> str | None:
        if value < 1:
            return None
        return f"{_plural(value, singular, plural)}{rest}"

    return say


def _flag(sentence: str) -> Callable[[float], str | None]:
    return lambda value: sentence if value >= 0.5 else None


def _amount(template: str) -> Callable[[float], str | None]:
    return lambda value: template.format(_money(value)) if value > 0 else None


def _text(template: str) -> Callable[[str], str | None]:
    return lambda value: template.format(value)


def _days_ago(subject: str) -> Callable[[float], str | None]:
    return lambda value: f"{subject} {_plural(value, 'day')} ago"


def _late_average(prefix: str) -> Callable[[float], str | None]:
    return lambda value: f"{prefix} paid {value:.0f} days late on average" if value >= 0.5 else None


def _trend(value: float) -> str | None:
    if value >= TREND_DAYS_WORTH_SAYING:
        return f"paying {value:.0f} days later than usual in the last 90 days"
    if value <= -TREND_DAYS_WORTH_SAYING:
        return f"paying {-value:.0f} days earlier than usual in the last 90 days"
    return None


def _tenure(value: float) -> str | None:
    if value < 0:
        return None
    if value < 365:
        return f"customer for {_plural(value, 'day')}"
    return f"customer for {_plural(value // 365, 'year')}"


def _prior_orders(value: float) -> str | None:
    return "first order of the customer" if value < 1 else _plural(value, "earlier order")


def _zscore(value: float) -> str | None:
    if abs(value) < ZSCORE_WORTH_SAYING:
        return None
    direction = "large" if value > 0 else "small"
    return f"order unusually {direction} for the customer (z = {value:.1f})"


def _cover(value: float) -> str | None:
    return f"stock covers {value:.0%} of ordered quantity" if value < 1 else None


_NUMERIC: dict[str, Callable[[float], str | None]] = {
    "inv_cleared_count": lambda v: "no invoice paid yet" if v < 1 else None,
    "inv_on_time_share": lambda v: f"{v:.0%} of invoices paid on time",
    "inv_late_1_30_count": _count("invoice", " 1-30 days late"),
    "inv_late_31_60_count": _count("invoice", " 31-60 days late"),
    "inv_late_61_90_count": _count("invoice", " 61-90 days late"),
    "inv_late_90p_count": _count("invoice", " more than 90 days late"),
    "inv_avg_days_late": _late_average("invoices"),
    "inv_avg_days_to_pay": lambda v: f"invoices paid {v:.0f} days after issue on average",
    "inv_avg_days_late_90d": _late_average("invoices of the last 90 days"),
    "inv_late_trend": _trend,
    "open_invoice_count": _count("open invoice"),
    "open_receivables_amount": _amount("{} in open receivables"),
    "overdue_count": _count("invoice", " overdue"),
    "overdue_amount": _amount("{} overdue"),
    "deductions_365d": _count("deduction", " from invoices in the last year"),
    "deducted_amount_365d": _amount("{} deducted from invoices in the last year"),
    "credit_limit": lambda v: f"credit limit {_money(v)}" if v > 0 else "no credit limit",
    "internal_score": lambda v: f"internal score {v:.0f}",
    "bureau_score": lambda v: f"bureau score {v:.0f}",
    "bureau_days_beyond_terms": lambda v: f"bureau reports {v:.0f} days beyond terms" if v > 0 else None,
    "bureau_derogatory_flags": _count("derogatory flag", " at the bureau"),
    "days_since_bureau_report": lambda v: f"latest bureau report {_plural(v, 'day')} old",
    "open_orders_amount": _amount("{} in other open orders"),
    "exposure": _amount("exposure {}"),
    "utilisation": lambda v: f"exposure {v:.0%} of limit",
    "order_amount": lambda v: f"order amount {_money(v)}",
    "n_lines": _count("order line"),
    "n_products": _count("different product"),
    "max_price_deviation": lambda v: (
        f"price deviates {v:.0%} from list price" if v >= PRICE_DEVIATION_WORTH_SAYING else None
    ),
    "prior_order_count": _prior_orders,
    "orders_last_30d": _count("order", " in the last 30 days"),
    "days_since_prev_order": _days_ago("previous order"),
    "amount_ratio_to_mean": lambda v: f"order {v:.1f}x the customer's average",
    "amount_zscore": _zscore,
    **{
        f"prior_holds_{reason}": _count("earlier hold", f" for {words}")
        for reason, words in _REASON_WORDS.items()
    },
    "prior_holds_total": _count("earlier hold"),
    "open_holds_count": _count("hold", " still open on other orders"),
    "days_since_last_hold": _days_ago("last hold"),
    "tenure_days": _tenure,
    "payment_terms_days": lambda v: f"payment terms {v:.0f} days",
    "currency_mismatch": _flag("order currency differs from the customer's"),
    "disputes_open_count": _count("open dispute"),
    "disputes_open_amount": _amount("{} in open disputes"),
    "disputes_365d": _count("dispute", " in the last year"),
    "broken_promises_90d": _count("broken promise", " to pay in the last 90 days"),
    "collection_steps_90d": _count("collection step", " in the last 90 days"),
    "promises_to_pay_90d": _count("promise", " to pay in the last 90 days"),
    "failed_payments_90d": _count("failed or declined payment", " in the last 90 days"),
    "sanctions_name_score": lambda v: (
        f"name matches sanctions entry (score {v:.0f})" if v >= SANCTIONS_SCORE_WORTH_SAYING else None
    ),
    "sanctions_exact_match": _flag("name written exactly as a sanctions list entry"),
    "risky_ship_to_country": _flag("ship-to country on the risk list"),
    "po_missing": _flag("PO number missing"),
    "ship_to_street_missing": _flag("ship-to street missing"),
    "ship_to_city_missing": _flag("ship-to city missing"),
    "ship_to_postcode_missing": _flag("ship-to postcode missing"),
    "ship_to_country_missing": _flag("ship-to country missing"),
    "inventory_cover_min": _cover,
    "lines_short_count": _count("line", " short of stock"),
}

_CATEGORICAL: dict[str, Callable[[str], str | None]] = {
    "risk_class": _text("risk class {}"),
    "bureau_rating": _text("bureau rating {}"),
    "segment": _text("segment {}"),
    "industry": _text("industry {}"),
    "size_band": _text("size band {}"),
    "country": _text("customer country {}"),
    "payment_method": _text("payment method {}"),
}


def describe(feature: str, value: float | str | None) -> str | None:
    """One plain sentence about a feature value, or None when the value says nothing worth showing.

    Args:
        feature: A column of :data:`features.build.FEATURE_COLUMNS`.
        value: The order's value of it; missing values (None, NaN, ``<NA>``) give None.

    Returns:
        For example "exposure 112% of limit" for ``utilisation`` 1.12, "PO number missing" for
        ``po_missing`` 1; None for a missing value, an unremarkable one (no overdue invoice) or an
        unknown feature.
    """
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if feature in _CATEGORICAL:
        text = str(value).strip()
        return _CATEGORICAL[feature](text) if text else None
    say = _NUMERIC.get(feature)
    if say is None:
        logger.debug("No evidence wording for feature %s", feature)
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        logger.warning("Feature %s has a non-numeric value %r; no evidence given", feature, value)
        return None
    return None if math.isnan(number) or math.isinf(number) else say(number)


def evidence_for(row: pd.Series, top_features: list[str], limit: int = 3) -> list[str]:
    """Sentences for the first ``limit`` of ``top_features`` that have something to say.

    Args:
        row: One order's features (a row of :func:`features.build.build_order_features`).
        top_features: Features ranked by how much they raised the order's risk, most first.
        limit: Most sentences returned.

    Returns:
        Up to ``limit`` distinct sentences in the order of ``top_features``.
    """
    sentences: list[str] = []
    for feature in top_features:
        if len(sentences) >= limit:
            break
        sentence = describe(feature, row.get(feature))
        if sentence is not None and sentence not in sentences:
            sentences.append(sentence)
    return sentences
