"""The `$macros`: values made at render time, not read from the context.

One `render` call is one run, so:
- `$timestamp` (RFC 3339 UTC with milliseconds, `2026-12-02T01:02:03.456Z`) and `$today`
  (`YYYY-MM-DD`, UTC) read the clock once per render: every occurrence in one render shows the
  same instant, and `$today` is that instant's date;
- `$uuid` (uuid4), `$randomInt` (0-999, an integer) and `$randomFloat` (in [0, 1), a float)
  are fresh at every occurrence.

`Macros(clock=..., rng=...)` lets a caller (or a test) fix the clock and the random source;
the default is the system clock and `random.SystemRandom`.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Macros:
    """Where macro values come from: a clock (aware datetimes) and a random source."""

    clock: Callable[[], dt.datetime] = _utc_now
    rng: random.Random = field(default_factory=random.SystemRandom)

    def session(self) -> MacroSession:
        """The macro values of one render."""
        return MacroSession(self)


class MacroSession:
    """Macro values for one render: the clock read at most once, randoms fresh each time."""

    __slots__ = ("_macros", "_now")

    def __init__(self, macros: Macros) -> None:
        self._macros = macros
        self._now: dt.datetime | None = None

    def _instant(self) -> dt.datetime:
        if self._now is None:
            self._now = self._macros.clock().astimezone(dt.UTC)
        return self._now

    def value(self, name: str) -> str | int | float:
        """The value of macro `name` (one of `syntax.MACROS`, checked by the parser)."""
        rng = self._macros.rng
        if name == "$uuid":
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if name == "$randomInt":
            return rng.randrange(1000)
        if name == "$randomFloat":
            return rng.random()
        now = self._instant()
        if name == "$today":
            return now.date().isoformat()
        if name == "$timestamp":
            return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
        raise ValueError(f"unknown macro {name}")
