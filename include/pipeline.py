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

from include import config, runtime, warehouse

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
    runtime.tune_batch_memory()
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
    ``force``), so re-running an interval leaves the registry and its aliases as they were. A reused
    version whose registration stopped before its aliases (a crash after registering) is finished:
    it gets ``challenger`` and the gate runs. Analyst feedback labels, when their file exists,
    override the ERP's outcomes of the orders they name (see :func:`_merge_feedback_labels`).
    """
    runtime.tune_batch_memory()
    from features.build import CATEGORICAL_COLUMNS, FEATURE_COLUMNS
    from include import monitoring
    from include.canonical import HOLD_REASONS
    from include.decisions import load_policy
    from training.registry import log_and_register, resume_registration
    from training.train import data_hash, time_split, train

    path, snap_as_of = warehouse.latest_features_dir(as_of)
    features, labels, orders = _load_snapshot(path)
    trainable = labels.index[labels["trainable"]]
    if len(trainable) == 0:
        raise ValueError(f"feature snapshot {path} has no order with a known outcome to train on")
    x = features.loc[trainable, FEATURE_COLUMNS]
    y, feedback = _merge_feedback_labels(labels.loc[trainable])
    created = orders.loc[trainable, "created_at"]
    model_name = config.HOLDCAST_MODEL_NAME.get()
    tracking_uri = _mlflow_setup()
    # Precision and recall are reported where the policy starts to act: its lowest at-risk band.
    policy = load_policy(config.HOLDCAST_POLICY_FILE.get())
    gate_settings = {
        "margin": config.HOLDCAST_PROMOTION_MARGIN.get(),
        "auto_promote": config.HOLDCAST_AUTO_PROMOTE.get(),
    }
    # The same hash training records on the version: features, the label columns, creation times.
    label_columns = ["label_any", *(f"label_{r}" for r in HOLD_REASONS)]
    digest = data_hash(x, y[label_columns], created)
    existing = None if force else _version_trained_on(model_name, tracking_uri, digest)
    if existing is not None and not existing.pop("complete"):
        valid_ids = time_split(created).valid_ids
        resumed = resume_registration(
            model_name,
            tracking_uri,
            existing["model_version"],
            valid_features=x.loc[valid_ids],
            valid_labels=y.loc[valid_ids],
            threshold=policy.lowest_at_risk_min,
            **gate_settings,
        )
        existing.update(is_champion=resumed.is_champion, gate_decision=resumed.comparison.decision)
    if existing is not None:
        logger.info(
            "Version %s of %s was trained on this very data (hash %s); not training again",
            existing["model_version"],
            model_name,
            digest[:12],
        )
        return {"as_of": warehouse.as_of_label(snap_as_of), **existing}
    result = train(x, y, created, categorical=list(CATEGORICAL_COLUMNS), threshold=policy.lowest_at_risk_min)

    split = result.split
    extra = _baselines(orders, y, x, split.fit_ids.append(split.calib_ids), split.valid_ids)
    extra.update(_oracle(split.valid_ids, y))
    if extra.get("oracle_pr_auc"):
        extra["any_pr_auc_oracle_ratio"] = result.metrics["any"]["pr_auc"] / extra["oracle_pr_auc"]
    # Drift is measured against the newest slice of the training window (the calibration slice): the
    # whole window starts where customers have no history yet, so its counts would always look drifted.
    reference_x = x.loc[split.calib_ids]
    profile = monitoring.reference_profile(
        reference_x,
        result.model.predict_frame(reference_x, explain=False),
        categorical=CATEGORICAL_COLUMNS,
        window={"start": split.calib_start.isoformat(), "end": split.valid_start.isoformat()},
    )
    label = warehouse.as_of_label(snap_as_of)
    validation = monitoring.validation_summary(snap_as_of)
    dataset = config.HOLDCAST_DATASET.get()
    run_params = {
        "dataset": dataset,
        "features_as_of": label,
        "label_horizon_days": config.HOLDCAST_LABEL_HORIZON_DAYS.get(),
        "trainable_orders": len(trainable),
        "feedback_labels": feedback,
        "auto_promote": gate_settings["auto_promote"],
    }
    registered = log_and_register(
        result,
        model_name=model_name,
        tracking_uri=tracking_uri,
        experiment_name=f"holdcast-{dataset}",
        artifact_location=config.HOLDCAST_MLFLOW_ARTIFACTS.get(),
        run_params=run_params,
        extra_metrics=extra,
        tags={
            "holdcast.dataset": dataset,
            "holdcast.features_as_of": label,
            "holdcast.policy_version": policy.version,
            "validation.status": validation["status"],
            "validation.as_of": validation["as_of"],
            "validation.rows_in": validation["rows_in"],
            "validation.rows_quarantined": validation["rows_quarantined"],
            "validation.failed": ",".join(validation["failed"]),
        },
        valid_features=x.loc[split.valid_ids],
        valid_labels=y.loc[split.valid_ids],
        extra_artifacts={monitoring.PROFILE_ARTIFACT: profile},
        **gate_settings,
    )
    # A metric undefined on a single-class window is NaN (NaN != NaN): kept out of XCom's JSON.
    summary = {
        "as_of": label,
        "model_version": str(registered.version),
        "is_champion": bool(registered.is_champion),
        "gate_decision": registered.comparison.decision,
        "run_id": registered.run_id,
        "any_pr_auc": result.metrics["any"]["pr_auc"],
        **{k: v for k, v in extra.items() if k.endswith(("pr_auc", "oracle_ratio")) and v == v},
    }
    logger.info("Trained: %s", summary)
    return summary


FEEDBACK_LABELS_FILE = "feedback/labels.parquet"
"""Analyst feedback labels, under the dataset home; see :func:`_merge_feedback_labels`."""


def _merge_feedback_labels(labels):
    """The labels with analysts' verdicts laid over the ERP's outcomes, and how many were applied.

    The file ``<dataset home>/feedback/labels.parquet`` (written by whatever records analysts'
    decisions) holds one row per order: ``order_id`` (column or index), ``label_any`` (0 or 1) and
    optionally ``label_<reason>`` columns. An order released despite a high risk comes as
    ``label_any = 0``, which also clears its reasons; one held despite a low risk as ``label_any = 1``
    with its reason. Only orders the snapshot can train on are changed; others are ignored. Without
    the file, the labels are returned as they are.
    """
    import pandas as pd

    from include.canonical import HOLD_REASONS

    path = config.dataset_home() / FEEDBACK_LABELS_FILE
    if not path.exists():
        return labels, 0
    feedback = pd.read_parquet(path)
    if "order_id" in feedback.columns:
        feedback = feedback.set_index("order_id")
    feedback.index = feedback.index.astype(str)
    if "label_any" not in feedback.columns or not feedback["label_any"].isin([0, 1]).all():
        raise ValueError(f"feedback labels {path} need a label_any column of 0 and 1 for every order")
    feedback = feedback[~feedback.index.duplicated(keep="last")]
    ids = feedback.index.intersection(labels.index)
    out = labels.copy()
    reasons = [f"label_{r}" for r in HOLD_REASONS]
    cleared = ids[feedback.loc[ids, "label_any"].to_numpy() == 0]
    out.loc[cleared, reasons] = 0
    for column in ["label_any", *(c for c in reasons if c in feedback.columns)]:
        given = feedback.loc[ids, column].dropna()
        out.loc[given.index, column] = given.astype("int64").to_numpy()
    logger.info(
        "Applied %d analyst feedback label(s) from %s; %d named orders without a known outcome ignored",
        len(ids),
        path,
        len(feedback) - len(ids),
    )
    return out, len(ids)


def _version_trained_on(model_name: str, tracking_uri: str, digest: str) -> dict[str, Any] | None:
    """The registered version whose training data had this hash, if there is one.

    ``complete`` says whether its registration finished (its gate decision is recorded).
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from training.registry import GATE_DECISION_TAG

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
                "complete": GATE_DECISION_TAG in version.tags,
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
        # The ERP's static credit check: block when exposure, this order included, exceeds the limit.
        rule = evaluate.rule_baseline((utilisation.fillna(0) > 1.0).astype(float)).to_numpy()
        for name, value in evaluate.binary_metrics(y_valid, rule).items():
            out[f"baseline_credit_rule_{name}"] = float(value)
        # The same rule judged on the holds it is meant to catch: credit holds.
        y_credit = labels.loc[valid_ids, "label_credit"].to_numpy()
        for name, value in evaluate.binary_metrics(y_credit, rule).items():
            out[f"baseline_credit_rule_credit_{name}"] = float(value)
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
    out = {f"oracle_{k}": float(v) for k, v in metrics.items()}
    for column in truth.columns:
        reason = column.removeprefix("p_")
        if column.startswith("p_") and reason != "any" and f"label_{reason}" in labels.columns:
            true_p, y = truth.loc[common, column].to_numpy(), labels.loc[common, f"label_{reason}"].to_numpy()
            out[f"oracle_{reason}_pr_auc"] = evaluate.oracle_metrics(true_p, y)["pr_auc"]
    return out


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


