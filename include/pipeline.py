"""The steps of the main job, one function per DAG task.

Each step reads the partition of its interval, writes its own, and returns a small summary (ids,
counts, paths) for XCom: never a data frame. DAG files only call these.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from include import config, warehouse

logger = logging.getLogger(__name__)

ORDER_COLUMNS = ["customer_id", "created_at", "status", "segment", "payment_method"]


def resolve_as_of(logical_date: datetime | None, asset_extras: Iterable[dict[str, Any]] = ()) -> datetime:
    """The interval a run works on: the newest ``as_of`` its triggering asset events carry, else its logical date.

    Asset-triggered runs have no logical date in Airflow 3; scheduled and manual runs do.
    """
    labels = [extra["as_of"] for extra in asset_extras if extra and extra.get("as_of")]
    if labels:
        return max(warehouse.parse_as_of_label(label) for label in labels)
    if logical_date is None:
        raise ValueError("run has neither a logical date nor an asset event carrying 'as_of'")
    return logical_date.astimezone(timezone.utc)


def ingest_source(source: str, as_of: datetime) -> dict[str, Any]:
    from include import ingest

    return ingest.ingest_source(source, as_of)


def publish_canonical(as_of: datetime) -> dict[str, Any]:
    from include import ingest

    counts = ingest.publish(as_of)
    return {"as_of": warehouse.as_of_label(as_of), "rows": counts}


def build_features(as_of: datetime) -> dict[str, Any]:
    """Point-in-time features and labels for every order of the interval's canonical snapshot."""
    from features.build import build_order_features
    from features.labels import build_labels

    tables = warehouse.read_canonical(as_of)
    orders = tables["orders"]
    features = build_order_features(tables)
    labels = build_labels(orders, tables["holds"], as_of, config.HOLDCAST_LABEL_HORIZON_DAYS.get())
    out = warehouse.features_dir(as_of)
    warehouse.write_parquet(features, out / "features.parquet")
    warehouse.write_parquet(labels, out / "labels.parquet")
    warehouse.write_parquet(orders.set_index("order_id")[ORDER_COLUMNS], out / "orders.parquet")
    summary = {
        "as_of": warehouse.as_of_label(as_of),
        "path": str(out),
        "orders": len(orders),
        "open": int((orders["status"] == "open").sum()),
        "trainable": int(labels["complete"].sum()),
        "features": len(features.columns),
    }
    logger.info("Built features: %s", summary)
    return summary


def _load_snapshot(path: Path) -> tuple[Any, Any, Any]:
    import pandas as pd

    return (
        pd.read_parquet(path / "features.parquet"),
        pd.read_parquet(path / "labels.parquet"),
        pd.read_parquet(path / "orders.parquet"),
    )


def _data_hash(path: Path) -> str:
    digest = hashlib.sha256()
    for name in ("features.parquet", "labels.parquet"):
        digest.update((path / name).read_bytes())
    return digest.hexdigest()[:16]


def _mlflow_setup() -> str:
    import os

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = config.MLFLOW_TRACKING_URI.get()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return uri


def train_model(as_of: datetime) -> dict[str, Any]:
    """Train on the newest feature snapshot at or before ``as_of``, log to MLflow, register, run the gate."""
    from features.build import CATEGORICAL_COLUMNS, FEATURE_COLUMNS
    from training.registry import log_and_register
    from training.train import train

    path, snap_as_of = warehouse.latest_features_dir(as_of)
    features, labels, orders = _load_snapshot(path)
    trainable = labels.index[labels["complete"] & (orders.loc[labels.index, "status"] == "closed")]
    if len(trainable) == 0:
        raise ValueError(f"feature snapshot {path} has no order with a known outcome to train on")
    x = features.loc[trainable, FEATURE_COLUMNS]
    y = labels.loc[trainable]
    created = orders.loc[trainable, "created_at"]
    result = train(x, y, created, categorical=list(CATEGORICAL_COLUMNS))

    valid_ids = result.valid_index
    extra = _baselines(result, orders.loc[valid_ids], orders.loc[result.train_index], y, x)
    extra.update(_oracle(valid_ids, y))
    label = warehouse.as_of_label(snap_as_of)
    tags = {
        "holdcast.dataset": config.HOLDCAST_DATASET.get(),
        "holdcast.features_as_of": label,
        "holdcast.data_hash": _data_hash(path),
    }
    run_params = {
        "dataset": config.HOLDCAST_DATASET.get(),
        "features_as_of": label,
        "train_rows": len(result.train_index),
        "valid_rows": len(valid_ids),
        "label_horizon_days": config.HOLDCAST_LABEL_HORIZON_DAYS.get(),
        "data_hash": tags["holdcast.data_hash"],
    }
    registered = log_and_register(
        result,
        model_name=config.HOLDCAST_MODEL_NAME.get(),
        tracking_uri=_mlflow_setup(),
        experiment_name=f"holdcast-{config.HOLDCAST_DATASET.get()}",
        artifact_location=config.HOLDCAST_MLFLOW_ARTIFACTS.get(),
        run_params=run_params,
        extra_metrics=extra,
        tags=tags,
        valid_features=x.loc[valid_ids],
        valid_labels=y.loc[valid_ids],
    )
    summary = {
        "as_of": label,
        "model_version": str(registered.version),
        "is_champion": bool(registered.is_champion),
        "run_id": registered.run_id,
        "valid_pr_auc": result.metrics["any"]["pr_auc"],
        **{k: v for k, v in extra.items() if isinstance(v, float)},
    }
    logger.info("Trained: %s", summary)
    return summary


