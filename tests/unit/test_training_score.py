"""Scoring checks that need no MLflow store: feature matching and dtype conforming."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.errors import FeatureMismatchError, NoChampionError
from training.score import check_features, conform_to_schema, score
from training.synthetic import make_orders
from training.train import train


@pytest.fixture(scope="module")
def data():
    return make_orders(1500, seed=11)


@pytest.fixture(scope="module")
def model(data):
    return train(
        data.features, data.labels, data.created_at, categorical=data.categorical, num_boost_round=60
    ).model


class _PyfuncStub:
    """Just enough of a loaded pyfunc for schema-driven code: metadata with the model's signature."""

    def __init__(self, model):
        signature = model.signature()
        self.metadata = type(
            "Meta",
            (),
            {"get_input_schema": lambda _: signature.inputs, "get_params_schema": lambda _: signature.params},
        )()
        self._model = model
        self.seen: pd.DataFrame | None = None

    def predict(self, frame, params=None):
        self.seen = frame
        return self._model.predict(None, frame, params=params).reset_index(drop=True)


def test_score_returns_probabilities_indexed_by_order_id(model, data):
    frame = data.features.head(20).rename_axis(None)
    out = score(model, frame)
    assert out.index.name == "order_id"
    assert out.index.equals(frame.index)
    assert "p_any" in out and "top_factors" in out


def test_missing_and_extra_columns_are_both_named(model, data):
    frame = data.features.drop(columns=["tenure_days"]).assign(new_flag=1.0)
    with pytest.raises(FeatureMismatchError) as info:
        score(model, frame)
    assert info.value.missing == ["tenure_days"]
    assert info.value.extra == ["new_flag"]
    assert "missing feature column(s) ['tenure_days']" in str(info.value)
    assert "unexpected feature column(s) ['new_flag']" in str(info.value)


def test_check_features_returns_the_models_column_order(model, data):
    reversed_frame = data.features[list(reversed(data.features.columns))]
    assert check_features(model, reversed_frame) == model.feature_columns


def test_pyfunc_input_is_cast_to_schema_dtypes_and_index_restored(model, data):
    frame = data.features.head(30).copy()
    frame["country"] = frame["country"].astype("category")
    frame["tenure_days"] = frame["tenure_days"].round().astype("Int64")
    frame.iloc[0, frame.columns.get_loc("tenure_days")] = pd.NA
    stub = _PyfuncStub(model)
    out = score(stub, frame, explain=False)
    assert stub.seen["country"].dtype == "string"
    assert stub.seen["tenure_days"].dtype == np.float64
    assert np.isnan(stub.seen["tenure_days"].iloc[0])
    assert out.index.equals(frame.index)
    assert (out["top_factors"] == "[]").all()
    expected = model.predict_frame(frame, explain=False)
    np.testing.assert_allclose(out["p_any"].to_numpy(), expected["p_any"].to_numpy())


def test_conform_refuses_text_in_a_numeric_column(model, data):
    frame = data.features.head(3).astype({"noise": object})
    frame.iloc[0, frame.columns.get_loc("noise")] = "oops"
    with pytest.raises(ValueError, match="'noise' must be numeric"):
        conform_to_schema(_PyfuncStub(model), frame)


def test_no_champion_message_tells_how_to_fix():
    message = str(NoChampionError("holdcast_hold_risk"))
    assert "no model version carries alias 'champion' for 'holdcast_hold_risk'" in message
    assert "Models -> holdcast_hold_risk -> version -> Add alias `champion`" in message
