"""Tests of the country-name table the source readers share."""

from __future__ import annotations

import pandas as pd

from include.sources.countries import is_iso2, to_iso2


def test_spanish_and_english_names_map_to_one_code():
    names = pd.Series(
        [
            "México",
            "Mexico",
            "MEXICO ",
            "EE. UU.",
            "Estados Unidos",
            "SudAfrica",
            "Sudáfrica",
            "Korea, North",
        ],
        dtype="string",
    )
    assert to_iso2(names).tolist() == ["MX", "MX", "MX", "US", "US", "ZA", "ZA", "KP"]


def test_unknown_names_stay_text_and_missing_stays_missing():
    names = pd.Series(["  Atlantis ", None, "Palestinian", "Corea del Sur"], dtype="string")
    codes = to_iso2(names)
    assert codes.iloc[0] == "Atlantis"
    assert pd.isna(codes.iloc[1])
    assert codes.tolist()[2:] == ["Palestinian", "KR"]
    assert is_iso2(codes).tolist() == [False, False, False, True]
