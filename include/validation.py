"""Validate one source batch of one canonical table: good rows go on, bad rows go to quarantine.

Stages, each recording the rule a row broke:

1. **Schema**: a missing required column fails the batch (nothing can be read without it); a missing
   optional column is added empty and an unexpected one dropped, both reported as drift. A mapped
   source reports drift of its *source* columns instead (see :mod:`include.mapping`).
2. **Parsing**: rules the source's mapping already found (``map_<type>:<field>``), then each value
   parsed to its canonical kind (``parse_<kind>:<column>``).
3. **References**: a row naming a parent the same source did not deliver (``ref_integrity``).
4. **Great Expectations**: a suite per source table (required values present, codes in their sets,
   ranges, ordered dates) run on the rows still clean; each unexpected row is quarantined with the
   expectation that caught it. Table-level expectations (freshness, row count against the previous
   batch) fail the batch, as does a batch with no row at all.
5. **Keys**, among the rows still clean: the same record again is ``duplicate_row`` (kept once, not
   counted against the tolerance), another record under a key already seen is ``duplicate_key``.

Every input row ends in exactly one of ``good`` or ``quarantine``. The batch fails loudly only when a
table-level rule breaks or the quarantined share passes the tolerance.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include import canonical

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

ROW = "__row"
QUARANTINE_COLUMNS = ["source", "batch", "table_name", "row_number", "rules", "raw"]


class SchemaError(ValueError):
    """A source batch lacks a column the canonical table requires."""


class ValidationFailed(RuntimeError):
    """A batch broke a table-level rule or quarantined more rows than the tolerance allows."""

    def __init__(self, message: str, report: dict[str, Any], quarantine: pd.DataFrame | None = None) -> None:
        super().__init__(message)
        self.report = report
        self.quarantine = quarantine


@dataclass
class Outcome:
    table: str
    good: pd.DataFrame
    quarantine: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)


# Row-level rules beyond "required columns are present", per canonical table.
_IN_SET = {
    ("orders", "status"): canonical.ORDER_STATUSES,
    ("holds", "reason"): (*canonical.HOLD_REASONS, canonical.UNSPECIFIED_REASON),
    ("payments", "status"): canonical.PAYMENT_STATUSES,
    ("interactions", "kind"): canonical.INTERACTION_KINDS,
}
_MIN_VALUE = {
    ("orders", "amount"): 0.0,
    ("order_lines", "quantity"): 0.0,
    ("order_lines", "unit_price"): 0.0,
    ("credit_profiles", "credit_limit"): 0.0,
    ("invoices", "amount"): 0.0,
    ("inventory", "available"): 0.0,
}
_ORDERED = {
    # (table, later column, earlier column)
    ("invoices", "due_at", "issued_at"),
    ("invoices", "cleared_at", "issued_at"),
    ("holds", "released_at", "placed_at"),
    ("disputes", "closed_at", "opened_at"),
}


def validate(
    table: str,
    raw: pd.DataFrame,
    *,
    source: str,
    batch: str,
    tolerance: float,
    allow_empty: bool = False,
    rules: dict[int, list[str]] | None = None,
    raw_rows: pd.DataFrame | None = None,
    row_numbers: list[int] | None = None,
    drift: dict[str, list[str]] | None = None,
    table_rules: dict[str, Any] | None = None,
    gx_dir: Path | None = None,
) -> Outcome:
    """Validate a raw batch of ``table`` from ``source``.

    Args:
        table: canonical table name.
        raw: the batch as the source sent it (any dtypes; row order defines row numbers).
        source: source name, kept on quarantined rows.
        batch: batch id (the interval's as-of label), kept on quarantined rows.
        tolerance: largest quarantined share before the batch fails.
        allow_empty: whether an empty batch is acceptable for this table.
        rules: rules rows already broke upstream (a source mapping's unreadable values), by position.
        raw_rows: the source rows as delivered, aligned with ``raw``; quarantine keeps these (default
            ``raw`` itself).
        row_numbers: each row's position in the source (default: its position in ``raw``).
        drift: source-level schema drift found by the mapping (new or missing source columns).
        table_rules: rules that need more than the batch: ``references`` = [(column, parent table,
            parent keys)] (row-level: orphans are quarantined), and the table-level ``freshness`` =
            (time column, interval end, max age in days) and ``min_rows`` (from the previous batch).
        gx_dir: a Great Expectations project folder to keep suites, validation results and data docs
            in (created on first use); default: an in-memory context that keeps nothing.

    Returns:
        The typed good rows, the quarantined rows with their rules, and a report.

    Raises:
        SchemaError: a required column is missing.
        ValidationFailed: a table-level rule broke or the quarantined share passed the tolerance.
    """
    import pandas as pd

    spec = canonical.TABLES[table]
    frame = raw.reset_index(drop=True)
    report: dict[str, Any] = {"table": table, "source": source, "batch": batch, "rows_in": len(frame)}

    missing_required = [c for c in spec.required_columns if c not in frame.columns]
    if missing_required:
        raise SchemaError(
            f"source {source!r}, table {table!r}: required column(s) {missing_required} missing; "
            f"got columns {list(frame.columns)}"
        )
    missing_optional = [c for c in spec.column_names if c not in frame.columns]
    unexpected = [c for c in frame.columns if c not in spec.column_names]
    if drift is None and (missing_optional or unexpected):
        logger.warning(
            "Schema drift in %s/%s: missing optional columns %s, unexpected columns %s",
            source,
            table,
            missing_optional,
            unexpected,
        )
    if drift is not None:
        # A mapped source is checked against its mapping: canonical columns it leaves unmapped are a
        # choice of the mapping, not drift; new or missing *source* columns are.
        report["drift"] = {"unmapped_optional": missing_optional}
    else:
        report["drift"] = {"missing_optional": missing_optional, "unexpected": unexpected}
    if drift:
        report["drift"]["source"] = drift
        if any(drift.values()):
            logger.warning("Schema drift in %s/%s source columns: %s", source, table, drift)

    raw_text = (raw_rows if raw_rows is not None else frame).reset_index(drop=True).astype("string")
    parsed = pd.DataFrame({ROW: range(len(frame))})
    rules = {int(k): list(v) for k, v in (rules or {}).items()}
    for col in spec.columns:
        if col.name not in frame.columns:
            parsed[col.name] = pd.NA
            continue
        values, bad = _parse(frame[col.name], col.kind)
        parsed[col.name] = values
        for row in bad:
            rules.setdefault(row, []).append(f"parse_{col.kind}:{col.name}")

    candidates = parsed[~parsed.index.isin(list(rules))]
    table_failures: list[str] = []
    if len(candidates):
        for row, rule in _orphans(candidates, (table_rules or {}).get("references", ())):
            rules.setdefault(row, []).append(rule)
        candidates = parsed[~parsed.index.isin(list(rules))]
    if len(candidates):
        found, table_failures, docs = _run_suite(table, candidates, table_rules or {}, source, batch, gx_dir)
        if docs:
            report["gx"] = docs
        for row, rule in found:
            rules.setdefault(row, []).append(rule)
    elif not allow_empty:
        table_failures.append("expect_table_row_count_to_be_between(min_value=1)")

    keyed = parsed[~parsed.index.isin(list(rules))].dropna(subset=list(spec.key))
    dup = keyed[list(spec.key)].duplicated(keep="first")
    if dup.any():
        # Only rows that broke no other rule compete for a key, so a broken row never pushes out a good
        # one. The same record delivered twice is harmless and kept once; two different records under
        # one key are a conflict. Both land in quarantine, only the conflict counts against tolerance.
        same = keyed.drop(columns=[ROW]).astype("string").fillna("\x00").duplicated(keep="first")
        for row in keyed.index[dup]:
            rule = ("duplicate_row:" if same[row] else "duplicate_key:") + ",".join(spec.key)
            rules.setdefault(int(row), []).append(rule)

    bad_rows = sorted(rules)
    good = canonical.coerce(table, parsed[~parsed.index.isin(bad_rows)]).reset_index(drop=True)
    quarantine = pd.DataFrame(
        {
            "source": source,
            "batch": batch,
            "table_name": table,
            "row_number": [row_numbers[r] for r in bad_rows] if row_numbers is not None else bad_rows,
            "rules": ["; ".join(rules[r]) for r in bad_rows],
            "raw": [json.dumps(_row_dict(raw_text, r), default=str) for r in bad_rows],
        },
        columns=QUARANTINE_COLUMNS,
    )
    counts: dict[str, int] = {}
    for r in bad_rows:
        for rule in rules[r]:
            counts[rule] = counts.get(rule, 0) + 1
    harmful = [r for r in bad_rows if not all(rule.startswith("duplicate_row:") for rule in rules[r])]
    share = len(harmful) / len(frame) if len(frame) else 0.0
    report.update(
        rows_good=len(good),
        rows_quarantined=len(bad_rows),
        quarantined_share=round(share, 6),
        rule_counts=counts,
        table_failures=table_failures,
    )
    logger.info(
        "Validated %s/%s batch %s: %s rows in, %s good, %s quarantined",
        source,
        table,
        batch,
        len(frame),
        len(good),
        len(bad_rows),
    )
    if table_failures or share > tolerance:
        worst = sorted(counts.items(), key=lambda kv: -kv[1])[:10]
        why = (
            f"table-level rule(s) broken: {table_failures}"
            if table_failures
            else f"{len(harmful)} of {len(frame)} rows quarantined ({share:.1%}) > tolerance {tolerance:.1%}"
        )
        raise ValidationFailed(
            f"source {source!r}, table {table!r}, batch {batch}: {why}; first failing rules: {worst}",
            report,
            quarantine,
        )
    return Outcome(table, good, quarantine, report)


def _parse(values: pd.Series, kind: str) -> tuple[pd.Series, list[int]]:
    """Parse ``values`` to ``kind``; return the parsed values and the positions that did not parse."""
    import pandas as pd

    text = values.astype("string").str.strip()
    present = text.notna() & (text != "")
    if kind == "str":
        return text.where(present), []
    if kind in ("float", "int"):
        out = pd.to_numeric(text.where(present), errors="coerce").astype("float64")
        # An infinite amount is no amount; a whole number beyond 2**53 has already lost digits.
        bad = present & (out.isna() | (out.abs() == float("inf")))
        if kind == "int":
            bad |= present & ((out != out.round()) | (out.abs() > 2**53))
    elif kind == "ts":
        out = pd.to_datetime(text.where(present), utc=True, format="ISO8601", errors="coerce")
        bad = present & out.isna()
    elif kind == "bool":
        lowered = text.str.lower()
        out = lowered.map({"true": True, "false": False, "1": True, "0": False}, na_action="ignore")
        bad = present & out.isna()
    else:
        raise ValueError(f"unknown column kind {kind!r}")
    return out.where(~bad), [int(i) for i in values.index[bad]]


def _row_dict(raw_text: pd.DataFrame, row: int) -> dict[str, Any]:
    import pandas as pd

    return {k: (None if pd.isna(v) else v) for k, v in raw_text.iloc[row].items()}


def _expectations(table: str) -> list[Any]:
    import great_expectations as gx

    spec = canonical.TABLES[table]
    exps: list[Any] = [gx.expectations.ExpectColumnValuesToNotBeNull(column=c) for c in spec.required_columns]
    for (t, col), allowed in _IN_SET.items():
        if t == table:
            exps.append(gx.expectations.ExpectColumnValuesToBeInSet(column=col, value_set=list(allowed)))
    for (t, col), low in _MIN_VALUE.items():
        if t == table:
            exps.append(gx.expectations.ExpectColumnValuesToBeBetween(column=col, min_value=low))
    for t, later, earlier in _ORDERED:
        if t == table:
            exps.append(
                gx.expectations.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A=later, column_B=earlier, or_equal=True, ignore_row_if="either_value_is_missing"
                )
            )
    return exps


def _table_expectations(table_rules: dict[str, Any]) -> list[Any]:
    """Expectations on the whole batch: a broken one fails the batch instead of quarantining rows."""
    from datetime import timedelta

    import great_expectations as gx

    exps: list[Any] = []
    if "freshness" in table_rules:
        column, as_of, days = table_rules["freshness"]
        exps.append(
            gx.expectations.ExpectColumnMaxToBeBetween(
                column=column,
                min_value=(as_of - timedelta(days=days)).isoformat(),
                meta={"rule": "freshness"},
            )
        )
    if table_rules.get("min_rows"):
        exps.append(
            gx.expectations.ExpectTableRowCountToBeBetween(
                min_value=int(table_rules["min_rows"]), meta={"rule": "row_count_vs_previous"}
            )
        )
    return exps


def _orphans(frame: pd.DataFrame, references) -> list[tuple[int, str]]:
    """(row, rule) for each row whose reference names no parent the source delivered."""
    found = []
    for column, parent, keys in references:
        values = frame[column]
        orphan = values.notna() & ~values.isin(list(keys))
        found += [(int(row), f"ref_integrity:{column}->{parent}") for row in frame.index[orphan]]
    return found


@contextmanager
def _gx_project(gx_dir: Path | None) -> Iterator[Any]:
    """A Great Expectations context: a file project in ``gx_dir`` (get or create), else in memory.

    Mapped ingest tasks may validate at the same moment on one machine; a lock on the project keeps
    them from rewriting its configuration together.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    if gx_dir is None:
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        yield context
        return
    import fcntl

    gx_dir.mkdir(parents=True, exist_ok=True)
    with (gx_dir / ".holdcast.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            context = gx.get_context(mode="file", project_root_dir=str(gx_dir))
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            yield context
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def data_docs_index(gx_dir: Path) -> Path:
    """The front page of the project's data docs site: every run's validation results, per source table."""
    return gx_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def _run_suite(
    table: str,
    frame: pd.DataFrame,
    table_rules: dict[str, Any],
    source: str,
    batch: str,
    gx_dir: Path | None,
) -> tuple[list[tuple[int, str]], list[str], dict[str, str]]:
    """Run the source table's Great Expectations suite through a checkpoint.

    Everything is get-or-create (data source, asset, suite, validation definition, checkpoint), so a
    retry or a backfill finds what the first run made. With a project folder, each run's validation
    result is stored under the batch's name and the data docs site is updated.

    Returns:
        (row, rule) for every unexpected row, a description of every table-level rule that broke, and
        where the data docs are (empty in memory).
    """
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier

    name = f"{source}__{table}"
    # GX's pandas engine treats <NA> in object columns unreliably; give it plain object/None values.
    plain = frame.astype(object).where(frame.notna(), None)
    with _gx_project(gx_dir) as context:
        data_source = context.data_sources.add_or_update_pandas("holdcast")
        try:
            asset = data_source.get_asset(name)
        except LookupError:
            asset = data_source.add_dataframe_asset(name)
        try:
            batch_def = asset.get_batch_definition("whole")
        except (KeyError, LookupError):
            batch_def = asset.add_batch_definition_whole_dataframe("whole")
        suite = context.suites.add_or_update(
            gx.ExpectationSuite(
                name=name, expectations=_expectations(table) + _table_expectations(table_rules)
            )
        )
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch_def, suite=suite)
        )
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=name,
                validation_definitions=[definition],
                actions=[UpdateDataDocsAction(name="data_docs")] if gx_dir is not None else [],
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW]},
            )
        )
        outcome = checkpoint.run(batch_parameters={"dataframe": plain}, run_id=RunIdentifier(run_name=batch))
    (result_id, result), *_ = outcome.run_results.items()
    docs = {}
    if gx_dir is not None:
        docs = {
            "data_docs": str(data_docs_index(gx_dir)),
            "validation_result": str(
                gx_dir.joinpath("gx", "uncommitted", "validations", *result_id.to_tuple()).with_suffix(
                    ".json"
                )
            ),
        }
    found: list[tuple[int, str]] = []
    table_failures: list[str] = []
    for res in result.results:
        if res.success:
            continue
        cfg = res.expectation_config
        if cfg.meta and cfg.meta.get("rule"):
            observed = res.result.get("observed_value")
            table_failures.append(f"{cfg.meta['rule']}: {cfg.type}({_kwargs(cfg)}), observed {observed}")
            continue
        target = cfg.kwargs.get("column") or f"{cfg.kwargs.get('column_A')}>={cfg.kwargs.get('column_B')}"
        rule = f"{cfg.type}:{target}"
        if res.exception_info and res.exception_info.get("raised_exception"):
            raise ValidationFailed(
                f"table {table!r}: expectation {rule} could not run: "
                f"{res.exception_info.get('exception_message')}",
                {"table": table},
            )
        for item in res.result.get("unexpected_index_list") or []:
            found.append((int(item[ROW]), rule))
    return found, table_failures, docs


def _kwargs(cfg: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in cfg.kwargs.items() if k not in ("batch_id",) and v is not None)
