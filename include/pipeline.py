"""The steps of the main job, one function per DAG task.

Each step reads the partition of its interval, writes its own, and returns a small summary (ids,
counts, paths) for XCom: never a data frame. DAG files only call these.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include import config, warehouse

logger = logging.getLogger(__name__)

ORDER_COLUMNS = ["customer_id", "created_at", "status", "segment", "payment_method"]


def resolve_as_of(logical_date: datetime | None, asset_extras: Iterable[dict[str, Any]] = ()) -> datetime:
    """The interval a run works on.

    That is the newest ``as_of`` its triggering asset events carry, else its logical date:
    asset-triggered runs have no logical date in Airflow 3; scheduled and manual runs do.
    """
    labels = [extra["as_of"] for extra in asset_extras if extra and extra.get("as_of")]
    if labels:
        return max(warehouse.parse_as_of_label(label) for label in labels)
    if logical_date is None:
        raise ValueError("run has neither a logical date nor an asset event carrying 'as_of'")
    return logical_date.astimezone(UTC)


def ingest_source(source: str, as_of: datetime) -> dict[str, Any]:
    from include import ingest

    return ingest.ingest_source(source, as_of)


def publish_canonical(as_of: datetime) -> dict[str, Any]:
    from include import ingest

    counts = ingest.publish(as_of)
    return {"as_of": warehouse.as_of_label(as_of), "rows": counts}


def should_announce(run_type: str, announce_backfill: bool) -> tuple[bool, str]:
    """Whether an ingest run emits the canonical-tables asset event (which rebuilds features and re-scores).

    Airflow 3 emits one event per successful run, so a 90-day backfill would otherwise retrain the
    features and re-score 90 times. A backfill announces only when asked.
    """
    if "backfill" in run_type.lower() and not announce_backfill:
        return (
            False,
            "backfill run: canonical tables rebuilt, downstream not triggered (announce_backfill=false)",
        )
    return True, "announced"


def build_features(as_of: datetime) -> dict[str, Any]:
    """Point-in-time features and labels for every order of the interval's canonical snapshot."""
    from features.build import build_order_features
    from features.labels import build_labels

    tables = warehouse.read_canonical(as_of)
    orders = tables["orders"]
    if orders.empty:
        from include.errors import MissingSourceError

        raise MissingSourceError(
            f"no canonical orders for {warehouse.as_of_label(as_of)}; "
            "run holdcast_ingest for that interval first"
        )
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


def _mlflow_setup() -> str:
    import os

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = config.MLFLOW_TRACKING_URI.get()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return uri


def train_model(as_of: datetime, *, force: bool = False) -> dict[str, Any]:
    """Train on the newest feature snapshot at or before ``as_of``, log to MLflow, register, run the gate.

    A version already trained on exactly this data is reused rather than trained again (unless
    ``force``), so re-running an interval leaves the registry and its aliases as they were.
    """
    from features.build import CATEGORICAL_COLUMNS, FEATURE_COLUMNS
    from include.canonical import HOLD_REASONS
    from include.decisions import load_policy
    from training.registry import log_and_register
    from training.train import data_hash, train

    path, snap_as_of = warehouse.latest_features_dir(as_of)
    features, labels, orders = _load_snapshot(path)
    trainable = labels.index[labels["trainable"]]
    if len(trainable) == 0:
        raise ValueError(f"feature snapshot {path} has no order with a known outcome to train on")
    x = features.loc[trainable, FEATURE_COLUMNS]
    y = labels.loc[trainable]
    created = orders.loc[trainable, "created_at"]
    model_name = config.HOLDCAST_MODEL_NAME.get()
    tracking_uri = _mlflow_setup()
    # The same hash training records on the version: features, the label columns, creation times.
    label_columns = ["label_any", *(f"label_{r}" for r in HOLD_REASONS)]
    digest = data_hash(x, y[label_columns], created)
    existing = None if force else _version_trained_on(model_name, tracking_uri, digest)
    if existing is not None:
        logger.info(
            "Version %s of %s was trained on this very data (hash %s); not training again",
            existing["model_version"],
            model_name,
            digest[:12],
        )
        return {"as_of": warehouse.as_of_label(snap_as_of), **existing}
    # Precision and recall are reported where the policy starts to act: its lowest at-risk band.
    policy = load_policy(config.HOLDCAST_POLICY_FILE.get())
    result = train(x, y, created, categorical=list(CATEGORICAL_COLUMNS), threshold=policy.lowest_at_risk_min)

    split = result.split
    extra = _baselines(orders, y, x, split.fit_ids.append(split.calib_ids), split.valid_ids)
    extra.update(_oracle(split.valid_ids, y))
    label = warehouse.as_of_label(snap_as_of)
    dataset = config.HOLDCAST_DATASET.get()
    run_params = {
        "dataset": dataset,
        "features_as_of": label,
        "label_horizon_days": config.HOLDCAST_LABEL_HORIZON_DAYS.get(),
        "trainable_orders": len(trainable),
    }
    registered = log_and_register(
        result,
        model_name=model_name,
        tracking_uri=tracking_uri,
        margin=config.HOLDCAST_PROMOTION_MARGIN.get(),
        experiment_name=f"holdcast-{dataset}",
        artifact_location=config.HOLDCAST_MLFLOW_ARTIFACTS.get(),
        run_params=run_params,
        extra_metrics=extra,
        tags={
            "holdcast.dataset": dataset,
            "holdcast.features_as_of": label,
            "holdcast.policy_version": policy.version,
        },
        valid_features=x.loc[split.valid_ids],
        valid_labels=y.loc[split.valid_ids],
    )
    summary = {
        "as_of": label,
        "model_version": str(registered.version),
        "is_champion": bool(registered.is_champion),
        "run_id": registered.run_id,
        "any_pr_auc": result.metrics["any"]["pr_auc"],
        **{k: v for k, v in extra.items() if k.endswith("pr_auc")},
    }
    logger.info("Trained: %s", summary)
    return summary


