"""Ingestion of file extracts: landing, quarantine in the warehouse, clear errors, idempotent re-runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import create_engine

from include import config, ingest, validation, warehouse
from include.errors import MissingSourceError

AS_OF = datetime(2025, 6, 30, tzinfo=UTC)

BUREAU_CSV = (
    "customer_id,reported_at,bureau,score,rating,days_beyond_terms,derogatory_flags\n"
    "C1,2025-05-01T00:00:00Z,acme,610,B,3,0\n"
    "C2,2025-05-01T00:00:00Z,acme,not-a-score,C,9,1\n"
    "C3,2025-05-01T00:00:00Z,acme,700,A,0,0\n"
    "C3,2025-05-01T00:00:00Z,acme,700,A,0,0\n"
    "C4,2025-07-02T00:00:00Z,acme,500,D,40,2\n"
)


@pytest.fixture
def drops(holdcast_home, monkeypatch):
    # Half of this tiny batch is bad on purpose: a tolerance that lets it through.
    monkeypatch.setenv("HOLDCAST_QUARANTINE_TOLERANCE", "0.6")
    folder = config.HOLDCAST_DROP_DIR.get() / "bureau"
    folder.mkdir(parents=True)
    (folder / "bureau_reports.csv").write_text(BUREAU_CSV)
    return folder


def _quarantine():
    with create_engine(config.HOLDCAST_WAREHOUSE_URL.get()).connect() as conn:
        return pd.read_sql("SELECT * FROM quarantine ORDER BY row_number", conn)


def test_bad_rows_are_quarantined_and_good_rows_land(drops):
    summary = ingest.ingest_source("bureau", AS_OF, dataset="demo")
    # The row dated after the interval waits for its own; of the other four, two are bad.
    assert summary["tables"]["bureau_reports"] == {"good": 2, "quarantined": 2, "after_interval": 1}
    quarantine = _quarantine()
    assert quarantine["rules"].tolist() == [
        "map_decimal:score",
        "duplicate_row:customer_id,reported_at,bureau",
    ]
    assert set(quarantine["source"]) == {"bureau"} and set(quarantine["batch"]) == {"2025-06-30"}
    good = warehouse.read_canonical(AS_OF)["bureau_reports"]
    assert sorted(good["customer_id"]) == ["C1", "C3"]
    assert warehouse.lake_path("raw", "bureau", "bureau_reports", "as_of=2025-06-30", "part.parquet").exists()


def test_same_interval_twice_gives_the_same_state(drops):
    ingest.ingest_source("bureau", AS_OF, dataset="demo")
    first = (_quarantine(), warehouse.read_canonical(AS_OF)["bureau_reports"])
    ingest.ingest_source("bureau", AS_OF, dataset="demo")
    pd.testing.assert_frame_equal(first[0], _quarantine())
    pd.testing.assert_frame_equal(first[1], warehouse.read_canonical(AS_OF)["bureau_reports"])


def test_missing_file_names_the_source_and_path(holdcast_home):
    with pytest.raises(MissingSourceError, match=r"source 'crm': no file matches 'crm/interactions\*\.csv'"):
        ingest.ingest_source("crm", AS_OF, dataset="demo")


def test_empty_file_is_an_error(drops):
    (drops / "bureau_reports.csv").write_text("")
    with pytest.raises(MissingSourceError, match="empty file"):
        ingest.ingest_source("bureau", AS_OF, dataset="demo")


def test_batch_beyond_tolerance_fails_and_keeps_its_report(drops, monkeypatch):
    monkeypatch.setenv("HOLDCAST_QUARANTINE_TOLERANCE", "0.2")
    # The exact duplicate is quarantined but harmless: only the unreadable score counts.
    with pytest.raises(validation.ValidationFailed, match=r"1 of 4 rows quarantined.*full report"):
        ingest.ingest_source("bureau", AS_OF, dataset="demo")
    report = warehouse.lake_path("reports", "validation", "as_of=2025-06-30", "bureau.json")
    assert '"rows_quarantined": 2' in report.read_text()
    # The bad rows of the failed batch are in the quarantine table, not only counted in the report.
    assert len(_quarantine()) == 2


def test_header_only_file_is_a_dead_feed(drops):
    (drops / "bureau_reports.csv").write_text(BUREAU_CSV.splitlines()[0] + "\n")
    with pytest.raises(validation.ValidationFailed, match="row_count"):
        ingest.ingest_source("bureau", AS_OF, dataset="demo")


def test_quarantine_columns_are_typed_even_when_the_first_batch_is_clean(drops):
    (drops / "bureau_reports.csv").write_text("\n".join(BUREAU_CSV.splitlines()[:2]) + "\n")
    ingest.ingest_source("bureau", AS_OF, dataset="demo")
    from sqlalchemy import inspect

    columns = {
        c["name"]: str(c["type"])
        for c in inspect(create_engine(config.HOLDCAST_WAREHOUSE_URL.get())).get_columns("quarantine")
    }
    assert columns["rules"] == "TEXT" and columns["row_number"] == "INTEGER"


def test_publish_without_orders_fails(holdcast_home):
    with pytest.raises(MissingSourceError, match="no orders were ingested for 2025-06-30"):
        ingest.publish(AS_OF)


def _write_orders_partition(as_of):
    """Write a one-order canonical partition for ``as_of``, as an ingest run would."""
    from include import canonical

    orders = canonical.coerce(
        "orders",
        pd.DataFrame(
            {c: [None] for c in canonical.TABLES["orders"].column_names}
            | {"order_id": ["O1"], "customer_id": ["C1"], "created_at": [as_of], "amount": [1.0]}
            | {"status": ["open"]}
        ),
    )
    warehouse.write_parquet(orders, warehouse.canonical_partition("orders", as_of, "erp"))


def test_older_interval_does_not_replace_the_published_snapshot(holdcast_home):
    newer, older = AS_OF, datetime(2025, 6, 1, tzinfo=UTC)
    _write_orders_partition(newer)
    _write_orders_partition(older)
    ingest.publish(newer)
    ingest.publish(older)
    assert warehouse.published_as_of() == newer


def test_features_for_an_interval_never_ingested_fail(holdcast_home):
    from include import pipeline

    with pytest.raises(MissingSourceError, match="run holdcast_ingest for that interval first"):
        pipeline.build_features(AS_OF)
