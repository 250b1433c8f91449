"""The monitor's pure parts: PSI, reference profiles, breaches, validation reports, realized performance,
controls and the alert file."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from include import monitoring


def test_psi_is_zero_for_equal_shares_and_matches_the_formula():
    assert monitoring.psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    expected = (0.5 - 0.25) * math.log(0.5 / 0.25) + (0.5 - 0.75) * math.log(0.5 / 0.75)
    assert monitoring.psi([0.25, 0.75], [0.5, 0.5]) == pytest.approx(expected)
    # An empty bin is floored, not infinite.
    assert math.isfinite(monitoring.psi([0.0, 1.0], [0.5, 0.5]))
    with pytest.raises(ValueError, match="reference has 2 bin"):
        monitoring.psi([0.5, 0.5], [1.0])


def test_numeric_profile_sees_a_shift_but_not_a_fresh_sample_of_the_same_population():
    rng = np.random.default_rng(0)
    reference = pd.Series(rng.normal(0, 1, 5000))
    entry = monitoring.profile_column(reference, categorical=False)
    assert entry["kind"] == "numeric" and len(entry["edges"]) == 9
    assert sum(entry["shares"]) + entry["missing"] == pytest.approx(1.0)
    assert monitoring.column_psi(entry, pd.Series(rng.normal(0, 1, 2000))) < 0.02
    assert monitoring.column_psi(entry, pd.Series(rng.normal(1.0, 1, 2000))) > 0.25


def test_missing_values_and_unseen_categories_count_as_drift():
    numbers = monitoring.profile_column(pd.Series([1.0, 2.0, 3.0, 4.0] * 50), categorical=False)
    half_missing = pd.Series([1.0, np.nan, 3.0, np.nan] * 50)
    assert monitoring.column_psi(numbers, half_missing) > 1.0

    categories = monitoring.profile_column(pd.Series(["DE", "FR"] * 100, dtype="string"), categorical=True)
    assert categories["categories"] == ["DE", "FR"] and categories["other"] == 0.0
    same = pd.Series(["FR", "DE"] * 30, dtype="string")
    assert monitoring.column_psi(categories, same) == pytest.approx(0.0)
    new_country = pd.Series(["DE", "FR", "IR", "IR"] * 30, dtype="string")
    assert monitoring.column_psi(categories, new_country) > 1.0


def test_drift_table_covers_features_and_scores_and_refuses_an_unknown_profile_format():
    rng = np.random.default_rng(1)
    features = pd.DataFrame({"utilisation": rng.gamma(4, 0.2, 1000), "country": ["DE", "FR"] * 500})
    scores = pd.DataFrame({"p_any": rng.random(1000), "top_factors": ["[]"] * 1000})
    profile = monitoring.reference_profile(
        features, scores, categorical=["country"], window={"train_start": "x"}
    )
    assert set(profile["scores"]) == {"p_any"}
    json.dumps(profile)  # an MLflow artifact: plain JSON
    table = monitoring.drift_table(profile, features.drop(columns="country"), scores)
    assert table.set_index("name")["kind"].to_dict() == {
        "utilisation": "feature_psi",
        "country": "feature_psi",
        "p_any": "score_psi",
    }
    assert math.isnan(table.set_index("name").loc["country", "value"])
    assert table.set_index("name").loc["utilisation", "value"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="retrain the model"):
        monitoring.drift_table({**profile, "format": 0}, features, scores)


def test_drift_breaches_skip_time_trending_features_and_small_samples():
    drift = pd.DataFrame(
        [
            ("feature_psi", "utilisation", 0.4, 500),
            ("feature_psi", "tenure_days", 3.0, 500),
            ("feature_psi", "order_amount", 0.1, 500),
            ("score_psi", "p_any", 0.3, 500),
            ("score_psi", "p_credit", float("nan"), 500),
        ],
        columns=["kind", "name", "value", "n"],
    )
    found = monitoring.drift_breaches(drift, threshold=0.25, model_version="4")
    assert [(b.kind, b.name) for b in found] == [("feature_psi", "utilisation"), ("score_psi", "p_any")]
    assert "PSI 0.400 > 0.25 over 500 recent orders against version 4" in found[0].message
    assert monitoring.drift_breaches(drift.assign(n=50), threshold=0.25, model_version="4") == []


def test_performance_breach_when_realized_pr_auc_falls_too_far_below_validation():
    realized = {
        "1": {"pr_auc": 0.50, "n": 400.0, "n_positive": 80.0},
        "2": {"pr_auc": 0.20, "n": 400.0, "n_positive": 80.0},
        "3": {"pr_auc": 0.05, "n": 30.0, "n_positive": 3.0},  # too few positives to judge
    }
    expected = {"1": 0.55, "2": 0.55, "3": 0.55}
    found = monitoring.performance_breaches(realized, expected, max_drop=0.25)
    assert [(b.model_version, b.threshold) for b in found] == [("2", pytest.approx(0.4125))]
    assert "realized any-hold PR-AUC 0.200 on 400 decided orders < 0.413" in found[0].message


def _report(holdcast_home, label: str, source: str, tables: list[dict]) -> None:
    folder = holdcast_home / "demo" / "lake" / "reports" / "validation" / f"as_of={label}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{source}.json").write_text(json.dumps(tables))


def test_validation_summary_reads_table_failures_and_the_quarantine_tolerance(holdcast_home):
    as_of = datetime(2025, 6, 30, tzinfo=UTC)
    assert monitoring.validation_summary(as_of)["status"] == "missing"
    ok = {
        "table": "orders",
        "rows_in": 100,
        "rows_quarantined": 1,
        "quarantined_share": 0.01,
        "table_failures": [],
    }
    _report(holdcast_home, "2025-06-30", "erp", [ok])
    _report(holdcast_home, "2025-06-30", "crm", [{**ok, "table": "interactions", "source": "crm"}])
    summary = monitoring.validation_summary(as_of)
    assert (summary["status"], summary["sources"], summary["rows_in"], summary["rows_quarantined"]) == (
        "passed",
        2,
        200,
        2,
    )
    assert monitoring.validation_summary(as_of, tolerance=0.005)["failed"] == [
        "crm/interactions",
        "erp/orders",
    ]
    broken = {**ok, "table": "invoices", "source": "erp", "table_failures": ["freshness"]}
    _report(holdcast_home, "2025-06-30", "erp", [ok, broken])
    summary = monitoring.validation_summary(as_of)
    assert (summary["status"], summary["failed"]) == ("failed", ["erp/invoices"])
    assert [b.name for b in monitoring.validation_breaches(summary)] == ["erp/invoices"]
    assert monitoring.latest_validation_as_of(datetime(2025, 7, 3, tzinfo=UTC)) == as_of
    assert monitoring.latest_validation_as_of(datetime(2025, 6, 29, tzinfo=UTC)) is None


def test_realized_performance_uses_known_outcomes_and_each_versions_latest_decision():
    labels = pd.DataFrame(
        {"label_any": [1, 0, 1, 0, 1], "trainable": [True, True, True, True, False]},
        index=pd.Index(["A", "B", "C", "D", "E"], name="order_id"),
    )
    decisions = pd.DataFrame(
        [
            ("A", 0.1, "1", "2025-06-01"),  # replaced by the later decision of the same version
            ("A", 0.9, "1", "2025-06-02"),
            ("B", 0.2, "1", "2025-06-01"),
            ("C", 0.8, "1", "2025-06-01"),
            ("D", 0.3, "1", "2025-06-01"),
            ("E", 0.9, "1", "2025-06-01"),  # outcome not known yet
            ("A", 0.1, "2", "2025-06-01"),
            ("B", 0.9, "2", "2025-06-01"),
        ],
        columns=["order_id", "risk", "model_version", "as_of"],
    )
    realized = monitoring.realized_performance(decisions, labels, threshold=0.5)
    assert set(realized) == {"1", "2"}
    assert (realized["1"]["n"], realized["1"]["pr_auc"], realized["1"]["recall"]) == (4.0, 1.0, 1.0)
    assert (realized["2"]["n"], realized["2"]["precision"]) == (2.0, 0.0)
    assert monitoring.realized_performance(decisions.iloc[:0], labels, threshold=0.5) == {}


def test_auto_release_is_on_until_switched_off_and_a_person_switches_it_back(holdcast_home, capsys):
    assert monitoring.auto_release_allowed()
    monitoring.set_control(
        "auto_release", False, reason="drift", as_of="2025-06-30", changed_by="holdcast_monitor"
    )
    assert not monitoring.auto_release_allowed()
    assert monitoring.read_control("something_else") is True
    with pytest.raises(SystemExit):
        monitoring.main(["auto-release", "on"])  # a reason is required
    assert monitoring.main(["auto-release", "on", "--reason", "reviewed", "--by", "ana"]) == 0
    assert monitoring.auto_release_allowed()
    assert monitoring.main(["auto-release", "status"]) == 0
    assert capsys.readouterr().out.strip().endswith("auto_release: on")


def test_alert_file_holds_one_line_per_breach_and_a_rerun_replaces_it(holdcast_home):
    breach = monitoring.Breach("score_psi", "p_any", 0.4, 0.25, "3", "score p_any drifted")
    path = monitoring.write_alerts("2025-06-30", [breach, breach])
    assert path == holdcast_home / "demo" / "outbox" / "monitoring" / "as_of=2025-06-30.jsonl"
    assert len(path.read_text().splitlines()) == 2
    monitoring.write_alerts("2025-06-30", [breach])
    (line,) = path.read_text().splitlines()
    assert json.loads(line) == {"as_of": "2025-06-30", **breach.to_dict()}
