"""Ingest one source for one data interval: extract, land raw, validate, write canonical rows.

A source is a name and a reader returning raw frames per canonical table. Which sources a run reads
depends on ``HOLDCAST_DATASET``:

- ``demo``: the demo ERP database (through :class:`include.hooks.ErpSqlHook`), the credit-bureau and
  CRM file extracts, and the sanctions list extract;
- ``dataco``: the DataCo public sample shipped in ``include/data`` and the OFAC SDN list.

Every step writes its own partition for the interval, so re-running an interval is harmless.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from include import canonical, config, warehouse
from include.errors import MissingSourceError

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

ERP_TABLES = (
    "customers",
    "credit_profiles",
    "orders",
    "order_lines",
    "invoices",
    "payments",
    "disputes",
    "holds",
    "inventory",
)
# Tables a young ERP can lack rows of. A file extract with no rows is a dead feed, not "nothing
# happened", so bureau, CRM and sanctions tables must have rows.
MAY_BE_EMPTY = {"credit_profiles", "payments", "disputes", "holds", "inventory"}


@dataclass(frozen=True)
class Source:
    name: str
    tables: tuple[str, ...]
    read: Callable[[datetime], dict[str, pd.DataFrame]]


def _read_erp(as_of: datetime) -> dict[str, pd.DataFrame]:
    from include.hooks import ErpSqlHook

    hook = ErpSqlHook(config.HOLDCAST_ERP_CONN_ID.get())
    return {
        name: hook.read_table(name, time_column=canonical.TABLES[name].time_column, before=as_of)
        for name in ERP_TABLES
    }


def _read_csv_drop(table: str, relative: str) -> Callable[[datetime], dict[str, pd.DataFrame]]:
    def read(as_of: datetime) -> dict[str, pd.DataFrame]:
        import pandas as pd

        path = config.HOLDCAST_DROP_DIR.get() / relative
        _require_file(path, table)
        frame = pd.read_csv(path, dtype="string", keep_default_na=False, na_values=[""])
        time_column = canonical.TABLES[table].time_column
        if time_column and time_column in frame.columns:
            stamps = pd.to_datetime(frame[time_column], utc=True, format="ISO8601", errors="coerce")
            # Rows whose time does not parse stay in: validation quarantines them with the reason.
            frame = frame[~(stamps >= as_of)]
        return {table: frame}

    return read


def _read_sanctions_drop(as_of: datetime) -> dict[str, pd.DataFrame]:
    from include.sources.sdn import read_sdn

    path = config.HOLDCAST_DROP_DIR.get() / "sanctions" / "sdn.csv"
    _require_file(path, "sanctions_entries")
    return {"sanctions_entries": read_sdn(path)}


def _read_dataco(as_of: datetime) -> dict[str, pd.DataFrame]:
    from include.sources.dataco import DATACO_SAMPLE, read_dataco

    _require_file(DATACO_SAMPLE, "orders")
    tables = read_dataco(DATACO_SAMPLE)
    return {name: frame for name, frame in tables.items() if name in canonical.TABLES}


def _read_sdn_list(as_of: datetime) -> dict[str, pd.DataFrame]:
    from include.sources.sdn import SDN_LIST, read_sdn

    _require_file(SDN_LIST, "sanctions_entries")
    return {"sanctions_entries": read_sdn(SDN_LIST)}


def _require_file(path: Path, table: str) -> None:
    if not path.is_file():
        raise MissingSourceError(f"expected a file for table {table!r} at {path}, found none")
    if path.stat().st_size == 0:
        raise MissingSourceError(f"file for table {table!r} at {path} is empty")


SOURCES: dict[str, dict[str, Source]] = {
    "demo": {
        "erp": Source("erp", ERP_TABLES, _read_erp),
        "bureau": Source(
            "bureau", ("bureau_reports",), _read_csv_drop("bureau_reports", "bureau/bureau_reports.csv")
        ),
        "crm": Source("crm", ("interactions",), _read_csv_drop("interactions", "crm/interactions.csv")),
        "sanctions": Source("sanctions", ("sanctions_entries",), _read_sanctions_drop),
    },
    "dataco": {
        "dataco": Source("dataco", ("customers", "orders", "order_lines", "holds"), _read_dataco),
        "sanctions": Source("sanctions", ("sanctions_entries",), _read_sdn_list),
    },
}


def source_names(dataset: str | None = None) -> list[str]:
    return list(SOURCES[dataset or config.HOLDCAST_DATASET.get()])


def ingest_source(name: str, as_of: datetime, *, dataset: str | None = None) -> dict[str, object]:
    """Extract, land, validate and write one source for the interval ending at ``as_of``.

    Returns:
        A small summary (rows good and quarantined per table, where the report is) for XCom.

    Raises:
        MissingSourceError: the source, or one of its tables, is absent or empty.
        include.validation.ValidationFailed: a batch broke a table-level rule or the tolerance.
    """
    from include import validation

    source = SOURCES[dataset or config.HOLDCAST_DATASET.get()][name]
    label = warehouse.as_of_label(as_of)
    frames = source.read(as_of)
    tolerance = config.HOLDCAST_QUARANTINE_TOLERANCE.get()
    summary: dict[str, object] = {"source": name, "as_of": label, "tables": {}}
    reports = []
    for table in source.tables:
        if table not in frames:
            raise MissingSourceError(f"source {name!r} delivered no table {table!r}")
        raw = frames[table]
        warehouse.write_parquet(
            raw.astype("string"), warehouse.lake_path("raw", name, table, f"as_of={label}", "part.parquet")
        )
        try:
            outcome = validation.validate(
                table, raw, source=name, batch=label, tolerance=tolerance, allow_empty=table in MAY_BE_EMPTY
            )
        except validation.ValidationFailed as err:
            # The failed batch's bad rows are kept too, so they can be queried, not only counted.
            if err.quarantine is not None:
                warehouse.replace_rows(
                    "quarantine", err.quarantine, where={"source": name, "batch": label, "table_name": table}
                )
            reports.append(err.report)
            _write_report(name, label, reports)
            raise
        warehouse.write_parquet(outcome.good, warehouse.canonical_partition(table, as_of, name))
        warehouse.replace_rows(
            "quarantine", outcome.quarantine, where={"source": name, "batch": label, "table_name": table}
        )
        reports.append(outcome.report)
        summary["tables"][table] = {"good": len(outcome.good), "quarantined": len(outcome.quarantine)}
    summary["report"] = str(_write_report(name, label, reports))
    logger.info("Ingested source %s for %s: %s", name, label, summary["tables"])
    return summary


def _write_report(source: str, label: str, reports: list[dict]) -> Path:
    path = warehouse.lake_path("reports", "validation", f"as_of={label}", f"{source}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(reports, indent=2, default=str))
    return path


def publish(as_of: datetime) -> dict[str, int]:
    """Load the interval's canonical tables into the warehouse for SQL consumers; return row counts."""
    label = warehouse.as_of_label(as_of)
    tables = warehouse.read_canonical(as_of)
    if tables["orders"].empty:
        raise MissingSourceError(f"no orders were ingested for {label}")
    newest = warehouse.published_as_of()
    if newest is not None and newest > as_of:
        # A backfill of an older interval must not replace what SQL users see with older data.
        logger.info("Warehouse keeps the newer snapshot of %s; %s stays in the lake only", newest, label)
        return {name: len(frame) for name, frame in tables.items()}
    counts = {name: warehouse.replace_table(name, frame) for name, frame in tables.items()}
    warehouse.record_published(as_of)
    logger.info("Published canonical tables for %s: %s", label, counts)
    return counts
