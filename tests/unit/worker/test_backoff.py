"""The back-off formula of DESIGN.md, as a pure function."""

from __future__ import annotations

import pytest

from jobserver.config import Settings
from jobserver.registry import Backoff
from jobserver.worker.backoff import backoff_bounds, backoff_delay, policy_for


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (7, 60.0), (1000, 60.0)]
)
def test_exponential_then_capped(attempt: int, expected: float) -> None:
    assert backoff_delay(attempt, 1.0, 60.0, 0.0) == expected


def test_jitter_stays_within_bounds() -> None:
    assert backoff_delay(3, 1.0, 60.0, 0.3, rand=lambda: 0.0) == pytest.approx(2.8)
    assert backoff_delay(3, 1.0, 60.0, 0.3, rand=lambda: 1.0) == pytest.approx(5.2)
    low, high = backoff_bounds(3, 1.0, 60.0, 0.3)
    seen = {backoff_delay(3, 1.0, 60.0, 0.3) for _ in range(500)}
    assert all(low <= d <= high for d in seen) and len(seen) > 100


def test_zero_base_and_first_attempt() -> None:
    assert backoff_delay(4, 0.0, 10.0, 0.5) == 0.0
    assert backoff_delay(0, 2.0, 10.0, 0.0) == 2.0  # attempt numbers start at 1


def test_definition_override() -> None:
    s = Settings(backoff_base_seconds=1, backoff_max_seconds=100, backoff_jitter_percent=0.1)
    assert policy_for(s, None) == (1, 100, 0.1)
    assert policy_for(s, Backoff(base_seconds=5)) == (5, 100, 0.1)
    assert policy_for(s, Backoff(max_seconds=3, jitter_percent=0)) == (1, 3, 0)
    assert policy_for(s, Backoff(base_seconds=500)) == (500, 500, 0.1)
