"""The main job end to end through real Airflow (`airflow dags test`), MLflow and SQLite.

Generates a small demo ERP, runs ingest -> features -> train -> score, and checks what a user would:
the model is registered with its aliases, every open order has exactly one status written back, and
running the same interval again changes nothing.
"""

from __future__ import annotations

import pandas as pd
import pytest
from airflow_cluster import lake_digest, read

from include import demo

pytestmark = pytest.mark.integration

AS_OF = "2025-06-30"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    home = tmp_path_factory.mktemp("main_job") / "holdcast"
    home.mkdir()
    env = demo.environment(home, "demo")
    env["HOLDCAST_TASK_RETRIES"] = "0"
    log = home / "test.log"
    demo._run([demo.airflow_executable(), "db", "migrate"], env, log)
    demo.generate_demo_erp(home, orders=3000, seed=11, as_of=AS_OF, env=env, log=log)
    demo.run_chain(AS_OF, env, log)
    return home, env, log


def test_model_registered_with_aliases(world):
    from mlflow import MlflowClient

    home, _, _ = world
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    model = client.get_registered_model("holdcast_hold_risk")
    assert {k: str(v) for k, v in model.aliases.items()} == {"champion": "1", "challenger": "1"}
    version = client.get_model_version_by_alias("holdcast_hold_risk", "champion")
    assert client.get_run(version.run_id).data.metrics["any_pr_auc"] > 0


def test_every_open_order_has_exactly_one_status(world):
    home, _, _ = world
    erp = f"sqlite:///{home / 'demo' / 'erp.db'}"
    open_orders = read(erp, "SELECT order_id FROM orders WHERE status = 'open'")
    statuses = read(erp, "SELECT * FROM holdcast_order_status")
    assert len(open_orders) > 0
    assert statuses["order_id"].is_unique
    assert set(statuses["order_id"]) == set(open_orders["order_id"])
    assert statuses["model_version"].eq("1").all()
    assert statuses["risk"].between(0, 1).all()
    at_risk = statuses[statuses["at_risk"].astype(bool)]
    assert at_risk["team"].notna().all() and at_risk["suggested_action"].notna().all()


def _state(home):
    """Everything a re-run must leave alone: registry, ERP statuses and audit, decisions, the lake."""
    erp = f"sqlite:///{home / 'demo' / 'erp.db'}"
    registry = f"sqlite:///{home / 'mlflow.db'}"
    frames = [
        read(registry, "SELECT name, version, run_id FROM model_versions ORDER BY version"),
        read(registry, "SELECT * FROM registered_model_aliases ORDER BY alias"),
        read(erp, "SELECT * FROM holdcast_order_status ORDER BY order_id"),
        read(erp, "SELECT * FROM holdcast_writeback_audit ORDER BY id"),
        read(f"sqlite:///{home / 'demo' / 'warehouse.db'}", "SELECT * FROM decisions ORDER BY order_id"),
    ]
    return frames, lake_digest(home / "demo" / "lake")


def test_same_interval_again_changes_nothing(world):
    """The whole chain again, training included: registry, ERP, decisions and lake stay as they were."""
    home, env, log = world
    frames_before, lake_before = _state(home)
    demo.run_chain(AS_OF, env, log)
    frames_after, lake_after = _state(home)
    for before, after in zip(frames_before, frames_after, strict=True):
        pd.testing.assert_frame_equal(before, after)
    assert lake_before == lake_after
