"""The same DAG chain on the DataCo public sample, through real Airflow: real input end to end."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import create_engine

from include import demo

pytestmark = pytest.mark.integration

AS_OF = demo.DEFAULT_AS_OF["dataco"]


def test_dataco_runs_end_to_end_with_its_baseline(tmp_path):
    from mlflow import MlflowClient

    home = tmp_path / "holdcast"
    home.mkdir()
    env = demo.environment(home, "dataco")
    env["HOLDCAST_TASK_RETRIES"] = "0"
    log = home / "test.log"
    demo._run([demo.airflow_executable(), "db", "migrate"], env, log)
    demo.run_chain(AS_OF, env, log)

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("holdcast_hold_risk_dataco", "champion")
    metrics = client.get_run(champion.run_id).data.metrics
    for name in ("any_pr_auc", "any_roc_auc", "baseline_segment_payment_pr_auc"):
        assert 0 < metrics[name] <= 1, name

    with create_engine(f"sqlite:///{home / 'dataco' / 'warehouse.db'}").connect() as conn:
        open_orders = pd.read_sql("SELECT order_id FROM orders WHERE status = 'open'", conn)
    with create_engine(f"sqlite:///{home / 'dataco' / 'erp.db'}").connect() as conn:
        statuses = pd.read_sql("SELECT order_id FROM holdcast_order_status", conn)
    assert len(open_orders) > 0
    assert sorted(statuses["order_id"]) == sorted(open_orders["order_id"])
