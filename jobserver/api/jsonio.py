"""JSON in and out: compact encoding of responses and a hostile-input-safe body parser.

`parse_json(raw)` rejects what PostgreSQL cannot store or what would hurt us later:
- malformed JSON, invalid UTF-8, nesting deeper than `MAX_DEPTH` (JSON bombs) -> 400 invalid_json;
- NaN/Infinity and floats that overflow, integers past Python's digit limit -> 422;
- `\\u0000` in any string or key (text/jsonb cannot hold it) and lone surrogates -> 422.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from aiohttp import web

MAX_DEPTH = 64


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_default)


def dumps(value: Any) -> str:
    return _encoder.encode(value)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=dumps(data).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


class JsonInputError(ValueError):
    """Bad JSON input: `status` 400 (unparseable) or 422 (parseable but unstorable)."""

    def __init__(self, status: int, message: str, path: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.path = path


def _bad_constant(name: str) -> Any:
    raise JsonInputError(422, f"{name} is not a valid JSON number")


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JsonInputError(422, "number out of range")
    return value


_decoder = json.JSONDecoder(parse_constant=_bad_constant, parse_float=_parse_float)


def format_path(parts: list[str | int] | tuple[str | int, ...], prefix: str = "") -> str:
    """`["jobs", 3, "params", "message"]` -> `jobs[3].params.message`."""
    out = prefix
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out = f"{out}.{p}" if out else str(p)
    return out


def _walk(value: Any, check_strings: bool) -> None:
    """Iterative depth and string check (no recursion: a bomb cannot blow our stack)."""
    stack: list[tuple[Any, int, tuple[str | int, ...]]] = [(value, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict):
            if depth > MAX_DEPTH:
                raise JsonInputError(400, f"JSON nested deeper than {MAX_DEPTH} levels")
            for k, v in node.items():
                if check_strings:
                    _check_string(k, (*path, k))
                if isinstance(v, dict | list):
                    stack.append((v, depth + 1, (*path, k)))
                elif check_strings and isinstance(v, str):
                    _check_string(v, (*path, k))
        elif isinstance(node, list):
            if depth > MAX_DEPTH:
                raise JsonInputError(400, f"JSON nested deeper than {MAX_DEPTH} levels")
            for i, v in enumerate(node):
                if isinstance(v, dict | list):
                    stack.append((v, depth + 1, (*path, i)))
                elif check_strings and isinstance(v, str):
                    _check_string(v, (*path, i))
        elif check_strings and isinstance(node, str):
            _check_string(node, path)


def _check_string(s: str, path: tuple[str | int, ...]) -> None:
    if "\x00" in s:
        raise JsonInputError(422, "NUL characters (\\u0000) are not allowed", format_path(path))
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonInputError(422, "invalid unicode (lone surrogate)", format_path(path)) from None


def parse_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JsonInputError(400, "body is not valid UTF-8") from None
    try:
        value = _decoder.decode(text)
    except JsonInputError:
        raise
    except RecursionError:
        raise JsonInputError(400, f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as e:
        raise JsonInputError(400, f"malformed JSON: {e.msg} at position {e.pos}") from None
    except ValueError as e:  # e.g. integer with more digits than Python converts
        raise JsonInputError(422, f"number out of range: {str(e)[:80]}") from None
    # Escapes are the only way to smuggle NUL or surrogates through valid UTF-8 input.
    check_strings = "\\u" in text
    if check_strings or text.count("[") + text.count("{") > MAX_DEPTH:
        _walk(value, check_strings)
    return value
