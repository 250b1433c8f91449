"""
### holdcast: monitor

After each scoring run (the `ERP order status` asset) and daily at 06:00 UTC (so a day whose ingest
failed validation, and therefore scored nothing, is still looked at). Measures the drift (PSI) of
every feature and score between the newest slice of the champion's training window and the recent
orders, the realized performance of each model version once outcomes are known, and reads the
interval's validation reports. Results go to the warehouse table `holdcast_monitoring` and an MLflow
run of the experiment `holdcast-<dataset>-monitoring`. Beyond the thresholds it alerts (log and
`<outbox>/monitoring/`), switches auto-release off (`holdcast_controls`) and emits the
`retrain-request` asset, which starts `holdcast_train`.
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from include.assets import ERP_ORDER_STATUS, RETRAIN_REQUEST
from include.dag_defaults import START_DATE, default_args


@dag(
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 6 * * *", timezone="UTC"), assets=[ERP_ORDER_STATUS]
    ),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["holdcast", "monitoring"],
    default_args=default_args(),
    doc_md=__doc__,
)
def holdcast_monitor():
    @task
    def monitor(*, logical_date=None, triggering_asset_events=None) -> dict:
        from include import pipeline

        extras = [e.extra for e in (triggering_asset_events or {}).get(ERP_ORDER_STATUS, [])]
        return pipeline.monitor_models(pipeline.resolve_as_of(logical_date, extras))

    @task(outlets=[RETRAIN_REQUEST])
    def request_retraining(summary: dict, *, outlet_events=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        # A skipped task emits no asset event: retraining starts only on a breach.
        if not summary["retrain"]:
            raise AirflowSkipException(f"no breach for {summary['as_of']}: no retraining requested")
        kinds = sorted({b["kind"] for b in summary["breaches"]})
        outlet_events[RETRAIN_REQUEST].extra = {"as_of": summary["as_of"], "because": kinds}
        return {"as_of": summary["as_of"], "because": kinds}

    request_retraining(monitor())


holdcast_monitor()
