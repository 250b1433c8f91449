"""The hold-risk model: one LightGBM booster per target, a calibrator per target, served as an MLflow pyfunc.

Targets are ``any`` (the order gets at least one hold) and one per reason of
:data:`include.canonical.HOLD_REASONS`. A reason with too few positives in the training window gets a
constant prior instead of a booster, and says so in :meth:`HoldRiskModel.describe`.

Categorical features are encoded here, against vocabularies fixed at training time, never through
pandas category codes or LightGBM's ``pandas_categorical``: a frame whose categories come in another
order, or as plain strings after MLflow's schema enforcement, must score exactly like the training
frame. A category unseen in training is encoded as missing. Columns are taken by name.

The pickled state is plain data (booster model strings, calibrator breakpoints, vocabularies) under a
format number rather than the object's attributes, so registered versions keep loading when this class
is refactored; a change of the state itself must bump ``STATE_FORMAT`` and keep reading the old one.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

# LightGBM's OpenMP threads spin while they wait for each other. On a two-core worker busy with other
# tasks that made a 20k-order training 15x slower (24 s instead of 1.6 s, measured); passive waiting
# removes it. The runtime reads this once, when it loads, which is when lightgbm is first imported, so
# it must come before that import. An operator's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import lightgbm as lgb  # noqa: E402
import mlflow.pyfunc  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from include.canonical import HOLD_REASONS  # noqa: E402
from include.text import float_text  # noqa: E402
from training.errors import FeatureMismatchError  # noqa: E402

logger = logging.getLogger(__name__)

ANY_TARGET = "any"
TOP_FACTORS = 5
STATE_FORMAT = 1
ISOTONIC_TIE_BREAK = 1e-6


class FeatureTypeError(ValueError):
    """A numeric feature column holds values that are not numbers."""


def probability_column(target: str) -> str:
    """Name of the output column carrying the probability of ``target`` (``any`` or a reason)."""
    return f"p_{target}"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Calibrator:
    """Maps a booster's raw score (log-odds) to a calibrated probability.

    ``isotonic`` interpolates the fitted step function (``x``/``y`` breakpoints, clipped at the ends);
    ``platt`` is ``sigmoid(slope * raw + intercept)``; ``none`` is the booster's own probability, used
    when the calibration slice holds a single class.
    """

    kind: str
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    slope: float = 1.0
    intercept: float = 0.0

    def apply(self, raw_score: np.ndarray) -> np.ndarray:
        """Return calibrated probabilities for an array of raw scores."""
        raw_score = np.asarray(raw_score, dtype="float64")
        if self.kind == "isotonic":
            steps = np.interp(raw_score, np.asarray(self.x), np.asarray(self.y))
            # The step function ties whole blocks of orders, which costs PR-AUC. Blending in a sliver of
            # the booster's own probability makes the result strictly increasing in the raw score, so
            # calibration never changes the ranking, and moves no probability by more than ISOTONIC_TIE_BREAK.
            return (1.0 - ISOTONIC_TIE_BREAK) * steps + ISOTONIC_TIE_BREAK * _sigmoid(raw_score)
        if self.kind == "platt":
            return _sigmoid(self.slope * raw_score + self.intercept)
        return _sigmoid(raw_score)


def fit_calibrator(
    raw_score: np.ndarray, y: np.ndarray, *, method: str = "auto", isotonic_min_class: int = 100
) -> Calibrator:
    """Fit a calibrator on held-out raw scores.

    Args:
        raw_score: the booster's raw scores (log-odds) on the calibration slice.
        y: 0/1 outcomes of the same rows.
        method: ``isotonic``, ``platt`` or ``auto``: isotonic when both classes have at least
            ``isotonic_min_class`` rows (it needs many points not to overfit), Platt otherwise.
        isotonic_min_class: smallest class size for which ``auto`` picks isotonic.

    Returns:
        The fitted calibrator; kind ``none`` when ``y`` holds a single class.
    """
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    raw_score = np.asarray(raw_score, dtype="float64")
    y = np.asarray(y, dtype="int64")
    n_pos = int(y.sum())
    n_neg = int(len(y) - n_pos)
    if n_pos == 0 or n_neg == 0:
        return Calibrator("none")
    if method == "auto":
        method = "isotonic" if min(n_pos, n_neg) >= isotonic_min_class else "platt"
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw_score, y)
        return Calibrator(
            "isotonic",
            x=tuple(float(v) for v in iso.X_thresholds_),
            y=tuple(float(v) for v in iso.y_thresholds_),
        )
    if method == "platt":
        # A large C keeps the fit close to plain maximum likelihood, which is what Platt scaling is.
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(raw_score.reshape(-1, 1), y)
        return Calibrator("platt", slope=float(lr.coef_[0, 0]), intercept=float(lr.intercept_[0]))
    raise ValueError(f"calibration method must be one of auto, isotonic, platt; got {method!r}")


@dataclass
class TargetModel:
    """What predicts one target: a booster and its calibrator, or a constant prior.

    Attributes:
        name: ``any`` or a reason code.
        booster: the LightGBM booster, ``None`` for a constant target.
        calibrator: maps the booster's raw score to a probability; ``None`` for a constant target.
        prior: the target's positive rate in the training window.
        n_positives: positives in the training window, kept to explain why a target is constant.
    """

    name: str
    booster: lgb.Booster | None
    calibrator: Calibrator | None
    prior: float
    n_positives: int

    @property
    def constant(self) -> bool:
        return self.booster is None

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for an encoded feature matrix."""
        if self.booster is None:
            return np.full(matrix.shape[0], self.prior, dtype="float64")
        return self.calibrator.apply(self.booster.predict(matrix, raw_score=True))


