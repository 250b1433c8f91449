"""Hard rules, segment bands, auto-release, the fail-safe and "what clears it" on real decide() calls."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from include import clearing, config
from include.decisions import decide, load_policy

AS_OF = datetime(2025, 6, 30, tzinfo=UTC)


@pytest.fixture
def policy():
    return load_policy(config.HOLDCAST_POLICY_FILE.get())


def _scores(p_any, **reasons):
    n = len(p_any)
    frame = pd.DataFrame({"p_any": p_any}, index=pd.Index([f"O{i}" for i in range(n)], name="order_id"))
    for reason in ("credit", "incomplete_info", "compliance", "payment", "inventory", "manual_review"):
        frame[f"p_{reason}"] = reasons.get(reason, [0.0] * n)
    frame["top_factors"] = "[]"
    return frame


def _features(n, **columns):
    base = {
        "segment": ["SMB"] * n,
        "order_amount": [1000.0] * n,
        "utilisation": [0.5] * n,
        "sanctions_name_score": [0.0] * n,
        "ship_to_country_missing": [0.0] * n,
        "overdue_count": [0.0] * n,
        "tenure_days": [100.0] * n,
    }
    base.update(columns)
    return pd.DataFrame(base, index=[f"O{i}" for i in range(n)])


def _decide(policy, scores, features, **kwargs):
    return decide(
        scores,
        features,
        policy,
        customer_of={o: "C" + o for o in scores.index},
        model_name="m",
        model_version="3",
        as_of="2025-06-30",
        **kwargs,
    ).set_index("order_id")


def test_block_rule_routes_a_low_risk_order(policy):
    out = _decide(policy, _scores([0.05, 0.05]), _features(2, sanctions_name_score=[95.0, 80.0]))
    assert out["at_risk"].tolist() == [True, False]
    assert out.loc["O0", "team"] == "compliance"
    assert json.loads(out.loc["O0", "reasons"])[0] == ["compliance", 0.0]
    assert json.loads(out.loc["O0", "notes"]) == ["block rule sanctions_name_match"]
    assert "95" in json.loads(out.loc["O0", "evidence"])[0]
    assert "not the listed party" in out.loc["O0", "what_clears"]
    # Blocked orders are never released without a person; the other one is.
    assert out["auto_release"].tolist() == [False, True]


def test_unknown_value_never_meets_a_rule(policy):
    out = _decide(policy, _scores([0.05]), _features(1, sanctions_name_score=[np.nan]))
    assert not out.loc["O0", "at_risk"]


def test_clear_rule_takes_a_small_clean_order_off_the_list_unless_blocked(policy):
    features = _features(
        3,
        order_amount=[200.0, 200.0, 200.0],
        tenure_days=[400.0, 400.0, 100.0],
        utilisation=[0.5, 1.3, 0.5],
    )
    out = _decide(policy, _scores([0.9, 0.9, 0.9], credit=[0.8, 0.8, 0.8]), features)
    assert out["at_risk"].tolist() == [False, True, True]
    assert out["auto_release"].tolist() == [True, False, False]
    assert json.loads(out.loc["O0", "notes"]) == ["clear rule small_order_clean_history"]
    assert json.loads(out.loc["O1", "notes"]) == [
        "block rule exposure_over_limit",
        "clear rule small_order_clean_history",
    ]


def test_segment_bands(policy):
    out = _decide(policy, _scores([0.65, 0.65]), _features(2, segment=["ENTERPRISE", "SMB"]))
    assert out["band"].tolist() == ["medium", "high"]


def test_auto_release_bounds(policy):
    features = _features(4, order_amount=[1000.0, 60000.0, np.nan, 1000.0])
    out = _decide(policy, _scores([0.05, 0.05, 0.05, 0.12]), features)
    assert out["auto_release"].tolist() == [True, False, False, False]


def test_fail_safe_turns_auto_release_off_and_says_why(policy):
    scores, features = (
        _scores([0.05, 0.05]),
        _features(2, order_amount=[200.0, 1000.0], tenure_days=[400.0, 1.0]),
    )
    normal = _decide(policy, scores, features)
    safe = _decide(policy, scores, features, fail_safe="validation failed for crm")
    assert normal["auto_release"].tolist() == [True, True]
    assert safe["auto_release"].tolist() == [False, False]
    assert all("auto-release off: validation failed for crm" in n for n in safe["notes"])
    # The ERP must hear of the change: every hash moves.
    assert (normal["decision_hash"] != safe["decision_hash"]).all()


def test_what_clears_a_credit_order_names_invoices_limit_and_partial_shipment(policy):
    invoices = pd.DataFrame(
        {
            "invoice_id": ["I3", "I1", "I2", "I4", "I5"],
            "customer_id": ["CO0"] * 4 + ["CX"],
            "issued_at": pd.to_datetime(
                ["2025-05-01", "2025-03-01", "2025-04-01", "2025-05-01", "2025-03-01"]
            ),
            "due_at": pd.to_datetime(["2025-06-01", "2025-04-01", "2025-05-01", "2025-07-15", "2025-04-01"]),
            "cleared_at": pd.to_datetime([None, None, None, None, None]),
            "amount": [800.0, 2000.0, 1500.0, 9000.0, 5000.0],
        }
    )
    overdue = clearing.overdue_invoices(invoices, AS_OF)
    assert overdue["invoice_id"].tolist() == ["I1", "I2", "I3", "I5"]  # I4 is not due yet
    features = _features(
        1, credit_limit=[10000.0], exposure=[12500.0], order_amount=[4000.0], overdue_amount=[4300.0]
    )
    out = _decide(policy, _scores([0.8], credit=[0.7]), features, overdue=overdue)
    steps = json.loads(out.loc["O0", "what_clears"])
    assert [s["step"] for s in steps] == ["collect", "raise_limit", "ship_partial"]
    assert steps[0]["invoices"] == ["I1", "I2"] and steps[0]["amount"] == 2500
    assert steps[0]["text"] == (
        "collect 2,500 of the 4,300 overdue: I1 (2,000, 90 days overdue), I2 (1,500, 60 days overdue)"
    )
    assert steps[1]["text"] == "raise the limit by 3,000 to 13,000"
    assert steps[2]["text"] == "ship 38% of the order (1,500) now, the rest once paid"


def test_credit_steps_when_collecting_is_not_enough_or_no_limit():
    short = clearing.credit_steps(
        credit_limit=1000, exposure=7000, order_amount=5000, overdue_amount=500, overdue=None, round_to=1000
    )
    assert short[0]["text"] == "collecting all 500 overdue still leaves 5,500 over the limit"
    assert short[1]["amount"] == 6000
    assert len(short) == 2  # nothing of the order fits under the line: no partial shipment
    assert clearing.credit_steps(
        credit_limit=None, exposure=5000, order_amount=5000, overdue_amount=0, overdue=None, round_to=1000
    ) == [{"step": "set_limit", "text": "no credit limit on file: set one before release"}]


def test_what_clears_incomplete_info_lists_missing_fields(policy):
    features = _features(1, po_missing=[1.0], ship_to_city_missing=[1.0], ship_to_country_missing=[1.0])
    out = _decide(policy, _scores([0.5], incomplete_info=[0.4]), features)
    assert out.loc["O0", "team"] == "order_desk"
    steps = json.loads(out.loc["O0", "what_clears"])
    assert steps == [
        {
            "step": "ask_customer",
            "fields": ["the PO number", "the ship-to city", "the ship-to country"],
            "text": "get the PO number, the ship-to city, the ship-to country",
        }
    ]
