"""Analyst feedback labels laid over the ERP's outcomes before training (the optional hook of train_model)."""

from __future__ import annotations

import pandas as pd
import pytest

from include import pipeline
from include.canonical import HOLD_REASONS

REASONS = [f"label_{r}" for r in HOLD_REASONS]


def _labels() -> pd.DataFrame:
    frame = pd.DataFrame(0, index=pd.Index(["A", "B", "C"], name="order_id"), columns=["label_any", *REASONS])
    frame.loc["A", ["label_any", "label_credit"]] = 1
    return frame.assign(trainable=True)


def _write(holdcast_home, frame: pd.DataFrame) -> None:
    path = holdcast_home / "demo" / pipeline.FEEDBACK_LABELS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path)


def test_without_a_feedback_file_the_labels_are_unchanged(holdcast_home):
    labels = _labels()
    merged, applied = pipeline._merge_feedback_labels(labels)
    assert applied == 0
    pd.testing.assert_frame_equal(merged, labels)


def test_released_despite_risk_clears_the_hold_and_held_despite_low_risk_sets_it(holdcast_home):
    _write(
        holdcast_home,
        pd.DataFrame(
            {
                "order_id": ["A", "B", "ZZZ"],  # ZZZ has no known outcome in the snapshot: ignored
                "label_any": [0, 1, 1],
                "label_compliance": [None, 1, 1],
            }
        ),
    )
    merged, applied = pipeline._merge_feedback_labels(_labels())
    assert applied == 2
    assert merged.loc["A", ["label_any", *REASONS]].sum() == 0  # released: no hold, no reason
    assert (merged.loc["B", "label_any"], merged.loc["B", "label_compliance"]) == (1, 1)
    assert merged.loc["C"].equals(_labels().loc["C"])
    assert "ZZZ" not in merged.index


def test_a_feedback_file_without_usable_label_any_is_refused(holdcast_home):
    _write(holdcast_home, pd.DataFrame({"order_id": ["A"], "label_any": [2]}))
    with pytest.raises(ValueError, match="need a label_any column of 0 and 1"):
        pipeline._merge_feedback_labels(_labels())
