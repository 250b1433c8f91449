"""Analyst feedback through the CLI and the JSON endpoint, read back as training labels."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from include import feedback, warehouse

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "holdcast_plugin.py"


@pytest.fixture
def decided(holdcast_home):
    frame = pd.DataFrame(
        {
            "order_id": ["O1", "O2"],
            "as_of": "2025-06-30",
            "reasons": ['[["credit", 0.7]]', '[["payment", 0.5]]'],
        }
    )
    warehouse.replace_rows("decisions", frame.assign(at_risk=True), where={"as_of": "2025-06-30"})
    return holdcast_home


def holdcast_home_labels(home):
    return home / "demo" / feedback.TRAINING_LABELS_FILE


def test_cli_records_and_labels(decided, capsys):
    assert feedback.main(["record", "--order", "O1", "--action", "limit_changed", "--by", "ana"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["reason"] == "credit"  # the reason the order was routed for
    assert feedback.main(["record", "--order", "O2", "--action", "held", "--by", "bo", "--note", "card"]) == 0
    # A later record on the same order and reason wins: O2 turned out to be a false alarm.
    assert feedback.main(["record", "--order", "O2", "--action", "false_alarm", "--by", "bo"]) == 0
    capsys.readouterr()
    labels = feedback.feedback_labels()
    assert labels.to_dict("records") == [
        {"order_id": "O1", "reason": "credit", "label": 1, "action": "limit_changed"},
        {"order_id": "O2", "reason": "payment", "label": 0, "action": "false_alarm"},
    ]
    # The file training lays over the ERP's outcomes: one row per order.
    written = pd.read_parquet(holdcast_home_labels(decided)).astype(object)
    assert written.where(written.notna(), None).to_dict("index") == {
        "O1": {"label_any": 1, "label_credit": 1.0, "label_payment": None},
        "O2": {"label_any": 0, "label_credit": None, "label_payment": 0.0},
    }
    assert feedback.main(["list", "--order", "O2"]) == 0
    assert capsys.readouterr().out.count("O2") == 2


def test_cli_refuses_an_unknown_action(decided, capsys):
    with pytest.raises(SystemExit):
        feedback.main(["record", "--order", "O1", "--action", "shrugged", "--by", "ana"])
    assert "invalid choice: 'shrugged'" in capsys.readouterr().err


def test_json_endpoint_mounted_by_the_plugin(decided):
    spec = importlib.util.spec_from_file_location("holdcast_plugin", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (mount,) = module.HoldcastPlugin.fastapi_apps
    assert mount["url_prefix"] == "/holdcast"
    client = TestClient(mount["app"])
    answer = client.post(
        "/feedback",
        json={"order_id": "O1", "action": "contacted_customer", "analyst": "cy", "reason": "payment"},
    )
    assert answer.status_code == 201 and answer.json()["reason"] == "payment"
    bad = client.post("/feedback", json={"order_id": "O1", "action": "held"})
    assert bad.status_code == 422 and "'analyst' is required" in bad.json()["detail"]
    wrong = client.post(
        "/feedback", json={"order_id": "O1", "action": "held", "analyst": "cy", "reason": "weather"}
    )
    assert wrong.status_code == 422 and "reason 'weather' is not one of" in wrong.json()["detail"]
    assert [r["action"] for r in client.get("/feedback", params={"order_id": "O1"}).json()] == [
        "contacted_customer"
    ]
    assert client.get("/feedback/labels").json() == [
        {"order_id": "O1", "reason": "payment", "label": 1, "action": "contacted_customer"}
    ]