def monitor_models(as_of: datetime) -> dict[str, Any]:
    """Drift, realized performance and validation of the interval; alerts and controls (see
    :mod:`include.monitoring`)."""
    from include import monitoring

    _mlflow_setup()
    return monitoring.monitor(as_of)


def score_open_orders(as_of: datetime, *, dry_run: bool = False) -> dict[str, Any]:
    """Score the interval's open orders with ``@champion``, decide by policy and write back to the ERP.

    All in one process; the ``holdcast_score`` DAG does the same in shards (:func:`plan_scoring`,
    :func:`score_shard`, :func:`write_back_shards`) and gives the same decisions.
    The ERP is the SQL database of ``HOLDCAST_ERP_CONN_ID`` or, with ``HOLDCAST_WRITEBACK_TARGET=sap``,
    SAP S/4HANA through ``HOLDCAST_SAP_CONN_ID`` (see :mod:`include.sap.writeback`).
    """
    runtime.tune_batch_memory()
    from include.decisions import load_policy
    from training.score import load_champion

    path = warehouse.features_dir(as_of)
    if not (path / "features.parquet").exists():
        raise FileNotFoundError(f"no feature snapshot for {warehouse.as_of_label(as_of)} at {path}")
    features, _, orders = _load_snapshot(path)
    open_ids = orders.index[orders["status"] == "open"]
    model_name = config.HOLDCAST_MODEL_NAME.get()
    policy = load_policy(config.HOLDCAST_POLICY_FILE.get())
    model, version = load_champion(model_name, _mlflow_setup())
    label = warehouse.as_of_label(as_of)
    decisions = _score_and_decide(features, orders, open_ids, model, model_name, version, policy, label)
    return _publish_decisions(decisions, label, model_name, version, policy, dry_run=dry_run)


