"""Edge cases of path attributions (training.explain) against LightGBM's own raw score and TreeSHAP."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from training import explain
from training.explain import PathExplainer


def _assert_matches_lightgbm(booster: lgb.Booster, matrix: np.ndarray) -> None:
    explainer = PathExplainer(booster)
    contrib = explainer.contributions(matrix)
    assert contrib.shape == (len(matrix), booster.num_feature())
    raw = booster.predict(matrix, raw_score=True)
    np.testing.assert_allclose(contrib.sum(axis=1) + explainer.expected_value, raw, atol=1e-9)
    shap = booster.predict(matrix, pred_contrib=True)
    np.testing.assert_allclose(shap[:, -1], explainer.expected_value, atol=1e-9)


def test_a_booster_whose_splits_never_move_the_score_is_explained_by_zeros():
    # LightGBM does grow such trees (seen with sample weights: two leaves of the same value); setting
    # the leaves gives one directly.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = x[:, 0] + rng.normal(size=200)
    params = {"objective": "regression", "num_leaves": 2, "verbose": -1, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=2)
    for tree in range(2):
        for leaf in range(2):
            booster.set_leaf_output(tree, leaf, 0.25)
    assert all(t["num_leaves"] == 2 for t in booster.dump_model()["tree_info"])
    explainer = PathExplainer(booster)
    assert (explainer.contributions(x) == 0).all()
    _assert_matches_lightgbm(booster, x)


@pytest.mark.parametrize(("group_rows", "chunk_rows"), [(1, 1), (2, 3), (64, 7), (256, 65_536)])
def test_a_one_leaf_tree_grouped_with_others_on_float32_missing_input(monkeypatch, group_rows, chunk_rows):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    x[rng.random(x.shape) < 0.2] = np.nan
    y = (np.nan_to_num(x[:, 0]) > 0).astype(float)
    params = {
        "objective": "binary",
        "num_leaves": 4,
        "min_data_in_leaf": 60,
        "bagging_fraction": 0.3,
        "bagging_freq": 1,
        "verbose": -1,
        "num_threads": 1,
        "deterministic": True,
        "seed": 2,
    }
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=60)
    leaves = [t["num_leaves"] for t in booster.dump_model()["tree_info"]]
    # With this seed the first bag supports no split: a one-leaf tree ahead of trees that split.
    assert leaves[0] == 1 and max(leaves) > 1
    monkeypatch.setattr(explain, "GROUP_ROWS", group_rows)
    monkeypatch.setattr(explain, "CHUNK_ROWS", chunk_rows)
    matrix = rng.normal(size=(50, 3)).astype(np.float32)
    matrix[rng.random(matrix.shape) < 0.3] = np.nan
    _assert_matches_lightgbm(booster, matrix)
    assert PathExplainer(booster).contributions(matrix[:0]).shape == (0, 3)


def test_a_booster_with_linear_trees_is_refused_not_explained_wrongly():

    rng = np.random.default_rng(4)
    x = rng.random((500, 3))
    params = {"objective": "regression", "linear_tree": True, "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(x, 2 * x[:, 0] + x[:, 1]), num_boost_round=3)
    with pytest.raises(ValueError, match="linear trees"):
        PathExplainer(booster)
