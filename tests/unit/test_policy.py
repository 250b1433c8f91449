from __future__ import annotations

import pytest
import yaml

from include import config
from include.decisions import PolicyError, load_policy


def test_shipped_policy_loads():
    policy = load_policy(config.HOLDCAST_POLICY_FILE.get())
    assert policy.bands_of([0.95, 0.60, 0.59, 0.30, 0.0]).tolist() == [
        "high",
        "high",
        "medium",
        "medium",
        "low",
    ]
    assert policy.teams["credit"] == "credit_analysts"


def _write(tmp_path, doc):
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def good_doc():
    return yaml.safe_load(config.HOLDCAST_POLICY_FILE.get().read_text())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(colour="red"), r"keys \['colour'\]"),
        (lambda d: d["bands"][0].update(min=1.5), r"bands\[0\]\.min: expected a number between 0 and 1"),
        (lambda d: d["bands"].reverse(), "ordered from the highest"),
        (lambda d: d.update(at_risk_bands=["urgent"]), "at_risk_bands"),
        (
            lambda d: d["reasons"].pop("payment"),
            r"reasons\.payment: expected a mapping with 'team' and 'action'",
        ),
        (lambda d: d["reasons"].update(weather={"team": "x", "action": "y"}), r"reasons\.weather"),
        (lambda d: d.update(version=3), "version: expected a non-empty string"),
        (lambda d: d.pop("at_risk_bands"), "at_risk_bands: expected a non-empty list"),
        (lambda d: d["bands"][0].update(min=True), r"bands\[0\]\.min: expected a number"),
        (lambda d: d["bands"][1].update(name="high"), r"each band name once; \['high'\] repeat"),
        (
            lambda d: d["reasons"].update(payments=d["reasons"].pop("payment")),
            r"reasons\.payments: expected a",
        ),
    ],
)
def test_bad_policy_names_file_and_path(tmp_path, good_doc, change, message):
    change(good_doc)
    path = _write(tmp_path, good_doc)
    with pytest.raises(PolicyError, match=message) as info:
        load_policy(path)
    assert str(path) in str(info.value)
