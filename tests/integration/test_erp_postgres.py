"""The demo ERP on PostgreSQL, read back through the ERP hook and its Airflow connection."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text

from include import canonical
from include.demo_erp.generate import WorldSpec, generate_world, write_demo_erp
from include.hooks import ErpSqlHook

pytestmark = pytest.mark.integration

SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@pytest.fixture
def erp_url():
    admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    schema = f"hc_erp_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{SERVER}?options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


def test_demo_erp_round_trips_through_the_hook(erp_url, tmp_path, monkeypatch):
    world = generate_world(WorldSpec.for_orders(1_500, seed=3))
    write_demo_erp(world, erp_url, tmp_path / "drops")
    monkeypatch.setenv(
        "AIRFLOW_CONN_HOLDCAST_ERP",
        json.dumps({"conn_type": "generic", "extra": {"sqlalchemy_url": erp_url}}),
    )
    hook = ErpSqlHook("holdcast_erp")
    assert hook.get_engine().dialect.name == "postgresql"

    orders = canonical.coerce("orders", hook.read_table("orders"))
    assert sorted(orders["order_id"]) == sorted(world.tables["orders"]["order_id"])
    assert str(orders["created_at"].dt.tz) == "UTC"

    cutoff = datetime(2025, 3, 1, tzinfo=UTC)
    early = hook.read_table("invoices", time_column="issued_at", before=cutoff)
    expected = world.tables["invoices"]["issued_at"] < cutoff
    assert len(early) == int(expected.sum()) > 0
