"""Metrics, baselines and plots that say how good a hold-risk model is.

Everything here is a pure function of outcomes and scores. Figures are built on matplotlib's
object API (no pyplot state) and rendered with the Agg canvas, so they work in a headless worker.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from include.canonical import HOLD_REASONS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

TARGETS: tuple[str, ...] = ("any", *HOLD_REASONS)


def binary_metrics(y_true, scores, *, threshold: float = 0.5) -> dict[str, float]:
    """Ranking, calibration and decision metrics of scores against 0/1 outcomes.

    Args:
        y_true: 0/1 outcomes.
        scores: probabilities (or any score in [0, 1]) of the same rows.
        threshold: a row with score >= threshold counts as predicted positive.

    Returns:
        ``pr_auc`` (average precision), ``roc_auc``, ``brier``, ``precision`` and ``recall`` at the
        threshold, ``base_rate``, ``n`` and ``n_positive``. The two AUCs are NaN when the outcomes hold
        a single class; precision is 0 when nothing is predicted positive.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(y_true, dtype="int64")
    p = np.asarray(scores, dtype="float64")
    if y.shape != p.shape:
        raise ValueError(f"outcomes and scores differ in length: {y.shape} vs {p.shape}")
    n = len(y)
    n_pos = int(y.sum())
    two_classes = 0 < n_pos < n
    predicted = p >= threshold
    true_pos = int((predicted & (y == 1)).sum())
    return {
        "pr_auc": float(average_precision_score(y, p)) if two_classes else float("nan"),
        "roc_auc": float(roc_auc_score(y, p)) if two_classes else float("nan"),
        "brier": float(np.mean((p - y) ** 2)) if n else float("nan"),
        "precision": true_pos / int(predicted.sum()) if predicted.any() else 0.0,
        "recall": true_pos / n_pos if n_pos else 0.0,
        "base_rate": n_pos / n if n else float("nan"),
        "n": float(n),
        "n_positive": float(n_pos),
    }


def evaluate_predictions(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    threshold: float = 0.5,
    targets: Sequence[str] = TARGETS,
) -> dict[str, dict[str, float]]:
    """Metrics per target of model output against labels, matched on the index (order id).

    Args:
        predictions: ``p_<target>`` columns, index order id.
        labels: ``label_<target>`` columns, index order id; must cover every predicted order.
        threshold: decision threshold for precision and recall.
        targets: which targets to evaluate.

    Returns:
        ``{target: binary_metrics(...)}``.
    """
    absent = predictions.index.difference(labels.index)
    if len(absent):
        raise ValueError(f"labels lack {len(absent)} predicted order id(s), e.g. {absent[:5].tolist()}")
    labels = labels.loc[predictions.index]
    return {
        t: binary_metrics(labels[f"label_{t}"], predictions[f"p_{t}"], threshold=threshold) for t in targets
    }


def flatten_metrics(metrics: dict[str, dict[str, float]], prefix: str = "") -> dict[str, float]:
    """``{"any": {"pr_auc": x}}`` becomes ``{"<prefix>any_pr_auc": x}``, the form MLflow logs."""
    return {
        f"{prefix}{target}_{name}": value
        for target, values in metrics.items()
        for name, value in values.items()
    }


def oracle_metrics(true_p, y) -> dict[str, float]:
    """What a model that knew the true hold probability would score: the ceiling on generated data.

    Args:
        true_p: the generator's true probability per order.
        y: the outcomes drawn from it.

    Returns:
        ``pr_auc``, ``roc_auc`` and ``brier`` of the true probabilities.
    """
    full = binary_metrics(y, true_p)
    return {k: full[k] for k in ("pr_auc", "roc_auc", "brier")}


def group_rate_baseline(
    train_frame: pd.DataFrame,
    valid_frame: pd.DataFrame,
    group_cols: Sequence[str],
    label: str,
    *,
    min_count: int = 1,
) -> pd.Series:
    """Score each validation order with its group's hold rate in the training window.

    A group unseen in training, or seen fewer than ``min_count`` times, gets the global training
    rate. Missing group values form a group of their own.

    Args:
        train_frame: training orders with ``group_cols`` and the 0/1 ``label`` column.
        valid_frame: validation orders with ``group_cols``.
        group_cols: the columns defining a group, e.g. ``["segment", "country"]``.
        label: the outcome column of ``train_frame``.
        min_count: smallest group size whose own rate is used.

    Returns:
        A float series on ``valid_frame``'s index.
    """
    group_cols = list(group_cols)
    global_rate = float(train_frame[label].mean())
    stats = train_frame.groupby(group_cols, dropna=False)[label].agg(["mean", "count"])
    rates = stats.loc[stats["count"] >= min_count, "mean"].rename("_rate").reset_index()
    merged = valid_frame[group_cols].reset_index(drop=True).merge(rates, on=group_cols, how="left")
    scores = merged["_rate"].fillna(global_rate).astype("float64")
    return pd.Series(scores.to_numpy(), index=valid_frame.index, name=f"group_rate_{label}")


def rule_baseline(scores: pd.Series) -> pd.Series:
    """A rules-only score as given by the caller (e.g. 1.0 when utilisation > 1, else 0.0).

    A rule that could not be evaluated (missing value) does not fire and scores 0.

    Raises:
        ValueError: a score is outside [0, 1].
    """
    out = pd.to_numeric(scores, errors="raise").astype("float64").fillna(0.0)
    if ((out < 0) | (out > 1)).any():
        raise ValueError(
            f"rule scores must lie in [0, 1]; {scores.name or 'scores'} has {out.min()}..{out.max()}"
        )
    return out


def calibration_figure(
    predictions: pd.DataFrame, labels: pd.DataFrame, *, targets: Sequence[str] = TARGETS, n_bins: int = 10
) -> Figure:
    """Reliability diagram: observed hold rate against mean predicted probability, per target.

    Bins are quantiles of the predictions, because hold probabilities crowd near zero. Targets whose
    outcomes hold a single class are left out.
    """
    from matplotlib.figure import Figure
    from sklearn.calibration import calibration_curve

    labels = labels.loc[predictions.index]
    fig = Figure(figsize=(6.5, 5.5), dpi=100)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    for target in targets:
        y = labels[f"label_{target}"].to_numpy()
        if y.min() == y.max():
            continue
        observed, predicted = calibration_curve(
            y, predictions[f"p_{target}"], n_bins=n_bins, strategy="quantile"
        )
        ax.plot(predicted, observed, marker="o", markersize=3, linewidth=1.2, label=target)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed hold rate")
    ax.set_title("Calibration on the validation window")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def pr_curve_figure(
    predictions: pd.DataFrame, labels: pd.DataFrame, *, targets: Sequence[str] = TARGETS
) -> Figure:
    """Precision-recall curve per target, with its average precision in the legend."""
    from matplotlib.figure import Figure
    from sklearn.metrics import average_precision_score, precision_recall_curve

    labels = labels.loc[predictions.index]
    fig = Figure(figsize=(6.5, 5.5), dpi=100)
    ax = fig.add_subplot()
    for target in targets:
        y = labels[f"label_{target}"].to_numpy()
        if y.min() == y.max():
            continue
        p = predictions[f"p_{target}"].to_numpy()
        precision, recall, _ = precision_recall_curve(y, p)
        ax.plot(recall, precision, linewidth=1.2, label=f"{target} (AP {average_precision_score(y, p):.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title("Precision-recall on the validation window")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path) -> None:
    """Write a figure as PNG through the Agg canvas (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, format="png")
