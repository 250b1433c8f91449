"""Sanctions name screening, measured: how often the features match names that are not listed.

Three kinds of names, all made by the demo ERP generator:

- clean: ordinary company names (:func:`include.demo_erp.names.company_names`), screened against the
  full SDN list shipped in ``include/data/ofac_sdn``: any match is a false match;
- near misses: listed entity names with a typo, two words swapped or another legal form
  (:func:`include.demo_erp.names.near_misses`): not the listed party, but a screener must look at them;
- exact: the listed names as written, which must always match.

The rates are printed (``pytest -s``) and bounded, so a change to the name normalisation that makes the
screen noisier, or blind to listed names, fails here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import sanctions_identical, sanctions_scores
from features.evidence import SANCTIONS_SCORE_WORTH_SAYING
from include.demo_erp import names, sanctions
from include.sources.sdn import SDN_LIST, read_sdn

REVIEW_SCORE = 90.0
"""The score from which the demo ERP's compliance rule holds an order (its soft step is centred here)."""
N_CLEAN = 10_000
COUNTRIES = np.asarray(list(names.LEGAL_FORMS), dtype=object)


@pytest.fixture(scope="module")
def full_list() -> pd.DataFrame:
    return read_sdn(SDN_LIST)


@pytest.fixture(scope="module")
def listed() -> np.ndarray:
    """Entity names of the demo's SDN sample with two words or more, the ones the generator imitates."""
    sample = sanctions.load_sample()
    entities = sample[sample["SDN_Type"].isna()]
    return entities.loc[
        sanctions.normalise_names(entities["SDN_Name"]).str.count(" ") >= 1, "SDN_Name"
    ].to_numpy()


@pytest.fixture(scope="module")
def screened(full_list, listed) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(20240503)
    kinds = {
        "clean": names.company_names(rng, COUNTRIES[rng.integers(0, len(COUNTRIES), N_CLEAN)]),
        # Each listed name three times: every kind of near miss is made for most names.
        "near_miss": names.near_misses(rng, np.repeat(listed, 3)),
        "exact": listed,
    }
    out = {}
    for kind, drawn in kinds.items():
        series = pd.Series(drawn, dtype="string")
        out[kind] = (sanctions_scores(series, full_list), sanctions_identical(series, full_list))
    return out


def _share(flags: np.ndarray) -> float:
    return float(np.mean(flags))


def test_false_match_rates_against_the_full_sdn_list(screened, listed):
    clean_score, clean_exact = screened["clean"]
    near_score, near_exact = screened["near_miss"]
    exact_score, exact_exact = screened["exact"]
    rates = {
        "clean >= 70": _share(clean_score >= 70),
        "clean >= evidence score": _share(clean_score >= SANCTIONS_SCORE_WORTH_SAYING),
        "clean >= review score": _share(clean_score >= REVIEW_SCORE),
        "clean exact match": _share(clean_exact == 1),
        "near miss >= review score": _share(near_score >= REVIEW_SCORE),
        "near miss score 100": _share(near_score == 100),
        "near miss exact match": _share(near_exact == 1),
        "listed >= review score": _share(exact_score >= REVIEW_SCORE),
        "listed exact match": _share(exact_exact == 1),
    }
    print(f"\nSanctions screening against the full SDN list ({N_CLEAN} clean, {len(near_score)} near-miss,")
    print(f"{len(listed)} listed names; evidence score {SANCTIONS_SCORE_WORTH_SAYING:.0f}, review score 90):")
    for name, rate in rates.items():
        print(f"  {name:<28} {rate:7.2%}")

    # Ordinary names almost never reach the score an analyst is shown, and never the review score.
    assert rates["clean >= evidence score"] <= 0.005
    assert rates["clean >= review score"] <= 0.001
    assert rates["clean exact match"] == 0.0
    # Listed names as written are always caught, by both features.
    assert rates["listed >= review score"] == 1.0 and rates["listed exact match"] == 1.0
    # Near misses are for review: the fuzzy score catches most, the exact flag none of them.
    assert rates["near miss >= review score"] >= 0.8
    assert rates["near miss exact match"] == 0.0


def test_the_evidence_threshold_sits_above_the_noise_of_shared_trade_words(screened):
    """Guard for the bound above: ordinary names do share words with listed ones at lower scores."""
    clean_score, _ = screened["clean"]
    assert _share(clean_score >= 70) > 0.05
    assert _share(clean_score >= SANCTIONS_SCORE_WORTH_SAYING) < _share(clean_score >= 70) / 10
