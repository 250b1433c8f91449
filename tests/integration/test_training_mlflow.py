"""Training against a real MLflow store: registration, aliases, the promotion gate and champion loading.

The store is a SQLite file and an artifact folder under pytest's tmp directory, shared by the module so
the schema migration runs once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from training.errors import NoChampionError
from training.registry import (
    CHAMPION_UNUSABLE,
    FIRST_CHAMPION,
    KEPT_CHAMPION,
    PROMOTED,
    get_or_create_experiment,
    log_and_register,
)
from training.score import connect, load_champion, score
from training.synthetic import make_orders
from training.train import train, valid_frame

pytestmark = pytest.mark.integration

MODEL = "holdcast_test_model"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    import mlflow

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    root = tmp_path_factory.mktemp("mlflow")
    yield {
        "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        "artifact_location": (root / "artifacts").as_uri(),
    }
    # connect() sets the URIs process-wide; give later tests the environment they started with.
    mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])
    mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"])
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def data():
    data = make_orders(3000, seed=5)
    # Missing categories in the first validation rows end up in the input example: it must still log.
    data.features.loc[data.features.index[2400:2403], "country"] = pd.NA
    return data


@pytest.fixture(scope="module")
def strong(data):
    return train(
        data.features, data.labels, data.created_at, categorical=data.categorical, num_boost_round=150
    )


@pytest.fixture(scope="module")
def weak(data):
    # Labels shuffled across orders: the same features and windows, but nothing to learn.
    shuffled = data.labels.sample(frac=1.0, random_state=3).set_axis(data.labels.index)
    return train(data.features, shuffled, data.created_at, categorical=data.categorical, num_boost_round=30)


def _register(result, data, store, name=MODEL, features=None, **kwargs):
    features = data.features if features is None else features
    return log_and_register(
        result,
        model_name=name,
        tracking_uri=store["tracking_uri"],
        experiment_name="holdcast-test",
        run_params={"dataset": "synthetic", "as_of": "2025-01-01"},
        extra_metrics={"oracle_any_pr_auc": 0.5},
        tags={"trigger": "test"},
        valid_features=valid_frame(features, result),
        valid_labels=valid_frame(data.labels, result),
        artifact_location=store["artifact_location"],
        **kwargs,
    )


@pytest.fixture(scope="module")
def history(store, data, strong, weak):
    """Four registrations of one model: weak, strong, weak again, strong with a margin it cannot meet."""
    # The third one also gets a column that is not a feature: it must not make the champion look unusable.
    with_customer = data.features.assign(customer_id="C001")
    return [
        _register(weak, data, store),
        _register(strong, data, store),
        _register(weak, data, store, features=with_customer),
        _register(strong, data, store, margin=0.05),
    ]


def test_first_version_becomes_champion_unopposed(history):
    first = history[0]
    assert (first.version, first.is_champion) == ("1", True)
    assert first.comparison.decision == FIRST_CHAMPION
    assert first.comparison.champion_version is None


def test_better_challenger_is_promoted_and_worse_one_is_not(history):
    _, better, worse, tie_with_margin = history
    assert (better.version, better.is_champion, better.comparison.decision) == ("2", True, PROMOTED)
    assert better.comparison.champion_version == "1"
    assert better.comparison.challenger_pr_auc > better.comparison.champion_pr_auc

    assert (worse.version, worse.is_champion, worse.comparison.decision) == ("3", False, KEPT_CHAMPION)
    assert worse.comparison.champion_version == "2"
    assert worse.comparison.challenger_pr_auc < worse.comparison.champion_pr_auc

    # The same strong model again: equal PR-AUC, but a margin of 0.05 is demanded.
    assert tie_with_margin.comparison.decision == KEPT_CHAMPION
    assert tie_with_margin.comparison.challenger_pr_auc == pytest.approx(
        tie_with_margin.comparison.champion_pr_auc
    )


def test_aliases_point_at_champion_and_latest_challenger(history, store):
    client = connect(store["tracking_uri"])
    assert client.get_registered_model(MODEL).aliases == {"champion": 2, "challenger": 4}
    # Stages are deprecated; nothing may use them.
    assert {v.current_stage for v in client.search_model_versions(f"name='{MODEL}'")} <= {"None", None}


def test_run_holds_params_metrics_plots_and_gate(history, store, strong):
    client = connect(store["tracking_uri"])
    promoted = history[1]
    run = client.get_run(promoted.run_id)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["data_hash"] == strong.data_hash
    assert params["window.valid_start"] == strong.split.boundaries()["valid_start"]
    assert params["dataset"] == "synthetic"
    assert params["feature_list"].split(",") == strong.model.feature_columns
    assert metrics["any_pr_auc"] == pytest.approx(strong.metrics["any"]["pr_auc"])
    assert "credit_roc_auc" in metrics and "manual_review_brier" in metrics
    assert metrics["oracle_any_pr_auc"] == 0.5
    assert metrics["gate_delta_any_pr_auc"] > 0
    assert tags["gate.decision"] == PROMOTED and tags["trigger"] == "test"
    artifacts = {a.path for a in client.list_artifacts(promoted.run_id)}
    assert {"features.json", "targets.json", "plots"} <= artifacts
    assert {a.path for a in client.list_artifacts(promoted.run_id, "plots")} == {
        "plots/calibration.png",
        "plots/pr_curve.png",
    }
    version = client.get_model_version(MODEL, promoted.version)
    assert version.tags["data_hash"] == strong.data_hash
    assert version.tags["gate.decision"] == PROMOTED
    assert version.run_id == promoted.run_id


def test_champion_from_the_registry_scores_like_the_model_in_memory(history, store, data, strong):
    import mlflow.pyfunc

    model, version = load_champion(MODEL, store["tracking_uri"])
    assert version == "2"
    features = valid_frame(data.features, strong)
    loaded = score(model, features)
    expected = strong.model.predict_frame(features)
    np.testing.assert_allclose(
        loaded.drop(columns="top_factors"), expected.drop(columns="top_factors"), rtol=1e-12
    )
    assert loaded["top_factors"].tolist() == expected["top_factors"].tolist()

    by_alias = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion").predict(features.reset_index(drop=True))
    np.testing.assert_allclose(by_alias["p_any"].to_numpy(), expected["p_any"].to_numpy(), rtol=1e-12)


def test_champion_loads_in_a_fresh_process(history, store, data, strong, tmp_path):
    features = valid_frame(data.features, strong).head(25)
    features.to_parquet(tmp_path / "features.parquet")
    code = (
        "import sys, mlflow.pyfunc, pandas as pd\n"
        "mlflow.set_tracking_uri(sys.argv[1])\n"
        "frame = pd.read_parquet(sys.argv[2]).reset_index(drop=True)\n"
        f"out = mlflow.pyfunc.load_model('models:/{MODEL}@champion').predict(frame)\n"
        "print(out['p_any'].to_json(orient='values', double_precision=15))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, store["tracking_uri"], str(tmp_path / "features.parquet")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    p_any = json.loads(run.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(p_any, strong.model.predict_frame(features)["p_any"].to_numpy(), rtol=1e-12)


def test_missing_champion_raises_with_the_fix_in_the_message(history, store, data, weak):
    with pytest.raises(
        NoChampionError, match="no model version carries alias 'champion' for 'never_trained'"
    ):
        load_champion("never_trained", store["tracking_uri"])

    lonely = _register(weak, data, store, name="holdcast_lonely")
    connect(store["tracking_uri"]).delete_registered_model_alias("holdcast_lonely", "champion")
    with pytest.raises(
        NoChampionError, match=r"Models -> holdcast_lonely -> version -> Add alias `champion`"
    ):
        load_champion("holdcast_lonely", store["tracking_uri"])
    assert lonely.is_champion


def test_champion_that_cannot_score_new_features_is_replaced_only_when_allowed(store, data):
    old_features = data.features.drop(columns=["noise"])
    old = train(old_features, data.labels, data.created_at, categorical=data.categorical, num_boost_round=30)
    new = train(data.features, data.labels, data.created_at, categorical=data.categorical, num_boost_round=30)
    name = "holdcast_schema_change"

    assert _register(old, data, store, name=name, features=old_features).comparison.decision == FIRST_CHAMPION
    kept = _register(new, data, store, name=name, promote_if_champion_unusable=False)
    assert (kept.is_champion, kept.comparison.decision) == (False, KEPT_CHAMPION)
    assert "cannot score the current features (FeatureMismatchError)" in kept.comparison.reason
    replaced = _register(new, data, store, name=name)
    assert (replaced.is_champion, replaced.comparison.decision) == (True, CHAMPION_UNUSABLE)
    assert replaced.comparison.champion_pr_auc is None


def test_experiment_is_created_once_and_restored_if_deleted(store):
    client = connect(store["tracking_uri"])
    first = get_or_create_experiment(client, "holdcast-idempotent", store["artifact_location"])
    assert get_or_create_experiment(client, "holdcast-idempotent") == first
    client.delete_experiment(first)
    assert get_or_create_experiment(client, "holdcast-idempotent") == first
    assert client.get_experiment(first).lifecycle_stage == "active"
