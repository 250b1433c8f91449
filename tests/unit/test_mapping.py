"""Source mappings: the case files read right, bad mappings fail clearly, values are never guessed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from include import mapping, validation
from include.sources.common import SourceFormatError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ingest"


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC") if pd.Timestamp(text).tzinfo else pd.Timestamp(text, tz="UTC")


def _validated(m: mapping.Mapping, table: str, rows: pd.DataFrame) -> validation.Outcome:
    mapped = mapping.apply(m, table, rows)
    return validation.validate(
        table,
        mapped.frame,
        source=m.source,
        batch="case",
        tolerance=1.0,
        allow_empty=True,
        rules=mapped.rules,
        raw_rows=mapped.raw,
        drift=mapped.drift,
    )


# --- the receivables export (ar_invoices_messy.csv) -------------------------------------------------


@pytest.fixture(scope="module")
def receivables():
    m = mapping.load(FIXTURES / "ar_invoices_messy.yaml")
    rows = mapping.read_rows(m, path=FIXTURES / "ar_invoices_messy.csv")
    return rows, _validated(m, "invoices", rows)


def test_receivables_every_row_is_loaded_or_quarantined_once(receivables):
    rows, out = receivables
    assert len(out.good) + len(out.quarantine) == len(rows) == 8
    assert out.quarantine["row_number"].is_unique


def test_receivables_ids_are_one_form(receivables):
    _, out = receivables
    good = out.good.set_index("invoice_id")
    # "0000611365" and "611365" are one invoice, kept once; the second is quarantined as a duplicate row.
    assert list(good.index).count("0000611365") == 1
    assert "2960623488" in good.index  # "2960623488.0" went through a float
    assert good.loc["2960623488", "customer_id"] == good.loc["2960623489", "customer_id"] == "0200769623"
    assert good.loc["2960623490", "customer_id"] == "CCU001"


def test_receivables_dates_follow_the_declared_formats(receivables):
    _, out = receivables
    good = out.good.set_index("invoice_id")
    assert good.loc["2960623488", "issued_at"] == _ts("2020-03-11")  # M/D/YYYY by declaration
    assert good.loc["0000611365", "cleared_at"] == _ts("2013-01-15")
    assert good.loc["2960623490", "issued_at"] == _ts("2020-11-05")  # ISO with nanoseconds
    assert str(good["issued_at"].dtype) == "datetime64[us, UTC]"


def test_receivables_amounts_and_codes(receivables):
    _, out = receivables
    good = out.good.set_index("invoice_id")
    assert good.loc["2960623488", "amount"] == 1204.50
    assert good.loc["2960623490", "amount"] == 88.10
    assert good.loc["2960623489", "currency"] == "USD"


def test_receivables_bad_rows_carry_the_rule_they_broke(receivables):
    _, out = receivables
    by_row = dict(zip(out.quarantine["row_number"], out.quarantine["rules"], strict=True))
    assert by_row == {
        1: "duplicate_row:invoice_id",
        5: "expect_column_values_to_not_be_null:invoice_id",
        6: "expect_column_pair_values_a_to_be_greater_than_b:due_at>=issued_at",
        7: "map_decimal:amount",
    }
    raw = json.loads(out.quarantine.set_index("row_number").loc[7, "raw"])
    assert raw["amount"] == "abc" and raw["invoice_id"] == "2960623492"


def test_a_date_fitting_no_declared_format_is_quarantined_not_guessed(tmp_path):
    m = mapping.load(FIXTURES / "ar_invoices_messy.yaml")
    rows = mapping.read_rows(m, path=FIXTURES / "ar_invoices_messy.csv").head(1).copy()
    rows.loc[0, "issued"] = "11.03.2020"  # day.month.year: not declared
    mapped = mapping.apply(m, "invoices", rows)
    assert mapped.rules == {0: ["map_date:issued_at"]}
    assert "ISO8601" in mapped.explain["map_date:issued_at"]


def test_declared_format_order_decides_an_ambiguous_date(tmp_path):
    # The same value means 11 March under month/day/year and 3 November under day/month/year.
    m = mapping.load(FIXTURES / "ar_invoices_messy.yaml")
    fmap = mapping.FieldMap("issued_at", "date", "issued", options={"formats": ["%d/%m/%Y", "%m/%d/%Y"]})
    values, bad = mapping.read_values(pd.Series(["03/11/2020"], dtype="string"), fmap)
    assert values[0] == _ts("2020-11-03") and not bad.any()
    assert m.tables["invoices"].fields[2].options["formats"] == ["ISO8601", "%m/%d/%Y"]


# --- the SAP OData page (sap_sales_orders_page1.json) -----------------------------------------------


@pytest.fixture(scope="module")
def sap():
    m = mapping.load(mapping.MAPPINGS_DIR / "sap_sales_orders.yaml")
    rows = mapping.read_rows(m, path=FIXTURES / "sap_sales_orders_page1.json")
    return m, rows


def test_sap_keys_are_padded_to_one_form(sap):
    m, rows = sap
    orders = mapping.apply(m, "orders", rows).frame
    assert orders["order_id"].tolist() == ["0000004711", "0000004712", "0000004713"]
    assert orders["customer_id"].tolist() == ["0017100001", "0017100002", "0017100001"]


def test_sap_dates_are_timezone_aware_utc(sap):
    m, rows = sap
    orders = mapping.apply(m, "orders", rows).frame.set_index("order_id")
    assert orders.loc["0000004711", "created_at"] == datetime(2025, 3, 4, tzinfo=UTC)
    holds = mapping.apply(m, "holds", rows).frame
    # /Date(1741222800000+0060)/: the milliseconds are UTC already; +0060 is how it was shown.
    placed = holds.loc[holds["order_id"] == "0000004713", "placed_at"].iloc[0]
    assert placed == datetime(2025, 3, 6, 1, 0, tzinfo=UTC)


def test_sap_decimals_and_credit_memo(sap):
    m, rows = sap
    orders = mapping.apply(m, "orders", rows).frame.set_index("order_id")
    assert orders["amount"].tolist() == [12500.0, 0.0, -35.5]
    out = _validated(m, "orders", rows)
    # A negative net value (a credit memo request) does not crash: validation flags it by rule.
    assert out.quarantine["rules"].tolist() == ["expect_column_values_to_be_between:amount"]
    assert len(out.good) == 2


def test_sap_blocks_become_holds_and_empty_codes_are_no_block(sap):
    m, rows = sap
    holds = mapping.apply(m, "holds", rows).frame
    got = sorted(zip(holds["order_id"], holds["reason"], holds["release_kind"].fillna("-"), strict=True))
    assert got == [
        ("0000004711", "credit", "-"),  # TotalCreditCheckStatus B: blocked for credit
        ("0000004712", "credit", "-"),  # DeliveryBlockReason 01; its credit status "" is no check
        ("0000004713", "credit", "credit_representative"),  # D: released by a credit representative
        ("0000004713", "incomplete_info", "-"),  # HeaderBillingBlockReason 02
    ]
    # null (not delivered) PO number stays missing; "" is not a value either.
    orders = mapping.apply(m, "orders", rows).frame.set_index("order_id")
    assert orders["po_number"].isna().tolist() == [True, False, True]


# --- mapping files with mistakes ---------------------------------------------------------------------


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


GOOD = """
source: s
read: {format: csv, path: x.csv}
tables:
  invoices:
    fields:
      invoice_id: {column: id, type: id}
      customer_id: {column: cust, type: id}
      issued_at: {column: issued, type: date}
      due_at: {column: due, type: date}
      amount: {column: amount, type: decimal}
