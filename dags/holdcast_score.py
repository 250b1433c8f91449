"""
### holdcast: score and write back

Triggered by the `order features` asset. Scores every open order with `models:/<name>@champion`,
applies the policy file (risk band, reasons, evidence, team, suggested action) and writes each
decision into the ERP's `holdcast_order_status` table: a decision already written is not written
again, so re-runs leave the ERP unchanged.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from include.assets import ERP_ORDER_STATUS, ORDER_FEATURES
from include.dag_defaults import START_DATE, default_args


@dag(
    schedule=[ORDER_FEATURES],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["holdcast", "scoring"],
    default_args=default_args(),
    params={"dry_run": False},
    doc_md=__doc__,
)
def holdcast_score():
    @task(outlets=[ERP_ORDER_STATUS])
    def score_and_write_back(
        *, logical_date=None, triggering_asset_events=None, outlet_events=None, params=None
    ) -> dict:
        from include import pipeline

        extras = [e.extra for e in (triggering_asset_events or {}).get(ORDER_FEATURES, [])]
        as_of = pipeline.resolve_as_of(logical_date, extras)
        result = pipeline.score_open_orders(as_of, dry_run=bool((params or {}).get("dry_run")))
        outlet_events[ERP_ORDER_STATUS].extra = {"as_of": result["as_of"]}
        return result

    score_and_write_back()


holdcast_score()
