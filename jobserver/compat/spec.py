"""`JOBSERVER_COMPAT`: which compatibility systems are served, and where.

A comma list of `name` or `name=/prefix` (`janaah,gatrix=/admin`); `all` serves every system
at its default prefix, and `none` or an empty value none. A name given twice, an unknown name
or a prefix that is not a path (`/` followed by segments of letters, digits, `-`, `_`, `.`;
no trailing `/`) is refused at start with one line naming the item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PREFIX = re.compile(r"(/[A-Za-z0-9._-]+)*")


@dataclass(frozen=True)
class Mount:
    """One served system and the path prefix its documented paths are put under."""

    name: str
    prefix: str


class CompatSpecError(ValueError):
    """A malformed JOBSERVER_COMPAT item; the message names it."""


def parse_compat(value: str, defaults: dict[str, str]) -> list[Mount]:
    """The mounts `value` asks for; `defaults` maps each known system to its default prefix."""
    items = [p.strip() for p in value.split(",") if p.strip()]
    if items in ([], ["none"]):
        return []
    if items == ["all"]:
        return [Mount(name, prefix) for name, prefix in defaults.items()]
    mounts: dict[str, Mount] = {}
    for item in items:
        name, sep, prefix = (p.strip() for p in item.partition("="))
        if name not in defaults:
            known = ", ".join(defaults) or "none"
            raise CompatSpecError(f"{item!r}: unknown system (known: {known}; or all, none)")
        if name in mounts:
            raise CompatSpecError(f"{item!r}: {name} given twice")
        if sep and (not _PREFIX.fullmatch(prefix) or prefix == ""):
            raise CompatSpecError(
                f"{item!r}: the prefix must be a path such as /{name} (no trailing slash)"
            )
        mounts[name] = Mount(name, prefix if sep else defaults[name])
    return list(mounts.values())