"""


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        (("format: csv", "format: xlsx"), "read.format", "expected one of"),
        (("invoices:", "invoice:"), "tables.invoice", "not a canonical table"),
        (("      amount: {column: amount, type: decimal}\n", ""), "tables.invoices.fields", "'amount'"),
        (("type: decimal", "type: money"), "tables.invoices.fields.amount.type", "expected one of"),
        (
            ("type: decimal", "type: date"),
            "tables.invoices.fields.amount.type",
            "cannot fill a canonical float",
        ),
        (("{column: cust, type: id}", "{column: cust, value: C1}"), "fields.customer_id", "exactly one of"),
        (("{column: cust, type: id}", "{column: cust, type: id, pad: 10}"), "customer_id.pad", "unknown key"),
        (("issued, type: date}", "issued, type: date, formats: []}"), "issued_at.formats", "non-empty list"),
        (("issued, type: date}", "issued, type: date, formats: ['%Q']}"), "issued_at.formats", "'%Q'"),
        (
            ("issued, type: date}", "issued, type: date, timezone: Mars/Base}"),
            "issued_at.timezone",
            "time zone",
        ),
        (("path: x.csv}", "path: x.csv, seperator: ';'}"), "read.seperator", "unknown key"),
        (("path: x.csv}", "path: x.csv, encodings: [utf-9]}"), "read.encodings", "'utf-9'"),
        (("type: decimal}", "type: decimal, thousands: 1}"), "amount.thousands", "one character"),
        (
            ("type: decimal}", "type: decimal, thousands: ',', decimal: ','}"),
            "amount.thousands",
            "decimal mark",
        ),
        (
            ("tables:\n  invoices:\n", "tables:\n  invoices:\n    distinct: 'false'\n"),
            ".distinct",
            "true or false",
        ),
        (
            ("tables:\n  invoices:\n", "tables:\n  invoices:\n    max_row_drop: 5\n"),
            ".max_row_drop",
            "below 1",
        ),
        (
            ("tables:\n  invoices:\n", "tables:\n  invoices:\n    ignore_columns: x\n"),
            ".ignore_columns",
            "a list",
        ),
        (("source: s\n", "source: s\nsource: t\n"), "not valid YAML", "written twice"),
    ],
)
def test_a_wrong_mapping_names_the_file_the_key_and_the_problem(tmp_path, change, key, problem):
    path = _write(tmp_path, GOOD.replace(*change))
    with pytest.raises(mapping.MappingError) as err:
        mapping.load(path)
    assert str(path) in str(err.value) and key in str(err.value) and problem in str(err.value)


def test_the_good_mapping_loads(tmp_path):
    m = mapping.load(_write(tmp_path, GOOD))
    assert m.canonical_tables == ("invoices",)


def test_every_shipped_mapping_loads():
    shipped = sorted(mapping.MAPPINGS_DIR.glob("*.yaml"))
    assert len(shipped) >= 6
    for path in shipped:
        mapping.load(path)


def test_missing_required_source_column_fails_and_new_columns_are_drift(tmp_path):
    m = mapping.load(_write(tmp_path, GOOD))
    rows = pd.DataFrame({"id": ["1"], "cust": ["C"], "issued": ["2024-01-01"], "due": ["2024-02-01"]})
    with pytest.raises(validation.SchemaError, match=r"required source column\(s\) \['amount'\] missing"):
        mapping.apply(m, "invoices", rows.astype("string"))
    mapped = mapping.apply(m, "invoices", rows.assign(amount="1", extra="x").astype("string"))
    assert mapped.drift == {"missing": [], "unexpected": ["extra"]}


def test_dates_mixing_offsets_and_naive_values_read_each_right():
    # A late row written by another tool carries an offset; the rest are naive (declared zone applies).
    values = pd.Series(
        ["2025-06-28T12:00:00+02:00", "2025-06-28 10:00:00.000000", "28.06.2025"], dtype="string"
    )
    for zone, naive_utc in (("UTC", "2025-06-28T10:00Z"), ("Europe/Berlin", "2025-06-28T08:00Z")):
        fmap = mapping.FieldMap("at", "date", "at", options={"formats": ["ISO8601"], "timezone": zone})
        out, bad = mapping.read_values(values, fmap)
        assert out[0] == pd.Timestamp("2025-06-28T10:00Z") and out[1] == pd.Timestamp(naive_utc)
        assert bad.tolist() == [False, False, True]


DATACO_LINES = """
source: dataco_lines
read: {format: csv, encodings: [utf-8-sig, latin-1]}
date_formats: ["%m/%d/%Y %H:%M", "%m/%d/%y %H:%M"]
tables:
  orders:
    fields:
      order_id: {column: Order Id, type: id}
      customer_id: {column: Order Customer Id, type: id}
      created_at: {column: order date (DateOrders), type: date}
      amount: {column: Sales, type: decimal}
      ship_to_postcode: {column: Order Zipcode, type: id}
      ship_to_country: {column: Customer Country, type: text}
      segment: {column: Order Region, type: text}
      status: {column: Order Status, type: code, codes: {ON_HOLD: closed}, unknown: keep}
