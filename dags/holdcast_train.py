"""
### holdcast: train

Weekly. Trains LightGBM models for the probability of any hold and of each reason on the newest
feature snapshot, with a time-based validation window; logs metrics, curves, baselines and the model
to MLflow; registers a version with the alias `challenger` and moves `champion` to it when it is the
first model or beats the champion on the same window. An ML engineer can also move `champion` in the
MLflow UI: the next scoring run uses it.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from include.assets import CHAMPION_MODEL
from include.dag_defaults import START_DATE, default_args


@dag(
    schedule="@weekly",
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
    def train_and_register(*, logical_date=None, outlet_events=None, params=None) -> dict:
        from include import pipeline

        force = bool((params or {}).get("force_retrain"))
        result = pipeline.train_model(pipeline.resolve_as_of(logical_date), force=force)
        outlet_events[CHAMPION_MODEL].extra = {"model_version": result["model_version"]}
        return result

    train_and_register()


holdcast_train()
