"""Sharded scoring gives exactly the unsharded run's decisions, even when a shard is killed and run again.

One feature snapshot and one registered champion are made once (synthetic orders and receivables,
a small LightGBM model in a SQLite MLflow store). Each test scores that same snapshot in its own
holdcast home, with its own warehouse and ERP database, and compares with the unsharded reference
(:func:`include.pipeline.score_open_orders`): the warehouse decisions, the ERP status rows and the
write-back audit must be equal, row for row.

- A shard is killed with SIGKILL while it writes its file, in a process of its own: it leaves no
  output, the write-back refuses to run naming the shard, and once the shard is run again (and
  another shard twice) the result equals the reference.
- ``airflow dags test holdcast_score`` with three shards gives the reference too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine

from include import demo

pytestmark = pytest.mark.integration

AS_OF = "2025-06-30"
MODEL = "holdcast_hold_risk"
ORDERS = 3000


def _tables(n_orders: int, seed: int) -> dict[str, pd.DataFrame]:
    """Canonical orders (the newest third open) and invoices of 150 customers over two years."""
    rng = np.random.default_rng(seed)
    day = 86_400
    start = int(pd.Timestamp("2023-07-01", tz="UTC").timestamp())
    customer = rng.integers(0, 150, n_orders)
    created = start + np.sort(rng.integers(0, 730 * day, n_orders))
    lines = 4 * n_orders
    of_order = rng.integers(0, n_orders, lines)
    issued = created[of_order] + rng.integers(0, 30 * day, lines)
    due = issued + 30 * day
    # Customers pay with their own habit, from early to very late; what is not paid by the end stays open.
    habit = rng.gamma(1.5, 10.0, 150)[customer[of_order]] - 5.0
    cleared = due + np.round(rng.normal(habit, 10.0) * day).astype(np.int64)
    cleared = np.maximum(cleared, issued + day).astype("float64")
    cleared[cleared >= created[-1]] = np.nan

    def when(seconds):
        return pd.to_datetime(seconds, unit="s", utc=True)

    def ids(prefix, numbers):
        return pd.array([f"{prefix}{n:06d}" for n in numbers], dtype="string")

    orders = pd.DataFrame(
        {
            "order_id": ids("O", range(n_orders)),
            "customer_id": ids("C", customer),
            "created_at": when(created),
            "amount": np.round(rng.lognormal(7.0, 1.0, n_orders), 2),
            "segment": pd.array(np.array(["SMB", "MIDMARKET", "ENTERPRISE"])[customer % 3], "string"),
            "payment_method": pd.array(np.array(["invoice", "card"])[rng.integers(0, 2, n_orders)], "string"),
            "ship_to_country": pd.array(np.array(["DE", "FR", "US"])[customer % 3], "string"),
            "status": pd.array(
                np.where(np.arange(n_orders) >= 2 * n_orders // 3, "open", "closed"), "string"
            ),
        }
    )
    invoices = pd.DataFrame(
        {
            "invoice_id": ids("I", range(lines)),
            "customer_id": ids("C", customer[of_order]),
            "order_id": ids("O", of_order),
            "issued_at": when(issued),
            "due_at": when(due),
            "amount": np.round(rng.lognormal(6.0, 1.0, lines), 2),
            "cleared_at": when(cleared),
        }
    )
    return {"orders": orders, "invoices": invoices}


def _snapshot(home: Path) -> Path:
    return home / "demo" / "lake" / "features" / f"as_of={AS_OF}"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A feature snapshot with open orders and a champion trained on its closed ones."""
    from features.build import CATEGORICAL_COLUMNS, FEATURE_COLUMNS, build_order_features
    from include import pipeline
    from include.canonical import HOLD_REASONS
    from training.registry import log_and_register
    from training.train import train

    root = tmp_path_factory.mktemp("score_shards")
    tables = _tables(ORDERS, seed=5)
    orders = tables["orders"]
    newest = orders["status"] == "open"
    features = build_order_features(tables)

    rng = np.random.default_rng(5)
    logit = -2.0 + 0.7 * np.minimum(features["overdue_count"].fillna(0).to_numpy(), 5)
    held = rng.random(len(features)) < 1 / (1 + np.exp(-logit))
    reason = rng.integers(0, len(HOLD_REASONS), len(features))
    labels = pd.DataFrame(
        {"label_any": held.astype(int)}
        | {f"label_{r}": (held & (reason == i)).astype(int) for i, r in enumerate(HOLD_REASONS)},
        index=features.index,
    )
    labels["trainable"] = ~newest.to_numpy()
    created = orders.set_index("order_id")["created_at"].reindex(features.index)
    closed = labels.index[labels["trainable"]]
    result = train(
        features.loc[closed, FEATURE_COLUMNS],
        labels.loc[closed],
        created.loc[closed],
        categorical=list(CATEGORICAL_COLUMNS),
    )
    store = root / "mlflow"
    store.mkdir()
    log_and_register(
        result,
        model_name=MODEL,
        tracking_uri=f"sqlite:///{store / 'mlflow.db'}",
        experiment_name="score-shards",
        artifact_location=(store / "artifacts").as_uri(),
        run_params={},
        extra_metrics={},
        tags={},
        valid_features=features.loc[result.split.valid_ids, FEATURE_COLUMNS],
        valid_labels=labels.loc[result.split.valid_ids],
    )
    snapshot = root / "snapshot"
    snapshot.mkdir()
    features.to_parquet(snapshot / "features.parquet")
    labels.to_parquet(snapshot / "labels.parquet")
    orders.set_index("order_id")[[*pipeline.ORDER_COLUMNS, "ship_to_country"]].to_parquet(
        snapshot / "orders.parquet"
    )
    return {"root": root, "snapshot": snapshot, "tracking_uri": f"sqlite:///{store / 'mlflow.db'}"}


