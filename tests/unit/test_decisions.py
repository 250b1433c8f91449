from __future__ import annotations

import json

import pandas as pd
import pytest

from include import config
from include.decisions import DECISION_COLUMNS, decide, load_policy


@pytest.fixture
def policy():
    return load_policy(config.HOLDCAST_POLICY_FILE.get())


def _scores():
    frame = pd.DataFrame(
        {
            "p_any": [0.9, 0.35, 0.05],
            "p_credit": [0.8, 0.05, 0.01],
            "p_incomplete_info": [0.1, 0.10, 0.01],
            "p_compliance": [0.0, 0.0, 0.0],
            "p_payment": [0.3, 0.02, 0.0],
            "p_inventory": [0.0, 0.0, 0.0],
            "p_manual_review": [0.0, 0.0, 0.0],
            "top_factors": [json.dumps([["utilisation", 1.2], ["po_missing", 0.3]]), "[]", "[]"],
        },
        index=pd.Index(["O1", "O2", "O3"], name="order_id"),
    )
    return frame


def _features():
    # Deliberately in another row order than the scores: decisions must align by order id.
    return pd.DataFrame(
        {"utilisation": [0.2, 0.4, 1.12], "po_missing": [0.0, 0.0, 1.0]}, index=["O3", "O2", "O1"]
    )


def test_decisions_follow_the_policy(policy):
    out = decide(
        _scores(),
        _features(),
        policy,
        customer_of={"O1": "C1", "O2": "C2", "O3": "C3"},
        model_name="m",
        model_version="4",
        as_of="2025-06-30",
    ).set_index("order_id")
    assert list(out.reset_index().columns) == DECISION_COLUMNS
    assert out["band"].tolist() == ["high", "medium", "low"]
    assert out["at_risk"].tolist() == [True, True, False]
    assert json.loads(out.loc["O1", "reasons"]) == [["credit", 0.8], ["payment", 0.3]]
    assert out.loc["O1", "team"] == "credit_analysts"
    assert json.loads(out.loc["O1", "evidence"]) == ["exposure 112% of limit", "PO number missing"]
    # An at-risk order whose reasons are all below the naming level still gets its likeliest reason.
    assert json.loads(out.loc["O2", "reasons"]) == [["incomplete_info", 0.1]]
    assert out.loc["O2", "team"] == "order_desk"
    assert pd.isna(out.loc["O3", "team"]) and out.loc["O3", "evidence"] == "[]"
    assert out.loc["O2", "customer_id"] == "C2"


def test_hash_ignores_the_interval_but_not_the_content(policy):
    kwargs = dict(customer_of={}, model_name="m", model_version="4")
    first = decide(_scores(), _features(), policy, as_of="2025-06-30", **kwargs)
    same = decide(_scores(), _features(), policy, as_of="2025-07-01", **kwargs)
    assert first["decision_hash"].tolist() == same["decision_hash"].tolist()
    changed = _scores()
    changed.loc["O2", "p_any"] = 0.7
    other = decide(changed, _features(), policy, as_of="2025-06-30", **kwargs)
    assert (first["decision_hash"] != other["decision_hash"]).tolist() == [False, True, False]


def test_risk_text_writes_every_possible_risk_as_pandas_does():
    import numpy as np

    from include.decisions import risk_text

    # Risks are rounded to 6 decimals in [0, 1]: all 1,000,001 of them, in the hash's own text.
    risks = pd.Series(np.round(np.arange(1_000_001) / 1e6, 6))
    assert risk_text(risks).equals(risks.astype("string"))
    # Anything else (a missing or out-of-range value) is written the plain way.
    odd = pd.Series([0.5, float("nan"), 1.5, -0.0])
    assert risk_text(odd).equals(odd.astype("string"))
