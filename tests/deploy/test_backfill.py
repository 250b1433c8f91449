"""`airflow backfill create` of the ingest DAG, run by a real scheduler, against the daily runs it replaces.

The same generated ERP is ingested twice for three days: once day by day with ``airflow dags test``
(what the daily schedule does, one run per interval), once by a backfill over the same range that a
scheduler with the LocalExecutor runs (Airflow metadata in a fresh PostgreSQL database). The canonical
partitions and the quarantine of every day must be equal, and the backfill must not announce the
canonical tables: no asset event, so features are not rebuilt and orders not re-scored once per day.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import uuid

import pandas as pd
import pytest
from airflow_cluster import Cluster, free_port, healthy, read, serialized, wait_for
from sqlalchemy import create_engine, text

from include import demo

pytestmark = pytest.mark.integration

DAYS = ("2025-06-26", "2025-06-27", "2025-06-28")
POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"


def _partitions(home, day: str) -> dict[str, str]:
    """A digest of each canonical partition of one interval, by path."""
    root = home / "demo" / "lake" / "canonical"
    out = {}
    for path in sorted(root.glob(f"*/as_of={day}/*.parquet")):
        out[str(path.relative_to(root))] = hashlib.sha256(pd.read_parquet(path).to_csv().encode()).hexdigest()
    return out


def _quarantine(home) -> pd.DataFrame:
    return read(
        f"sqlite:///{home / 'demo' / 'warehouse.db'}",
        f"SELECT * FROM quarantine WHERE batch IN {DAYS} ORDER BY batch, source, table_name, row_number",
    )


@pytest.fixture(scope="module")
def homes(tmp_path_factory):
    root = tmp_path_factory.mktemp("backfill")
    daily, backfilled = root / "daily", root / "backfilled"
    daily.mkdir()
    env = demo.environment(daily, "demo")
    env["HOLDCAST_TASK_RETRIES"] = "0"
    log = root / "daily.log"
    demo.generate_demo_erp(daily, orders=600, seed=3, as_of="2025-06-30", env=env, log=log)
    shutil.copytree(daily / "demo", backfilled / "demo")
    demo._run([demo.airflow_executable(), "db", "migrate"], env, log)
    for day in DAYS:
        demo._run([demo.airflow_executable(), "dags", "test", "holdcast_ingest", day], env, log)
    return root, daily, backfilled


@pytest.fixture(scope="module")
def metadata_db():
    admin = create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    name = f"hc_backfill_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield f"{POSTGRES}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def backfill(homes, metadata_db):
    root, _, home = homes
    api_port = free_port()
    env = demo.environment(home, "demo")
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "HOLDCAST_TASK_RETRIES": "0",
        }
    )
    cluster = Cluster(env, root / "backfill-logs")
    cluster.log_dir.mkdir()
    try:
        cluster.airflow("db", "migrate")
        cluster.start("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(api_port), "-w", "1"])
        cluster.start("scheduler", ["scheduler", "--skip-serve-logs"])
        cluster.start("dag-processor", ["dag-processor"])
        wait_for("the API server", lambda: healthy(api_port), cluster)
        wait_for("the DAGs to be parsed", lambda: serialized(metadata_db) >= set(demo.DAG_CHAIN), cluster)
        cluster.airflow(
            "backfill", "create", "--dag-id", "holdcast_ingest", "--from-date", DAYS[0], "--to-date", DAYS[-1]
        )
        # The scheduler runs a paused DAG's backfill only once it is unpaused; unpausing also starts the
        # latest daily run, which the checks below tell apart by its run type.
        cluster.airflow("dags", "unpause", "holdcast_ingest")

        def finished() -> bool:
            runs = read(
                metadata_db,
                "SELECT state FROM dag_run WHERE dag_id = 'holdcast_ingest' AND run_type = 'backfill'",
            )
            failed = read(metadata_db, "SELECT task_id, run_id FROM task_instance WHERE state = 'failed'")
            assert failed.empty, f"task instances failed:\n{failed}"
            return len(runs) == len(DAYS) and runs["state"].eq("success").all()

        wait_for(f"{len(DAYS)} backfill runs of holdcast_ingest", finished, cluster, timeout=400)
        yield home, metadata_db
    finally:
        cluster.stop()


def test_backfill_gives_the_tables_the_daily_runs_gave(homes, backfill):
    _, daily, _ = homes
    home, _ = backfill
    for day in DAYS:
        expected = _partitions(daily, day)
        assert expected, f"the daily run wrote nothing for {day}"
        assert _partitions(home, day) == expected, day
    expected = _quarantine(daily)
    assert set(expected["batch"]) == set(DAYS)  # the demo ERP's planted faults, every day
    pd.testing.assert_frame_equal(_quarantine(home), expected)


def test_backfill_does_not_send_each_day_down_the_chain(backfill):
    _, meta = backfill
    backfill_runs = "SELECT run_id FROM dag_run WHERE dag_id = 'holdcast_ingest' AND run_type = 'backfill'"
    assert len(read(meta, backfill_runs)) == len(DAYS)
    announce = read(
        meta, f"SELECT state FROM task_instance WHERE task_id = 'announce' AND run_id IN ({backfill_runs})"
    )
    assert len(announce) == len(DAYS) and announce["state"].eq("skipped").all()
    events = read(meta, f"SELECT COUNT(*) AS n FROM asset_event WHERE source_run_id IN ({backfill_runs})")
    assert int(events["n"].iloc[0]) == 0
    features = read(meta, "SELECT COUNT(*) AS n FROM dag_run WHERE dag_id = 'holdcast_features'")
    assert int(features["n"].iloc[0]) == 0
