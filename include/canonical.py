"""The canonical data model: the contract every source maps into and every feature reads from.

A table is a list of columns, each with a kind, and a primary key. Kinds are deliberately few:

- ``str``: text (identifiers are text, never numbers: "0000611365" keeps its zeros);
- ``float``: amounts, scores, quantities;
- ``int``: counts and day numbers;
- ``bool``: flags;
- ``ts``: a timezone-aware UTC timestamp.

:func:`coerce` turns a frame into exactly these dtypes; it is what readers of the warehouse use, so
features and training never see a column of the wrong type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

HOLD_REASONS: tuple[str, ...] = (
    "credit",
    "incomplete_info",
    "compliance",
    "payment",
    "inventory",
    "manual_review",
)
"""The hold reason codes. A source that cannot tell the reason uses ``unspecified``."""

UNSPECIFIED_REASON = "unspecified"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    required: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    time_column: str | None = None
    """The column that says when a record became known; ingestion reads up to the interval end by it."""

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required or c.name in self.key]


def _t(name: str, key: tuple[str, ...], time_column: str | None, *cols: tuple) -> Table:
    return Table(name, tuple(Column(*c) for c in cols), key, time_column)


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        _t(
            "customers",
            ("customer_id",),
            None,
            ("customer_id", "str", True),
            ("name", "str", True),
            ("country", "str"),
            ("industry", "str"),
            ("segment", "str"),
            ("size_band", "str"),
            ("customer_since", "ts"),
            ("payment_terms_days", "int"),
            ("currency", "str"),
        ),
        _t(
            "credit_profiles",
            ("customer_id", "valid_from"),
            "valid_from",
            ("customer_id", "str", True),
            ("valid_from", "ts", True),
            ("credit_limit", "float", True),
            ("internal_score", "float"),
            ("risk_class", "str"),
        ),
        _t(
            "bureau_reports",
            ("customer_id", "reported_at", "bureau"),
            "reported_at",
            ("customer_id", "str", True),
            ("reported_at", "ts", True),
            ("bureau", "str", True),
            ("score", "float"),
            ("rating", "str"),
            ("days_beyond_terms", "float"),
            ("derogatory_flags", "int"),
        ),
        _t(
            "orders",
            ("order_id",),
            "created_at",
            ("order_id", "str", True),
            ("customer_id", "str", True),
            ("created_at", "ts", True),
            ("requested_date", "ts"),
            ("amount", "float", True),
            ("currency", "str"),
            ("ship_to_country", "str"),
            ("ship_to_city", "str"),
            ("ship_to_street", "str"),
            ("ship_to_postcode", "str"),
            ("po_number", "str"),
            ("payment_method", "str"),
            ("segment", "str"),
            ("status", "str", True),
        ),
        _t(
            "order_lines",
            ("order_id", "line_no"),
            None,
            ("order_id", "str", True),
            ("line_no", "int", True),
            ("product_id", "str", True),
            ("product_category", "str"),
            ("quantity", "float", True),
            ("unit_price", "float", True),
            ("list_price", "float"),
        ),
        _t(
            "invoices",
            ("invoice_id",),
            "issued_at",
            ("invoice_id", "str", True),
            ("customer_id", "str", True),
            ("order_id", "str"),
            ("issued_at", "ts", True),
            ("due_at", "ts", True),
            ("amount", "float", True),
            ("cleared_at", "ts"),
            ("paid_amount", "float"),
            ("currency", "str"),
        ),
        _t(
            "payments",
            ("payment_id",),
            "received_at",
            ("payment_id", "str", True),
            ("customer_id", "str", True),
            ("invoice_id", "str"),
            ("received_at", "ts", True),
            ("amount", "float", True),
            ("method", "str"),
            ("status", "str", True),
        ),
        _t(
            "disputes",
            ("dispute_id",),
            "opened_at",
            ("dispute_id", "str", True),
            ("customer_id", "str", True),
            ("invoice_id", "str"),
            ("opened_at", "ts", True),
            ("closed_at", "ts"),
            ("amount", "float"),
            ("reason", "str"),
        ),
        _t(
            "interactions",
            ("interaction_id",),
            "at",
            ("interaction_id", "str", True),
            ("customer_id", "str", True),
            ("at", "ts", True),
            ("kind", "str", True),
            ("amount", "float"),
        ),
        _t(
            "holds",
            ("order_id", "reason", "placed_at"),
            "placed_at",
            ("order_id", "str", True),
            ("reason", "str", True),
            ("placed_at", "ts", True),
            ("released_at", "ts"),
            ("release_kind", "str"),
            ("released_by", "str"),
        ),
        _t(
            "inventory",
            ("product_id", "as_of"),
            "as_of",
            ("product_id", "str", True),
            ("as_of", "ts", True),
            ("available", "float", True),
        ),
        _t(
            "sanctions_entries",
            ("entry_id",),
            None,
            ("entry_id", "str", True),
            ("name", "str", True),
            ("country", "str"),
            ("program", "str"),
            ("aliases", "str"),
        ),
    )
}

INTERACTION_KINDS = ("contact", "promise_to_pay", "broken_promise", "collection_step")
PAYMENT_STATUSES = ("ok", "failed", "declined")
ORDER_STATUSES = ("open", "closed", "cancelled")
"""``open``: not yet through the ERP's checks, the orders holdcast scores; ``closed``: decided."""


def empty_frame(table: str) -> pd.DataFrame:
    """An empty frame with the table's columns and dtypes: what a source that lacks the table gives."""
    import pandas as pd

    return coerce(table, pd.DataFrame({c: [] for c in TABLES[table].column_names}))


def coerce(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly the table's columns, in order, each in its canonical dtype.

    Values that do not fit raise ``ValueError`` naming the table and column: by the time a frame is
    coerced, validation has quarantined the rows that do not parse.
    """
    import pandas as pd

    spec = TABLES[table]
    missing = [c for c in spec.column_names if c not in frame.columns]
    if missing:
        raise ValueError(f"table {table!r} lacks column(s) {missing}")
    out = {}
    for col in spec.columns:
        values = frame[col.name]
        try:
            if col.kind == "str":
                out[col.name] = values.astype("string")
            elif col.kind == "float":
                out[col.name] = pd.to_numeric(values).astype("float64")
            elif col.kind == "int":
                out[col.name] = pd.to_numeric(values).astype("Int64")
            elif col.kind == "bool":
                out[col.name] = values.astype("boolean")
            elif col.kind == "ts":
                # One unit everywhere: an all-empty column would otherwise come out in seconds.
                out[col.name] = pd.to_datetime(values, utc=True, format="ISO8601").astype(
                    "datetime64[us, UTC]"
                )
            else:
                raise ValueError(f"unknown kind {col.kind!r}")
        except (TypeError, ValueError) as err:
            raise ValueError(f"table {table!r}, column {col.name!r} ({col.kind}): {err}") from err
    return pd.DataFrame(out, index=frame.index)
