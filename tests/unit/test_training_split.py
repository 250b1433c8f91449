"""The time-based split and the input checks of training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.errors import TrainingError
from training.synthetic import make_orders
from training.train import data_hash, time_split, train


def _created(minutes: list[int]) -> pd.Series:
    ids = pd.Index([f"SO{i:05d}" for i in range(len(minutes))], name="order_id")
    start = pd.Timestamp("2024-03-01", tz="UTC")
    return pd.Series(start + pd.to_timedelta(minutes, unit="min"), index=ids)


@settings(max_examples=60, deadline=None)
@given(
    distinct=st.lists(st.integers(0, 10_000), min_size=20, max_size=150, unique=True),
    repeats=st.lists(st.integers(1, 3), min_size=150, max_size=150),
    valid_fraction=st.floats(0.05, 0.5),
    calib_fraction=st.floats(0.05, 0.5),
)
def test_windows_partition_orders_in_time_order(distinct, repeats, valid_fraction, calib_fraction):
    # Up to three orders share a timestamp; the input is shuffled because the split must go by time.
    minutes = [m for m, k in zip(distinct, repeats, strict=False) for _ in range(k)]
    created = _created(minutes).sample(frac=1.0, random_state=1)
    split = time_split(created, valid_fraction=valid_fraction, calib_fraction=calib_fraction)

    fit, calib, valid = (created.loc[ids] for ids in (split.fit_ids, split.calib_ids, split.valid_ids))
    assert len(fit) + len(calib) + len(valid) == len(created)
    assert set(split.fit_ids).isdisjoint(split.calib_ids)
    assert set(split.train_ids).isdisjoint(split.valid_ids)
    assert len(fit) and len(calib) and len(valid)
    assert len(valid) >= valid_fraction * len(created)
    assert fit.max() < split.calib_start == calib.min()
    assert calib.max() < split.valid_start == valid.min()
    assert valid.max() == split.valid_end == created.max()
    assert split.train_start == created.min()


def test_validation_holds_the_latest_fraction_of_orders():
    created = _created(list(range(100)))
    split = time_split(created, valid_fraction=0.2, calib_fraction=0.25)
    assert list(split.valid_ids) == list(created.index[80:])
    assert list(split.calib_ids) == list(created.index[60:80])
    assert list(split.fit_ids) == list(created.index[:60])
    assert split.boundaries()["valid_start"] == created.iloc[80].isoformat()


def test_orders_sharing_a_timestamp_stay_in_one_window():
    # Positions 75..84 share one timestamp and the 20% cut falls at position 80: the whole block
    # goes to validation, which grows to 25 orders.
    created = _created(list(range(75)) + [75] * 10 + list(range(76, 91)))
    split = time_split(created, valid_fraction=0.2, calib_fraction=0.2)
    assert len(split.valid_ids) == 25
    assert set(created.index[75:85]) <= set(split.valid_ids)
    assert created.loc[split.train_ids].max() < created.loc[split.valid_ids].min()


@pytest.mark.parametrize(
    ("minutes", "kwargs", "match"),
    [
        ([5] * 50, {}, "share the creation time"),
        ([1], {}, "too few"),
        (list(range(20)), {"valid_fraction": 1.0}, "strictly between 0 and 1"),
        (list(range(20)), {"calib_fraction": 0.0}, "strictly between 0 and 1"),
    ],
)
def test_impossible_splits_are_refused(minutes, kwargs, match):
    with pytest.raises(TrainingError, match=match):
        time_split(_created(minutes), **kwargs)


def test_text_timestamps_are_refused():
    with pytest.raises(TrainingError, match="must hold timestamps"):
        time_split(_created(list(range(20))).astype(str))


def test_missing_timestamp_is_refused():
    created = _created(list(range(20)))
    created.iloc[3] = pd.NaT
    with pytest.raises(TrainingError, match="missing for 1 order"):
        time_split(created)


@pytest.fixture(scope="module")
def data():
    return make_orders(600, seed=3)


def test_labels_lacking_orders_are_refused(data):
    with pytest.raises(TrainingError, match="labels lack 1 order id"):
        train(data.features, data.labels.iloc[1:], data.created_at, categorical=data.categorical)


def test_label_column_missing_is_refused(data):
    labels = data.labels.drop(columns="label_payment")
    with pytest.raises(TrainingError, match="label_payment"):
        train(data.features, labels, data.created_at, categorical=data.categorical)


def test_label_values_other_than_0_1_are_refused(data):
    labels = data.labels.astype("float64")
    labels.iloc[0, 0] = np.nan
    with pytest.raises(TrainingError, match="label_any"):
        train(data.features, labels, data.created_at, categorical=data.categorical)


def test_unknown_categorical_is_refused(data):
    with pytest.raises(TrainingError, match="colour"):
        train(data.features, data.labels, data.created_at, categorical=["country", "colour"])


def test_data_hash_changes_with_any_value(data):
    before = data_hash(data.features, data.labels, data.created_at)
    assert before == data_hash(data.features.copy(), data.labels.copy(), data.created_at.copy())
    features = data.features.copy()
    features.iloc[10, 0] += 1e-9
    assert data_hash(features, data.labels, data.created_at) != before
