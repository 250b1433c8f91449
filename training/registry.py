"""Log a training run to MLflow, register the model, and decide whether it becomes the champion.

One call of :func:`log_and_register` makes one MLflow run holding the parameters (data window, data
hash, feature list), the validation metrics per target, the calibration and precision-recall plots and
any extra metrics the caller computed (oracle, baselines). The model is registered as a new version
with a signature, an input example and its tags (window, data hash, feature list, metrics, and the
caller's: validation result, policy version), all set in the one call that creates the version. It
then gets the alias ``challenger``.

The promotion gate then scores the current ``champion`` on the same validation features. The new
version passes when its any-hold PR-AUC is above the champion's plus a margin, or when there is no
champion yet. ``champion`` moves to it only if the gate passes *and* automatic promotion is allowed;
otherwise a person moves the alias in the MLflow UI, and the next scoring run uses it. Aliases only:
MLflow stages are deprecated and never used.

The gate's decision tag (``gate.decision``) is the version's last write. A version without it was
registered by a run that stopped before its aliases were set (a crash, a killed worker): the retry
finds it by its data hash and :func:`resume_registration` finishes the job (``challenger``, the gate)
instead of leaving it half done.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from training.errors import FeatureMismatchError
from training.score import (
    CHALLENGER,
    CHAMPION,
    champion_version,
    connect,
    input_kinds,
    load_champion,
    score,
)
from training.train import TrainResult

logger = logging.getLogger(__name__)

GATE_METRIC = "pr_auc"
GATE_TARGET = "any"

FIRST_CHAMPION = "first_champion"
PROMOTED = "promoted"
KEPT_CHAMPION = "kept_champion"
CHAMPION_UNUSABLE = "promoted_champion_unusable"
AWAITING_PERSON = "passed_auto_promotion_off"
ALREADY_CHAMPION = "already_champion"
MOVES_ALIAS = frozenset({FIRST_CHAMPION, PROMOTED, CHAMPION_UNUSABLE})

GATE_DECISION_TAG = "gate.decision"
"""Set last on a version: its presence means registration finished, aliases and gate included."""


@dataclass(frozen=True)
class GateComparison:
    """The promotion gate's evidence and verdict.

    Attributes:
        decision: ``first_champion``, ``promoted``, ``kept_champion``, ``promoted_champion_unusable``
            (the champion could not score the current features, so it could not serve either),
            ``passed_auto_promotion_off`` (one of the first, second or fourth, but
            ``HOLDCAST_AUTO_PROMOTE`` is off: a person decides) or ``already_champion`` (a person
            promoted the version before the gate ran).
        challenger_version: the version just registered.
        challenger_pr_auc: its any-hold PR-AUC on the validation features.
        champion_version: the version that held the alias before the gate ran, if any.
        champion_pr_auc: its any-hold PR-AUC on the same features (``None`` when it could not score).
        margin: the challenger must exceed ``champion_pr_auc + margin``.
        reason: one sentence for people reading the run.
    """

    decision: str
    challenger_version: str
    challenger_pr_auc: float
    champion_version: str | None
    champion_pr_auc: float | None
    margin: float
    reason: str

    @property
    def promoted(self) -> bool:
        """Whether the gate moved ``champion`` to the new version."""
        return self.decision in MOVES_ALIAS


@dataclass(frozen=True)
class RegisteredVersion:
    """What :func:`log_and_register` registered and decided.

    Attributes:
        model_name: the registered model.
        version: the new version number.
        is_champion: whether the new version carries the ``champion`` alias once the gate has run.
        comparison: the promotion gate's evidence and verdict.
        run_id: the MLflow run holding metrics, plots and the model.
        model_uri: ``models:/<name>/<version>``.
    """

    model_name: str
    version: str
    is_champion: bool
    comparison: GateComparison
    run_id: str
    model_uri: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values, small enough for an Airflow XCom."""
        return asdict(self)


