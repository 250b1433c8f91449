"""What every holdcast DAG shares: owner, retries, start date. Cheap to import at DAG parse time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from include import config

# Airflow skips every task of a run dated before its DAG's start date, and calls the run a success:
# keep this before any interval anyone may run or backfill (the DataCo sample starts in 2015).
START_DATE = datetime(2015, 1, 1, tzinfo=UTC)


def default_args() -> dict:
    return {
        "owner": "holdcast",
        "retries": config.HOLDCAST_TASK_RETRIES.get(),
        "retry_delay": timedelta(minutes=1),
    }
