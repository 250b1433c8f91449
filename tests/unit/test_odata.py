"""OData v2 value shapes and SAP hold labels, on the page SAP sends (tests/fixtures/ingest)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from include.sap.labels import credit_status, hold_labels
from include.sources.odata import odata_offset_minutes, pad_keys, parse_odata_dates, parse_odata_decimals

PAGE = Path(__file__).parent.parent / "fixtures" / "ingest" / "sap_sales_orders_page1.json"


@pytest.fixture
def page() -> pd.DataFrame:
    body = json.loads(PAGE.read_text())
    rows = [{k: v for k, v in r.items() if k != "__metadata"} for r in body["d"]["results"]]
    return pd.DataFrame(rows, dtype=object)


def test_dates_parse_to_utc_and_the_offset_is_display_only(page):
    changed = parse_odata_dates(page["LastChangeDateTime"])
    assert changed.tolist() == [
        pd.Timestamp("2025-03-04T09:15:02.123Z"),
        pd.Timestamp("2025-03-05T01:00:00Z"),
        pd.Timestamp("2025-03-06T01:00:00Z"),
    ]
    assert str(changed.dt.tz) == "UTC"
    assert parse_odata_dates(page["SalesOrderDate"])[0] == pd.Timestamp("2025-03-04T00:00Z")
    assert odata_offset_minutes(page["LastChangeDateTime"][2]) == 60
    assert odata_offset_minutes(page["SalesOrderDate"][0]) is None


def test_a_date_of_another_shape_is_missing_not_a_guess():
    parsed = parse_odata_dates(pd.Series(["2025-03-04", "/Date(abc)/", None, "/Date(-86400000)/"]))
    assert parsed.isna().tolist() == [True, True, True, False]
    assert parsed[3] == pd.Timestamp("1969-12-31T00:00Z")
    with pytest.raises(ValueError, match="not an OData v2 date"):
        odata_offset_minutes("2025-03-04")


def test_keys_are_padded_like_sap_pads_them(page):
    assert pad_keys(page["SalesOrder"]).tolist() == ["0000004711", "0000004712", "0000004713"]
    assert pad_keys(page["SoldToParty"]).tolist() == ["0017100001", "0017100002", "0017100001"]
    mixed = pad_keys(pd.Series(["CCU001", " 42 ", "", None]))
    assert mixed[:2].tolist() == ["CCU001", "0000000042"]
    assert mixed[2:].isna().all()


def test_decimal_strings_are_exact_and_credit_memos_stay_negative(page):
    amounts = parse_odata_decimals(page["TotalNetAmount"])
    assert amounts.tolist() == [Decimal("12500.000"), Decimal("0.00000"), Decimal("-35.500")]
    assert parse_odata_decimals(pd.Series(["0.1"]))[0] * 3 == Decimal("0.3")
    assert parse_odata_decimals(pd.Series(["", None])).tolist() == [None, None]
    with pytest.raises(ValueError, match="'12,5'"):
        parse_odata_decimals(pd.Series(["12,5"]))


def test_credit_and_block_fields_become_hold_labels(page):
    labels = hold_labels(page, block_reasons={"01": "credit", "02": "payment"}).set_index("order_id")
    assert labels.loc["0000004711", "credit_status"] == "blocked"
    assert labels.loc["0000004711", "reasons"] == "credit"
    assert labels.loc["0000004712", "delivery_block"] == "01"
    assert labels.loc["0000004712", "credit_status"] == "not_performed"
    assert labels.loc["0000004713", "credit_status"] == "released"
    assert labels.loc["0000004713", "reasons"] == "credit,payment"
    assert labels["held"].tolist() == [True, True, True]


def test_empty_means_no_block_and_null_means_unknown():
    headers = pd.DataFrame(
        {
            "SalesOrder": ["1", "2", "3"],
            "TotalCreditCheckStatus": ["A", "", None],
            "DeliveryBlockReason": ["", "", None],
            "HeaderBillingBlockReason": ["", "", None],
        },
        dtype=object,
    )
    items = pd.DataFrame({"SalesOrder": ["1", "2"], "ItemBillingBlockReason": ["", "07"]}, dtype=object)
    lines = pd.DataFrame({"SalesOrder": ["1"], "DelivBlockReasonForSchedLine": ["  "]}, dtype=object)
    labels = hold_labels(headers, items, lines).set_index("order_id")
    assert labels.loc["0000000001", "held"] == False  # noqa: E712 - a nullable boolean, not a truth test
    assert labels.loc["0000000002", "item_billing_blocks"] == "07"
    assert labels.loc["0000000002", "reasons"] == "unspecified"
    assert labels.loc["0000000003", "credit_hold"] is pd.NA
    assert labels.loc["0000000003", "delivery_block"] is None
    assert labels.loc["0000000003", "schedule_line_blocks"] == ""


def test_unknown_credit_status_and_reason_fail_naming_the_value():
    with pytest.raises(ValueError, match="TotalCreditCheckStatus 'X'"):
        credit_status("X")
    with pytest.raises(ValueError, match="cash"):
        hold_labels(pd.DataFrame({"SalesOrder": ["1"]}), block_reasons={"01": "cash"})


def test_filter_literal_is_utc_with_seven_digits():
    from include.sap.hook import datetimeoffset_literal

    moment = datetime(2025, 3, 4, 10, 15, 2, 123000, tzinfo=UTC)
    assert datetimeoffset_literal(moment) == "datetimeoffset'2025-03-04T10:15:02.1230000Z'"
    with pytest.raises(ValueError, match="no time zone"):
        datetimeoffset_literal(datetime(2025, 3, 4))
