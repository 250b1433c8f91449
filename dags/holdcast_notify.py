"""
### holdcast: tell the teams

Triggered by the `ERP order status` asset, so it runs after every scoring run without touching it.
Builds one message per team listing its new at-risk orders (evidence, what clears each one), plus
drafts of customer messages for missing order data, and writes them to the outbox folder; with
`HOLDCAST_NOTIFY_MODE=send` it also sends them by e-mail (SMTP) and Slack webhook through Airflow
notifiers, each message once per run. When the run's data failed validation every team is told
that auto-release is off.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task

from include.assets import ERP_ORDER_STATUS
from include.dag_defaults import START_DATE, default_args


@dag(
    schedule=[ERP_ORDER_STATUS],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["holdcast", "notifications"],
    default_args=default_args(),
    doc_md=__doc__,
)
def holdcast_notify():
    @task
    def notify_teams(*, logical_date=None, triggering_asset_events=None) -> dict:
        from include import notify, pipeline

        extras = [e.extra for e in (triggering_asset_events or {}).get(ERP_ORDER_STATUS, [])]
        as_of = pipeline.resolve_as_of(logical_date, extras)
        return notify.notify_teams(as_of, context=dict(get_current_context()))

    notify_teams()


holdcast_notify()
