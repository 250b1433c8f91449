"""Shared test setup: every test runs against its own HOLDCAST_HOME, never the developer's."""

from __future__ import annotations

import os

import pytest

# Nothing a test does may call home: analytics and telemetry off before any library is imported.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture
def holdcast_home(tmp_path, monkeypatch):
    """A fresh HOLDCAST_HOME with every derived setting pointing inside it."""
    home = tmp_path / "holdcast"
    monkeypatch.setenv("HOLDCAST_HOME", str(home))
    for name in (
        "HOLDCAST_WAREHOUSE_URL",
        "HOLDCAST_LAKE_DIR",
        "HOLDCAST_DROP_DIR",
        "MLFLOW_TRACKING_URI",
        "HOLDCAST_MLFLOW_ARTIFACTS",
        "HOLDCAST_DATASET",
    ):
        monkeypatch.delenv(name, raising=False)
    return home
