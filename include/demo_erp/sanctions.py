"""The OFAC SDN list in its published CSV layout: read, write, sample, and screen names against it.

The reader here keeps every field as published, so the demo's extract is written back byte for byte;
reading the list into canonical ``sanctions_entries`` is :func:`include.sources.sdn.read_sdn`'s job.

The published ``sdn.csv`` has no header and twelve columns (:data:`SDN_COLUMNS`). ``ent_num`` is a bare
number, every other value is double-quoted, a missing value is the bare string ``-0-`` followed by one
space, lines end in CRLF and the file ends with a lone 0x1A (end-of-file) byte. Several programs in one
entry are joined by ``] [``; aliases sit inside ``Remarks`` as ``a.k.a. '...'``.

The demo world ships a sample of real entries (``sdn_sample.csv``, see the package README) and screens
its customer names against it the way an ERP's compliance check does: case-blind, punctuation and legal
forms removed, then a token-sort fuzzy ratio (0-100) against every listed name.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from include.sources.sdn import SDN_COLUMNS, SdnFormatError

logger = logging.getLogger(__name__)

SDN_NULL = "-0- "
"""How the published file writes a missing value: not quoted, with a trailing space."""
SDN_EOF = "\x1a"
SAMPLE_PATH = Path(__file__).with_name("sdn_sample.csv")

# Tokens an ERP screening drops before comparing: legal forms and connecting words carry no identity.
_NOISE_TOKENS = frozenset(
    "LTD LIMITED LLC CO COMPANY INC CORP CORPORATION GMBH AG KG SA SAS SARL BV NV PLC JSC OJSC PJSC CJSC "
    "OOO OAO ZAO SPA SRL SL AB AS APS OY FZE FZCO FZC DE CV DEL LA EL AND THE OF".split()
)


def read_sdn(path: Path) -> pd.DataFrame:
    """Read an SDN file in the published layout.

    Args:
        path: the CSV file.

    Returns:
        One row per entry with the twelve :data:`SDN_COLUMNS` as text; ``-0-`` becomes a missing value.
        The closing 0x1A line is not an entry.

    Raises:
        SdnFormatError: a line has not twelve fields or its ``ent_num`` is not a whole number.
    """
    text = path.read_bytes().decode("ascii", errors="strict").rstrip(SDN_EOF)
    rows = []
    for line_no, fields in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        if not fields:
            continue
        if len(fields) != len(SDN_COLUMNS):
            expected = len(SDN_COLUMNS)
            raise SdnFormatError(f"{path.name} line {line_no}: {len(fields)} fields, expected {expected}")
        if not fields[0].strip().isdigit():
            raise SdnFormatError(f"{path.name} line {line_no}: ent_num {fields[0]!r} is not a whole number")
        rows.append([None if f.strip() == SDN_NULL.strip() else f for f in fields])
    return pd.DataFrame(rows, columns=list(SDN_COLUMNS), dtype="string")


def format_sdn(frame: pd.DataFrame) -> str:
    """The SDN entries of ``frame`` as the text of a published ``sdn.csv`` (CRLF lines, closing 0x1A)."""
    cells = []
    for col in SDN_COLUMNS:
        values = frame[col].astype("string")
        if col == "ent_num":
            cells.append(values.fillna(""))
        else:
            quoted = '"' + values.str.replace('"', '""', regex=False) + '"'
            cells.append(quoted.fillna(SDN_NULL))
    lines = cells[0].str.cat(cells[1:], sep=",")
    return "".join(line + "\r\n" for line in lines) + SDN_EOF


def write_sdn(frame: pd.DataFrame, path: Path) -> int:
    """Write ``frame`` as an SDN file in the published layout; returns the number of entries."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(format_sdn(frame).encode("ascii"))
    return len(frame)


def sample_sdn(frame: pd.DataFrame, seed: int = 20240503) -> pd.DataFrame:
    """A few hundred entries of a full list, weighted towards companies, in ``ent_num`` order.

    This is how ``sdn_sample.csv`` was drawn from the 2024-05-03 list: 240 entities, 45 individuals,
    12 vessels and 3 aircraft.
    """
    rng = np.random.default_rng(seed)
    wanted = {None: 240, "individual": 45, "vessel": 12, "aircraft": 3}
    parts = []
    for kind, n in wanted.items():
        pool = frame[frame["SDN_Type"].isna()] if kind is None else frame[frame["SDN_Type"] == kind]
        parts.append(pool.iloc[np.sort(rng.choice(len(pool), size=min(n, len(pool)), replace=False))])
    out = pd.concat(parts)
    return out.sort_values("ent_num", key=lambda s: s.astype(int)).reset_index(drop=True)


def load_sample() -> pd.DataFrame:
    """The SDN sample shipped with the package."""
    return read_sdn(SAMPLE_PATH)


def normalise_names(names: pd.Series) -> pd.Series:
    """Upper case, punctuation to spaces, legal forms, connecting words and single letters dropped."""
    cleaned = names.astype("string").fillna("").str.upper().str.replace(r"[^A-Z0-9 ]", " ", regex=True)
    return cleaned.str.split().map(lambda words: " ".join(w for w in words if _carries_identity(w)))


def _carries_identity(word: str) -> bool:
    return len(word) > 1 and word not in _NOISE_TOKENS


def screening_scores(names: pd.Series, listed: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Best fuzzy match of each name against the listed names, as an ERP's sanctions screening computes it.

    Args:
        names: names to screen (customers).
        listed: names on the list.

    Returns:
        ``(score, index)``: per name, the best token-sort ratio (0-100) and the position in ``listed`` of
        the entry that scored it.
    """
    from rapidfuzz import fuzz, process

    queries = normalise_names(names).tolist()
    choices = normalise_names(listed).tolist()
    matrix = process.cdist(queries, choices, scorer=fuzz.token_sort_ratio, workers=1)
    best = matrix.argmax(axis=1)
    return matrix[np.arange(len(queries)), best].astype("float64"), best
