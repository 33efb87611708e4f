"""Rendering a JSON value against a context: see `jobserver.templating` for the rules.

The walk copies on write: a dict or list is rebuilt only when one of its items changed, so a
value without `{{` comes back as the very same object, and each string is looked at with one
substring test before any regex runs. Bounds are checked as the walk goes, before anything
large is built: the JSON size of the result is tracked exactly (the input's size plus each
substitution's delta, each distinct path's value measured once) and the walk stops once it
passes the bound plus the input's size (later substitutions cannot shrink it more than that),
so a placeholder repeated 10,000 times over a big object fails early instead of building
gigabytes first; the exact bound is checked on the finished result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from jobserver.codec import dumps_answer_text
from jobserver.templating.errors import TemplateError
from jobserver.templating.macros import Macros, MacroSession
from jobserver.templating.syntax import (
    TOKEN,
    WHOLE,
    Location,
    format_location,
    parse_token,
    placeholders,
)

_MISSING = object()


@dataclass(frozen=True)
class Limits:
    """Bounds of one render; past one, a `TemplateError`."""

    max_output_bytes: int = 1024 * 1024  # JSON size of the result
    max_depth: int = 32  # nesting of dicts and lists in the result
    max_placeholders: int = 10_000  # placeholders substituted (escapes do not count)


def _json_size(value: Any) -> int:
    try:
        return len(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
    except TypeError:  # integers past 64 bits and the like
        return len(dumps_answer_text(value).encode())


def _depth(value: Any, limit: int) -> int:
    """The nesting depth of `value` (0 for a scalar), counted no further than `limit` + 1."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            items: Any = node.values()
        elif isinstance(node, list | tuple):
            items = node
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        stack.extend((item, depth) for item in items)
    return deepest


def lookup(context: Any, segments: tuple[str, ...]) -> tuple[Any, str]:
    """The value at `segments` in `context`, or `_MISSING` and the reason. Only dict keys and
    list indexes are followed: never an attribute, so nothing of a Python object is reachable."""
    node = context
    for n, seg in enumerate(segments):
        if isinstance(node, dict) and seg in node:
            node = node[seg]
        elif isinstance(node, list | tuple) and seg.isdigit() and int(seg) < len(node):
            node = node[int(seg)]
        else:
            owner = ".".join(segments[:n]) or "the context"
            if isinstance(node, list | tuple):
                why = f"{owner} has {len(node)} items, no index {seg}"
            elif isinstance(node, dict):
                why = f"{owner} has no key {seg!r}"
            else:
                why = f"{owner} is not an object or a list"
            return _MISSING, why
    return node, ""


