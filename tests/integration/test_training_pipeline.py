"""Training, registry hygiene, promotion by a person and monitoring, through the pipeline's own steps.

One dataset home for the module: a real MLflow store (SQLite), a SQLite warehouse and ERP, feature
snapshots with the real feature columns written where the features DAG writes them, and the true
hold probabilities in the ERP so the oracle is computed as on the demo. The tests run in file order and
build on each other, like the weeks of a deployment:

1. 2025-06-30: first training (version 1), a quiet monitoring run.
2. 2025-07-15: a training that dies between registering version 2 and setting its aliases; the retry.
3. 2025-07-31: automatic promotion off; version 3 waits, a person moves `champion`, scoring follows.
4. 2025-08-31: the population moved and a batch failed validation: alerts, auto-release off.
5. Realized performance per version once outcomes are known; the monitor DAG through real Airflow.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine

from include import demo

pytestmark = pytest.mark.integration

MODEL = "holdcast_hold_risk"
JUNE, MID_JULY, JULY, AUGUST = (
    pd.Timestamp(d, tz="UTC") for d in ("2025-06-30", "2025-07-15", "2025-07-31", "2025-08-31")
)
N_ORDERS = 2000


# --- the world ---------------------------------------------------------------------------------------


def _snapshot(as_of: pd.Timestamp, n: int, *, seed: int, utilisation_scale: float = 1.0, days: int = 300):
    """Features, labels, orders and true probabilities of ``n`` orders created ``days`` before ``as_of``.

    Credit holds follow utilisation and overdue invoices, payment holds the overdue invoices,
    incomplete-info holds the segment; compliance holds never happen (the model keeps a prior).
    """
    from features.build import CATEGORICAL_COLUMNS, FEATURE_COLUMNS
    from include.canonical import HOLD_REASONS

    rng = np.random.default_rng(seed)
    ids = pd.Index([f"SO{seed:03d}{i:06d}" for i in range(n)], name="order_id")
    seconds = np.sort(rng.integers(0, days * 86400, n))
    created = as_of - pd.to_timedelta(days * 86400 - seconds, unit="s")
    features = pd.DataFrame(index=ids)
    for column in FEATURE_COLUMNS:
        if column in CATEGORICAL_COLUMNS:
            features[column] = pd.array(rng.choice(["A", "B", "C"], n), dtype="string")
        else:
            features[column] = rng.normal(0.0, 1.0, n)
    features["segment"] = pd.array(rng.choice(["SMB", "MIDMARKET", "ENTERPRISE"], n), dtype="string")
    features["utilisation"] = rng.gamma(4.0, 0.22, n) * utilisation_scale
    features["overdue_count"] = rng.poisson(0.4, n).astype("float64")
    logits = {
        "credit": -3.2 + 2.8 * (features["utilisation"] - 1.0) + 0.9 * features["overdue_count"],
        "incomplete_info": -3.0 + 1.4 * (features["segment"] == "ENTERPRISE").astype(float),
        "compliance": np.full(n, -9.0),
        "payment": -3.3 + 0.6 * features["overdue_count"],
        "inventory": np.full(n, -3.5),
        "manual_review": np.full(n, -3.5),
    }
    true_p = pd.DataFrame(
        {r: 1.0 / (1.0 + np.exp(-np.asarray(logits[r], dtype="float64"))) for r in HOLD_REASONS}, index=ids
    )
    labels = pd.DataFrame({f"label_{r}": (rng.random(n) < true_p[r]).astype("int64") for r in HOLD_REASONS})
    labels.index = ids
    labels.insert(0, "label_any", labels.max(axis=1))
    is_open = created > as_of - pd.Timedelta(days=3)
    labels["complete"] = created + pd.Timedelta(days=14) <= as_of
    labels["trainable"] = labels["complete"] & ~is_open
    orders = pd.DataFrame(
        {
            "customer_id": [f"C{i % 97:03d}" for i in range(n)],
            "created_at": created,
            "status": np.where(is_open, "open", "closed"),
            "segment": features["segment"].astype(str).to_numpy(),
            "payment_method": rng.choice(["invoice", "card"], n),
        },
        index=ids,
    )
    truth = pd.DataFrame({"p_any": 1.0 - np.prod(1.0 - true_p.to_numpy(), axis=1)}, index=ids)
    for reason in HOLD_REASONS:
        truth[f"p_{reason}"] = true_p[reason]
    return features, labels, orders, truth


def _write_snapshot(home, as_of: pd.Timestamp, *, seed: int, utilisation_scale: float = 1.0) -> pd.DataFrame:
    """Write a snapshot where the features DAG writes it, and its truth into the demo ERP."""
    from include import warehouse

    features, labels, orders, truth = _snapshot(
        as_of, N_ORDERS, seed=seed, utilisation_scale=utilisation_scale
    )
    out = warehouse.features_dir(as_of.to_pydatetime())
    warehouse.write_parquet(features, out / "features.parquet")
    warehouse.write_parquet(labels, out / "labels.parquet")
    warehouse.write_parquet(orders, out / "orders.parquet")
    erp = create_engine(f"sqlite:///{home / 'demo' / 'erp.db'}")
    truth.reset_index().to_sql("truth_order_hold_probabilities", erp, if_exists="append", index=False)
    return labels


def _write_validation_report(as_of: pd.Timestamp, *, failed_table: str | None = None) -> None:
    """A report folder like ingest writes: one source, two tables, one of them failed if asked."""
    from include import warehouse

    reports = [
        {
            "table": table,
            "source": "erp",
            "rows_in": 100,
            "rows_good": 98,
            "rows_quarantined": 2,
            "quarantined_share": 0.02,
            "table_failures": ["expect_table_row_count_to_be_between(min_value=1)"]
            if table == failed_table
            else [],
        }
        for table in ("orders", "invoices")
    ]
    label = warehouse.as_of_label(as_of.to_pydatetime())
    path = warehouse.lake_path("reports", "validation", f"as_of={label}", "erp.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(reports))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import mlflow

    home = tmp_path_factory.mktemp("training_pipeline") / "holdcast"
    (home / "demo").mkdir(parents=True)
    env = demo.environment(home, "demo")
    saved = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            if key.startswith(("HOLDCAST_", "AIRFLOW_CONN_")):
                mp.setenv(key, value)
        for key in (
            "MLFLOW_TRACKING_URI",
            "HOLDCAST_WAREHOUSE_URL",
            "HOLDCAST_LAKE_DIR",
            "HOLDCAST_MODEL_NAME",
        ):
            mp.delenv(key, raising=False)
        mp.setenv("HOLDCAST_AUTO_PROMOTE", "true")
        yield {"home": home, "env": env, "mp": mp}
    # The pipeline points MLflow at this store process-wide; give later tests the one they had.
    mlflow.set_tracking_uri(saved[0])
    mlflow.set_registry_uri(saved[1])


def _client(world):
    from mlflow import MlflowClient

    uri = f"sqlite:///{world['home'] / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _aliases(world) -> dict[str, str]:
    return {k: str(v) for k, v in _client(world).get_registered_model(MODEL).aliases.items()}


def _warehouse(world, query: str) -> pd.DataFrame:
    with create_engine(f"sqlite:///{world['home'] / 'demo' / 'warehouse.db'}").connect() as conn:
        return pd.read_sql(query, conn)


@pytest.fixture(scope="module")
def first(world):
    from include import pipeline

    _write_snapshot(world["home"], JUNE, seed=1)
    _write_validation_report(JUNE)
    return pipeline.train_model(JUNE.to_pydatetime())


# --- 1. the first training and a quiet day -----------------------------------------------------------


def test_version_carries_window_hash_features_validation_policy_and_metrics(world, first):
    from features.build import FEATURE_COLUMNS

    client = _client(world)
    version = client.get_model_version(MODEL, first["model_version"])
    tags = version.tags
    assert (first["model_version"], first["gate_decision"]) == ("1", "first_champion")
    assert {"window.train_start", "window.valid_start", "window.valid_end"} <= set(tags)
    assert len(tags["data_hash"]) == 64
    assert tags["feature_list"].split(",") == FEATURE_COLUMNS
    assert (tags["validation.status"], tags["validation.as_of"], tags["validation.rows_in"]) == (
        "passed",
        "2025-06-30",
        "200",
    )
    assert tags["holdcast.policy_version"]
    assert tags["gate.decision"] == "first_champion"
    for key in ("metric.any_roc_auc", "metric.any_brier", "metric.any_precision", "metric.credit_pr_auc"):
        assert 0.0 <= float(tags[key]) <= 1.0, key

    metrics = client.get_run(version.run_id).data.metrics
    # On generated data the oracle is the generator's truth; the ratio is logged and tagged.
    assert metrics["any_pr_auc_oracle_ratio"] == pytest.approx(
        metrics["any_pr_auc"] / metrics["oracle_pr_auc"]
    )
    assert float(tags["metric.any_pr_auc_oracle_ratio"]) == pytest.approx(
        metrics["any_pr_auc_oracle_ratio"], abs=1e-6
    )
    # 2,000 orders and 70 noise features: far from the demo's target, but clearly learning.
    assert 0.5 < first["any_pr_auc_oracle_ratio"] < 1.2
    assert "oracle_credit_pr_auc" in metrics
    assert "baseline_credit_rule_credit_recall" in metrics and "baseline_credit_rule_precision" in metrics
    assert metrics["any_pr_auc"] > metrics["baseline_credit_rule_pr_auc"]
    artifacts = {a.path for a in client.list_artifacts(version.run_id, "monitoring")}
    assert artifacts == {"monitoring/reference_profile.json"}


def test_quiet_day_alerts_nothing_and_records_every_feature(world, first):
    from features.build import FEATURE_COLUMNS
    from include import monitoring, pipeline

    summary = pipeline.monitor_models(JUNE.to_pydatetime())
    assert (summary["breaches"], summary["retrain"], summary["auto_release"]) == ([], False, True)
    assert (summary["model_version"], summary["validation"]) == ("1", "passed")
    rows = _warehouse(world, "SELECT * FROM holdcast_monitoring WHERE as_of = '2025-06-30'")
    assert set(rows.loc[rows["kind"] == "feature_psi", "name"]) == set(FEATURE_COLUMNS)
    assert not rows["breached"].astype(bool).any()
    assert monitoring.auto_release_allowed()
    assert (world["home"] / "demo" / "outbox" / "monitoring" / "as_of=2025-06-30.jsonl").read_text() == ""

    client = _client(world)
    experiment = client.get_experiment_by_name("holdcast-demo-monitoring")
    (run,) = client.search_runs([experiment.experiment_id], "tags.`holdcast.monitor_as_of` = '2025-06-30'")
    assert run.data.metrics["psi.score.p_any"] == pytest.approx(summary["score_psi_any"])
    assert run.data.tags["holdcast.champion_version"] == "1"


# --- 2. a crash between registering and the aliases ----------------------------------------------------


def test_retry_after_a_crash_between_registering_and_aliases_sets_challenger(world, first):
    from include import pipeline
    from training import registry

    _write_snapshot(world["home"], MID_JULY, seed=2)

    def killed(*args, **kwargs):
        raise RuntimeError("worker killed")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "complete_registration", killed)
        with pytest.raises(RuntimeError, match="worker killed"):
            pipeline.train_model(MID_JULY.to_pydatetime())
    orphan = _client(world).get_model_version(MODEL, "2")
    assert "data_hash" in orphan.tags and "gate.decision" not in orphan.tags
    assert _aliases(world) == {"champion": "1", "challenger": "1"}

    retry = pipeline.train_model(MID_JULY.to_pydatetime())
    assert (retry["model_version"], retry["reused"]) == ("2", True)
    aliases = _aliases(world)
    assert aliases["challenger"] == "2"
    decision = _client(world).get_model_version(MODEL, "2").tags["gate.decision"]
    assert decision == retry["gate_decision"] and decision in {"promoted", "kept_champion"}
    assert (aliases["champion"] == "2") == (decision == "promoted")
    # A third run of the same interval finds the version complete and changes nothing.
    again = pipeline.train_model(MID_JULY.to_pydatetime())
    assert (again["model_version"], _aliases(world)) == ("2", aliases)
    assert len(_client(world).search_model_versions(f"name = '{MODEL}'")) == 2


# --- 3. promotion by a person -----------------------------------------------------------------------


def test_with_auto_promotion_off_a_person_moves_the_alias_and_scoring_follows(world, first):
    from include import pipeline, warehouse

    _write_snapshot(world["home"], JULY, seed=3)
    orders = pd.read_parquet(warehouse.features_dir(JULY.to_pydatetime()) / "orders.parquet")
    world["mp"].setenv("HOLDCAST_AUTO_PROMOTE", "false")
    world["mp"].setenv("HOLDCAST_PROMOTION_MARGIN", "-1")  # any challenger passes the gate
    try:
        trained = pipeline.train_model(JULY.to_pydatetime())
    finally:
        world["mp"].setenv("HOLDCAST_AUTO_PROMOTE", "true")
        world["mp"].delenv("HOLDCAST_PROMOTION_MARGIN")
    before = _aliases(world)
    assert (trained["model_version"], trained["is_champion"]) == ("3", False)
    assert trained["gate_decision"] == "passed_auto_promotion_off"
    assert before["challenger"] == "3" and before["champion"] in {"1", "2"}

    scored = pipeline.score_open_orders(JULY.to_pydatetime(), dry_run=True)
    assert scored["model_version"] == before["champion"]

    _client(world).set_registered_model_alias(MODEL, "champion", "3")  # what the MLflow UI does
    scored = pipeline.score_open_orders(JULY.to_pydatetime(), dry_run=True)
    assert scored["model_version"] == "3"
    decisions = _warehouse(world, "SELECT order_id, model_version FROM decisions WHERE as_of = '2025-07-31'")
    assert set(decisions["model_version"]) == {"3"}
    assert len(decisions) == int((orders["status"] == "open").sum()) > 0


# --- 4. drift and a failed validation -----------------------------------------------------------------


def test_drift_and_failed_validation_switch_auto_release_off_and_ask_for_retraining(world, first):
    from include import monitoring, pipeline

    _write_snapshot(world["home"], AUGUST, seed=4, utilisation_scale=1.8)
    _write_validation_report(AUGUST, failed_table="invoices")
    summary = pipeline.monitor_models(AUGUST.to_pydatetime())
    found = {(b["kind"], b["name"]) for b in summary["breaches"]}
    assert {("feature_psi", "utilisation"), ("score_psi", "p_any"), ("validation", "erp/invoices")} <= found
    # Features that did not move do not alert.
    assert not {name for kind, name in found if kind == "feature_psi"} - {"utilisation"}
    assert (summary["retrain"], summary["auto_release"], summary["model_version"]) == (True, False, "3")
    assert monitoring.auto_release_allowed() is False

    alerts_path = world["home"] / "demo" / "outbox" / "monitoring" / "as_of=2025-08-31.jsonl"
    alerts = [json.loads(line) for line in alerts_path.read_text().splitlines()]
    assert {(a["kind"], a["name"]) for a in alerts} == found
    rows = _warehouse(
        world, "SELECT * FROM holdcast_monitoring WHERE as_of = '2025-08-31' ORDER BY kind, name"
    )
    assert set(rows.loc[rows["breached"].astype(bool), "name"]) == {name for _, name in found}

    # The same interval again: the same rows and alerts, not twice as many.
    pipeline.monitor_models(AUGUST.to_pydatetime())
    again = _warehouse(
        world, "SELECT * FROM holdcast_monitoring WHERE as_of = '2025-08-31' ORDER BY kind, name"
    )
    pd.testing.assert_frame_equal(rows, again)
    assert len(alerts_path.read_text().splitlines()) == len(alerts)

    # Only a person switches it back on.
    assert monitoring.main(["auto-release", "on", "--reason", "drift reviewed", "--by", "ml-engineer"]) == 0
    assert monitoring.auto_release_allowed()


# --- 5. realized performance, and the DAG ---------------------------------------------------------


def test_realized_performance_is_measured_per_version_and_a_collapse_alerts(world, first):
    from include import monitoring, pipeline, warehouse

    labels = pd.read_parquet(warehouse.features_dir(JUNE.to_pydatetime()) / "labels.parquet")
    known = labels.index[labels["trainable"]]
    truth = pd.read_sql(
        "SELECT order_id, p_any FROM truth_order_hold_probabilities",
        create_engine(f"sqlite:///{world['home'] / 'demo' / 'erp.db'}"),
    ).set_index("order_id")
    good = pd.DataFrame(
        {"order_id": known, "risk": truth.loc[known, "p_any"].to_numpy(), "model_version": "1"}
    )
    # Version 2's decisions ranked orders backwards: its realized PR-AUC collapses below its validation one.
    bad = good.assign(risk=1.0 - good["risk"], model_version="2")
    decided = pd.concat([good, bad]).assign(as_of="2025-06-01")
    warehouse.replace_rows("decisions", decided, where={"as_of": "2025-06-01"})
    try:
        summary = pipeline.monitor_models(JUNE.to_pydatetime())
    finally:
        warehouse.replace_rows("decisions", decided.iloc[:0], where={"as_of": "2025-06-01"})
        monitoring.set_control(
            monitoring.AUTO_RELEASE, True, reason="test over", as_of="2025-06-30", changed_by="test"
        )
    assert summary["realized_versions"] == ["1", "2"]
    assert [(b["kind"], b["name"]) for b in summary["breaches"]] == [("realized_pr_auc", "any")]
    rows = _warehouse(
        world,
        "SELECT * FROM holdcast_monitoring "
        "WHERE as_of = '2025-06-30' AND kind = 'realized' AND name = 'pr_auc'",
    ).set_index("model_version")
    assert rows.loc["1", "value"] > 2 * rows.loc["2", "value"]
    assert (bool(rows.loc["1", "breached"]), bool(rows.loc["2", "breached"])) == (False, True)
    assert rows.loc["1", "n"] == len(known)


# Both runs in one interpreter with dag.test(): each `airflow dags test` would pay the imports again.
_DAG_TEST = """
import sys
from datetime import datetime, timezone
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1]).dags["holdcast_monitor"]
for day in sys.argv[2:]:
    run = dag.test(logical_date=datetime.fromisoformat(day).replace(tzinfo=timezone.utc))
    print(day, run.state)
