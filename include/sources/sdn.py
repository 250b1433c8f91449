"""Read the OFAC Specially Designated Nationals list (``sdn.csv``) into canonical ``sanctions_entries``.

The US Treasury publishes the SDN list as a CSV without a header, one entry per record, with the columns
of :data:`SDN_COLUMNS`. Its habits, all handled here:

- missing values are written ``-0-``, usually with a trailing space and sometimes quoted;
- several programs share one field joined by ``] [`` ("IRAN] [SDGT"): kept as ``IRAN;SDGT``;
- aliases live inside ``Remarks`` as ``a.k.a. 'NAME'`` (also ``f.k.a.``, formerly known as, and
  ``n.k.a.``, now known as: a screen must catch a former name too): kept as ``NAME1;NAME2``. Names may
  contain apostrophes ("AL-QA'IDA"); an alias ends at a quote followed by ``;``, ``,``, ``.`` or the end.
  The CSV truncates long Remarks, so an alias cut off without its closing quote is dropped;
- lines end in CRLF and the file ends with a DOS end-of-file byte (0x1A) on a line of its own: that is
  not a record and not an error. Every field is always written, so an empty field marks a short or
  cut-off record (a truncated download) and is refused, as are bad or repeated entry numbers.

Country: the list has no country column (addresses ship in a separate file, ``add.csv``, not read here).
``country`` is the first (primary, not ``alt.``) ``nationality X`` found in Remarks, as an ISO alpha-2
code where :mod:`include.sources.countries` knows the name, else the list's text ("Palestinian"). It is
missing for most entities and vessels; a screen must not read a missing country as "no match".

The full list as of 2024-05-03 ships in ``include/data/ofac_sdn`` (:data:`SDN_LIST`, public domain).
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from include.canonical import coerce
from include.sources.common import SourceFormatError, read_text
from include.sources.countries import to_iso2

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

SDN_LIST = Path(__file__).resolve().parent.parent / "data" / "ofac_sdn" / "sdn_2024-05-03.csv"
"""The shipped SDN list as of 2024-05-03, 14,965 entries (public domain, see ATTRIBUTION.md beside it)."""

SDN_COLUMNS: tuple[str, ...] = (
    "ent_num",
    "SDN_Name",
    "SDN_Type",
    "Program",
    "Title",
    "Call_Sign",
    "Vess_type",
    "Tonnage",
    "GRT",
    "Vess_flag",
    "Vess_owner",
    "Remarks",
)
SDN_NULL = "-0-"
"""The list's missing value, compared after stripping (the file writes ``-0- `` with a trailing space)."""

SEPARATOR = ";"
"""Joins several programs or aliases in one canonical field."""

_END_OF_FILE = re.compile(r"\x1a+[\r\n]*\Z")
_ALIAS = r"\b[afn]\.k\.a\.,?\s*'(.*?)'(?=\s*(?:[;,.]|$))"
_NATIONALITY = r"(?<!alt\. )\bnationality ([^;]+)"
_PROGRAM_JOIN = r"\s*\]\s*\[\s*"


class SdnFormatError(SourceFormatError):
    """An SDN file does not have the list's layout: wrong field count, bad or repeated entry number."""


def read_sdn(path: str | Path = SDN_LIST) -> pd.DataFrame:
    """Read an OFAC ``sdn.csv`` into canonical ``sanctions_entries``.

    Args:
        path: the SDN CSV (default: the shipped 2024-05-03 list).

    Returns:
        One row per entry: ``entry_id`` (the list's ``ent_num``), ``name``, ``country``, ``program``
        and ``aliases`` (``;``-joined), passed through :func:`include.canonical.coerce`.

    Raises:
        SdnFormatError: a record does not split into the 12 fields or has an empty one, or an entry
            number is missing, not a whole number or repeated, or a name is missing. The message names
            the records.
    """
    import pandas as pd

    source = Path(path).name
    text, encoding = read_text(path)
    text, marker = _END_OF_FILE.subn("", text)
    if marker:
        logger.debug("SDN %s: end-of-file byte 0x1A dropped", source)
    try:
        raw = pd.read_csv(io.StringIO(text), header=None, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        raw = pd.DataFrame(columns=range(len(SDN_COLUMNS)), dtype="str")
    except pd.errors.ParserError as err:
        raise SdnFormatError(f"SDN {source}: records do not split into fields: {err}") from err
    if raw.shape[1] != len(SDN_COLUMNS):
        raise SdnFormatError(f"SDN {source}: {raw.shape[1]} fields per record, expected {len(SDN_COLUMNS)}")
    raw.columns = list(SDN_COLUMNS)
    stripped = raw.apply(lambda values: values.str.strip())
    # The list writes -0- for a null, so an empty field means a short record: a cut-off download ends so.
    _check_entries(stripped, source)
    sdn = stripped.mask(stripped == SDN_NULL)

    remarks = sdn["Remarks"]
    nationality = remarks.str.extract(_NATIONALITY, expand=False).str.strip().str.rstrip(".").str.strip()
    entries = pd.DataFrame(
        {
            "entry_id": sdn["ent_num"],
            "name": sdn["SDN_Name"],
            "country": to_iso2(nationality),
            "program": sdn["Program"].str.replace(_PROGRAM_JOIN, SEPARATOR, regex=True).str.strip("[] "),
            "aliases": _aliases(remarks),
        }
    )
    entries = coerce("sanctions_entries", entries)
    logger.info(
        "SDN %s (%s): %d entries; %d with aliases, %d with a country, %d in several programs",
        source,
        encoding,
        len(entries),
        int(entries["aliases"].notna().sum()),
        int(entries["country"].notna().sum()),
        int(entries["program"].str.contains(SEPARATOR, regex=False).sum()),
    )
    return entries


def _check_entries(fields: pd.DataFrame, source: str) -> None:
    """Refuse short records and records without a usable entry number or name, naming the first few.

    ``fields`` holds the stripped text of every field; records are counted from 1.
    """
    ent_num = fields["ent_num"]
    faults = {
        "entry number is missing or not a whole number": ~ent_num.str.fullmatch(r"[0-9]+"),
        "entry number repeats": ent_num.duplicated(keep=False),
        "name is missing": fields["SDN_Name"].isin([SDN_NULL, ""]),
        "field is empty (short or cut-off record; the list writes -0- for a null)": (fields == "").any(
            axis=1
        ),
    }
    found = [
        f"{rule} at record(s) {[int(i) + 1 for i in mask[mask].index[:5]]}"
        for rule, mask in faults.items()
        if mask.any()
    ]
    if found:
        raise SdnFormatError(f"SDN {source}: " + "; ".join(found))


def _aliases(remarks: pd.Series) -> pd.Series:
    """The ``;``-joined aliases of each entry, in the list's order, without repeats; missing if none."""
    found = remarks.str.findall(_ALIAS)

    def join(names: list[str] | float) -> str | None:
        if not isinstance(names, list) or not names:
            return None
        # A nickname is written with its own quotes (a.k.a. ''FOOPIE''); the separator must stay unambiguous.
        cleaned = (n[1:-1] if len(n) > 1 and n[0] == n[-1] == "'" else n for n in names)
        kept = dict.fromkeys(n.strip().replace(SEPARATOR, ",") for n in cleaned)
        return SEPARATOR.join(n for n in kept if n) or None

    return found.map(join)
