"""Every DAG file imports cleanly, parses fast, imports nothing heavy and follows the house policy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(DAGS_DIR.glob("*.py"))
HEAVY = ("pandas", "numpy", "mlflow", "lightgbm", "great_expectations", "sklearn", "sqlalchemy", "duckdb")

# Runs in a fresh interpreter so that modules other tests imported do not hide a heavy import.
# airflow.sdk is imported first: the DAG processor has it loaded already, so it is not the DAG's cost.
_PROBE = """
import importlib.util, sys, time
import airflow.sdk
before = set(sys.modules)
spec = importlib.util.spec_from_file_location("dag_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
start = time.perf_counter()
spec.loader.exec_module(module)
elapsed = time.perf_counter() - start
heavy = sorted({m.split('.')[0] for m in set(sys.modules) - before} & set(sys.argv[2].split(',')))
print(f"{elapsed:.4f} {','.join(heavy)}")
"""


def test_dag_files_exist():
    assert {p.stem for p in DAG_FILES} >= {
        "holdcast_ingest",
        "holdcast_features",
        "holdcast_train",
        "holdcast_score",
        "holdcast_monitor",
    }


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_parses_fast_without_heavy_imports(path):
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    elapsed, heavy = float(out[0]), out[1] if len(out) > 1 else ""
    assert heavy == "", f"{path.name} imports {heavy} at parse time"
    assert elapsed < 0.5, f"{path.name} took {elapsed:.2f} s to parse"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert len(dagbag.dags) == len(DAG_FILES)


def test_dag_policy(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert "holdcast" in dag.tags, dag_id
        assert dag.doc_md, f"{dag_id} has no doc_md"
        assert dag.max_active_runs == 1, dag_id
        for task in dag.tasks:
            assert task.owner == "holdcast", f"{dag_id}.{task.task_id}"


def test_assets_chain_the_dags(dagbag):
    from include.assets import CANONICAL_TABLES, ORDER_FEATURES

    produced = {dag_id: {o.uri for t in dag.tasks for o in t.outlets} for dag_id, dag in dagbag.dags.items()}
    assert CANONICAL_TABLES.uri in produced["holdcast_ingest"]
    assert ORDER_FEATURES.uri in produced["holdcast_features"]
    schedule_uris = {
        dag_id: {a.uri for a in getattr(getattr(dag.timetable, "asset_condition", None), "objects", [])}
        for dag_id, dag in dagbag.dags.items()
    }
    assert schedule_uris["holdcast_features"] == {CANONICAL_TABLES.uri}
    assert schedule_uris["holdcast_score"] == {ORDER_FEATURES.uri}


def test_monitor_follows_scoring_and_its_retrain_request_starts_training(dagbag):
    """holdcast_monitor runs after each scoring run and daily; its request starts holdcast_train, which
    keeps its weekly schedule as well."""
    from include.assets import ERP_ORDER_STATUS, RETRAIN_REQUEST

    monitor, train = dagbag.dags["holdcast_monitor"], dagbag.dags["holdcast_train"]
    assert {a.uri for a in monitor.timetable.asset_condition.objects} == {ERP_ORDER_STATUS.uri}
    assert monitor.timetable.timetable.expression == "0 6 * * *"
    produced = {o.uri for t in monitor.tasks for o in t.outlets}
    assert produced == {RETRAIN_REQUEST.uri}
    assert {a.uri for a in train.timetable.asset_condition.objects} == {RETRAIN_REQUEST.uri}
    assert train.timetable.timetable.expression == "0 0 * * 0"  # @weekly