def build_vocabularies(frame: pd.DataFrame, categorical: Sequence[str]) -> dict[str, list[str]]:
    """The sorted distinct values of each categorical column, as strings.

    Sorting makes the codes independent of row order and of any category order the frame carries.
    """
    vocab = {}
    for col in categorical:
        values = frame[col].astype("string").dropna().unique()
        vocab[col] = sorted(str(v) for v in values)
    return vocab


_TRANSPOSE_ROWS = 8192
_TEXT = pa.large_string()
"""Top-factor text is built as Arrow's large strings: what pandas keeps, and not capped at 2 GiB."""


def _text(value: str | None) -> pa.Scalar:
    return pa.scalar(value, _TEXT)


def encode_features(
    frame: pd.DataFrame, feature_columns: Sequence[str], vocabularies: Mapping[str, Sequence[str]]
) -> np.ndarray:
    """Turn a feature frame into the float matrix the boosters read.

    Columns are taken by name in ``feature_columns`` order; extra columns are ignored. A categorical
    value becomes its index in the column's vocabulary, an unseen or missing value becomes NaN (LightGBM's
    missing). Numeric columns become float64.

    Raises:
        FeatureMismatchError: a feature column is missing, naming every missing column.
        FeatureTypeError: a numeric feature column holds text that is not a number.
    """
    missing = [c for c in feature_columns if c not in frame.columns]
    if missing:
        raise FeatureMismatchError(missing=missing)
    # Filled a feature at a time into contiguous rows of the transpose, then transposed once: writing
    # each feature down a column of a row-major matrix strides through memory (1.4 s against 0.4 s for
    # 70 features of 1M orders). LightGBM reads row-major fastest.
    columns = np.empty((len(feature_columns), len(frame)), dtype="float64")
    for j, col in enumerate(feature_columns):
        values = frame[col]
        if col in vocabularies:
            # Each distinct value is looked up once: a million rows hold a few dozen categories, and
            # looking up every row's text took longer than a booster's predict.
            positions, distinct = pd.factorize(values, use_na_sentinel=True)
            index = pd.Index(list(vocabularies[col]), dtype="string")
            lookup = index.get_indexer(pd.Index(distinct).astype("string")).astype("float64")
            lookup[lookup < 0] = np.nan
            codes = np.full(len(values), np.nan)
            known = positions >= 0
            codes[known] = lookup[positions[known]]
            columns[j] = codes
        else:
            try:
                columns[j] = values.to_numpy(dtype="float64", na_value=np.nan)
            except (TypeError, ValueError) as err:
                raise FeatureTypeError(
                    f"feature {col!r} must be numeric (dtype {values.dtype}): {err}"
                ) from err
    # Transposed a block of rows at a time, so that what is read stays in cache.
    matrix = np.empty((len(frame), len(feature_columns)), dtype="float64")
    for start in range(0, len(frame), _TRANSPOSE_ROWS):
        matrix[start : start + _TRANSPOSE_ROWS] = columns[:, start : start + _TRANSPOSE_ROWS].T
    return matrix


