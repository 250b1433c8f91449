"""Edge cases of decide(): who the customer is (Series or mapping) and how feature values are written."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from include import config
from include.decisions import decide, load_policy
from include.policy import Condition, HardRule


@pytest.fixture
def policy():
    return load_policy(config.HOLDCAST_POLICY_FILE.get())


def _decide(policy, scores, features, customer_of):
    kwargs = dict(model_name="m", model_version="2", as_of="2025-06-30")
    return decide(scores, features, policy, customer_of=customer_of, **kwargs)


def _scores(order_ids, p_any, top_factors="[]"):
    frame = pd.DataFrame({"p_any": p_any}, index=pd.Index(order_ids, name="order_id"))
    for reason in ("credit", "incomplete_info", "compliance", "payment", "inventory", "manual_review"):
        frame[f"p_{reason}"] = 0.2
    frame["top_factors"] = top_factors
    return frame


def test_customer_series_and_mapping_give_the_same_decisions(policy):
    # Repeated order ids, an order with no customer, and order ids that are not text in the Series.
    scores = _scores(["O1", "O2", "O1", "7"], [0.9, 0.35, 0.9, 0.05])
    features = pd.DataFrame({"utilisation": [1.5, 0.2, 0.3]}, index=["O1", "O2", "7"])
    series = pd.Series(["C0", "C1", "C7"], index=pd.Index(["O1", "O1", 7], dtype=object))
    mapping = {"O1": "C1", "7": "C7"}  # a repeated key in the Series: the last one holds, as in a dict
    by_series = _decide(policy, scores, features, series)
    by_mapping = _decide(policy, scores, features, mapping)
    pd.testing.assert_frame_equal(by_series, by_mapping)
    assert by_series["customer_id"].tolist()[:1] == ["C1"] and by_series["customer_id"].tolist()[3] == "C7"
    assert pd.isna(by_series["customer_id"].iloc[1])


def test_evidence_writes_a_nullable_integer_category_as_it_reads(policy):
    scores = _scores(["O1", "O2"], [0.9, 0.9], top_factors=json.dumps([["bureau_rating", 0.4]]))
    features = pd.DataFrame({"bureau_rating": pd.array([3, None], dtype="Int64")}, index=["O1", "O2"])
    out = _decide(policy, scores, features, {}).set_index("order_id")
    assert json.loads(out.loc["O1", "evidence"]) == ["bureau rating 3"]
    assert out.loc["O2", "evidence"] == "[]"


def test_block_rule_evidence_writes_a_nullable_integer_as_it_reads(policy):
    # A feature the evidence has no words for is named with its value.
    rule = HardRule("many_reminders", "block", "payment", (Condition("reminders_sent", "at_least", 10),))
    policy = dataclasses.replace(policy, hard_rules=(rule,))
    scores = _scores(["O1", "O2"], [0.05, 0.05])
    features = pd.DataFrame({"reminders_sent": pd.array([12, None], dtype="Int64")}, index=["O1", "O2"])
    out = _decide(policy, scores, features, {}).set_index("order_id")
    assert out.loc["O1", "team"] == policy.teams["payment"]
    assert json.loads(out.loc["O1", "evidence"]) == ["reminders_sent 12"]