"""


def test_monitor_dag_emits_the_retrain_request_only_on_a_breach(world, first):
    env, home = world["env"], world["home"]
    log = home / "airflow.log"
    demo._run([demo.airflow_executable(), "db", "migrate"], env, log)
    dags = env["AIRFLOW__CORE__DAGS_FOLDER"]
    run = subprocess.run(
        [sys.executable, "-c", _DAG_TEST, dags, "2025-08-31", "2025-06-30"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]

    with sqlite3.connect(home / "airflow" / "airflow.db") as conn:
        states = dict(
            conn.execute(
                "SELECT r.logical_date || ':' || t.task_id, t.state FROM task_instance t "
                "JOIN dag_run r ON r.run_id = t.run_id AND r.dag_id = t.dag_id "
                "WHERE t.dag_id = 'holdcast_monitor'"
            ).fetchall()
        )
        events = conn.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE a.uri = 'holdcast://models/retrain-request'"
        ).fetchall()
    by_day = {
        key.split(" ")[0].split("T")[0] + ":" + key.rsplit(":", 1)[1]: state for key, state in states.items()
    }
    assert by_day == {
        "2025-08-31:monitor": "success",
        "2025-08-31:request_retraining": "success",
        "2025-06-30:monitor": "success",
        "2025-06-30:request_retraining": "skipped",
    }
    assert len(events) == 1
    extra = json.loads(events[0][0])
    assert extra["as_of"] == "2025-08-31" and "feature_psi" in extra["because"]
