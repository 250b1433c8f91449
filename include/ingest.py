"""Ingest one source for one data interval: extract, map, land raw, validate, write canonical rows.

Each source is a mapping file in ``include/mappings/`` (see :mod:`include.mapping`): how to read it and
how its fields become canonical columns. Which sources a run reads is the set of mappings whose
``datasets`` name ``HOLDCAST_DATASET``:

- ``demo``: the demo ERP database (``read.format: sql``, through :class:`include.hooks.ErpSqlHook`),
  the credit-bureau and CRM file extracts, and the sanctions list extract;
- ``dataco``: the DataCo public sample shipped in ``include/data`` and the OFAC SDN list.

Every input row of a table ends in exactly one place: the canonical partition, the quarantine table
(with the rule it broke), or, when it is dated at or after the interval's end, the next interval
(``rows_after_interval`` in the report). Every step writes its own partition for the interval, so
re-running an interval is harmless and picks up rows that arrived late.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from include import canonical, config, mapping, warehouse
from include.errors import MissingSourceError

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

# Tables a young ERP can lack rows of. A file extract with no rows is a dead feed, not "nothing
# happened", so bureau, CRM and sanctions tables must have rows.
MAY_BE_EMPTY = {"credit_profiles", "payments", "disputes", "holds", "inventory"}
PACKAGE_DATA = Path(__file__).resolve().parent / "data"
REFERENCES: tuple[tuple[str, str, str], ...] = (
    # (child table, parent table, child column holding the parent's key)
    ("orders", "customers", "customer_id"),
    ("invoices", "customers", "customer_id"),
    ("order_lines", "orders", "order_id"),
)
"""Referential integrity. Checked row by row when the parent comes from the same source (an orphan is
quarantined); across sources, :func:`publish` reports orphans without dropping them, since the parent's
source may simply deliver later."""


def sources(dataset: str | None = None) -> dict[str, mapping.Mapping]:
    """The source mappings a run of ``dataset`` (default ``HOLDCAST_DATASET``) reads, by source name."""
    name = dataset or config.HOLDCAST_DATASET.get()
    found = mapping.for_dataset(name, config.HOLDCAST_MAPPINGS_DIR.get())
    if not found:
        raise MissingSourceError(
            f"no mapping in {config.HOLDCAST_MAPPINGS_DIR.get()} names dataset {name!r} in its 'datasets' "
            "list: add one, or set HOLDCAST_DATASET to a dataset that has mappings"
        )
    return found


def source_names(dataset: str | None = None) -> list[str]:
    return list(sources(dataset))


def extract(
    source: mapping.Mapping, as_of: datetime, *, path: Path | None = None
) -> dict[str, mapping.Mapped]:
    """Read a source (or, for a file format, the file at ``path``) and map it into its canonical tables."""
    fmt = source.format
    if fmt in ("csv", "parquet", "odata_json"):
        rows = mapping.read_rows(source, path=path)
        return {table: mapping.apply(source, table, rows) for table in source.canonical_tables}
    if fmt == "sql":
        return _extract_sql(source, as_of)
    if fmt == "sap_odata":
        rows = mapping.read_odata_page(path) if path is not None else _read_sap(source, as_of)
        return {table: mapping.apply(source, table, rows) for table in source.canonical_tables}
    path = path or _file(source)
    if fmt == "ofac_sdn":
        from include.sources.sdn import read_sdn

        frames = {"sanctions_entries": read_sdn(path)}
    elif fmt == "dataco":
        from include.sources.dataco import read_dataco

        frames = dict(read_dataco(path))
    else:
        raise mapping.MappingError(f"{source.path}: read.format {fmt!r} has no reader")
    return {
        table: mapping.apply(source, table, frames[table].astype("string"))
        for table in source.canonical_tables
    }


def _extract_sql(source: mapping.Mapping, as_of: datetime) -> dict[str, mapping.Mapped]:
    """Read each block's SQL table (rows dated before ``as_of`` only) and map it."""
    from include.hooks import ErpSqlHook

    hook = ErpSqlHook(source.read.get("conn_id") or config.HOLDCAST_ERP_CONN_ID.get())
    parts: dict[str, list[mapping.Mapped]] = {}
    for block in source.tables.values():
        time_column = canonical.TABLES[block.table].time_column
        source_time = next((f.column for f in block.fields if f.target == time_column), None)
        rows = hook.read_table(block.source_table, time_column=source_time, before=as_of)
        parts.setdefault(block.table, []).append(mapping.apply_block(source, block, rows))
    return {table: mapping.combine(table, found) for table, found in parts.items()}


