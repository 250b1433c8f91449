"""Threshold simulator: what each auto-release threshold would have cost on past orders with known outcomes.

For a threshold ``t``, every order whose probability of any hold is below ``t`` is released with no
human look; the rest are reviewed. On orders whose outcome is known:

- **no-touch rate**: the share released automatically;
- **missed holds**: released orders the ERP then held (count and share of all held orders);
- **expected cost**: reviews x ``review_minutes`` x ``cost_per_review_minute``, plus for each missed
  hold its amount x (``missed_hold_delay_days`` x ``delay_cost_per_day_share`` + ``missed_hold_loss_share``).

The cost matrix and the thresholds are in the policy file (``costs``). The table and a plot go to
MLflow (experiment ``holdcast-<dataset>-policy``, one run per interval).

Past orders come from earlier scoring runs whose orders now have a known outcome. While there are
none (the first weeks, or the demo's single interval), the newest labelled orders of the feature
snapshot are scored with the champion: the most recent ones, which the time-based holdout kept out
of training.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from include import config, warehouse

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

FALLBACK_ORDERS = 5_000
"""How many of the newest labelled orders are scored when no past run has known outcomes."""


def simulate(outcomes: pd.DataFrame, costs: dict[str, Any], thresholds: list[float]) -> pd.DataFrame:
    """One row per threshold: no-touch rate, missed holds and expected cost.

    Args:
        outcomes: one row per order with ``risk`` (probability of any hold), ``held`` (0/1, the
            outcome) and ``amount`` (order value).
        costs: the policy's ``costs`` section.
        thresholds: the auto-release thresholds to try.
    """
    import numpy as np
    import pandas as pd

    risk = outcomes["risk"].to_numpy(dtype=float)
    held = outcomes["held"].to_numpy(dtype=bool)
    amount = np.nan_to_num(outcomes["amount"].to_numpy(dtype=float))
    per_missed = (
        costs["missed_hold_delay_days"] * costs["delay_cost_per_day_share"] + costs["missed_hold_loss_share"]
    )
    review_cost = costs["review_minutes"] * costs["cost_per_review_minute"]
    rows = []
    for t in thresholds:
        released = risk < t
        missed = released & held
        reviews = int((~released).sum())
        cost_reviews = reviews * review_cost
        cost_missed = float((amount[missed] * per_missed).sum())
        rows.append(
            {
                "threshold": t,
                "orders": len(risk),
                "no_touch_rate": float(released.mean()) if len(risk) else 0.0,
                "reviewed": reviews,
                "missed_holds": int(missed.sum()),
                "missed_hold_rate": float(missed.sum() / held.sum()) if held.any() else 0.0,
                "review_cost": round(cost_reviews, 2),
                "missed_hold_cost": round(cost_missed, 2),
                "expected_cost": round(cost_reviews + cost_missed, 2),
            }
        )
    return pd.DataFrame(rows)


def plot(table: pd.DataFrame, policy_threshold: float):
    """No-touch rate and missed holds against the threshold, with expected cost on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(table["threshold"], table["no_touch_rate"], marker="o", label="no-touch rate")
    ax.plot(table["threshold"], table["missed_hold_rate"], marker="s", label="share of holds missed")
    ax.axvline(policy_threshold, color="grey", linestyle=":", label="policy max_risk")
    ax.set_xlabel("auto-release threshold (probability of any hold)")
    ax.set_ylabel("share")
    cost = ax.twinx()
    cost.plot(
        table["threshold"], table["expected_cost"], color="black", linestyle="--", label="expected cost"
    )
    cost.set_ylabel("expected cost")
    lines = ax.get_legend_handles_labels()
    more = cost.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="center right", fontsize=8)
    ax.set_title("Auto-release threshold: work saved against holds missed")
    fig.tight_layout()
    return fig


