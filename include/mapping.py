"""Declarative source mappings: how one source's fields become canonical columns.

A source is described by a YAML file in ``include/mappings/`` (or anywhere, by path), not by code. The
file says how to read the source (format, encodings, separator, null markers) and, per canonical table,
where each canonical column comes from and how its values are read::

    source: receivables                # the source's name: quarantine rows and reports carry it
    datasets: [receivables]            # which HOLDCAST_DATASET runs read it (optional)
    read:
      format: csv                      # csv | parquet | sql | odata_json | sap_odata | ofac_sdn | dataco
      path: receivables/*.csv          # under HOLDCAST_DROP_DIR; a glob reads every match
      encodings: [utf-8-sig, cp1252]   # tried in order for the whole file, never per row
      separator: ","
      null_markers: [""]               # values meaning "not delivered"
    date_formats: [ISO8601, "%m/%d/%Y"]   # declared, tried in order; a value fitting none is quarantined
    tables:
      invoices:
        fields:
          invoice_id:  {column: invoiceNumber, type: id, pad_numeric: 10}
          amount:      {column: InvoiceAmount, type: decimal, thousands: ","}
          currency:    {column: Currency, type: text, case: upper}
          issued_at:   {column: InvoiceDate, type: date}
          country:     {column: countryCode, type: code, codes: {"391": US}, unknown: quarantine}
          bureau:      {value: internal}          # a constant
        ignore_columns: [PaperlessBill]          # source columns known and deliberately not read

Field types and what they do with a value (after stripping surrounding white space; a null marker or
an empty string is missing):

- ``text``: kept as text; ``case: upper|lower`` folds it ("usd" is "USD").
- ``id``: an identifier, always text. A value that went through a float ("2960623488.0") loses the
  ``.0``; with ``pad_numeric: N`` an all-digit id is zero-padded to N digits, so "611365" and
  "0000611365" are one id. Non-numeric ids ("CCU001") are kept as given.
- ``decimal`` / ``int``: numbers; ``thousands`` names the grouping character to drop ("1,204.50").
- ``date``: the field's ``formats`` (or the file's ``date_formats``) are tried in order: ``ISO8601``,
  ``odata`` (``/Date(ms)/``), or any ``strftime`` pattern. ``timezone`` (default UTC) says what zone a
  value without an offset is in.
- ``bool``: ``true:`` and ``false:`` list the source's spellings.
- ``code``: ``codes`` maps source codes to canonical ones; an unknown code is quarantined
  (``unknown: quarantine``, the default), kept as given (``unknown: keep``), or missing
  (``unknown: null``).

A value that does not read is never guessed: its row gets the rule ``map_<type>:<field>`` (the report
says what the rule expected) and goes to quarantine with its raw source row, the value included. A
mistake in the file itself raises :class:`MappingError` naming the file, the key and what is wrong.
"""

from __future__ import annotations

import codecs
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include import canonical
from include.sources.common import SourceFormatError

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

MAPPINGS_DIR = Path(__file__).resolve().parent / "mappings"
FILE_COLUMN, ROW_COLUMN = "__file", "__row"
"""Added to rows read from files: the file's name (kept with a quarantined row's raw values) and the row's
position among that file's data rows, from 0 (the quarantine's row number)."""
FORMATS = ("csv", "parquet", "sql", "odata_json", "sap_odata", "ofac_sdn", "dataco")
FIELD_TYPES = ("text", "id", "decimal", "int", "date", "bool", "code")
_FIELD_KEYS = {
    "column",
    "value",
    "type",
    "case",
    "pad_numeric",
    "thousands",
    "decimal",
    "formats",
    "timezone",
    "true",
    "false",
    "codes",
    "unknown",
}
_KINDS_FOR_TYPE = {
    "str": ("text", "id", "code", "date", "decimal", "int", "bool"),
    "float": ("decimal", "int", "code"),
    "int": ("int", "decimal", "code"),
    "ts": ("date",),
    "bool": ("bool", "code"),
}


class MappingError(ValueError):
    """A mapping file is wrong: the message names the file, the key and what was expected."""


