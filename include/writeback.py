"""Write decisions back into the ERP's order-status table, idempotently and with an audit trail.

The status table holds one row per order (the current decision); the audit table one row per change.
A decision whose ``decision_hash`` equals the one already written is not written again, so running
the same interval twice, or a retry after a partial failure, leaves the ERP as one clean run would.
``dry_run`` reports what would change and writes nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from include.decisions import DECISION_COLUMNS, decision_sql_columns

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

STATUS_TABLE = "holdcast_order_status"
AUDIT_TABLE = "holdcast_writeback_audit"
_WRITTEN = [c for c in DECISION_COLUMNS if c != "as_of"] + ["decided_as_of"]
_BATCH_ROWS = 1_000
"""Rows per upsert statement; all batches of one write-back share one transaction."""


def _tables(metadata):
    from sqlalchemy import Column, Integer, String, Table

    status = Table(STATUS_TABLE, metadata, *decision_sql_columns(as_of_column="decided_as_of", key=True))
    audit = Table(
        AUDIT_TABLE,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("order_id", String(64), nullable=False, index=True),
        Column("decision_hash", String(32), nullable=False),
        Column("decided_as_of", String(32)),
        Column("change", String(8)),
        Column("model_version", String(32)),
        Column("policy_version", String(32)),
    )
    return status, audit


def write_back(
    engine: Engine, decisions: pd.DataFrame, *, dry_run: bool = False, attempts: int = 3
) -> dict[str, int]:
    """Upsert ``decisions`` into the status table; return counts of inserted, updated and unchanged rows.

    The status rows and their audit rows are written in one transaction with bound parameters: a
    connection lost half way leaves nothing behind, and the whole batch is tried again, up to
    ``attempts`` times (then the error is raised; the next run writes what is still missing).
    """
    from sqlalchemy import MetaData
    from sqlalchemy.exc import DBAPIError

    metadata = MetaData()
    status, audit = _tables(metadata)
    if not dry_run:
        metadata.create_all(engine)
    rows = decisions.rename(columns={"as_of": "decided_as_of"})[_WRITTEN]
    records = [
        {k: (None if v is None or v != v else v) for k, v in rec.items()} for rec in rows.to_dict("records")
    ]
    attempt = 1
    while True:
        try:
            counts = _write_once(engine, status, audit, records, dry_run=dry_run)
        except DBAPIError as err:
            if not err.connection_invalidated or attempt >= attempts:
                raise
            logger.warning(
                "Write-back to %s lost its connection (%s); writing the batch again (attempt %s of %s)",
                STATUS_TABLE,
                type(err.orig).__name__,
                attempt + 1,
                attempts,
            )
            attempt += 1
            continue
        logger.info("%s to %s: %s", "Dry run: write-back" if dry_run else "Wrote back", STATUS_TABLE, counts)
        return counts


def _write_once(engine, status, audit, records, *, dry_run: bool) -> dict[str, int]:
    from sqlalchemy import select

    with engine.begin() as conn:
        existing: dict[str, str] = {}
        if engine.dialect.has_table(conn, STATUS_TABLE):
            ids = [r["order_id"] for r in records]
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                query = select(status.c.order_id, status.c.decision_hash).where(status.c.order_id.in_(chunk))
                existing.update({row.order_id: row.decision_hash for row in conn.execute(query)})
        changed = [
            (r, "insert" if r["order_id"] not in existing else "update")
            for r in records
            if existing.get(r["order_id"]) != r["decision_hash"]
        ]
        inserted = sum(1 for _, kind in changed if kind == "insert")
        counts = {
            "inserted": inserted,
            "updated": len(changed) - inserted,
            "unchanged": len(records) - len(changed),
        }
        if dry_run or not changed:
            return counts
        upsert = _upsert(engine.dialect.name, status)
        for start in range(0, len(changed), _BATCH_ROWS):
            conn.execute(upsert, [r for r, _ in changed[start : start + _BATCH_ROWS]])
        conn.execute(
            audit.insert(),
            [
                {
                    "order_id": r["order_id"],
                    "decision_hash": r["decision_hash"],
                    "decided_as_of": r["decided_as_of"],
                    "change": kind,
                    "model_version": r["model_version"],
                    "policy_version": r["policy_version"],
                }
                for r, kind in changed
            ],
        )
    return counts


def _upsert(dialect: str, status):
    """``INSERT ... ON CONFLICT (order_id) DO UPDATE`` (or MySQL's form) touching changed rows only.

    A row written by a concurrent run between our read and this statement is overwritten rather than
    failing the batch on its key; its hash decides whether anything changes.
    """
    values = [c for c in _WRITTEN if c != "order_id"]
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(status)
        return stmt.on_conflict_do_update(
            index_elements=[status.c.order_id],
            set_={c: stmt.excluded[c] for c in values},
            where=status.c.decision_hash.is_distinct_from(stmt.excluded.decision_hash),
        )
    if dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert

        stmt = insert(status)
        return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in values})
    raise NotImplementedError(
        f"write-back has no upsert for the {dialect!r} database; supported: postgresql, sqlite, mysql"
    )
