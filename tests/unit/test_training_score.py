"""Scoring checks that need no MLflow store: feature matching and dtype conforming."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.errors import FeatureMismatchError, ModelSignatureError, NoChampionError
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

    def __init__(self, model, *, with_signature: bool = True):
        signature = model.signature()
        inputs = signature.inputs if with_signature else None
        self.metadata = type(
            "Meta",
            (),
            {"get_input_schema": lambda _: inputs, "get_params_schema": lambda _: signature.params},
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


@pytest.mark.parametrize("wrap", [lambda m: m, _PyfuncStub], ids=["in_memory", "pyfunc"])
def test_shuffled_columns_score_identically(model, data, wrap):
    frame = data.features.head(200)
    shuffled = frame[list(np.random.default_rng(3).permutation(frame.columns))]
    assert list(shuffled.columns) != list(frame.columns)

    expected = score(wrap(model), frame)
    pd.testing.assert_frame_equal(score(wrap(model), shuffled), expected, check_exact=True)


@pytest.mark.parametrize("wrap", [lambda m: m, _PyfuncStub], ids=["in_memory", "pyfunc"])
def test_numbers_in_a_categorical_column_are_refused_not_scored_as_unseen(model, data, wrap):
    # A categorical re-encoded as numbers upstream would otherwise become "1.0", an unseen category.
    frame = data.features.head(20).assign(country=lambda f: f["country"].factorize()[0].astype(float))
    with pytest.raises(FeatureMismatchError) as info:
        score(wrap(model), frame)
    assert list(info.value.wrong_type) == ["country"]
    assert (
        "feature column(s) of the wrong type: country (model expects text categories, frame has float64)"
        in str(info.value)
    )
    assert "Rebuild the features with the feature code the model was trained with" in str(info.value)


def test_text_in_a_numeric_column_is_refused_before_scoring(model, data):
    frame = data.features.head(5).astype({"noise": object})
    frame.iloc[2, frame.columns.get_loc("noise")] = "n/a"
    with pytest.raises(
        FeatureMismatchError, match=r"noise \(model expects numbers, frame has object holding text\)"
    ):
        score(_PyfuncStub(model), frame)


def test_a_column_without_any_value_reads_as_missing_whatever_its_dtype(model, data):
    frame = data.features.head(20)
    empty = frame.assign(country=np.nan)
    expected = model.predict_frame(frame.assign(country=pd.array([pd.NA] * 20, dtype="string")))
    pd.testing.assert_frame_equal(score(model, empty), expected.rename_axis("order_id"))


def test_a_model_without_signature_is_refused_with_the_fix(model, data):
    with pytest.raises(ModelSignatureError, match="logged without an input signature") as info:
        score(_PyfuncStub(model, with_signature=False), data.features.head(3))
    assert "Move the `champion` alias to a version registered by holdcast's training" in str(info.value)
