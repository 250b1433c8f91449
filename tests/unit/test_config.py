from __future__ import annotations

import pytest

from include import config


def test_defaults_live_under_home(holdcast_home):
    assert config.HOLDCAST_LAKE_DIR.get() == holdcast_home / "demo" / "lake"
    assert config.MLFLOW_TRACKING_URI.get() == f"sqlite:///{holdcast_home / 'mlflow.db'}"
    assert config.HOLDCAST_MODEL_NAME.get() == "holdcast_hold_risk"


def test_dataset_keeps_its_own_lake_and_model(holdcast_home, monkeypatch):
    monkeypatch.setenv("HOLDCAST_DATASET", "dataco")
    assert config.HOLDCAST_LAKE_DIR.get() == holdcast_home / "dataco" / "lake"
    assert config.HOLDCAST_MODEL_NAME.get() == "holdcast_hold_risk_dataco"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("HOLDCAST_QUARANTINE_TOLERANCE", "1.5", "between 0 and 1"),
        ("HOLDCAST_QUARANTINE_TOLERANCE", "lots", "HOLDCAST_QUARANTINE_TOLERANCE='lots'"),
        ("HOLDCAST_DATASET", "My Data", "lower-case letters, digits and _"),
        ("HOLDCAST_LABEL_HORIZON_DAYS", "0", "positive whole number"),
    ],
)
def test_bad_value_names_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    setting = next(s for s in config.ALL_SETTINGS if s.name == name)
    with pytest.raises(config.SettingError, match=message):
        setting.get()
