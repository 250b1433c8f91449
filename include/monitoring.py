"""Watch the champion after it ships: drift, realized performance, validation, and the auto-release switch.

Every day the monitor compares what the champion sees now with what it was trained on, measures how
its past decisions turned out once their outcomes are known, and reads the interval's validation
reports. Beyond a threshold it alerts, switches auto-release off and asks for a retraining.

- **Drift** is the population stability index (PSI) of each feature and of each score between the
  newest slice of the champion's training window (its calibration slice, the orders it was last
  fitted and calibrated on) and the orders created in the last ``HOLDCAST_MONITOR_WINDOW_DAYS``. The
  whole window would not do: it starts where customers have no history yet, so counts of earlier
  invoices and holds always look drifted (on the demo, 10 features above 0.25 on day one; none
  against the calibration slice). The reference is a *profile* (bin edges and shares) that training
  logs next to the model as ``monitoring/reference_profile.json``, so the monitor never needs the
  old snapshot.
  PSI = sum over bins of (current - reference) * ln(current / reference); by the usual reading,
  below 0.1 nothing moved, 0.1-0.25 something did, above 0.25 (the default alert) the population
  has changed. Features that grow with time by construction (:data:`TIME_TRENDING_FEATURES`) are
  reported but never alert: a customer's tenure always drifts upwards.
- **Realized performance** joins the stored decisions (one per order, interval and model version)
  with the labels known today, per model version, and alerts when PR-AUC falls below
  ``(1 - HOLDCAST_PERFORMANCE_DROP_ALERT)`` times the version's own validation PR-AUC.
- **Validation**: a source batch of the interval that broke a table rule or the quarantine tolerance.

Controls (``holdcast_controls``, a warehouse table) hold one row per switch. ``auto_release`` is on
unless a row says otherwise; the monitor only ever switches it off, and a person switches it back on
(``python -m include.monitoring auto-release on --reason "..."``) once the cause is dealt with.
Decisions read it through :func:`auto_release_allowed`.

Alerts are logged at WARNING and written, one JSON object per line, to
``<HOLDCAST_OUTBOX_DIR>/monitoring/as_of=<interval>.jsonl`` (replaced by a re-run of the interval).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include import config

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

logger = logging.getLogger(__name__)

PROFILE_FORMAT = 1
PROFILE_ARTIFACT = "monitoring/reference_profile.json"
N_BINS = 10
MAX_CATEGORIES = 20
PSI_FLOOR = 1e-4
"""Shares are floored here before the logarithm, so an empty bin counts as rare rather than infinite."""
MIN_ROWS_FOR_DRIFT = 100
"""Fewer current orders than this and PSI is mostly noise: drift is reported but never alerts."""
MIN_POSITIVES_FOR_PERFORMANCE = 10
TIME_TRENDING_FEATURES: frozenset[str] = frozenset(
    {"tenure_days", "prior_order_count", "inv_cleared_count", "days_since_bureau_report"}
)
"""Features that grow with the calendar for every customer alike; their drift is shown, not alerted."""

CONTROLS_TABLE = "holdcast_controls"
MONITORING_TABLE = "holdcast_monitoring"
AUTO_RELEASE = "auto_release"


# ---------------------------------------------------------------------------------------------------
# Population stability


def psi(reference: Sequence[float], current: Sequence[float]) -> float:
    """Population stability index of two share vectors over the same bins.

    Raises:
        ValueError: the vectors differ in length.
    """
    import numpy as np

    ref = np.maximum(np.asarray(reference, dtype="float64"), PSI_FLOOR)
    cur = np.maximum(np.asarray(current, dtype="float64"), PSI_FLOOR)
    if ref.shape != cur.shape:
        raise ValueError(f"reference has {ref.size} bin(s), current {cur.size}")
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def profile_column(values: pd.Series, *, categorical: bool) -> dict[str, Any]:
    """Bins and shares of one column, the reference that later values are compared with.

    Numeric columns get up to :data:`N_BINS` quantile bins (fewer when values repeat), categorical
    ones their :data:`MAX_CATEGORIES` most frequent values plus ``other``; missing values always
    form a bin of their own. Shares are over all rows, missing included.
    """
    import numpy as np

    n = len(values)
    missing = values.isna()
    if categorical:
        counts = values[~missing].astype(str).value_counts()
        top = sorted(counts.index[:MAX_CATEGORIES].tolist())
        present = values[~missing].astype(str)
        shares = [float((present == c).sum()) / n for c in top] if n else [0.0] * len(top)
        other = float((~present.isin(top)).sum()) / n if n else 0.0
        return {
            "kind": "categorical",
            "categories": top,
            "shares": shares,
            "other": other,
            "missing": float(missing.mean()) if n else 0.0,
        }
    numbers = values[~missing].to_numpy(dtype="float64")
    quantiles = np.linspace(0, 1, N_BINS + 1)[1:-1]
    edges = np.unique(np.quantile(numbers, quantiles)).tolist() if numbers.size else []
    return {
        "kind": "numeric",
        "edges": edges,
        "shares": _numeric_shares(numbers, edges, n),
        "missing": float(missing.mean()) if n else 0.0,
    }


def _numeric_shares(numbers: np.ndarray, edges: list[float], n: int) -> list[float]:
    """Share of all ``n`` rows in each bin (-inf, e1], (e1, e2], ..., (ek, inf)."""
    import numpy as np

    if not n:
        return [0.0] * (len(edges) + 1)
    counts = np.bincount(np.searchsorted(edges, numbers, side="left"), minlength=len(edges) + 1)
    return (counts / n).tolist()


def column_psi(entry: Mapping[str, Any], values: pd.Series) -> float:
    """PSI of ``values`` against one column's reference profile (missing values compared too)."""
    n = len(values)
    if n == 0:
        return float("nan")
    missing = values.isna()
    if entry["kind"] == "categorical":
        present = values[~missing].astype(str)
        categories = list(entry["categories"])
        current = [float((present == c).sum()) / n for c in categories]
        current += [float((~present.isin(categories)).sum()) / n, float(missing.mean())]
        reference = [*entry["shares"], entry["other"], entry["missing"]]
        return psi(reference, current)
    numbers = values[~missing].to_numpy(dtype="float64")
    current = [*_numeric_shares(numbers, list(entry["edges"]), n), float(missing.mean())]
    return psi([*entry["shares"], entry["missing"]], current)