def _read_sap(source: mapping.Mapping, as_of: datetime) -> pd.DataFrame:
    """Sales-order headers as of ``as_of`` from SAP, read incrementally by ``LastChangeDateTime``.

    The source keeps a snapshot of every header read so far and the watermark (latest change time)
    under ``lake/state/<source>/``. A run for the same or a later interval reads only what changed
    since the watermark and merges it in (a changed order replaces its older version, whatever the
    key's padding); a run for an older interval (a backfill) reads everything changed up to its end
    and leaves the state alone.
    """
    import pandas as pd

    from include.sap.hook import HEADERS, SapODataHook

    hook = SapODataHook(source.read.get("conn_id") or config.HOLDCAST_SAP_CONN_ID.get())
    state_dir = warehouse.lake_path("state", source.source)
    state_file, snapshot_file = state_dir / "state.json", state_dir / f"{HEADERS}.parquet"
    state = json.loads(state_file.read_text()) if state_file.exists() else None
    forward = state is not None and warehouse.parse_as_of_label(state["as_of"]) <= as_of
    since = datetime.fromisoformat(state["watermark"]) if forward and state.get("watermark") else None
    extract = hook.read_sales_orders(since=since, until=as_of)
    changed = extract.frames().get(HEADERS, pd.DataFrame())
    if forward and snapshot_file.exists():
        rows = pd.concat([pd.read_parquet(snapshot_file), changed.astype("string")], ignore_index=True)
    else:
        rows = changed.astype("string")
    if "SalesOrder" in rows.columns and len(rows):
        key = rows["SalesOrder"].str.strip().str.lstrip("0")
        rows = rows[~key.duplicated(keep="last")].reset_index(drop=True)
    if state is None or forward:
        warehouse.write_parquet(rows, snapshot_file)
        watermark = extract.watermark.isoformat() if extract.watermark else None
        state_file.write_text(json.dumps({"as_of": warehouse.as_of_label(as_of), "watermark": watermark}))
    logger.info(
        "SAP source %s: %d header(s) changed since %s, %d in the snapshot",
        source.source,
        len(changed),
        since,
        len(rows),
    )
    return rows


def _file(source: mapping.Mapping) -> Path:
    """The single file a whole-file reader (SDN, DataCo) reads: in the drop folder or shipped."""
    pattern = source.read.get("path", "")
    if pattern.startswith("package:"):
        path = PACKAGE_DATA / pattern.removeprefix("package:")
    else:
        path = config.HOLDCAST_DROP_DIR.get() / pattern
    if not path.is_file():
        raise MissingSourceError(f"source {source.source!r}: expected a file at {path}, found none")
    if path.stat().st_size == 0:
        raise MissingSourceError(f"source {source.source!r}: file {path} is empty")
    return path