def _baselines(result, valid_orders, train_orders, labels, features) -> dict[str, float]:
    """Baselines on the same validation window: a group hold rate, and the static credit rule if it applies."""
    from training import evaluate

    y_valid = labels.loc[result.valid_index, "label_any"]
    out: dict[str, float] = {}
    train_frame = train_orders.assign(label_any=labels.loc[result.train_index, "label_any"].to_numpy())
    rate = evaluate.group_rate_baseline(train_frame, valid_orders, ["segment", "payment_method"], "label_any")
    for name, value in evaluate.binary_metrics(y_valid.to_numpy(), rate.to_numpy()).items():
        out[f"baseline_segment_payment_{name}"] = float(value)
    if "utilisation" in features.columns and features.loc[result.valid_index, "utilisation"].notna().any():
        rule = (features.loc[result.valid_index, "utilisation"].fillna(0) > 1.0).astype(float)
        for name, value in evaluate.binary_metrics(y_valid.to_numpy(), rule.to_numpy()).items():
            out[f"baseline_credit_rule_{name}"] = float(value)
    return out


def _oracle(valid_ids, labels) -> dict[str, float]:
    """On generated data, the PR-AUC the generator's true probabilities reach on the validation window."""
    truth = _read_truth()
    if truth is None:
        return {}
    from training import evaluate

    common = valid_ids.intersection(truth.index)
    if len(common) == 0:
        return {}
    metrics = evaluate.oracle_metrics(
        truth.loc[common, "p_any"].to_numpy(), labels.loc[common, "label_any"].to_numpy()
    )
    return {f"oracle_{k}": float(v) for k, v in metrics.items()}


def _read_truth():
    """The demo generator's true hold probabilities, when the ERP is the demo ERP; else None."""
    if config.HOLDCAST_DATASET.get() != "demo":
        return None
    import pandas as pd
    from sqlalchemy import inspect

    from include.hooks import ErpSqlHook

    engine = ErpSqlHook(config.HOLDCAST_ERP_CONN_ID.get()).get_engine()
    if not inspect(engine).has_table("truth_order_hold_probabilities"):
        return None
    with engine.connect() as conn:
        truth = pd.read_sql("SELECT * FROM truth_order_hold_probabilities", conn)
    return truth.set_index("order_id")


def score_open_orders(as_of: datetime, *, dry_run: bool = False) -> dict[str, Any]:
    """Score the interval's open orders with ``@champion``, decide by policy and write back to the ERP."""
    from features.build import FEATURE_COLUMNS
    from include.decisions import decide, load_policy
    from include.hooks import ErpSqlHook
    from include.writeback import write_back
    from training.score import load_champion, score

    path = warehouse.features_dir(as_of)
    if not (path / "features.parquet").exists():
        raise FileNotFoundError(f"no feature snapshot for {warehouse.as_of_label(as_of)} at {path}")
    features, _, orders = _load_snapshot(path)
    open_ids = orders.index[orders["status"] == "open"]
    model_name = config.HOLDCAST_MODEL_NAME.get()
    model, version = load_champion(model_name, _mlflow_setup())
    scores = score(model, features.loc[open_ids, FEATURE_COLUMNS])
    policy = load_policy(config.HOLDCAST_POLICY_FILE.get())
    label = warehouse.as_of_label(as_of)
    decisions = decide(
        scores,
        features.loc[open_ids],
        policy,
        customer_of=orders.loc[open_ids, "customer_id"].astype(str).to_dict(),
        model_name=model_name,
        model_version=version,
        as_of=label,
    )
    warehouse.replace_rows("decisions", decisions, where={"as_of": label})
    counts = write_back(
        ErpSqlHook(config.HOLDCAST_ERP_CONN_ID.get()).get_engine(), decisions, dry_run=dry_run
    )
    at_risk = decisions[decisions["at_risk"]]
    by_reason: dict[str, int] = {}
    for reasons in at_risk["reasons"]:
        top = json.loads(reasons)
        if top:
            by_reason[top[0][0]] = by_reason.get(top[0][0], 0) + 1
    summary = {
        "as_of": label,
        "scored": len(decisions),
        "at_risk": len(at_risk),
        "at_risk_by_reason": by_reason,
        "model_name": model_name,
        "model_version": str(version),
        "policy_version": policy.version,
        "write_back": counts,
    }
    logger.info("Scored: %s", summary)
    return summary