def _stringify(value: Any) -> str:
    """A value as text inside a string: strings as is, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    return dumps_answer_text(value)


class _Render:
    """The state of one render: counts, the running size and per-path caches."""

    def __init__(self, root: Any, context: Any, macros: MacroSession, limits: Limits) -> None:
        self.root = root
        self.context = context
        self.macros = macros
        self.limits = limits
        self.count = 0
        self.size = -1  # the result's JSON size, measured at the first substitution
        self.base = 0  # the input's JSON size, measured then too
        self.values: dict[tuple[str, ...], tuple[int, int]] = {}  # JSON size, depth
        self.texts: dict[tuple[str, ...], str] = {}

    def fail(self, placeholder: str, message: str, location: Location) -> TemplateError:
        return TemplateError(placeholder, message, format_location(location))

    def resolve(
        self, token: str, inner: str | None, location: Location
    ) -> tuple[tuple[str, ...], Any, bool]:
        """A placeholder's segments and value, and whether the value is fresh (a macro)."""
        segments = parse_token(token, inner, location)
        self.count += 1
        if self.count > self.limits.max_placeholders:
            raise self.fail(
                token, f"more than {self.limits.max_placeholders} placeholders", location
            )
        if segments[0].startswith("$"):
            return segments, self.macros.value(segments[0]), True
        value, why = lookup(self.context, segments)
        if value is _MISSING:
            raise self.fail(token, f"missing path: {why}", location)
        return segments, value, False

    def size_so_far(self) -> int:
        if self.size < 0:
            self.size = self.base = _json_size(self.root)
        return self.size

    def over(self, size: int) -> bool:
        """Whether `size` mid-walk already dooms the result: later substitutions can shrink it
        by at most the input's own size (placeholders are part of the input)."""
        return size > self.limits.max_output_bytes + self.base

    def grow(self, delta: int, token: str, location: Location) -> None:
        """Add `delta` bytes to the result's size; past the bound, the error."""
        self.size = self.size_so_far() + delta
        if self.over(self.size):
            raise self.too_big(token, location)

    def finish(self, result: Any) -> Any:
        """The result, once its exact size is known to be within the bound."""
        if self.size > self.limits.max_output_bytes:
            raise self.too_big("", ())
        return result

    def too_big(self, token: str, location: Location) -> TemplateError:
        limit = self.limits.max_output_bytes
        return self.fail(token, f"the rendered value is over {limit} bytes of JSON", location)

    def whole(self, text: str, inner: str, location: Location) -> Any:
        """A string that is one placeholder: the value keeps its JSON type."""
        segments, value, fresh = self.resolve(text, inner, location)
        cached = None if fresh else self.values.get(segments)
        if cached is None:
            size = _json_size(value)
            depth = _depth(value, self.limits.max_depth)
            if not fresh:
                self.values[segments] = (size, depth)
        else:
            size, depth = cached
        if len(location) + depth > self.limits.max_depth:
            raise self.fail(
                text, f"the rendered value is nested deeper than {self.limits.max_depth}", location
            )
        self.grow(size - _json_size(text), text, location)
        return value

    def text(self, text: str, location: Location) -> str:
        """A string with placeholders inside other text: each value stringified."""
        parts: list[str] = []
        pos = 0
        grown = 0  # a lower bound of the growth (JSON escaping only adds), to fail early
        for m in TOKEN.finditer(text):
            parts.append(text[pos : m.start()])
            token = m.group(0)
            pos = m.end()
            if token == "\\{{":
                parts.append("{{")
                continue
            segments, value, fresh = self.resolve(token, m.group(1), location)
            if fresh:
                piece = _stringify(value)
            else:
                found = self.texts.get(segments)
                piece = found if found is not None else _stringify(value)
                self.texts[segments] = piece
            parts.append(piece)
            grown += len(piece) - len(token)
            if self.over(self.size_so_far() + grown):
                raise self.too_big(token, location)
        parts.append(text[pos:])
        out = "".join(parts)
        self.grow(_json_size(out) - _json_size(text), "", location)
        return out

    def walk(self, node: Any, location: Location) -> Any:
        if isinstance(node, str):
            if "{{" not in node:
                return node
            m = WHOLE.fullmatch(node)
            if m is not None:
                return self.whole(node, m.group(1), location)
            return self.text(node, location)
        if isinstance(node, dict):
            self.check_depth(location)
            changed: dict[Any, Any] | None = None
            for key, item in node.items():
                new = self.walk(item, (*location, key))
                if new is not item:
                    if changed is None:
                        changed = dict(node)
                    changed[key] = new
            return node if changed is None else changed
        if isinstance(node, list | tuple):
            self.check_depth(location)
            out: list[Any] | None = None
            for index, item in enumerate(node):
                new = self.walk(item, (*location, index))
                if new is not item:
                    if out is None:
                        out = list(node)
                    out[index] = new
            return node if out is None else out
        return node

    def check_depth(self, location: Location) -> None:
        if len(location) + 1 > self.limits.max_depth:
            raise self.fail(
                "", f"the value is nested deeper than {self.limits.max_depth}", location
            )


def render(
    value: Any, context: Any, *, macros: Macros | None = None, limits: Limits = Limits()
) -> Any:
    """`value` with every placeholder replaced from `context` (a dict) and the macros; the same
    object when nothing in it changes. A `TemplateError` for bad syntax, a missing path, an
    unknown macro or a bound passed."""
    session = (macros or Macros()).session()
    state = _Render(value, context, session, limits)
    return state.finish(state.walk(value, ()))


def check_known(value: Any, context: Any, known_roots: set[str] | frozenset[str]) -> None:
    """Raise a `TemplateError` for the first placeholder whose root is in `known_roots` (say
    `{"params"}` at submission) but whose path is missing from `context`; placeholders under
    other roots (`sources`, filled at run time) are left for the run. Syntax errors and unknown
    macros raise here too."""
    for found in placeholders(value):
        if found.is_macro or found.root not in known_roots:
            continue
        resolved, why = lookup(context, tuple(found.expression.split(".")))
        if resolved is _MISSING:
            raise TemplateError(
                "{{" + found.expression + "}}", f"missing path: {why}", found.location
            )
