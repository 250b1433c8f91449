"""Metrics, baselines and plots of training.evaluate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from training.evaluate import (
    binary_metrics,
    calibration_figure,
    evaluate_predictions,
    flatten_metrics,
    group_rate_baseline,
    oracle_metrics,
    pr_curve_figure,
    rule_baseline,
    save_figure,
)
from training.synthetic import make_orders


def test_binary_metrics_on_a_hand_checked_case():
    y = [1, 0, 1, 0, 0]
    p = [0.9, 0.8, 0.6, 0.2, 0.1]
    m = binary_metrics(y, p, threshold=0.5)
    # Ranked: 1 (0.9), 0 (0.8), 1 (0.6): AP = (1/1 + 2/3) / 2.
    assert m["pr_auc"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["roc_auc"] == pytest.approx(5 / 6)
    assert m["brier"] == pytest.approx((0.01 + 0.64 + 0.16 + 0.04 + 0.01) / 5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(1.0)
    assert m["base_rate"] == pytest.approx(0.4)
    assert (m["n"], m["n_positive"]) == (5.0, 2.0)


def test_threshold_moves_precision_and_recall():
    y = [1, 0, 1, 0, 0]
    p = [0.9, 0.8, 0.6, 0.2, 0.1]
    m = binary_metrics(y, p, threshold=0.85)
    assert (m["precision"], m["recall"]) == (1.0, 0.5)
    assert binary_metrics(y, p, threshold=0.95)["precision"] == 0.0


def test_single_class_outcomes_give_undefined_aucs():
    m = binary_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert math.isnan(m["pr_auc"]) and math.isnan(m["roc_auc"])
    assert m["recall"] == 0.0 and m["base_rate"] == 0.0


def test_length_mismatch_is_refused():
    with pytest.raises(ValueError, match="differ in length"):
        binary_metrics([0, 1], [0.5])


def test_evaluate_predictions_matches_on_order_id_and_flattens():
    labels = pd.DataFrame({"label_any": [1, 0, 0, 1]}, index=pd.Index(list("abcd"), name="order_id"))
    # Matched by id the ranking is perfect; matched by position it would be exactly wrong.
    predictions = pd.DataFrame({"p_any": [0.2, 0.7, 0.9, 0.1]}, index=pd.Index(list("badc"), name="order_id"))
    metrics = evaluate_predictions(predictions, labels, targets=["any"])
    assert metrics["any"]["roc_auc"] == pytest.approx(1.0)
    assert flatten_metrics(metrics)["any_roc_auc"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="labels lack 1 predicted order id"):
        evaluate_predictions(predictions, labels.iloc[:3], targets=["any"])


def test_oracle_beats_noise_on_generated_data():
    data = make_orders(5000, seed=9)
    oracle = oracle_metrics(data.true_p["any"], data.labels["label_any"])
    noise = binary_metrics(data.labels["label_any"], np.random.default_rng(0).random(5000))
    assert set(oracle) == {"pr_auc", "roc_auc", "brier"}
    assert oracle["roc_auc"] > noise["roc_auc"] + 0.05
    assert oracle["pr_auc"] > noise["pr_auc"] + 0.05


def test_group_rate_baseline_uses_training_rates_and_falls_back_to_global():
    train = pd.DataFrame(
        {
            "segment": ["retail", "retail", "retail", "public", "wholesale"],
            "country": ["DE", "DE", "DE", "FR", "DE"],
            "label_any": [1, 0, 0, 1, 0],
        }
    )
    valid = pd.DataFrame(
        {"segment": ["retail", "public", "unknown", "wholesale"], "country": ["DE", "FR", "DE", "DE"]},
        index=pd.Index(["o1", "o2", "o3", "o4"], name="order_id"),
    )
    scores = group_rate_baseline(train, valid, ["segment", "country"], "label_any")
    assert scores.index.equals(valid.index)
    assert scores.tolist() == pytest.approx([1 / 3, 1.0, 2 / 5, 0.0])
    # With min_count=2 only retail/DE has enough history; the others get the global rate.
    scores = group_rate_baseline(train, valid, ["segment", "country"], "label_any", min_count=2)
    assert scores.tolist() == pytest.approx([1 / 3, 2 / 5, 2 / 5, 2 / 5])


def test_rule_baseline_passes_scores_through_and_treats_missing_as_not_fired():
    utilisation = pd.Series([0.5, 1.2, np.nan, 3.0], index=list("abcd"))
    rule = (utilisation > 1).astype("float64").where(utilisation.notna())
    out = rule_baseline(rule)
    assert out.tolist() == [0.0, 1.0, 0.0, 1.0]
    assert out.index.equals(utilisation.index)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        rule_baseline(pd.Series([0.2, 1.5], name="util"))


def test_figures_render_as_png(tmp_path):
    rng = np.random.default_rng(0)
    ids = pd.Index([f"o{i}" for i in range(400)], name="order_id")
    p = rng.random(400)
    predictions = pd.DataFrame({"p_any": p, "p_credit": p / 2}, index=ids)
    labels = pd.DataFrame(
        {"label_any": (rng.random(400) < p).astype(int), "label_credit": np.zeros(400, dtype=int)}, index=ids
    )
    for name, fig in (
        ("calibration.png", calibration_figure(predictions, labels, targets=["any", "credit"])),
        ("pr.png", pr_curve_figure(predictions, labels, targets=["any", "credit"])),
    ):
        # The credit target has a single class and is left out rather than failing the plot.
        assert [line.get_label() for line in fig.axes[0].lines if line.get_label().startswith("credit")] == []
        save_figure(fig, tmp_path / name)
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
