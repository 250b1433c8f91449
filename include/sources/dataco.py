"""Read the DataCo supply-chain data set into canonical customers, orders, order lines and holds.

DataCo ("Smart Supply Chain for Big Data Analysis", Constante, Silva, Pereira 2019, CC BY 4.0) is the
only public order data we know with hold-like order statuses. It has one row per ORDER LINE; header
fields (customer, date, status, ship-to) repeat on every line of an order. A 6,000-line sample ships in
``include/data/dataco`` (:data:`DATACO_SAMPLE`, see its ATTRIBUTION.md).

Reading. One encoding per file (UTF-8, else latin-1; never a guess per row), CRLF or LF, surrounding
spaces stripped from every value ("West of USA " is "West of USA"), identifiers and zip codes as text
with a float's ``.0`` undone ("725.0" is "725"; leading zeros the source already lost stay lost), blank
as missing, amounts as floats. Order dates are tried against :data:`DATE_FORMATS` in order; a value that
fits none is reported with its row and column, never guessed. The source carries no time zone: dates
are taken as UTC, so an hour-of-day feature is in DataCo's unknown local time.

Order status, a snapshot (the file has no history):

- ``PENDING``, ``PROCESSING``, ``PENDING_PAYMENT``: still in flight. Those created in the last
  :data:`OPEN_WINDOW_DAYS` days before the file's newest order are canonical ``open``: the orders
  holdcast scores. Older ones are ``closed``: the snapshot shows they were not held, and counting them
  as open would leave, for example, every remaining PAYMENT-type order in training a held one;
- ``CANCELED``: canonical ``cancelled``. It is not a hold: a hold waits for a condition and is then
  released, a cancellation ends the order, and DataCo gives no reason that would tell a cancellation
  after a block from a customer's change of mind;
- every other status (``COMPLETE``, ``CLOSED`` and the three hold statuses): canonical ``closed``.

Holds (the labels), one per held order, placed at the order date, release fields missing because the
snapshot never shows a release:

- ``ON_HOLD``: reason ``unspecified`` (DataCo gives no reason);
- ``SUSPECTED_FRAUD``: ``manual_review`` (fraud suspicion is a manual-review trigger);
- ``PAYMENT_REVIEW``: ``payment``.

``PENDING_PAYMENT`` is not a hold: it is the normal wait for a payment-type order's money.

Leakage. :data:`LEAKY_COLUMNS` are known only after the order's fate, or encode it; no canonical column
is derived from them except ``orders.status`` (which selects what is scored; features must never read
it) and the holds table, which is the label. ``Type`` (payment type) is known when the order is placed
and stays as ``payment_method``, but in this data set it partitions the statuses: CASH orders are all
CLOSED, DEBIT orders COMPLETE or ON_HOLD, PAYMENT orders PENDING_PAYMENT or PAYMENT_REVIEW, TRANSFER
orders PENDING, PROCESSING, CANCELED or SUSPECTED_FRAUD. A model fed ``payment_method`` learns that
partition, not hold behaviour: report results with and without it.

Customers: ``customer_since`` is the first order date seen in the file, an approximation (the true
account opening is earlier, and a sample sees fewer orders). Names are the masked first and last names.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from include.canonical import UNSPECIFIED_REASON, coerce
from include.sources.common import SourceFormatError, blank_to_na, normalise_id, read_text
from include.sources.countries import is_iso2, to_iso2

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

DATACO_SAMPLE = (
    Path(__file__).resolve().parent.parent / "data" / "dataco" / "DataCoSupplyChainDataset_sample6k.csv"
)
"""The shipped 6,000-line sample (CC BY 4.0, see ATTRIBUTION.md beside it)."""

DATE_FORMATS: tuple[str, ...] = ("%m/%d/%Y %H:%M", "%m/%d/%y %H:%M")
"""Declared order-date formats, tried in this order: four-digit years as published, two-digit years as
some spreadsheet tools save them. Either format fits only its own year width, so the order never changes
a value's meaning."""

CURRENCY = "USD"
"""DataCo states amounts in US dollars."""