def get_or_create_experiment(client, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment ``name``, created (or restored from deletion) if needed.

    Safe to call from several runs at once: losing the creation race means the experiment exists.
    """
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            experiment_id = client.create_experiment(name, artifact_location=artifact_location)
            logger.info("Created MLflow experiment %s (id %s)", name, experiment_id)
            return experiment_id
        except MlflowException:
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
        logger.warning("Restored deleted MLflow experiment %s (id %s)", name, experiment.experiment_id)
    return experiment.experiment_id


def log_and_register(
    result: TrainResult,
    *,
    model_name: str,
    tracking_uri: str,
    experiment_name: str,
    run_params: dict,
    extra_metrics: dict,
    tags: dict,
    valid_features: pd.DataFrame,
    valid_labels: pd.DataFrame,
    artifact_location: str | None = None,
    margin: float = 0.0,
    auto_promote: bool = True,
    promote_if_champion_unusable: bool = True,
    run_name: str | None = None,
    extra_artifacts: dict[str, dict] | None = None,
) -> RegisteredVersion:
    """Log one training run, register its model as ``challenger`` and run the promotion gate.

    Args:
        result: what :func:`training.train.train` returned.
        model_name: registered model name (``HOLDCAST_MODEL_NAME``).
        tracking_uri: MLflow tracking and registry URI.
        experiment_name: the experiment of the run; created on first use.
        run_params: caller's parameters (dataset, as-of date, DAG run id...), logged with the
            training parameters.
        extra_metrics: further metrics, e.g. ``oracle_any_pr_auc`` or ``rule_baseline_any_pr_auc``;
            those about PR-AUC are also tagged on the version.
        tags: tags of the run and of the new model version.
        valid_features: the validation window's features, the same frame the champion is scored on.
        valid_labels: their labels (``label_any``, ``label_<reason>``).
        artifact_location: artifact root of a newly created experiment; ``None`` for MLflow's default.
        margin: the challenger needs ``PR-AUC > champion's + margin`` to pass the gate (negative to
            tolerate a small drop).
        auto_promote: move ``champion`` when the gate passes (``HOLDCAST_AUTO_PROMOTE``); otherwise
            the verdict is recorded and a person moves the alias.
        promote_if_champion_unusable: let the gate pass when the champion cannot score the current
            features (it would fail at scoring anyway); otherwise keep it and leave the fix to a person.
        run_name: optional MLflow run name.
        extra_artifacts: ``{artifact path: JSON-able dict}`` logged in the run, e.g. the monitoring
            reference profile.

    Returns:
        The new version, whether it is champion now, and the gate's comparison.
    """
    import mlflow

    from training.evaluate import calibration_figure, evaluate_predictions, flatten_metrics, pr_curve_figure

    client = connect(tracking_uri)
    experiment_id = get_or_create_experiment(client, experiment_name, artifact_location)
    model = result.model
    if not valid_features.index.equals(result.split.valid_ids):
        logger.warning(
            "The %d validation order(s) given differ from the %d of the training's validation window; "
            "metrics and the gate use the ones given",
            len(valid_features),
            len(result.split.valid_ids),
        )
    valid_features = _model_columns(model.feature_columns, valid_features)
    predictions = model.predict_frame(valid_features, explain=False)
    metrics = evaluate_predictions(predictions, valid_labels, threshold=result.threshold)

    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        run_id = run.info.run_id
        mlflow.log_params(_run_params(result, run_params))
        mlflow.log_metrics(_finite({**flatten_metrics(metrics), **extra_metrics}))
        mlflow.log_dict(
            {
                "feature_columns": model.feature_columns,
                "categorical": model.categorical,
                "vocabularies": model.vocabularies,
            },
            "features.json",
        )
        mlflow.log_dict(model.describe(), "targets.json")
        for path, content in (extra_artifacts or {}).items():
            mlflow.log_dict(content, path)
        mlflow.log_figure(calibration_figure(predictions, valid_labels), "plots/calibration.png")
        mlflow.log_figure(pr_curve_figure(predictions, valid_labels), "plots/pr_curve.png")
        mlflow.set_tags({str(k): str(v) for k, v in tags.items()})
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            signature=model.signature(),
            input_example=model.input_example(valid_features),
            pip_requirements=_pip_requirements(),
        )

    challenger_pr_auc = metrics[GATE_TARGET][GATE_METRIC]
    version_tags = {
        **{str(k): str(v) for k, v in tags.items()},
        "run_id": run_id,
        "data_hash": result.data_hash,
        **{f"window.{k}": v for k, v in result.split.boundaries().items()},
        "feature_list": ",".join(model.feature_columns),
        "n_features": str(len(model.feature_columns)),
        **_metric_tags(metrics, extra_metrics),
        f"{GATE_TARGET}_{GATE_METRIC}": f"{challenger_pr_auc:.6f}",
    }
    # The version and its tags are created in one call: a version without its data hash cannot exist.
    version = str(mlflow.register_model(info.model_uri, model_name, tags=version_tags).version)
    logger.info("Registered %s version %s from run %s", model_name, version, run_id)

    comparison = complete_registration(
        client,
        model_name=model_name,
        tracking_uri=tracking_uri,
        version=version,
        run_id=run_id,
        challenger_pr_auc=challenger_pr_auc,
        valid_features=valid_features,
        valid_labels=valid_labels,
        margin=margin,
        auto_promote=auto_promote,
        promote_if_champion_unusable=promote_if_champion_unusable,
        threshold=result.threshold,
    )
    return RegisteredVersion(
        model_name=model_name,
        version=version,
        is_champion=champion_version(model_name, tracking_uri) == version,
        comparison=comparison,
        run_id=run_id,
        model_uri=f"models:/{model_name}/{version}",
    )


def complete_registration(
    client,
    *,
    model_name: str,
    tracking_uri: str,
    version: str,
    run_id: str,
    challenger_pr_auc: float,
    valid_features: pd.DataFrame,
    valid_labels: pd.DataFrame,
    margin: float,
    auto_promote: bool,
    promote_if_champion_unusable: bool,
    threshold: float,
) -> GateComparison:
    """Give a registered version the ``challenger`` alias, run the gate, record its verdict.

    Every step can be repeated: the alias is set again, the gate compares with whatever is champion
    now. The verdict is recorded on the run (metrics, tags) and last on the version (tags), so a
    version carrying ``gate.decision`` is known to be complete.
    """
    from mlflow.entities import Metric, RunTag

    client.set_registered_model_alias(model_name, CHALLENGER, version)
    comparison = _gate(
        client,
        model_name,
        tracking_uri,
        version,
        challenger_pr_auc,
        valid_features,
        valid_labels,
        margin=margin,
        auto_promote=auto_promote,
        promote_if_champion_unusable=promote_if_champion_unusable,
        threshold=threshold,
    )
    gate_metrics = _finite(
        {
            "gate_challenger_any_pr_auc": comparison.challenger_pr_auc,
            "gate_champion_any_pr_auc": comparison.champion_pr_auc,
            "gate_delta_any_pr_auc": None
            if comparison.champion_pr_auc is None
            else comparison.challenger_pr_auc - comparison.champion_pr_auc,
            "gate_margin": margin,
        }
    )
    gate_tags = {
        "gate.reason": comparison.reason,
        "gate.champion_version": comparison.champion_version or "",
        "gate.auto_promote": str(auto_promote).lower(),
        GATE_DECISION_TAG: comparison.decision,
    }
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, now, 0) for k, v in gate_metrics.items()],
        tags=[RunTag(k, v) for k, v in gate_tags.items()],
    )
    for key, value in gate_tags.items():  # the decision goes last: it marks the version complete
        client.set_model_version_tag(model_name, version, key, value)
    return comparison


def resume_registration(
    model_name: str,
    tracking_uri: str,
    version: str,
    *,
    valid_features: pd.DataFrame,
    valid_labels: pd.DataFrame,
    threshold: float,
    margin: float = 0.0,
    auto_promote: bool = True,
    promote_if_champion_unusable: bool = True,
) -> RegisteredVersion:
    """Finish a version whose registration stopped before its aliases and gate (no ``gate.decision``).

    The version is loaded from the registry and scored on the validation features to get the
    PR-AUC the gate needs, then :func:`complete_registration` runs as it would have.
    """
    import mlflow.pyfunc

    from training.evaluate import evaluate_predictions

    client = connect(tracking_uri)
    registered = client.get_model_version(model_name, version)
    model = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}")
    features = _model_columns(list(input_kinds(model)), valid_features)
    predictions = score(model, features, explain=False)
    pr_auc = evaluate_predictions(predictions, valid_labels, threshold=threshold)[GATE_TARGET][GATE_METRIC]
    logger.warning(
        "Version %s of %s was registered without its aliases (the run stopped); setting `%s` and "
        "running the gate now",
        version,
        model_name,
        CHALLENGER,
    )
    comparison = complete_registration(
        client,
        model_name=model_name,
        tracking_uri=tracking_uri,
        version=str(version),
        run_id=registered.run_id,
        challenger_pr_auc=pr_auc,
        valid_features=features,
        valid_labels=valid_labels,
        margin=margin,
        auto_promote=auto_promote,
        promote_if_champion_unusable=promote_if_champion_unusable,
        threshold=threshold,
    )
    return RegisteredVersion(
        model_name=model_name,
        version=str(version),
        is_champion=champion_version(model_name, tracking_uri) == str(version),
        comparison=comparison,
        run_id=registered.run_id,
        model_uri=f"models:/{model_name}/{version}",
    )


def _model_columns(columns: list[str], features: pd.DataFrame) -> pd.DataFrame:
    """The model's feature columns of ``features``, in its order; other columns (ids) are dropped.

    The champion is scored on the features this training used, which the pipeline now produces:
    columns that are not features must not make it look unusable.
    """
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise FeatureMismatchError(missing=missing, where="trained model")
    return features.loc[:, columns]


def _metric_tags(metrics: dict[str, dict[str, float]], extra_metrics: dict) -> dict[str, str]:
    """The headline metrics as version tags: any-hold decision metrics, PR-AUC per reason, the
    caller's PR-AUC figures (oracle, baselines, the model/oracle ratio)."""
    chosen = {
        f"{GATE_TARGET}_{k}": metrics[GATE_TARGET][k] for k in ("roc_auc", "brier", "precision", "recall")
    }
    chosen.update({f"{t}_pr_auc": m["pr_auc"] for t, m in metrics.items() if t != GATE_TARGET})
    chosen.update({k: v for k, v in extra_metrics.items() if "pr_auc" in k})
    return {f"metric.{k}": f"{v:.6f}" for k, v in _finite(chosen).items()}