"""


def test_a_generic_csv_mapping_reads_the_dataco_case_file_right(tmp_path):
    # The DataCo reader has its own tests; the same kind of file through a plain mapping reads the same.
    path = tmp_path / "lines.yaml"
    path.write_text(DATACO_LINES)
    m = mapping.load(path)
    rows = mapping.read_rows(m, path=FIXTURES / "dataco_latin1_2digit_years.csv")
    mapped = mapping.apply(m, "orders", rows)
    orders = mapped.frame.set_index("order_id")
    assert mapped.rules == {}
    assert orders.loc["77202", "created_at"] == datetime(2018, 1, 31, 22, 56, tzinfo=UTC)  # M/D/YY
    assert orders.loc["75939", "created_at"] == datetime(2017, 12, 1, 7, 5, tzinfo=UTC)  # M/D/YYYY
    assert orders.loc["75939", "ship_to_country"] == "México"  # latin-1, decided for the whole file
    assert orders.loc["77202", "segment"] == "West of USA"
    assert orders.loc["2431", "ship_to_postcode"] == "725" and pd.isna(
        orders.loc["77202", "ship_to_postcode"]
    )


def test_a_parquet_drop_reads_like_a_csv_one(tmp_path):
    m = mapping.load(FIXTURES / "ar_invoices_messy.yaml")
    rows = mapping.read_rows(m, path=FIXTURES / "ar_invoices_messy.csv")
    rows.to_parquet(tmp_path / "ar.parquet")
    parquet = mapping.Mapping(m.path, m.source, m.datasets, {**m.read, "format": "parquet"}, m.tables)
    from_parquet = mapping.apply(
        parquet, "invoices", mapping.read_rows(parquet, path=tmp_path / "ar.parquet")
    )
    from_csv = mapping.apply(m, "invoices", rows)
    pd.testing.assert_frame_equal(from_parquet.frame, from_csv.frame)
    assert from_parquet.rules == from_csv.rules


@pytest.mark.parametrize(
    ("value", "thousands", "decimal", "expected"),
    [
        ("1,204.50", ",", ".", 1204.5),
        ("1.234,56", ".", ",", 1234.56),
        ("99,5", None, ",", 99.5),
        ("1.5", ".", ",", None),  # not 15: a point is neither a group of three nor the decimal mark
        ("1,2", ",", ".", None),
        ("inf", None, ".", None),
        ("1e400", None, ".", None),
        ("NaN", None, ".", None),
        ("0x1A", None, ".", None),
    ],
)
def test_numbers_read_only_as_declared(value, thousands, decimal, expected):
    options = {"decimal": decimal} | ({"thousands": thousands} if thousands else {})
    out, bad = mapping.read_values(
        pd.Series([value], dtype="string"), mapping.FieldMap("amount", "decimal", "a", options=options)
    )
    assert (bool(bad[0]), None if pd.isna(out[0]) else out[0]) == (expected is None, expected)


def test_whole_numbers_beyond_what_a_float_holds_are_refused():
    fmap = mapping.FieldMap("payment_terms_days", "int", "t")
    out, bad = mapping.read_values(pd.Series(["30", "99999999999999999999", "2.5"], dtype="string"), fmap)
    assert out[0] == 30 and bad.tolist() == [False, True, True]


def test_a_broken_csv_names_the_file(tmp_path):
    m = mapping.load(FIXTURES / "ar_invoices_messy.yaml")
    broken = tmp_path / "broken.csv"
    broken.write_text("a,b\n1,2\n1,2,3\n")
    with pytest.raises(SourceFormatError, match=r"broken\.csv: not a CSV file as ar_invoices_messy\.yaml"):
        mapping.read_rows(m, path=broken)


def test_windows_export_with_a_utf8_mark_reads_its_header_and_euro_sign(tmp_path):
    m = mapping.load(FIXTURES / "ar_invoices_messy.yaml")
    plain = mapping.Mapping(m.path, m.source, m.datasets, {"format": "csv"}, m.tables)  # default encodings
    path = tmp_path / "cp1252.csv"
    path.write_bytes(b"\xef\xbb\xbfinvoice_id,note\r\n1,Soci\xe9t\xe9 \x80 5\r\n")
    rows = mapping.read_rows(plain, path=path)
    assert list(rows.columns[:2]) == ["invoice_id", "note"] and rows.loc[0, "note"] == "Société € 5"


def test_the_check_command_lists_bad_rows_and_says_whether_a_run_would_fail(capsys, tmp_path):
    from include import ingest

    args = ["--mapping", str(FIXTURES / "ar_invoices_messy.yaml"), "--as-of", "2025-06-30"]
    assert ingest.main([*args, "--file", str(FIXTURES / "ar_invoices_messy.csv")]) == 1  # 3 of 8 > 5%
    out = capsys.readouterr().out
    assert "8 rows in, 4 loaded, 4 quarantined" in out and "A REAL RUN WOULD FAIL" in out
    assert "row 7: map_decimal:amount" in out and '"amount": "abc"' in out
    header_only = tmp_path / "h.csv"
    header_only.write_text("a\n")
    assert ingest.main([*args, "--file", str(header_only)]) == 2
    assert "ERROR SchemaError" in capsys.readouterr().out and "Traceback" not in out


def test_iso_dates_must_name_a_whole_day():
    fmap = mapping.FieldMap("issued_at", "date", "d", options={"formats": ["ISO8601"]})
    values = pd.Series(["2025", "2025-05", "2025-05-03", "2025-05-03T10:00:00Z"], dtype="string")
    out, bad = mapping.read_values(values, fmap)
    assert bad.tolist() == [True, True, False, False]
    assert out[2] == pd.Timestamp("2025-05-03", tz="UTC")
