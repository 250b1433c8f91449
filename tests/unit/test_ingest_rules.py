"""Ingestion rules beyond a single row: nothing lost, references, freshness, row count, drift."""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine

from include import config, ingest, validation, warehouse
from include.errors import MissingSourceError

AS_OF = datetime(2025, 6, 30, tzinfo=UTC)

MAPPING = """
source: ledger
datasets: [t]
read: {format: csv, path: ledger/*.csv, null_markers: ["", "NULL"]}
date_formats: [ISO8601, "%m/%d/%Y"]
tables:
  customers:
    distinct: true
    fields:
      customer_id: {column: cust, type: id, pad_numeric: 6}
      name: {column: cust_name, type: text}
  invoices:
    fields:
      invoice_id: {column: inv, type: id, pad_numeric: 8}
      customer_id: {column: cust, type: id, pad_numeric: 6}
      order_id: {column: tracer, type: text}
      issued_at: {column: issued, type: date}
      due_at: {column: due, type: date}
      amount: {column: amount, type: decimal, thousands: ","}
      currency: {column: cur, type: code, codes: {usd: USD, USD: USD, eur: EUR, EUR: EUR}}
    freshness_days: FRESH
    max_row_drop: 0.5
"""
COLUMNS = ["inv", "cust", "cust_name", "tracer", "issued", "due", "amount", "cur"]


@pytest.fixture
def ledger(holdcast_home, monkeypatch, tmp_path):
    monkeypatch.setenv("HOLDCAST_QUARANTINE_TOLERANCE", "1.0")
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    monkeypatch.setenv("HOLDCAST_MAPPINGS_DIR", str(mappings))
    drop = config.HOLDCAST_DROP_DIR.get() / "ledger"
    drop.mkdir(parents=True)

    def write(rows: list[dict], fresh_days: int = 3650) -> None:
        (mappings / "ledger.yaml").write_text(MAPPING.replace("FRESH", str(fresh_days)))
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
        (drop / "export.csv").write_text(out.getvalue())

    return write


def _row(i: int, **over) -> dict:
    base = {
        "inv": str(1000 + i),
        "cust": str(1 + i % 3),
        "cust_name": f"Customer {1 + i % 3}",
        "tracer": f"T{i}",
        "issued": "2025-06-01",
        "due": "2025-07-01",
        "amount": "10.00",
        "cur": "USD",
    }
    return base | over


def _quarantine() -> pd.DataFrame:
    with create_engine(config.HOLDCAST_WAREHOUSE_URL.get()).connect() as conn:
        return pd.read_sql("SELECT * FROM quarantine", conn)


FAULTS = {
    "ok": {},
    "bad_amount": {"amount": "12,3x"},
    "bad_date": {"issued": "31.05.2025"},
    "no_id": {"inv": ""},
    "null_marker_id": {"inv": "NULL"},
    "due_first": {"due": "2025-05-01"},
    "later": {"issued": "2025-07-02", "due": "2025-08-01"},
    "bad_code": {"cur": "XXX"},
    "float_id": {"inv": "1000.0"},
    "padded": {"inv": "00001001"},
    "orphan": {"cust": "", "cust_name": ""},
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(sorted(FAULTS)), min_size=1, max_size=30))
def test_every_input_row_lands_in_exactly_one_place(ledger, kinds):
    """Every row ends in canonical, in quarantine or (dated after the interval) waiting: once, never twice."""
    kinds = ["ok", *kinds]  # a batch with no good row at all fails as a whole (tested elsewhere)
    rows = [_row(i, **FAULTS[kind]) for i, kind in enumerate(kinds)]
    ledger(rows)
    summary = ingest.ingest_source("ledger", AS_OF, dataset="t")
    quarantine = _quarantine()
    quarantine = quarantine[quarantine["table_name"] == "invoices"]
    good = warehouse.read_canonical(AS_OF)["invoices"]

    loaded = {int(t[1:]) for t in good["order_id"]}
    held = set(quarantine["row_number"])
    later = {i for i, kind in enumerate(kinds) if kind == "later"}
    assert quarantine["row_number"].is_unique and good["order_id"].is_unique
    assert loaded.isdisjoint(held) and loaded.isdisjoint(later) and held.isdisjoint(later)
    assert loaded | held | later == set(range(len(rows)))
    assert summary["tables"]["invoices"]["after_interval"] == len(later)
    # Each quarantined row keeps its raw values, including the tracer that names its input row.
    for _, q in quarantine.iterrows():
        assert json.loads(q["raw"])["tracer"] == f"T{q['row_number']}"


