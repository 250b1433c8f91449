"""Airflow UI plugin: a navigation link to the MLflow UI where holdcast's runs and models live.

The address comes from ``HOLDCAST_MLFLOW_UI_URL`` (default: the one ``make mlflow-ui`` serves).
"""

from __future__ import annotations

import os

from airflow.plugins_manager import AirflowPlugin


class HoldcastPlugin(AirflowPlugin):
    name = "holdcast"
    external_views = [
        {
            "name": "MLflow (holdcast models)",
            "href": os.environ.get("HOLDCAST_MLFLOW_UI_URL", "http://127.0.0.1:5000"),
            "destination": "nav",
            "category": "browse",
        }
    ]
