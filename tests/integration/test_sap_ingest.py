"""Ingesting SAP sales orders through the mapping file, live from the local OData test server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from doubles.sap_server import SapTestServer, seed_orders

from include import ingest, warehouse

pytestmark = pytest.mark.integration

START = datetime(2025, 3, 1, tzinfo=UTC)
DAY1 = datetime(2025, 3, 1, 12, tzinfo=UTC)
DAY2 = datetime(2025, 3, 2, tzinfo=UTC)


@pytest.fixture
def sap(holdcast_home, monkeypatch):
    with SapTestServer(page_size=7) as server:
        seed_orders(server, 30, start=START, step=timedelta(hours=1))
        conn = {
            "conn_type": "http",
            "host": "127.0.0.1",
            "port": server.port,
            "schema": "http",
            "login": "HOLDCAST",
            "password": "test-only",
            "extra": {"sap_client": "100", "page_size": 50, "backoff_seconds": 0.01},
        }
        monkeypatch.setenv("AIRFLOW_CONN_HOLDCAST_SAP", json.dumps(conn))
        monkeypatch.setenv("HOLDCAST_QUARANTINE_TOLERANCE", "0.2")
        yield server


def _canonical(as_of):
    return warehouse.read_canonical(as_of)


def test_orders_and_blocks_land_and_later_changes_arrive_incrementally(sap):
    ingest.ingest_source("sap_sales_orders", DAY1, dataset="sap")
    first = _canonical(DAY1)
    # Orders changed by the end of day 1 only: the rest belong to later intervals.
    assert 0 < len(first["orders"]) < 30
    assert first["orders"]["order_id"].str.len().eq(10).all()
    credit = set(first["holds"].loc[first["holds"]["reason"] == "credit", "order_id"])
    assert "0000004711" in credit  # order 0 is credit-blocked ("B")

    # Take an order away on the server: only a full re-read could notice, an incremental one cannot.
    with sap.lock:
        del sap.data["A_SalesOrder"][("0000004713",)]
    ingest.ingest_source("sap_sales_orders", DAY2, dataset="sap")
    second = _canonical(DAY2)
    assert second["orders"]["order_id"].is_unique
    assert len(second["orders"]) > len(first["orders"])
    assert "0000004713" in set(second["orders"]["order_id"])  # kept from the snapshot: not re-read

    sap.touch("4712", DeliveryBlockReason="01")  # a block placed now, long after day 2's run
    later = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    ingest.ingest_source("sap_sales_orders", later, dataset="sap")
    third = _canonical(later)
    blocked = third["holds"][third["holds"]["order_id"] == "0000004712"]
    assert "credit" in set(blocked["reason"])  # delivery block 01 reads as a credit hold
    assert third["orders"]["order_id"].is_unique and len(third["orders"]) == 30


def test_rerunning_an_interval_reads_the_same(sap):
    ingest.ingest_source("sap_sales_orders", DAY1, dataset="sap")
    once = _canonical(DAY1)
    ingest.ingest_source("sap_sales_orders", DAY1, dataset="sap")
    twice = _canonical(DAY1)
    for table in ("orders", "holds"):
        assert (
            once[table]
            .sort_values(list(once[table].columns[:3]))
            .reset_index(drop=True)
            .equals(twice[table].sort_values(list(twice[table].columns[:3])).reset_index(drop=True))
        )
