"""include.text.float_text writes every float as repr does, on every class of value."""

from __future__ import annotations

import numpy as np

from include.text import float_text


def _as_repr(values: np.ndarray) -> list[str]:
    return [repr(v) for v in values.tolist()]


def test_every_class_of_value_is_written_as_repr_writes_it():
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.normal(0, 1, 20_000),
            np.round(rng.normal(0, 3, 20_000), 4),  # top-factor contributions
            rng.uniform(-1e-3, 1e-3, 5_000),  # around repr's switch to exponents at 1e-4
            10.0 ** rng.uniform(-12, 20, 5_000) * rng.choice([-1, 1], 5_000),
            np.arange(-50, 50, dtype=np.float64),  # whole numbers: "2.0", not "2"
            [0.0, -0.0, 1e-4, 1e-5, 9.999e-5, 1e15, 1e16, 1.5e16, 123456789012345.6, 5e-324],
            [np.nan, np.inf, -np.inf, np.finfo(np.float64).max, np.finfo(np.float64).tiny],
        ]
    )
    assert float_text(values).to_pylist() == _as_repr(values)


def test_every_rounded_contribution_up_to_twenty_is_written_as_repr_writes_it():
    values = np.round(np.arange(1, 200_001) / 1e4, 4)
    assert float_text(values).to_pylist() == _as_repr(values)


def test_empty_input_gives_empty_text():
    assert float_text(np.array([], dtype=np.float64)).to_pylist() == []
