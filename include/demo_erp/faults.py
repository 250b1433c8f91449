"""Faults real extracts carry, sprinkled into a demo world so validation has something to catch.

Real ERPs and file drops are never clean. :func:`inject_faults` adds a small, seeded share of the kinds
of bad rows ingestion must quarantine (and never silently drop), touching only records that no hold
rule of the generator looked at, so the known truth stays true:

- CRM interactions with a kind outside the code table (``fax``);
- credit-bureau rows delivered twice (a duplicate key);
- payments whose customer is missing.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd

from include.demo_erp.generate import World

logger = logging.getLogger(__name__)


def inject_faults(world: World, *, share: float = 0.002, seed: int = 0) -> tuple[World, dict[str, int]]:
    """A copy of ``world`` with about ``share`` of the rows of three tables made bad, and the counts."""
    rng = np.random.default_rng(seed)
    tables = dict(world.tables)

    def pick(frame: pd.DataFrame) -> np.ndarray:
        n = max(1, int(round(len(frame) * share))) if len(frame) else 0
        return rng.choice(len(frame), size=n, replace=False)

    interactions = tables["interactions"].copy()
    bad_kind = pick(interactions)
    interactions.loc[interactions.index[bad_kind], "kind"] = "fax"
    tables["interactions"] = interactions

    bureau = tables["bureau_reports"]
    repeated = pick(bureau)
    tables["bureau_reports"] = pd.concat([bureau, bureau.iloc[repeated]], ignore_index=True)

    payments = tables["payments"].copy()
    # Only successful payments tied to an invoice: the hold rules counted failed payments per customer.
    candidates = payments.index[(payments["status"] == "ok").to_numpy()]
    orphan = rng.choice(
        candidates, size=min(len(candidates), max(1, int(len(payments) * share))), replace=False
    )
    payments.loc[orphan, "customer_id"] = pd.NA
    tables["payments"] = payments

    counts = {
        "interactions_unknown_kind": len(bad_kind),
        "bureau_reports_duplicated": len(repeated),
        "payments_without_customer": len(orphan),
    }
    logger.info("Injected faults into the demo world: %s", counts)
    return replace(world, tables=tables), counts
