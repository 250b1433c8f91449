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


def write_back(engine: Engine, decisions: pd.DataFrame, *, dry_run: bool = False) -> dict[str, int]:
    """Upsert ``decisions`` into the status table; return counts of inserted, updated and unchanged rows."""
    from sqlalchemy import MetaData, bindparam, select, update

    metadata = MetaData()
    status, audit = _tables(metadata)
    if not dry_run:
        metadata.create_all(engine)

    rows = decisions.rename(columns={"as_of": "decided_as_of"})[_WRITTEN]
    records = [
        {k: (None if v is None or v != v else v) for k, v in rec.items()} for rec in rows.to_dict("records")
    ]
    with engine.begin() as conn:
        existing: dict[str, str] = {}
        if engine.dialect.has_table(conn, STATUS_TABLE):
            ids = [r["order_id"] for r in records]
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                query = select(status.c.order_id, status.c.decision_hash).where(status.c.order_id.in_(chunk))
                existing.update({row.order_id: row.decision_hash for row in conn.execute(query)})
        inserts = [r for r in records if r["order_id"] not in existing]
        updates = [
            r for r in records if r["order_id"] in existing and existing[r["order_id"]] != r["decision_hash"]
        ]
        counts = {
            "inserted": len(inserts),
            "updated": len(updates),
            "unchanged": len(records) - len(inserts) - len(updates),
        }
        if dry_run:
            logger.info("Dry run: write-back to %s would give %s", STATUS_TABLE, counts)
            return counts
        if inserts:
            conn.execute(status.insert(), inserts)
        if updates:
            stmt = (
                update(status)
                .where(status.c.order_id == bindparam("key"))
                .values({c: bindparam(c) for c in _WRITTEN if c != "order_id"})
            )
            conn.execute(stmt, [{**r, "key": r["order_id"]} for r in updates])
        changed = [(r, "insert") for r in inserts] + [(r, "update") for r in updates]
        if changed:
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
    logger.info("Wrote back to %s: %s", STATUS_TABLE, counts)
    return counts
