"""Credit-limit recommendations under the shipped policy: increases, auto-approval bounds, decreases."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from include import config
from include.credit_limits import customer_facts, recommend
from include.decisions import load_policy

AS_OF = datetime(2025, 6, 30, tzinfo=UTC)


@pytest.fixture
def policy():
    return load_policy(config.HOLDCAST_POLICY_FILE.get())


def _facts(**rows):
    columns = ["current_limit", "exposure", "peak_exposure", "on_time_share", "overdue_amount", "risk"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns)


def test_recommendations_follow_the_policy(policy):
    facts = _facts(
        small_up=[100_000, 90_000, 90_000, 0.95, 0.0, 0.05],  # needs 112,500 -> 113,000: +13% auto
        big_up=[50_000, 80_000, 80_000, 0.95, 0.0, 0.05],  # needs 100,000: +100% -> review
        risky=[100_000, 40_000, 60_000, 0.60, 0.0, 0.30],  # pays late -> down 30% to 70,000
        floor=[100_000, 95_500, 95_500, 0.95, 0.0, 0.70],  # high risk, but exposure 95,500 -> 96,000
        overdue=[100_000, 90_000, 90_000, 0.95, 500.0, 0.05],  # money overdue: no increase
        no_limit=[np.nan, 8_000, 8_000, np.nan, 0.0, 0.20],
    )
    out = recommend(facts, policy, as_of="2025-06-30").set_index("customer_id")
    assert out.loc["small_up", ["recommended_limit", "change", "decision"]].tolist() == [
        113_000,
        13_000,
        "auto_approved",
    ]
    assert out.loc["small_up", "reason"].startswith(
        "increase: peak exposure 90,000 in 90 days uses 90% of the limit"
    )
    assert out.loc["big_up", ["recommended_limit", "decision"]].tolist() == [100_000, "review"]
    assert "larger than the policy approves by itself" in out.loc["big_up", "reason"]
    assert out.loc["risky", ["recommended_limit", "change", "decision"]].tolist() == [
        70_000,
        -30_000,
        "review",
    ]
    assert "60% of invoices paid on time" in out.loc["risky", "reason"]
    assert out.loc["floor", "recommended_limit"] == 96_000
    assert out.loc["overdue", ["decision", "change"]].tolist() == ["keep", 0.0]
    assert out.loc["no_limit", ["recommended_limit", "decision"]].tolist() == [10_000, "review"]
    assert set(out["policy_version"]) == {policy.version}


def test_customer_facts_use_the_last_90_days_and_the_scored_risk():
    idx = ["A1", "A2", "A3", "B1"]
    features = pd.DataFrame(
        {
            "credit_limit": [10.0, 20.0, 30.0, 5.0],
            "exposure": [99.0, 15.0, 12.0, 4.0],
            "inv_on_time_share": [0.5, 0.8, 0.9, 1.0],
            "overdue_amount": [0.0, 0.0, 1.0, np.nan],
        },
        index=idx,
    )
    orders = pd.DataFrame(
        {
            "customer_id": ["A", "A", "A", "B"],
            "created_at": pd.to_datetime(["2025-01-01", "2025-06-01", "2025-06-20", "2025-06-10"], utc=True),
        },
        index=idx,
    )
    decisions = pd.DataFrame({"customer_id": ["A", "A", "C"], "risk": [0.2, 0.4, 0.9]})
    facts = customer_facts(features, orders, decisions, AS_OF)
    assert facts.index.tolist() == ["A"]  # B has no scored open order; C no recent order
    assert facts.loc["A"].to_dict() == pytest.approx(
        {"current_limit": 30.0, "exposure": 12.0, "peak_exposure": 15.0, "on_time_share": 0.9,
         "overdue_amount": 1.0, "risk": 0.3}
    )  # fmt: skip
