"""How scoring splits open orders into shards and refuses to write back a partial or doubled set.

No model here: the shard files are written by hand, as a shard would leave them, next to a feature
snapshot's ``orders.parquet``; the end-to-end equality with an unsharded run is in
``tests/integration/test_score_shards.py``.
"""

from __future__ import annotations

import pandas as pd
import pytest

from include import pipeline, warehouse

AS_OF = warehouse.parse_as_of_label("2025-06-30")


@pytest.mark.parametrize("count", [0, 1, 2, 7, 10, 1001])
@pytest.mark.parametrize("shards", [1, 2, 3, 8])
def test_slices_cover_every_open_order_once_in_order(count, shards):
    bounds = pipeline.shard_slices(count, shards)
    assert len(bounds) == shards
    positions = [i for start, stop in bounds for i in range(start, stop)]
    assert positions == list(range(count))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_a_shard_count_below_one_is_refused():
    with pytest.raises(ValueError, match="positive whole number, got 0"):
        pipeline.shard_slices(10, 0)


@pytest.fixture
def snapshot(holdcast_home):
    """Five orders, three of them open, and the refs of a two-shard run over them."""
    orders = pd.DataFrame(
        {"status": ["open", "closed", "open", "open", "closed"]},
        index=pd.Index(["O1", "O2", "O3", "O4", "O5"], name="order_id"),
    )
    warehouse.write_parquet(orders, warehouse.features_dir(AS_OF) / "orders.parquet")
    refs = [{"as_of": "2025-06-30", "shard": i, "shards": 2} for i in range(2)]
    return refs


def _write_shard(shard: int, order_ids: list[str]) -> None:
    frame = pd.DataFrame({"order_id": order_ids, "risk": [0.5] * len(order_ids)})
    warehouse.write_parquet(frame, pipeline.shard_path(AS_OF, shard, 2))


def test_shards_put_end_to_end_are_the_open_orders(snapshot):
    open_ids, _ = pipeline._open_ids(AS_OF)
    bounds = pipeline.shard_slices(len(open_ids), 2)
    for shard, (start, stop) in enumerate(bounds):
        _write_shard(shard, list(open_ids[start:stop]))
    gathered = pipeline.gather_shards(reversed(snapshot))
    assert list(gathered["order_id"]) == ["O1", "O3", "O4"]


def test_a_missing_shard_file_is_named(snapshot):
    _write_shard(0, ["O1", "O3"])
    with pytest.raises(
        ValueError, match=r"shard 1 of 2 for 2025-06-30 has no output at .*run that shard again"
    ):
        pipeline.gather_shards(snapshot)


def test_a_shard_written_twice_into_the_set_is_refused(snapshot):
    _write_shard(0, ["O1", "O3"])
    _write_shard(1, ["O3", "O4"])
    with pytest.raises(ValueError, match=r"4 decision\(s\) for 3 open order\(s\), 1 repeated, 0 missing"):
        pipeline.gather_shards(snapshot)


def test_a_partial_shard_is_refused(snapshot):
    _write_shard(0, ["O1", "O3"])
    _write_shard(1, [])
    with pytest.raises(ValueError, match=r"2 decision\(s\) for 3 open order\(s\), 0 repeated, 1 missing"):
        pipeline.gather_shards(snapshot)


@pytest.mark.parametrize(
    "refs",
    [
        [{"as_of": "2025-06-30", "shard": 0, "shards": 2}],
        [{"as_of": "2025-06-30", "shard": i, "shards": 2} for i in (0, 0, 1)],
        [{"as_of": "2025-06-30", "shard": 0, "shards": 2}, {"as_of": "2025-06-29", "shard": 1, "shards": 2}],
    ],
    ids=["one-missing", "one-twice", "another-interval"],
)
def test_refs_of_an_incomplete_or_mixed_run_are_refused(snapshot, refs):
    with pytest.raises(ValueError, match="expected shards 0..1 of 2 for 2025-06-30"):
        pipeline.gather_shards(refs)


def test_a_snapshot_changed_under_the_run_is_refused(snapshot):
    open_ids, digest = pipeline._open_ids(AS_OF)
    ref = {"as_of": "2025-06-30", "open_orders": len(open_ids), "snapshot": digest}
    pipeline._check_snapshot(ref, open_ids, digest)
    with pytest.raises(RuntimeError, match="feature snapshot of 2025-06-30 changed during scoring"):
        pipeline._check_snapshot(ref, open_ids[:-1], "0" * 16)
