"""The SAP hook against the local OData test server (tests/doubles/sap_server.py), over real sockets."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from doubles.sap_server import SapTestServer, odata_date, seed_orders

from include.sap.client import ODataClient, SapError
from include.sap.hook import HEADERS, ITEMS, PARTNERS, SCHEDULE_LINES, SapODataHook, change_time

pytestmark = pytest.mark.integration

START = datetime(2025, 3, 1, tzinfo=UTC)


def _connect(monkeypatch, server, **extra):
    conn = {
        "conn_type": "http",
        "host": "127.0.0.1",
        "port": server.port,
        "schema": "http",
        "login": "HOLDCAST",
        "password": "test-only",
        "extra": {"sap_client": "100", "page_size": 10, "backoff_seconds": 0.01, **extra},
    }
    monkeypatch.setenv("AIRFLOW_CONN_HOLDCAST_SAP", json.dumps(conn))
    return SapODataHook()


@pytest.fixture
def sap():
    # The server cuts pages at 4 records, below the hook's $top of 10: both paging kinds happen.
    with SapTestServer(page_size=4) as server:
        seed_orders(server, 23, start=START)
        yield server


def test_reads_every_order_once_across_pages(sap, monkeypatch):
    extract = _connect(monkeypatch, sap).read_sales_orders(since=None)
    headers = extract.records[HEADERS]
    assert sorted(r["SalesOrder"] for r in headers) == sorted(k[0] for k in sap.data[HEADERS])
    assert len({r["SalesOrder"] for r in headers}) == 23
    for name in (ITEMS, SCHEDULE_LINES, PARTNERS):
        assert len(extract.records[name]) == len(sap.data[name]) > 23
    assert extract.watermark == max(change_time(r) for r in sap.data[HEADERS].values())
    assert sap.requests["GET"] >= 23 / 4, "server-driven paging (__next) was not followed"
    assert sap.sap_clients == {"100"}


def test_records_stay_as_sap_sent_them(sap, monkeypatch):
    sap.add(
        HEADERS,
        {
            "SalesOrder": "4712",
            "LastChangeDateTime": "/Date(1741136400000)/",
            "TotalNetAmount": "-35.500",
            "PurchaseOrderByCustomer": None,
            "DeliveryBlockReason": "",
        },
    )
    frames = _connect(monkeypatch, sap).read_sales_orders(since=None).frames()
    row = frames[HEADERS].set_index("SalesOrder").loc["0000004712"]
    assert row["TotalNetAmount"] == "-35.500"
    assert row["LastChangeDateTime"] == "/Date(1741136400000)/"
    assert row["PurchaseOrderByCustomer"] is None and row["DeliveryBlockReason"] == ""
    assert "__metadata" not in frames[HEADERS].columns


def test_incremental_read_returns_only_orders_changed_since_the_watermark(sap, monkeypatch):
    hook = _connect(monkeypatch, sap)
    first = hook.read_sales_orders(since=None)
    assert hook.read_sales_orders(since=first.watermark).records[HEADERS] == []

    sap.touch("4715", DeliveryBlockReason="01")
    sap.touch("4720")
    second = hook.read_sales_orders(since=first.watermark)
    assert [r["SalesOrder"] for r in second.records[HEADERS]] == ["0000004715", "0000004720"]
    assert second.records[HEADERS][0]["DeliveryBlockReason"] == "01"
    assert {r["SalesOrder"] for r in second.records[ITEMS]} == {"0000004715", "0000004720"}
    assert second.watermark > first.watermark


def test_interval_bounds_are_exclusive_then_inclusive(sap, monkeypatch):
    hook = _connect(monkeypatch, sap)
    ordered = sorted(sap.data[HEADERS].values(), key=change_time)
    since, until = change_time(ordered[4]), change_time(ordered[9])
    read = hook.read_sales_orders(since=since, until=until).records[HEADERS]
    assert [r["SalesOrder"] for r in read] == [r["SalesOrder"] for r in ordered[5:10]]


def test_orders_sharing_one_change_time_across_pages_are_all_read(monkeypatch):
    with SapTestServer(page_size=3) as server:
        stamp = odata_date(START + timedelta(hours=2), offset=True)
        for i in range(12):
            server.add(HEADERS, {"SalesOrder": str(100 + i), "LastChangeDateTime": stamp})
        hook = _connect(monkeypatch, server, page_size=5)
        headers = hook.read_sales_orders(since=START).records[HEADERS]
    assert [r["SalesOrder"] for r in headers] == [f"{100 + i:010d}" for i in range(12)]


def test_reads_retry_on_429_5xx_and_dropped_connections(sap, monkeypatch):
    hook = _connect(monkeypatch, sap)
    for kind in ("503", "drop_before", "500", "429"):
        sap.faults.queue(kind, methods=("GET",))
    sap.faults.retry_after = 0
    extract = hook.read_sales_orders(since=None)
    assert len(extract.records[HEADERS]) == 23
    assert sum(sap.faults.injected.values()) == 4


def test_retry_after_is_honoured_and_backoff_grows(sap, monkeypatch):
    settings = replace(_connect(monkeypatch, sap).settings(), backoff_seconds=1.0, max_backoff_seconds=60)
    waits: list[float] = []
    client = ODataClient(settings, sleep=waits.append)
    sap.faults.retry_after = 7
    sap.faults.queue("429", methods=("GET",))
    sap.faults.queue("503", count=2, methods=("GET",))
    client.get_json("A_SalesOrder", params={"$top": "1"})
    assert waits[0] == 7.0
    assert 1.0 <= waits[1] < waits[2] <= 4.0  # 1 s then 2 s ceilings, with jitter in the upper half


def test_gives_up_naming_sap_error_after_max_attempts(sap, monkeypatch):
    hook = _connect(monkeypatch, sap, max_attempts=2)
    sap.faults.queue("500", count=2, methods=("GET",))
    with pytest.raises(SapError, match="gave up after 2 attempts.*500.*Internal server error"):
        hook.read_sales_orders(since=None)


def test_wrong_password_fails_at_once_with_sap_message(sap, monkeypatch):
    _connect(monkeypatch, sap)
    hook = SapODataHook()
    settings = replace(hook.settings(), password="wrong")
    with pytest.raises(SapError, match="401.*Logon failed"):
        ODataClient(settings).get_json("A_SalesOrder")
    assert sap.requests["GET"] == 1


def test_bad_filter_is_refused_with_sap_error_body(sap, monkeypatch):
    client = _connect(monkeypatch, sap).get_conn()
    with pytest.raises(SapError, match="400.*Invalid filter expression"):
        client.get_json("A_SalesOrder", params={"$filter": "LastChangeDateTime gt"})


def test_next_link_to_another_server_is_not_followed(sap, monkeypatch):
    client = _connect(monkeypatch, sap).get_conn()
    with pytest.raises(SapError, match="not on the configured server"):
        client.get_json("https://erp.example/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder?$skiptoken=3")


def test_connection_extra_typo_is_named(sap, monkeypatch):
    hook = _connect(monkeypatch, sap, pagesize=5)
    with pytest.raises(ValueError, match=r"unknown extra keys \['pagesize'\]"):
        hook.settings()