def reference_profile(
    features: pd.DataFrame, scores: pd.DataFrame, *, categorical: Iterable[str], window: Mapping[str, str]
) -> dict[str, Any]:
    """The reference a model is monitored against: profiles of its features and scores on given rows.

    Args:
        features: the reference rows' features (training uses its calibration slice).
        scores: the model's probabilities on the same rows (``p_any``, ``p_<reason>``).
        categorical: which feature columns are categorical.
        window: the reference rows' time boundaries, kept in the profile for people reading it.
    """
    categorical = set(categorical)
    return {
        "format": PROFILE_FORMAT,
        "n": len(features),
        "window": dict(window),
        "features": {
            str(c): profile_column(features[c], categorical=c in categorical) for c in features.columns
        },
        "scores": {
            str(c): profile_column(scores[c], categorical=False)
            for c in scores.columns
            if str(c).startswith("p_")
        },
    }


def drift_table(profile: Mapping[str, Any], features: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """PSI per feature and per score of the current rows against a reference profile.

    Returns:
        Columns ``kind`` (``feature_psi`` or ``score_psi``), ``name``, ``value``, ``n``; a feature the
        current frame lacks gets NaN.
    """
    import pandas as pd

    if profile.get("format") != PROFILE_FORMAT:
        raise ValueError(
            f"reference profile format {profile.get('format')!r} is not {PROFILE_FORMAT}; "
            "retrain the model to log a current one"
        )
    rows = []
    for kind, frame, entries in (
        ("feature_psi", features, profile["features"]),
        ("score_psi", scores, profile["scores"]),
    ):
        for name, entry in entries.items():
            value = column_psi(entry, frame[name]) if name in frame.columns else float("nan")
            rows.append({"kind": kind, "name": name, "value": value, "n": len(frame)})
    return pd.DataFrame(rows, columns=["kind", "name", "value", "n"])


# ---------------------------------------------------------------------------------------------------
# Validation reports


def validation_summary(as_of: datetime, *, tolerance: float | None = None) -> dict[str, Any]:
    """What the interval's validation reports say, in a few plain values (for tags and the monitor).

    A batch failed when it broke a table-level rule or quarantined more than ``tolerance`` of its
    rows (``HOLDCAST_QUARANTINE_TOLERANCE`` by default), the rules ingest fails a batch by.

    Returns:
        ``status`` (``passed``, ``failed`` or ``missing`` when no report exists), ``as_of``,
        ``sources``, ``tables``, ``rows_in``, ``rows_quarantined``, ``failed`` (``source/table``
        names) and ``path`` (the report folder).
    """
    from include import warehouse

    label = warehouse.as_of_label(as_of)
    folder = warehouse.lake_path("reports", "validation", f"as_of={label}")
    tolerance = config.HOLDCAST_QUARANTINE_TOLERANCE.get() if tolerance is None else tolerance
    summary: dict[str, Any] = {
        "status": "missing",
        "as_of": label,
        "sources": 0,
        "tables": 0,
        "rows_in": 0,
        "rows_quarantined": 0,
        "failed": [],
        "path": str(folder),
    }
    paths = sorted(folder.glob("*.json"))
    if not paths:
        logger.warning("No validation report for %s under %s", label, folder)
        return summary
    for path in paths:
        reports = json.loads(path.read_text())
        summary["sources"] += 1
        for report in reports:
            summary["tables"] += 1
            summary["rows_in"] += int(report.get("rows_in", 0))
            summary["rows_quarantined"] += int(report.get("rows_quarantined", 0))
            share = float(report.get("quarantined_share", 0.0))
            if report.get("table_failures") or share > tolerance:
                summary["failed"].append(f"{report.get('source', path.stem)}/{report.get('table')}")
    summary["status"] = "failed" if summary["failed"] else "passed"
    return summary


def latest_validation_as_of(not_after: datetime) -> datetime | None:
    """The newest interval at or before ``not_after`` that has validation reports."""
    from include import warehouse

    root = warehouse.lake_path("reports", "validation")
    found = [
        when
        for child in root.glob("as_of=*")
        if (when := warehouse.parse_as_of_label(child.name.removeprefix("as_of="))) <= not_after
    ]
    return max(found) if found else None


# ---------------------------------------------------------------------------------------------------
# Realized performance


def realized_performance(
    decisions: pd.DataFrame, labels: pd.DataFrame, *, threshold: float
) -> dict[str, dict[str, float]]:
    """How each model version's decisions turned out, on orders whose outcome is now known.

    Args:
        decisions: stored decisions with ``order_id``, ``risk`` (the any-hold probability),
            ``model_version`` and ``as_of``.
        labels: today's labels, index order id, with ``label_any`` and ``trainable`` (outcome known).
        threshold: the policy's at-risk threshold, for precision and recall.

    Returns:
        ``{version: binary_metrics(...)}`` over each version's latest decision per order.
    """
    from training.evaluate import binary_metrics

    known = labels.index[labels["trainable"].astype(bool)]
    decided = decisions[decisions["order_id"].isin(known)]
    if decided.empty:
        return {}
    latest = decided.sort_values("as_of").drop_duplicates(["order_id", "model_version"], keep="last")
    out = {}
    for version, group in latest.groupby("model_version", sort=True):
        y = labels.loc[group["order_id"], "label_any"].to_numpy()
        out[str(version)] = binary_metrics(y, group["risk"].astype("float64").to_numpy(), threshold=threshold)
    return out


# ---------------------------------------------------------------------------------------------------
# Breaches


@dataclass(frozen=True)
class Breach:
    """One threshold crossed: what, by how much, and whether it stops auto-release."""

    kind: str
    name: str
    value: float
    threshold: float
    model_version: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def drift_breaches(
    drift: pd.DataFrame, *, threshold: float, model_version: str | None, min_rows: int = MIN_ROWS_FOR_DRIFT
) -> list[Breach]:
    """Features and scores whose PSI exceeds ``threshold`` (not time-trending ones, not on small samples)."""
    breaches = []
    for row in drift.itertuples(index=False):
        if not math.isfinite(row.value) or row.value <= threshold:
            continue
        if row.kind == "feature_psi" and row.name in TIME_TRENDING_FEATURES:
            continue
        if row.n < min_rows:
            continue
        what = "feature" if row.kind == "feature_psi" else "score"
        breaches.append(
            Breach(
                row.kind,
                row.name,
                float(row.value),
                threshold,
                model_version,
                f"{what} {row.name} drifted: PSI {row.value:.3f} > {threshold} over {row.n} recent orders "
                f"against version {model_version}'s reference",
            )
        )
    return breaches


def performance_breaches(
    realized: Mapping[str, Mapping[str, float]],
    expected_pr_auc: Mapping[str, float],
    *,
    max_drop: float,
    min_positives: int = MIN_POSITIVES_FOR_PERFORMANCE,
) -> list[Breach]:
    """Versions whose realized PR-AUC fell below ``(1 - max_drop)`` times their validation PR-AUC."""
    breaches = []
    for version, metrics in realized.items():
        expected = expected_pr_auc.get(version)
        value = metrics.get("pr_auc", float("nan"))
        if expected is None or not math.isfinite(value) or metrics.get("n_positive", 0) < min_positives:
            continue
        floor = (1.0 - max_drop) * expected
        if value < floor:
            breaches.append(
                Breach(
                    "realized_pr_auc",
                    "any",
                    float(value),
                    floor,
                    version,
                    f"version {version}: realized any-hold PR-AUC {value:.3f} on {int(metrics['n'])} decided "
                    f"orders < {floor:.3f} ({1 - max_drop:.0%} of its validation PR-AUC {expected:.3f})",
                )
            )
    return breaches


def validation_breaches(summary: Mapping[str, Any]) -> list[Breach]:
    """One breach per source batch that failed the interval's validation."""
    if summary.get("status") != "failed":
        return []
    return [
        Breach(
            "validation",
            batch,
            1.0,
            0.0,
            None,
            f"validation of {summary['as_of']} failed for {batch}; report in {summary['path']}",
        )
        for batch in summary["failed"]
    ]


def write_alerts(as_of_label: str, breaches: Sequence[Breach]) -> Path:
    """Log each breach at WARNING and write them to the interval's outbox file (replacing a re-run's)."""
    folder = config.HOLDCAST_OUTBOX_DIR.get() / "monitoring"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"as_of={as_of_label}.jsonl"
    for breach in breaches:
        logger.warning("Monitoring alert for %s: %s", as_of_label, breach.message)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps({"as_of": as_of_label, **b.to_dict()}) + "\n" for b in breaches))
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------------
# Controls