def _split_interval(table: str, mapped: mapping.Mapped, as_of: datetime) -> tuple[mapping.Mapped, int]:
    """Set aside rows dated at or after ``as_of`` (a later interval's); return the rest and their count."""
    time_column = canonical.TABLES[table].time_column
    if time_column is None or time_column not in mapped.frame.columns or mapped.frame.empty:
        return mapped, 0
    import pandas as pd

    stamps = pd.to_datetime(mapped.frame[time_column], utc=True, format="ISO8601", errors="coerce")
    later = (stamps >= as_of).fillna(False).to_numpy()
    if not later.any():
        return mapped, 0
    keep = [i for i, is_later in enumerate(later) if not is_later]
    positions = {old: new for new, old in enumerate(keep)}
    return (
        mapping.Mapped(
            table,
            mapped.frame.iloc[keep].reset_index(drop=True),
            mapped.raw.iloc[keep].reset_index(drop=True),
            {positions[k]: v for k, v in mapped.rules.items() if k in positions},
            mapped.drift,
            mapped.explain,
            [mapped.source_rows[i] for i in keep],
        ),
        int(later.sum()),
    )


def ingest_source(name: str, as_of: datetime, *, dataset: str | None = None) -> dict[str, object]:
    """Extract, land, validate and write one source for the interval ending at ``as_of``.

    Returns:
        A small summary (rows good and quarantined per table, where the report is) for XCom.

    Raises:
        MissingSourceError: the source, or one of its tables, is absent or empty.
        include.validation.SchemaError: a required source column is missing.
        include.validation.ValidationFailed: a batch broke a table-level rule or the tolerance.
    """
    from include import validation

    known = sources(dataset)
    if name not in known:
        raise MissingSourceError(
            f"no source {name!r} in dataset {dataset or config.HOLDCAST_DATASET.get()!r}; "
            f"known: {sorted(known)}"
        )
    source = known[name]
    label = warehouse.as_of_label(as_of)
    mapped_tables = extract(source, as_of)
    tolerance = config.HOLDCAST_QUARANTINE_TOLERANCE.get()
    summary: dict[str, object] = {"source": name, "as_of": label, "tables": {}}
    reports = []
    keys: dict[str, set[str]] = {}
    for table in sorted(source.canonical_tables, key=_parents_first):
        mapped, later = _split_interval(table, mapped_tables[table], as_of)
        warehouse.write_parquet(
            mapped.raw, warehouse.lake_path("raw", name, table, f"as_of={label}", "part.parquet")
        )
        previous = _previous_report(name, table, label) or {}
        schema = _source_schema(mapped.raw)
        mapped.drift["retyped"] = _retyped(previous.get("source_schema", {}), schema)
        try:
            outcome = validation.validate(
                table,
                mapped.frame,
                source=name,
                batch=label,
                tolerance=tolerance,
                allow_empty=table in MAY_BE_EMPTY,
                rules=mapped.rules,
                raw_rows=mapped.raw,
                row_numbers=mapped.source_rows,
                drift=mapped.drift,
                table_rules=_table_rules(source, table, as_of, previous.get("rows_in"), keys),
                gx_dir=config.HOLDCAST_GX_DIR.get(),
            )
        except validation.ValidationFailed as err:
            # The failed batch's bad rows are kept too, so they can be queried, not only counted.
            if err.quarantine is not None:
                warehouse.replace_rows(
                    "quarantine", err.quarantine, where={"source": name, "batch": label, "table_name": table}
                )
            err.report.update(
                rows_after_interval=later,
                mapping=str(source.path.name),
                explain=mapped.explain,
                source_schema=schema,
            )
            reports.append(err.report)
            path = _write_report(name, label, reports)
            err.args = (f"{err.args[0]}; full report: {path}",)
            raise
        warehouse.write_parquet(outcome.good, warehouse.canonical_partition(table, as_of, name))
        if table in {parent for _, parent, _ in REFERENCES}:
            keys[table] = set(outcome.good[canonical.TABLES[table].key[0]].dropna())
        warehouse.replace_rows(
            "quarantine", outcome.quarantine, where={"source": name, "batch": label, "table_name": table}
        )
        outcome.report.update(
            rows_after_interval=later,
            mapping=str(source.path.name),
            explain=mapped.explain,
            source_schema=schema,
        )
        reports.append(outcome.report)
        summary["tables"][table] = {
            "good": len(outcome.good),
            "quarantined": len(outcome.quarantine),
            "after_interval": later,
        }
    summary["report"] = str(_write_report(name, label, reports))
    logger.info("Ingested source %s for %s: %s", name, label, summary["tables"])
    return summary


