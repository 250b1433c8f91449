"""Load the champion model from the MLflow registry and score feature frames with it.

The champion is whatever version carries the ``champion`` alias, set by the promotion gate of
:mod:`training.registry` or by a person in the MLflow UI; scoring picks it up on its next run without a
deploy. Features are checked against the model's input schema before scoring, so a feature change that
the champion does not know about fails with the columns named instead of deep inside MLflow.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from training.errors import FeatureMismatchError, ModelSignatureError, NoChampionError

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"


def connect(tracking_uri: str):
    """Point this process's MLflow tracking and registry at ``tracking_uri`` and return a client.

    The URI is set process-wide because ``mlflow.pyfunc`` resolves ``models:/`` URIs and logs models
    through the global setting; a task process uses one store, so this is the honest place to set it.
    """
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def champion_version(model_name: str, tracking_uri: str) -> str | None:
    """The version number carrying the ``champion`` alias, or ``None`` when there is none."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    client = connect(tracking_uri)
    try:
        registered = client.get_registered_model(model_name)
    except MlflowException as err:
        if err.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            logger.debug("Registered model %s does not exist yet", model_name)
            return None
        raise
    version = registered.aliases.get(CHAMPION)
    return None if version is None else str(version)


def load_champion(model_name: str, tracking_uri: str) -> tuple[Any, str]:
    """Load the version of ``model_name`` that carries the ``champion`` alias.

    The alias is resolved once and that exact version is loaded (``models:/<name>/<version>``, the
    same model ``models:/<name>@champion`` names), so the version returned is the one loaded even if
    someone moves the alias meanwhile.

    Args:
        model_name: the registered model name.
        tracking_uri: the MLflow tracking (and registry) URI.

    Returns:
        The loaded ``mlflow.pyfunc`` model and its version number as a string.

    Raises:
        NoChampionError: the model does not exist or no version carries the alias.
    """
    import mlflow.pyfunc

    version = champion_version(model_name, tracking_uri)
    if version is None:
        raise NoChampionError(model_name)
    model = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}")
    logger.info("Loaded %s version %s (alias %s)", model_name, version, CHAMPION)
    return model, version


def input_kinds(model) -> dict[str, str]:
    """Feature column -> ``string`` or ``double``, in the model's order: from a pyfunc's input schema
    or a HoldRiskModel itself.

    Raises:
        ModelSignatureError: a pyfunc logged without an input signature.
    """
    if hasattr(model, "feature_columns"):
        categorical = set(model.categorical)
        return {c: "string" if c in categorical else "double" for c in model.feature_columns}
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        source = getattr(model.metadata, "model_uri", None) or "the model"
        raise ModelSignatureError(source)
    return {spec.name: getattr(spec.type, "name", str(spec.type)) for spec in schema.inputs}


def input_columns(model) -> list[str]:
    """The feature columns a model expects, in its order (see :func:`input_kinds`)."""
    return list(input_kinds(model))


def _type_problem(values: pd.Series, kind: str) -> str | None:
    """Why ``values`` cannot be read as a model input of ``kind``, or None when they can.

    Numbers where the model expects a category would be looked up as text ("3.0") and silently scored
    as unseen; text where it expects a number cannot be converted. Both are refused. A column with no
    value at all is fine either way: it reads as missing.
    """
    if values.isna().all():
        return None
    dtype = values.dtype
    if kind == "string":
        if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            return f"model expects text categories, frame has {dtype}"
        return None
    if kind == "double":
        if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            return None
        try:
            values.to_numpy(dtype="float64", na_value=float("nan"))
        except (TypeError, ValueError):
            return f"model expects numbers, frame has {dtype} holding text"
    return None


def check_features(model, features: pd.DataFrame) -> list[str]:
    """Check that ``features`` has exactly the model's input columns, of readable types.

    Returns:
        The model's columns in the model's order: scoring takes columns by name, never by position.

    Raises:
        FeatureMismatchError: naming the columns the model needs but the frame lacks, the columns
            the frame has but the model was not trained on, and the columns whose values cannot be
            read as the model's input type.
        ModelSignatureError: the model carries no input signature to check against.
    """
    kinds = input_kinds(model)
    missing = [c for c in kinds if c not in features.columns]
    extra = [c for c in features.columns if c not in kinds]
    wrong = {
        c: problem
        for c, kind in kinds.items()
        if c in features.columns and (problem := _type_problem(features[c], kind)) is not None
    }
    if missing or extra or wrong:
        raise FeatureMismatchError(missing=missing, extra=extra, wrong_type=wrong)
    return list(kinds)


def conform_to_schema(model, features: pd.DataFrame) -> pd.DataFrame:
    """Cast features to the dtypes of a pyfunc's input schema: text for ``string``, float64 for ``double``.

    MLflow's schema enforcement refuses a pandas ``category`` column for a ``string`` input and nullable
    integer columns for ``double``; the model encodes categories by value, so casting loses nothing.
    """
    import numpy as np

    kinds = {spec.name: getattr(spec.type, "name", None) for spec in model.metadata.get_input_schema().inputs}
    out = {}
    for col in features.columns:
        values = features[col]
        if kinds.get(col) == "string":
            out[col] = values.astype("string")
        elif kinds.get(col) == "double":
            try:
                out[col] = values.to_numpy(dtype="float64", na_value=np.nan)
            except (TypeError, ValueError) as err:
                raise ValueError(f"feature {col!r} must be numeric (dtype {values.dtype}): {err}") from err
        else:
            out[col] = values
    return pd.DataFrame(out, index=features.index)


def score(
    model,
    features: pd.DataFrame,
    *,
    explain: bool = True,
    explain_min_p: float = 0.0,
    explainer: str = "path",
) -> pd.DataFrame:
    """Score orders with a loaded model (a pyfunc or an in-memory HoldRiskModel).

    Args:
        model: from :func:`load_champion`, or a :class:`training.model.HoldRiskModel`.
        features: one row per order, index ``order_id``, exactly the model's feature columns.
        explain: compute ``top_factors``; without it they are empty lists and scoring is much cheaper.
        explain_min_p: explain only orders whose ``p_any`` reaches this (e.g. the lowest policy
            threshold); the others get an empty list.
        explainer: ``path`` (path attributions) or ``shap`` (exact TreeSHAP); see
            :meth:`training.model.HoldRiskModel.contributions`. A model logged before this option
            existed ignores it and explains with its default.

    Returns:
        Index ``order_id``; ``p_any``, ``p_<reason>`` per hold reason, ``top_factors`` (JSON text).

    Raises:
        FeatureMismatchError: the feature columns differ from the model's input schema.
    """
    columns = check_features(model, features)
    options = {"explain": explain, "explain_min_p": float(explain_min_p), "explainer": explainer}
    if hasattr(model, "predict_frame"):
        out = model.predict_frame(features[columns], **options)
    else:
        params = options if model.metadata.get_params_schema() is not None else None
        out = model.predict(conform_to_schema(model, features[columns]), params=params)
    out = pd.DataFrame(out)
    if len(out) != len(features):
        raise ValueError(f"model returned {len(out)} row(s) for {len(features)} order(s)")
    # Schema enforcement may rebuild the frame; the order ids are put back by position.
    out.index = features.index.rename("order_id")
    logger.info("Scored %d order(s)", len(out))
    return out
