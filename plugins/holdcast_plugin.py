"""Airflow UI plugin: a navigation link to the MLflow UI where holdcast's runs and models live.

The address is the setting ``HOLDCAST_MLFLOW_UI_URL`` (default: the one ``make mlflow-ui`` serves).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include import config


class HoldcastPlugin(AirflowPlugin):
    name = "holdcast"
    external_views = [
        {
            "name": "MLflow (holdcast models)",
            "href": config.HOLDCAST_MLFLOW_UI_URL.get(),
            "destination": "nav",
            "category": "browse",
        }
    ]
