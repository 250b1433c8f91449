"""Training labels: which holds each order actually got within the label horizon of its creation.

A hold is the outcome of an order if it was placed within ``[created_at, created_at + horizon]``. An
order's outcome is known (``complete``) once its horizon has passed at ``as_of``; only complete orders
that are no longer open are trainable, since an open order may still be blocked.

Holds placed after ``as_of`` are ignored, so the labels of a run depend on its ``as_of`` and not on
when it happens to execute.
"""

from __future__ import annotations

import logging
from datetime import datetime

import numpy as np
import pandas as pd

from features.timeline import NAT, encode, to_ns
from include.canonical import HOLD_REASONS

logger = logging.getLogger(__name__)

LABEL_COLUMNS: list[str] = ["label_any", *(f"label_{reason}" for reason in HOLD_REASONS)]


class LabelInputError(ValueError):
    """The inputs of :func:`build_labels` cannot give one label row per order."""


def build_labels(
    orders: pd.DataFrame,
    holds: pd.DataFrame,
    as_of: datetime | pd.Timestamp | str,
    horizon_days: int,
) -> pd.DataFrame:
    """Label each order with the holds placed within ``horizon_days`` of its creation.

    Args:
        orders: Canonical ``orders`` (``order_id``, ``created_at`` and ``status`` are read).
        holds: Canonical ``holds`` (``order_id``, ``reason``, ``placed_at`` are read).
        as_of: The moment the labels describe; a naive value is read as UTC.
        horizon_days: How many days after its creation a hold still counts for an order.

    Returns:
        One row per order, indexed by ``order_id`` in the order given, with int 0/1 columns
        ``label_any`` and ``label_<reason>`` for each of :data:`~include.canonical.HOLD_REASONS` (a
        hold of reason ``unspecified`` or of an unknown code counts for ``label_any`` only), bool
        ``complete`` (``created_at + horizon <= as_of``) and bool ``trainable`` (complete and its
        status is not ``open``).

    Raises:
        LabelInputError: ``horizon_days`` is not a positive whole number, a column is missing, or an
            order id repeats.
    """
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, (int, np.integer)) or horizon_days <= 0:
        raise LabelInputError(f"horizon_days must be a positive whole number, got {horizon_days!r}")
    for name, frame, columns in (
        ("orders", orders, ("order_id", "created_at", "status")),
        ("holds", holds, ("order_id", "reason", "placed_at")),
    ):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise LabelInputError(f"table {name!r} lacks column(s) {missing} needed for labels")
    order_ids = orders["order_id"].astype("string")
    if order_ids.isna().any() or order_ids.duplicated().any():
        repeated = order_ids[order_ids.duplicated()].head(5).tolist()
        raise LabelInputError(f"orders need unique, non-missing order_id; repeated: {repeated}")

    cutoff = _utc_ns(as_of)
    horizon = horizon_days * 86_400 * 10**9
    created = to_ns(orders["created_at"])
    known = created != NAT

    position = encode(holds["order_id"], pd.Index(order_ids))
    placed = to_ns(holds["placed_at"]) if len(holds) else np.zeros(0, dtype=np.int64)
    start = created[np.maximum(position, 0)] if len(created) else np.zeros(len(position), dtype=np.int64)
    counts = (
        (position >= 0)
        & (placed != NAT)
        & (start != NAT)
        & (placed >= start)
        & (placed - start <= horizon)
        & (placed <= cutoff)
    )
    reason = holds["reason"].astype("string").str.strip().str.lower()

    labels = {"label_any": _any_per_order(position[counts], len(orders))}
    for code in HOLD_REASONS:
        of_reason = counts & reason.eq(code).to_numpy(dtype=bool, na_value=False)
        labels[f"label_{code}"] = _any_per_order(position[of_reason], len(orders))
    complete = known & (created <= cutoff - horizon)
    status = orders["status"].astype("string").str.strip().str.lower()
    labels["complete"] = complete
    labels["trainable"] = complete & status.ne("open").to_numpy(dtype=bool, na_value=False)

    frame = pd.DataFrame(labels, index=pd.Index(order_ids.to_numpy(), name="order_id", dtype="string"))
    logger.info(
        "Labelled %d orders as of %s (horizon %d days): %d complete, %d with a hold",
        len(frame),
        pd.Timestamp(cutoff, tz="UTC").isoformat(),
        horizon_days,
        int(frame["complete"].sum()),
        int(frame["label_any"].sum()),
    )
    return frame


def _utc_ns(value: datetime | pd.Timestamp | str) -> int:
    stamp = pd.Timestamp(value)
    if stamp is pd.NaT:
        raise LabelInputError(f"as_of must be a point in time, got {value!r}")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.as_unit("ns").value)


def _any_per_order(positions: np.ndarray, size: int) -> np.ndarray:
    return (np.bincount(positions, minlength=size) > 0).astype(np.int64)