OPEN_STATUSES = frozenset({"PENDING", "PROCESSING", "PENDING_PAYMENT"})
OPEN_WINDOW_DAYS = 30
"""In-flight orders this close to the file's newest order are still open; older ones are decided."""
CANCELLED_STATUSES = frozenset({"CANCELED"})
HOLD_REASON_BY_STATUS: dict[str, str] = {
    "ON_HOLD": UNSPECIFIED_REASON,
    "SUSPECTED_FRAUD": "manual_review",
    "PAYMENT_REVIEW": "payment",
}
KNOWN_STATUSES = OPEN_STATUSES | CANCELLED_STATUSES | set(HOLD_REASON_BY_STATUS) | {"COMPLETE", "CLOSED"}
"""The status code table: a status outside it is reported, so a new code cannot slip in as ``closed``."""
_CANONICAL_STATUS = {
    s: "open" if s in OPEN_STATUSES else "cancelled" if s in CANCELLED_STATUSES else "closed"
    for s in KNOWN_STATUSES
}

LEAKY_COLUMNS: tuple[str, ...] = (
    "Order Status",
    "Delivery Status",
    "Days for shipping (real)",
    "Late_delivery_risk",
    "shipping date (DateOrders)",
)
"""Source columns that hold the outcome or are known only after it: the status itself; the delivery
outcome ("Shipping canceled" exactly when CANCELED or SUSPECTED_FRAUD); the real shipping time and the
shipping date; the late-delivery flag computed from them (always 0 for cancelled and fraud orders)."""

# Source column names, once, so a renamed column fails in one place.
ORDER_ID = "Order Id"
ORDER_CUSTOMER_ID = "Order Customer Id"
CUSTOMER_ID = "Customer Id"
ORDER_DATE = "order date (DateOrders)"
ORDER_STATUS = "Order Status"
ORDER_ITEM_ID = "Order Item Id"
ORDER_ITEM_PRODUCT = "Order Item Cardprod Id"
PRODUCT_CARD_ID = "Product Card Id"
ORDER_ZIP = "Order Zipcode"
CUSTOMER_ZIP = "Customer Zipcode"
LINE_TOTAL = "Order Item Total"
QUANTITY = "Order Item Quantity"
UNIT_PRICE = "Order Item Product Price"
LIST_PRICE = "Product Price"

_ID_COLUMNS = (
    ORDER_ID,
    ORDER_CUSTOMER_ID,
    CUSTOMER_ID,
    ORDER_ITEM_ID,
    ORDER_ITEM_PRODUCT,
    PRODUCT_CARD_ID,
    ORDER_ZIP,
    CUSTOMER_ZIP,
)
_NUMBER_COLUMNS = (LINE_TOTAL, QUANTITY, UNIT_PRICE, LIST_PRICE, "Sales")
# Values every line needs, where the file has the column at all.
_REQUIRED_VALUES = (ORDER_ID, ORDER_DATE, ORDER_STATUS, ORDER_ITEM_ID, LINE_TOTAL, QUANTITY, UNIT_PRICE)
# Header fields that must agree on every line of one order.
_ORDER_HEADER = (ORDER_CUSTOMER_ID, CUSTOMER_ID, ORDER_DATE, ORDER_STATUS)

ROW = "row"
"""Column of :class:`DataCoRows` frames: the 1-based data row in the file (header excluded)."""


class DataCoFormatError(SourceFormatError):
    """A DataCo file cannot be read or lacks columns a canonical table needs."""


class DataCoValueError(DataCoFormatError):
    """Values in a DataCo file fit no declared rule. ``problems`` lists each: row, column, value, rule."""

    def __init__(self, source: str, problems: pd.DataFrame) -> None:
        self.problems = problems
        shown = "; ".join(
            f"row {p.row} column {p.column!r} value {p.value!r}: {p.rule}"
            for p in problems.head(5).itertuples(index=False)
        )
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{source}: {len(problems)} value(s) break a rule: {shown}{more}")


