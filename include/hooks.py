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

    def read_changed(
        self,
        table: str,
        change_column: str,
        *,
        since=None,
        until=None,
    ) -> tuple[pd.DataFrame, object]:
        """Rows of ``table`` whose ``change_column`` is after ``since`` (and not after ``until``).

        The change column is a timestamp (aware datetimes are compared in UTC) or a number that grows
        with every change (a row version). Bounds travel as bound parameters, never as SQL text.

        Returns:
            The rows, oldest change first, and the new watermark: the largest change value read, or
            ``since`` when nothing changed. Pass it as ``since`` next time.
        """
        import pandas as pd
        from sqlalchemy import column, func, inspect, select
        from sqlalchemy import table as sa_table

        engine = self.get_engine()
        if not inspect(engine).has_table(table):
            raise MissingSourceError(f"ERP connection {self.erp_conn_id!r} has no table {table!r}")
        cols = [c["name"] for c in inspect(engine).get_columns(table)]
        if change_column not in cols:
            raise MissingSourceError(
                f"ERP table {table!r} has no change column {change_column!r}; columns are {cols}"
            )
        t = sa_table(table, *(column(c) for c in cols))
        changed = t.c[change_column]
        numeric = isinstance(since, int | float) or isinstance(until, int | float)
        text_stamps = engine.dialect.name == "sqlite" and not numeric
        if text_stamps:
            # SQLite keeps timestamps as text in several layouts: compare them normalised to UTC
            # milliseconds (never dropping a wanted row), then exactly, parsed, below.
            changed = func.strftime("%Y-%m-%d %H:%M:%f", changed)
        query = select(t).order_by(changed)
        if since is not None:
            query = query.where(changed >= _sqlite_stamp(since) if text_stamps else changed > since)
        if until is not None:
            query = query.where(
                changed <= _sqlite_stamp(until, ceil=True) if text_stamps else changed <= until
            )
        with engine.connect() as conn:
            frame = pd.read_sql(query, conn)
        if text_stamps and len(frame):
            stamps = pd.to_datetime(frame[change_column], utc=True, format="ISO8601", errors="coerce")
            keep = pd.Series(True, index=frame.index)
            if since is not None:
                keep &= stamps > pd.Timestamp(since)
            if until is not None:
                keep &= stamps <= pd.Timestamp(until)
            frame = frame[keep].iloc[stamps[keep].argsort(kind="stable")].reset_index(drop=True)
        watermark = since
        if len(frame):
            values = frame[change_column]
            if not numeric and (since is None or not isinstance(since, int | float)):
                parsed = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
                if parsed.notna().all():
                    values = parsed
            watermark = values.max()
            watermark = watermark.to_pydatetime() if isinstance(watermark, pd.Timestamp) else watermark
        logger.info("Read %s changed rows from ERP table %s; watermark %s", len(frame), table, watermark)
        return frame, watermark


def _sqlite_stamp(moment, *, ceil: bool = False) -> str:
    """``moment`` as SQLite's ``strftime('%Y-%m-%d %H:%M:%f')`` text in UTC, floored (or ceiled) to ms."""
    from datetime import UTC, timedelta

    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    floored = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    if ceil and floored != moment:
        floored += timedelta(milliseconds=1)
    return floored.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
