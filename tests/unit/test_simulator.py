"""The threshold simulator: its arithmetic, and the table and plot it logs to a real MLflow store."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from include import config, simulator, warehouse
from include.decisions import load_policy

COSTS = {
    "review_minutes": 10,
    "cost_per_review_minute": 1.0,
    "missed_hold_delay_days": 5,
    "delay_cost_per_day_share": 0.001,
    "missed_hold_loss_share": 0.02,
}


def test_simulate_counts_and_costs():
    outcomes = pd.DataFrame(
        {
            "risk": [0.01, 0.04, 0.08, 0.3, 0.9],
            "held": [0, 1, 0, 1, 1],
            "amount": [100.0, 1000.0, 50.0, 10.0, 10.0],
        }
    )
    table = simulator.simulate(outcomes, COSTS, [0.0, 0.05, 0.5]).set_index("threshold")
    assert table["no_touch_rate"].tolist() == [0.0, 0.4, 0.8]
    assert table["missed_holds"].tolist() == [0, 1, 2]
    assert table["missed_hold_rate"].tolist() == pytest.approx([0.0, 1 / 3, 2 / 3])
    # At 0.05: 3 reviews x 10 minutes, one missed hold of 1,000 x (5 x 0.001 + 0.02) = 25.
    assert table.loc[0.05, ["review_cost", "missed_hold_cost", "expected_cost"]].tolist() == [
        30.0,
        25.0,
        55.0,
    ]
    assert table.loc[0.0, "expected_cost"] == 50.0


def test_run_logs_table_and_plot_to_mlflow_from_past_runs(holdcast_home):
    from mlflow import MlflowClient

    ids = [f"O{i}" for i in range(40)]
    snap = warehouse.features_dir(datetime(2025, 6, 30, tzinfo=UTC))
    snap.mkdir(parents=True)
    held = [i % 4 == 0 for i in range(40)]
    pd.DataFrame({"order_amount": 100.0}, index=ids).to_parquet(snap / "features.parquet")
    pd.DataFrame({"label_any": held, "trainable": True}, index=ids).to_parquet(snap / "labels.parquet")
    pd.DataFrame({"created_at": pd.Timestamp("2025-05-01", tz="UTC")}, index=ids).to_parquet(
        snap / "orders.parquet"
    )
    past = pd.DataFrame({"order_id": ids, "risk": [0.5 if h else 0.03 for h in held], "as_of": "2025-06-01"})
    warehouse.replace_rows("decisions", past, where={"as_of": "2025-06-01"})

    summary = simulator.run_simulation(datetime(2025, 6, 30, tzinfo=UTC))
    assert summary["source"] == "past scoring runs" and summary["orders"] == 40
    # Holds all score 0.5: any threshold up to 0.5 releases the 30 clean orders and misses none.
    assert summary["best_threshold"] == 0.05 and summary["best_missed_holds"] == 0
    assert summary["best_no_touch_rate"] == 0.75
    client = MlflowClient(tracking_uri=config.MLFLOW_TRACKING_URI.get())
    run = client.get_run(summary["run_id"])
    assert run.data.params["policy_version"] == load_policy(config.HOLDCAST_POLICY_FILE.get()).version
    artifacts = {a.path for a in client.list_artifacts(summary["run_id"])}
    assert {"threshold_simulation.json", "threshold_simulation.csv", "threshold_simulation.png"} <= artifacts