def _score_and_decide(features, orders, open_ids, model, model_name, version, policy, label):
    """Scores and policy decisions of the orders ``open_ids``; an order's decision depends on its row only."""
    from features.build import FEATURE_COLUMNS
    from include import clearing, decision_log
    from include.decisions import decide
    from training.score import score

    # Explanations are costly; only orders that can land in an at-risk band need them.
    scores = score(
        model,
        features.loc[open_ids, FEATURE_COLUMNS],
        explain_min_p=policy.lowest_at_risk_min,
        explainer=config.HOLDCAST_EXPLAINER.get(),
    )
    as_of = warehouse.parse_as_of_label(label)
    decisions = decide(
        scores,
        features.loc[open_ids],
        policy,
        customer_of=orders.loc[open_ids, "customer_id"].astype(str),
        model_name=model_name,
        model_version=version,
        as_of=label,
        # Failed validation, changed source columns or the monitor's switch turn auto-release off.
        fail_safe=decision_log.fail_safe(as_of, policy),
        overdue=clearing.overdue_at(as_of),
    )
    return decisions


def _publish_decisions(decisions, label, model_name, version, policy, *, dry_run: bool) -> dict[str, Any]:
    """Store the interval's decisions in the warehouse and write them back to the ERP; return the summary.

    Both writes are idempotent (the warehouse rows of the interval are replaced; the ERP upsert skips a
    decision whose hash it already holds), so running this again after a failure writes nothing twice.
    """
    from include import decision_log
    from include.hooks import ErpSqlHook
    from include.writeback import write_back

    warehouse.replace_rows("decisions", decisions, where={"as_of": label})
    logged = decision_log.record(decisions, warehouse.parse_as_of_label(label))
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
        "auto_release": int(decisions["auto_release"].sum()),
        "validation_passed": logged["validation_passed"],
        "write_back": counts,
    }
    logger.info("Scored: %s", summary)
    return summary


