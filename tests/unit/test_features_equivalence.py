"""The fast paths of the feature build give exactly what the plain pandas/numpy formulations give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import features.timeline as timeline
from features.build import build_order_features
from features.timeline import Timeline, encode, stable_sort
from include.demo_erp.generate import WorldSpec, generate_world


def _reference_encode(values: pd.Series, index: pd.Index) -> np.ndarray:
    positions = index.get_indexer(values.astype(object).where(values.notna(), None))
    return np.where(values.isna().to_numpy(), -1, positions).astype(np.int64)


@pytest.mark.parametrize("n", [0, 1, 2, 5, 1000, 50_000])
@pytest.mark.parametrize("bound", [1, 3, 2**20, 2**38, 2**45, 2**49, 2**62])
@pytest.mark.parametrize("long_run", [False, True])
def test_stable_sort_is_a_stable_argsort(n, bound, long_run):
    # Small bounds make many ties; wide keys take the high-bits-first path, or with a long run of
    # equal keys (too long to number within an int64) the low-bits-first one.
    keys = np.random.default_rng(n + bound % 997).integers(0, bound, n, dtype=np.int64)
    if long_run:
        keys[: n // 2] = bound - 1

    order, ordered = stable_sort(keys)

    expected = np.argsort(keys, kind="stable")
    np.testing.assert_array_equal(order, expected)
    np.testing.assert_array_equal(ordered, keys[expected])
    assert order.dtype == ordered.dtype == np.int64


@pytest.mark.parametrize("slice_size", [1_000_000, 3])
def test_encode_of_arrow_strings_matches_an_index_lookup(monkeypatch, slice_size):
    # A tiny slice size runs the parallel lookup on a small column.
    monkeypatch.setattr(timeline, "_PARALLEL_SLICE", slice_size)
    rng = np.random.default_rng(3)
    raw = np.array([f"C{i}" for i in rng.integers(0, 40, 500)], dtype=object)
    raw[rng.random(500) < 0.1] = None
    raw[:3] = ["c1", " C1", "C1 "]  # case and spacing are part of the identifier
    values = pd.Series(raw, dtype="string")
    index = pd.Index(pd.array(["C7", None, "C1", "C3", "c1", "C39"], dtype="string"))
    assert isinstance(values.array, pd.arrays.ArrowStringArray)

    got = encode(values, index)

    np.testing.assert_array_equal(got, _reference_encode(values, index))
    assert got.dtype == np.int64
    assert (got >= 0).any() and (got == -1).any()


def test_encode_reads_object_and_string_columns_alike():
    index = pd.Index(pd.array(["A", "B"], dtype="string"))
    as_object = pd.Series(["B", "A", None, "Z"], dtype=object)

    np.testing.assert_array_equal(encode(as_object, index), [1, 0, -1, -1])
    np.testing.assert_array_equal(encode(as_object.astype("string"), index), [1, 0, -1, -1])


def test_timeline_windows_start_where_a_search_would(monkeypatch):
    rng = np.random.default_rng(5)
    entity = rng.integers(-1, 30, 2000)
    at = rng.integers(0, 50, 2000) * 10**9
    q_entity = np.sort(rng.integers(-1, 30, 300))
    q_at = rng.integers(0, 60, 300) * 10**9
    kept = Timeline(entity, at, 30).before(q_entity, q_at)
    monkeypatch.setattr(timeline, "_MAX_STARTS", 0)  # no per-entity starts: every start is searched
    searched = Timeline(entity, at, 30).before(q_entity, q_at)

    np.testing.assert_array_equal(kept.start, searched.start)
    np.testing.assert_array_equal(kept.stop, searched.stop)


def test_features_come_back_in_the_order_given():
    tables = generate_world(WorldSpec(n_customers=60, days=120, seed=3)).tables
    orders = tables["orders"]
    shuffled = orders.sample(frac=1.0, random_state=0)

    in_order = build_order_features(tables, orders)
    other_order = build_order_features(tables, shuffled)

    pd.testing.assert_frame_equal(other_order, in_order.loc[shuffled["order_id"].astype("string")])
    assert in_order.index.equals(pd.Index(orders["order_id"].astype("string"), name="order_id"))


@pytest.mark.parametrize("with_gaps", [False, True])
def test_orders_are_held_in_customer_and_time_order_as_lexsort_would(with_gaps):
    from features.build import _Orders
    from features.timeline import to_ns

    rng = np.random.default_rng(9)
    customer = np.array([f"C{i}" for i in rng.integers(0, 30, 2000)], dtype=object)
    created = pd.Series(pd.to_datetime(rng.integers(0, 400, 2000) * 10**9, utc=True))  # many ties
    if with_gaps:  # a missing customer or time takes the plain lexsort
        customer[::97] = None
        created[::89] = pd.NaT
    targets = pd.DataFrame({"order_id": [f"O{i}" for i in range(2000)], "customer_id": customer})
    targets["created_at"] = created

    orders = _Orders.from_frame(targets)

    codes, _ = pd.factorize(targets["customer_id"].astype("string"))
    np.testing.assert_array_equal(orders.input_order, np.lexsort((to_ns(targets["created_at"]), codes)))
