"""JSON in and out: JSON answers and a hostile-input-safe body parser.

Answers are encoded by `jobserver.codec.dumps_answer` (orjson, the standard encoder for what
orjson refuses). Bodies are parsed with the standard library (orjson reads integers past 64
bits as floats).

`parse_json(raw)` rejects what PostgreSQL cannot store or what would hurt us later:
- malformed JSON, invalid UTF-8, nesting deeper than `MAX_DEPTH` (JSON bombs) -> 400 invalid_json;
- NaN/Infinity and floats that overflow -> 422; integers past Python's digit limit (4,300
  digits, `sys.get_int_max_str_digits`) -> 422 naming the field (found by a second parse that
  runs only after the first one refused such an integer);
- numbers that would be amplified when read back -> 422 naming the field: PostgreSQL stores a
  JSON number as `numeric` and prints it without an exponent, so `1e308` (5 bytes) came back as
  309 digits. The rule, for every number of a body written with a fraction or an exponent: 0,
  or a magnitude from `MIN_MAGNITUDE` (1e-16) to below `MAX_MAGNITUDE` (1e16). Read back, such
  a number prints in at most 34 characters (at most about 4 times the bytes it was sent in), so
  a stored job's params stay within a few times MAX_BODY_BYTES however they are written.
  Integer literals are not amplified (they are stored and printed digit for digit, at most
  Python's 4,300-digit limit); integer *fields* are bounded to 64 bits by their schemas;
- `\\u0000` in any string or key (text/jsonb cannot hold it) and lone surrogates -> 422.

Cost on the batch path: floats already go through `_parse_float`, which only flags a number
out of range; the tree is walked to name the field only when it did (integers cost nothing).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from aiohttp import web

from jobserver.codec import dumps_answer
from jobserver.core.errors import format_path

MAX_DEPTH = 64


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=dumps_answer(data),
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


MIN_MAGNITUDE = 1e-16
MAX_MAGNITUDE = 1e16
NUMBER_RULE = (
    "number out of range: a number with a fraction or an exponent must be 0 or have a"
    f" magnitude from {MIN_MAGNITUDE:g} to below {MAX_MAGNITUDE:g}"
)


class _Unbounded(float):
    """A float out of the allowed magnitudes, kept until the parse ends so it can be named."""


_flagged: list[bool] = [False]  # parses are synchronous: no two overlap in one thread


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JsonInputError(422, "number out of range")
    if value and not MIN_MAGNITUDE <= abs(value) < MAX_MAGNITUDE:
        _flagged[0] = True
        return _Unbounded(value)
    return value


def _path_of(value: Any, marker: type) -> str | None:
    """The path of the first value of type `marker` in a parsed body, or None."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if type(node) is dict:
            stack.extend((v, (*path, k)) for k, v in node.items())
        elif type(node) is list:
            stack.extend((v, (*path, i)) for i, v in enumerate(node))
        elif type(node) is marker:
            return format_path(path)
    return None


def _check_numbers(value: Any) -> None:
    """The first number out of range, named by path (a walk only once a check fired)."""
    path = _path_of(value, _Unbounded)
    if path is not None:
        raise JsonInputError(422, NUMBER_RULE, path)


_decoder = json.JSONDecoder(parse_constant=_bad_constant, parse_float=_parse_float)


class _Huge:
    """An integer literal past Python's digit limit, kept so the second parse can name it."""


def _parse_int_marking(text: str) -> int | _Huge:
    limit = sys.get_int_max_str_digits()
    if limit and len(text.lstrip("-")) > limit:
        return _Huge()
    return int(text)


def _huge_integer_error(text: str) -> JsonInputError:
    """The 422 for a body holding an integer past the digit limit, naming where it is."""
    limit = sys.get_int_max_str_digits()
    message = f"number out of range: an integer may have at most {limit} digits"
    marking = json.JSONDecoder(
        parse_constant=_bad_constant, parse_float=float, parse_int=_parse_int_marking
    )
    try:
        value = marking.decode(text)
    except (ValueError, RecursionError):
        return JsonInputError(422, message)
    return JsonInputError(422, message, _path_of(value, _Huge) or "")


def _too_deep(value: Any) -> bool:
    """Iterative depth check over containers only (no recursion: a bomb cannot blow our
    stack, and flat batches cost one pass over their items). json.loads builds exact
    dicts and lists, hence the `type(...) is` tests (several times faster than isinstance)."""
    level: list[Any] = [value]
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            return True
        nxt: list[Any] = []
        append = nxt.append
        for node in level:
            for c in node.values() if type(node) is dict else node:
                t = type(c)
                if t is dict or t is list:
                    append(c)
        level = nxt
    return False


def _check_strings(value: Any) -> None:
    """NUL characters and lone surrogates anywhere (keys included), named by path."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                _check_string(k, (*path, k))
                stack.append((v, (*path, k)))
        elif isinstance(node, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(node))
        elif isinstance(node, str):
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
    _flagged[0] = False
    try:
        value = _decoder.decode(text)
    except JsonInputError:
        raise
    except RecursionError:
        raise JsonInputError(400, f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as e:
        raise JsonInputError(400, f"malformed JSON: {e.msg} at position {e.pos}") from None
    except ValueError as e:  # e.g. integer with more digits than Python converts
        if "digits" in str(e):
            raise _huge_integer_error(text) from None
        raise JsonInputError(422, f"number out of range: {str(e)[:80]}") from None
    nested = type(value) in (dict, list) and text.count("[") + text.count("{") > MAX_DEPTH
    if nested and _too_deep(value):
        raise JsonInputError(400, f"JSON nested deeper than {MAX_DEPTH} levels")
    if _flagged[0]:
        _check_numbers(value)
    # Escapes are the only way to smuggle NUL or surrogates through valid UTF-8 input.
    if "\\u" in text:
        _check_strings(value)
    return value
