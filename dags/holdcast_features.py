"""
### holdcast: point-in-time features

Triggered by the `canonical tables` asset. Builds each order's features as of its creation (no fact
dated after it) and the hold labels of orders whose outcome is known, as a Parquet snapshot of the
interval, then emits the `order features` asset that scoring waits for.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from include.assets import CANONICAL_TABLES, ORDER_FEATURES
from include.dag_defaults import START_DATE, default_args


@dag(
    schedule=[CANONICAL_TABLES],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["holdcast", "features"],
    default_args=default_args(),
    doc_md=__doc__,
)
def holdcast_features():
    @task(outlets=[ORDER_FEATURES])
    def build_features(*, logical_date=None, triggering_asset_events=None, outlet_events=None) -> dict:
        from include import pipeline

        extras = [e.extra for e in (triggering_asset_events or {}).get(CANONICAL_TABLES, [])]
        result = pipeline.build_features(pipeline.resolve_as_of(logical_date, extras))
        outlet_events[ORDER_FEATURES].extra = {"as_of": result["as_of"]}
        return result

    build_features()


holdcast_features()
