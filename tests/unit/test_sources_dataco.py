"""Tests of the DataCo reader on the shipped sample and on the latin-1 / two-digit-year case file.

Expected values come from an independent reading of the same files with the standard ``csv`` module,
so a mapping mistake in the reader cannot also hide in the oracle.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import pytest

from include.canonical import TABLES, coerce
from include.sources.dataco import (
    DATACO_SAMPLE,
    LEAKY_COLUMNS,
    OPEN_WINDOW_DAYS,
    DataCoFormatError,
    DataCoValueError,
    dataco_customers,
    dataco_holds,
    dataco_order_lines,
    dataco_orders,
    read_dataco,
    read_dataco_rows,
)

CASE_FILE = Path(__file__).resolve().parent.parent / "fixtures" / "ingest" / "dataco_latin1_2digit_years.csv"
SAMPLE_SHA256 = "34ae1414703492faad9aa1832834fa0c42465baae0bbfe0417931980e28aaea5"


@pytest.fixture(scope="module")
def sample_lines() -> list[dict[str, str]]:
    with DATACO_SAMPLE.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def tables():
    return read_dataco(DATACO_SAMPLE)


def _orders_by_status(lines: list[dict[str, str]]) -> dict[str, set[str]]:
    by_status: dict[str, set[str]] = defaultdict(set)
    for line in lines:
        by_status[line["Order Status"]].add(line["Order Id"])
    return by_status


def _write_lines(path: Path, header: list[str], lines: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(lines)
    return path


def test_shipped_sample_is_the_published_file():
    assert hashlib.sha256(DATACO_SAMPLE.read_bytes()).hexdigest() == SAMPLE_SHA256
    assert (DATACO_SAMPLE.parent / "ATTRIBUTION.md").read_text().count("10.17632/8gx2fvg2k6.5") == 1


def test_sample_maps_to_canonical_tables(tables, sample_lines):
    assert set(tables) == {"customers", "orders", "order_lines", "holds"}
    for name, frame in tables.items():
        assert list(frame.columns) == TABLES[name].column_names
        pd.testing.assert_frame_equal(frame, coerce(name, frame))
        assert not frame.duplicated(list(TABLES[name].key)).any(), name

    orders = {line["Order Id"] for line in sample_lines}
    customers = {line["Order Customer Id"] for line in sample_lines}
    assert (len(sample_lines), len(orders), len(customers)) == (6000, 5743, 4680)
    assert len(tables["order_lines"]) == 6000
    assert set(tables["orders"]["order_id"]) == orders
    assert set(tables["customers"]["customer_id"]) == customers

    stats = tables.stats
    assert (stats.rows_read, stats.orders, stats.order_lines, stats.customers) == (6000, 5743, 6000, 4680)
    assert stats.rows_quarantined == 0 and tables.quarantine.empty
    assert stats.countries_kept_as_text == ()


def test_hold_counts_match_the_published_status_counts(tables, sample_lines):
    """SOURCES.md counts ROWS (order lines); a hold is per ORDER, so an order of two held lines is one hold.

    The row counts are checked as published, then the holds against the distinct orders of each status.
    """
    rows = Counter(line["Order Status"] for line in sample_lines)
    assert rows["ON_HOLD"] == 318
    assert rows["SUSPECTED_FRAUD"] == 146
    assert rows["PAYMENT_REVIEW"] == 59
    assert rows["PENDING_PAYMENT"] == 1301
    assert rows["CANCELED"] == 115
    assert sum(rows.values()) - 318 - 146 - 59 - 1301 - 115 == 4061

    by_status = _orders_by_status(sample_lines)
    holds = tables["holds"]
    held = {reason: set(group["order_id"]) for reason, group in holds.groupby("reason")}
    assert held == {
        "unspecified": by_status["ON_HOLD"],
        "manual_review": by_status["SUSPECTED_FRAUD"],
        "payment": by_status["PAYMENT_REVIEW"],
    }
    assert tables.stats.holds_by_reason == {"manual_review": 141, "payment": 57, "unspecified": 303}
    assert holds["released_at"].isna().all() and holds["released_by"].isna().all()

    created = tables["orders"].set_index("order_id")["created_at"]
    assert (holds["placed_at"].to_numpy() == created.loc[holds["order_id"]].to_numpy()).all()


def test_order_status_and_cancellations(tables, sample_lines):
    by_status = _orders_by_status(sample_lines)
    orders = tables["orders"].set_index("order_id")
    status = orders["status"]
    in_flight = by_status["PENDING"] | by_status["PROCESSING"] | by_status["PENDING_PAYMENT"]
    recent = orders["created_at"] >= orders["created_at"].max() - pd.Timedelta(days=OPEN_WINDOW_DAYS)
    open_ids = set(status[status == "open"].index)
    assert open_ids and open_ids == in_flight & set(orders.index[recent])
    # Older in-flight orders are decided: the snapshot shows them not held.
    assert (status.loc[sorted(in_flight - open_ids)] == "closed").all()
    assert set(status[status == "cancelled"].index) == by_status["CANCELED"]
    # CANCELED is not a hold, and nothing held is still open.
    assert not set(tables["holds"]["order_id"]) & by_status["CANCELED"]
    assert (status.loc[tables["holds"]["order_id"]] == "closed").all()


def test_order_fields_and_line_order(tables, sample_lines):
    totals: dict[str, float] = defaultdict(float)
    items: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for line in sample_lines:
        totals[line["Order Id"]] += float(line["Order Item Total"])
        items[line["Order Id"]].append((int(line["Order Item Id"]), line["Order Item Cardprod Id"]))

    orders = tables["orders"].set_index("order_id")
    assert orders["amount"].to_dict() == pytest.approx(dict(totals))
    assert (orders["currency"] == "USD").all()
    assert orders["created_at"].dt.tz is not None
    assert orders["ship_to_country"].str.fullmatch("[A-Z]{2}").all()
    assert orders["ship_to_postcode"].dropna().str.fullmatch("[0-9]+").all()

    first = next(line for line in sample_lines if line["Order Id"] == "31299")
    assert first["order date (DateOrders)"] == "4/1/2016 21:05"
    assert orders.loc["31299", "created_at"] == pd.Timestamp("2016-04-01 21:05", tz="UTC")
    assert orders.loc["31299", "ship_to_country"] == "US"  # "Estados Unidos"
    assert orders.loc["31299", "ship_to_postcode"] == "90036"  # "90036.0"
    assert orders.loc["31299", "payment_method"] == "TRANSFER"

    lines = tables["order_lines"]
    multi = [order for order, its in items.items() if len(its) > 1]
    assert multi, "the sample has orders of several lines"
    for order in multi:
        expected = [product for _, product in sorted(items[order])]
        got = lines[lines["order_id"] == order].sort_values("line_no")
        assert got["line_no"].tolist() == list(range(1, len(expected) + 1))
        assert got["product_id"].tolist() == expected


def test_customers_since_first_order_seen(tables, sample_lines):
    first_seen: dict[str, pd.Timestamp] = {}
    names: dict[str, str] = {}
    for line in sample_lines:
        when = pd.to_datetime(line["order date (DateOrders)"], format="%m/%d/%Y %H:%M").tz_localize("UTC")
        cid = line["Order Customer Id"]
        first_seen[cid] = min(first_seen.get(cid, when), when)
        names[cid] = f"{line['Customer Fname']} {line['Customer Lname']}".strip()

    customers = tables["customers"].set_index("customer_id")
    assert customers["customer_since"].to_dict() == first_seen
    assert customers["name"].to_dict() == names
    assert set(customers["country"]) == {"US", "PR"}  # "EE. UU." and "Puerto Rico"
    assert (customers["currency"] == "USD").all()


def test_leaky_columns_reach_no_feature_column():
    """Scrambling every leaky column changes the labels and ``orders.status`` only.

    ``status`` selects which orders are scored and is documented as never a feature; holds are the label.
    """
    rows = read_dataco_rows(DATACO_SAMPLE).rows
    assert set(LEAKY_COLUMNS) <= set(rows.columns)
    scrambled = rows.copy()
    for col in LEAKY_COLUMNS:
        scrambled[col] = rows[col].sample(frac=1.0, random_state=7).to_numpy()
    # The status must stay one per order, so scramble it between orders rather than lines.
    heads = rows.drop_duplicates("Order Id")
    shuffled = pd.Series(
        heads["Order Status"].sample(frac=1.0, random_state=3).to_numpy(), index=heads["Order Id"]
    )
    scrambled["Order Status"] = rows["Order Id"].map(shuffled)

    before, after = dataco_orders(rows), dataco_orders(scrambled)
    assert not before["status"].equals(after["status"])
    pd.testing.assert_frame_equal(before.drop(columns="status"), after.drop(columns="status"))
    pd.testing.assert_frame_equal(dataco_order_lines(rows), dataco_order_lines(scrambled))
    pd.testing.assert_frame_equal(dataco_customers(rows), dataco_customers(scrambled))
    assert not dataco_holds(rows).equals(dataco_holds(scrambled))


def test_payment_type_partitions_the_statuses(tables):
    """The docstring's warning about ``payment_method``, checked on the data so it cannot go stale."""
    orders = tables["orders"].set_index("order_id")
    holds = tables["holds"]
    method = orders.loc[holds["order_id"], "payment_method"].to_numpy()
    by_reason = pd.Series(method).groupby(holds["reason"].to_numpy()).unique()
    assert {reason: sorted(methods) for reason, methods in by_reason.items()} == {
        "manual_review": ["TRANSFER"],
        "payment": ["PAYMENT"],
        "unspecified": ["DEBIT"],
    }
    assert set(orders.loc[orders["payment_method"] == "CASH", "status"]) == {"closed"}


