"""Airflow plugin: a navigation link to the MLflow UI, and the analysts' feedback endpoint.

The MLflow address is the setting ``HOLDCAST_MLFLOW_UI_URL`` (default: the one ``make mlflow-ui``
serves). The feedback app (:func:`include.feedback.create_app`) is mounted on the Airflow API server
under ``/holdcast``: ``POST /holdcast/feedback`` records what an analyst did with an order.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include import config
from include.feedback import create_app


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
    fastapi_apps = [{"app": create_app(), "url_prefix": "/holdcast", "name": "holdcast feedback"}]