@dataclass(frozen=True)
class DataCoRows:
    """The lines of a DataCo file, cleaned and typed, before any mapping.

    Attributes:
        rows: one row per order line, DataCo column names; ids and zips as text, order date as UTC
            timestamps, amounts as floats, other text stripped; :data:`ROW` holds the file row.
        problems: one row per value that broke a rule: ``row``, ``order_id``, ``column``, ``value``,
            ``rule``. Empty when the file is clean.
        encoding: the encoding that decoded the whole file.
    """

    rows: pd.DataFrame
    problems: pd.DataFrame
    encoding: str


@dataclass(frozen=True)
class DataCoStats:
    """What one read produced; logged as one line and attached to :class:`DataCoTables`."""

    source: str
    encoding: str
    rows_read: int
    rows_quarantined: int
    orders: int
    order_lines: int
    customers: int
    holds_by_reason: dict[str, int] = field(default_factory=dict)
    countries_kept_as_text: tuple[str, ...] = ()


class DataCoTables(dict[str, "pd.DataFrame"]):
    """Canonical tables by name (``customers``, ``orders``, ``order_lines``, ``holds``).

    A plain ``dict[str, pd.DataFrame]`` to callers that only want the tables, with the read's
    :class:`DataCoStats` as ``stats`` and the quarantined values (empty unless asked for) as ``quarantine``.
    """

    def __init__(self, tables: dict[str, pd.DataFrame], stats: DataCoStats, quarantine: pd.DataFrame):
        super().__init__(tables)
        self.stats = stats
        self.quarantine = quarantine


def read_dataco(
    path: str | Path = DATACO_SAMPLE, *, on_bad_value: Literal["raise", "quarantine"] = "raise"
) -> DataCoTables:
    """Read a DataCo CSV into canonical ``customers``, ``orders``, ``order_lines`` and ``holds``.

    Args:
        path: the DataCo CSV (default: the shipped sample).
        on_bad_value: ``"raise"`` stops at the first file with a value that breaks a rule, naming the
            rows and columns; ``"quarantine"`` sets aside every line of each order that has such a
            value (an order never loads with lines missing) and loads the rest.

    Returns:
        The four tables, each passed through :func:`include.canonical.coerce`, with ``stats`` and
        ``quarantine`` attached.

    Raises:
        DataCoValueError: a value breaks a rule and ``on_bad_value`` is ``"raise"``.
        DataCoFormatError: the file cannot be parsed or lacks a column a table needs.
    """
    source = Path(path).name
    read = read_dataco_rows(path)
    rows, problems = read.rows, read.problems
    _require(rows, "customers", "orders", "order_lines", "holds")
    if len(problems) and on_bad_value == "raise":
        raise DataCoValueError(source, problems)
    if len(problems):
        bad_orders = problems["order_id"].dropna().unique()
        bad = rows[ORDER_ID].isin(bad_orders) | rows[ROW].isin(problems[ROW])
        rows = rows[~bad]
        logger.warning(
            "DataCo %s: %d value(s) broke a rule; %d line(s) of %d order(s) quarantined",
            source,
            len(problems),
            int(bad.sum()),
            len(bad_orders),
        )
    quarantined = len(read.rows) - len(rows)

    tables = {
        "customers": dataco_customers(rows),
        "orders": dataco_orders(rows),
        "order_lines": dataco_order_lines(rows),
        "holds": dataco_holds(rows),
    }
    stats = DataCoStats(
        source=source,
        encoding=read.encoding,
        rows_read=len(read.rows),
        rows_quarantined=quarantined,
        orders=len(tables["orders"]),
        order_lines=len(tables["order_lines"]),
        customers=len(tables["customers"]),
        holds_by_reason={k: int(v) for k, v in tables["holds"]["reason"].value_counts().sort_index().items()},
        countries_kept_as_text=_text_countries(tables),
    )
    logger.info(
        "DataCo %s (%s): %d rows read, %d quarantined; %d orders, %d lines, %d customers; holds %s; "
        "%d country name(s) kept as text",
        stats.source,
        stats.encoding,
        stats.rows_read,
        stats.rows_quarantined,
        stats.orders,
        stats.order_lines,
        stats.customers,
        stats.holds_by_reason,
        len(stats.countries_kept_as_text),
    )
    return DataCoTables(tables, stats, problems)