def test_case_file_latin1_two_digit_years_right_reading():
    read = read_dataco_rows(CASE_FILE)
    rows = read.rows.set_index("Order Id")
    assert read.encoding == "latin-1"
    assert read.problems.empty

    assert rows.loc["77202", "order date (DateOrders)"] == pd.Timestamp("2018-01-31 22:56", tz="UTC")
    assert rows.loc["75939", "order date (DateOrders)"] == pd.Timestamp("2017-12-01 07:05", tz="UTC")
    assert rows.loc["75939", "Customer Country"] == "México"
    assert rows.loc["29874", "Customer Country"] == "Japón"
    assert rows.loc["77202", "Order Region"] == "West of USA"
    assert rows.loc["2431", "Order Zipcode"] == "725"
    assert rows.loc["29874", "Order Zipcode"] == "90036"
    assert pd.isna(rows.loc["77202", "Order Zipcode"])
    assert rows.loc["2431", "Sales"] == 45.0
    assert rows["Order Customer Id"].tolist() == ["12435", "4840", "9001", "102"]

    holds = dataco_holds(read.rows).set_index("order_id")
    assert holds["reason"].to_dict() == {"29874": "payment", "75939": "manual_review", "77202": "unspecified"}
    assert holds.loc["77202", "placed_at"] == pd.Timestamp("2018-01-31 22:56", tz="UTC")