def test_rules_named_per_fault(ledger):
    kinds = ["ok", "bad_amount", "bad_date", "no_id", "due_first", "bad_code", "float_id", "orphan"]
    ledger([_row(i, **FAULTS[k]) for i, k in enumerate(kinds)])
    ingest.ingest_source("ledger", AS_OF, dataset="t")
    q = _quarantine().query("table_name == 'invoices'")
    rules = dict(zip(q["row_number"], q["rules"], strict=True))
    assert rules == {
        1: "map_decimal:amount",
        2: "map_date:issued_at",
        3: "expect_column_values_to_not_be_null:invoice_id",
        4: "expect_column_pair_values_a_to_be_greater_than_b:due_at>=issued_at",
        5: "map_code:currency",
        # "1000.0" is invoice 1000 again: the same invoice twice with a different tracer is a conflict.
        6: "duplicate_key:invoice_id",
        7: "expect_column_values_to_not_be_null:customer_id",
    }


def test_an_invoice_of_an_unknown_customer_is_quarantined(ledger, tmp_path):
    ledger([_row(0), _row(1)])
    # The customers block reads only named customers: drop customer 2's name so it is not delivered.
    path = config.HOLDCAST_DROP_DIR.get() / "ledger" / "export.csv"
    text = path.read_text().replace("Customer 2", "")
    path.write_text(text)
    ingest.ingest_source("ledger", AS_OF, dataset="t")
    q = _quarantine()
    assert set(q["rules"]) == {
        "expect_column_values_to_not_be_null:name",
        "ref_integrity:customer_id->customers",
    }
    assert q.loc[q["rules"].str.startswith("ref_"), "row_number"].tolist() == [1]


def test_a_stale_extract_fails_the_batch_with_where_the_report_is(ledger):
    ledger([_row(0, issued="2025-01-02", due="2025-02-01")], fresh_days=30)
    with pytest.raises(validation.ValidationFailed, match=r"freshness.*full report: .*ledger\.json"):
        ingest.ingest_source("ledger", AS_OF, dataset="t")


def test_row_count_falling_by_more_than_allowed_fails(ledger):
    ledger([_row(i) for i in range(10)])
    ingest.ingest_source("ledger", AS_OF - timedelta(days=1), dataset="t")
    ledger([_row(i) for i in range(4)])
    with pytest.raises(validation.ValidationFailed, match=r"row_count_vs_previous.*observed 4"):
        ingest.ingest_source("ledger", AS_OF, dataset="t")
    ledger([_row(i) for i in range(6)])
    ingest.ingest_source("ledger", AS_OF, dataset="t")


def test_source_drift_is_in_the_log_and_the_report(ledger, caplog):
    ledger([_row(0) | {}])
    path = config.HOLDCAST_DROP_DIR.get() / "ledger" / "export.csv"
    frame = pd.read_csv(path, dtype="string").drop(columns=["cur"]).assign(region="EU")
    frame.to_csv(path, index=False)
    with caplog.at_level(logging.WARNING, logger="include.validation"):
        summary = ingest.ingest_source("ledger", AS_OF, dataset="t")
    report = json.loads(open(summary["report"]).read())
    invoices = next(r for r in report if r["table"] == "invoices")
    assert invoices["drift"]["source"] == {"missing": ["cur"], "unexpected": ["region"], "retyped": []}
    assert "Schema drift in ledger/invoices" in caplog.text and "region" in caplog.text


def test_a_missing_required_source_column_fails_naming_it(ledger):
    ledger([_row(0)])
    path = config.HOLDCAST_DROP_DIR.get() / "ledger" / "export.csv"
    pd.read_csv(path, dtype="string").drop(columns=["amount"]).to_csv(path, index=False)
    with pytest.raises(validation.SchemaError, match=r"ledger\.yaml.*'invoices'.*\['amount'\] missing"):
        ingest.ingest_source("ledger", AS_OF, dataset="t")


def test_each_run_keeps_its_validation_result_and_data_docs(ledger):
    ledger([_row(0), _row(1, amount="abc")])
    for day in (AS_OF - timedelta(days=1), AS_OF, AS_OF):  # the last one a retry of the same interval
        summary = ingest.ingest_source("ledger", day, dataset="t")
    report = json.loads(open(summary["report"]).read())
    invoices = next(r for r in report if r["table"] == "invoices")
    result = json.loads(open(invoices["gx"]["validation_result"]).read())
    assert result["meta"]["run_id"]["run_name"] == "2025-06-30"
    assert result["suite_name"] == "ledger__invoices"
    site = config.HOLDCAST_GX_DIR.get() / "gx" / "uncommitted" / "data_docs" / "local_site"
    assert invoices["gx"]["data_docs"] == str(site / "index.html")
    pages = sorted(p.relative_to(site).parts[2] for p in site.glob("validations/ledger__invoices/*/*/*.html"))
    assert pages == ["2025-06-29", "2025-06-30"]  # one page per interval; the retry replaced its own
    # The suites live in the project as JSON a data engineer can read.
    suite = json.loads(
        (config.HOLDCAST_GX_DIR.get() / "gx" / "expectations" / "ledger__invoices.json").read_text()
    )
    assert {e["type"] for e in suite["expectations"]} >= {"expect_column_values_to_not_be_null"}


