"""HoldRiskModel: output contract, categorical encoding, feature checks, calibration, serialisation."""

from __future__ import annotations

import json
import subprocess
import sys

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from include.canonical import HOLD_REASONS
from training.errors import FeatureMismatchError
from training.model import Calibrator, FeatureTypeError, fit_calibrator
from training.synthetic import COUNTRIES, make_orders
from training.train import train


@pytest.fixture(scope="module")
def data():
    return make_orders(3000, seed=1)


@pytest.fixture(scope="module")
def model(data):
    return train(
        data.features, data.labels, data.created_at, categorical=data.categorical, num_boost_round=120
    ).model


@pytest.fixture(scope="module")
def baseline(model, data):
    return model.predict_frame(data.features)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    b = b.loc[a.index]
    np.testing.assert_array_equal(
        a.drop(columns="top_factors").to_numpy(), b.drop(columns="top_factors").to_numpy()
    )
    assert a["top_factors"].tolist() == b["top_factors"].tolist()


def test_output_has_any_every_reason_and_top_factors(baseline, data):
    assert list(baseline.columns) == ["p_any", *(f"p_{r}" for r in HOLD_REASONS), "top_factors"]
    assert baseline.index.equals(data.features.index)
    probabilities = baseline.drop(columns="top_factors")
    assert probabilities.dtypes.eq("float64").all()
    assert ((probabilities >= 0) & (probabilities <= 1)).all().all()
    assert probabilities["p_any"].std() > 0.01


def test_top_factors_are_the_largest_positive_contributions(baseline, data):
    lengths = []
    for text in baseline["top_factors"]:
        factors = json.loads(text)
        lengths.append(len(factors))
        assert len(factors) <= 5
        assert all(name in data.features.columns and value > 0 for name, value in factors)
        values = [value for _, value in factors]
        assert values == sorted(values, reverse=True)
    assert max(lengths) == 5


@pytest.mark.parametrize("explainer", ["path", "shap"])
def test_top_factors_match_the_boosters_own_contributions(model, data, explainer):
    from training.explain import PathExplainer

    rows = data.features.head(200)
    booster = model.targets["any"].booster
    if explainer == "shap":
        contrib = booster.predict(model.encode(rows), pred_contrib=True)[:, :-1]
    else:
        contrib = PathExplainer(booster).contributions(model.encode(rows))
    scored = model.predict(None, rows, params={"explainer": explainer})
    for i, text in enumerate(scored["top_factors"]):
        ranked = sorted(zip(model.feature_columns, contrib[i], strict=True), key=lambda p: -p[1])
        expected = [[name, round(value, 4)] for name, value in ranked[:5] if round(value, 4) > 0]
        # The very text json.dumps writes: a changed text would change what is stored and sent.
        assert text == json.dumps(expected)


def test_an_unknown_explainer_is_refused(model, data):
    with pytest.raises(ValueError, match="explainer must be 'path' or 'shap'"):
        model.predict(None, data.features.head(3), params={"explainer": "lime"})


def test_only_orders_at_or_above_explain_min_p_are_explained(model, data, baseline):
    cut = float(baseline["p_any"].median())
    out = model.predict(None, data.features, params={"explain_min_p": cut})
    above = baseline["p_any"] >= cut
    assert out.loc[above, "top_factors"].tolist() == baseline.loc[above, "top_factors"].tolist()
    assert (out.loc[~above, "top_factors"] == "[]").all()
    assert above.sum() and (~above).sum()


def test_top_factors_can_be_skipped(model, data):
    out = model.predict(None, data.features.head(4), params={"explain": False})
    assert out["top_factors"].tolist() == ["[]"] * 4
    full = model.predict_frame(data.features.head(4))
    pd.testing.assert_frame_equal(out.drop(columns="top_factors"), full.drop(columns="top_factors"))


def test_reason_with_too_few_positives_gets_a_constant_prior(model, baseline):
    described = model.describe()
    assert described["compliance"]["kind"] == "constant"
    assert described["credit"]["kind"] == "booster"
    assert baseline["p_compliance"].nunique() == 1
    assert 0 < baseline["p_compliance"].iloc[0] == described["compliance"]["prior"] < 0.01


