"""The Airflow assets that link holdcast's DAGs (data-aware scheduling, no sensors on files).

Each producing task attaches ``{"as_of": "<interval label>"}`` to its asset event, so a consumer
triggered by the event works on exactly the interval that was produced.
"""

from __future__ import annotations

from airflow.sdk import Asset

CANONICAL_TABLES = Asset("holdcast://warehouse/canonical", group="holdcast")
ORDER_FEATURES = Asset("holdcast://lake/features", group="holdcast")
CHAMPION_MODEL = Asset("holdcast://mlflow/champion", group="holdcast")
ERP_ORDER_STATUS = Asset("holdcast://erp/order_status", group="holdcast")
RETRAIN_REQUEST = Asset("holdcast://models/retrain-request", group="holdcast")
"""Emitted by holdcast_monitor on a drift, performance or validation breach; starts holdcast_train."""
