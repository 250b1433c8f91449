"""Airflow local settings of the distributed test run only (``tests/deploy/test_celery_run.py``).

The test puts this folder on ``PYTHONPATH`` of every Airflow process it starts; production never does.

* ``dag_policy``: the test triggers ``holdcast_ingest`` and ``holdcast_train`` for the interval it
  checks. With their cron schedules kept, unpausing them would also start a run for today (``catchup``
  is off, so Airflow runs the latest cron tick at once), an interval with no data behind it. The
  policy drops the time schedules of those two DAGs; asset schedules stay as they are, so the rest of
  the chain is still started by the scheduler from asset events.
* ``worker_hostname``: both Celery workers run on this one machine, so the host name Airflow records
  on each task instance would be the same. Each worker process is started with its own
  ``HOLDCAST_TEST_WORKER`` and reports that instead (``[core] hostname_callable``).
"""

from __future__ import annotations

import os
import socket

TIME_SCHEDULED_DAGS = frozenset({"holdcast_ingest", "holdcast_train"})


def dag_policy(dag) -> None:
    if dag.dag_id not in TIME_SCHEDULED_DAGS:
        return
    from airflow.sdk.definitions.timetables.simple import NullTimetable

    # ``schedule`` is frozen once the DAG exists; the timetable derived from it is what gets serialized.
    dag.timetable = NullTimetable()


def worker_hostname() -> str:
    return os.environ.get("HOLDCAST_TEST_WORKER") or socket.getfqdn()