@dataclass(frozen=True)
class FieldMap:
    target: str
    type: str
    column: str | None = None
    value: Any = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TableMap:
    block: str
    """The block's name in the file: the table name, or any name when ``table`` says which table."""
    table: str
    fields: tuple[FieldMap, ...]
    source_table: str = ""
    """For SQL sources: the table read (default: the block's name)."""
    where: dict[str, Any] | None = None
    """Only source rows whose ``column`` holds one of ``in`` feed this block (e.g. rows with a block code)."""
    ignore_columns: tuple[str, ...] = ()
    distinct: bool = False
    """One row per key (a table derived from another's rows, such as customers from invoice lines)."""
    freshness_days: float | None = None
    """Newest record (by the table's time column) must be at most this many days before the interval end."""
    max_row_drop: float | None = None
    """Largest allowed fall in row count against the previous interval's batch (0.5 = half)."""

    @property
    def source_columns(self) -> list[str]:
        return [f.column for f in self.fields if f.column is not None]


@dataclass(frozen=True)
class Mapping:
    path: Path
    source: str
    datasets: tuple[str, ...]
    read: dict[str, Any]
    tables: dict[str, TableMap]
    """By block name; several blocks may feed one canonical table (see :meth:`blocks`)."""
    description: str = ""

    @property
    def format(self) -> str:
        return self.read["format"]

    @property
    def canonical_tables(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.table for t in self.tables.values()))

    def blocks(self, table: str) -> list[TableMap]:
        return [t for t in self.tables.values() if t.table == table]


def _unique_key_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """YAML's safe loader, refusing a key written twice in one mapping (YAML would keep the last)."""

    def construct(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is written twice", key_node.start_mark
                )
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct)
    return Loader


