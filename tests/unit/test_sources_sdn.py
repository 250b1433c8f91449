"""Tests of the OFAC SDN reader on the published tail case, crafted records and the shipped full list."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from include.canonical import TABLES, coerce
from include.sources.sdn import SDN_LIST, SdnFormatError, read_sdn

TAIL = Path(__file__).resolve().parent.parent / "fixtures" / "ingest" / "sdn_tail.csv"
# The hash SOURCES.md gives for the shared copy: the shipped list is that very file.
SDN_SHA256 = "210ca6b4a8187a34e0850be69ecc6e918f23ad7778b8b5b2f9c9d5fbbaf4e0cb"
NULLS = "-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- "


def _record(ent_num: str, name: str, program: str, remarks: str = "-0- ") -> str:
    quoted = remarks if remarks == "-0- " else f'"{remarks}"'
    return f'{ent_num},"{name}",-0- ,"{program}",{NULLS},{quoted}\r\n'


def _write(tmp_path: Path, *records: str, tail: bytes = b"\x1a") -> Path:
    path = tmp_path / "sdn.csv"
    path.write_bytes("".join(records).encode("utf-8") + tail)
    return path


def test_tail_case_right_reading():
    raw = TAIL.read_bytes()
    assert raw.endswith(b"\r\n\x1a") and raw.count(b"\r\n") == 3

    entries = read_sdn(TAIL).set_index("entry_id")
    assert entries.index.tolist() == ["36", "306", "9999"]
    assert entries.loc["9999", "name"] == "EXAMPLE TRADING FZE"
    assert entries.loc["9999", "program"] == "IRAN;SDGT"
    assert entries.loc["9999", "aliases"] == "EXAMPLE TRADING CO;EXMPL TRD"
    assert entries.loc["306", "aliases"] == "BNC"
    assert entries.loc["36", "program"] == "CUBA"
    # "-0- " (bare or quoted) is a null, not a value.
    assert pd.isna(entries.loc["36", "aliases"])
    assert entries["country"].isna().all()


def test_result_is_canonical():
    entries = read_sdn(TAIL)
    assert list(entries.columns) == TABLES["sanctions_entries"].column_names
    pd.testing.assert_frame_equal(entries, coerce("sanctions_entries", entries))


@pytest.mark.parametrize("tail", [b"", b"\x1a", b"\x1a\r\n", b"\r\n\x1a"])
def test_end_of_file_marker_is_not_a_record(tmp_path, tail):
    path = _write(tmp_path, _record("1", "A CO", "CUBA"), _record("2", "B CO", "IRAN"), tail=tail)
    entries = read_sdn(path)
    assert entries["entry_id"].tolist() == ["1", "2"]


def test_stray_control_byte_inside_the_file_is_an_error(tmp_path):
    path = _write(tmp_path, _record("1", "A CO", "CUBA"), "\x1a\r\n", _record("2", "B CO", "IRAN"))
    with pytest.raises(SdnFormatError, match=r"not a whole number at record\(s\) \[2\]"):
        read_sdn(path)


def test_aliases_with_apostrophes_nicknames_and_former_names(tmp_path):
    remarks = (
        "DOB 1970; a.k.a. 'AL-QA'IDA'; a.k.a. ''FOOPIE''; f.k.a. 'OLD NAME LTD'; "
        "a.k.a. 'ABU 'ABD AL-'AZIZ'; a.k.a. 'BNC'; a.k.a. 'BNC'."
    )
    path = _write(
        tmp_path,
        _record("1", "X", "SDGT", remarks),
        _record("2", "Y", "CYBER2", "Email Address x@example.org; a.k.a. 'WHOIS HACKIN"),
    )
    entries = read_sdn(path).set_index("entry_id")
    assert entries.loc["1", "aliases"] == "AL-QA'IDA;FOOPIE;OLD NAME LTD;ABU 'ABD AL-'AZIZ;BNC"
    # A Remarks field cut off by the list before the alias's closing quote yields no alias.
    assert pd.isna(entries.loc["2", "aliases"])


def test_country_from_primary_nationality(tmp_path):
    path = _write(
        tmp_path,
        _record("1", "A", "IRAN", "DOB 1960; nationality Iran; alt. nationality Germany; Gender Male"),
        _record("2", "B", "DPRK3", "nationality Korea, North."),
        _record("3", "C", "SDGT", "alt. nationality Germany"),
        _record("4", "D", "SDGT", "nationality Palestinian; Gender Male"),
        _record("5", "E", "SDGT", "Nationality of Registration Cayman Islands"),
    )
    assert read_sdn(path)["country"].tolist() == ["IR", "KP", pd.NA, "Palestinian", pd.NA]


def test_programs_are_split_and_stripped(tmp_path):
    path = _write(
        tmp_path,
        _record("1", "A", "IRAN] [SDGT] [IFSR"),
        _record("2", "B", "[CUBA]"),
        _record("3", "C", "CAATSA - RUSSIA"),
    )
    assert read_sdn(path)["program"].tolist() == ["IRAN;SDGT;IFSR", "CUBA", "CAATSA - RUSSIA"]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (
            [_record("1", "A", "CUBA"), _record("1", "B", "CUBA")],
            r"entry number repeats at record\(s\) \[1, 2\]",
        ),
        ([_record("1", "A", "CUBA"), '2,"B",-0- ,"CUBA"\r\n'], r"field is empty .* at record\(s\) \[2\]"),
        ([_record("1", "A", "CUBA"), '2,"B",-0- ,"CUBA",' + NULLS + ",-0- ,extra\r\n"], "fields"),
        ([_record("1", "-0-", "CUBA")], r"name is missing at record\(s\) \[1\]"),
    ],
)
def test_malformed_records_are_refused(tmp_path, records, message):
    with pytest.raises(SdnFormatError, match=message):
        read_sdn(_write(tmp_path, *records))


@pytest.mark.skipif(not SDN_LIST.exists(), reason="the shipped SDN list include/data/ofac_sdn is absent")
def test_full_list_2024_05_03():
    assert hashlib.sha256(SDN_LIST.read_bytes()).hexdigest() == SDN_SHA256
    entries = read_sdn(SDN_LIST)
    assert len(entries) == 14_965
    assert entries["entry_id"].is_unique
    assert entries["entry_id"].str.fullmatch("[0-9]+").all()
    assert entries["name"].notna().all()
    assert not entries["name"].str.contains("\r|\x1a|^\\s|\\s$", regex=True).any()
    assert not entries["aliases"].dropna().str.contains("\r", regex=False).any()
    assert entries["aliases"].notna().sum() == 2100
    assert entries["program"].notna().all()
    assert entries["program"].str.contains(";", regex=False).sum() > 1000

    by_id = entries.set_index("entry_id")
    assert by_id.loc["306", ["name", "program", "aliases"]].tolist() == [
        "BANCO NACIONAL DE CUBA",
        "CUBA",
        "BNC",
    ]
    assert by_id.loc["48907", "name"] == "UZAY GROUP DIS TICARET LIMITED SIRKETI"
    assert by_id.loc["6925", "aliases"] == "AHMED, A.;KHABAR, Abu;BAKR, Abu;FOOPIE;FUPI;AHMED THE TANZANIAN"
    assert (by_id["country"] == "RU").sum() > 1000
