"""
### holdcast: ingest

Daily. For the run's interval, reads every source of the configured dataset (the ERP through the
`holdcast_erp` connection, bureau/CRM/sanctions file extracts), lands the raw rows, validates them with
Great Expectations (bad rows to the `quarantine` table with the rule they broke) and writes the
canonical tables, then announces them with the `canonical tables` asset, which triggers feature
building.

A backfill (`airflow backfill create --dag-id holdcast_ingest --from-date ... --to-date ...`) rebuilds
the lake and quarantine for each day but does not announce, so it does not rebuild features and
re-score once per backfilled day. To have each backfilled day go down the chain, pass
`--dag-run-conf '{"announce_backfill": true}'`.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from include.assets import CANONICAL_TABLES
from include.dag_defaults import START_DATE, default_args


@dag(
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["holdcast", "ingest"],
    default_args=default_args(),
    params={"announce_backfill": False},
    doc_md=__doc__,
)
def holdcast_ingest():
    @task
    def list_sources() -> list[str]:
        from include.ingest import source_names

        return source_names()

    @task(map_index_template="{{ task.op_kwargs['source'] }}")
    def ingest_source(source: str, *, logical_date=None) -> dict:
        from include import pipeline

        return pipeline.ingest_source(source, pipeline.resolve_as_of(logical_date))

    @task
    def publish(summaries: list[dict], *, logical_date=None) -> dict:
        from include import pipeline

        return pipeline.publish_canonical(pipeline.resolve_as_of(logical_date))

    @task(outlets=[CANONICAL_TABLES])
    def announce(published: dict, *, dag_run=None, params=None, outlet_events=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from include import pipeline

        go, why = pipeline.should_announce(
            str(dag_run.run_type), bool((params or {}).get("announce_backfill"))
        )
        if not go:
            raise AirflowSkipException(why)
        outlet_events[CANONICAL_TABLES].extra = {"as_of": published["as_of"]}
        return published

    announce(publish(ingest_source.expand(source=list_sources())))


holdcast_ingest()