def _parents_first(table: str) -> int:
    order = ("customers", "orders", "invoices")
    return order.index(table) if table in order else len(order)


def _table_rules(
    source: mapping.Mapping, table: str, as_of: datetime, previous: int | None, keys: dict[str, set[str]]
) -> dict:
    """Rules beyond the row: references to a parent the same source delivered, freshness, row count."""
    rules: dict[str, object] = {
        "references": [
            (col, parent, keys[parent])
            for child, parent, col in REFERENCES
            if child == table and parent in keys
        ]
    }
    for block in source.blocks(table):
        if block.freshness_days is not None:
            rules["freshness"] = (canonical.TABLES[table].time_column, as_of, block.freshness_days)
        if block.max_row_drop is not None and previous:
            rules["min_rows"] = int(previous * (1 - block.max_row_drop))
    return rules


def _previous_report(source: str, table: str, label: str) -> dict | None:
    """The report of this source and table from the latest earlier interval, if any."""
    root = warehouse.lake_path("reports", "validation")
    earlier = sorted(p for p in root.glob(f"as_of=*/{source}.json") if p.parent.name < f"as_of={label}")
    for path in reversed(earlier):
        for report in json.loads(path.read_text()):
            if report.get("table") == table and "rows_in" in report:
                return report
    return None


def _source_schema(raw: pd.DataFrame) -> dict[str, str]:
    """What each source column holds: ``number`` when every value reads as one, ``text``, or ``empty``."""
    import pandas as pd

    schema = {}
    for col in raw.columns:
        values = raw[col].dropna().str.strip()
        values = values[values != ""]
        if values.empty:
            schema[col] = "empty"
        else:
            numbers = pd.to_numeric(values.str.replace(",", "", regex=False), errors="coerce")
            schema[col] = "number" if numbers.notna().all() else "text"
    return schema


def _retyped(before: dict[str, str], now: dict[str, str]) -> list[str]:
    """Source columns whose kind changed since the previous interval (an empty column has no kind)."""
    return sorted(
        f"{col}: {before[col]} -> {kind}"
        for col, kind in now.items()
        if col in before and "empty" not in (before[col], kind) and before[col] != kind
    )


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
    _report_orphans(tables, label)
    counts = {name: warehouse.replace_table(name, frame) for name, frame in tables.items()}
    warehouse.record_published(as_of)
    logger.info("Published canonical tables for %s: %s", label, counts)
    return counts


def _report_orphans(tables: dict[str, pd.DataFrame], label: str) -> dict[str, int]:
    """Count rows whose parent no source delivered for the interval; log them as a warning."""
    orphans = {}
    for child, parent, col in REFERENCES:
        parent_keys = tables[parent][canonical.TABLES[parent].key[0]]
        values = tables[child][col].dropna()
        count = int((~values.isin(parent_keys)).sum())
        if count:
            orphans[f"{child}.{col}->{parent}"] = count
    if orphans:
        logger.warning("Interval %s: rows whose parent no source delivered: %s", label, orphans)
    return orphans


