"""The policy file's sections beyond bands and reasons: each mistake names the file and the path in it."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from include import config
from include.policy import PolicyError, load_policy


@pytest.fixture
def good_doc():
    return yaml.safe_load(config.HOLDCAST_POLICY_FILE.get().read_text())


def test_shipped_policy_reads_every_section():
    policy = load_policy(config.HOLDCAST_POLICY_FILE.get())
    assert [r.name for r in policy.hard_rules][:2] == ["exposure_over_limit", "sanctions_name_match"]
    assert policy.hard_rules[0].when[0].feature == "utilisation"
    assert policy.auto_release.max_risk == 0.10
    assert policy.customer_messages == {"incomplete_info": "missing_order_data"}
    assert policy.team_channels["credit_analysts"].slack == "holdcast_slack_credit"
    assert policy.credit_limits["target_utilisation"] == 0.8
    assert policy.costs["auto_release_thresholds"][0] == 0.02
    # Enterprise customers have their own, higher bands.
    assert policy.bands_of([0.65, 0.65], ["ENTERPRISE", "SMB"]).tolist() == ["medium", "high"]
    # A customer with no segment gets the default bands, whatever "missing" looks like.
    missing = pd.Series(["ENTERPRISE", pd.NA, None], dtype="object")
    assert policy.bands_of([0.65, 0.65, 0.65], missing).tolist() == ["medium", "high", "high"]
    assert policy.lowest_at_risk_min == 0.30


def _first_rule(d):
    return d["hard_rules"][0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: _first_rule(d)["when"][0].update(feature="utilization"),
            r"hard_rules\[0\]\.when\[0\]\.feature: expected a feature column name",
        ),
        (
            lambda d: _first_rule(d)["when"][0].update(below=2),
            r"hard_rules\[0\]\.when\[0\]: expected exactly one test",
        ),
        (
            lambda d: _first_rule(d)["when"][0].update(above="1.0"),
            r"hard_rules\[0\]\.when\[0\]\.above: expected a number",
        ),
        (lambda d: _first_rule(d).pop("reason"), r"hard_rules\[0\]\.reason: expected a reason code"),
        (lambda d: _first_rule(d).update(effect="hold"), r"hard_rules\[0\]\.effect: expected one of"),
        (lambda d: d["hard_rules"][1].update(name="exposure_over_limit"), r"hard_rules\[1\]\.name"),
        (lambda d: _first_rule(d).update(when=[]), r"hard_rules\[0\]\.when: expected a non-empty list"),
        (
            lambda d: d["templates"].update(team_line="{order_id} {colour}"),
            r"templates\.team_line: expected only the fields .*\['colour'\] are not known",
        ),
        (lambda d: d["templates"].update(team_intro="{} orders"), r"templates\.team_intro: expected only"),
        (
            lambda d: d["templates"].update(team_intro="{count orders"),
            r"templates\.team_intro: expected a text",
        ),
        (
            lambda d: d["reasons"]["incomplete_info"].update(customer_message="missing_po"),
            r"reasons\.incomplete_info\.customer_message: expected a template from",
        ),
        (lambda d: d["teams"].pop("compliance"), r"teams\.compliance: expected an entry for every team"),
        (lambda d: d["teams"]["order_desk"].update(email="desk"), r"teams\.order_desk\.email"),
        (lambda d: d["credit_limits"].pop("round_to"), r"credit_limits\.round_to: expected a value"),
        (lambda d: d["credit_limits"].update(low_risk_max=2), r"credit_limits\.low_risk_max: expected"),
        (
            lambda d: d["costs"].update(auto_release_thresholds=[0.1, 1.5]),
            r"costs\.auto_release_thresholds: expected a list of numbers between 0 and 1",
        ),
        (
            lambda d: d["segment_bands"]["ENTERPRISE"][0].update(name="urgent"),
            r"segment_bands\.ENTERPRISE: expected band names from",
        ),
        (
            lambda d: d["auto_release"].update(off_on_schema_drift="yes"),
            r"auto_release\.off_on_schema_drift: expected true or false",
        ),
        (lambda d: d["auto_release"].update(max_risks=0.1), r"auto_release keys \['max_risks'\]"),
    ],
)
def test_bad_section_names_file_and_path(tmp_path, good_doc, change, message):
    change(good_doc)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(good_doc))
    with pytest.raises(PolicyError, match=message) as info:
        load_policy(path)
    assert str(path) in str(info.value)