def load(path: str | Path) -> Mapping:
    """Load and check one mapping file; raise :class:`MappingError` on the first problem found."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_unique_key_loader())  # a SafeLoader
    except OSError as err:
        raise MappingError(f"{path}: cannot read the mapping file: {err}") from err
    except yaml.YAMLError as err:
        raise MappingError(f"{path}: not valid YAML: {err}") from err
    return _parse(doc, path)


def load_named(source: str) -> Mapping:
    """The shipped mapping of ``source`` (``include/mappings/<source>.yaml``)."""
    path = MAPPINGS_DIR / f"{source}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml"))
        raise MappingError(f"no mapping file for source {source!r} at {path}; known sources: {known}")
    return load(path)


def for_dataset(dataset: str, directory: Path = MAPPINGS_DIR) -> dict[str, Mapping]:
    """Every mapping in ``directory`` whose ``datasets`` include ``dataset``, by source name."""
    found: dict[str, Mapping] = {}
    for path in sorted(directory.glob("*.yaml")):
        mapping = load(path)
        if dataset in mapping.datasets:
            if mapping.source in found:
                raise MappingError(
                    f"{path}: source {mapping.source!r} is also described by {found[mapping.source].path}"
                )
            found[mapping.source] = mapping
    return found


def _parse(doc: Any, path: Path) -> Mapping:
    def fail(key: str, problem: str) -> MappingError:
        return MappingError(f"{path}: {key}: {problem}")

    if not isinstance(doc, dict):
        raise fail("<top>", f"expected a mapping of keys, got {type(doc).__name__}")
    unknown = set(doc) - {"source", "description", "datasets", "read", "date_formats", "tables"}
    if unknown:
        raise fail(
            sorted(unknown)[0],
            "unknown key; expected one of source, description, datasets, read, date_formats, tables",
        )
    source = doc.get("source")
    if not isinstance(source, str) or not source.strip():
        raise fail("source", "expected the source's name as text")
    datasets = doc.get("datasets", [])
    if not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets):
        raise fail("datasets", f"expected a list of dataset names, got {datasets!r}")
    read = doc.get("read")
    if not isinstance(read, dict):
        raise fail("read", "expected a mapping with at least 'format'")
    fmt = read.get("format")
    if fmt not in FORMATS:
        raise fail("read.format", f"expected one of {list(FORMATS)}, got {fmt!r}")
    unknown_read = set(read) - {
        "format",
        "path",
        "encodings",
        "separator",
        "null_markers",
        "header",
        "conn_id",
    }
    if unknown_read:
        raise fail(
            f"read.{sorted(unknown_read)[0]}",
            "unknown key; expected some of format, path, encodings, separator, null_markers, header, conn_id",
        )
    for key, kind in (
        ("encodings", list),
        ("null_markers", list),
        ("separator", str),
        ("path", str),
        ("header", bool),
        ("conn_id", str),
    ):
        if key in read and not isinstance(read[key], kind):
            raise fail(f"read.{key}", f"expected {kind.__name__}, got {read[key]!r}")
    for encoding in read.get("encodings", []):
        try:
            codecs.lookup(str(encoding))
        except LookupError:
            raise fail("read.encodings", f"{encoding!r} is not an encoding Python knows") from None
    date_formats = doc.get("date_formats", ["ISO8601"])
    if not isinstance(date_formats, list) or not date_formats:
        raise fail("date_formats", f"expected a non-empty list of formats, got {date_formats!r}")
    tables_doc = doc.get("tables")
    if not isinstance(tables_doc, dict) or not tables_doc:
        raise fail("tables", "expected a mapping of canonical table name to its fields")
    tables: dict[str, TableMap] = {}
    for block, spec in tables_doc.items():
        where = f"tables.{block}"
        table = spec.get("table", block) if isinstance(spec, dict) else block
        if table not in canonical.TABLES:
            raise fail(where, f"not a canonical table; expected one of {sorted(canonical.TABLES)}")
        if not isinstance(spec, dict) or not (
            isinstance(spec.get("fields"), dict) or spec.get("fields") == "same"
        ):
            raise fail(where, "expected a mapping with 'fields' (a mapping of fields, or 'same')")
        extra = set(spec) - {
            "table",
            "fields",
            "where",
            "source_table",
            "ignore_columns",
            "distinct",
            "freshness_days",
            "max_row_drop",
        }
        if extra:
            raise fail(
                f"{where}.{sorted(extra)[0]}",
                "unknown key; expected table, fields, where, source_table, "
                "ignore_columns, distinct, freshness_days or max_row_drop",
            )
        cond = spec.get("where")
        if cond is not None and not (
            isinstance(cond, dict)
            and isinstance(cond.get("column"), str)
            and isinstance(cond.get("in"), list)
        ):
            raise fail(f"{where}.where", f"expected {{column: <source column>, in: [values]}}, got {cond!r}")
        columns = {c.name: c for c in canonical.TABLES[table].columns}
        if spec.get("fields") == "same":
            # The source already speaks canonical: every column from its namesake, read by its kind.
            spec = {**spec, "fields": {c: _same_field(c, columns[c].kind) for c in columns}}
        fields = []
        for target, fspec in spec["fields"].items():
            fields.append(
                _parse_field(target, fspec, columns, date_formats, f"{where}.fields.{target}", fail)
            )
        missing = [c for c in canonical.TABLES[table].required_columns if c not in spec["fields"]]
        if missing:
            raise fail(f"{where}.fields", f"required canonical column(s) {missing} have no mapping")
        if "freshness_days" in spec and not (_number(spec["freshness_days"]) and spec["freshness_days"] > 0):
            raise fail(
                f"{where}.freshness_days",
                f"expected a number of days above 0, got {spec['freshness_days']!r}",
            )
        if "max_row_drop" in spec and not (_number(spec["max_row_drop"]) and 0 <= spec["max_row_drop"] < 1):
            raise fail(
                f"{where}.max_row_drop", f"expected a share from 0 to below 1, got {spec['max_row_drop']!r}"
            )
        if "distinct" in spec and not isinstance(spec["distinct"], bool):
            raise fail(f"{where}.distinct", f"expected true or false, got {spec['distinct']!r}")
        ignore = spec.get("ignore_columns", [])
        if not (isinstance(ignore, list) and all(isinstance(c, str) for c in ignore)):
            raise fail(f"{where}.ignore_columns", f"expected a list of source column names, got {ignore!r}")
        tables[block] = TableMap(
            block=block,
            table=table,
            source_table=str(spec.get("source_table", block)),
            where=cond,
            fields=tuple(fields),
            ignore_columns=tuple(spec.get("ignore_columns", ())),
            distinct=bool(spec.get("distinct", False)),
            freshness_days=spec.get("freshness_days"),
            max_row_drop=spec.get("max_row_drop"),
        )
    return Mapping(path, source, tuple(datasets), dict(read), tables, str(doc.get("description", "")))


_SAME_TYPE = {"str": "text", "float": "decimal", "int": "int", "ts": "date", "bool": "bool"}


def _same_field(name: str, kind: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"column": name, "type": _SAME_TYPE[kind]}
    if kind == "bool":
        spec.update({"true": ["true", "1"], "false": ["false", "0"]})
    return spec


_STRFTIME = "aAwdbBmyYHIpMSfzZjUWcxX%GuVeT"
"""The strftime directives a declared date format may use."""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_field(target, fspec, columns, date_formats, where, fail) -> FieldMap:
    if target not in columns:
        raise fail(where, f"not a column of this canonical table; expected one of {sorted(columns)}")
    if not isinstance(fspec, dict):
        raise fail(where, f"expected a mapping such as {{column: X, type: text}}, got {fspec!r}")
    extra = set(fspec) - _FIELD_KEYS
    if extra:
        raise fail(f"{where}.{sorted(extra)[0]}", f"unknown key; expected some of {sorted(_FIELD_KEYS)}")
    if ("column" in fspec) == ("value" in fspec):
        raise fail(where, "expected exactly one of 'column' (a source column) or 'value' (a constant)")
    kind = columns[target].kind
    ftype = fspec.get("type", "text")
    if ftype not in FIELD_TYPES:
        raise fail(f"{where}.type", f"expected one of {list(FIELD_TYPES)}, got {ftype!r}")
    if ftype not in _KINDS_FOR_TYPE[kind]:
        raise fail(
            f"{where}.type",
            f"{ftype!r} cannot fill a canonical {kind} column; expected one of {list(_KINDS_FOR_TYPE[kind])}",
        )
    options = {k: v for k, v in fspec.items() if k not in ("column", "value", "type")}
    if ftype == "date":
        formats = options.setdefault("formats", list(date_formats))
        if not isinstance(formats, list) or not formats or not all(isinstance(f, str) for f in formats):
            raise fail(f"{where}.formats", f"expected a non-empty list of formats, got {formats!r}")
        for fmt in formats:
            bad = sorted(set(re.findall(r"%(.)", fmt)) - set(_STRFTIME))
            if fmt.lower() not in ("iso8601", "odata") and ("%" not in fmt or bad):
                raise fail(
                    f"{where}.formats",
                    f"{fmt!r} is not ISO8601, odata or a strftime pattern"
                    + (f" (unknown directive(s) {['%' + b for b in bad]})" if bad else ""),
                )
        zone = options.get("timezone", "UTC")
        try:
            import zoneinfo

            zoneinfo.ZoneInfo(str(zone))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise fail(
                f"{where}.timezone", f"{zone!r} is not a time zone name such as Europe/Berlin"
            ) from None
    for key in ("thousands", "decimal"):
        if key in options and not (isinstance(options[key], str) and len(options[key]) == 1):
            raise fail(f"{where}.{key}", f"expected one character such as ',' or '.', got {options[key]!r}")
    if options.get("thousands") and options.get("thousands") == options.get("decimal", "."):
        raise fail(f"{where}.thousands", "the thousands separator cannot also be the decimal mark")
    if ftype == "code" and not isinstance(options.get("codes"), dict):
        raise fail(f"{where}.codes", "a code field needs 'codes': a mapping of source code to canonical code")
    if options.get("unknown", "quarantine") not in ("quarantine", "keep", "null"):
        raise fail(f"{where}.unknown", f"expected quarantine, keep or null, got {options['unknown']!r}")
    if options.get("case") not in (None, "upper", "lower"):
        raise fail(f"{where}.case", f"expected upper or lower, got {options['case']!r}")
    if "pad_numeric" in options and not (
        isinstance(options["pad_numeric"], int) and options["pad_numeric"] > 0
    ):
        raise fail(
            f"{where}.pad_numeric", f"expected a positive whole number, got {options['pad_numeric']!r}"
        )
    if ftype == "bool" and not (
        isinstance(options.get("true"), list) and isinstance(options.get("false"), list)
    ):
        raise fail(where, "a bool field needs 'true' and 'false': lists of the source's spellings")
    return FieldMap(target, ftype, fspec.get("column"), fspec.get("value"), options)


# --------------------------------------------------------------------------------------------------
# Applying a mapping


@dataclass
class Mapped:
    """One canonical table mapped from a source's rows."""

    table: str
    frame: pd.DataFrame
    """Canonical column names, values read per the mapping (typed), one row per kept source row."""
    raw: pd.DataFrame
    """The source rows as text, aligned with ``frame``: what quarantine keeps of a bad row."""
    rules: dict[int, list[str]]
    """Row position -> the mapping rules it broke (with the value and what was expected)."""
    drift: dict[str, list[str]]
    explain: dict[str, str] = field(default_factory=dict)
    """Rule -> what the rule expected, for the validation report."""
    source_rows: list[int] = field(default_factory=list)
    """Each row's position among the source's data rows (from 0): what quarantine reports as its row."""


