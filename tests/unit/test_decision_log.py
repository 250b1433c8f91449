"""The decision log and the data check behind the fail-safe, on real report files and a SQLite warehouse."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import create_engine

from include import config, decision_log, warehouse
from include.decisions import load_policy

AS_OF = datetime(2025, 6, 30, tzinfo=UTC)


def _report(table="orders", share=0.01, failures=(), drift=None):
    return {
        "table": table,
        "source": "erp",
        "rows_in": 100,
        "quarantined_share": share,
        "table_failures": list(failures),
        "drift": {"unmapped_optional": [], "source": drift or {"new": [], "missing": []}},
    }


def _write_reports(source, reports):
    path = warehouse.lake_path("reports", "validation", "as_of=2025-06-30", f"{source}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(reports))


@pytest.fixture
def policy():
    return load_policy(config.HOLDCAST_POLICY_FILE.get())


def test_clean_reports_pass(holdcast_home, policy):
    _write_reports("erp", [_report(), _report("customers")])
    check = decision_log.data_check(AS_OF)
    assert check.passed and check.schema_drift == [] and check.fail_safe(policy) is None


def test_missing_reports_fail_safe(holdcast_home, policy):
    check = decision_log.data_check(AS_OF)
    assert not check.passed
    assert "no validation report" in check.fail_safe(policy)


@pytest.mark.parametrize(
    ("report", "said"),
    [
        (_report(failures=["expect_table_row_count_to_be_between(min_value=1)"]), "erp/orders: expect_table"),
        (_report(share=0.2), "erp/orders: 20.0% of rows quarantined > 5.0%"),
        ({"table": "orders", "source": "erp", "rows_in": 5}, "erp/orders: validation did not finish"),
    ],
)
def test_failed_validation_turns_auto_release_off(holdcast_home, policy, report, said):
    _write_reports("erp", [_report("customers")])
    _write_reports("crm", [report])
    why = decision_log.data_check(AS_OF).fail_safe(policy)
    assert why.startswith("validation failed for the data of 2025-06-30") and said in why


def test_schema_drift_counts_only_when_the_policy_says_so(holdcast_home, policy):
    _write_reports("erp", [_report(drift={"new": ["Colour"], "missing": []})])
    check = decision_log.data_check(AS_OF)
    assert check.passed and check.schema_drift == ["erp/orders: new ['Colour']"]
    assert "source columns changed" in check.fail_safe(policy)
    lenient = replace(policy, auto_release=replace(policy.auto_release, off_on_schema_drift=False))
    assert check.fail_safe(lenient) is None


def test_log_keeps_model_feature_hash_validation_and_policy(holdcast_home):
    _write_reports("erp", [_report()])
    from features.build import FEATURE_COLUMNS

    features = pd.DataFrame(
        {c: [1.0, 2.0] if c != "segment" else ["SMB", "SMB"] for c in FEATURE_COLUMNS}, index=["A", "B"]
    )
    decisions = pd.DataFrame(
        {
            "order_id": ["B", "A"],
            "as_of": "2025-06-30",
            "decision_hash": ["h2", "h1"],
            "model_name": "m",
            "model_version": "7",
            "policy_version": "p1",
        }
    )
    info = decision_log.record(decisions, AS_OF, features=features)
    with create_engine(config.HOLDCAST_WAREHOUSE_URL.get()).connect() as conn:
        stored = pd.read_sql("SELECT * FROM decision_log ORDER BY order_id", conn)
    assert stored["model_version"].tolist() == ["7", "7"] and set(stored["model_alias"]) == {"champion"}
    assert stored["policy_version"].tolist() == ["p1", "p1"]
    assert stored["validation_passed"].astype(bool).all() and info["validation_passed"]
    assert pd.read_parquet(info["path"]).shape[0] == 2
    # The hash follows the row's values: change one feature of A only, and only A's hash moves.
    changed = features.copy()
    changed.loc["A", FEATURE_COLUMNS[0]] = 99.0
    again = decision_log.log_rows(decisions, changed, decision_log.data_check(AS_OF)).set_index("order_id")
    before = stored.set_index("order_id")["feature_hash"]
    assert again.loc["B", "feature_hash"] == before["B"] and again.loc["A", "feature_hash"] != before["A"]
    # Recording the interval again replaces its rows.
    decision_log.record(decisions, AS_OF, features=features)
    with create_engine(config.HOLDCAST_WAREHOUSE_URL.get()).connect() as conn:
        assert pd.read_sql("SELECT COUNT(*) AS n FROM decision_log", conn)["n"].iloc[0] == 2


def test_monitor_switch_turns_auto_release_off(holdcast_home, policy):
    from include import monitoring

    _write_reports("erp", [_report()])
    assert decision_log.fail_safe(AS_OF, policy) is None
    monitoring.set_control("auto_release", False, reason="drift", as_of="2025-06-30", changed_by="test")
    assert decision_log.fail_safe(AS_OF, policy).startswith("auto-release is switched off by the monitor")