def _gate(
    client,
    model_name: str,
    tracking_uri: str,
    version: str,
    challenger_pr_auc: float,
    valid_features: pd.DataFrame,
    valid_labels: pd.DataFrame,
    *,
    margin: float,
    auto_promote: bool,
    promote_if_champion_unusable: bool,
    threshold: float,
) -> GateComparison:
    """Compare the new version with the champion on the same features; move the alias if it wins and may."""
    from mlflow.exceptions import MlflowException

    from training.evaluate import evaluate_predictions

    def verdict(decision, champion, champion_pr_auc, reason):
        if decision in MOVES_ALIAS and not auto_promote:
            decision = AWAITING_PERSON
            reason += "; automatic promotion is off (HOLDCAST_AUTO_PROMOTE): a person moves `champion`"
        if decision in MOVES_ALIAS:
            client.set_registered_model_alias(model_name, CHAMPION, version)
        logger.info("Promotion gate for %s version %s: %s (%s)", model_name, version, decision, reason)
        return GateComparison(decision, version, challenger_pr_auc, champion, champion_pr_auc, margin, reason)

    current = champion_version(model_name, tracking_uri)
    if current is None:
        return verdict(FIRST_CHAMPION, None, None, "no champion yet: the first version takes the alias")
    if current == str(version):
        return verdict(ALREADY_CHAMPION, current, None, "the version already carries `champion`")

    try:
        champion_model, current = load_champion(model_name, tracking_uri)
        champion_scores = score(champion_model, valid_features, explain=False)
    except (FeatureMismatchError, MlflowException, ValueError) as err:
        logger.warning(
            "Champion %s version %s cannot score the current features: %s: %s",
            model_name,
            current,
            type(err).__name__,
            err,
        )
        reason = f"champion version {current} cannot score the current features ({type(err).__name__})"
        if promote_if_champion_unusable:
            return verdict(CHAMPION_UNUSABLE, current, None, reason)
        return verdict(KEPT_CHAMPION, current, None, reason + "; promotion of unusable champions is off")

    champion_metrics = evaluate_predictions(champion_scores, valid_labels, threshold=threshold)
    champion_pr_auc = champion_metrics[GATE_TARGET][GATE_METRIC]
    if math.isnan(challenger_pr_auc) or math.isnan(champion_pr_auc):
        reason = "PR-AUC is undefined on the validation labels (a single class); the champion stays"
        return verdict(KEPT_CHAMPION, current, champion_pr_auc, reason)
    needed = champion_pr_auc + margin
    # Strictly better: a tie (the same data and code trained twice) leaves the champion where it is.
    if challenger_pr_auc > needed:
        reason = (
            f"any-hold PR-AUC {challenger_pr_auc:.4f} > champion's {champion_pr_auc:.4f} + margin {margin}"
        )
        return verdict(PROMOTED, current, champion_pr_auc, reason)
    reason = f"any-hold PR-AUC {challenger_pr_auc:.4f} <= champion's {champion_pr_auc:.4f} + margin {margin}"
    return verdict(KEPT_CHAMPION, current, champion_pr_auc, reason)


