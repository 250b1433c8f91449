"""Tell each team about its new at-risk orders: one message per team per run, not one per order.

After scoring, :func:`notify_teams` reads the interval's decisions, finds each team's orders that are
at risk now and were not in the previous scored interval, and builds one digest per team from the
policy's templates (subject, intro, one line per order with its evidence and what clears it). When
the data behind the run failed validation (the fail-safe), every team gets a message saying that
auto-release is off and why, even with no new order.

Where messages go depends on ``HOLDCAST_NOTIFY_MODE``:

- ``outbox`` (the embedded default): written under ``HOLDCAST_OUTBOX_DIR/<as_of>/`` as ``<team>.eml``
  (a plain e-mail file any mail reader opens) and ``<team>.slack.json`` (the webhook payload);
- ``send``: also sent through Airflow notifiers, e-mail with the SMTP provider's ``SmtpNotifier`` (the
  connection ``HOLDCAST_SMTP_CONN_ID``) and Slack with :class:`SlackWebhookNotifier` (the team's
  webhook connection named in the policy). A ledger table ``notifications_sent`` keeps what went
  out, so re-running the interval does not send a message twice.

Drafts of customer messages (for example asking for a missing PO number) are written under
``<as_of>/customer_drafts/`` for a person to review and send; holdcast never sends them.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from include import config, warehouse

if TYPE_CHECKING:
    import pandas as pd

    from include.policy import Policy

logger = logging.getLogger(__name__)

LEDGER_TABLE = "notifications_sent"
WEBHOOK_TIMEOUT_S = 10.0


@dataclass
class Digest:
    """One team's message of one run."""

    team: str
    subject: str
    lines: list[str]
    order_ids: list[str]
    new: int
    total: int
    email: tuple[str, ...] = ()
    slack: str | None = None
    notices: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join([*self.notices, *([""] if self.notices else []), *self.lines]) + "\n"

    @property
    def html(self) -> str:
        notices = "".join(f"<p><b>{html.escape(n)}</b></p>" for n in self.notices)
        intro, *rows = self.lines or [""]
        items = "".join(f"<li>{html.escape(r)}</li>" for r in rows)
        return f"{notices}<p>{html.escape(intro)}</p><ul>{items}</ul>"

    @property
    def digest_hash(self) -> str:
        return hashlib.sha256(f"{self.subject}\n{self.text}".encode()).hexdigest()[:16]


def _format(template: str, **fields: Any) -> str:
    return template.format(**fields)


def team_digests(
    decisions: pd.DataFrame,
    previous_at_risk: set[str],
    policy: Policy,
    *,
    as_of: str,
    fail_safe: str | None,
) -> list[Digest]:
    """One digest per team with new at-risk orders; every team when the fail-safe switched auto-release off.

    Args:
        decisions: the interval's decisions.
        previous_at_risk: ids of the orders at risk in the previous scored interval.
        policy: the loaded policy (templates, teams and their channels).
        as_of: the interval label.
        fail_safe: why auto-release is off for this run, or None.
    """
    from include.clearing import as_text

    templates = policy.templates
    at_risk = decisions[decisions["at_risk"].astype(bool)]
    totals = at_risk.groupby("team").size().to_dict()
    new = at_risk[~at_risk["order_id"].isin(previous_at_risk)].sort_values(
        ["risk", "order_id"], ascending=[False, True]
    )
    teams = sorted(set(new["team"]) | (set(policy.teams.values()) if fail_safe else set()))
    digests = []
    for team in teams:
        mine = new[new["team"] == team]
        count, total = len(mine), int(totals.get(team, 0))
        fields = {"as_of": as_of, "count": count, "team": team, "total": total}
        lines = [_format(templates["team_intro"], **fields)]
        for row in mine.head(policy.max_orders_listed).itertuples():
            reasons = json.loads(row.reasons or "[]")
            lines.append(
                _format(
                    templates["team_line"],
                    order_id=row.order_id,
                    customer_id=row.customer_id,
                    risk=f"{row.risk:.0%}",
                    band=row.band,
                    reason=reasons[0][0] if reasons else "unspecified",
                    evidence="; ".join(json.loads(row.evidence or "[]")) or "no evidence beyond the score",
                    what_clears=as_text(row.what_clears),
                    action=row.suggested_action,
                )
            )
        if count > policy.max_orders_listed:
            lines.append(f"... and {count - policy.max_orders_listed} more in the ERP status table.")
        channel = policy.team_channels.get(team)
        digests.append(
            Digest(
                team=team,
                subject=("[auto-release OFF] " if fail_safe else "")
                + _format(templates["team_subject"], **fields),
                lines=lines,
                order_ids=mine["order_id"].tolist(),
                new=count,
                total=total,
                email=channel.email if channel else (),
                slack=channel.slack if channel else None,
                notices=[_format(templates["fail_safe"], why=fail_safe, as_of=as_of)] if fail_safe else [],
            )
        )
    return digests


