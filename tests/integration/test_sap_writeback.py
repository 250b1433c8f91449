"""Write-back to SAP against the local OData test server: exactly once through every fault it injects."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

import pandas as pd
import pytest
from doubles.sap_server import SapTestServer, seed_orders
from sqlalchemy import create_engine, inspect, text

from include.sap.client import SapSettings
from include.sap.writeback import AUDIT_TABLE, SapWriteBack, custom_field_text

pytestmark = pytest.mark.integration

FIELD = "YY1_HoldcastRisk_SDH"


@pytest.fixture
def sap():
    with SapTestServer(custom_fields={FIELD: 60}) as server:
        seed_orders(server, 12, start=datetime(2025, 3, 1, tzinfo=UTC))
        yield server


@pytest.fixture
def audit(tmp_path):
    return create_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")


def _settings(server, **changes) -> SapSettings:
    values = dict(
        base_url=server.base_url,
        login="HOLDCAST",
        password="test-only",
        backoff_seconds=0.01,
        read_timeout=2.0,
        max_attempts=6,
        workers=2,
    )
    return SapSettings(**(values | changes))


def _decisions(n=12, risk=0.82, at_risk=True, version="a"):
    return pd.DataFrame(
        [
            {
                "order_id": str(4711 + i),  # canonical ids may have lost SAP's zeros
                "risk": risk,
                "band": "high" if at_risk else "low",
                "at_risk": at_risk,
                "reasons": '[["credit", 0.61], ["payment", 0.2]]',
                "decision_hash": f"{version}{i:015x}",
            }
            for i in range(n)
        ]
    )


def _audit(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(text(f"SELECT * FROM {AUDIT_TABLE} ORDER BY id"), conn)


def _held(server, n=12) -> list[str]:
    return [server.order(str(4711 + i))[FIELD] for i in range(n)]


def _patches(server) -> int:
    return server.requests["PATCH"]


def test_decisions_land_in_the_custom_field_once(sap, audit):
    decisions = _decisions()
    assert SapWriteBack(_settings(sap), audit, run_id="r1").push(decisions) == {"applied": 12, "unchanged": 0}
    assert _held(sap) == [custom_field_text(d, 60) for d in decisions.to_dict("records")]
    assert _held(sap)[0] == "high 0.82 credit #a000000000000000"

    before = sum(sap.requests.values())
    assert SapWriteBack(_settings(sap), audit, run_id="r2").push(decisions) == {"unchanged": 12}
    assert sum(sap.requests.values()) == before, "a decision already applied was sent again"
    results = _audit(audit).query("step == 'result'")
    assert results["outcome"].tolist() == ["applied"] * 12 and set(results["run_id"]) == {"r1"}


def test_a_changed_decision_replaces_the_old_one(sap, audit):
    SapWriteBack(_settings(sap), audit).push(_decisions())
    changed = _decisions(risk=0.91, version="b").iloc[:3]
    assert SapWriteBack(_settings(sap), audit).push(changed) == {"applied": 3, "unchanged": 0}
    assert _held(sap, 4)[:3] == [custom_field_text(d, 60) for d in changed.to_dict("records")]
    assert _held(sap, 4)[3].endswith("#a000000000000003")


def test_lost_response_is_read_back_not_applied_twice(sap, audit):
    sap.faults.queue("drop_after", count=3, methods=("PATCH",))
    counts = SapWriteBack(_settings(sap), audit).push(_decisions())
    assert counts == {"applied": 12, "unchanged": 0}
    assert sap.faults.injected["drop_after"] == 3
    assert max(sap.applied.values()) == 1 and len(sap.applied) == 12
    lost = _audit(audit).query("outcome == 'lost'")
    assert len(lost) == 3 and set(lost["attempt"]) == {1}


def test_a_push_whose_answer_came_too_late_is_not_applied_twice(sap, audit):
    # The server sits on the first change past the client's timeout; the client reads, sends again
    # with the same ETag, and whichever arrives second is refused with 412.
    sap.faults.slow_seconds = 0.6
    sap.faults.queue("slow", methods=("PATCH",))
    SapWriteBack(_settings(sap, read_timeout=0.2, workers=1), audit).push(_decisions(1))
    time.sleep(0.8)
    assert sap.applied[("0000004711", FIELD, custom_field_text(_decisions(1).iloc[0].to_dict(), 60))] == 1


def test_expired_csrf_token_is_fetched_again(sap, audit):
    sap.faults.queue("token_expiry", methods=("PATCH",))
    assert SapWriteBack(_settings(sap, workers=1), audit).push(_decisions(4))["applied"] == 4
    rows = _audit(audit)
    assert rows["outcome"].tolist().count("token_required") == 1
    assert max(sap.applied.values()) == 1


def test_throttling_waits_as_long_as_retry_after_says(sap, audit):
    sap.faults.retry_after = 5
    sap.faults.queue("429", methods=("PATCH",))
    sap.faults.queue("503", methods=("PATCH",))
    waits: list[float] = []
    push = SapWriteBack(_settings(sap, workers=1), audit, sleep=waits.append)
    assert push.push(_decisions(2))["applied"] == 2
    assert waits[0] == 5.0 and 0 < waits[1] < 0.05
    assert _audit(audit).query("outcome == 'retry'")["http_status"].tolist() == [429, 503]


def test_a_failed_push_is_tried_again_on_the_next_run(sap, audit):
    sap.faults.queue("503", count=3, methods=("PATCH",))
    first = SapWriteBack(_settings(sap, max_attempts=3, workers=1), audit, run_id="r1").push(_decisions(2))
    assert first == {"applied": 1, "failed": 1, "unchanged": 0}
    second = SapWriteBack(_settings(sap), audit, run_id="r2").push(_decisions(2))
    assert second == {"applied": 1, "unchanged": 1}
    assert all(v.endswith(f"#a{i:015x}") for i, v in enumerate(_held(sap, 2)))
    results = _audit(audit).query("step == 'result'")
    by_order = {o: list(zip(g["run_id"], g["outcome"], strict=True)) for o, g in results.groupby("order_id")}
    assert sorted(by_order.values()) == [[("r1", "applied")], [("r1", "failed"), ("r2", "applied")]]


def test_decision_already_in_sap_is_recognised_without_the_audit(sap, audit, tmp_path):
    SapWriteBack(_settings(sap), audit).push(_decisions())
    patches = _patches(sap)
    fresh = create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    assert SapWriteBack(_settings(sap), fresh).push(_decisions()) == {"already_applied": 12, "unchanged": 0}
    assert _patches(sap) == patches


def test_dry_run_reads_logs_and_changes_nothing(sap, audit, caplog):
    caplog.set_level(logging.INFO, logger="include.sap.writeback")
    assert SapWriteBack(_settings(sap), audit, dry_run=True).push(_decisions(3)) == {
        "dry_run": 3,
        "unchanged": 0,
    }
    assert _patches(sap) == 0 and _held(sap, 3) == ["", "", ""]
    assert not inspect(audit).has_table(AUDIT_TABLE)
    assert (
        "Dry run: SAP order 0000004711: YY1_HoldcastRisk_SDH would change from '' to 'high 0.82"
        in caplog.text
    )


def test_delivery_block_mode_blocks_likely_holds_and_never_replaces_a_block(sap, audit):
    settings = _settings(sap, writeback_mode="delivery_block", delivery_block_reason="Z1")
    decisions = _decisions(4)
    decisions.loc[3, "at_risk"] = False
    # Order 4711 already carries delivery block "01" (seed_orders blocks every eleventh order).
    assert sap.order("4711")["DeliveryBlockReason"] == "01"
    assert SapWriteBack(settings, audit).push(decisions) == {"applied": 2, "skipped": 2, "unchanged": 0}
    assert [sap.order(str(4711 + i))["DeliveryBlockReason"] for i in range(4)] == ["01", "Z1", "Z1", ""]
    assert SapWriteBack(settings, audit).push(decisions) == {"skipped": 2, "unchanged": 2}


def test_unknown_order_is_rejected_with_sap_message(sap, audit):
    decisions = _decisions(1)
    decisions.loc[0, "order_id"] = "99999"
    assert SapWriteBack(_settings(sap), audit).push(decisions) == {"rejected": 1, "unchanged": 0}
    assert "not found" in _audit(audit)["detail"].iloc[-1]


def test_many_faults_still_deliver_each_decision_once(audit):
    with SapTestServer(custom_fields={FIELD: 60}) as server:
        seed_orders(server, 120, start=datetime(2025, 3, 1, tzinfo=UTC))
        server.faults.rate, server.faults.seed = 0.3, 11
        server.faults.retry_after, server.faults.slow_seconds = 0, 0.3
        settings = _settings(server, read_timeout=0.15, max_attempts=12, workers=4)
        decisions = _decisions(120)
        counts = SapWriteBack(settings, audit).push(decisions)
        time.sleep(0.4)  # let slow requests the client gave up on finish on the server
        assert counts["applied"] + counts.get("already_applied", 0) == 120
        assert set(server.faults.injected) == set(server.faults.kinds)
        assert max(server.applied.values()) == 1 and len(server.applied) == 120
        assert _held(server, 120) == [custom_field_text(d, 60) for d in decisions.to_dict("records")]


def test_scoring_entry_point_uses_the_airflow_connection_and_the_warehouse(sap, holdcast_home, monkeypatch):
    from include import config
    from include.sap.writeback import write_back_to_sap

    conn = {"conn_type": "http", "host": sap.base_url, "login": "HOLDCAST", "password": "test-only"}
    monkeypatch.setenv("AIRFLOW_CONN_ERP_SAP", json.dumps(conn))
    monkeypatch.setenv("HOLDCAST_SAP_CONN_ID", "erp_sap")
    warehouse = config.HOLDCAST_WAREHOUSE_URL.get()
    (holdcast_home / "demo").mkdir(parents=True)
    assert write_back_to_sap(_decisions(2), run_id="score-2025-06-30") == {"applied": 2, "unchanged": 0}
    assert set(_audit(create_engine(warehouse))["run_id"]) == {"score-2025-06-30"}
