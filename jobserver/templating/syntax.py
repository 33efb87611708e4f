"""Placeholder syntax: the one compiled regex, expression parsing and JSON locations.

A token is one of
- `\\{{`: an escaped, literal `{{` (the backslash is dropped; the rest of the text is plain);
- `{{ expr }}`: a placeholder; `expr` is a macro (`$uuid`) or a dotted path whose segments are
  identifiers (letters, digits, `_`, `-`, not starting with a digit or `-`) or list indexes
  (digits); whitespace inside the braces is allowed;
- a `{{` that starts no placeholder (unclosed, or `{{{`): an error, so a typo never goes out
  as text. A lone `{` or `}` is text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jobserver.templating.errors import TemplateError

# group 1: the expression of a placeholder; no group: an escape or a stray `{{`
TOKEN = re.compile(r"\\\{\{|\{\{([^{}]*)\}\}|\{\{")
WHOLE = re.compile(r"\{\{([^{}]*)\}\}")
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*|[0-9]+")
_MACRO = re.compile(r"\$[A-Za-z][A-Za-z0-9_]*")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

MACROS = frozenset({"$timestamp", "$uuid", "$today", "$randomInt", "$randomFloat"})

Location = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One placeholder of a value: its expression (`user.name`, `$uuid`) and the JSON path of
    the string holding it (`payload.items[2].name`, "" for the top level)."""

    expression: str
    location: str

    @property
    def is_macro(self) -> bool:
        return self.expression.startswith("$")

    @property
    def root(self) -> str:
        """The first path segment (`params` for `params.user.id`); the name for a macro."""
        return self.expression.split(".", 1)[0]


def format_location(location: Location) -> str:
    """`("payload", "items", 2, "name")` -> `payload.items[2].name`; odd keys as `["a.b"]`."""
    out: list[str] = []
    for part in location:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _KEY.fullmatch(part):
            out.append(f".{part}" if out else part)
        else:
            quoted = part.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'["{quoted}"]')
    return "".join(out)


@lru_cache(maxsize=4096)
def parse(expression: str) -> tuple[str, ...]:
    """The path segments of a placeholder's inner text, or `(name,)` for a macro; a
    `ValueError` with the reason for anything else."""
    expr = expression.strip()
    if expr.startswith("$"):
        if not _MACRO.fullmatch(expr):
            raise ValueError("a macro is `$` and a name, e.g. {{$uuid}}")
        if expr not in MACROS:
            known = ", ".join(sorted(MACROS))
            raise ValueError(f"unknown macro {expr} (known: {known})")
        return (expr,)
    if not expr:
        raise ValueError("empty placeholder")
    segments = tuple(expr.split("."))
    for seg in segments:
        if not _SEGMENT.fullmatch(seg):
            raise ValueError(
                f"bad path segment {seg!r}: segments are identifiers or list indexes, "
                "joined by dots (write \\{{ for a literal {{)"
            )
    return segments


def parse_token(text: str, inner: str | None, location: Location) -> tuple[str, ...]:
    """`parse`, with the error as a `TemplateError` naming the placeholder and its place."""
    if inner is None:
        raise TemplateError(
            text,
            "`{{` opens no placeholder (write \\{{ for a literal {{)",
            format_location(location),
        )
    try:
        return parse(inner)
    except ValueError as exc:
        raise TemplateError(text, str(exc), format_location(location)) from None


def strings(value: Any, location: Location = ()) -> Iterator[tuple[str, Location]]:
    """Every string holding `{{` in `value`, with its location (keys are not templated)."""
    if isinstance(value, str):
        if "{{" in value:
            yield value, location
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, (*location, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from strings(item, (*location, index))


def placeholders(value: Any) -> list[Placeholder]:
    """Every placeholder of `value`, in order, so a caller can check at submission what it can
    know then; a `TemplateError` for bad syntax or an unknown macro."""
    found: list[Placeholder] = []
    for text, location in strings(value):
        where = format_location(location)
        for m in TOKEN.finditer(text):
            token = m.group(0)
            if token == "\\{{":
                continue
            segments = parse_token(token, m.group(1), location)
            found.append(Placeholder(".".join(segments), where))
    return found