def apply(mapping: Mapping, table: str, rows: pd.DataFrame) -> Mapped:
    """Map source ``rows`` (text columns as the source named them) into canonical ``table``.

    Every block of the mapping that feeds ``table`` contributes its rows, one after the other.
    """
    rows = rows.reset_index(drop=True)
    parts = [apply_block(mapping, tmap, rows) for tmap in mapping.blocks(table)]
    if not parts:
        raise MappingError(f"{mapping.path}: tables: no block maps into canonical table {table!r}")
    return combine(table, parts)


def combine(table: str, parts: list[Mapped]) -> Mapped:
    """One table from the blocks that feed it, one after the other (row positions shift accordingly)."""
    import pandas as pd

    if len(parts) == 1:
        return parts[0]
    rules: dict[int, list[str]] = {}
    offset = 0
    for part in parts:
        rules.update({offset + k: v for k, v in part.rules.items()})
        offset += len(part.frame)
    return Mapped(
        table,
        pd.concat([p.frame for p in parts], ignore_index=True),
        pd.concat([p.raw for p in parts], ignore_index=True),
        rules,
        {k: sorted({c for p in parts for c in p.drift[k]}) for k in ("missing", "unexpected")},
        {k: v for p in parts for k, v in p.explain.items()},
        [r for p in parts for r in p.source_rows],
    )