def read_dataco_rows(path: str | Path) -> DataCoRows:
    """Read and clean the lines of a DataCo CSV without mapping them.

    Only the columns the file has are typed, so a file holding a subset of DataCo's columns (as other
    tools export them) reads as far as it goes; the table builders then say what is missing.

    Args:
        path: the DataCo CSV.

    Returns:
        The typed lines, the values that broke a rule, and the file's encoding.

    Raises:
        DataCoFormatError: the file is empty or its records do not split into the header's fields.
    """
    import pandas as pd

    text, encoding = read_text(path)
    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataCoFormatError(f"{Path(path).name}: not a readable CSV ({encoding}): {err}") from err
    raw.columns = [str(c).strip() for c in raw.columns]

    rows = raw.apply(blank_to_na)
    rows.insert(0, ROW, pd.RangeIndex(1, len(rows) + 1))
    for col in _ID_COLUMNS:
        if col in rows:
            rows[col] = normalise_id(rows[col])
    if ORDER_STATUS in rows:
        rows[ORDER_STATUS] = rows[ORDER_STATUS].str.upper()

    # Blanks and format problems are found before a column is replaced by its typed values, so they
    # quote the value as the file wrote it and an unparsable date is not also reported as blank.
    problems = [_problem(rows, pd.Series(False, index=rows.index), "", "")]
    for col in _REQUIRED_VALUES:
        if col in rows:
            problems.append(_problem(rows, rows[col].isna(), col, "required value is blank"))
    for col in _NUMBER_COLUMNS:
        if col in rows:
            numbers = pd.to_numeric(rows[col], errors="coerce")
            problems.append(_problem(rows, rows[col].notna() & numbers.isna(), col, "not a number"))
            rows[col] = numbers.astype("float64")
    if ORDER_DATE in rows:
        dates = _parse_dates(rows[ORDER_DATE])
        rule = f"date fits none of the declared formats {', '.join(DATE_FORMATS)}"
        problems.append(_problem(rows, rows[ORDER_DATE].notna() & dates.isna(), ORDER_DATE, rule))
        rows[ORDER_DATE] = dates

    if ORDER_STATUS in rows:
        unknown = rows[ORDER_STATUS].notna() & ~rows[ORDER_STATUS].isin(KNOWN_STATUSES)
        problems.append(_problem(rows, unknown, ORDER_STATUS, "status not in the declared code table"))
    if ORDER_ITEM_ID in rows:
        repeated = rows[ORDER_ITEM_ID].notna() & rows[ORDER_ITEM_ID].duplicated(keep=False)
        problems.append(_problem(rows, repeated, ORDER_ITEM_ID, "order line id repeats"))
    if ORDER_ID in rows:
        for col in (c for c in _ORDER_HEADER if c in rows):
            varies = rows.groupby(ORDER_ID)[col].transform("nunique") > 1
            problems.append(_problem(rows, varies, col, "differs between lines of one order"))
    found = pd.concat(problems, ignore_index=True).sort_values([ROW, "column"], kind="stable")
    found = found.reset_index(drop=True)

    logger.info(
        "DataCo %s: %d rows, %d columns read as %s; %d value(s) broke a rule",
        Path(path).name,
        len(rows),
        raw.shape[1],
        encoding,
        len(found),
    )
    return DataCoRows(rows=rows, problems=found, encoding=encoding)


def _status(status: pd.Series, created: pd.Series) -> pd.Series:
    """Canonical status; in-flight orders older than the open window count as decided (module docstring)."""
    import pandas as pd

    canonical_status = status.map(_CANONICAL_STATUS)
    stale = created < created.max() - pd.Timedelta(days=OPEN_WINDOW_DAYS)
    return canonical_status.mask((canonical_status == "open") & stale, "closed")