def test_case_file_lacks_columns_for_full_tables():
    with pytest.raises(DataCoFormatError, match=r"'order_lines' needs \['Order Item Id'"):
        read_dataco(CASE_FILE)


def test_encoding_is_decided_per_file(tmp_path):
    """The same content in UTF-8 reads the same; one latin-1 byte makes the whole file latin-1."""
    latin1 = read_dataco_rows(CASE_FILE)
    utf8_path = tmp_path / "utf8.csv"
    utf8_path.write_bytes(CASE_FILE.read_bytes().decode("latin-1").replace("\r\n", "\n").encode("utf-8"))
    utf8 = read_dataco_rows(utf8_path)
    assert utf8.encoding == "utf-8-sig"
    pd.testing.assert_frame_equal(utf8.rows, latin1.rows)

    mixed = tmp_path / "mixed.csv"
    text = CASE_FILE.read_bytes().decode("latin-1")
    mixed.write_bytes(text.replace("Japón", "Japan").encode("utf-8").replace("México".encode(), b"M\xe9xico"))
    read = read_dataco_rows(mixed)
    assert read.encoding == "latin-1"
    assert read.rows.set_index("Order Id").loc["75939", "Customer Country"] == "México"


def _bad_sample(tmp_path: Path, sample_lines, change) -> tuple[Path, str]:
    """A small DataCo file: one order of several lines plus ten others, ``change`` applied to a line."""
    counts = Counter(line["Order Id"] for line in sample_lines)
    multi = next(order for order, n in counts.items() if n > 1)
    picked = [dict(line) for line in sample_lines if line["Order Id"] == multi]
    picked += [dict(line) for line in sample_lines if counts[line["Order Id"]] == 1][:10]
    change(picked[0])
    return _write_lines(tmp_path / "bad.csv", list(sample_lines[0]), picked), multi