def apply_block(mapping: Mapping, tmap: TableMap, rows: pd.DataFrame) -> Mapped:
    """Map source ``rows`` through one block of the mapping."""
    import pandas as pd

    table = tmap.table
    if tmap.where is not None:
        column, wanted = tmap.where["column"], [str(v) for v in tmap.where["in"]]
        # Without the column no row can qualify; drift below reports the column as missing.
        chosen = rows[column].astype("string").str.strip().isin(wanted) if column in rows.columns else False
        rows = rows[pd.Series(chosen, index=rows.index).fillna(False).astype(bool)]
    source_rows = [int(i) for i in (rows[ROW_COLUMN] if ROW_COLUMN in rows.columns else rows.index)]
    rows = rows.drop(columns=[ROW_COLUMN], errors="ignore").reset_index(drop=True)
    text = rows.astype("string")
    declared = set(tmap.source_columns) | ({tmap.where["column"]} if tmap.where else set())
    missing = sorted(c for c in declared if c not in rows.columns)
    required = set(canonical.TABLES[table].required_columns)
    missing_required = [f.column for f in tmap.fields if f.column in missing and f.target in required]
    if missing_required:
        from include.validation import SchemaError

        raise SchemaError(
            f"{mapping.path.name}: source {mapping.source!r}, table {table!r}: required source column(s) "
            f"{missing_required} missing; got columns {list(rows.columns)}"
        )
    known = declared | set(tmap.ignore_columns) | _all_columns(mapping)
    drift = {
        "missing": missing,
        "unexpected": [c for c in rows.columns if c not in known and c != FILE_COLUMN],
    }
    out = pd.DataFrame(index=rows.index)
    rules: dict[int, list[str]] = {}
    explain: dict[str, str] = {}
    for fmap in tmap.fields:
        if fmap.column is None:
            out[fmap.target] = pd.Series([fmap.value] * len(rows), index=rows.index, dtype="object")
            continue
        if fmap.column not in rows.columns:
            out[fmap.target] = pd.NA
            continue
        values = _blank(text[fmap.column], mapping.read.get("null_markers", [""]))
        parsed, bad = read_values(values, fmap)
        out[fmap.target] = parsed
        if bad.any():
            rule = f"map_{fmap.type}:{fmap.target}"
            explain[rule] = f"source column {fmap.column!r}: {_expected(fmap)}"
            for pos in bad.index[bad]:
                rules.setdefault(int(pos), []).append(rule)
    if tmap.distinct:
        # Only a clean row that repeats an earlier clean row word for word is the same record again.
        # A row that broke a rule goes on to quarantine; two clean rows that disagree under one key go
        # on to validation, which keeps the first and quarantines the other as a key conflict.
        clean = pd.Series(~out.index.isin(list(rules)), index=out.index)
        signature = out[clean].astype("string").fillna("\x00")
        repeat = pd.Series(False, index=out.index)
        repeat[clean] = signature.duplicated(keep="first")
        keep = ~repeat
        out, text = out[keep], text[keep]
        out, text = out.reset_index(drop=True), text.reset_index(drop=True)
        positions = {old: new for new, old in enumerate(keep.index[keep])}
        rules = {positions[k]: v for k, v in rules.items()}
        source_rows = [source_rows[i] for i in keep.index[keep]]
    return Mapped(table, out, text, rules, drift, explain, source_rows)


