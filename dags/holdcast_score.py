"""
### holdcast: score and write back

Triggered by the `order features` asset. Scores every open order with `models:/<name>@champion` in
shards that run in parallel on the workers (`HOLDCAST_SCORE_SHARDS`, one mapped task each), applies
the policy file (risk band, reasons, evidence, team, suggested action), then writes every decision
into the ERP's `holdcast_order_status` table in one task.

- `plan_shards` splits the open orders and pins the champion's version for every shard;
- `score_shard` writes one shard's decisions to one file, whole or not at all, so a shard killed half
  way and run again leaves no partial or double output;
- `write_back` checks the shards hold each open order exactly once, then writes: a decision already
  written is not written again, so re-runs leave the ERP unchanged.

XCom carries shard references (numbers, paths, counts), never data.
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
    @task
    def plan_shards(*, logical_date=None, triggering_asset_events=None) -> list[dict]:
        from include import pipeline

        extras = [e.extra for e in (triggering_asset_events or {}).get(ORDER_FEATURES, [])]
        return pipeline.plan_scoring(pipeline.resolve_as_of(logical_date, extras))

    @task
    def score_shard(ref: dict) -> dict:
        from include import pipeline

        return pipeline.score_shard(ref)

    @task(outlets=[ERP_ORDER_STATUS])
    def write_back(shards, *, outlet_events=None, params=None) -> dict:
        from include import pipeline

        result = pipeline.write_back_shards(list(shards), dry_run=bool((params or {}).get("dry_run")))
        outlet_events[ERP_ORDER_STATUS].extra = {"as_of": result["as_of"]}
        return result

    write_back(score_shard.expand(ref=plan_shards()))


holdcast_score()
