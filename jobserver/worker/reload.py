"""Reloading a running worker's settings: which ones may change, and where they are read from.

`RELOADABLE` are the settings a worker applies while it runs (the control channel's `reload`):
MAX_CONCURRENT_EXECUTIONS (the slots; ignored when the worker was started with
`--concurrency`), LOG_LEVEL, POLL_INTERVAL_MS (the claim loop's fallback poll) and
CANCEL_CHECK_INTERVAL_MS (the cancel check's interval). Every other setting needs a restart.

`SettingsSource` reads them as the worker was started: from its process environment and the
`.env` file of its working directory, the process environment winning (as
`jobserver.cli.common.load_settings` does at start). The process environment cannot change from
outside, so in practice a reload picks up an edited `.env`: the source remembers, when it is
made, which variables came from the process and which from `.env` (a variable `.env` set at
start and no longer sets falls back to its default).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from jobserver.config import FIELDS, Settings

RELOADABLE = (
    "max_concurrent_executions",
    "log_level",
    "poll_interval_ms",
    "cancel_check_interval_ms",
)


def env_name(field: str) -> str:
    return FIELDS[field].env


class SettingsSource:
    """The environment a worker was started with, re-read on demand (see the module doc)."""

    def __init__(self, env_file: Path | None = None, environ: Mapping[str, str] | None = None):
        self.env_file = env_file if env_file is not None else Path.cwd() / ".env"
        current = dict(os.environ if environ is None else environ)
        from_file = self._file()
        # a variable whose value is the one .env gave at start came from .env (load_dotenv
        # never overrides the process environment, so a differing value is the process')
        self._process = {k: v for k, v in current.items() if from_file.get(k) != v}

    def _file(self) -> dict[str, str]:
        if not self.env_file.is_file():
            return {}
        return {k: v for k, v in dotenv_values(self.env_file).items() if v is not None}

    def read(self) -> Settings:
        """Settings as a start now would read them; ConfigError when a value is bad."""
        return Settings.from_env({**self._file(), **self._process})


def changes(old: Settings, new: Settings) -> dict[str, tuple[Any, Any]]:
    """The reloadable settings whose value differs: {field: (old, new)}."""
    out: dict[str, tuple[Any, Any]] = {}
    for name in RELOADABLE:
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            out[name] = (before, after)
    return out
