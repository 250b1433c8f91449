"""Ingestion through real Airflow (`airflow dags test holdcast_ingest`): re-runs and late-arriving rows."""

from __future__ import annotations

import pandas as pd
import pytest
from airflow_cluster import lake_digest, read
from sqlalchemy import create_engine, text

from include import demo

pytestmark = pytest.mark.integration

DAY = "2025-06-29"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    home = tmp_path_factory.mktemp("ingest_airflow") / "holdcast"
    home.mkdir()
    env = demo.environment(home, "demo")
    env["HOLDCAST_TASK_RETRIES"] = "0"
    log = home / "test.log"
    demo._run([demo.airflow_executable(), "db", "migrate"], env, log)
    demo.generate_demo_erp(home, orders=800, seed=5, as_of="2025-06-30", env=env, log=log)
    return home, env, log


def _ingest(world, day: str = DAY) -> None:
    home, env, log = world
    demo._run([demo.airflow_executable(), "dags", "test", "holdcast_ingest", day], env, log)


def _state(home, day: str = DAY):
    warehouse = f"sqlite:///{home / 'demo' / 'warehouse.db'}"
    quarantine = read(
        warehouse, f"SELECT * FROM quarantine WHERE batch = '{day}' ORDER BY source, table_name, row_number"
    )
    return lake_digest(home / "demo" / "lake" / "canonical"), quarantine


def test_rerunning_an_interval_leaves_the_same_state(world):
    home = world[0]
    _ingest(world)
    first = _state(home)
    _ingest(world)
    second = _state(home)
    assert first[0] == second[0]
    pd.testing.assert_frame_equal(first[1], second[1])
    assert len(first[1]) > 0  # the demo ERP's planted faults are there, each once


def test_a_late_arriving_row_is_picked_up_when_its_interval_is_rerun(world):
    home = world[0]
    _ingest(world)
    orders_path = home / "demo" / "lake" / "canonical" / "orders" / f"as_of={DAY}" / "erp.parquet"
    before = pd.read_parquet(orders_path)
    erp = create_engine(f"sqlite:///{home / 'demo' / 'erp.db'}")
    template = read(str(erp.url), "SELECT * FROM orders ORDER BY created_at DESC LIMIT 1")
    late = template.assign(order_id="LATE-0001", created_at="2025-06-28T12:00:00+00:00")
    with erp.begin() as conn:
        late.to_sql("orders", conn, if_exists="append", index=False)
    try:
        _ingest(world)
        after = pd.read_parquet(orders_path)
        assert set(after["order_id"]) - set(before["order_id"]) == {"LATE-0001"}
        assert len(after) == len(before) + 1
    finally:
        with erp.begin() as conn:
            conn.execute(text("DELETE FROM orders WHERE order_id = 'LATE-0001'"))
        erp.dispose()