def test_a_retyped_source_column_is_reported_against_the_previous_run(ledger, caplog):
    ledger([_row(0), _row(1)])
    ingest.ingest_source("ledger", AS_OF - timedelta(days=1), dataset="t")
    ledger([_row(0, cust_name="4711"), _row(1, cust_name="4712")])  # names became numbers
    with caplog.at_level(logging.WARNING, logger="include.validation"):
        summary = ingest.ingest_source("ledger", AS_OF, dataset="t")
    report = {r["table"]: r for r in json.loads(open(summary["report"]).read())}
    assert report["customers"]["drift"]["source"]["retyped"] == ["cust_name: text -> number"]
    assert report["invoices"]["source_schema"]["amount"] == "number"
    assert "cust_name: text -> number" in caplog.text


def test_a_file_delivered_twice_is_read_once_and_every_drop_file_is_read(ledger):
    ledger([_row(0), _row(1)])
    drop = config.HOLDCAST_DROP_DIR.get() / "ledger"
    (drop / "export_resent.csv").write_bytes((drop / "export.csv").read_bytes())
    extra = pd.read_csv(drop / "export.csv", dtype="string").head(0)
    extra = pd.concat([extra, pd.DataFrame([_row(2)])]).astype("string")
    extra.to_csv(drop / "export_more.csv", index=False)
    summary = ingest.ingest_source("ledger", AS_OF, dataset="t")
    assert summary["tables"]["invoices"] == {"good": 3, "quarantined": 0, "after_interval": 0}
    good = warehouse.read_canonical(AS_OF)["invoices"]
    assert sorted(good["order_id"]) == ["T0", "T1", "T2"]


def test_a_dataset_of_ones_own_runs_and_one_without_mappings_is_named(ledger, monkeypatch):
    ledger([_row(0)])
    monkeypatch.setenv("HOLDCAST_DATASET", "t")
    assert ingest.source_names() == ["ledger"]
    monkeypatch.setenv("HOLDCAST_DATASET", "nothing_here")
    with pytest.raises(MissingSourceError, match=r"no mapping in .* names dataset 'nothing_here'"):
        ingest.source_names()


def test_a_derived_table_keeps_the_first_clean_row_and_flags_disagreement(ledger, monkeypatch):
    monkeypatch.setenv("HOLDCAST_QUARANTINE_TOLERANCE", "1.0")
    rows = [
        _row(0, cust="7", cust_name=""),  # customer 7's first row has no name: broken
        _row(1, cust="7", cust_name="Seven Ltd"),  # a clean row of customer 7 follows
        _row(2, cust="7", cust_name="Seven Ltd"),  # the same again: one record
        _row(3, cust="8", cust_name="Eight"),
        _row(4, cust="8", cust_name="Eight GmbH"),  # customer 8 under another name: a conflict
    ]
    ledger(rows)
    ingest.ingest_source("ledger", AS_OF, dataset="t")
    customers = warehouse.read_canonical(AS_OF)["customers"].set_index("customer_id")
    assert customers["name"].to_dict() == {"000007": "Seven Ltd", "000008": "Eight"}
    q = _quarantine().query("table_name == 'customers'")
    assert dict(zip(q["row_number"], q["rules"], strict=True)) == {
        0: "expect_column_values_to_not_be_null:name",
        4: "duplicate_key:customer_id",
    }
    # Every invoice of both customers loads: none is an orphan of a customer dropped by mistake.
    assert len(warehouse.read_canonical(AS_OF)["invoices"]) == 5


def test_a_quarantined_row_names_its_file_and_its_row_there(ledger):
    ledger([_row(0), _row(1)])
    drop = config.HOLDCAST_DROP_DIR.get() / "ledger"
    second = pd.DataFrame([_row(2), _row(3, amount="abc")]).astype("string")
    second.to_csv(drop / "export_b.csv", index=False)
    ingest.ingest_source("ledger", AS_OF, dataset="t")
    q = _quarantine().query("table_name == 'invoices'")
    assert q["row_number"].tolist() == [1]  # the second data row of export_b.csv
    raw = json.loads(q["raw"].iloc[0])
    assert raw["__file"] == "export_b.csv" and raw["tracer"] == "T3"