def check_file(mapping_path: str | Path, path: str | Path, as_of: datetime | None = None) -> list[dict]:
    """Map and validate one file with a mapping, writing nothing: the reports a real run would give.

    Used to try a new mapping on a real extract before adding it to a dataset. Each report also lists
    its quarantined rows (``quarantined``: row number, rules, raw values) and says whether a real run
    would fail the batch (``would_fail``: a table-level rule, or more than the tolerance quarantined).
    """
    from include import validation

    source = mapping.load(mapping_path)
    as_of = as_of or datetime.now(UTC)
    tolerance = config.HOLDCAST_QUARANTINE_TOLERANCE.get()
    reports = []
    keys: dict[str, set[str]] = {}
    extracted = extract(source, as_of, path=Path(path))
    for table in sorted(extracted, key=_parents_first):
        mapped, later = _split_interval(table, extracted[table], as_of)
        try:
            outcome = validation.validate(
                table,
                mapped.frame,
                source=source.source,
                batch="check",
                tolerance=1.0,
                allow_empty=table in MAY_BE_EMPTY,
                rules=mapped.rules,
                raw_rows=mapped.raw,
                row_numbers=mapped.source_rows,
                drift=mapped.drift,
                table_rules=_table_rules(source, table, as_of, None, keys),
            )
            report, quarantine = outcome.report, outcome.quarantine
            if table in {parent for _, parent, _ in REFERENCES}:
                keys[table] = set(outcome.good[canonical.TABLES[table].key[0]].dropna())
        except validation.ValidationFailed as err:
            report, quarantine = err.report, err.quarantine
        report.update(
            rows_after_interval=later,
            explain=mapped.explain,
            would_fail=bool(report.get("table_failures")) or report.get("quarantined_share", 0) > tolerance,
            quarantined=[]
            if quarantine is None
            else quarantine[["row_number", "rules", "raw"]].to_dict("records"),
        )
        reports.append(report)
    return reports


def main(argv: list[str] | None = None) -> int:
    """``python -m include.ingest --mapping M --file F``: rows loaded and quarantined per rule.

    Exit status: 0 when a real run would load the file, 1 when it would fail a batch, 2 when the
    mapping or the file cannot be read at all.
    """
    import argparse

    from include.sources.common import SourceFormatError
    from include.validation import SchemaError

    parser = argparse.ArgumentParser(prog="python -m include.ingest", description=main.__doc__)
    parser.add_argument("--mapping", required=True, help="a mapping file (see include/mappings)")
    parser.add_argument("--file", required=True, help="the source file to read with it")
    parser.add_argument(
        "--as-of", help="interval end (ISO date); rows dated at or after it wait (default: now)"
    )
    parser.add_argument(
        "--show", type=int, default=10, metavar="N", help="quarantined rows to list per table"
    )
    parser.add_argument("--json", action="store_true", help="print the full reports as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    as_of = warehouse.parse_as_of_label(args.as_of) if args.as_of else None
    logging.disable(logging.INFO)  # libraries that set their own levels (Great Expectations) included
    try:
        reports = check_file(args.mapping, args.file, as_of)
    except (mapping.MappingError, SchemaError, SourceFormatError, MissingSourceError, OSError) as err:
        print(f"ERROR {type(err).__name__}: {err}")
        return 2
    finally:
        logging.disable(logging.NOTSET)
    if args.json:
        print(json.dumps(reports, indent=2, default=str))
        return 1 if any(r["would_fail"] for r in reports) else 0
    for report in reports:
        print(
            f"{report['table']}: {report['rows_in']} rows in, {report.get('rows_good', 0)} loaded, "
            f"{report.get('rows_quarantined', 0)} quarantined, "
            f"{report['rows_after_interval']} after the interval"
        )
        for rule, count in sorted(report.get("rule_counts", {}).items(), key=lambda kv: -kv[1]):
            print(
                f"    {count:>7}  {rule}"
                + (f"  ({report['explain'][rule]})" if rule in report["explain"] else "")
            )
        for row in report["quarantined"][: args.show]:
            print(f"    row {row['row_number']}: {row['rules']}  {row['raw']}")
        drift = report.get("drift", {}).get("source", {})
        if any(drift.values()):
            print(f"    drift: {drift}")
        for failure in report.get("table_failures", []):
            print(f"    TABLE RULE BROKEN: {failure}")
        if report["would_fail"]:
            print("    A REAL RUN WOULD FAIL THIS BATCH")
    return 1 if any(r["would_fail"] for r in reports) else 0


if __name__ == "__main__":
    raise SystemExit(main())
