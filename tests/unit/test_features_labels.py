"""Labels: which holds count for an order, and when its outcome is known."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.labels import LABEL_COLUMNS, LabelInputError, build_labels
from include.canonical import HOLD_REASONS, TABLES, UNSPECIFIED_REASON, coerce

CREATED = pd.Timestamp("2024-03-01", tz="UTC")
HORIZON = 14


def frame(table: str, rows: list[dict]) -> pd.DataFrame:
    columns = TABLES[table].column_names
    return coerce(table, pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns))


def order(order_id: str, created: pd.Timestamp = CREATED, status: str = "closed") -> dict:
    return {"order_id": order_id, "customer_id": "C", "created_at": created, "amount": 1.0, "status": status}


def hold(order_id: str, reason: str, placed: pd.Timestamp) -> dict:
    return {"order_id": order_id, "reason": reason, "placed_at": placed}


def test_a_hold_counts_within_the_horizon_boundaries_included():
    edge = CREATED + pd.Timedelta(days=HORIZON)
    orders = frame("orders", [order("at_start"), order("at_edge"), order("past_edge"), order("before")])
    holds = frame(
        "holds",
        [
            hold("at_start", "credit", CREATED),
            hold("at_edge", "inventory", edge),
            hold("past_edge", "credit", edge + pd.Timedelta(seconds=1)),
            hold("before", "credit", CREATED - pd.Timedelta(seconds=1)),
        ],
    )

    labels = build_labels(orders, holds, as_of="2024-06-01", horizon_days=HORIZON)

    assert labels["label_any"].to_dict() == {"at_start": 1, "at_edge": 1, "past_edge": 0, "before": 0}
    assert labels.loc["at_start", "label_credit"] == 1
    assert labels.loc["at_edge", "label_inventory"] == 1
    assert labels.loc["at_edge", "label_credit"] == 0


def test_unspecified_and_unknown_reasons_count_for_any_only():
    orders = frame("orders", [order("a"), order("b")])
    holds = frame("holds", [hold("a", UNSPECIFIED_REASON, CREATED), hold("b", " Credit ", CREATED)])

    labels = build_labels(orders, holds, as_of="2024-06-01", horizon_days=HORIZON)

    assert labels.loc["a", "label_any"] == 1
    assert labels.loc["a", [f"label_{r}" for r in HOLD_REASONS]].sum() == 0
    assert labels.loc["b", "label_credit"] == 1  # codes are compared trimmed and lower-cased


def test_complete_once_the_horizon_has_passed_and_trainable_once_decided():
    orders = frame(
        "orders",
        [
            order("done"),
            order("open_done", status="open"),
            order("late", created=CREATED + pd.Timedelta(seconds=1)),
            order("no_date", created=None),
        ],
    )
    as_of = CREATED + pd.Timedelta(days=HORIZON)

    labels = build_labels(orders, frame("holds", []), as_of=as_of.to_pydatetime(), horizon_days=HORIZON)

    assert labels["complete"].to_dict() == {"done": True, "open_done": True, "late": False, "no_date": False}
    assert labels["trainable"].to_dict() == {
        "done": True,
        "open_done": False,
        "late": False,
        "no_date": False,
    }


def test_holds_placed_after_as_of_are_not_known_yet():
    orders = frame("orders", [order("a")])
    holds = frame("holds", [hold("a", "payment", CREATED + pd.Timedelta(days=3))])

    early = build_labels(orders, holds, as_of=CREATED + pd.Timedelta(days=2), horizon_days=HORIZON)
    later = build_labels(orders, holds, as_of=CREATED + pd.Timedelta(days=3), horizon_days=HORIZON)

    assert early.loc["a", "label_payment"] == 0
    assert later.loc["a", "label_payment"] == 1


def test_output_shape_index_and_dtypes():
    orders = frame("orders", [order("z"), order("a")])
    holds = frame(
        "holds",
        [hold("a", "compliance", CREATED), hold("a", "compliance", CREATED), hold("x", "credit", CREATED)],
    )

    labels = build_labels(orders, holds, as_of="2024-06-01T00:00:00+02:00", horizon_days=HORIZON)

    assert list(labels.index) == ["z", "a"]
    assert labels.index.name == "order_id"
    assert list(labels.columns) == [*LABEL_COLUMNS, "complete", "trainable"]
    assert all(labels[c].dtype == "int64" for c in LABEL_COLUMNS)
    assert labels["complete"].dtype == bool
    assert labels.loc["a", "label_compliance"] == 1  # two holds of one reason are still one label


@pytest.mark.parametrize("horizon", [0, -3, 1.5, True])
def test_a_horizon_must_be_a_positive_whole_number(horizon):
    with pytest.raises(LabelInputError, match="horizon_days"):
        build_labels(
            frame("orders", [order("a")]), frame("holds", []), as_of="2024-06-01", horizon_days=horizon
        )


def test_repeated_order_ids_and_missing_columns_raise():
    with pytest.raises(LabelInputError, match="repeated"):
        build_labels(frame("orders", [order("a"), order("a")]), frame("holds", []), "2024-06-01", HORIZON)
    with pytest.raises(LabelInputError, match="'holds' lacks"):
        build_labels(frame("orders", [order("a")]), pd.DataFrame({"order_id": []}), "2024-06-01", HORIZON)


HOURS = st.integers(0, 24 * 60)
REASONS = st.sampled_from([*HOLD_REASONS, UNSPECIFIED_REASON, "not_a_code"])


@settings(max_examples=150, deadline=None)
@given(
    created=st.lists(HOURS, min_size=1, max_size=6),
    placed=st.lists(st.tuples(st.integers(0, 5), st.integers(-48, 24 * 30), REASONS), max_size=12),
    horizon=st.integers(1, 30),
    as_of=HOURS,
)
def test_labels_are_exactly_the_holds_placed_within_the_window(created, placed, horizon, as_of):
    """Against the definition: created_at <= placed_at <= created_at + horizon and placed_at <= as_of."""
    start = pd.Timestamp("2024-01-01", tz="UTC")
    hour = pd.Timedelta(hours=1)
    orders = frame("orders", [order(f"O{i}", start + h * hour) for i, h in enumerate(created)])
    holds_rows = [
        hold(f"O{i % len(created)}", reason, start + (created[i % len(created)] + offset) * hour)
        for i, offset, reason in placed
    ]
    cutoff = start + as_of * hour

    labels = build_labels(orders, frame("holds", holds_rows), as_of=cutoff, horizon_days=horizon)

    window = pd.Timedelta(days=horizon)
    for i, h in enumerate(created):
        at = start + h * hour
        known = [
            r["reason"]
            for r in holds_rows
            if r["order_id"] == f"O{i}" and at <= r["placed_at"] <= at + window and r["placed_at"] <= cutoff
        ]
        row = labels.loc[f"O{i}"]
        assert row["label_any"] == int(bool(known))
        for reason in HOLD_REASONS:
            assert row[f"label_{reason}"] == int(reason in known)
        assert row["complete"] == (at + window <= cutoff)
