"""Small generated training sets with known hold probabilities, for tests and quick checks.

The frames have the shapes training expects from the feature and label builders (features indexed by
order id with text categoricals and float64 numerics; labels with ``label_any`` and ``label_<reason>``)
so the training code can be exercised without a warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from include.canonical import HOLD_REASONS

NUMERIC = ("utilisation", "days_late_max", "order_value_ratio", "tenure_days", "noise")
CATEGORICAL = ("country", "segment")
COUNTRIES = ("DE", "FR", "IT", "US", "IR", "CN")
SEGMENTS = ("retail", "wholesale", "public")


@dataclass(frozen=True)
class SyntheticData:
    """A generated training set.

    Attributes:
        features: index ``order_id``; :data:`NUMERIC` as float64 and :data:`CATEGORICAL` as ``string``.
        labels: index ``order_id``; ``label_any`` and ``label_<reason>``, int 0/1.
        created_at: creation time per order, UTC, increasing with the order number.
        true_p: the true probability per target (columns ``any`` and each reason).
    """

    features: pd.DataFrame
    labels: pd.DataFrame
    created_at: pd.Series
    true_p: pd.DataFrame

    @property
    def feature_columns(self) -> list[str]:
        return list(self.features.columns)

    @property
    def categorical(self) -> list[str]:
        return list(CATEGORICAL)


def make_orders(n: int = 4000, *, seed: int = 0, rare_reason: str | None = "compliance") -> SyntheticData:
    """Generate ``n`` orders whose hold reasons depend on the features in known ways.

    Credit holds follow utilisation and lateness, compliance holds two countries, incomplete-info holds
    the segment, and so on; ``rare_reason`` is made so rare (a handful of positives) that training must
    fall back to its constant prior. ``label_any`` is 1 when any reason fires.
    """
    rng = np.random.default_rng(seed)
    ids = pd.Index([f"SO{i:07d}" for i in range(n)], name="order_id")
    utilisation = rng.gamma(4.0, 0.22, n)
    days_late = np.where(rng.random(n) < 0.3, rng.exponential(25.0, n), 0.0)
    value_ratio = rng.lognormal(0.0, 0.6, n)
    tenure = rng.uniform(0, 3000, n)
    country = rng.choice(COUNTRIES, n, p=[0.35, 0.2, 0.15, 0.2, 0.04, 0.06])
    segment = rng.choice(SEGMENTS, n, p=[0.5, 0.35, 0.15])

    def logistic(z):
        return 1.0 / (1.0 + np.exp(-z))

    true_p = {
        "credit": logistic(-4.0 + 3.0 * (utilisation - 1.0) + 0.05 * days_late),
        "incomplete_info": logistic(-3.2 + 1.5 * (segment == "public") + 0.4 * (value_ratio > 2)),
        "compliance": logistic(-4.5 + 3.5 * np.isin(country, ["IR", "CN"])),
        "payment": logistic(-3.5 + 0.03 * days_late),
        "inventory": logistic(-3.0 + 0.8 * np.log(value_ratio)),
        "manual_review": logistic(-3.0 + 1.2 * (value_ratio > 2.5) - tenure / 1500),
    }
    if rare_reason is not None:
        true_p[rare_reason] = np.full(n, 2.0 / n)
    fired = {reason: (rng.random(n) < p).astype("int64") for reason, p in true_p.items()}
    p_none = np.prod([1.0 - p for p in true_p.values()], axis=0)
    true_p_frame = pd.DataFrame({"any": 1.0 - p_none, **true_p}, index=ids)

    features = pd.DataFrame(
        {
            "utilisation": utilisation,
            "days_late_max": days_late,
            "order_value_ratio": value_ratio,
            "tenure_days": tenure,
            "noise": rng.normal(0, 1, n),
            "country": pd.array(country, dtype="string"),
            "segment": pd.array(segment, dtype="string"),
        },
        index=ids,
    )
    labels = pd.DataFrame({f"label_{r}": fired[r] for r in HOLD_REASONS}, index=ids)
    labels.insert(0, "label_any", labels.max(axis=1).astype("int64"))
    start = pd.Timestamp("2024-01-01", tz="UTC")
    minutes = np.sort(rng.integers(0, 365 * 24 * 60, n))
    created_at = pd.Series(start + pd.to_timedelta(minutes, unit="min"), index=ids, name="created_at")
    return SyntheticData(features, labels, created_at, true_p_frame)
