"""The one JSON codec of jobserver: every process encodes and decodes JSON through it.

Two encoders, because stored JSON and answered JSON have different rules:

- `dumps_stored(value) -> str`: JSON text for a jsonb/json column or a NOTIFY payload. Strict:
  NaN and infinities are refused (`ValueError`, nothing written), integers past 64 bits are kept
  exact. orjson on the fast path; the standard encoder for what orjson refuses and whenever
  orjson's output holds a `null` (orjson writes NaN as null, the standard encoder refuses it).
- `dumps_answer(value) -> bytes` (and `dumps_answer_text`): compact UTF-8 JSON for HTTP answers
  and log lines; also writes datetimes, dates and UUIDs (ISO 8601, canonical text) and sets.
- `canonical(value) -> str`: sorted keys, compact, for fingerprints (idempotency, definition
  metadata), equal for equal JSON values.
- `dumps_storable(value, limit, what)`: `dumps_stored` for what a job hands the worker (results,
  events, progress): also refuses what PostgreSQL cannot store (`\\u0000` in any string or key,
  lone surrogates, deeper nesting than the encoders take) and text over `limit` bytes, with
  `NotStorable` ("result_not_storable: result holds a NUL character at x"), so a bad value fails
  its own attempt before it reaches a batched write. On the orjson path the check is one
  substring search and a length test of the encoded text.
  The size tested is the *rendered* size: what PostgreSQL prints back. jsonb stores a JSON
  number as `numeric` and prints it without an exponent, so `1e+308` (6 bytes) reads back as
  309 digits and `1.5e-300` as 303 characters. Such floats are allowed (a result may hold
  `6.02e+23`), but each counts at the length it will be read back at, so a 10-byte result
  cannot become 300+ bytes on every read past the cap. The walk over the value that computes
  this runs only when the encoded text holds an exponent (`e+`/`e-` next to digits; both
  encoders always write a sign after the `e`): a normal result pays two substring searches.
- `loads(text)`: the decoder the database connections use.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# Writes what orjson writes natively (datetimes, UUIDs) the same way, so a value's fate does not
# depend on whether it also holds a null (which sends it down this path).
_strict = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
).encode
_answer = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_default).encode
_canonical = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, sort_keys=True, allow_nan=False
).encode

loads = json.loads


def dumps_stored(value: Any) -> str:
    """Strict JSON text for the database (no NaN/infinity; `ValueError` or `TypeError`)."""
    try:
        out = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson.JSONEncodeError is one (e.g. integers past 64 bits)
        return _strict(value)
    return _strict(value) if b"null" in out else out.decode()


class NotStorable(ValueError):
    """A value PostgreSQL cannot store; the message starts with the code, `result_not_storable`."""

    code = "result_not_storable"

    def __init__(self, what: str, why: str) -> None:
        super().__init__(f"{self.code}: {what} {why}")


def _where(path: list[str]) -> str:
    """The path as printable text (a key may hold the very characters refused)."""
    if not path:
        return "the top level"
    text = ".".join(path).replace("\x00", "\\u0000")
    return text.encode("utf-8", "backslashreplace").decode()


def _find(value: Any, bad: Callable[[str], bool], path: list[str]) -> str | None:
    """The path of the first string or key in `value` for which `bad` holds (slow path only)."""
    if isinstance(value, str):
        return _where(path) if bad(value) else None
    if isinstance(value, dict):
        for k, v in value.items():
            key = str(k)
            if bad(key):
                return _where([*path, key])
            found = _find(v, bad, [*path, key])
            if found is not None:
                return found
    elif isinstance(value, list | tuple | set | frozenset):
        for i, v in enumerate(value):
            found = _find(v, bad, [*path, str(i)])
            if found is not None:
                return found
    return None


def _repr_token(number: float) -> int:
    return len(float.__repr__(number))


def _has_nul(text: str) -> bool:
    return "\x00" in text


def _has_surrogate(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


_EXPONENT = re.compile(r"[0-9][eE][-+][0-9]")


def rendered_length(number: float) -> int:
    """How many characters PostgreSQL prints `number` back as, once stored in jsonb (numeric,
    written out in full: no exponent, the digits and scale of the shortest repr)."""
    sign, digits, exponent = Decimal(repr(number)).as_tuple()
    if not isinstance(exponent, int):  # NaN/infinity: refused by the encoders anyway
        return len(repr(number))
    n = len(digits)
    if exponent >= 0:
        body = n + exponent  # 1e+308 -> "1" and 308 zeros
    elif n + exponent > 0:
        body = n + 1  # 12.5
    else:
        body = 2 - exponent  # 1.5e-300 -> "0." then 299 zeros then "15"
    return sign + body


def _float_token(number: float) -> int:
    return len(orjson.dumps(number))


def _amplification(value: Any, token: Callable[[float], int]) -> int:
    """Bytes the floats in `value` gain when PostgreSQL prints them back (slow path only)."""
    extra = 0
    stack = [value]
    while stack:
        node = stack.pop()
        t = type(node)
        if t is float:
            extra += max(0, rendered_length(node) - token(node))
        elif t is dict:
            stack.extend(node.values())
        elif t is list or t is tuple:
            stack.extend(node)
        elif isinstance(node, float):
            extra += max(0, rendered_length(float(node)) - token(float(node)))
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list | tuple | set | frozenset):
            stack.extend(node)
    return extra


def dumps_storable(value: Any, limit: int, what: str = "result") -> str:
    """`dumps_stored` that also refuses what PostgreSQL cannot store (`NotStorable`), or what
    it would print back over `limit` bytes (see the module docstring on rendered numbers)."""
    token = _float_token
    try:
        out = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # lone surrogates, integers past 64 bits, nesting past 254 levels
        try:
            text = _strict(value)
        except RecursionError:
            raise NotStorable(what, "is nested too deeply") from None
        try:
            size = len(text.encode())
        except UnicodeEncodeError:
            at = _find(value, _has_surrogate, [])
            raise NotStorable(what, f"holds a lone surrogate at {at}") from None
        token = _repr_token
    else:
        size = len(out)
        if b"null" in out:
            text = _strict(value)
            token = _repr_token
        else:
            text = out.decode()
    if size > limit:
        raise NotStorable(what, f"is {size} bytes of JSON, over the limit of {limit}")
    if ("e+" in text or "e-" in text) and _EXPONENT.search(text):
        rendered = size + _amplification(value, token)
        if rendered > limit:
            raise NotStorable(
                what,
                f"is {size} bytes of JSON that PostgreSQL would print back as {rendered}"
                f" (numbers written out in full), over the limit of {limit}",
            )
    if "\\u0000" in text:  # NUL, or a backslash followed by "u0000": look closer
        at = _find(value, _has_nul, [])
        if at is not None:
            raise NotStorable(what, f"holds a NUL character at {at}")
    return text


def dumps_answer(value: Any) -> bytes:
    """Compact UTF-8 JSON for answers: orjson, the standard encoder for what orjson refuses."""
    try:
        return orjson.dumps(value, default=_default)
    except TypeError:
        return _answer(value).encode()


def dumps_answer_text(value: Any) -> str:
    """`dumps_answer` as text (log lines, error messages)."""
    return _answer(value)


def canonical(value: Any) -> str:
    """Sorted-key compact JSON: equal values give equal text (fingerprints)."""
    return _canonical(value)