def _all_columns(mapping: Mapping) -> set[str]:
    """Source columns any table of the mapping reads or ignores: not drift for a sibling table."""
    cols: set[str] = set()
    for tmap in mapping.tables.values():
        cols |= set(tmap.source_columns) | set(tmap.ignore_columns)
        if tmap.where:
            cols.add(tmap.where["column"])
    return cols


def _blank(values: pd.Series, null_markers: list[str]) -> pd.Series:
    stripped = values.str.strip()
    markers = {m.strip() for m in null_markers} | {""}
    return stripped.mask(stripped.isin(markers))


def _expected(fmap: FieldMap) -> str:
    opts = fmap.options
    if fmap.type == "date":
        return f"expected one of the declared formats {opts['formats']}"
    if fmap.type == "code":
        return f"expected one of the codes {sorted(opts['codes'])}"
    if fmap.type == "bool":
        return f"expected one of {opts['true'] + opts['false']}"
    if fmap.type == "int":
        return "expected a whole number"
    return "expected a number" if fmap.type == "decimal" else f"expected {fmap.type}"


def read_values(values: pd.Series, fmap: FieldMap) -> tuple[pd.Series, pd.Series]:
    """Read one source column per its field map; return the values and a mask of values that did not read.

    ``values`` is text, already stripped, missing where the source delivered nothing.
    """
    import pandas as pd

    present = values.notna()
    opts = fmap.options
    if fmap.type == "text":
        case = opts.get("case")
        out = values.str.upper() if case == "upper" else values.str.lower() if case == "lower" else values
        return out, pd.Series(False, index=values.index)
    if fmap.type == "id":
        out = values.str.replace(r"^([0-9]+)\.0+$", r"\1", regex=True)
        width = opts.get("pad_numeric")
        if width:
            digits = out.str.fullmatch(r"[0-9]+").fillna(False).astype(bool)
            out = out.where(~digits, out.str.lstrip("0").str.zfill(width))
        return out, pd.Series(False, index=values.index)
    if fmap.type in ("decimal", "int"):
        return _read_numbers(values, fmap.type, opts.get("thousands"), opts.get("decimal", "."))
    if fmap.type == "date":
        return _read_dates(values, opts["formats"], opts.get("timezone", "UTC"))
    if fmap.type == "bool":
        table = {str(v).strip().lower(): True for v in opts["true"]}
        table.update({str(v).strip().lower(): False for v in opts["false"]})
        out = values.str.lower().map(table, na_action="ignore")
        bad = present & out.isna()
        return out.astype("boolean"), bad
    if fmap.type == "code":
        codes = {str(k): v for k, v in opts["codes"].items()}
        out = values.map(codes, na_action="ignore")
        unknown = present & ~values.isin(list(codes))
        policy = opts.get("unknown", "quarantine")
        if policy == "keep":
            out = out.where(~unknown, values)
        return out, unknown if policy == "quarantine" else pd.Series(False, index=values.index)
    raise ValueError(f"unknown field type {fmap.type!r}")


_INT_LIMIT = 2**53
"""Whole numbers beyond this lose digits in a float and overflow Int64 on the way: quarantined."""