def _run_params(result: TrainResult, run_params: dict) -> dict[str, Any]:
    """Caller's parameters, training settings, data window and hash, in MLflow's flat string form."""
    features = result.model.feature_columns
    params = {
        **{f"train.{k}": v for k, v in result.params.items()},
        **{f"window.{k}": v for k, v in result.split.boundaries().items()},
        "data_hash": result.data_hash,
        "n_fit": len(result.split.fit_ids),
        "n_calibration": len(result.split.calib_ids),
        "n_valid": len(result.split.valid_ids),
        "n_features": len(features),
        "categorical": ",".join(result.model.categorical),
        "threshold": result.threshold,
        **run_params,
    }
    # MLflow caps a parameter at 6000 characters; the full list is always in features.json.
    feature_list = ",".join(features)
    params["feature_list"] = (
        feature_list if len(feature_list) <= 6000 else feature_list[:5980] + ",...(see features.json)"
    )
    return {str(k): json.dumps(v) if isinstance(v, dict | list) else v for k, v in params.items()}


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    """Drop metrics that are missing or not finite: MLflow's UI charts them badly and they carry nothing."""
    out = {}
    for key, value in metrics.items():
        if value is None:
            continue
        value = float(value)
        if math.isfinite(value):
            out[str(key)] = value
    return out


def _pip_requirements() -> list[str]:
    """The packages the pyfunc needs, pinned: given, so MLflow does not load the model to infer them."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("mlflow", "lightgbm", "numpy", "pandas")]
