"""Reliability of write-back under faults: every decision delivered once, none twice, none lost.

Two runs, each printing decisions delivered, delivered twice, lost, attempts and time:

- SAP: ``--decisions`` decisions (10,000 by default) pushed to the local OData test server
  (``tests/doubles/sap_server.py``) while ``--fault-rate`` of all requests (20% by default) get a
  fault drawn from every kind it has: 500, 503, 429 with Retry-After, expired CSRF token, slow answer
  past the client's timeout, connection dropped before and after the change is applied. Decisions
  not delivered by the first run are left to the next run, as the schedule would; the figures say
  how many runs it took.
- SQL: the same number of decisions upserted into PostgreSQL (``--postgres-url``, a schema of its own,
  dropped afterwards) while the write-back's own connection is terminated mid-batch with
  ``pg_terminate_backend`` from a second connection, first on a batch of new rows, then on a batch
  of changed ones.

Run from the project folder: ``.venv/bin/python -m bench.writeback_faults``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import random
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import create_engine, event, text

from include.decisions import DECISION_COLUMNS

FIELD = "YY1_HoldcastRisk_SDH"
print = functools.partial(print, flush=True)  # noqa: A001 - figures show as they come


def _sap_decisions(n: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    reasons = ("credit", "payment", "incomplete_info", "inventory")
    rows = []
    for i in range(n):
        risk = rng.random()
        rows.append(
            {
                "order_id": str(4711 + i),
                "risk": risk,
                "band": "high" if risk > 0.7 else "medium" if risk > 0.4 else "low",
                "at_risk": risk > 0.4,
                "reasons": f'[["{reasons[i % 4]}", {risk:.3f}]]',
                "decision_hash": f"{rng.getrandbits(64):016x}",
            }
        )
    return pd.DataFrame(rows)


def run_sap(n: int, fault_rate: float, seed: int, workers: int) -> None:
    from include.sap.client import SapSettings
    from include.sap.writeback import SapWriteBack, custom_field_text
    from tests.doubles.sap_server import SapTestServer, odata_date

    decisions = _sap_decisions(n, seed)
    expected = {
        f"{4711 + i:010d}": custom_field_text(d, 60) for i, d in enumerate(decisions.to_dict("records"))
    }
    with SapTestServer(custom_fields={FIELD: 60}) as server, tempfile.TemporaryDirectory() as tmp:
        stamp = datetime(2025, 3, 1, tzinfo=UTC)
        for i in range(n):
            server.add(
                "A_SalesOrder",
                {
                    "SalesOrder": str(4711 + i),
                    "LastChangeDateTime": odata_date(stamp + timedelta(seconds=i), offset=True),
                    "DeliveryBlockReason": "",
                },
            )
        server.faults.rate, server.faults.seed = fault_rate, seed
        server.faults.retry_after, server.faults.slow_seconds = 1, 0.5
        settings = SapSettings(
            base_url=server.base_url,
            login="HOLDCAST",
            password="test-only",
            read_timeout=0.25,
            backoff_seconds=0.05,
            max_backoff_seconds=2.0,
            max_attempts=8,
            workers=workers,
        )
        audit = create_engine(f"sqlite:///{Path(tmp) / 'warehouse.db'}")
        started = time.monotonic()
        runs: list[dict] = []
        requests = Counter()
        while True:
            push = SapWriteBack(settings, audit, run_id=f"run{len(runs) + 1}")
            runs.append(push.push(decisions))
            requests.update(push.calls)
            if not runs[-1].get("failed") or len(runs) == 5:
                break
        elapsed = time.monotonic() - started
        time.sleep(server.faults.slow_seconds + 0.2)  # requests the client gave up on finish server-side
        with server.lock:
            held = {k[0]: r.get(FIELD) for k, r in server.data["A_SalesOrder"].items()}
            twice = sum(1 for count in server.applied.values() if count > 1)
            applications = sum(server.applied.values())
        delivered = sum(1 for order, text_ in expected.items() if held.get(order) == text_)
        patches = sum(v for (method, _), v in requests.items() if method == "PATCH")
        print(f"SAP write-back: {n} decisions, {fault_rate:.0%} of requests faulted, {workers} workers")
        print(f"  runs needed:         {len(runs)}  ({'; '.join(str(r) for r in runs)})")
        print(f"  delivered:           {delivered}")
        print(f"  delivered twice:     {twice}")
        print(f"  lost:                {n - delivered}")
        print(f"  changes applied:     {applications} (server side)")
        print(f"  attempts:            {patches} PATCH, {sum(requests.values())} requests in all")
        print(f"  faults injected:     {dict(sorted(server.faults.injected.items()))}")
        print(f"  time:                {elapsed:.1f} s")


def _sql_decisions(n: int, version: str) -> pd.DataFrame:
    rows = []
    for i in range(n):
        row = {c: None for c in DECISION_COLUMNS}
        row.update(
            order_id=f"{4711 + i:010d}",
            risk=(i % 100) / 100,
            band="medium",
            at_risk=True,
            reasons="[]",
            evidence="[]",
            model_version=version,
            policy_version="p1",
            as_of="2025-06-30",
            decision_hash=f"{version}{i:015x}",
        )
        rows.append(row)
    return pd.DataFrame(rows)


def run_sql(n: int, url: str) -> None:
    from include.writeback import AUDIT_TABLE, STATUS_TABLE, write_back

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    schema = f"hc_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    state = {"batches": 0, "kill_at": None, "kills": 0, "transactions": 0}

    @event.listens_for(engine, "begin")
    def count_transaction(conn):
        state["transactions"] += 1

    @event.listens_for(engine, "before_cursor_execute")
    def kill_mid_batch(conn, cursor, statement, parameters, context, executemany):
        if not statement.startswith(f"INSERT INTO {STATUS_TABLE}") or state["kill_at"] is None:
            return
        state["batches"] += 1
        if state["batches"] == state["kill_at"]:
            pid = conn.connection.dbapi_connection.get_backend_pid()
            with admin.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            state["kills"] += 1
            state["kill_at"] = None

    try:
        print(f"SQL write-back (PostgreSQL upsert): {n} decisions per run, own connection killed mid-batch")
        # SQLAlchemy sends the rows in batches of 1,000 (insertmanyvalues): kill inside the batch.
        middle = max(1, n // 2000)
        for label, version, kill_at in (
            ("new rows", "a", middle),
            ("changed rows", "b", max(1, n // 1000 - 2)),
            ("same again", "b", None),
        ):
            decisions = _sql_decisions(n, version)
            state.update(batches=0, kill_at=kill_at, kills=0, transactions=0)
            started = time.monotonic()
            counts = write_back(engine, decisions, attempts=3)
            elapsed = time.monotonic() - started
            attempts = state["transactions"] - 1  # one transaction creates the tables when missing
            with engine.connect() as conn:
                status = pd.read_sql(text(f"SELECT order_id, decision_hash FROM {STATUS_TABLE}"), conn)
                audit = pd.read_sql(text(f"SELECT order_id, decision_hash FROM {AUDIT_TABLE}"), conn)
            held = dict(zip(status["order_id"], status["decision_hash"], strict=True))
            delivered = sum(
                1
                for o, h in zip(decisions["order_id"], decisions["decision_hash"], strict=True)
                if held.get(o) == h
            )
            twice = int(audit.duplicated().sum())
            print(
                f"  {label:<13} killed {state['kills']}x: {counts}; delivered {delivered}, "
                f"delivered twice {twice}, lost {n - delivered}, attempts {attempts}, {elapsed:.1f} s"
            )
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=10_000)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    parser.add_argument("--skip-sql", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    run_sap(args.decisions, args.fault_rate, args.seed, args.workers)
    if not args.skip_sql:
        run_sql(args.decisions, args.postgres_url)


if __name__ == "__main__":
    main()