def _read_numbers(
    values: pd.Series, kind: str, thousands: str | None, decimal: str
) -> tuple[pd.Series, pd.Series]:
    """Read numbers written with the declared separators; anything else, or not finite, does not read.

    With a thousands separator declared, a value using it must group digits by three ("1,204.50"):
    "1.5" under ``thousands: "."`` is refused rather than read as 15.
    """
    import re

    import numpy as np
    import pandas as pd

    present = values.notna()
    cleaned = values
    fits = pd.Series(True, index=values.index)
    if thousands:
        t, d = re.escape(thousands), re.escape(decimal)
        grouped = rf"^[+-]?\d{{1,3}}({t}\d{{3}})+({d}\d*)?$"
        uses = values.str.contains(thousands, regex=False).fillna(False).astype(bool)
        fits &= ~uses | values.str.match(grouped).fillna(False).astype(bool)
        cleaned = cleaned.str.replace(thousands, "", regex=False)
    if decimal != ".":
        # With a decimal comma, a point is no decimal mark: "1.5" is not one and a half.
        fits &= ~cleaned.str.contains(".", regex=False).fillna(False).astype(bool)
        cleaned = cleaned.str.replace(decimal, ".", regex=False)
    # Only plain numbers: "inf", "nan" and hexadecimal are words to pandas, not amounts.
    fits &= cleaned.str.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?").fillna(False).astype(bool)
    out = pd.to_numeric(cleaned.where(fits), errors="coerce").astype("float64")
    bad = present & (out.isna() | ~np.isfinite(out.fillna(0.0)))
    if kind == "int":
        bad |= present & out.notna() & ((out != out.round()) | (out.abs() > _INT_LIMIT))
    bad = bad.fillna(False).astype(bool)
    return out.where(~bad), bad


def _read_dates(values: pd.Series, formats: list[str], timezone: str) -> tuple[pd.Series, pd.Series]:
    """Try each declared format in order on the values not read yet; never infer a format per row."""
    import pandas as pd

    from include.sources.odata import parse_odata_dates

    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]")
    todo = values.notna()
    for fmt in formats:
        if not todo.any():
            break
        pending = values[todo]
        if fmt.lower() == "odata":
            stamps = parse_odata_dates(pending)
        elif fmt.upper() == "ISO8601":
            # A whole calendar date at least: ISO's reduced forms ("2025", "2025-05") would silently
            # become the first of the year or month.
            full = pending.str.match(r"^\d{4}-\d{2}-\d{2}").fillna(False).astype(bool)
            stamps = _parse_format(pending[full], "ISO8601", timezone).reindex(pending.index)
        else:
            stamps = _parse_format(pending, fmt, timezone)
        hit = stamps.notna()
        out.loc[hit.index[hit]] = stamps[hit]
        todo.loc[hit.index[hit]] = False
    return out, todo


def _parse_format(values: pd.Series, fmt: str, timezone: str) -> pd.Series:
    """Parse with one format to UTC; a value with an offset keeps it, one without is in ``timezone``."""
    import pandas as pd

    if timezone == "UTC":
        return pd.to_datetime(values, format=fmt, errors="coerce", utc=True).astype("datetime64[us, UTC]")
    try:
        stamps = pd.to_datetime(values, format=fmt, errors="coerce")
    except ValueError:  # offsets and naive values mixed: one value at a time
        stamps = pd.Series([_one(v, fmt, timezone) for v in values], index=values.index, dtype=object)
        return pd.to_datetime(stamps, utc=True).astype("datetime64[us, UTC]")
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        return stamps.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    return stamps.dt.tz_localize(timezone).dt.tz_convert("UTC").astype("datetime64[us, UTC]")


def _one(value: str, fmt: str, timezone: str):
    import pandas as pd

    ts = pd.to_datetime(value, format=fmt, errors="coerce")
    if pd.isna(ts):
        return pd.NaT
    return (ts.tz_localize(timezone) if ts.tzinfo is None else ts).tz_convert("UTC")


# --------------------------------------------------------------------------------------------------
# Reading a source's rows


