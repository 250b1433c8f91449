"""Every setting holdcast reads, in one place.

Each setting is an environment variable with a type, a default and one line of documentation. A bad
value raises :class:`SettingError` naming the variable, so a misconfigured deployment fails at the
first task instead of deep inside a computation. Secrets never live here: they come from Airflow
connections (``AIRFLOW_CONN_*``), see ``.env.example``.

All paths default to folders under ``HOLDCAST_HOME`` (``<project>/.holdcast``), which git ignores.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

PROJECT_ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


class SettingError(ValueError):
    """An environment variable holds a value holdcast cannot use."""


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable: its name, how to parse it, its default and what it is for."""

    name: str
    parse: Callable[[str], T]
    default: Callable[[], str]
    doc: str

    def get(self) -> T:
        raw = os.environ.get(self.name)
        if raw is None or raw == "":
            raw = self.default()
        try:
            return self.parse(raw)
        except (TypeError, ValueError) as err:
            raise SettingError(f"{self.name}={raw!r} is not valid: {err}") from err


def _fraction(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError("expected a number between 0 and 1")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("expected a positive whole number")
    return value


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return raw

    return parse


def _home() -> str:
    return str(PROJECT_ROOT / ".holdcast")


HOLDCAST_HOME = Setting("HOLDCAST_HOME", Path, _home, "Folder for every file a run writes.")


def _dataset_name(raw: str) -> str:
    import re

    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", raw):
        raise ValueError("expected a name of lower-case letters, digits and _ (a mapping's 'datasets' entry)")
    return raw


HOLDCAST_DATASET = Setting(
    "HOLDCAST_DATASET",
    _dataset_name,
    lambda: "demo",
    "Which sources the DAGs ingest: the mappings whose 'datasets' name it (demo: the generated demo ERP; "
    "dataco: the DataCo public sample; sap, receivables or your own).",
)


def dataset_home() -> Path:
    """Each dataset keeps its own lake and warehouse, so the demo and DataCo never mix rows."""
    return HOLDCAST_HOME.get() / HOLDCAST_DATASET.get()


HOLDCAST_WAREHOUSE_URL = Setting(
    "HOLDCAST_WAREHOUSE_URL",
    str,
    lambda: f"sqlite:///{dataset_home() / 'warehouse.db'}",
    "SQLAlchemy URL of the warehouse holding canonical tables, quarantine and decisions.",
)
HOLDCAST_LAKE_DIR = Setting(
    "HOLDCAST_LAKE_DIR",
    Path,
    lambda: str(dataset_home() / "lake"),
    "Folder of immutable raw landings and feature snapshots (Parquet, one partition per interval).",
)
HOLDCAST_DROP_DIR = Setting(
    "HOLDCAST_DROP_DIR",
    Path,
    lambda: str(dataset_home() / "drops"),
    "Folder where bureau, CRM and sanctions file extracts arrive.",
)
HOLDCAST_GX_DIR = Setting(
    "HOLDCAST_GX_DIR",
    Path,
    lambda: str(dataset_home() / "gx"),
    "Great Expectations project: suites, each run's validation results and the data docs site.",
)
HOLDCAST_MAPPINGS_DIR = Setting(
    "HOLDCAST_MAPPINGS_DIR",
    Path,
    lambda: str(PROJECT_ROOT / "include" / "mappings"),
    "Folder of source mapping files (*.yaml); a run reads those naming its dataset.",
)
HOLDCAST_ERP_CONN_ID = Setting(
    "HOLDCAST_ERP_CONN_ID",
    str,
    lambda: "holdcast_erp",
    "Airflow connection id of the ERP database read by ingestion and written by write-back.",
)
HOLDCAST_MODEL_NAME = Setting(
    "HOLDCAST_MODEL_NAME",
    str,
    lambda: (
        "holdcast_hold_risk"
        if HOLDCAST_DATASET.get() == "demo"
        else f"holdcast_hold_risk_{HOLDCAST_DATASET.get()}"
    ),
    "Name of the registered model in MLflow; scoring loads models:/<name>@champion.",
)
MLFLOW_TRACKING_URI = Setting(
    "MLFLOW_TRACKING_URI",
    str,
    lambda: f"sqlite:///{HOLDCAST_HOME.get() / 'mlflow.db'}",
    "MLflow tracking and registry store.",
)
HOLDCAST_MLFLOW_ARTIFACTS = Setting(
    "HOLDCAST_MLFLOW_ARTIFACTS",
    str,
    lambda: (HOLDCAST_HOME.get() / "mlartifacts").as_uri(),
    "Artifact root for the MLflow experiment created on first training.",
)
HOLDCAST_QUARANTINE_TOLERANCE = Setting(
    "HOLDCAST_QUARANTINE_TOLERANCE",
    _fraction,
    lambda: "0.05",
    "Largest share of a source batch that may be quarantined before the batch fails.",
)
HOLDCAST_LABEL_HORIZON_DAYS = Setting(
    "HOLDCAST_LABEL_HORIZON_DAYS",
    _positive_int,
    lambda: "14",
    "A hold counts as the outcome of an order if placed within this many days of its creation.",
)
HOLDCAST_POLICY_FILE = Setting(
    "HOLDCAST_POLICY_FILE",
    Path,
    lambda: str(PROJECT_ROOT / "include" / "policy.yaml"),
    "Policy file: risk bands, team and suggested action per reason.",
)


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("expected zero or a positive whole number")
    return value


HOLDCAST_PROMOTION_MARGIN = Setting(
    "HOLDCAST_PROMOTION_MARGIN",
    float,
    lambda: "0.0",
    "How much a challenger's any-hold PR-AUC must exceed the champion's to take the alias automatically.",
)
HOLDCAST_MLFLOW_UI_URL = Setting(
    "HOLDCAST_MLFLOW_UI_URL",
    str,
    lambda: "http://127.0.0.1:5000",
    "Address of the MLflow UI, linked from the Airflow UI's navigation.",
)
HOLDCAST_TASK_RETRIES = Setting(
    "HOLDCAST_TASK_RETRIES",
    _non_negative_int,
    lambda: "2",
    "Retries of every holdcast task; the demo and the tests set 0 so a failure shows at once.",
)

ALL_SETTINGS: tuple[Setting, ...] = (
    HOLDCAST_HOME,
    HOLDCAST_DATASET,
    HOLDCAST_WAREHOUSE_URL,
    HOLDCAST_LAKE_DIR,
    HOLDCAST_DROP_DIR,
    HOLDCAST_MAPPINGS_DIR,
    HOLDCAST_GX_DIR,
    HOLDCAST_ERP_CONN_ID,
    HOLDCAST_MODEL_NAME,
    MLFLOW_TRACKING_URI,
    HOLDCAST_MLFLOW_ARTIFACTS,
    HOLDCAST_QUARANTINE_TOLERANCE,
    HOLDCAST_LABEL_HORIZON_DAYS,
    HOLDCAST_POLICY_FILE,
    HOLDCAST_TASK_RETRIES,
    HOLDCAST_PROMOTION_MARGIN,
    HOLDCAST_MLFLOW_UI_URL,
)

HOLDCAST_SAP_CONN_ID = Setting(
    "HOLDCAST_SAP_CONN_ID",
    str,
    lambda: "holdcast_sap",
    "Airflow connection id of the SAP S/4HANA system (sales-order OData API), when the ERP is SAP.",
)
HOLDCAST_WRITEBACK_TARGET = Setting(
    "HOLDCAST_WRITEBACK_TARGET",
    _choice("sql", "sap"),
    lambda: "sql",
    "Where scoring writes decisions: the SQL ERP's status table (sql) or the SAP sales orders (sap).",
)

ALL_SETTINGS = (*ALL_SETTINGS, HOLDCAST_SAP_CONN_ID, HOLDCAST_WRITEBACK_TARGET)

HOLDCAST_SCORE_SHARDS = Setting(
    "HOLDCAST_SCORE_SHARDS",
    _positive_int,
    lambda: "2",
    "How many shards scoring splits the open orders into; each shard is one task a worker can take.",
)

HOLDCAST_EXPLAINER = Setting(
    "HOLDCAST_EXPLAINER",
    _choice("path", "shap"),
    lambda: "path",
    "How at-risk orders' top factors are found: path attributions (fast) or TreeSHAP (exact, ~60x dearer).",
)

ALL_SETTINGS = (*ALL_SETTINGS, HOLDCAST_SCORE_SHARDS, HOLDCAST_EXPLAINER)


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0.0:
        raise ValueError("expected a number above 0")
    return value


HOLDCAST_AUTO_PROMOTE = Setting(
    "HOLDCAST_AUTO_PROMOTE",
    _bool,
    lambda: "true",
    "Whether training may move `champion` itself when the gate passes; false leaves it to a person.",
)
HOLDCAST_PSI_ALERT = Setting(
    "HOLDCAST_PSI_ALERT",
    _positive_float,
    lambda: "0.25",
    "PSI of a feature or score, training window against recent orders, above which the monitor alerts.",
)
HOLDCAST_MONITOR_WINDOW_DAYS = Setting(
    "HOLDCAST_MONITOR_WINDOW_DAYS",
    _positive_int,
    lambda: "30",
    "The monitor compares the orders created in this many days before the interval with training.",
)
HOLDCAST_PERFORMANCE_DROP_ALERT = Setting(
    "HOLDCAST_PERFORMANCE_DROP_ALERT",
    _fraction,
    lambda: "0.25",
    "Alert when a version's realized PR-AUC falls this share below its validation PR-AUC.",
)

ALL_SETTINGS = (
    *ALL_SETTINGS,
    HOLDCAST_AUTO_PROMOTE,
    HOLDCAST_PSI_ALERT,
    HOLDCAST_MONITOR_WINDOW_DAYS,
    HOLDCAST_PERFORMANCE_DROP_ALERT,
)

HOLDCAST_NOTIFY_MODE = Setting(
    "HOLDCAST_NOTIFY_MODE",
    _choice("outbox", "send"),
    lambda: "outbox",
    "Team messages: written to the outbox folder only (outbox), or also sent by e-mail and Slack (send).",
)
HOLDCAST_OUTBOX_DIR = Setting(
    "HOLDCAST_OUTBOX_DIR",
    Path,
    lambda: str(dataset_home() / "outbox"),
    "Folder of each run's team messages (<as_of>/<team>.eml) and customer message drafts.",
)
HOLDCAST_SMTP_CONN_ID = Setting(
    "HOLDCAST_SMTP_CONN_ID",
    str,
    lambda: "smtp_default",
    "Airflow connection id of the SMTP server team e-mails go through when HOLDCAST_NOTIFY_MODE=send.",
)

ALL_SETTINGS = (*ALL_SETTINGS, HOLDCAST_NOTIFY_MODE, HOLDCAST_OUTBOX_DIR, HOLDCAST_SMTP_CONN_ID)

HOLDCAST_BATCH_MEMORY = Setting(
    "HOLDCAST_BATCH_MEMORY",
    _choice("reuse", "system"),
    lambda: "reuse",
    "How a heavy task's process allocates: reuse keeps freed memory for its next arrays (faster, "
    "see include/runtime.py); system leaves the C allocator's and NumPy's defaults.",
)

ALL_SETTINGS = (*ALL_SETTINGS, HOLDCAST_BATCH_MEMORY)
