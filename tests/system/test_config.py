"""Settings from the environment: defaults, and one clear line for every bad value."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from jobserver.config import FIELDS, ConfigError, Field, Settings, fmt_number

ROOT = Path(__file__).resolve().parents[2]

ISSUE_DEFAULTS = {
    "PORT": 3000,
    "MAX_CONCURRENT_EXECUTIONS": 10,
    "LEASE_DURATION_SECONDS": 60,
    "HEARTBEAT_INTERVAL_SECONDS": 10,
    "CANCEL_GRACE_MS": 5000,
    "DB_POOL_MAX": 20,
    "DB_POOL_IDLE_TIMEOUT_MS": 30000,
    "DB_POOL_CONNECTION_TIMEOUT_MS": 2000,
    "BACKOFF_BASE_SECONDS": 1,
    "BACKOFF_MAX_SECONDS": 3600,
    "BACKOFF_JITTER_PERCENT": 0.3,
    "CANCEL_CHECK_INTERVAL_MS": 1000,
    "METRICS_CACHE_TTL_MS": 30000,
}


def _by_env(env: str) -> tuple[str, Field]:
    return next((name, f) for name, f in FIELDS.items() if f.env == env)


def test_fields_cover_settings() -> None:
    assert {f.name for f in dataclasses.fields(Settings)} == set(FIELDS)
    assert len({f.env for f in FIELDS.values()}) == len(FIELDS)


def test_each_setting_is_declared_once_with_its_type() -> None:
    """FIELDS is read off the dataclass: defaults and kinds cannot drift from `Settings`."""
    hints = typing.get_type_hints(Settings)
    for f in dataclasses.fields(Settings):
        spec = FIELDS[f.name]
        assert spec.default == f.default, spec.env
        hint = hints[f.name]
        if typing.get_origin(hint) is typing.Literal:
            assert spec.choices == typing.get_args(hint) and f.default in spec.choices
        else:
            assert spec.choices is None
            assert spec.kind in (hint, str), spec.env  # `str | None` reads as text
    assert FIELDS["metrics_require_token"].choices == ("auto", "true", "false")


BOOL = Field(env="SOME_FLAG", kind=bool, default=False)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("false", False), (" TRUE ", True), ("False", False)],
)
def test_bool_setting_parses_to_a_bool(raw: str, expected: bool) -> None:
    assert BOOL.parse(raw) is expected


@pytest.mark.parametrize("raw", ["yes", "1", "truee", "on"])
def test_bool_setting_refuses_other_words_in_one_line(raw: str) -> None:
    with pytest.raises(ConfigError) as err:
        BOOL.parse(raw)
    assert str(err.value) == f"invalid SOME_FLAG={raw!r}: expected one of true, false"


@pytest.mark.parametrize(
    ("raw", "host", "required"),
    [
        ("auto", "0.0.0.0", True),
        ("auto", "10.1.2.3", True),
        ("auto", "::", True),
        ("auto", "127.0.0.1", False),
        ("auto", "127.8.9.1", False),
        ("auto", "localhost", False),
        ("auto", "::1", False),
        ("true", "127.0.0.1", True),
        ("false", "0.0.0.0", False),
    ],
)
def test_metrics_token_by_default_unless_loopback(raw: str, host: str, required: bool) -> None:
    s = Settings.from_env({"METRICS_REQUIRE_TOKEN": raw, "HOST": host})
    assert s.metrics_token_required is required


def test_literal_settings_take_exactly_their_values() -> None:
    s = Settings.from_env(
        {"LOG_FORMAT": "text", "LOG_LEVEL": "DEBUG", "JOBSERVER_AUTH": "disabled"}
    )
    assert (s.log_format, s.log_level, s.auth) == ("text", "DEBUG", "disabled")
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"LOG_LEVEL": "info"})
    assert str(err.value) == (
        "invalid LOG_LEVEL='info': expected one of DEBUG, INFO, WARNING, ERROR"
    )


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.database_url is None
    for env, expected in ISSUE_DEFAULTS.items():
        name, _ = _by_env(env)
        assert getattr(s, name) == expected, env
    for name, spec in FIELDS.items():
        if spec.default not in (None, ""):
            assert getattr(s, name) == spec.default, spec.env
    assert s.worker_id == f"worker-{os.uname().nodename}-{os.getpid()}"
    assert s.auth_enabled


def test_values_are_parsed() -> None:
    s = Settings.from_env(
        {
            "PORT": " 8080 ",
            "BACKOFF_JITTER_PERCENT": "0.5",
            "WORKER_ID": "w1",
            "JOBSERVER_AUTH": "disabled",
            "DATABASE_URL": "postgresql://u@h/db",
            "LEASE_DURATION_SECONDS": "2",
            "HEARTBEAT_INTERVAL_SECONDS": "0.5",
        }
    )
    assert (s.port, s.backoff_jitter_percent, s.worker_id) == (8080, 0.5, "w1")
    assert (s.lease_duration_seconds, s.heartbeat_interval_seconds) == (2.0, 0.5)
    assert not s.auth_enabled
    assert s.require_database_url() == "postgresql://u@h/db"


def test_empty_value_means_default() -> None:
    assert Settings.from_env({"PORT": ""}).port == 3000


def _bad_values(spec: Field) -> list[str]:
    if spec.kind is bool:
        return ["nope", "TRUEx", "0"]
    if spec.choices:
        return ["nope", spec.choices[0].upper() + "x"]
    if spec.kind is str:
        return []
    bad = ["abc", "nan", "inf", "1e999999"] if spec.kind is float else ["abc", "1.5", "0x10"]
    if spec.minimum is not None:
        bad.append(str(spec.minimum - 1))
    if spec.maximum is not None:
        bad.append(str(spec.maximum + 1))
    return bad


CASES = [(spec.env, raw) for spec in FIELDS.values() for raw in _bad_values(spec)]


@pytest.mark.parametrize(("env", "raw"), CASES)
def test_bad_value_names_variable_value_and_range(env: str, raw: str) -> None:
    _, spec = _by_env(env)
    with pytest.raises(ConfigError) as err:
        Settings.from_env({env: raw})
    message = str(err.value)
    assert "\n" not in message
    assert env in message
    assert repr(raw) in message
    assert spec.allowed() in message
    if spec.minimum is not None and spec.maximum is not None:
        assert fmt_number(spec.minimum) in message and fmt_number(spec.maximum) in message


def test_every_numeric_and_choice_field_is_checked() -> None:
    checked = {env for env, _ in CASES}
    expected = {f.env for f in FIELDS.values() if f.kind is not str or f.choices}
    assert checked == expected


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"LEASE_DURATION_SECONDS": "5", "HEARTBEAT_INTERVAL_SECONDS": "5"}, "HEARTBEAT_INTERVAL"),
        ({"BACKOFF_BASE_SECONDS": "10", "BACKOFF_MAX_SECONDS": "5"}, "BACKOFF_MAX_SECONDS"),
    ],
)
def test_cross_field_rules(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Settings.from_env(env)


def test_missing_database_url_is_one_line() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        Settings.from_env({}).require_database_url()


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "jobserver.cli.main", "migrate"],
        ["-m", "jobserver.cli.register"],
        ["-m", "jobserver.cli.main", "up"],
    ],
)
def test_console_script_exits_2_with_one_line(argv: list[str]) -> None:
    env = {**os.environ, "PORT": "abc", "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"}
    proc = subprocess.run(
        [sys.executable, *argv], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == ["error: invalid PORT='abc': expected an integer between 1 and 65535"]
    assert "Traceback" not in proc.stdout + proc.stderr
