"""Explicit retry delays as pure functions: the list, its bounds, its precedence over the
formula and under a RetryAfter, and a definition's list in its metadata."""

from __future__ import annotations

from typing import Any

import pytest

from jobserver.core.retry_delays import (
    MAX_RETRY_DELAY_SECONDS,
    MAX_RETRY_DELAYS,
    delays_problem,
    listed_delay,
    shown_delays,
    stored_delays,
)
from jobserver.registry import Backoff, DefinitionError, Registry, definition
from jobserver.worker.backoff import retry_delay

POLICY = (1.0, 3600.0, 0.3)  # a jittered formula the lists must replace


@pytest.mark.parametrize(("attempt", "expected"), [(1, 0.0), (2, 10.0), (3, 60.0), (9, 60.0)])
def test_the_nth_retry_waits_the_nth_delay_then_the_last_repeats(
    attempt: int, expected: float
) -> None:
    assert listed_delay(attempt, (0, 10, 60)) == expected


def test_a_definitions_list_replaces_the_formula_without_jitter() -> None:
    seen = {retry_delay(2, 5, POLICY, delays=(2, 4, 8)) for _ in range(50)}
    assert seen == {4.0}
    assert retry_delay(4, 5, POLICY, delays=(2, 4, 8)) == 8.0


def test_a_retry_after_wins_and_no_retry_follows_the_last_attempt() -> None:
    assert retry_delay(1, 5, POLICY, retry_after=120, delays=(2,)) == 120
    assert retry_delay(5, 5, POLICY, delays=(2,)) is None
    assert retry_delay(1, 5, POLICY, final=True, delays=(2,)) is None


@pytest.mark.parametrize(
    ("delays", "problem"),
    [
        ([], "non-empty"),
        ("10", "non-empty"),
        ([1] * (MAX_RETRY_DELAYS + 1), f"at most {MAX_RETRY_DELAYS}"),
        ([1, -1], "within 0.."),
        ([MAX_RETRY_DELAY_SECONDS + 1], "within 0.."),
        ([1, float("nan")], "number of seconds"),
        ([True], "number of seconds"),
        (["5"], "number of seconds"),
    ],
)
def test_bounds(delays: Any, problem: str) -> None:
    found = delays_problem(delays)
    assert found is not None and problem in found
    assert delays_problem([0, 2.5, MAX_RETRY_DELAY_SECONDS]) is None


def test_stored_as_floats_shown_as_whole_seconds_where_they_are() -> None:
    assert stored_delays([0, 10, 2.5]) == [0.0, 10.0, 2.5]
    assert shown_delays([0.0, 10.0, 2.5]) == [0, 10, 2.5]
    assert stored_delays(None) is None and shown_delays(None) is None


async def _run(params: Any, ctx: Any) -> None:
    """Nothing."""


def test_a_definitions_delays_are_checked_and_published_with_its_metadata() -> None:
    reg = Registry()
    definition("d.listed", backoff=Backoff(delays=(0, 10, 60)), target=reg)(_run)
    d = reg.get("d.listed", 1)
    assert d is not None
    assert d.metadata()["backoff"] == {"delays": [0, 10, 60]}
    # a definition without delays keeps the metadata (and fingerprint) it had
    definition("d.formula", backoff=Backoff(base_seconds=2), target=reg)(_run)
    formula = reg.get("d.formula", 1)
    assert formula is not None and formula.metadata()["backoff"] == {"baseSeconds": 2}
    for bad in ((), (-1,), (1,) * (MAX_RETRY_DELAYS + 1)):
        with pytest.raises(DefinitionError, match="backoff delays"):
            definition("d.bad", backoff=Backoff(delays=bad), target=Registry())(_run)