# --- Sharded scoring: plan -> one task per shard -> one write-back ---------------------------------


def scores_dir(as_of: datetime) -> Path:
    """Where the shards of an interval's scoring run leave their decisions."""
    return warehouse.lake_path("scores", f"as_of={warehouse.as_of_label(as_of)}")


def shard_path(as_of: datetime, shard: int, shards: int) -> Path:
    return scores_dir(as_of) / f"shard-{shard:03d}-of-{shards:03d}.parquet"


def shard_slices(count: int, shards: int) -> list[tuple[int, int]]:
    """``[start, stop)`` positions of each shard in the list of open orders: contiguous, in order, near equal.

    Contiguous slices keep the open orders' order, so the shards put end to end are the unsharded run.
    """
    if shards <= 0:
        raise ValueError(f"shards must be a positive whole number, got {shards}")
    base, extra = divmod(count, shards)
    bounds, start = [], 0
    for i in range(shards):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def _open_ids(as_of: datetime):
    """The interval's open order ids in snapshot order, and a digest of them that names this snapshot."""
    import hashlib

    import pandas as pd

    path = warehouse.features_dir(as_of)
    if not (path / "orders.parquet").exists():
        raise FileNotFoundError(f"no feature snapshot for {warehouse.as_of_label(as_of)} at {path}")
    orders = pd.read_parquet(path / "orders.parquet", columns=["status"])
    open_ids = orders.index[orders["status"] == "open"]
    digest = hashlib.sha256("\n".join(open_ids.astype(str)).encode()).hexdigest()[:16]
    return open_ids, digest


def plan_scoring(as_of: datetime, *, shards: int | None = None) -> list[dict[str, Any]]:
    """Split the interval's open orders into shards and pin the model version every shard will use.

    Returns one small reference per shard for XCom (interval, shard number, shard count, model version,
    digest of the open orders): no data. The champion is resolved once here, so all shards score with
    the same version even if someone moves the alias during the run. Shard files of an earlier run of
    the interval are removed, so only this run's shards can be found.

    Raises:
        NoChampionError: no version of the model carries the ``champion`` alias.
        FileNotFoundError: the interval has no feature snapshot.
    """
    import shutil

    from training.errors import NoChampionError
    from training.score import champion_version

    open_ids, digest = _open_ids(as_of)
    wanted = shards or config.HOLDCAST_SCORE_SHARDS.get()
    # Never more shards than orders; no open order at all still makes one (empty) shard.
    count = max(1, min(wanted, len(open_ids)))
    model_name = config.HOLDCAST_MODEL_NAME.get()
    version = champion_version(model_name, _mlflow_setup())
    if version is None:
        raise NoChampionError(model_name)
    shutil.rmtree(scores_dir(as_of), ignore_errors=True)
    label = warehouse.as_of_label(as_of)
    plan = [
        {
            "as_of": label,
            "shard": i,
            "shards": count,
            "model_name": model_name,
            "model_version": version,
            "open_orders": len(open_ids),
            "snapshot": digest,
        }
        for i in range(count)
    ]
    logger.info(
        "Scoring %s: %d open order(s) in %d shard(s) with %s version %s",
        label,
        len(open_ids),
        count,
        model_name,
        version,
    )
    return plan


def _check_snapshot(ref: dict[str, Any], open_ids, digest: str) -> None:
    if digest != ref["snapshot"] or len(open_ids) != ref["open_orders"]:
        raise RuntimeError(
            f"the feature snapshot of {ref['as_of']} changed during scoring (planned "
            f"{ref['open_orders']} open orders, digest {ref['snapshot']}; found {len(open_ids)}, {digest}); "
            "run holdcast_score again for the interval"
        )


