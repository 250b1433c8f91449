from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from include.pipeline import resolve_as_of


def test_asset_events_name_the_interval():
    extras = [{"as_of": "2025-06-29"}, {"as_of": "2025-06-30"}, {}]
    assert resolve_as_of(None, extras) == datetime(2025, 6, 30, tzinfo=UTC)


def test_logical_date_is_the_interval_of_a_scheduled_run():
    local = datetime(2025, 6, 30, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    assert resolve_as_of(local) == datetime(2025, 6, 30, tzinfo=UTC)


def test_a_run_with_neither_fails():
    with pytest.raises(ValueError, match="neither a logical date nor an asset event"):
        resolve_as_of(None, [{}])


@pytest.mark.parametrize(
    ("run_type", "asked", "announced"),
    [
        ("scheduled", False, True),
        ("manual", False, True),
        ("backfill", False, False),
        ("backfill", True, True),
    ],
)
def test_only_a_backfill_stays_quiet_unless_asked(run_type, asked, announced):
    from include.pipeline import should_announce

    go, why = should_announce(run_type, asked)
    assert go is announced
    assert ("announce_backfill" in why) is not announced
