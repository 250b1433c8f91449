"""Helpers every file reader in :mod:`include.sources` shares: decoding, blanks, identifiers, errors.

Real extracts disagree on encoding, line ends and number formatting; these helpers settle each question
once, for a whole file, so two readers never answer it differently.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

ENCODINGS: tuple[str, ...] = ("utf-8-sig", "latin-1")
"""Tried in order on a whole file, never per row. latin-1 decodes any byte, so it comes last."""

_FLOAT_SHAPED_ID = r"^([0-9]+)\.0+$"


class SourceFormatError(ValueError):
    """A source file does not have the shape its reader declares (columns, fields, encoding)."""


def read_text(path: str | Path) -> tuple[str, str]:
    """Read a whole file as text, choosing one encoding for the whole file.

    Args:
        path: the file to read.

    Returns:
        The decoded text and the name of the encoding that decoded it (``utf-8-sig`` also covers plain
        UTF-8 without a byte-order mark).
    """
    raw = Path(path).read_bytes()
    for encoding in ENCODINGS[:-1]:
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError as err:
            logger.debug("%s is not %s (byte %s): trying the next encoding", path, encoding, err.start)
    return raw.decode(ENCODINGS[-1]), ENCODINGS[-1]


def blank_to_na(values: pd.Series) -> pd.Series:
    """Strip surrounding white space and turn empty strings into missing values."""
    stripped = values.str.strip()
    return stripped.mask(stripped == "")


def normalise_id(values: pd.Series) -> pd.Series:
    """Return identifiers as text, undoing a trip through a float: ``"725.0"`` becomes ``"725"``.

    Leading zeros already lost by the source are not restored: the value is kept as the source gives it.
    Blank values become missing.
    """
    return blank_to_na(values).str.replace(_FLOAT_SHAPED_ID, r"\1", regex=True)