def past_outcomes(as_of: datetime) -> tuple[pd.DataFrame, str]:
    """Scored orders with known outcomes, and where they came from (see the module docstring)."""
    import pandas as pd
    from sqlalchemy import inspect, text

    path, _ = warehouse.latest_features_dir(as_of)
    labels = pd.read_parquet(path / "labels.parquet")
    features = pd.read_parquet(path / "features.parquet")
    known = labels[labels["trainable"].astype(bool)]
    eng = warehouse.engine()
    if inspect(eng).has_table("decisions"):
        with eng.connect() as conn:
            past = pd.read_sql(
                text("SELECT order_id, risk, as_of FROM decisions WHERE as_of < :a"),
                conn,
                params={"a": warehouse.as_of_label(as_of)},
            )
        past = past.sort_values("as_of").drop_duplicates("order_id", keep="last").set_index("order_id")
        common = past.index.intersection(known.index)
        if len(common):
            return _frame(past.loc[common, "risk"], known.loc[common], features), "past scoring runs"
    from features.build import FEATURE_COLUMNS
    from training.score import load_champion, score

    orders = pd.read_parquet(path / "orders.parquet")
    newest = orders.loc[known.index, "created_at"].sort_values().index[-FALLBACK_ORDERS:]
    model, version = load_champion(config.HOLDCAST_MODEL_NAME.get(), _tracking_uri())
    scores = score(model, features.loc[newest, FEATURE_COLUMNS], explain=False)
    source = f"newest {len(newest)} labelled orders scored with champion v{version}"
    return _frame(scores["p_any"], known.loc[newest], features), source


def _frame(risk, labels, features) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        {
            "risk": risk.astype(float),
            "held": labels["label_any"].astype(int),
            "amount": features.reindex(labels.index)["order_amount"],
        }
    )


def _tracking_uri() -> str:
    from include.pipeline import _mlflow_setup

    return _mlflow_setup()


def run_simulation(as_of: datetime) -> dict[str, Any]:
    """The DAG task: simulate the policy's thresholds and log the table and the plot to MLflow."""
    import mlflow

    from include.decisions import load_policy

    policy = load_policy(config.HOLDCAST_POLICY_FILE.get())
    thresholds = policy.costs.get("auto_release_thresholds") or [policy.auto_release.max_risk]
    outcomes, source = past_outcomes(as_of)
    table = simulate(outcomes, policy.costs, thresholds)
    label = warehouse.as_of_label(as_of)
    mlflow.set_tracking_uri(_tracking_uri())
    experiment = f"holdcast-{config.HOLDCAST_DATASET.get()}-policy"
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=config.HOLDCAST_MLFLOW_ARTIFACTS.get())
    mlflow.set_experiment(experiment)
    best = table.loc[table["expected_cost"].idxmin()]
    with mlflow.start_run(run_name=f"thresholds-{label}") as run:
        mlflow.log_params(
            {
                "as_of": label,
                "policy_version": policy.version,
                "orders": len(outcomes),
                "source": source[:250],
                **{f"cost_{k}": v for k, v in policy.costs.items() if k != "auto_release_thresholds"},
            }
        )
        mlflow.log_metrics(
            {
                "best_threshold": float(best["threshold"]),
                "best_expected_cost": float(best["expected_cost"]),
                "best_no_touch_rate": float(best["no_touch_rate"]),
            }
        )
        mlflow.log_table(table, artifact_file="threshold_simulation.json")
        mlflow.log_text(table.to_csv(index=False), "threshold_simulation.csv")
        figure = plot(table, policy.auto_release.max_risk)
        mlflow.log_figure(figure, "threshold_simulation.png")
    summary = {
        "as_of": label,
        "orders": len(outcomes),
        "source": source,
        "run_id": run.info.run_id,
        "best_threshold": float(best["threshold"]),
        "best_no_touch_rate": float(best["no_touch_rate"]),
        "best_missed_holds": int(best["missed_holds"]),
    }
    logger.info("Threshold simulation: %s", summary)
    return summary
