"""Write-back against real databases: SQLite and the local PostgreSQL server."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from include.decisions import DECISION_COLUMNS
from include.writeback import AUDIT_TABLE, STATUS_TABLE, write_back

pytestmark = pytest.mark.integration

POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def _decisions(n=3, risk=0.5, as_of="2025-06-30"):
    rows = []
    for i in range(n):
        row = {c: None for c in DECISION_COLUMNS}
        row.update(
            order_id=f"O{i}",
            customer_id="C1",
            risk=risk,
            band="medium",
            at_risk=True,
            reasons='[["credit", 0.4]]',
            evidence="[]",
            team="credit_analysts",
            suggested_action="act",
            model_name="m",
            model_version="1",
            policy_version="p1",
            as_of=as_of,
            decision_hash=f"h{i}-{risk}",
        )
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        yield create_engine(f"sqlite:///{tmp_path / 'erp.db'}")
        return
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    schema = f"hc_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    eng = create_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    yield eng
    eng.dispose()
    with admin.connect() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


def _table(engine, name):
    with engine.connect() as conn:
        return pd.read_sql(text(f"SELECT * FROM {name} ORDER BY order_id"), conn)


def test_same_decisions_twice_is_one_write(engine):
    assert write_back(engine, _decisions()) == {"inserted": 3, "updated": 0, "unchanged": 0}
    first = _table(engine, STATUS_TABLE)
    assert write_back(engine, _decisions(as_of="2025-07-01")) == {"inserted": 0, "updated": 0, "unchanged": 3}
    pd.testing.assert_frame_equal(first, _table(engine, STATUS_TABLE))
    assert len(_table(engine, AUDIT_TABLE)) == 3


def test_changed_decision_updates_and_is_audited(engine):
    write_back(engine, _decisions())
    changed = _decisions(risk=0.9, as_of="2025-07-01").iloc[:1]
    assert write_back(engine, changed) == {"inserted": 0, "updated": 1, "unchanged": 0}
    status = _table(engine, STATUS_TABLE).set_index("order_id")
    assert status.loc["O0", "risk"] == 0.9 and status.loc["O0", "decided_as_of"] == "2025-07-01"
    assert status.loc["O1", "risk"] == 0.5
    audit = _table(engine, AUDIT_TABLE)
    assert audit["change"].tolist().count("update") == 1


def test_dry_run_writes_nothing(engine):
    assert write_back(engine, _decisions(), dry_run=True) == {"inserted": 3, "updated": 0, "unchanged": 0}
    with engine.connect() as conn:
        assert not engine.dialect.has_table(conn, STATUS_TABLE)
