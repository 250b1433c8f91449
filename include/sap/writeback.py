"""Write decisions back to SAP sales orders, exactly once, with an audit row for every attempt.

Two ways to show a decision in SAP (``writeback_mode`` in the connection's extra):

- ``custom_field``: a custom field on the order header (created by a key user with SAP's "Custom
  Fields" app and enabled for ``API_SALES_ORDER_SRV``; its name is ``writeback_field``) receives a
  short text such as ``"high 0.87 credit #3f2a9c0d1e2b4a5c"``: band, risk, top reason, and the
  decision hash after ``#``. The hash is what makes the write idempotent: SAP itself holds it.
- ``delivery_block``: an at-risk decision sets ``DeliveryBlockReason`` to ``delivery_block_reason``
  on an order that has no delivery block. holdcast never clears or replaces a block: releasing an
  order stays a person's decision. Decisions not at risk change nothing.

How one decision is pushed, and why it is applied at most once and, unless SAP keeps refusing,
at least once:

1. If the audit table already records this order and decision hash as applied, nothing is sent.
2. The order is read (``GET``, which also fetches a CSRF token when the client has none). If SAP
   already holds the decision (the hash in the custom field, or our block code), it is recorded as
   applied: this is how a push whose answer was lost in an earlier attempt or run is recognised.
3. Otherwise a ``PATCH`` is sent with ``If-Match`` set to the ETag just read. SAP applies it only if
   the order did not change since the read, so two attempts can never both apply.
4. A lost answer, a 412, a 429, a 5xx or an expired token (403 with ``x-csrf-token: Required``,
   answered by fetching a new token) sends the decision back to step 2, after waiting as
   ``Retry-After`` says or with exponential backoff.
5. After ``max_attempts`` the decision is recorded as ``failed``: not applied, so the next run
   tries it again.

``dry_run`` does steps 1 and 2, logs what it would change and sends and records nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from include.sap.client import (
    ODataClient,
    SapConnectionLost,
    SapError,
    SapODataError,
    SapSettings,
    error_of,
    token_required,
)

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

AUDIT_TABLE = "holdcast_sap_writeback_audit"
DONE = ("applied", "already_applied")
"""Final outcomes after which a decision is never sent again."""
_LOGGED_CHANGES = 20
"""How many would-be changes a dry run logs one by one before it only counts them."""


def _audit_table(metadata):
    from sqlalchemy import Column, DateTime, Integer, String, Table, Text

    return Table(
        AUDIT_TABLE,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("run_id", String(64), nullable=False),
        Column("order_id", String(64), nullable=False, index=True),
        Column("decision_hash", String(32), nullable=False),
        Column("mode", String(16), nullable=False),
        Column("field", String(64), nullable=False),
        Column("value", String(255)),
        Column("attempt", Integer, nullable=False),
        Column("step", String(8), nullable=False),
        Column("outcome", String(32), nullable=False),
        Column("http_status", Integer),
        Column("detail", Text),
        Column("at", DateTime(timezone=True), nullable=False),
    )


@dataclass(frozen=True)
class Target:
    """What one decision should look like in SAP: which field, which value, and when it already does."""

    order_id: str
    decision_hash: str
    field: str
    value: str | None
    """``None``: nothing to write for this decision (delivery-block mode, not at risk)."""

    def satisfied_by(self, current: str | None) -> bool:
        if self.field == "DeliveryBlockReason":
            return current == self.value
        return (current or "").endswith("#" + self.decision_hash)


def sap_order_key(order_id: str) -> str:
    """The order number as the service's key: digits padded to 10, as SAP's ALPHA conversion does."""
    text = str(order_id).strip()
    return text.zfill(10) if text.isdigit() else text


def custom_field_text(decision: dict, length: int) -> str:
    """``"<band> <risk> <top reason> #<hash>"`` cut to ``length``; the hash is never cut."""
    reasons = json.loads(decision.get("reasons") or "[]")
    top = reasons[0][0] if reasons else "none"
    tail = f" #{decision['decision_hash']}"
    head = f"{decision['band']} {float(decision['risk']):.2f} {top}"
    if len(tail) > length:
        raise ValueError(f"writeback_field_length {length} cannot hold the decision hash{tail!r}")
    return head[: length - len(tail)] + tail


class SapWriteBack:
    """Pushes decisions to SAP and records each attempt in :data:`AUDIT_TABLE`.

    Args:
        settings: the SAP connection's settings (:meth:`SapODataHook.settings`).
        audit_engine: where the audit table lives (the warehouse, by default of the caller).
        dry_run: read and log, change nothing, record nothing.
        run_id: written on every audit row (the Airflow run id, or the interval).
        sleep: how to wait between attempts (the tests pass a faster one).
    """

    def __init__(
        self,
        settings: SapSettings,
        audit_engine: Engine,
        *,
        dry_run: bool = False,
        run_id: str | None = None,
        sleep=time.sleep,
    ) -> None:
        from sqlalchemy import MetaData

        self.settings = settings
        self.engine = audit_engine
        self.dry_run = dry_run
        self.run_id = run_id or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.sleep = sleep
        self.metadata = MetaData()
        self.audit = _audit_table(self.metadata)
        self.calls: Counter = Counter()
        self._local = threading.local()
        self._clients: list[ODataClient] = []
        self._lock = threading.Lock()
        self._logged = 0

    # -- public

    def push(self, decisions: pd.DataFrame) -> dict[str, int]:
        """Push every decision; return counts by final outcome.

        Outcomes: ``applied`` (sent now), ``already_applied`` (SAP already held it), ``unchanged``
        (the audit says it was applied before; nothing sent), ``skipped`` (nothing to write, or an
        order blocked by someone else), ``dry_run``, ``rejected`` (SAP refused it for good, e.g.
        unknown order) and ``failed`` (gave up for now; the next run tries again).
        """
        if not self.dry_run:
            self.metadata.create_all(self.engine)
        targets = [self.target(d) for d in decisions.to_dict("records")]
        done = self._already_done(targets)
        counts: Counter = Counter(unchanged=0)
        todo = []
        for target in targets:
            if (target.order_id, target.decision_hash) in done:
                counts["unchanged"] += 1
            elif target.value is None:
                counts["skipped"] += 1
            else:
                todo.append(target)
        pending: list[dict] = []
        started = time.monotonic()
        try:
            with ThreadPoolExecutor(
                max_workers=self.settings.workers, thread_name_prefix="sap-writeback"
            ) as pool:
                futures = [pool.submit(self._push_one, t) for t in todo]
                for future in as_completed(futures):
                    outcome, rows = future.result()
                    counts[outcome] += 1
                    pending.extend(rows)
                    if len(pending) >= 500:
                        self._record(pending)
                        pending = []
        finally:
            self._record(pending)
            for client in self._clients:
                self.calls.update(client.calls)
                client.close()
            self._clients.clear()
        result = dict(sorted(counts.items()))
        logger.info(
            "SAP write-back (%s%s) of %s decisions in %.1f s: %s; requests %s",
            self.settings.writeback_mode,
            ", dry run" if self.dry_run else "",
            len(targets),
            time.monotonic() - started,
            result,
            sum(self.calls.values()),
        )
        return result

    def target(self, decision: dict) -> Target:
        order = sap_order_key(decision["order_id"])
        if self.settings.writeback_mode == "custom_field":
            value = custom_field_text(decision, self.settings.writeback_field_length)
            return Target(order, decision["decision_hash"], self.settings.writeback_field, value)
        value = self.settings.delivery_block_reason if bool(decision["at_risk"]) else None
        return Target(order, decision["decision_hash"], "DeliveryBlockReason", value)

    # -- one decision

    def _client(self) -> ODataClient:
        client = getattr(self._local, "client", None)
        if client is None:
            client = ODataClient(self.settings, sleep=self.sleep)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def _push_one(self, target: Target) -> tuple[str, list[dict]]:
        client = self._client()
        rows: list[dict] = []
        sent = False
        path = f"A_SalesOrder('{target.order_id}')"
        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                current, etag = self._read(client, path, target.field)
            except SapODataError as err:
                outcome = "rejected" if err.status in (400, 404) else "failed"
                return self._final(rows, target, attempt, outcome, err.status, str(err))
            except SapError as err:
                return self._final(rows, target, attempt, "failed", None, str(err))
            if target.satisfied_by(current):
                return self._final(rows, target, attempt, "applied" if sent else "already_applied")
            if target.field == "DeliveryBlockReason" and current:
                return self._final(
                    rows, target, attempt, "skipped", None, f"already blocked with {current!r}"
                )
            if self.dry_run:
                self._log_would_change(target, current)
                return "dry_run", []
            try:
                if client.token is None:
                    client.fetch_token()
                response = client.request(
                    "PATCH",
                    path,
                    json={target.field: target.value},
                    headers={"X-CSRF-Token": client.token, "If-Match": etag or "*"},
                )
            except SapConnectionLost as err:
                # The change may have been applied: the next read decides, never a blind resend.
                sent = True
                rows.append(self._row(target, attempt, "patch", "lost", None, str(err)))
                client.wait(attempt)
                continue
            except SapError as err:
                rows.append(self._row(target, attempt, "patch", "no_token", None, str(err)))
                client.wait(attempt)
                continue
            status = response.status_code
            if response.ok:
                rows.append(self._row(target, attempt, "patch", "ok", status))
                return self._final(rows, target, attempt, "applied", status)
            error = error_of(response)
            if token_required(response):
                client.token = None
                rows.append(self._row(target, attempt, "patch", "token_required", status, str(error)))
            elif status == 412:
                rows.append(self._row(target, attempt, "patch", "etag_mismatch", status, str(error)))
            elif error.retryable:
                sent = sent or status >= 500
                rows.append(self._row(target, attempt, "patch", "retry", status, str(error)))
                client.wait(attempt, response)
            else:
                rows.append(self._row(target, attempt, "patch", "refused", status, str(error)))
                return self._final(rows, target, attempt, "rejected", status, str(error))
        logger.warning(
            "SAP order %s: decision %s not written after %s attempts; the next run tries again",
            target.order_id,
            target.decision_hash,
            self.settings.max_attempts,
        )
        return self._final(rows, target, self.settings.max_attempts, "failed", None, "attempts exhausted")

    def _read(self, client: ODataClient, path: str, field: str) -> tuple[str | None, str | None]:
        headers = {"X-CSRF-Token": "Fetch"} if client.token is None else None
        params = {"$select": f"SalesOrder,LastChangeDateTime,{field}"}
        response = client.get_response(path, params=params, headers=headers)
        client.note_token(response)
        try:
            record = response.json()["d"]
        except (ValueError, KeyError, TypeError) as err:
            raise SapError(f"GET {response.url}: expected {{'d': {{...}}}} ({err})") from err
        if field not in record:
            raise SapError(
                f"SAP order {record.get('SalesOrder')!r} has no field {field!r}: is the custom field "
                f"enabled for API_SALES_ORDER_SRV?"
            )
        etag = response.headers.get("ETag") or (record.get("__metadata") or {}).get("etag")
        return record[field], etag

    # -- audit

    def _row(self, target, attempt, step, outcome, status=None, detail=None) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "order_id": target.order_id,
            "decision_hash": target.decision_hash,
            "mode": self.settings.writeback_mode,
            "field": target.field,
            "value": target.value,
            "attempt": attempt,
            "step": step,
            "outcome": outcome,
            "http_status": status,
            "detail": None if detail is None else str(detail)[:500],
            "at": datetime.now(UTC),
        }

    def _final(self, rows, target, attempt, outcome, status=None, detail=None) -> tuple[str, list[dict]]:
        if self.dry_run:
            return outcome, []
        rows.append(self._row(target, attempt, "result", outcome, status, detail))
        return outcome, rows

    def _record(self, rows: list[dict]) -> None:
        if rows and not self.dry_run:
            with self.engine.begin() as conn:
                conn.execute(self.audit.insert(), rows)

    def _already_done(self, targets: list[Target]) -> set[tuple[str, str]]:
        from sqlalchemy import inspect, select

        if not inspect(self.engine).has_table(AUDIT_TABLE):
            return set()
        audit = self.audit
        done: set[tuple[str, str]] = set()
        ids = sorted({t.order_id for t in targets})
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                query = select(audit.c.order_id, audit.c.decision_hash).where(
                    audit.c.order_id.in_(ids[start : start + 500]),
                    audit.c.mode == self.settings.writeback_mode,
                    audit.c.step == "result",
                    audit.c.outcome.in_(DONE),
                )
                done.update((row.order_id, row.decision_hash) for row in conn.execute(query))
        return done

    def _log_would_change(self, target: Target, current: str | None) -> None:
        with self._lock:
            self._logged += 1
            level = logging.INFO if self._logged <= _LOGGED_CHANGES else logging.DEBUG
        logger.log(
            level,
            "Dry run: SAP order %s: %s would change from %r to %r",
            target.order_id,
            target.field,
            current,
            target.value,
        )


def write_back_to_sap(
    decisions: pd.DataFrame,
    *,
    dry_run: bool = False,
    run_id: str | None = None,
    audit_engine: Engine | None = None,
    conn_id: str | None = None,
) -> dict[str, int]:
    """Push ``decisions`` through the SAP connection (``HOLDCAST_SAP_CONN_ID``), audited in the warehouse.

    The entry point for the scoring task; see :class:`SapWriteBack` for what happens to each decision.
    """
    from sqlalchemy import create_engine

    from include import config
    from include.sap.hook import SapODataHook

    hook = SapODataHook(conn_id or config.HOLDCAST_SAP_CONN_ID.get())
    engine = audit_engine or create_engine(config.HOLDCAST_WAREHOUSE_URL.get())
    return SapWriteBack(hook.settings(), engine, dry_run=dry_run, run_id=run_id).push(decisions)
