from __future__ import annotations

import importlib.util
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "holdcast_plugin.py"


def test_plugin_links_the_mlflow_ui(monkeypatch):
    monkeypatch.setenv("HOLDCAST_MLFLOW_UI_URL", "http://127.0.0.1:5999")
    spec = importlib.util.spec_from_file_location("holdcast_plugin", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (view,) = module.HoldcastPlugin.external_views
    assert view["href"] == "http://127.0.0.1:5999"
    assert view["destination"] == "nav"
