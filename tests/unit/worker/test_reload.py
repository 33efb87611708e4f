"""Which settings a reload reads: `.env` as edited now, the process environment winning."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobserver.config import ConfigError, Settings
from jobserver.worker.reload import RELOADABLE, SettingsSource, changes


def test_an_edited_env_file_is_read_and_the_process_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MAX_CONCURRENT_EXECUTIONS=4\nLOG_LEVEL=INFO\nPOLL_INTERVAL_MS=500\n")
    # as the worker started: .env loaded into the environment, the process' own POLL wins
    environ = {"MAX_CONCURRENT_EXECUTIONS": "4", "LOG_LEVEL": "INFO", "POLL_INTERVAL_MS": "200"}
    source = SettingsSource(env_file, environ)
    first = source.read()
    assert (first.max_concurrent_executions, first.poll_interval_ms) == (4, 200)

    env_file.write_text("MAX_CONCURRENT_EXECUTIONS=7\nPOLL_INTERVAL_MS=900\n")
    now = source.read()
    assert now.max_concurrent_executions == 7
    assert now.poll_interval_ms == 200  # the process environment still wins
    assert now.log_level == "INFO"  # no longer in .env: the default
    assert changes(first, now) == {"max_concurrent_executions": (4, 7)}


def test_a_bad_value_is_a_config_error(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("LOG_LEVEL=LOUD\n")
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        SettingsSource(env_file, {}).read()


def test_no_env_file_reads_the_environment(tmp_path: Path) -> None:
    source = SettingsSource(tmp_path / "missing.env", {"CANCEL_CHECK_INTERVAL_MS": "250"})
    assert source.read().cancel_check_interval_ms == 250


def test_only_the_reloadable_settings_count() -> None:
    old = Settings()
    new = Settings(port=9999, log_level="DEBUG")
    assert changes(old, new) == {"log_level": ("INFO", "DEBUG")}
    assert set(RELOADABLE) == {
        "max_concurrent_executions",
        "log_level",
        "poll_interval_ms",
        "cancel_check_interval_ms",
    }
