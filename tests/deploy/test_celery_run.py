"""The main job on Airflow's CeleryExecutor: real processes, two workers, PostgreSQL and Redis.

What production runs in docker-compose, started here as plain processes on 127.0.0.1: the API
server, the scheduler, the DAG processor and two Celery workers with their own names, Airflow
metadata and the warehouse in fresh PostgreSQL databases, Redis as the broker. The scheduler runs
the chain: the test triggers ``holdcast_ingest`` for the interval, the ``canonical tables`` asset
starts ``holdcast_features``; once it is done the test triggers ``holdcast_train`` (weekly, so a
first deployment trains on demand) and then features again, whose asset event starts
``holdcast_score``. Scoring waits until a champion exists, as in the demo's order.

The test then checks what a user relies on: every task instance succeeded, tasks ran on both
workers, and the decisions, ERP statuses and model equal those of the embedded run
(``airflow dags test``, SQLite) on a copy of the same generated ERP.

Every process is started in its own session and stopped by its process group id, and the
databases are dropped, whether the test passes or not.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
from airflow_cluster import Cluster, free_port, healthy, read, serialized, wait_for, wait_for_runs
from sqlalchemy import create_engine, text

from include import demo

pytestmark = pytest.mark.celery

AS_OF = "2025-06-30"
LOGICAL_DATE = f"{AS_OF}T00:00:00+00:00"
ORDERS = 2000
SEED = 11
POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"
REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 7
WORKERS = ("worker-a", "worker-b")
MAIN_CHAIN = ("holdcast_ingest", "holdcast_features", "holdcast_train", "holdcast_score")
SITE_DIR = Path(__file__).parent / "celery_site"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One generated demo ERP, copied into the homes of the embedded and the distributed run."""
    root = tmp_path_factory.mktemp("celery_run")
    embedded = root / "embedded"
    embedded.mkdir()
    env = demo.environment(embedded, "demo")
    log = root / "generate.log"
    demo.generate_demo_erp(embedded, orders=ORDERS, seed=SEED, as_of=AS_OF, env=env, log=log)
    distributed = root / "distributed"
    shutil.copytree(embedded / "demo", distributed / "demo")
    return root, embedded, distributed


@pytest.fixture(scope="module")
def embedded_run(world):
    """The reference: the same chain as ``make demo`` runs it, one ``airflow dags test`` after another."""
    root, home, _ = world
    env = demo.environment(home, "demo")
    env["HOLDCAST_TASK_RETRIES"] = "0"
    log = root / "embedded.log"
    started = time.monotonic()
    demo._run([demo.airflow_executable(), "db", "migrate"], env, log)
    demo.run_chain(AS_OF, env, log)
    print(f"embedded chain: {time.monotonic() - started:.0f} s")
    return home


