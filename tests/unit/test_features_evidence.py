"""Evidence: plain sentences for the features that matter, nothing for unremarkable values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.build import FEATURE_COLUMNS
from features.evidence import describe, evidence_for


@pytest.mark.parametrize(
    ("feature", "value", "sentence"),
    [
        ("utilisation", 1.12, "exposure 112% of limit"),
        ("inv_late_61_90_count", 2.0, "2 invoices 61-90 days late"),
        ("inv_late_90p_count", 1.0, "1 invoice more than 90 days late"),
        ("overdue_amount", 12345.4, "12,345 overdue"),
        ("po_missing", 1.0, "PO number missing"),
        ("sanctions_name_score", 93.0, "name matches sanctions entry (score 93)"),
        ("inventory_cover_min", 0.4, "stock covers 40% of ordered quantity"),
        ("prior_holds_incomplete_info", 3.0, "3 earlier holds for incomplete information"),
        ("prior_holds_credit", 1.0, "1 earlier hold for credit"),
        ("prior_order_count", 0.0, "first order of the customer"),
        ("amount_zscore", 3.14, "order unusually large for the customer (z = 3.1)"),
        ("tenure_days", 800.0, "customer for 2 years"),
        ("inv_late_trend", 12.4, "paying 12 days later than usual in the last 90 days"),
        ("risk_class", "D", "risk class D"),
        ("failed_payments_90d", 2.0, "2 failed or declined payments in the last 90 days"),
        ("deductions_365d", 2.0, "2 deductions from invoices in the last year"),
        ("deducted_amount_365d", 1234.5, "1,234 deducted from invoices in the last year"),
        ("sanctions_exact_match", 1.0, "name written exactly as a sanctions list entry"),
    ],
)
def test_describe_says_what_matters(feature, value, sentence):
    assert describe(feature, value) == sentence


@pytest.mark.parametrize(
    ("feature", "value"),
    [
        ("overdue_count", 0.0),
        ("po_missing", 0.0),
        ("sanctions_name_score", 40.0),
        # Ordinary names reach 70-84 against the full list by sharing trade words: not evidence.
        ("sanctions_name_score", 84.0),
        ("sanctions_exact_match", 0.0),
        ("deductions_365d", 0.0),
        ("inventory_cover_min", 1.5),
        ("amount_zscore", 0.3),
        ("inv_late_trend", 0.2),
        ("utilisation", math.nan),
        ("risk_class", pd.NA),
        ("risk_class", "  "),
        ("credit_limit", None),
        ("not_a_feature", 1.0),
        ("utilisation", "high"),
    ],
)
def test_describe_says_nothing_about_unremarkable_or_missing_values(feature, value):
    assert describe(feature, value) is None


def test_every_feature_has_wording():
    # A value that always has something to say proves the feature is known to the module.
    remarkable = {c: 1e9 for c in FEATURE_COLUMNS} | {"inventory_cover_min": 0.1, "tenure_days": 3.0}
    silent = [c for c in FEATURE_COLUMNS if describe(c, remarkable[c]) is None and describe(c, "X") is None]
    assert silent == ["inv_cleared_count"]  # silent unless no invoice has been paid yet
    assert describe("inv_cleared_count", 0.0) == "no invoice paid yet"


def test_evidence_for_skips_silent_features_and_stops_at_the_limit():
    row = pd.Series(
        {
            "overdue_count": 0.0,
            "utilisation": 1.5,
            "po_missing": 1.0,
            "inv_late_31_60_count": np.float64(2),
            "risk_class": "E",
        }
    )

    top = [
        "overdue_count",
        "utilisation",
        "missing_column",
        "po_missing",
        "inv_late_31_60_count",
        "risk_class",
    ]

    assert evidence_for(row, top) == [
        "exposure 150% of limit",
        "PO number missing",
        "2 invoices 31-60 days late",
    ]
    assert evidence_for(row, top, limit=1) == ["exposure 150% of limit"]
    assert evidence_for(row, []) == []