def read_rows(mapping: Mapping, table: str | None = None, *, path: str | Path | None = None) -> pd.DataFrame:
    """Read a file source's rows as text, per the mapping's ``read`` section.

    Args:
        mapping: the source mapping (format csv, parquet or odata_json).
        table: unused for file formats (one file feeds every table of the mapping).
        path: the file to read; default: every file matching ``read.path`` under ``HOLDCAST_DROP_DIR``.
    """
    import pandas as pd

    files = [Path(path)] if path is not None else _drop_files(mapping)
    frames = []
    for file in _once_each(files):
        frame = _read_file(mapping, file)
        # Where each row came from, so a quarantined row can be found in its file.
        frames.append(frame.assign(**{FILE_COLUMN: file.name, ROW_COLUMN: range(len(frame))}))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def _once_each(files: list[Path]) -> list[Path]:
    """The files to read, each content once: a file delivered again under another name is skipped.

    Extract feeds resend files (a retry, a "_v2" of the same export); reading both would double every
    row. The content decides, not the name: a changed file under an old name is read.
    """
    import hashlib

    seen: dict[str, Path] = {}
    chosen = []
    for path in files:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            logger.warning("Skipping %s: same content as %s (delivered twice)", path, seen[digest])
            continue
        seen[digest] = path
        chosen.append(path)
    return chosen


def _drop_files(mapping: Mapping) -> list[Path]:
    from include import config
    from include.errors import MissingSourceError

    pattern = mapping.read.get("path")
    if not pattern:
        raise MappingError(f"{mapping.path}: read.path: a file source needs the path of its drop")
    root = config.HOLDCAST_DROP_DIR.get()
    files = sorted(p for p in root.glob(pattern) if p.is_file())
    if not files:
        raise MissingSourceError(f"source {mapping.source!r}: no file matches {pattern!r} under {root}")
    empty = [str(p) for p in files if p.stat().st_size == 0]
    if empty:
        raise MissingSourceError(f"source {mapping.source!r}: empty file(s) {empty}")
    return files


DEFAULT_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
"""Tried in order when a mapping declares none: UTF-8, then the Windows code page most exports use,
then latin-1, which decodes any byte. One choice for the whole file, never per row."""


def _read_file(mapping: Mapping, path: Path) -> pd.DataFrame:
    import io

    import pandas as pd

    fmt = mapping.format
    if fmt == "parquet":
        return pd.read_parquet(path).astype("string")
    if fmt in ("odata_json", "sap_odata"):
        return read_odata_page(path)
    if fmt != "csv":
        raise MappingError(f"{mapping.path}: read.format {fmt!r} is not a file format read by rows")
    text, _ = _decode(path.read_bytes(), mapping.read.get("encodings") or DEFAULT_ENCODINGS, path)
    # A DOS end-of-file byte (0x1A) on the last line is not a record.
    text = text.rstrip("\r\n").removesuffix("\x1a")
    try:
        return pd.read_csv(
            io.StringIO(text),
            sep=mapping.read.get("separator", ","),
            dtype="string",
            keep_default_na=False,
            na_values=[],
            header=0 if mapping.read.get("header", True) else None,
            skip_blank_lines=True,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeError) as err:
        # A row with more fields than the header, or no header at all: the file, not a row, is broken.
        raise SourceFormatError(f"{path}: not a CSV file as {mapping.path.name} declares it: {err}") from err


def _decode(raw: bytes, encodings, path: Path) -> tuple[str, str]:
    bom = raw.startswith(b"\xef\xbb\xbf")
    for encoding in encodings:
        try:
            # A UTF-8 byte-order mark in front of text in another encoding is not part of the header.
            body = raw[3:] if bom and not encoding.lower().replace("_", "-").startswith("utf") else raw
            return body.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise SourceFormatError(f"{path}: decodes with none of the encodings {list(encodings)}")


def read_odata_page(path: str | Path) -> pd.DataFrame:
    """Rows of one saved OData v2 JSON page (``{"d": {"results": [...]}}``), every value as text.

    ``null`` stays missing (not delivered); ``""`` stays an empty string until the mapping reads it.
    Nested objects (``__metadata``, deferred navigation links) are dropped.
    """
    import json

    import pandas as pd

    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    body = doc.get("d", doc) if isinstance(doc, dict) else None
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise MappingError(f"{path}: not an OData v2 page; expected {{'d': {{'results': [...]}}}}")
    rows = [{k: v for k, v in rec.items() if not isinstance(v, dict | list)} for rec in results]
    return pd.DataFrame(rows).astype("string")