@pytest.fixture(scope="module")
def databases():
    """Fresh PostgreSQL databases for Airflow metadata and the warehouse, dropped afterwards."""
    admin = create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    stem = f"hc_celery_{uuid.uuid4().hex[:8]}"
    names = {"metadata": stem, "warehouse": f"{stem}_wh"}
    try:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield {role: f"{POSTGRES}/{name}" for role, name in names.items()}
    finally:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def broker():
    """A Redis database as the Celery broker, with a queue of this run's own."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    was_empty = client.dbsize() == 0
    queue = f"holdcast-test-{uuid.uuid4().hex[:8]}"
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}", queue
    finally:
        if was_empty:
            client.flushdb()
        else:
            for key in client.scan_iter(f"*{queue}*"):
                client.delete(key)
        client.close()


@pytest.fixture(scope="module")
def distributed_run(world, databases, broker):
    """The chain through the scheduler on two Celery workers; yields the home and the metadata URL."""
    root, _, home = world
    broker_url, queue = broker
    api_port = free_port()
    airflow_home = home / "airflow"
    airflow_home.mkdir(parents=True)
    env = demo.environment(home, "demo")
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": databases["metadata"],
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{databases['metadata']}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            # Generated per run: the API server signs task tokens with it and the workers present them.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "airflow_local_settings.worker_hostname",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(SITE_DIR), os.environ.get("PYTHONPATH")])),
            "HOLDCAST_WAREHOUSE_URL": databases["warehouse"],
            "HOLDCAST_TASK_RETRIES": "0",
        }
    )
    cluster = Cluster(env, root / "distributed-logs")
    cluster.log_dir.mkdir()
    timings: dict[str, float] = {}
    started = time.monotonic()
    try:
        cluster.airflow("db", "migrate")
        timings["migrate"] = time.monotonic() - started
        cluster.start("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(api_port), "-w", "1"])
        cluster.start("scheduler", ["scheduler", "--skip-serve-logs"])
        cluster.start("dag-processor", ["dag-processor"])
        for name in WORKERS:
            cluster.start(
                name,
                ["celery", "worker", "-H", f"{name}@%h", "-q", queue, "--without-mingle", "--without-gossip"],
                HOLDCAST_TEST_WORKER=name,
                AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            )
        meta = databases["metadata"]
        wait_for("the API server", lambda: healthy(api_port), cluster)
        for name in WORKERS:
            wait_for(f"Celery {name}", lambda n=name: " ready." in cluster.tail(n, 200), cluster)
        wait_for("the DAGs to be parsed", lambda: serialized(meta) >= set(demo.DAG_CHAIN), cluster)
        timings["cluster up"] = time.monotonic() - started

        first = "^holdcast_(ingest|features|train)$"
        cluster.airflow("dags", "unpause", "--treat-dag-id-as-regex", "-y", first)
        cluster.airflow("dags", "trigger", "holdcast_ingest", "-l", LOGICAL_DATE)
        wait_for_runs(cluster, meta, "holdcast_features", 1)
        timings["ingest + features"] = time.monotonic() - started
        cluster.airflow("dags", "trigger", "holdcast_train", "-l", LOGICAL_DATE)
        wait_for_runs(cluster, meta, "holdcast_train", 1)
        timings["train"] = time.monotonic() - started
        cluster.airflow("dags", "unpause", "holdcast_score")
        cluster.airflow("dags", "trigger", "holdcast_features", "-l", LOGICAL_DATE)
        wait_for_runs(cluster, meta, "holdcast_score", 1)
        timings["features + score"] = time.monotonic() - started
        print("distributed run, s since start: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
        yield {"home": home, "metadata": meta, "warehouse": databases["warehouse"]}
    finally:
        cluster.stop()


def test_tasks_ran_on_both_workers(distributed_run):
    meta = distributed_run["metadata"]
    tis = read(meta, "SELECT dag_id, task_id, map_index, state, hostname FROM task_instance")
    # The run unpauses the main chain only; notification and credit-limit DAGs stay paused.
    assert set(tis["dag_id"]) == set(MAIN_CHAIN)
    assert tis["state"].eq("success").all(), tis[tis["state"] != "success"]
    assert set(tis["hostname"]) == set(WORKERS), tis.groupby("hostname").size()


def test_assets_started_features_and_scoring(distributed_run):
    meta = distributed_run["metadata"]
    runs = read(meta, "SELECT dag_id, run_type, state FROM dag_run ORDER BY id")
    assert runs["state"].eq("success").all(), runs
    kinds = runs.groupby("dag_id")["run_type"].apply(list).to_dict()
    assert kinds == {
        "holdcast_ingest": ["manual"],
        "holdcast_features": ["asset_triggered", "manual"],
        "holdcast_train": ["manual"],
        "holdcast_score": ["asset_triggered"],
    }


def _decisions(url: str) -> pd.DataFrame:
    frame = read(url, "SELECT * FROM decisions ORDER BY order_id")
    # SQLite hands booleans back as 0/1, PostgreSQL as booleans: compare the values.
    return frame.astype({"at_risk": bool, "auto_release": bool})


def test_results_equal_the_embedded_run(embedded_run, distributed_run):
    home, embedded = distributed_run["home"], embedded_run
    reference = _decisions(f"sqlite:///{embedded / 'demo' / 'warehouse.db'}")
    got = _decisions(distributed_run["warehouse"])
    assert len(reference) > 0 and reference["at_risk"].any()
    pd.testing.assert_frame_equal(got, reference)

    def erp(root: Path, query: str) -> pd.DataFrame:
        return read(f"sqlite:///{root / 'demo' / 'erp.db'}", query)

    status = "SELECT * FROM holdcast_order_status ORDER BY order_id"
    pd.testing.assert_frame_equal(erp(home, status), erp(embedded, status))
    audit = "SELECT order_id, decision_hash, decided_as_of, change FROM holdcast_writeback_audit ORDER BY id"
    pd.testing.assert_frame_equal(erp(home, audit), erp(embedded, audit))

    from mlflow import MlflowClient

    def champion_metrics(root: Path) -> dict:
        client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
        version = client.get_model_version_by_alias("holdcast_hold_risk", "champion")
        return {"version": version.version, **client.get_run(version.run_id).data.metrics}

    distributed_model = champion_metrics(home)
    assert distributed_model["any_pr_auc"] > 0
    assert distributed_model == champion_metrics(embedded)