def _controls_table(metadata):
    from sqlalchemy import Boolean, Column, String, Table, Text

    return Table(
        CONTROLS_TABLE,
        metadata,
        Column("control", String(64), primary_key=True),
        Column("enabled", Boolean, nullable=False),
        Column("reason", Text),
        Column("as_of", String(32)),
        Column("changed_by", String(128)),
    )


def read_control(name: str, *, default: bool = True) -> bool:
    """Whether control ``name`` is on; ``default`` when nobody ever set it."""
    from sqlalchemy import MetaData, inspect, select

    from include import warehouse

    engine = warehouse.engine()
    if not inspect(engine).has_table(CONTROLS_TABLE):
        return default
    table = _controls_table(MetaData())
    with engine.connect() as conn:
        value = conn.execute(select(table.c.enabled).where(table.c.control == name)).scalar()
    return default if value is None else bool(value)


def set_control(name: str, enabled: bool, *, reason: str, as_of: str, changed_by: str) -> None:
    """Set control ``name`` on or off, saying why and who did it (one row per control)."""
    from sqlalchemy import MetaData, delete, insert

    from include import warehouse

    table = _controls_table(MetaData())
    with warehouse.engine().begin() as conn:
        table.create(conn, checkfirst=True)
        conn.execute(delete(table).where(table.c.control == name))
        conn.execute(
            insert(table).values(
                control=name, enabled=enabled, reason=reason, as_of=as_of, changed_by=changed_by
            )
        )
    logger.warning("Control %s switched %s by %s: %s", name, "on" if enabled else "off", changed_by, reason)


