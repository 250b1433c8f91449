"""Train the hold-risk model on point-in-time features with a time-based split.

Orders are split by creation time into three consecutive windows::

    | fit (boosters learn here) | calibration | validation (latest orders) |
    |<------------- training window -------->|

The boosters learn on the fit slice and stop early on the calibration slice; the calibrators are then
fitted on the boosters' scores of that same calibration slice. The validation window is never seen by
any of it, so its metrics are what the model would have scored on the newest orders. Orders sharing a
timestamp always fall in the same window.

Using the calibration slice for early stopping as well makes its scores slightly optimistic; with a few
hundred rounds of a small learning rate the effect on the calibrators is small, and it spares a fourth
window that small histories cannot afford.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from include.canonical import HOLD_REASONS
from training.errors import TrainingError

if TYPE_CHECKING:
    from training.model import HoldRiskModel

logger = logging.getLogger(__name__)

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "cat_smooth": 10.0,
    "num_threads": 2,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}
"""LightGBM parameters; ``seed`` comes from :func:`train`'s argument and ``params`` overrides any of these."""

NUM_BOOST_ROUND = 500
EARLY_STOPPING_ROUNDS = 30


@dataclass(frozen=True)
class TimeSplit:
    """Which orders fall in which window, and the windows' boundaries.

    Attributes:
        fit_ids, calib_ids, valid_ids: order ids of each window, in time order.
        train_start: earliest creation time in the training window.
        calib_start: first creation time of the calibration slice (end of the fit slice, exclusive).
        valid_start: first creation time of the validation window (end of training, exclusive).
        valid_end: latest creation time in the validation window (inclusive).
    """

    fit_ids: pd.Index
    calib_ids: pd.Index
    valid_ids: pd.Index
    train_start: pd.Timestamp
    calib_start: pd.Timestamp
    valid_start: pd.Timestamp
    valid_end: pd.Timestamp

    @property
    def train_ids(self) -> pd.Index:
        """Fit and calibration orders together: the training window."""
        return self.fit_ids.append(self.calib_ids)

    def boundaries(self) -> dict[str, str]:
        """The boundaries as ISO-8601 strings, for run parameters and tags."""
        return {
            "train_start": self.train_start.isoformat(),
            "calib_start": self.calib_start.isoformat(),
            "valid_start": self.valid_start.isoformat(),
            "valid_end": self.valid_end.isoformat(),
        }


def time_split(
    created_at: pd.Series, *, valid_fraction: float = 0.2, calib_fraction: float = 0.2
) -> TimeSplit:
    """Split orders by creation time into fit, calibration and validation windows.

    The last ``valid_fraction`` of orders (by ``created_at``) form the validation window and the last
    ``calib_fraction`` of the rest the calibration slice. Each cut is placed at a timestamp, so orders
    with equal ``created_at`` never straddle a boundary; ties make a window slightly larger.

    Args:
        created_at: creation time per order, indexed by order id.
        valid_fraction: share of orders in the validation window, in (0, 1).
        calib_fraction: share of the training window used for calibration, in (0, 1).

    Raises:
        TrainingError: a fraction is out of range, a value is not a timestamp or is missing, or a
            window would be empty.
    """
    for name, value in (("valid_fraction", valid_fraction), ("calib_fraction", calib_fraction)):
        if not 0.0 < value < 1.0:
            raise TrainingError(f"{name} must be strictly between 0 and 1; got {value}")
    if not pd.api.types.is_datetime64_any_dtype(created_at):
        raise TrainingError(f"created_at must hold timestamps; got dtype {created_at.dtype}")
    if created_at.isna().any():
        raise TrainingError(f"created_at is missing for {int(created_at.isna().sum())} order(s)")
    if created_at.index.has_duplicates:
        raise TrainingError("created_at has duplicate order ids")

    ordered = created_at.sort_values(kind="stable")
    valid_start = _cut(ordered, valid_fraction, "validation")
    train = ordered[ordered < valid_start]
    calib_start = _cut(train, calib_fraction, "calibration")
    return TimeSplit(
        fit_ids=train.index[train < calib_start],
        calib_ids=train.index[train >= calib_start],
        valid_ids=ordered.index[ordered >= valid_start],
        train_start=train.iloc[0],
        calib_start=calib_start,
        valid_start=valid_start,
        valid_end=ordered.iloc[-1],
    )


def _cut(ordered: pd.Series, fraction: float, window: str) -> pd.Timestamp:
    """The timestamp starting the last ``fraction`` of ``ordered``; rows before it must exist."""
    n = len(ordered)
    n_tail = max(1, math.ceil(n * fraction))
    if n < 2 or n_tail >= n:
        raise TrainingError(f"{n} order(s) are too few to cut a {window} window of {fraction:.0%}")
    start = ordered.iloc[n - n_tail]
    if not (ordered < start).any():
        raise TrainingError(
            f"all {n} orders share the creation time {start}; cannot cut a {window} window by time"
        )
    return start