def score_shard(ref: dict[str, Any]) -> dict[str, Any]:
    """Score and decide one shard of :func:`plan_scoring`; write its decisions to one file atomically.

    The file appears whole or not at all (written aside, then renamed), so a shard killed half way
    leaves no output, and a shard run again replaces its file: never a partial or a double shard.

    Returns:
        A reference for XCom: the shard, its file, its row and at-risk counts.
    """
    runtime.tune_batch_memory()
    import mlflow.pyfunc

    from include.decisions import load_policy
    from training.score import connect

    as_of = warehouse.parse_as_of_label(ref["as_of"])
    open_ids, digest = _open_ids(as_of)
    _check_snapshot(ref, open_ids, digest)
    start, stop = shard_slices(len(open_ids), ref["shards"])[ref["shard"]]
    ids = open_ids[start:stop]
    features, _, orders = _load_snapshot(warehouse.features_dir(as_of))
    policy = load_policy(config.HOLDCAST_POLICY_FILE.get())
    model_name, version = ref["model_name"], ref["model_version"]
    connect(_mlflow_setup())
    model = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}")
    decisions = _score_and_decide(features, orders, ids, model, model_name, version, policy, ref["as_of"])
    path = warehouse.write_parquet(decisions, shard_path(as_of, ref["shard"], ref["shards"]))
    out = {
        "as_of": ref["as_of"],
        "shard": ref["shard"],
        "shards": ref["shards"],
        "path": str(path),
        "rows": len(decisions),
        "at_risk": int(decisions["at_risk"].sum()),
        "model_name": model_name,
        "model_version": version,
    }
    logger.info("Scored shard %d of %d: %s", ref["shard"] + 1, ref["shards"], out)
    return out


def gather_shards(refs: Iterable[dict[str, Any]]):
    """The decisions of every shard of one run, end to end in open-order order, checked to be complete.

    Raises:
        ValueError: a shard is missing, repeated or from another interval or shard count; a shard file is
            missing; or the shards together do not hold each open order exactly once.
    """
    import pandas as pd

    refs = sorted(refs, key=lambda r: r["shard"])
    if not refs:
        raise ValueError("no scoring shard to gather")
    label, count = refs[0]["as_of"], refs[0]["shards"]
    if [r["shard"] for r in refs] != list(range(count)) or {(r["as_of"], r["shards"]) for r in refs} != {
        (label, count)
    }:
        got = [(r["as_of"], r["shard"], r["shards"]) for r in refs]
        raise ValueError(
            f"expected shards 0..{count - 1} of {count} for {label}, got (as_of, shard, of) {got}"
        )
    as_of = warehouse.parse_as_of_label(label)
    frames = []
    for ref in refs:
        path = shard_path(as_of, ref["shard"], count)
        if not path.exists():
            raise ValueError(
                f"shard {ref['shard']} of {count} for {label} has no output at {path}; run that shard again"
            )
        frames.append(pd.read_parquet(path))
    decisions = pd.concat(frames, ignore_index=True)
    open_ids, _ = _open_ids(as_of)
    if (
        not decisions["order_id"]
        .astype(str)
        .reset_index(drop=True)
        .equals(pd.Series(open_ids.astype(str), name="order_id"))
    ):
        repeated = int(decisions["order_id"].duplicated().sum())
        missing = len(set(open_ids.astype(str)) - set(decisions["order_id"].astype(str)))
        raise ValueError(
            f"the shards of {label} do not hold each open order once, in order: {len(decisions)} decision(s) "
            f"for {len(open_ids)} open order(s), {repeated} repeated, {missing} missing; "
            "run holdcast_score again for the interval"
        )
    return decisions


def write_back_shards(refs: Iterable[dict[str, Any]], *, dry_run: bool = False) -> dict[str, Any]:
    """Gather the shards (see :func:`gather_shards`), store the decisions and write them back once."""
    from include.decisions import load_policy

    refs = list(refs)
    decisions = gather_shards(refs)
    policy = load_policy(config.HOLDCAST_POLICY_FILE.get())
    pinned = {(r["model_name"], str(r["model_version"])) for r in refs}
    if len(pinned) != 1 or not decisions["model_version"].eq(next(iter(pinned))[1]).all():
        raise ValueError(
            f"the shards of {refs[0]['as_of']} were not all scored by one model version: {pinned}"
        )
    model_name, version = pinned.pop()
    summary = _publish_decisions(decisions, refs[0]["as_of"], model_name, version, policy, dry_run=dry_run)
    return {**summary, "shards": len(refs)}
