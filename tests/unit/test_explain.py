"""Path attributions (training.explain): exact sums, TreeSHAP's starting point, and agreement with it."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from training import explain
from training.explain import PathExplainer
from training.synthetic import make_orders
from training.train import train


@pytest.fixture(scope="module")
def trained():
    data = make_orders(4000, seed=3)
    model = train(
        data.features, data.labels, data.created_at, categorical=data.categorical, num_boost_round=150
    ).model
    return model, model.encode(data.features)


def test_contributions_add_up_to_the_raw_score_from_treeshaps_expected_value(trained):
    model, matrix = trained
    booster = model.targets["any"].booster
    explainer = PathExplainer(booster)
    contrib = explainer.contributions(matrix)
    raw = booster.predict(matrix, raw_score=True)
    np.testing.assert_allclose(contrib.sum(axis=1) + explainer.expected_value, raw, atol=1e-9)
    shap = booster.predict(matrix, pred_contrib=True)
    np.testing.assert_allclose(shap[:, -1], explainer.expected_value, atol=1e-9)
    # The categorical features (split with LightGBM's category splits) are credited too.
    categorical = [model.feature_columns.index(c) for c in model.categorical]
    assert np.abs(contrib[:, categorical]).sum() > 0


def test_a_stump_credits_its_one_feature_with_the_step_from_the_mean():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 3))
    y = (x[:, 1] > 0.3).astype(float)
    params = {"objective": "regression", "num_leaves": 2, "learning_rate": 1.0, "verbose": -1}
    booster = lgb.train({**params, "min_data_in_leaf": 1}, lgb.Dataset(x, y), num_boost_round=1)
    contrib = PathExplainer(booster).contributions(x)
    assert (contrib[:, [0, 2]] == 0).all()
    leaf = booster.predict(x, raw_score=True)
    assert len(np.unique(leaf)) == 2
    # A stump's expected value is its leaves' values weighted by the training rows in each: here the
    # training rows are x itself, so it is the mean of their scores.
    np.testing.assert_allclose(contrib[:, 1], leaf - leaf.mean(), atol=1e-9)
    high = leaf == leaf.max()
    assert contrib[high, 1].min() > 0 > contrib[~high, 1].max()


def test_grouping_trees_and_chunking_rows_change_nothing(trained, monkeypatch):
    model, matrix = trained
    booster = model.targets["any"].booster
    grouped = PathExplainer(booster)
    assert any(stop - first > 1 for first, stop, _ in grouped.groups)
    expected = grouped.contributions(matrix)
    monkeypatch.setattr(explain, "GROUP_ROWS", 1)
    monkeypatch.setattr(explain, "CHUNK_ROWS", 333)
    single = PathExplainer(booster)
    assert all(stop - first == 1 for first, stop, _ in single.groups)
    np.testing.assert_allclose(single.contributions(matrix), expected, atol=1e-9)


def test_path_attributions_name_mostly_the_same_top_features_as_treeshap(trained):
    """Measured on the synthetic set: the top feature agrees for 9 orders in 10 or more.

    This is the price of the fast explainer, kept visible: if a change to the model or the explainer
    made them disagree more, this fails.
    """
    model, matrix = trained
    booster = model.targets["any"].booster
    risky = matrix[booster.predict(matrix) >= np.quantile(booster.predict(matrix), 0.8)]
    path = PathExplainer(booster).contributions(risky)
    shap = booster.predict(risky, pred_contrib=True)[:, :-1]
    top_path, top_shap = path.argmax(axis=1), shap.argmax(axis=1)
    assert (top_path == top_shap).mean() >= 0.9
    top3_shap = np.argsort(-shap, axis=1)[:, :3]
    assert np.mean([p in s for p, s in zip(top_path, top3_shap, strict=True)]) >= 0.98
