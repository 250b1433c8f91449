from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include import validation


def _invoices(**overrides):
    base = {
        "invoice_id": ["1", "2", "3"],
        "customer_id": ["C1", "C1", "C2"],
        "order_id": [None, None, None],
        "issued_at": ["2024-01-01", "2024-01-02", "2024-01-03"],
        "due_at": ["2024-02-01", "2024-02-02", "2024-02-03"],
        "amount": ["10.5", "20", "30"],
        "cleared_at": [None, "2024-02-10", None],
        "paid_amount": [None, "20", None],
        "currency": ["EUR", "EUR", "USD"],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def test_good_rows_are_typed():
    out = validation.validate("invoices", _invoices(), source="s", batch="b", tolerance=0.0)
    assert len(out.good) == 3 and out.quarantine.empty
    assert out.good["amount"].dtype == "float64"
    assert str(out.good["issued_at"].dt.tz) == "UTC"
    assert out.good.loc[1, "cleared_at"] == pd.Timestamp("2024-02-10", tz="UTC")


def test_each_bad_row_is_quarantined_with_its_rule():
    raw = _invoices(
        invoice_id=["1", None, "3"],
        amount=["10", "20", "abc"],
        due_at=["2023-12-01", "2024-02-02", "2024-02-03"],
    )
    out = validation.validate("invoices", raw, source="erp", batch="2025-06-30", tolerance=1.0)
    assert out.good.empty
    rules = dict(zip(out.quarantine["row_number"], out.quarantine["rules"], strict=True))
    assert "due_at>=issued_at" in rules[0]
    assert "not_be_null:invoice_id" in rules[1]
    assert rules[2] == "parse_float:amount"
    assert set(out.quarantine["source"]) == {"erp"} and set(out.quarantine["batch"]) == {"2025-06-30"}
    assert json.loads(out.quarantine.loc[out.quarantine["row_number"] == 2, "raw"].item())["amount"] == "abc"


def test_duplicate_key_keeps_the_first_good_row():
    raw = _invoices(invoice_id=["1", "1", "1"], amount=["x", "20", "30"])
    out = validation.validate("invoices", raw, source="s", batch="b", tolerance=1.0)
    assert out.good["amount"].tolist() == [20.0]
    assert out.quarantine["rules"].tolist() == ["parse_float:amount", "duplicate_key:invoice_id"]


def test_tolerance_fails_the_batch_with_counts_and_rules():
    raw = _invoices(amount=["abc", "20", "30"])
    with pytest.raises(validation.ValidationFailed, match=r"1 of 3 rows quarantined .*parse_float:amount"):
        validation.validate("invoices", raw, source="s", batch="b", tolerance=0.2)


def test_missing_required_column_fails_naming_it():
    with pytest.raises(validation.SchemaError, match=r"'invoices'.*\['amount'\]"):
        validation.validate(
            "invoices", _invoices().drop(columns="amount"), source="s", batch="b", tolerance=1
        )


def test_drift_is_reported_and_missing_optional_column_added():
    raw = _invoices().drop(columns="paid_amount").assign(surprise=1)
    out = validation.validate("invoices", raw, source="s", batch="b", tolerance=0)
    assert out.report["drift"] == {"missing_optional": ["paid_amount"], "unexpected": ["surprise"]}
    assert out.good["paid_amount"].isna().all()


def test_empty_batch_fails_unless_allowed():
    empty = _invoices().iloc[0:0]
    with pytest.raises(validation.ValidationFailed, match="row_count"):
        validation.validate("invoices", empty, source="s", batch="b", tolerance=0)
    assert validation.validate(
        "invoices", empty, source="s", batch="b", tolerance=0, allow_empty=True
    ).good.empty


def test_codes_outside_their_set_are_quarantined():
    raw = pd.DataFrame(
        {"order_id": ["1", "2"], "reason": ["credit", "weather"], "placed_at": ["2024-01-01", "2024-01-01"]}
    )
    out = validation.validate("holds", raw, source="s", batch="b", tolerance=1)
    assert out.good["reason"].tolist() == ["credit"]
    assert "in_set:reason" in out.quarantine["rules"].item()


_cell = st.one_of(st.none(), st.sampled_from(["", "abc", "-5", "7", "2024-01-03", "2023-12-31", "1"]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_cell, _cell, _cell, _cell), min_size=1, max_size=12))
def test_nothing_is_lost(rows):
    """Every input row ends in exactly one of good or quarantine, whatever it holds."""
    raw = pd.DataFrame(
        {
            "invoice_id": [r[0] for r in rows],
            "customer_id": "C1",
            "issued_at": [r[1] for r in rows],
            "due_at": [r[2] for r in rows],
            "amount": [r[3] for r in rows],
        }
    )
    out = validation.validate("invoices", raw, source="s", batch="b", tolerance=1.0, allow_empty=True)
    assert len(out.good) + len(out.quarantine) == len(raw)
    assert out.quarantine["row_number"].is_unique