class HoldRiskModel(mlflow.pyfunc.PythonModel):
    """Calibrated probabilities of any hold and of each hold reason, with the top contributing features.

    Built by :func:`training.train.train`; logged and served through ``mlflow.pyfunc``.
    """

    def __init__(
        self,
        *,
        feature_columns: Sequence[str],
        categorical: Sequence[str],
        vocabularies: Mapping[str, Sequence[str]],
        targets: Mapping[str, TargetModel],
        reasons: Sequence[str] = HOLD_REASONS,
    ):
        unknown = [c for c in categorical if c not in feature_columns]
        if unknown:
            raise ValueError(f"categorical column(s) {unknown} are not among the feature columns")
        expected = [ANY_TARGET, *reasons]
        if sorted(targets) != sorted(expected):
            raise ValueError(f"targets must be exactly {expected}; got {sorted(targets)}")
        if targets[ANY_TARGET].constant:
            raise ValueError("the 'any' target needs a booster: it drives the explanations")
        self.feature_columns = list(feature_columns)
        self.categorical = list(categorical)
        self.vocabularies = {c: list(vocabularies[c]) for c in self.categorical}
        self.reasons = tuple(reasons)
        self.targets = {t: targets[t] for t in expected}

    @property
    def output_columns(self) -> list[str]:
        """The columns :meth:`predict` returns, in order."""
        return [probability_column(t) for t in self.targets] + ["top_factors"]

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """The frame's features as the boosters' float matrix (see :func:`encode_features`)."""
        return encode_features(frame, self.feature_columns, self.vocabularies)

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None):
        """Score a feature frame: the pyfunc entry point.

        Args:
            context: the MLflow context (unused: the state travels with the pickled model).
            model_input: one row per order, the feature columns by name; extra columns are ignored.
            params: ``explain`` (default true) computes ``top_factors``; ``explain_min_p`` (default 0)
                computes them only for orders whose ``p_any`` reaches it. Explanations are most of the
                cost of scoring, and orders below the lowest policy threshold never need them. An
                order not explained gets an empty list. ``explainer`` is ``path`` (default) or ``shap``
                (see :meth:`top_factors`).

        Returns:
            A frame on the input's index with ``p_any``, ``p_<reason>`` per hold reason and
            ``top_factors``.
        """
        params = params or {}
        return self.predict_frame(
            model_input,
            explain=bool(params.get("explain", True)),
            explain_min_p=float(params.get("explain_min_p", 0.0)),
            explainer=str(params.get("explainer", "path")),
        )

    def predict_frame(
        self,
        features: pd.DataFrame,
        *,
        explain: bool = True,
        explain_min_p: float = 0.0,
        explainer: str = "path",
    ) -> pd.DataFrame:
        """Score a feature frame in memory; same output and options as :meth:`predict`."""
        matrix = self.encode(features)
        out = {probability_column(name): target.predict(matrix) for name, target in self.targets.items()}
        factors = pa.repeat(_text("[]"), len(features))
        if explain:
            rows = out[probability_column(ANY_TARGET)] >= explain_min_p
            if rows.any():
                explained = self._top_factor_text(matrix[rows], TOP_FACTORS, explainer)
                factors = pc.replace_with_mask(factors, pa.array(rows), explained)
        out["top_factors"] = pd.array(factors, dtype="string")
        return pd.DataFrame(out, index=features.index)

    def contributions(self, matrix: np.ndarray, explainer: str = "path") -> np.ndarray:
        """Per row and feature, the contribution to the any-hold booster's raw score (log-odds).

        Args:
            matrix: encoded features (:meth:`encode`).
            explainer: ``path`` for path attributions (:class:`training.explain.PathExplainer`, about
                the cost of a predict), ``shap`` for LightGBM's exact TreeSHAP (``pred_contrib``,
                about 60 times dearer per row). Both add up to the raw score from the same expected
                value.
        """
        booster = self.targets[ANY_TARGET].booster
        if explainer == "shap":
            return booster.predict(matrix, pred_contrib=True)[:, :-1]
        if explainer != "path":
            raise ValueError(f"explainer must be 'path' or 'shap', got {explainer!r}")
        if getattr(self, "_path_explainer", None) is None:
            from training.explain import PathExplainer

            self._path_explainer = PathExplainer(booster)
        return self._path_explainer.contributions(matrix)

    def top_factors(self, matrix: np.ndarray, k: int = TOP_FACTORS, explainer: str = "path") -> np.ndarray:
        """Per row, a JSON list of ``[feature, contribution]`` for the k largest positive contributions.

        Contributions are the any-hold booster's own (:meth:`contributions`, in log-odds), so they
        explain the uncalibrated score; their order is what the evidence text needs. Returns an object
        array of JSON strings, one per row of ``matrix``.
        """
        return self._top_factor_text(matrix, k, explainer).to_numpy(zero_copy_only=False)

    def _top_factor_text(self, matrix: np.ndarray, k: int, explainer: str) -> pa.LargeStringArray:
        contrib = self.contributions(matrix, explainer)
        # Only a feature with a positive contribution somewhere can be named: the others are left out
        # before ranking (path attributions leave every feature no tree splits on at 0).
        candidates = np.flatnonzero((contrib > 0).any(axis=0))
        k = min(k, len(candidates))
        if k == 0:
            return pa.repeat(_text("[]"), len(contrib))
        contrib = contrib[:, candidates]
        top = np.argpartition(-contrib, k - 1, axis=1)[:, :k]
        top_values = np.take_along_axis(contrib, top, axis=1)
        order = np.take_along_axis(top, np.argsort(-top_values, axis=1, kind="stable"), axis=1)
        values = np.round(np.take_along_axis(contrib, order, axis=1), 4)

        # The JSON is assembled by Arrow a rank at a time: a pair is written where its value is positive
        # and left out (null) elsewhere, and the pairs of a row are joined skipping the nulls. Values
        # are sorted, so a row without a positive first value has none: its first pair is "" rather
        # than null (pyarrow 25 drops a row whose values are all null from a join that skips nulls).
        opening = pa.array([f"[{json.dumps(self.feature_columns[c])}, " for c in candidates], _TEXT)
        pairs = []
        for j in range(k):
            number = float_text(values[:, j]).cast(_TEXT)
            pair = pc.binary_join_element_wise(opening.take(order[:, j]), number, _text("]"), _text(""))
            absent = _text("" if j == 0 else None)
            pairs.append(pc.if_else(values[:, j] > 0, pair, absent))
        joined = pc.binary_join_element_wise(*pairs, _text(", "), null_handling="skip")
        return pc.binary_join_element_wise(_text("["), joined, _text("]"), _text(""))

    def describe(self) -> dict[str, dict[str, Any]]:
        """Per target: booster or constant, calibration kind, number of trees, prior, positives."""
        summary = {}
        for name, target in self.targets.items():
            summary[name] = {
                "kind": "constant" if target.constant else "booster",
                "calibration": target.calibrator.kind if target.calibrator else "none",
                "num_trees": 0 if target.constant else target.booster.num_trees(),
                "prior": target.prior,
                "n_positives": target.n_positives,
            }
        return summary

    def signature(self):
        """The MLflow signature: categoricals as ``string``, numerics as ``double``, explanation params."""
        from mlflow.models import ModelSignature
        from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

        inputs = Schema(
            [ColSpec("string" if c in self.vocabularies else "double", c) for c in self.feature_columns]
        )
        outputs = Schema(
            [ColSpec("double", probability_column(t)) for t in self.targets]
            + [ColSpec("string", "top_factors")]
        )
        params = ParamSchema(
            [
                ParamSpec("explain", "boolean", True),
                ParamSpec("explain_min_p", "double", 0.0),
                ParamSpec("explainer", "string", "path"),
            ]
        )
        return ModelSignature(inputs=inputs, outputs=outputs, params=params)

    def input_example(self, features: pd.DataFrame, n: int = 5) -> pd.DataFrame:
        """The first ``n`` rows of ``features`` in the dtypes of :meth:`signature`, for logging."""
        head = features.loc[:, self.feature_columns].head(n)
        example = {}
        for col in self.feature_columns:
            if col in self.vocabularies:
                example[col] = head[col].astype("string").astype(object).where(head[col].notna(), None)
            else:
                example[col] = head[col].to_numpy(dtype="float64", na_value=np.nan)
        return pd.DataFrame(example, index=range(len(head)))

    def __getstate__(self) -> dict[str, Any]:
        targets = []
        for target in self.targets.values():
            targets.append(
                {
                    "name": target.name,
                    "booster": None if target.constant else target.booster.model_to_string(),
                    "calibrator": None if target.calibrator is None else asdict(target.calibrator),
                    "prior": target.prior,
                    "n_positives": target.n_positives,
                }
            )
        return {
            "format": STATE_FORMAT,
            "feature_columns": self.feature_columns,
            "categorical": self.categorical,
            "vocabularies": self.vocabularies,
            "reasons": list(self.reasons),
            "targets": targets,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(
                f"HoldRiskModel state format {state.get('format')!r} is not supported by this code "
                f"(expects {STATE_FORMAT}); load it with the holdcast version that trained it"
            )
        self.feature_columns = list(state["feature_columns"])
        self.categorical = list(state["categorical"])
        self.vocabularies = {c: list(v) for c, v in state["vocabularies"].items()}
        self.reasons = tuple(state["reasons"])
        self.targets = {}
        for item in state["targets"]:
            booster = None if item["booster"] is None else lgb.Booster(model_str=item["booster"])
            calibrator = None if item["calibrator"] is None else Calibrator(**item["calibrator"])
            self.targets[item["name"]] = TargetModel(
                item["name"], booster, calibrator, float(item["prior"]), int(item["n_positives"])
            )
