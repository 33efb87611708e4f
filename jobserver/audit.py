"""The audit log's vocabulary: its levels, what a category may be called, and its bounds.

`log.message` jobs write audit rows (`jobserver.db.audit_log`) and `GET /v1/logs` searches
them; both read their rules here, so what a job may write and what a search may ask for
cannot drift apart.

- Levels, lowest first: `debug`, `info`, `warn`, `error`. `warning` is accepted as `warn`
  (Python's and syslog's name for it) wherever a level is given, and stored as `warn`.
- `at_least(level)`: the levels a search for `level` returns (`warn` -> warn and error).
- `python_level(level)`: the `logging` level of the process log line (warn -> WARNING).
- `CATEGORY`: 1-100 of `A-Z a-z 0-9 . _ : -` (`auth`, `billing.invoices`, `crm:sync`), so a
  category reads the same in a URL, a log line and a metric label.
- `MESSAGE_MAX_CHARS` (8,192) and `METADATA_MAX_BYTES` (16 KiB of JSON): the bounds of one row.
"""

from __future__ import annotations

import logging

from jobserver.core.names import NameRule

LEVELS = ("debug", "info", "warn", "error")
ALIASES = {"warning": "warn"}
ACCEPTED_LEVELS = (*LEVELS, *ALIASES)
DEFAULT_LEVEL = "info"
DEFAULT_CATEGORY = "general"

CATEGORY = NameRule("category", "A-Za-z0-9._:-", 100)
MESSAGE_MAX_CHARS = 8192
METADATA_MAX_BYTES = 16 * 1024
METADATA_MAX_KEYS = 100

_PYTHON_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


def normalize_level(level: object) -> str:
    """The stored name of an accepted level (`warning` -> `warn`); ValueError otherwise."""
    name = ALIASES.get(level, level) if isinstance(level, str) else None
    if name not in LEVELS:
        raise ValueError(f"unknown level {level!r}: expected one of {', '.join(ACCEPTED_LEVELS)}")
    return str(name)


def at_least(level: str) -> tuple[str, ...]:
    """The levels at or above `level` (an accepted name), lowest first."""
    return LEVELS[LEVELS.index(normalize_level(level)) :]


def python_level(level: str) -> int:
    """The `logging` level a row of `level` is written to the process log at."""
    return _PYTHON_LEVELS[normalize_level(level)]
