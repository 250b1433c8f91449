"""What every holdcast DAG shares: owner, retries, start date. Cheap to import at DAG parse time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from include import config

START_DATE = datetime(2025, 1, 1, tzinfo=timezone.utc)


def default_args() -> dict:
    return {
        "owner": "holdcast",
        "retries": config.HOLDCAST_TASK_RETRIES.get(),
        "retry_delay": timedelta(minutes=1),
    }
