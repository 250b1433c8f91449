"""The SQL ERP connector on the local PostgreSQL server and on SQLite: incremental reads, upserts.

PostgreSQL tests work in a schema of their own, dropped afterwards.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import create_engine, event, text

from include.decisions import DECISION_COLUMNS
from include.errors import MissingSourceError
from include.hooks import ErpSqlHook
from include.writeback import AUDIT_TABLE, STATUS_TABLE, write_back

pytestmark = pytest.mark.integration

SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
T0 = datetime(2025, 3, 4, 9, 15, 2, 123456, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def erp_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'erp.db'}"
        return
    admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    schema = f"hc_sql_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{SERVER}?options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def hook(erp_url, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_HOLDCAST_ERP",
        json.dumps({"conn_type": "generic", "extra": {"sqlalchemy_url": erp_url}}),
    )
    hook = ErpSqlHook("holdcast_erp")
    yield hook
    hook.get_engine().dispose()


def _orders(start: int, n: int, first_change: datetime) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": [f"O{start + i}" for i in range(n)],
            "amount": [10.0 * (start + i) for i in range(n)],
            "changed_at": [first_change + timedelta(microseconds=250 * i) for i in range(n)],
            "row_version": [start + i for i in range(n)],
        }
    )


def _save(hook, frame, table="sales_orders"):
    frame.to_sql(table, hook.get_engine(), if_exists="append", index=False)


def test_incremental_read_by_change_time(hook):
    _save(hook, _orders(0, 5, T0))
    rows, mark = hook.read_changed("sales_orders", "changed_at")
    assert rows["order_id"].tolist() == ["O0", "O1", "O2", "O3", "O4"]
    assert mark == T0 + timedelta(microseconds=1000)

    again, same = hook.read_changed("sales_orders", "changed_at", since=mark)
    assert again.empty and same == mark

    # Two new rows, one inside the same millisecond as the watermark: sub-millisecond order counts.
    _save(hook, _orders(5, 2, T0 + timedelta(microseconds=1200)))
    new, mark2 = hook.read_changed("sales_orders", "changed_at", since=mark)
    assert new["order_id"].tolist() == ["O5", "O6"]
    assert mark2 == T0 + timedelta(microseconds=1450)


def test_until_bounds_the_interval_inclusively(hook):
    _save(hook, _orders(0, 6, T0))
    rows, mark = hook.read_changed(
        "sales_orders", "changed_at", since=T0, until=T0 + timedelta(microseconds=750)
    )
    assert rows["order_id"].tolist() == ["O1", "O2", "O3"]
    assert mark == T0 + timedelta(microseconds=750)


def test_incremental_read_by_row_version(hook):
    _save(hook, _orders(0, 4, T0))
    rows, mark = hook.read_changed("sales_orders", "row_version", since=1)
    assert rows["order_id"].tolist() == ["O2", "O3"] and mark == 3


def test_missing_table_or_change_column_is_named(hook):
    _save(hook, _orders(0, 1, T0))
    with pytest.raises(MissingSourceError, match="no table 'nope'"):
        hook.read_changed("nope", "changed_at")
    with pytest.raises(MissingSourceError, match="no change column 'updated'"):
        hook.read_changed("sales_orders", "updated")


def test_sqlite_text_timestamps_in_mixed_layouts_compare_as_instants(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'mixed.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id TEXT, changed TEXT)"))
        conn.execute(
            text("INSERT INTO t VALUES (:i, :c)"),
            [
                {"i": "a", "c": "2025-03-04T09:15:02.123+00:00"},
                {"i": "b", "c": "2025-03-04 10:15:02.5+01:00"},  # 09:15:02.500 UTC
                {"i": "c", "c": "2025-03-04 09:15:03"},
            ],
        )
    monkeypatch.setenv(
        "AIRFLOW_CONN_MIXED", json.dumps({"conn_type": "generic", "extra": {"sqlalchemy_url": url}})
    )
    rows, mark = ErpSqlHook("mixed").read_changed(
        "t", "changed", since=datetime(2025, 3, 4, 9, 15, 2, 200000, tzinfo=UTC)
    )
    assert rows["id"].tolist() == ["b", "c"]
    assert mark == datetime(2025, 3, 4, 9, 15, 3, tzinfo=UTC)


def _decisions(n, version="a"):
    rows = []
    for i in range(n):
        row = {c: None for c in DECISION_COLUMNS}
        row.update(
            order_id=f"O{i}",
            risk=0.5,
            band="medium",
            at_risk=True,
            reasons="[]",
            evidence="[]",
            model_version="1",
            policy_version="p1",
            as_of="2025-06-30",
            decision_hash=f"{version}{i:015x}",
        )
        rows.append(row)
    return pd.DataFrame(rows)


def test_upsert_writes_values_as_parameters(hook):
    decisions = _decisions(2)
    decisions.loc[0, "order_id"] = "O'Brien'); DROP TABLE holdcast_order_status; --"
    assert write_back(hook.get_engine(), decisions) == {"inserted": 2, "updated": 0, "unchanged": 0}
    with hook.get_engine().connect() as conn:
        ids = sorted(conn.execute(text(f"SELECT order_id FROM {STATUS_TABLE}")).scalars())
    assert ids == sorted(decisions["order_id"])


def test_postgres_connection_killed_mid_batch_leaves_each_decision_once(tmp_path):
    admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    schema = f"hc_kill_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = create_engine(SERVER, connect_args={"options": f"-csearch_path={schema}"})
    kills = []

    @event.listens_for(engine, "before_cursor_execute")
    def kill_once(conn, cursor, statement, parameters, context, executemany):
        # On the second batch of status rows, end our own backend from a second connection.
        if statement.startswith(f"INSERT INTO {STATUS_TABLE}") and not kills:
            kill_once.batches = getattr(kill_once, "batches", 0) + 1
            if kill_once.batches == 2:
                pid = conn.connection.dbapi_connection.get_backend_pid()
                with admin.connect() as other:
                    other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                kills.append(pid)

    try:
        write_back(engine, _decisions(500))
        decisions = _decisions(2500, version="b")
        assert write_back(engine, decisions) == {"inserted": 2000, "updated": 500, "unchanged": 0}
        assert len(kills) == 1
        with engine.connect() as conn:
            status = pd.read_sql(text(f"SELECT order_id, decision_hash FROM {STATUS_TABLE}"), conn)
            audit = pd.read_sql(text(f"SELECT order_id, decision_hash FROM {AUDIT_TABLE}"), conn)
        assert sorted(status["decision_hash"]) == sorted(decisions["decision_hash"])
        assert not audit.duplicated().any() and len(audit) == 3000
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