def auto_release_allowed() -> bool:
    """Whether decisions may release orders automatically: off after a breach until a person says so."""
    return read_control(AUTO_RELEASE, default=True)


# ---------------------------------------------------------------------------------------------------
# The daily run


def monitor(as_of: datetime) -> dict[str, Any]:
    """One monitoring run for the interval ending at ``as_of``: measure, record, alert, act.

    Reads the newest validation reports and feature snapshot at or before ``as_of`` (the newer of
    the two names the monitored interval, so a daily run and a run after scoring agree), the champion
    and its reference profile, and the stored decisions. Writes the measurements to the warehouse
    table ``holdcast_monitoring`` (replacing the interval's rows) and to an MLflow run of the
    experiment ``holdcast-<dataset>-monitoring``; writes the alerts file; switches auto-release off
    on a breach. A missing champion or profile skips drift with a warning instead of failing, so
    validation is still watched before the first model exists.

    Returns:
        A small summary for XCom: the interval, champion version, PSI headline figures, the
        breaches, whether retraining is requested and whether auto-release is still allowed.
    """
    import pandas as pd

    from include import warehouse

    model_name = config.HOLDCAST_MODEL_NAME.get()
    threshold = config.HOLDCAST_PSI_ALERT.get()
    rows: list[dict[str, Any]] = []
    breaches: list[Breach] = []

    validated_as_of = latest_validation_as_of(as_of)
    validation = validation_summary(validated_as_of or as_of)
    failed = validation_breaches(validation)
    for b in failed:
        rows.append(_row("validation", b.name, 1.0, 0.0, None, 0, True))
    if not failed:  # one row saying the interval was looked at: passed, or missing
        rows.append(_row("validation", validation["status"], 0.0, 0.0, None, 0, False))
    breaches += failed

    client, tracking_uri = _mlflow_client()
    version, realized, snap_as_of = None, {}, None
    try:
        snapshot, snap_as_of = warehouse.latest_features_dir(as_of)
    except FileNotFoundError as err:
        logger.warning("No drift or realized performance measured: %s", err)
    if snap_as_of is not None:
        features = pd.read_parquet(snapshot / "features.parquet")
        labels = pd.read_parquet(snapshot / "labels.parquet")
        orders = pd.read_parquet(snapshot / "orders.parquet")
        version, drift = _champion_drift(client, tracking_uri, model_name, features, orders, snap_as_of)
        if drift is not None:
            drifted = drift_breaches(drift, threshold=threshold, model_version=version)
            names = {(b.kind, b.name) for b in drifted}
            for r in drift.itertuples(index=False):
                rows.append(_row(r.kind, r.name, r.value, threshold, version, r.n, (r.kind, r.name) in names))
            breaches += drifted

        realized = _realized(labels, warehouse.as_of_label(snap_as_of))
        slow = performance_breaches(
            realized,
            _validation_pr_auc(client, model_name, realized),
            max_drop=config.HOLDCAST_PERFORMANCE_DROP_ALERT.get(),
        )
        floors = {b.model_version: b.threshold for b in slow}
        for v, metrics in realized.items():
            for name in ("pr_auc", "roc_auc", "brier", "precision", "recall", "n", "n_positive"):
                flagged = name == "pr_auc" and v in floors
                floor = floors[v] if flagged else float("nan")
                rows.append(_row("realized", name, metrics[name], floor, v, int(metrics["n"]), flagged))
        breaches += slow

    # The interval is the newest data seen, so the daily run and the run after scoring agree on it.
    seen = [t for t in (validated_as_of, snap_as_of) if t is not None]
    label = warehouse.as_of_label(max(seen) if seen else as_of)
    frame = pd.DataFrame(rows).assign(as_of=label, model_name=model_name)
    warehouse.replace_rows(MONITORING_TABLE, frame, where={"as_of": label})
    alerts = write_alerts(label, breaches)
    _log_to_mlflow(client, model_name, label, version, frame, breaches)

    if breaches:
        set_control(
            AUTO_RELEASE,
            False,
            reason="; ".join(b.message for b in breaches[:3])
            + (f" (and {len(breaches) - 3} more)" if len(breaches) > 3 else ""),
            as_of=label,
            changed_by="holdcast_monitor",
        )
    scores = frame[frame["kind"].eq("score_psi")]
    feats = frame[frame["kind"].eq("feature_psi")]
    summary = {
        "as_of": label,
        "features_as_of": None if snap_as_of is None else warehouse.as_of_label(snap_as_of),
        "validation_as_of": validation["as_of"],
        "validation": validation["status"],
        "model_version": version,
        "score_psi_any": _finite_or_none(scores.loc[scores["name"].eq("p_any"), "value"]),
        "max_feature_psi": _finite_or_none(feats["value"], how="max"),
        "realized_versions": sorted(realized),
        "breaches": [{"kind": b.kind, "name": b.name, "value": b.value} for b in breaches[:20]],
        "retrain": bool(breaches),
        "auto_release": auto_release_allowed(),
        "alerts": str(alerts),
    }
    logger.info("Monitored: %s", summary)
    return summary


