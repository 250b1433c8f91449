"""Team messages: one per team per run, to the outbox, and by e-mail and Slack through Airflow notifiers.

E-mail goes to a real SMTP server on loopback started by the test; Slack to a local server following
the incoming-webhook API. Decisions come from the real ``decide`` on a real SQLite warehouse.
"""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime

import pandas as pd
import pytest
from doubles.slack_webhook import SlackWebhookServer
from doubles.smtp_server import SmtpTestServer

from include import config, notify, warehouse
from include.decisions import decide, load_policy

pytestmark = pytest.mark.integration

AS_OF = datetime(2025, 6, 30, tzinfo=UTC)
REASONS = ("credit", "incomplete_info", "compliance", "payment", "inventory", "manual_review")


def _decisions(rows, as_of):
    """rows: (order_id, p_any, reason with p 0.6 or None, po_missing)."""
    index = pd.Index([r[0] for r in rows], name="order_id")
    scores = pd.DataFrame({"p_any": [r[1] for r in rows]}, index=index)
    for reason in REASONS:
        scores[f"p_{reason}"] = [0.6 if r[2] == reason else 0.0 for r in rows]
    scores["top_factors"] = "[]"
    features = pd.DataFrame(
        {"order_amount": 2000.0, "po_missing": [r[3] for r in rows], "segment": "SMB"}, index=index
    )
    policy = load_policy(config.HOLDCAST_POLICY_FILE.get())
    customers = {r[0]: f"C-{r[0]}" for r in rows}
    label = warehouse.as_of_label(as_of)
    frame = decide(
        scores, features, policy, customer_of=customers, model_name="m", model_version="1", as_of=label
    )
    warehouse.replace_rows("decisions", frame, where={"as_of": label})


def _reports(ok=True):
    folder = warehouse.lake_path("reports", "validation", "as_of=2025-06-30")
    folder.mkdir(parents=True, exist_ok=True)
    report = {
        "table": "orders",
        "source": "erp",
        "quarantined_share": 0.0 if ok else 0.3,
        "table_failures": [],
    }
    (folder / "erp.json").write_text(json.dumps([report]))


@pytest.fixture
def world(holdcast_home):
    # O1 was already at risk the day before: not news. O2, O3 credit; O4 missing PO; O5 low risk.
    _decisions([("O1", 0.9, "credit", 0.0)], datetime(2025, 6, 29, tzinfo=UTC))
    _decisions(
        [
            ("O1", 0.9, "credit", 0.0),
            ("O2", 0.8, "credit", 0.0),
            ("O3", 0.7, "credit", 0.0),
            ("O4", 0.5, "incomplete_info", 1.0),
            ("O5", 0.05, None, 0.0),
        ],
        AS_OF,
    )
    _reports()
    return holdcast_home


def test_outbox_holds_one_message_per_team_and_customer_drafts(world):
    summary = notify.notify_teams(AS_OF)
    assert summary["teams"] == {"credit_analysts": 2, "order_desk": 1}
    folder = config.HOLDCAST_OUTBOX_DIR.get() / "2025-06-30"
    assert sorted(p.name for p in folder.iterdir()) == [
        "credit_analysts.eml",
        "credit_analysts.slack.json",
        "customer_drafts",
        "index.json",
        "order_desk.eml",
    ]
    mail = email.message_from_bytes(
        (folder / "credit_analysts.eml").read_bytes(), policy=email.policy.default
    )
    assert mail["Subject"] == "holdcast 2025-06-30: 2 new at-risk orders for credit_analysts"
    body = mail.get_body(("plain",)).get_content()
    assert "O2  customer C-O2  risk 80%  credit" in body and "O3" in body and "O1" not in body
    assert "3 at risk in all" in body
    draft = (folder / "customer_drafts" / "O4.txt").read_text()
    assert draft.startswith("Subject: Your order O4: we need the PO number to confirm it")
    # A re-run writes the same outbox.
    before = {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    notify.notify_teams(AS_OF)
    assert before == {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_fail_safe_tells_every_team(world):
    _reports(ok=False)
    summary = notify.notify_teams(AS_OF)
    policy = load_policy(config.HOLDCAST_POLICY_FILE.get())
    assert set(summary["teams"]) == set(policy.teams.values())
    assert summary["teams"]["compliance"] == 0
    folder = config.HOLDCAST_OUTBOX_DIR.get() / "2025-06-30"
    mail = email.message_from_bytes((folder / "compliance.eml").read_bytes(), policy=email.policy.default)
    assert mail["Subject"].strip().startswith("[auto-release OFF] holdcast 2025-06-30: 0 new at-risk orders")
    body = mail.get_body(("plain",)).get_content()
    assert body.startswith("Auto-release is OFF for this run: validation failed for the data of 2025-06-30")


def test_sent_by_smtp_and_slack_once_per_team(world, monkeypatch):
    with SmtpTestServer() as smtp, SlackWebhookServer() as slack:
        monkeypatch.setenv("HOLDCAST_NOTIFY_MODE", "send")
        monkeypatch.setenv("HOLDCAST_SMTP_CONN_ID", "holdcast_test_smtp")
        monkeypatch.setenv(
            "AIRFLOW_CONN_HOLDCAST_TEST_SMTP",
            json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": smtp.port,
                    "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 5, "retry_limit": 1},
                }
            ),
        )
        monkeypatch.setenv(
            "AIRFLOW_CONN_HOLDCAST_SLACK_CREDIT", json.dumps({"conn_type": "http", "password": slack.url})
        )
        summary = notify.notify_teams(AS_OF)
        assert summary["sent"] == {"email": 2, "slack": 1, "already_sent": 0}
        received = {tuple(rcpt): msg for _, rcpt, msg in smtp.messages}
        assert set(received) == {("credit-analysts@example.com",), ("order-desk@example.com",)}
        credit = received[("credit-analysts@example.com",)]
        assert credit["Subject"] == "holdcast 2025-06-30: 2 new at-risk orders for credit_analysts"
        assert credit["From"] == "holdcast@example.com"
        assert "O2" in credit.get_body(("html",)).get_content()
        (post,) = slack.posts
        assert post["text"].startswith("*holdcast 2025-06-30: 2 new at-risk orders for credit_analysts*")
        # The same run again sends nothing twice.
        again = notify.notify_teams(AS_OF)
        assert again["sent"] == {"email": 0, "slack": 0, "already_sent": 3}
        assert len(smtp.messages) == 2 and len(slack.posts) == 1


def test_slack_refusal_fails_naming_the_connection(world, monkeypatch):
    with SlackWebhookServer() as slack:
        monkeypatch.setenv(
            "AIRFLOW_CONN_HOLDCAST_SLACK_X",
            json.dumps({"conn_type": "http", "password": slack.url.replace("holdcast-test", "gone")}),
        )
        notifier = notify.SlackWebhookNotifier(slack_conn_id="holdcast_slack_x", text="hello")
        with pytest.raises(RuntimeError, match="connection 'holdcast_slack_x' answered 404: no_service"):
            notifier({})