def customer_drafts(decisions: pd.DataFrame, policy: Policy, *, as_of: str) -> dict[str, dict[str, str]]:
    """Drafts of customer messages per order id, for at-risk orders whose reason has a message template."""
    drafts = {}
    at_risk = decisions[decisions["at_risk"].astype(bool)]
    for row in at_risk.itertuples():
        reasons = json.loads(row.reasons or "[]")
        reason = reasons[0][0] if reasons else None
        template = policy.customer_messages.get(reason)
        if template is None:
            continue
        steps = json.loads(row.what_clears or "[]")
        fields = [f for s in steps if s.get("step") == "ask_customer" for f in s.get("fields", [])]
        missing = _join_words(fields) if fields else "a few missing order details"
        parts = policy.templates["customer_messages"][template]
        values = {
            "order_id": row.order_id,
            "customer_id": row.customer_id,
            "missing": missing,
            "as_of": as_of,
        }
        drafts[row.order_id] = {part: _format(text, **values) for part, text in parts.items()}
    return drafts


def _join_words(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def write_outbox(
    folder: Path, digests: list[Digest], drafts: dict[str, dict[str, str]], sender: str
) -> dict[str, Any]:
    """Write the run's messages and drafts to ``folder``, replacing an earlier run of the interval."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    index = []
    for digest in digests:
        eml = folder / f"{digest.team}.eml"
        eml.write_bytes(bytes(email_message(digest, sender)))
        entry = {"team": digest.team, "new": digest.new, "total": digest.total, "email": str(eml)}
        if digest.slack:
            slack = folder / f"{digest.team}.slack.json"
            slack.write_text(json.dumps(slack_payload(digest), indent=2))
            entry["slack"] = str(slack)
        index.append(entry)
    if drafts:
        (folder / "customer_drafts").mkdir()
    for order_id, draft in drafts.items():
        path = folder / "customer_drafts" / f"{order_id}.txt"
        path.write_text(f"Subject: {draft['subject']}\n\n{draft['body']}")
    (folder / "index.json").write_text(
        json.dumps({"messages": index, "customer_drafts": len(drafts)}, indent=2)
    )
    return {"outbox": str(folder), "messages": len(index), "customer_drafts": len(drafts)}


def email_message(digest: Digest, sender: str) -> EmailMessage:
    """The digest as a plain-text e-mail with an HTML alternative."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(digest.email) or f"{digest.team}@localhost"
    msg["Subject"] = digest.subject
    msg.set_content(digest.text)
    msg.add_alternative(digest.html, subtype="html")
    # A boundary from the content, not a random one: a re-run writes the very same file.
    msg.set_boundary(f"holdcast-{digest.digest_hash}")
    return msg


def slack_payload(digest: Digest) -> dict[str, str]:
    """The body of a Slack incoming-webhook call: ``text`` in Slack's mrkdwn."""
    return {"text": f"*{digest.subject}*\n" + digest.text}


class SlackWebhookNotifier(BaseNotifier):
    """Post a message to a Slack incoming webhook (an Airflow notifier, usable as a callback too).

    The webhook URL is a secret: it lives in the Airflow connection ``slack_conn_id``, in its password
    (or, for a test server, its host). Slack answers 200 with the body ``ok``; anything else fails
    naming the connection, the status and Slack's answer.
    """

    template_fields = ("text",)

    def __init__(self, *, slack_conn_id: str, text: str, timeout: float = WEBHOOK_TIMEOUT_S, **kwargs):
        super().__init__(**kwargs)
        self.slack_conn_id = slack_conn_id
        self.text = text
        self.timeout = timeout

    def notify(self, context) -> None:
        import httpx
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(self.slack_conn_id)
        url = conn.password if (conn.password or "").startswith("http") else conn.host
        if not url or not url.startswith("http"):
            raise ValueError(
                f"connection {self.slack_conn_id!r}: expected the webhook URL (https://hooks.slack.com/...) "
                "in its password"
            )
        response = httpx.post(url, json={"text": self.text}, timeout=self.timeout)
        if response.status_code != 200:
            raise RuntimeError(
                f"Slack webhook of connection {self.slack_conn_id!r} answered {response.status_code}: "
                f"{response.text[:200]}"
            )


def _raw(text: str) -> str:
    """Keep Jinja away from our text: the notifiers render their fields as templates."""
    return "{% raw %}" + text + "{% endraw %}"


def send(digests: list[Digest], sender: str, context: dict, *, as_of: str) -> dict[str, int]:
    """Send each digest through its team's channels, skipping what the ledger says already went out."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    sent = _ledger(as_of)
    counts = {"email": 0, "slack": 0, "already_sent": 0}
    for digest in digests:
        channels = []
        if digest.email:
            channels.append(
                (
                    "email",
                    SmtpNotifier(
                        to=list(digest.email),
                        from_email=sender,
                        subject=_raw(digest.subject),
                        html_content=_raw(digest.html),
                        smtp_conn_id=config.HOLDCAST_SMTP_CONN_ID.get(),
                    ),
                )
            )
        if digest.slack:
            channels.append(
                (
                    "slack",
                    SlackWebhookNotifier(
                        slack_conn_id=digest.slack, text=_raw(slack_payload(digest)["text"])
                    ),
                )
            )
        for channel, notifier in channels:
            key = (digest.team, channel, digest.digest_hash)
            if key in sent:
                counts["already_sent"] += 1
                continue
            notifier(dict(context))
            _record_sent(as_of, *key)
            counts[channel] += 1
            logger.info(
                "Sent %s message to %s for %s (%s new orders)", channel, digest.team, as_of, digest.new
            )
    return counts


def _ledger(as_of: str) -> set[tuple[str, str, str]]:
    from sqlalchemy import inspect, text

    eng = warehouse.engine()
    if not inspect(eng).has_table(LEDGER_TABLE):
        return set()
    with eng.connect() as conn:
        rows = conn.execute(
            text(f"SELECT team, channel, digest_hash FROM {LEDGER_TABLE} WHERE as_of = :a"), {"a": as_of}
        )
        return {tuple(r) for r in rows}


def _record_sent(as_of: str, team: str, channel: str, digest_hash: str) -> None:
    from sqlalchemy import text

    with warehouse.engine().begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} "
                "(as_of VARCHAR(32), team VARCHAR(64), channel VARCHAR(16), digest_hash VARCHAR(32))"
            )
        )
        conn.execute(
            text(f"INSERT INTO {LEDGER_TABLE} VALUES (:a, :t, :c, :h)"),
            {"a": as_of, "t": team, "c": channel, "h": digest_hash},
        )


def _decisions_of(label: str) -> tuple[pd.DataFrame, set[str]]:
    """The interval's decisions and the ids at risk in the latest earlier scored interval."""
    import pandas as pd
    from sqlalchemy import text

    with warehouse.engine().connect() as conn:
        decisions = pd.read_sql(text("SELECT * FROM decisions WHERE as_of = :a"), conn, params={"a": label})
        previous = conn.execute(
            text("SELECT MAX(as_of) FROM decisions WHERE as_of < :a"), {"a": label}
        ).scalar()
        earlier = set()
        if previous is not None:
            earlier = set(
                pd.read_sql(
                    text("SELECT order_id, at_risk FROM decisions WHERE as_of = :a"),
                    conn,
                    params={"a": previous},
                )
                .query("at_risk == 1 or at_risk == True")["order_id"]
                .astype(str)
            )
    if decisions.empty:
        raise LookupError(f"no decisions for {label} in the warehouse; run holdcast_score for it first")
    return decisions, earlier


def notify_teams(as_of: datetime, context: dict | None = None) -> dict[str, Any]:
    """Build the run's team messages and customer drafts, write them to the outbox, and send them if asked."""
    from include.decision_log import fail_safe as fail_safe_of
    from include.decisions import load_policy

    label = warehouse.as_of_label(as_of)
    policy = load_policy(config.HOLDCAST_POLICY_FILE.get())
    decisions, earlier = _decisions_of(label)
    fail_safe = fail_safe_of(as_of, policy)
    digests = team_digests(decisions, earlier, policy, as_of=label, fail_safe=fail_safe)
    drafts = customer_drafts(decisions, policy, as_of=label)
    summary = {
        "as_of": label,
        "teams": {d.team: d.new for d in digests},
        "fail_safe": fail_safe,
        **write_outbox(config.HOLDCAST_OUTBOX_DIR.get() / label, digests, drafts, policy.notify_from),
    }
    if config.HOLDCAST_NOTIFY_MODE.get() == "send":
        summary["sent"] = send(digests, policy.notify_from, context or {}, as_of=label)
    logger.info("Notified: %s", summary)
    return summary
