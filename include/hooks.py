"""Airflow hook for an ERP or staging database reachable by SQLAlchemy.

The connection is an ordinary Airflow connection. Two ways to describe the database:

- an extra ``sqlalchemy_url`` (handy for SQLite files:
  ``AIRFLOW_CONN_HOLDCAST_ERP='{"conn_type": "generic", "extra": {"sqlalchemy_url": "sqlite:///erp.db"}}'``);
- or the usual fields: ``conn_type`` postgres/mysql, host, port, login, password, schema (the database).

Credentials stay in the connection; nothing here logs them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

from include.errors import MissingSourceError

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

_DRIVERS = {
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "mysql": "mysql+pymysql",
    "sqlite": "sqlite",
}


class ErpSqlHook(BaseHook):
    """Reads ERP tables and writes statuses back through SQLAlchemy.

    Args:
        erp_conn_id: the Airflow connection id of the ERP database.
    """

    conn_name_attr = "erp_conn_id"
    default_conn_name = "holdcast_erp"
    conn_type = "generic"
    hook_name = "holdcast ERP (SQL)"

    def __init__(self, erp_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.erp_conn_id = erp_conn_id
        self._engine: Engine | None = None

    def sqlalchemy_url(self) -> str:
        conn = self.get_connection(self.erp_conn_id)
        url = conn.extra_dejson.get("sqlalchemy_url")
        if url:
            return url
        driver = _DRIVERS.get(conn.conn_type or "")
        if driver is None:
            raise ValueError(
                f"connection {self.erp_conn_id!r}: conn_type {conn.conn_type!r} is not supported; use one of "
                f"{sorted(_DRIVERS)} or set extra 'sqlalchemy_url'"
            )
        from sqlalchemy.engine import URL

        return URL.create(
            driver,
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
        ).render_as_string(hide_password=False)

    def get_engine(self) -> Engine:
        if self._engine is None:
            from sqlalchemy import create_engine

            self._engine = create_engine(self.sqlalchemy_url())
        return self._engine

    def read_table(self, table: str, *, time_column: str | None = None, before=None) -> pd.DataFrame:
        """Read one table, only the rows whose ``time_column`` is before ``before`` when both are given."""
        import pandas as pd
        from sqlalchemy import column, inspect, select
        from sqlalchemy import table as sa_table

        engine = self.get_engine()
        if not inspect(engine).has_table(table):
            raise MissingSourceError(f"ERP connection {self.erp_conn_id!r} has no table {table!r}")
        cols = [c["name"] for c in inspect(engine).get_columns(table)]
        t = sa_table(table, *(column(c) for c in cols))
        query = select(t)
        filter_after_read = engine.dialect.name == "sqlite"
        if time_column is not None and before is not None and not filter_after_read:
            query = query.where(t.c[time_column] < before)
        with engine.connect() as conn:
            frame = pd.read_sql(query, conn)
        if time_column is not None and before is not None and filter_after_read:
            # SQLite keeps timestamps as text in more than one layout; compare them parsed, not as text.
            stamps = pd.to_datetime(frame[time_column], utc=True, format="ISO8601", errors="coerce")
            frame = frame[~(stamps >= before)].reset_index(drop=True)
        logger.info("Read %s rows from ERP table %s", len(frame), table)
        return frame
