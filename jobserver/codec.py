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
- `loads(text)`: the decoder the database connections use.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
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