def _row(kind, name, value, threshold, version, n, breached: bool) -> dict[str, Any]:
    return {
        "kind": kind,
        "name": str(name),
        "value": float(value),
        "threshold": float(threshold),
        "breached": breached,
        "model_version": None if version is None else str(version),
        "n": int(n),
    }


def _finite_or_none(values: pd.Series, how: str = "first") -> float | None:
    finite = values[values.notna()]
    if finite.empty:
        return None
    return float(finite.max() if how == "max" else finite.iloc[0])


def _mlflow_client():
    import os

    from training.score import connect

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = config.MLFLOW_TRACKING_URI.get()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return connect(uri), uri


def _champion_drift(client, tracking_uri, model_name, features, orders, snap_as_of):
    """The champion's version and its drift table on the recent orders (``None`` when it cannot be had)."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from training.errors import NoChampionError
    from training.score import load_champion, score

    try:
        model, version = load_champion(model_name, tracking_uri)
    except NoChampionError as err:
        logger.warning("No drift measured: %s", err)
        return None, None
    run_id = client.get_model_version(model_name, version).run_id
    try:
        profile = mlflow.artifacts.load_dict(f"runs:/{run_id}/{PROFILE_ARTIFACT}")
    except (MlflowException, OSError) as err:
        logger.warning(
            "No drift measured: version %s of %s has no %s (%s); retrain to log one",
            version,
            model_name,
            PROFILE_ARTIFACT,
            type(err).__name__,
        )
        return version, None
    since = snap_as_of - timedelta(days=config.HOLDCAST_MONITOR_WINDOW_DAYS.get())
    recent = orders.index[orders["created_at"] > since]
    columns = list(profile["features"])
    current = features.loc[recent, [c for c in columns if c in features.columns]]
    scores = score(model, current, explain=False) if len(recent) else current.iloc[:, :0]
    logger.info("Drift of %d order(s) created after %s against version %s", len(recent), since, version)
    return version, drift_table(profile, current, scores)


def _realized(labels: pd.DataFrame, not_after: str) -> dict[str, dict[str, float]]:
    """Realized performance per version from the stored decisions of intervals up to ``not_after``."""
    import pandas as pd
    from sqlalchemy import inspect, text

    from include import warehouse
    from include.decisions import load_policy

    engine = warehouse.engine()
    if not inspect(engine).has_table("decisions"):
        return {}
    with engine.connect() as conn:
        decisions = pd.read_sql(
            text("SELECT order_id, risk, model_version, as_of FROM decisions WHERE as_of <= :last"),
            conn,
            params={"last": not_after},
        )
    policy = load_policy(config.HOLDCAST_POLICY_FILE.get())
    return realized_performance(decisions, labels, threshold=policy.lowest_at_risk_min)


def _validation_pr_auc(client, model_name: str, versions: Iterable[str]) -> dict[str, float]:
    """Each version's any-hold PR-AUC on its own validation window, from its registry tag."""
    from mlflow.exceptions import MlflowException

    out = {}
    for version in versions:
        try:
            tag = client.get_model_version(model_name, version).tags.get("any_pr_auc")
        except MlflowException:
            continue
        if tag:
            out[version] = float(tag)
    return out