@dataclass
class TrainResult:
    """Everything one training produced.

    Attributes:
        model: the fitted :class:`training.model.HoldRiskModel`.
        split: the time windows and their boundaries.
        valid_predictions: the model's probabilities on the validation window (index order id).
        metrics: per target (``any`` and each reason), the validation metrics of
            :func:`training.evaluate.binary_metrics`.
        data_hash: SHA-256 over the features, labels and creation times that were used.
        params: the effective LightGBM parameters and training settings.
        threshold: the decision threshold of the precision and recall metrics.
    """

    model: HoldRiskModel
    split: TimeSplit
    valid_predictions: pd.DataFrame
    metrics: dict[str, dict[str, float]]
    data_hash: str
    params: dict[str, Any]
    threshold: float
    feature_columns: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)


def train(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    created_at: pd.Series,
    *,
    categorical: Sequence[str],
    params: dict | None = None,
    valid_fraction: float = 0.2,
    seed: int = 0,
    calib_fraction: float = 0.2,
    min_positives: int = 30,
    num_boost_round: int = NUM_BOOST_ROUND,
    early_stopping_rounds: int = EARLY_STOPPING_ROUNDS,
    calibration: str = "auto",
    threshold: float = 0.5,
) -> TrainResult:
    """Fit one calibrated booster per target on a time-based split and evaluate it on the latest orders.

    Args:
        features: one row per order (index order id), the feature columns; categoricals as text.
        labels: index order id; ``label_any`` and ``label_<reason>`` for every reason in
            :data:`include.canonical.HOLD_REASONS`, each 0 or 1.
        created_at: creation time per order (index order id): what the split is made on.
        categorical: which feature columns are categorical.
        params: LightGBM parameters overriding :data:`DEFAULT_PARAMS`.
        valid_fraction: share of the latest orders held out for validation.
        seed: seed of LightGBM's bagging and feature sampling.
        calib_fraction: share of the training window (its latest orders) used for early stopping
            and calibration.
        min_positives: a reason with fewer positives in the fit slice, or fewer than a fifth of that in
            the calibration slice, gets a constant prior instead of a booster.
        num_boost_round: most boosting rounds per target.
        early_stopping_rounds: rounds without improvement on the calibration slice before stopping.
        calibration: ``auto``, ``isotonic`` or ``platt`` (see :func:`training.model.fit_calibrator`).
        threshold: decision threshold of the precision and recall metrics.

    Returns:
        The model, the split, validation predictions and metrics.

    Raises:
        TrainingError: the frames do not line up, a label column is missing or not 0/1, a window is
            empty, or the ``any`` target has too few positives to learn from.
    """
    # training.model goes first: it sets the OpenMP wait policy that must precede loading lightgbm.
    from training.model import (
        ANY_TARGET,
        HoldRiskModel,
        TargetModel,
        build_vocabularies,
        encode_features,
        fit_calibrator,
    )

    import lightgbm as lgb  # isort: skip

    from training.evaluate import evaluate_predictions

    feature_columns = [str(c) for c in features.columns]
    categorical = list(categorical)
    unknown = [c for c in categorical if c not in feature_columns]
    if unknown:
        raise TrainingError(f"categorical column(s) {unknown} are not in the features")
    labels, created_at = _align(features, labels, created_at)
    targets = {ANY_TARGET: labels["label_any"], **{r: labels[f"label_{r}"] for r in HOLD_REASONS}}

    split = time_split(created_at, valid_fraction=valid_fraction, calib_fraction=calib_fraction)
    logger.info(
        "Split %d orders by created_at: fit %d, calibration %d from %s, validation %d from %s to %s",
        len(features),
        len(split.fit_ids),
        len(split.calib_ids),
        split.calib_start.isoformat(),
        len(split.valid_ids),
        split.valid_start.isoformat(),
        split.valid_end.isoformat(),
    )

    train_ids = split.train_ids
    vocabularies = build_vocabularies(features.loc[train_ids], categorical)
    x_fit = encode_features(features.loc[split.fit_ids], feature_columns, vocabularies)
    x_cal = encode_features(features.loc[split.calib_ids], feature_columns, vocabularies)
    cat_idx = [feature_columns.index(c) for c in categorical]

    lgb_params = {**DEFAULT_PARAMS, "seed": seed, **(params or {})}
    # Bin the fit slice once and swap labels per target: binning is the costly part of a small training.
    d_fit = lgb.Dataset(
        x_fit,
        label=targets[ANY_TARGET].loc[split.fit_ids].to_numpy(),
        feature_name=feature_columns,
        categorical_feature=cat_idx,
        params=lgb_params,
        free_raw_data=False,
    ).construct()
    d_cal = lgb.Dataset(
        x_cal, label=targets[ANY_TARGET].loc[split.calib_ids].to_numpy(), reference=d_fit, free_raw_data=False
    ).construct()

    fitted = {}
    min_calib_positives = max(1, min_positives // 5)
    for name, y in targets.items():
        y_fit = y.loc[split.fit_ids].to_numpy()
        y_cal = y.loc[split.calib_ids].to_numpy()
        n_pos = int(y.loc[train_ids].sum())
        # Jeffreys-smoothed, so a reason never seen in the window keeps a small non-zero probability.
        prior = (n_pos + 0.5) / (len(train_ids) + 1.0)
        if y_fit.sum() < min_positives or y_cal.sum() < min_calib_positives:
            if name == ANY_TARGET:
                raise TrainingError(
                    f"label_any has {int(y_fit.sum())} positive(s) in the fit slice and {int(y_cal.sum())} "
                    f"in the calibration slice; need at least {min_positives} and {min_calib_positives}"
                )
            logger.info(
                "Target %s gets a constant prior %.4f: %d positive(s) in fit, %d in calibration",
                name,
                prior,
                int(y_fit.sum()),
                int(y_cal.sum()),
            )
            fitted[name] = TargetModel(name, None, None, prior, n_pos)
            continue
        d_fit.set_label(y_fit)
        d_cal.set_label(y_cal)
        booster = lgb.train(
            lgb_params,
            d_fit,
            num_boost_round=num_boost_round,
            valid_sets=[d_cal],
            valid_names=["calibration"],
            callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
        )
        # Keep only the trees up to the best round, so every later predict uses them without being told.
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
        calibrator = fit_calibrator(booster.predict(x_cal, raw_score=True), y_cal, method=calibration)
        logger.debug("Target %s: %d trees, %s calibration", name, booster.num_trees(), calibrator.kind)
        fitted[name] = TargetModel(name, booster, calibrator, prior, n_pos)

    model = HoldRiskModel(
        feature_columns=feature_columns,
        categorical=categorical,
        vocabularies=vocabularies,
        targets=fitted,
        reasons=HOLD_REASONS,
    )
    valid_predictions = model.predict_frame(features.loc[split.valid_ids], explain=False)
    metrics = evaluate_predictions(valid_predictions, labels.loc[split.valid_ids], threshold=threshold)
    constant = [n for n, t in fitted.items() if t.constant]
    logger.info(
        "Trained %d booster(s), %d constant target(s) %s; validation any-hold PR-AUC %.4f (base rate %.4f)",
        len(fitted) - len(constant),
        len(constant),
        constant,
        metrics[ANY_TARGET]["pr_auc"],
        metrics[ANY_TARGET]["base_rate"],
    )
    settings = {
        "valid_fraction": valid_fraction,
        "calib_fraction": calib_fraction,
        "min_positives": min_positives,
        "num_boost_round": num_boost_round,
        "early_stopping_rounds": early_stopping_rounds,
        "calibration": calibration,
    }
    return TrainResult(
        model=model,
        split=split,
        valid_predictions=valid_predictions,
        metrics=metrics,
        data_hash=data_hash(features, labels, created_at),
        params={**lgb_params, **settings},
        threshold=threshold,
        feature_columns=feature_columns,
        categorical=categorical,
    )


def _align(
    features: pd.DataFrame, labels: pd.DataFrame, created_at: pd.Series
) -> tuple[pd.DataFrame, pd.Series]:
    """Labels and creation times reindexed on the features' order ids, checked to be complete and 0/1."""
    if features.empty:
        raise TrainingError("features are empty: no orders to train on")
    if features.index.has_duplicates:
        dupes = features.index[features.index.duplicated()].unique()[:5].tolist()
        raise TrainingError(f"features have duplicate order ids, e.g. {dupes}")
    for name, other in (("labels", labels), ("created_at", created_at)):
        absent = features.index.difference(other.index)
        if len(absent):
            raise TrainingError(
                f"{name} lack {len(absent)} order id(s) present in the features, e.g. {absent[:5].tolist()}"
            )
    wanted = ["label_any", *(f"label_{r}" for r in HOLD_REASONS)]
    missing = [c for c in wanted if c not in labels.columns]
    if missing:
        raise TrainingError(f"labels lack column(s) {missing}")
    labels = labels.loc[features.index, wanted]
    bad = [c for c in wanted if not labels[c].isin([0, 1]).all()]
    if bad:
        raise TrainingError(f"label column(s) {bad} hold values other than 0 and 1 (or are missing)")
    return labels.astype("int64"), created_at.loc[features.index]


def data_hash(features: pd.DataFrame, labels: pd.DataFrame, created_at: pd.Series) -> str:
    """SHA-256 over the training data's values, index and column names: same data, same hash."""
    digest = hashlib.sha256()
    for frame in (features, labels, created_at.to_frame("created_at")):
        digest.update("\x1f".join(map(str, frame.columns)).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def valid_frame(frame: pd.DataFrame | pd.Series, result: TrainResult) -> pd.DataFrame | pd.Series:
    """The rows of ``frame`` in ``result``'s validation window, in the window's order."""
    return frame.loc[result.split.valid_ids]