def test_undeclared_date_format_is_reported_with_row_and_column(tmp_path, sample_lines):
    def day_first(line):
        line["order date (DateOrders)"] = "31/1/2018 22:56"

    path, order = _bad_sample(tmp_path, sample_lines, day_first)
    with pytest.raises(
        DataCoValueError, match=r"row 1 column 'order date \(DateOrders\)' value '31/1/2018 22:56'"
    ):
        read_dataco(path)

    tables = read_dataco(path, on_bad_value="quarantine")
    quarantine = tables.quarantine
    assert quarantine[["row", "order_id", "column"]].values.tolist()[0] == [
        1,
        order,
        "order date (DateOrders)",
    ]
    assert "declared formats" in quarantine["rule"].iloc[0]
    # The whole order is set aside, so it never loads with a line missing; the other ten load.
    assert order not in set(tables["orders"]["order_id"])
    assert order not in set(tables["order_lines"]["order_id"])
    assert len(tables["orders"]) == 10
    assert tables.stats.rows_quarantined == tables.stats.rows_read - 10


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("Order Item Total", "abc", "not a number"),
        ("Order Item Quantity", "", "required value is blank"),
        ("Order Status", "BLOCKED_FOREVER", "status not in the declared code table"),
        ("Order Customer Id", "99999999", "differs between lines of one order"),
    ],
)
def test_values_breaking_a_rule_are_named(tmp_path, sample_lines, column, value, rule):
    def spoil(line):
        line[column] = value

    path, order = _bad_sample(tmp_path, sample_lines, spoil)
    with pytest.raises(DataCoValueError) as caught:
        read_dataco(path)
    problems = caught.value.problems
    assert (1, column, rule) in set(problems[["row", "column", "rule"]].itertuples(index=False, name=None))
    assert set(problems["order_id"]) == {order}
    assert f"row 1 column {column!r}" in str(caught.value)


def test_header_only_file_gives_empty_tables(tmp_path, sample_lines):
    path = _write_lines(tmp_path / "empty.csv", list(sample_lines[0]), [])
    tables = read_dataco(path)
    for name, frame in tables.items():
        assert frame.empty
        assert list(frame.columns) == TABLES[name].column_names
    assert tables.stats.holds_by_reason == {}


def test_crlf_and_trailing_spaces_read_like_clean_text(tmp_path, sample_lines):
    clean = _write_lines(tmp_path / "clean.csv", list(sample_lines[0]), sample_lines[:50])
    messy = tmp_path / "messy.csv"
    spaced = [
        {k: (f" {v}  " if k in ("Order City", "Category Name") else v) for k, v in line.items()}
        for line in sample_lines[:50]
    ]
    _write_lines(messy, list(sample_lines[0]), spaced)
    messy.write_bytes(messy.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    a, b = read_dataco(clean), read_dataco(messy)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
