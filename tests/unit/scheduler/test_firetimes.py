"""Pure fire-time logic: no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobserver.scheduler.firetimes import (
    Timing,
    TimingError,
    first_fire_at,
    next_fire_times,
    plan_fires,
    validate_timing,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_five_fields_utc() -> None:
    got = next_fire_times(Timing(cron="*/15 * * * *"), utc(2024, 5, 1, 10, 7), limit=3)
    assert got == [utc(2024, 5, 1, 10, 15), utc(2024, 5, 1, 10, 30), utc(2024, 5, 1, 10, 45)]


def test_strictly_after() -> None:
    got = next_fire_times(Timing(cron="0 * * * *"), utc(2024, 5, 1, 10, 0), limit=1)
    assert got == [utc(2024, 5, 1, 11, 0)]


def test_six_fields_seconds_first() -> None:
    got = next_fire_times(Timing(cron="*/20 * * * * *"), utc(2024, 5, 1, 10, 0, 5), limit=3)
    assert got == [utc(2024, 5, 1, 10, 0, 20), utc(2024, 5, 1, 10, 0, 40), utc(2024, 5, 1, 10, 1)]


def test_timezone_wall_clock() -> None:
    got = next_fire_times(
        Timing(cron="0 9 * * *", timezone="Europe/Paris"), utc(2024, 1, 10, 12), limit=1
    )
    assert got == [utc(2024, 1, 11, 8)]  # 09:00 CET = 08:00 UTC
    got = next_fire_times(
        Timing(cron="0 9 * * *", timezone="Europe/Paris"), utc(2024, 7, 10, 12), limit=1
    )
    assert got == [utc(2024, 7, 11, 7)]  # 09:00 CEST = 07:00 UTC


def test_dst_spring_forward_fixed_time_fires_at_transition() -> None:
    ny = Timing(cron="30 2 * * *", timezone="America/New_York")
    got = next_fire_times(ny, utc(2024, 3, 9, 12), limit=2)
    # 2024-03-10 02:30 does not exist in New York: fires at the jump (03:00 EDT = 07:00 UTC)
    assert got == [utc(2024, 3, 10, 7), utc(2024, 3, 11, 6, 30)]


def test_dst_spring_forward_wild_hour_skips_missing_times() -> None:
    ny = Timing(cron="30 * * * *", timezone="America/New_York")
    got = next_fire_times(ny, utc(2024, 3, 10, 5), limit=3)
    # 00:30 EST (05:30Z), 01:30 EST (06:30Z), 02:30 missing, 03:30 EDT (07:30Z)
    assert got == [utc(2024, 3, 10, 5, 30), utc(2024, 3, 10, 6, 30), utc(2024, 3, 10, 7, 30)]


def test_dst_fall_back_fixed_time_fires_once() -> None:
    ny = Timing(cron="30 1 * * *", timezone="America/New_York")
    got = next_fire_times(ny, utc(2024, 11, 2, 12), limit=2)
    assert got == [utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)]


def test_dst_fall_back_wild_hour_fires_in_both_hours() -> None:
    ny = Timing(cron="30 * * * *", timezone="America/New_York")
    got = next_fire_times(ny, utc(2024, 11, 3, 4), limit=4)
    hours = [(t - utc(2024, 11, 3, 4, 30)) / timedelta(hours=1) for t in got]
    assert hours == [0, 1, 2, 3]  # one fire per real hour, 01:30 twice in wall time


def test_every_seconds_epoch_aligned() -> None:
    got = next_fire_times(Timing(every_seconds=10), utc(2024, 1, 1, 0, 0, 3), limit=2)
    assert got == [utc(2024, 1, 1, 0, 0, 10), utc(2024, 1, 1, 0, 0, 20)]


def test_until_bounds() -> None:
    got = next_fire_times(
        Timing(every_seconds=1), utc(2024, 1, 1), until=utc(2024, 1, 1, 0, 0, 3), limit=100
    )
    assert len(got) == 3


@pytest.mark.parametrize(
    ("timing", "field"),
    [
        (Timing(cron="61 * * * *"), "cron"),
        (Timing(cron="* * * *"), "cron"),
        (Timing(cron="* * * * * * *"), "cron"),
        (Timing(cron="not a cron"), "cron"),
        (Timing(cron="* * * * *", timezone="Mars/Olympus"), "timezone"),
        (Timing(every_seconds=0), "everySeconds"),
        (Timing(), "cron"),
        (Timing(cron="* * * * *", every_seconds=5), "cron"),
    ],
)
def test_validation_names_the_field(timing: Timing, field: str) -> None:
    with pytest.raises(TimingError) as e:
        validate_timing(timing)
    assert e.value.field == field


def test_plan_on_time() -> None:
    t = Timing(every_seconds=60)
    plan = plan_fires(t, utc(2024, 1, 1, 0, 1), utc(2024, 1, 1, 0, 1, 1), "none", 10)
    assert plan.fires == [utc(2024, 1, 1, 0, 1)]
    assert plan.next_fire_at == utc(2024, 1, 1, 0, 2)
    assert plan.missed == 0


def test_plan_not_due() -> None:
    t = Timing(every_seconds=60)
    plan = plan_fires(t, utc(2024, 1, 1, 0, 2), utc(2024, 1, 1, 0, 1, 1), "all", 10)
    assert plan.fires == [] and plan.next_fire_at == utc(2024, 1, 1, 0, 2)


def test_catchup_policies_after_downtime() -> None:
    t = Timing(cron="0 * * * *")
    last_planned = utc(2024, 1, 1, 0)
    now = utc(2024, 1, 1, 5, 30)  # 00:00 .. 05:00 due: 6 fires
    none = plan_fires(t, last_planned, now, "none", 10)
    assert none.fires == [] and none.missed == 6
    latest = plan_fires(t, last_planned, now, "latest", 10)
    assert latest.fires == [utc(2024, 1, 1, 5)] and latest.missed == 5
    every = plan_fires(t, last_planned, now, "all", 10)
    assert every.fires == [utc(2024, 1, 1, h) for h in range(6)]
    capped = plan_fires(t, last_planned, now, "all", 2)
    assert capped.fires == [utc(2024, 1, 1, 4), utc(2024, 1, 1, 5)] and capped.missed == 4
    for plan in (none, latest, every, capped):
        assert plan.next_fire_at == utc(2024, 1, 1, 6)


def test_catchup_none_keeps_a_fire_within_grace() -> None:
    t = Timing(cron="0 * * * *")
    plan = plan_fires(
        t, utc(2024, 1, 1, 5), utc(2024, 1, 1, 5, 0, 3), "none", 10, grace=timedelta(seconds=5)
    )
    assert plan.fires == [utc(2024, 1, 1, 5)]


def test_long_outage_of_a_per_second_schedule_is_cheap() -> None:
    t = Timing(cron="* * * * * *")
    plan = plan_fires(t, utc(2024, 1, 1), utc(2024, 1, 8), "all", 3)
    assert plan.fires == [utc(2024, 1, 7, 23, 59, 58), utc(2024, 1, 7, 23, 59, 59), utc(2024, 1, 8)]


def test_expires_at_ends_the_schedule() -> None:
    t = Timing(every_seconds=60)
    plan = plan_fires(
        t,
        utc(2024, 1, 1, 0, 1),
        utc(2024, 1, 1, 0, 1, 1),
        "all",
        10,
        expires_at=utc(2024, 1, 1, 0, 1, 30),
    )
    assert plan.fires == [utc(2024, 1, 1, 0, 1)] and plan.next_fire_at is None


def test_first_fire_respects_start_at() -> None:
    t = Timing(every_seconds=60)
    assert first_fire_at(t, utc(2024, 1, 1, 0, 0, 30)) == utc(2024, 1, 1, 0, 1)
    assert first_fire_at(t, utc(2024, 1, 1), utc(2024, 1, 1, 1)) == utc(2024, 1, 1, 1)
