"""
### holdcast: ingest

Daily. For the run's interval, reads every source of the configured dataset (the ERP through the
`holdcast_erp` connection, bureau/CRM/sanctions file extracts), lands the raw rows, validates them with
Great Expectations (bad rows to the `quarantine` table with the rule they broke) and writes the
canonical tables. Publishing them emits the `canonical tables` asset, which triggers feature building.
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

    @task(outlets=[CANONICAL_TABLES])
    def publish(summaries: list[dict], *, logical_date=None, outlet_events=None) -> dict:
        from include import pipeline

        result = pipeline.publish_canonical(pipeline.resolve_as_of(logical_date))
        outlet_events[CANONICAL_TABLES].extra = {"as_of": result["as_of"]}
        return result

    publish(ingest_source.expand(source=list_sources()))


holdcast_ingest()
