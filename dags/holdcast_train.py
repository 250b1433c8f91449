"""
### holdcast: train

Weekly, and whenever the monitor asks for a retraining (the `retrain-request` asset). Trains LightGBM
models for the probability of any hold and of each reason on the newest feature snapshot, with a
time-based validation window; logs metrics, curves, baselines, the oracle on generated data and the
monitoring reference profile to MLflow; registers a version with the alias `challenger` and tags
(window, data hash, feature list, validation result, policy version, metrics). The gate compares it
with the champion on the same window; `champion` moves to it automatically only when the gate passes
and `HOLDCAST_AUTO_PROMOTE` is true. An ML engineer can also move `champion` in the MLflow UI: the
next scoring run uses it.
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from include.assets import CHAMPION_MODEL, RETRAIN_REQUEST
from include.dag_defaults import START_DATE, default_args


@dag(
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("@weekly", timezone="UTC"), assets=[RETRAIN_REQUEST]
    ),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["holdcast", "training"],
    default_args=default_args(),
    params={"force_retrain": False},
    doc_md=__doc__,
)
def holdcast_train():
    @task(outlets=[CHAMPION_MODEL])
    def train_and_register(
        *, logical_date=None, triggering_asset_events=None, outlet_events=None, params=None
    ) -> dict:
        from include import pipeline

        # A run started by the monitor has no logical date: it trains for the interval it monitored.
        extras = [e.extra for e in (triggering_asset_events or {}).get(RETRAIN_REQUEST, [])]
        force = bool((params or {}).get("force_retrain"))
        result = pipeline.train_model(pipeline.resolve_as_of(logical_date, extras), force=force)
        outlet_events[CHAMPION_MODEL].extra = {"model_version": result["model_version"]}
        return result

    train_and_register()


holdcast_train()