def _log_to_mlflow(client, model_name, label, version, frame, breaches) -> None:
    """One run per interval in ``holdcast-<dataset>-monitoring`` (a re-run logs into the same run)."""
    import time

    from mlflow.entities import Metric, RunTag

    from training.registry import get_or_create_experiment

    experiment_id = get_or_create_experiment(
        client,
        f"holdcast-{config.HOLDCAST_DATASET.get()}-monitoring",
        config.HOLDCAST_MLFLOW_ARTIFACTS.get(),
    )
    found = client.search_runs([experiment_id], filter_string=f"tags.`holdcast.monitor_as_of` = '{label}'")
    run_id = (
        found[0].info.run_id
        if found
        else client.create_run(experiment_id, run_name=f"monitor-{label}").info.run_id
    )
    now = int(time.time() * 1000)
    metrics = []
    for r in frame.itertuples(index=False):
        if not math.isfinite(r.value):
            continue
        if r.kind in ("feature_psi", "score_psi"):
            key = f"psi.{r.kind.removesuffix('_psi')}.{r.name}"
        elif r.kind == "realized":
            key = f"realized.v{r.model_version}.{r.name}"
        else:
            key = "validation.failed_batches"
        metrics.append(Metric(key, float(r.value), now, 0))
    metrics.append(Metric("breaches", float(len(breaches)), now, 0))
    tags = [
        RunTag("holdcast.monitor_as_of", label),
        RunTag("holdcast.model_name", model_name),
        RunTag("holdcast.champion_version", version or ""),
        RunTag("holdcast.breaches", json.dumps([b.message for b in breaches])[:7000]),
    ]
    for start in range(0, len(metrics), 900):
        client.log_batch(run_id, metrics=metrics[start : start + 900], tags=tags if start == 0 else [])
    if not found:
        client.set_terminated(run_id)


def main(argv: list[str] | None = None) -> int:
    """``python -m include.monitoring auto-release on|off|status [--reason TEXT] [--by NAME]``."""
    parser = argparse.ArgumentParser(prog="python -m include.monitoring", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    switch = sub.add_parser("auto-release", help="show or set the auto-release switch")
    switch.add_argument("state", choices=["on", "off", "status"])
    switch.add_argument("--reason", default="", help="why (required to change the switch)")
    switch.add_argument("--by", default="operator", help="who changes it")
    args = parser.parse_args(argv)
    if args.state == "status":
        print(f"auto_release: {'on' if auto_release_allowed() else 'off'}")
        return 0
    if not args.reason:
        parser.error("--reason is required to change auto-release")
    from include import warehouse

    set_control(
        AUTO_RELEASE,
        args.state == "on",
        reason=args.reason,
        as_of=warehouse.as_of_label(datetime.now(UTC)),
        changed_by=args.by,
    )
    print(f"auto_release: {args.state}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