def dataco_orders(rows: pd.DataFrame) -> pd.DataFrame:
    """Build canonical ``orders`` from typed DataCo lines (see :func:`read_dataco_rows`).

    Header fields come from the order's first line that has them (they agree on every line of a clean
    file: :func:`read_dataco_rows` reports lines that disagree); the amount is the sum of the line
    totals (``Order Item Total``, after discount).
    """
    customer = _customer_column(rows)
    _require(rows, "orders")
    lines = _in_line_order(rows)
    grouped = lines.groupby(ORDER_ID, sort=False)
    head = grouped.first()
    orders = {
        "order_id": head.index.to_series(),
        "customer_id": head[customer],
        "created_at": head[ORDER_DATE],
        "requested_date": None,
        "amount": grouped[LINE_TOTAL].sum(),
        "currency": CURRENCY,
        "ship_to_country": to_iso2(head["Order Country"]),
        "ship_to_city": head["Order City"],
        "ship_to_street": None,
        "ship_to_postcode": head[ORDER_ZIP],
        "po_number": None,
        "payment_method": head["Type"],
        "segment": head["Customer Segment"],
        "status": _status(head[ORDER_STATUS], head[ORDER_DATE]),
    }
    frame = _frame(orders, index=head.index).sort_values(["created_at", "order_id"], kind="stable")
    return coerce("orders", frame.reset_index(drop=True))


def dataco_order_lines(rows: pd.DataFrame) -> pd.DataFrame:
    """Build canonical ``order_lines``: ``line_no`` counts from 1 in ``Order Item Id`` order per order."""
    product = _product_column(rows)
    _require(rows, "order_lines")
    lines = _in_line_order(rows)
    frame = _frame(
        {
            "order_id": lines[ORDER_ID],
            "line_no": lines.groupby(ORDER_ID, sort=False).cumcount() + 1,
            "product_id": lines[product],
            "product_category": lines["Category Name"],
            "quantity": lines[QUANTITY],
            "unit_price": lines[UNIT_PRICE],
            "list_price": lines[LIST_PRICE],
        },
        index=lines.index,
    )
    return coerce("order_lines", frame.reset_index(drop=True))


def dataco_customers(rows: pd.DataFrame) -> pd.DataFrame:
    """Build canonical ``customers``, one per customer id, from the lines of its first order in the file.

    ``customer_since`` is the first order date seen, an approximation of the account's age.
    """
    customer = _customer_column(rows)
    _require(rows, "customers")
    first = _in_line_order(rows).sort_values(ORDER_DATE, kind="stable").drop_duplicates(customer)
    names = (
        first["Customer Fname"].fillna("").str.cat(first["Customer Lname"].fillna(""), sep=" ").str.strip()
    )
    # Masked data can leave both name parts blank; the name is required, so say which record it is.
    names = names.mask(names == "", "DataCo customer " + first[customer])
    frame = _frame(
        {
            "customer_id": first[customer],
            "name": names,
            "country": to_iso2(first["Customer Country"]),
            "industry": None,
            "segment": first["Customer Segment"],
            "size_band": None,
            "customer_since": first[ORDER_DATE],
            "payment_terms_days": None,
            "currency": CURRENCY,
        },
        index=first.index,
    )
    return coerce("customers", frame.sort_values("customer_id", kind="stable").reset_index(drop=True))


def dataco_holds(rows: pd.DataFrame) -> pd.DataFrame:
    """Build canonical ``holds``: one per order whose status is a hold status (module docstring)."""
    _require(rows, "holds")
    held = rows[rows[ORDER_STATUS].isin(HOLD_REASON_BY_STATUS)].drop_duplicates(ORDER_ID)
    frame = _frame(
        {
            "order_id": held[ORDER_ID],
            "reason": held[ORDER_STATUS].map(HOLD_REASON_BY_STATUS),
            "placed_at": held[ORDER_DATE],
            "released_at": None,
            "release_kind": None,
            "released_by": None,
        },
        index=held.index,
    )
    frame = frame.sort_values(["placed_at", "order_id"], kind="stable").reset_index(drop=True)
    return coerce("holds", frame)


def _parse_dates(values: pd.Series) -> pd.Series:
    """Parse with the declared formats in order; the first format that fits a value wins."""
    import pandas as pd

    parsed = None
    for fmt in DATE_FORMATS:
        attempt = pd.to_datetime(values, format=fmt, errors="coerce")
        parsed = attempt if parsed is None else parsed.fillna(attempt)
    return parsed.dt.tz_localize("UTC")