def _reordered_categories(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["country"] = out["country"].astype(pd.CategoricalDtype(list(reversed(COUNTRIES)) + ["XX"]))
    out["segment"] = out["segment"].astype("category")
    return out


def _object_dtype(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({"country": object, "segment": object})


def _shuffled_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sample(frac=1.0, random_state=7)


def _subset_with_one_category(frame: pd.DataFrame) -> pd.DataFrame:
    # A batch where only one country occurs: its category code would be 0 if codes were trusted.
    return frame[frame["country"] == "US"].astype({"country": "category"})


@pytest.mark.parametrize(
    "transform", [_reordered_categories, _object_dtype, _shuffled_rows, _subset_with_one_category]
)
def test_categories_are_encoded_by_value_not_by_dtype_or_code(model, data, baseline, transform):
    _same(model.predict_frame(transform(data.features)), baseline)


def test_unseen_category_scores_like_a_missing_one(model, data):
    rows = data.features.head(50)
    unseen = rows.assign(country=pd.array(["ATLANTIS"] * 50, dtype="string"))
    missing = rows.assign(country=pd.array([pd.NA] * 50, dtype="string"))
    scored = model.predict_frame(unseen)
    assert scored.drop(columns="top_factors").notna().all().all()
    _same(scored, model.predict_frame(missing))


def test_columns_are_taken_by_name(model, data, baseline):
    shuffled = data.features[list(reversed(data.features.columns))].assign(unrelated=1.0)
    _same(model.predict_frame(shuffled), baseline)


def test_missing_feature_raises_naming_it(model, data):
    with pytest.raises(
        FeatureMismatchError, match=r"missing feature column\(s\) \['segment', 'utilisation'\]"
    ):
        model.predict(None, data.features.drop(columns=["utilisation", "segment"]))


def test_text_in_a_numeric_feature_raises_naming_it(model, data):
    frame = data.features.head(3).astype({"noise": object})
    frame.iloc[1, frame.columns.get_loc("noise")] = "n/a"
    with pytest.raises(FeatureTypeError, match="'noise' must be numeric"):
        model.predict_frame(frame)


def test_pickle_round_trip_scores_identically(model, data, baseline):
    restored = cloudpickle.loads(cloudpickle.dumps(model))
    _same(restored.predict_frame(data.features), baseline)
    assert restored.describe() == model.describe()


def test_state_of_an_unknown_format_is_refused(model):
    state = model.__getstate__()
    state["format"] = 99
    with pytest.raises(ValueError, match="format 99 is not supported"):
        type(model).__new__(type(model)).__setstate__(state)


def test_signature_types_categoricals_as_string_and_numerics_as_double(model):
    inputs = {spec.name: spec.type.name for spec in model.signature().inputs.inputs}
    assert inputs == {
        "utilisation": "double",
        "days_late_max": "double",
        "order_value_ratio": "double",
        "tenure_days": "double",
        "noise": "double",
        "country": "string",
        "segment": "string",
    }
    assert model.signature().outputs.input_names() == model.output_columns


def test_training_is_deterministic(data):
    small = make_orders(1500, seed=4)
    first = train(
        small.features, small.labels, small.created_at, categorical=small.categorical, num_boost_round=60
    )
    again = train(
        small.features, small.labels, small.created_at, categorical=small.categorical, num_boost_round=60
    )
    _same(first.model.predict_frame(small.features), again.model.predict_frame(small.features))


def _miscalibrated(n: int, seed: int):
    rng = np.random.default_rng(seed)
    true_p = rng.beta(1.0, 6.0, n)
    y = (rng.random(n) < true_p).astype(int)
    # Overconfident and shifted log-odds: what an overfitted booster hands the calibrator.
    raw = 2.5 * np.log(true_p / (1 - true_p)) + 1.0
    return raw, y, true_p


def _brier(p, y) -> float:
    return float(np.mean((p - y) ** 2))


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibration_improves_brier_on_miscalibrated_scores(method):
    raw_cal, y_cal, _ = _miscalibrated(6000, seed=1)
    raw_test, y_test, true_p = _miscalibrated(6000, seed=2)
    calibrator = fit_calibrator(raw_cal, y_cal, method=method)
    assert calibrator.kind == method
    uncalibrated = _brier(1 / (1 + np.exp(-raw_test)), y_test)
    calibrated = _brier(calibrator.apply(raw_test), y_test)
    best = _brier(true_p, y_test)
    # Calibration must recover most of the gap to the true probabilities' Brier score.
    assert calibrated - best < 0.25 * (uncalibrated - best)


def test_calibration_keeps_brier_of_well_calibrated_scores():
    rng = np.random.default_rng(5)
    true_p = rng.beta(1.0, 6.0, 12000)
    y = (rng.random(12000) < true_p).astype(int)
    raw = np.log(true_p / (1 - true_p))
    calibrator = fit_calibrator(raw[:6000], y[:6000])
    assert _brier(calibrator.apply(raw[6000:]), y[6000:]) <= _brier(true_p[6000:], y[6000:]) + 0.002


def test_isotonic_calibration_keeps_the_ranking():
    raw, y, _ = _miscalibrated(4000, seed=3)
    calibrated = fit_calibrator(raw, y, method="isotonic").apply(np.sort(raw))
    assert np.all(np.diff(calibrated) > 0)


def test_auto_calibration_picks_platt_for_few_positives():
    raw, y, _ = _miscalibrated(400, seed=4)
    assert fit_calibrator(raw, y).kind == "platt"
    assert (
        fit_calibrator(np.r_[raw, raw, raw, raw], np.r_[y, y, y, y], isotonic_min_class=50).kind == "isotonic"
    )


def test_single_class_calibration_falls_back_to_the_booster_probability():
    calibrator = fit_calibrator(np.array([-1.0, 0.0, 2.0]), np.zeros(3))
    assert calibrator == Calibrator("none")
    np.testing.assert_allclose(calibrator.apply(np.array([0.0])), [0.5])


def test_importing_the_package_stays_light():
    code = "import sys, training; print([m for m in ('mlflow', 'lightgbm', 'sklearn') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