def _version_trained_on(model_name: str, tracking_uri: str, digest: str) -> dict[str, Any] | None:
    """The registered version whose training data had this hash, if there is one."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        champion = client.get_registered_model(model_name).aliases.get("champion")
    except MlflowException:
        return None  # no such model yet
    for version in client.search_model_versions(f"name = '{model_name}'"):
        if version.tags.get("data_hash") == digest:
            return {
                "model_version": str(version.version),
                "is_champion": str(champion) == str(version.version),
                "run_id": version.run_id,
                "reused": True,
            }
    return None


def _baselines(orders, labels, features, train_ids, valid_ids) -> dict[str, float]:
    """Simple baselines on the same validation window as the model.

    - the hold rate of the order's customer segment and payment method in the training window;
    - the ERP's static credit rule (exposure over the credit limit), where credit data exists.
    """
    from training import evaluate

    y_valid = labels.loc[valid_ids, "label_any"].to_numpy()
    train_frame = orders.loc[train_ids].assign(label_any=labels.loc[train_ids, "label_any"].to_numpy())
    rate = evaluate.group_rate_baseline(
        train_frame, orders.loc[valid_ids], ["segment", "payment_method"], "label_any"
    )
    out = {
        f"baseline_segment_payment_{name}": float(value)
        for name, value in evaluate.binary_metrics(y_valid, rate.to_numpy()).items()
    }
    utilisation = features.loc[valid_ids, "utilisation"] if "utilisation" in features.columns else None
    if utilisation is not None and utilisation.notna().any():
        rule = evaluate.rule_baseline((utilisation.fillna(0) > 1.0).astype(float))
        for name, value in evaluate.binary_metrics(y_valid, rule.to_numpy()).items():
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
    """Score the interval's open orders with ``@champion``, decide by policy and write back to the ERP.

    The ERP is the SQL database of ``HOLDCAST_ERP_CONN_ID`` or, with ``HOLDCAST_WRITEBACK_TARGET=sap``,
    SAP S/4HANA through ``HOLDCAST_SAP_CONN_ID`` (see :mod:`include.sap.writeback`).
    """
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
    policy = load_policy(config.HOLDCAST_POLICY_FILE.get())
    model, version = load_champion(model_name, _mlflow_setup())
    # Explanations are costly; only orders that can land in an at-risk band need them.
    scores = score(model, features.loc[open_ids, FEATURE_COLUMNS], explain_min_p=policy.lowest_at_risk_min)
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
    if config.HOLDCAST_WRITEBACK_TARGET.get() == "sap":
        from include.sap.writeback import write_back_to_sap

        counts = write_back_to_sap(decisions, dry_run=dry_run, run_id=f"score-{label}")
    else:
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