def _home(source) -> tuple[Path, dict[str, str]]:
    """A fresh holdcast home holding the shared snapshot, scoring with the shared champion.

    Every run uses the same folder, emptied first: decisions may name files of their home (the notes
    point at the validation report), so runs are compared at the same path.
    """
    home = source["root"] / "home"
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(source["snapshot"], _snapshot(home))
    env = demo.environment(home, "demo")
    env["MLFLOW_TRACKING_URI"] = source["tracking_uri"]
    return home, env


def _use(monkeypatch, env: dict[str, str]) -> None:
    for key in ("HOLDCAST_HOME", "HOLDCAST_DATASET", "AIRFLOW_CONN_HOLDCAST_ERP", "MLFLOW_TRACKING_URI"):
        monkeypatch.setenv(key, env[key])
    for key in ("HOLDCAST_WAREHOUSE_URL", "HOLDCAST_LAKE_DIR", "HOLDCAST_SCORE_SHARDS"):
        monkeypatch.delenv(key, raising=False)


def _read(url: str, query: str) -> pd.DataFrame:
    with create_engine(url).connect() as conn:
        return pd.read_sql(query, conn)


def _results(home: Path) -> list[pd.DataFrame]:
    warehouse = f"sqlite:///{home / 'demo' / 'warehouse.db'}"
    erp = f"sqlite:///{home / 'demo' / 'erp.db'}"
    return [
        _read(warehouse, "SELECT * FROM decisions ORDER BY order_id"),
        _read(erp, "SELECT * FROM holdcast_order_status ORDER BY order_id"),
        _read(
            erp,
            "SELECT order_id, decision_hash, decided_as_of, change FROM holdcast_writeback_audit ORDER BY id",
        ),
    ]


@pytest.fixture(scope="module")
def reference(source):
    """The unsharded run's warehouse decisions, ERP statuses and audit."""
    from include import pipeline

    home, env = _home(source)
    with pytest.MonkeyPatch.context() as monkeypatch:
        _use(monkeypatch, env)
        summary = pipeline.score_open_orders(pipeline.warehouse.parse_as_of_label(AS_OF))
    assert summary["scored"] == ORDERS // 3 and summary["at_risk"] > 0
    return _results(home)


# Run in a process of its own: write a third of the shard's file, then die as a killed worker would.
_KILLED_SHARD = """
import json, os, signal, sys
import pandas as pd
from include import pipeline

def killed_mid_write(frame, path, *args, **kwargs):
    data = frame.to_csv().encode()
    with open(path, "wb") as out:
        out.write(data[: len(data) // 3])
        out.flush()
    os.kill(os.getpid(), signal.SIGKILL)

pd.DataFrame.to_parquet = killed_mid_write
pipeline.score_shard(json.loads(sys.argv[1]))
"""


def test_killed_shard_run_again_gives_the_unsharded_result(source, reference, monkeypatch):
    from include import pipeline

    home, env = _home(source)
    _use(monkeypatch, env)
    as_of = pipeline.warehouse.parse_as_of_label(AS_OF)
    plan = pipeline.plan_scoring(as_of, shards=3)
    assert [ref["shard"] for ref in plan] == [0, 1, 2]
    assert json.loads(json.dumps(plan)) == plan, "shard references must be plain JSON for XCom"

    done = [pipeline.score_shard(plan[0])]
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_SHARD, json.dumps(plan[1])], env=env, capture_output=True, text=True
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not pipeline.shard_path(as_of, 1, 3).exists(), "a killed shard must leave no output"
    with pytest.raises(ValueError, match="shard 1 of 3 .* has no output .* run that shard again"):
        pipeline.write_back_shards([*done, {**done[0], "shard": 1}, {**done[0], "shard": 2}])
    for written in ("erp.db", "warehouse.db"):
        assert not (home / "demo" / written).exists(), f"{written} written while a shard is missing"

    done.append(pipeline.score_shard(plan[1]))
    pipeline.score_shard(plan[2])
    done.append(pipeline.score_shard(plan[2]))  # a shard that succeeded, run again
    assert sum(ref["rows"] for ref in done) == ORDERS // 3
    summary = pipeline.write_back_shards(done)
    assert summary["write_back"] == {"inserted": ORDERS // 3, "updated": 0, "unchanged": 0}
    for got, want in zip(_results(home), reference, strict=True):
        pd.testing.assert_frame_equal(got, want)

    again = pipeline.write_back_shards(done)
    assert again["write_back"] == {"inserted": 0, "updated": 0, "unchanged": ORDERS // 3}
    for got, want in zip(_results(home), reference, strict=True):
        pd.testing.assert_frame_equal(got, want)


def test_airflow_run_in_shards_equals_unsharded(source, reference):
    home, env = _home(source)
    env["HOLDCAST_SCORE_SHARDS"] = "3"
    env["HOLDCAST_TASK_RETRIES"] = "0"
    log = home / "airflow.log"
    demo._run([demo.airflow_executable(), "db", "migrate"], env, log)
    demo._run([demo.airflow_executable(), "dags", "test", "holdcast_score", AS_OF], env, log)
    shards = sorted(p.name for p in (home / "demo" / "lake" / "scores" / f"as_of={AS_OF}").iterdir())
    assert shards == [f"shard-{i:03d}-of-003.parquet" for i in range(3)]
    assert "score_shard" in log.read_text()
    for got, want in zip(_results(home), reference, strict=True):
        pd.testing.assert_frame_equal(got, want)
