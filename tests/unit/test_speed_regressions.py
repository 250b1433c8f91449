"""Behaviour the speed changes (c4fe0bf..804bd7e) altered, found by running the new code against 0dd5f7a.

Each case passed before those commits, failed after them, and passes again since the fix that followed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from features.build import build_order_features
from include.canonical import TABLES, coerce
from include.config import PROJECT_ROOT
from include.decisions import risk_text


def _orders(amounts: list[float]) -> pd.DataFrame:
    """Orders of one customer, a day apart, with these amounts."""
    columns = TABLES["orders"].column_names
    rows = [
        {
            "order_id": f"O{i}",
            "customer_id": "C1",
            "created_at": f"2024-04-{10 + i:02d}T00:00:00Z",
            "amount": amount,
            "status": "open",
        }
        for i, amount in enumerate(amounts)
    ]
    return coerce("orders", pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns))


@pytest.mark.parametrize("families", [["order"], ["credit"], None])
def test_the_callers_numpy_error_state_applies_to_every_family(families):
    # An infinite amount cannot be turned into whole cents: NumPy reports an invalid cast, which the
    # caller asked to raise.
    tables = {"orders": _orders([np.inf, 1000.0])}
    with (
        np.errstate(all="raise"),
        pytest.raises(FloatingPointError, match="invalid value encountered in cast"),
    ):
        build_order_features(tables, families=families)


def test_the_feature_build_runs_in_a_thread_that_outlives_the_main_thread():
    script = textwrap.dedent(
        """
        import threading
        import pandas as pd
        from features.build import build_order_features
        from include.canonical import TABLES, coerce

        columns = TABLES["orders"].column_names
        row = {"order_id": "O1", "customer_id": "C1", "created_at": "2024-04-10T00:00:00Z", "amount": 5.0}
        orders = coerce("orders", pd.DataFrame([{c: row.get(c) for c in columns}], columns=columns))

        from features.timeline import encode

        # Enough ids that the lookup would split them over threads of its own.
        ids = pd.Series([f"C{i % 1000}" for i in range(2_500_000)], dtype="string")
        known = pd.Index([f"C{i}" for i in range(1000)], dtype="string")

        def late():
            threading.main_thread().join()  # the interpreter is shutting down from here on
            print("built", build_order_features({"orders": orders}).shape, flush=True)
            print("looked up", int((encode(ids, known) >= 0).sum()), flush=True)

        threading.Thread(target=late).start()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "built (1, 70)" in done.stdout
    assert "looked up 2500000" in done.stdout


@pytest.mark.parametrize(
    ("risk", "text"),
    [
        (pd.Series([0, 2, 1]), ["0", "2", "1"]),
        (pd.Series([0.1, 1.1], dtype="float32"), ["0.1", "1.1"]),
    ],
    ids=["int64", "float32"],
)
def test_risk_text_of_an_out_of_range_risk_is_its_pandas_text(risk, text):
    assert risk.astype("string").tolist() == text
    assert risk_text(risk).tolist() == text
