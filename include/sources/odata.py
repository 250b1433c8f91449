"""Values as SAP's OData v2 JSON format writes them.

OData v2 (the protocol behind S/4HANA's ``API_SALES_ORDER_SRV``) has its own JSON habits:

- ``Edm.DateTime`` is ``/Date(1741046400000)/``: milliseconds since 1970-01-01 UTC;
- ``Edm.DateTimeOffset`` is ``/Date(1741222800000+0060)/``: the same UTC milliseconds, followed by the
  original zone's offset in *minutes* (``+0060`` is one hour). The milliseconds already count UTC time,
  so the offset says how the value was shown, not how to shift it;
- ``Edm.Decimal`` comes as a string ("12500.000", "-35.500") so no precision is lost in a float.

Only the value shapes live here; what a field means belongs to the source's mapping file.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

ODATA_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
"""``/Date(<ms since 1970 UTC>[<+|-><offset minutes, 4 digits>])/``."""


def parse_odata_dates(values: pd.Series) -> pd.Series:
    """Parse ``/Date(...)/`` strings to timezone-aware UTC timestamps; anything else becomes missing.

    The caller decides what a missing result means (blank input, or a value of the wrong shape).
    """
    import pandas as pd

    parts = values.astype("string").str.strip().str.extract(ODATA_DATE.pattern)
    millis = pd.to_numeric(parts[0], errors="coerce")
    return pd.to_datetime(millis, unit="ms", utc=True).astype("datetime64[us, UTC]")


def odata_offset_minutes(value: str) -> int | None:
    """The display offset in minutes carried by a ``DateTimeOffset`` value, or ``None`` when absent."""
    match = ODATA_DATE.match(value.strip())
    if match is None:
        raise ValueError(f"not an OData v2 date: {value!r}; expected /Date(<milliseconds>[+-MMMM])/")
    return int(match.group(2)) if match.group(2) else None


def pad_keys(values: pd.Series, length: int = 10) -> pd.Series:
    """SAP's ALPHA conversion: all-digit keys padded with zeros to ``length`` ("4712" -> "0000004712").

    Keys with letters are kept as sent (stripped); blank and missing values become missing.
    """
    text = values.astype("string").str.strip()
    text = text.mask(text == "")
    digits = text.str.fullmatch(r"\d+").fillna(False).astype(bool)
    return text.where(~digits, text.str.zfill(length))


def parse_odata_decimals(values: pd.Series) -> pd.Series:
    """``Edm.Decimal`` strings ("12500.000", "-35.500") as exact :class:`decimal.Decimal` values.

    Blank or missing values become ``None``; a value that is not a decimal number raises naming it.
    """
    from decimal import Decimal, InvalidOperation

    def one(value):
        if value is None or value != value or str(value).strip() == "":
            return None
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation as err:
            raise ValueError(f"not an OData decimal: {value!r}; expected digits like '-35.500'") from err
        if not number.is_finite():
            raise ValueError(f"not an OData decimal: {value!r}; expected a finite number")
        return number

    return values.map(one).astype(object)