def _problem(rows: pd.DataFrame, mask: pd.Series, column: str, rule: str) -> pd.DataFrame:
    """One problem row per line where ``mask`` holds, quoting the line's value in ``column``."""
    import pandas as pd

    wanted = [c for c in dict.fromkeys((ROW, ORDER_ID, column)) if c in rows]
    hit = rows.loc[mask, wanted]
    return pd.DataFrame(
        {
            ROW: hit[ROW].astype("int64"),
            "order_id": hit[ORDER_ID] if ORDER_ID in hit else pd.NA,
            "column": column,
            "value": hit[column] if column in hit else pd.NA,
            "rule": rule,
        }
    ).astype({"order_id": "string", "column": "string", "value": "string", "rule": "string"})


def _customer_column(rows: pd.DataFrame) -> str:
    """DataCo repeats the customer id as ``Customer Id``; other exports may keep only one of the two."""
    return ORDER_CUSTOMER_ID if ORDER_CUSTOMER_ID in rows or CUSTOMER_ID not in rows else CUSTOMER_ID


def _product_column(rows: pd.DataFrame) -> str:
    """DataCo repeats the product id as ``Product Card Id``; prefer the line's own column."""
    if ORDER_ITEM_PRODUCT in rows or PRODUCT_CARD_ID not in rows:
        return ORDER_ITEM_PRODUCT
    return PRODUCT_CARD_ID


def _missing_columns(rows: pd.DataFrame) -> dict[str, list[str]]:
    """The source columns each canonical table needs and the file lacks; complete tables are left out."""
    customer, product = _customer_column(rows), _product_column(rows)
    needs = {
        "customers": (
            customer,
            ORDER_DATE,
            "Customer Fname",
            "Customer Lname",
            "Customer Country",
            "Customer Segment",
        ),
        "orders": (
            ORDER_ID,
            customer,
            ORDER_DATE,
            ORDER_STATUS,
            LINE_TOTAL,
            "Order City",
            "Order Country",
            ORDER_ZIP,
            "Type",
            "Customer Segment",
        ),
        "order_lines": (ORDER_ID, ORDER_ITEM_ID, product, "Category Name", QUANTITY, UNIT_PRICE, LIST_PRICE),
        "holds": (ORDER_ID, ORDER_DATE, ORDER_STATUS),
    }
    missing = {table: [c for c in columns if c not in rows] for table, columns in needs.items()}
    return {table: columns for table, columns in missing.items() if columns}


def _require(rows: pd.DataFrame, *tables: str) -> None:
    missing = {t: c for t, c in _missing_columns(rows).items() if t in tables}
    if missing:
        detail = "; ".join(f"{table!r} needs {columns}" for table, columns in missing.items())
        raise DataCoFormatError(f"DataCo columns absent from the file: {detail}")


def _in_line_order(rows: pd.DataFrame) -> pd.DataFrame:
    """Sort lines by order, then by the numeric value of their line id (text ids sort after, as text)."""
    import pandas as pd

    if ORDER_ITEM_ID not in rows:
        return rows
    keyed = rows.assign(_item=pd.to_numeric(rows[ORDER_ITEM_ID], errors="coerce"))
    ordered = keyed.sort_values([ORDER_ID, "_item", ORDER_ITEM_ID], kind="stable", na_position="last")
    return ordered.drop(columns="_item")


def _frame(columns: dict, index: pd.Index) -> pd.DataFrame:
    """A frame from series and scalars; ``None`` becomes a missing value of the column's canonical kind."""
    import pandas as pd

    return pd.DataFrame({k: (pd.NA if v is None else v) for k, v in columns.items()}, index=index)


def _text_countries(tables: dict[str, pd.DataFrame]) -> tuple[str, ...]:
    """Country names the ISO table did not know, kept as the source's text."""
    values = [tables["customers"]["country"], tables["orders"]["ship_to_country"]]
    kept = {v for s in values for v in s.dropna()[~is_iso2(s.dropna())].unique()}
    return tuple(sorted(kept))
