"""`parse_duration` and `run_window`: the duration forms, expiresIn, the default expiry and the
refusals that name their fields (pure functions, no database)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from jobserver.config import ConfigError, Settings
from jobserver.core.errors import RuleError
from jobserver.core.timing import parse_duration, run_window

UTC = dt.UTC
NOW = dt.datetime(2030, 5, 1, 12, tzinfo=UTC)
S = dt.timedelta(seconds=1)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90),
        (0.5, 0.5),
        ("90", 90),
        ("90s", 90),
        ("15m", 900),
        ("24h", 86400),
        ("7d", 7 * 86400),
        ("1h30m", 5400),
        ("1d2h3m4s", 86400 + 7200 + 180 + 4),
        (" 2m ", 120),
    ],
)
def test_durations(value: Any, seconds: float) -> None:
    assert parse_duration(value, "expiresIn") == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "s",
        "1x",
        "30m1h",
        "1h1h",
        "-5s",
        "1.5h",
        "h1",
        0,
        -1,
        "0s",
        True,
        None,
        [],
        "9" * 41,
        "3651d",
        1e-300,
    ],
)
def test_bad_durations_name_the_field(value: Any) -> None:
    with pytest.raises(RuleError) as e:
        parse_duration(value, "jobs[2].expiresIn")
    assert e.value.field == "jobs[2].expiresIn"


def test_expires_in_counts_from_the_run_time() -> None:
    assert run_window({"expiresIn": "15m"}, "", NOW) == (None, NOW + 900 * S)
    run_at, expires = run_window({"delaySeconds": 60, "expiresIn": 30}, "", NOW)
    assert (run_at, expires) == (NOW + 60 * S, NOW + 90 * S)
    at = NOW + dt.timedelta(days=1)
    assert run_window({"runAt": at.isoformat(), "expiresIn": "1h"}, "", NOW) == (
        at,
        at + 3600 * S,
    )


def test_expires_at_and_expires_in_exclude_each_other() -> None:
    item = {"expiresAt": (NOW + 60 * S).isoformat(), "expiresIn": 30}
    with pytest.raises(RuleError) as e:
        run_window(item, "jobs[1]", NOW)
    assert e.value.field == "jobs[1].expiresAt, jobs[1].expiresIn"
    assert "expiresAt or expiresIn" in e.value.message


def test_expires_at_not_after_the_run_time_names_both_values() -> None:
    at = NOW + dt.timedelta(hours=1)
    item = {"runAt": at.isoformat(), "expiresAt": at.isoformat()}
    with pytest.raises(RuleError) as e:
        run_window(item, "", NOW)
    assert e.value.field == "expiresAt"
    assert e.value.message.count(at.isoformat()) == 2 and "runAt" in e.value.message
    with pytest.raises(RuleError) as e:
        run_window({"expiresAt": (NOW - S).isoformat()}, "", NOW)
    assert (NOW - S).isoformat() in e.value.message and NOW.isoformat() in e.value.message


def test_the_default_expiry_applies_only_when_none_is_given() -> None:
    default = dt.timedelta(hours=24)
    assert run_window({}, "", NOW, default) == (None, NOW + default)
    assert run_window({"delaySeconds": 10}, "", NOW, default) == (
        NOW + 10 * S,
        NOW + 10 * S + default,
    )
    assert run_window({"expiresIn": 5}, "", NOW, default) == (None, NOW + 5 * S)
    assert run_window({}, "", NOW) == (None, None)


def test_default_expires_duration_setting() -> None:
    assert Settings.from_env({}).default_expires is None
    assert Settings.from_env({"DEFAULT_EXPIRES_DURATION": "24h"}).default_expires == 86400 * S
    with pytest.raises(ConfigError, match="DEFAULT_EXPIRES_DURATION"):
        Settings.from_env({"DEFAULT_EXPIRES_DURATION": "soon"})
