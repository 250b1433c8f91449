"""Where the pipeline keeps its data: the lake (Parquet) and the warehouse (SQL).

The lake holds immutable partitions, one per data interval, named by the interval's ``as_of`` date:

    lake/raw/<source>/<table>/as_of=YYYY-MM-DD/part.parquet      what a source sent, untouched
    lake/canonical/<table>/as_of=YYYY-MM-DD/part.parquet         validated, typed canonical rows
    lake/features/as_of=YYYY-MM-DD/{features,labels,orders}.parquet

Re-running an interval rewrites its own partition and nothing else, so a re-run leaves the same state.
The warehouse (SQLite by default) holds what people and other systems query: the latest canonical
tables, the quarantine, and the decisions of every scoring run.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from include import canonical, config

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)


def as_of_label(as_of: datetime) -> str:
    """The partition name of an interval: its as-of instant in UTC, to the second when not midnight."""
    if (as_of.hour, as_of.minute, as_of.second) == (0, 0, 0):
        return as_of.strftime("%Y-%m-%d")
    return as_of.strftime("%Y-%m-%dT%H%M%S")


def lake_path(*parts: str) -> Path:
    return config.HOLDCAST_LAKE_DIR.get().joinpath(*parts)


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` atomically (a partial file never replaces a good one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp)
    tmp.replace(path)
    return path


def canonical_partition(table: str, as_of: datetime, source: str) -> Path:
    """One source's validated rows of one table for one interval; a table may have several sources."""
    return lake_path("canonical", table, f"as_of={as_of_label(as_of)}", f"{source}.parquet")


def read_canonical(as_of: datetime) -> dict[str, pd.DataFrame]:
    """All canonical tables of one interval, typed; a table no source delivered is an empty frame."""
    import pandas as pd

    tables = {}
    for name in canonical.TABLES:
        parts = sorted(lake_path("canonical", name, f"as_of={as_of_label(as_of)}").glob("*.parquet"))
        if parts:
            frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
            tables[name] = canonical.coerce(name, frame)
        else:
            logger.debug("No canonical partition for %s at %s", name, as_of_label(as_of))
            tables[name] = canonical.empty_frame(name)
    return tables


def features_dir(as_of: datetime) -> Path:
    return lake_path("features", f"as_of={as_of_label(as_of)}")


def latest_features_dir(not_after: datetime) -> tuple[Path, datetime]:
    """The newest feature snapshot at or before ``not_after``, for a run that has no snapshot of its own."""
    root = lake_path("features")
    candidates = []
    for child in root.glob("as_of=*"):
        when = parse_as_of_label(child.name.removeprefix("as_of="))
        if when <= not_after and (child / "features.parquet").exists():
            candidates.append((when, child))
    if not candidates:
        raise FileNotFoundError(
            f"no feature snapshot at or before {not_after.isoformat()} under {root}; "
            "run the holdcast_features DAG for that interval first"
        )
    when, path = max(candidates)
    return path, when


def parse_as_of_label(label: str) -> datetime:
    """The inverse of :func:`as_of_label`."""

    fmt = "%Y-%m-%dT%H%M%S" if "T" in label else "%Y-%m-%d"
    return datetime.strptime(label, fmt).replace(tzinfo=UTC)


def engine() -> Engine:
    from sqlalchemy import create_engine

    url = config.HOLDCAST_WAREHOUSE_URL.get()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # Mapped ingest tasks may write at the same moment: wait for SQLite's lock rather than fail.
        return create_engine(url, connect_args={"timeout": 60})
    return create_engine(url)


def _declared_tables(metadata):
    """Warehouse tables whose column types must not depend on the first batch written (it may be empty)."""
    from sqlalchemy import Column, Integer, String, Table, Text

    from include.decisions import decision_sql_columns

    return {
        "quarantine": Table(
            "quarantine",
            metadata,
            Column("source", String(64), nullable=False),
            Column("batch", String(32), nullable=False),
            Column("table_name", String(64), nullable=False),
            Column("row_number", Integer, nullable=False),
            Column("rules", Text, nullable=False),
            Column("raw", Text),
        ),
        "decisions": Table("decisions", metadata, *decision_sql_columns(as_of_column="as_of", key=False)),
    }


def replace_rows(table: str, frame: pd.DataFrame, *, where: dict[str, object]) -> int:
    """Delete the rows of ``table`` matching ``where``, then append ``frame``: an idempotent write."""
    from sqlalchemy import MetaData, and_, column, delete, inspect
    from sqlalchemy import table as sa_table

    eng = engine()
    declared = _declared_tables(MetaData()).get(table)
    with eng.begin() as conn:
        if declared is not None:
            declared.create(conn, checkfirst=True)
        if inspect(conn).has_table(table):
            t = sa_table(table, *(column(k) for k in where))
            conn.execute(delete(t).where(and_(*(t.c[k] == v for k, v in where.items()))))
        if len(frame) or declared is None:
            frame.to_sql(table, conn, if_exists="append", index=False, chunksize=10_000)
    return len(frame)


def replace_table(table: str, frame: pd.DataFrame) -> int:
    """Replace a whole warehouse table with ``frame``."""
    with engine().begin() as conn:
        frame.to_sql(table, conn, if_exists="replace", index=False, chunksize=10_000)
    return len(frame)


def published_as_of() -> datetime | None:
    """The interval whose canonical tables the warehouse holds, if any."""
    from sqlalchemy import inspect, text

    eng = engine()
    if not inspect(eng).has_table("published_snapshot"):
        return None
    with eng.connect() as conn:
        label = conn.execute(text("SELECT as_of FROM published_snapshot")).scalar()
    return parse_as_of_label(label) if label else None


def record_published(as_of: datetime) -> None:
    from sqlalchemy import text

    with engine().begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS published_snapshot (as_of VARCHAR(32))"))
        conn.execute(text("DELETE FROM published_snapshot"))
        conn.execute(text("INSERT INTO published_snapshot (as_of) VALUES (:a)"), {"a": as_of_label(as_of)})
