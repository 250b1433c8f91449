"""Text of many numbers at once, written exactly as Python writes each one.

Decisions, their hashes and the model's top factors hold numbers as text. Writing a million of them
with ``repr`` one by one costs more than the predict they come from; Arrow writes them in one pass.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def float_text(values: np.ndarray) -> pa.StringArray:
    """Each float as ``repr`` writes it (and so JSON and pandas' ``astype("string")``), through Arrow.

    Arrow writes the same shortest round-trip digits as ``repr`` but in another form for whole numbers
    ("2" for "2.0"), below 1e-4 ("0.00001" for "1e-05"), for NaN and infinities, and with an exponent
    where ``repr`` has none (from 1e10 up with many digits); those values, and from 1e16 up where
    ``repr`` uses exponents, are written by ``repr`` itself. ``tests/unit/test_text.py`` compares the
    two on every class of value.
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    text = pc.cast(pa.array(values), pa.string())
    magnitude = np.abs(values)
    with np.errstate(invalid="ignore"):
        odd = ~np.isfinite(values) | (magnitude < 1e-4) | (magnitude >= 1e16) | (values == np.trunc(values))
    odd |= pc.match_substring(text, "e").to_numpy(zero_copy_only=False)
    if odd.any():
        written = pa.array([repr(v) for v in values[odd].tolist()], pa.string())
        text = pc.replace_with_mask(text, pa.array(odd), written)
    return text
