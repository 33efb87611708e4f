"""Reading a request: the query string, the JSON body and path parameters.

- `query_parser(schema)`: a function that coerces the query from strings by the property types
  of `schema` (integer, number, boolean, string; "array" = repeatable and/or comma-separated),
  refuses unknown or repeated parameters and checks the result against the schema (422 naming
  the parameter). Values are at most MAX_QUERY_VALUE characters, never with NUL.
  `coerce_text(name, raw, kind)` is that coercion for one value (form fields use it too).
- `read_json_body(request, check)`: the content type must be JSON (415), the body at most
  MAX_BODY_BYTES (413, refused from Content-Length before reading, or while reading) and in
  within BODY_READ_TIMEOUT (408), valid and storable JSON (400/422, see jsonio) and valid
  against the schema (422 naming the field).
- `uuid_param(request)`, `name_param(request)`: the `{id}` / `{name}` of the path.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from jobserver.api.errors import ApiError, invalid, not_found
from jobserver.api.jsonio import JsonInputError, parse_json
from jobserver.api.keys import SETTINGS_KEY
from jobserver.core.errors import format_path
from jobserver.validation import Check, compile_schema

MAX_QUERY_VALUE = 2048
# Slow clients: a body must arrive within this many seconds (then 408); a connection that sends
# no complete request head is closed after the keep-alive timeout (jobserver.cli.api).
BODY_READ_TIMEOUT = 15.0
MAX_PATH_ID = 64
MAX_PATH_NAME = 300

_INTEGER = re.compile(r"[+-]?\d{1,18}")

QueryParser = Callable[[web.Request], dict[str, Any]]


def coerce_text(name: str, raw: str, kind: str | None) -> Any:
    """A text value (a query parameter, a form field) as the JSON Schema type `kind` wants it:
    integer, number, boolean, else the string itself; 422 naming `name` when it is not one."""
    if len(raw) > MAX_QUERY_VALUE:
        raise invalid(name, f"longer than {MAX_QUERY_VALUE} characters")
    if "\x00" in raw:
        raise invalid(name, "NUL characters are not allowed")
    if kind == "integer":
        if not _INTEGER.fullmatch(raw.strip()):
            raise invalid(name, "must be an integer")
        return int(raw)
    if kind == "number":
        try:
            value = float(raw)
        except ValueError:
            raise invalid(name, "must be a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise invalid(name, "must be a finite number")
        return value
    if kind == "boolean":
        if raw.lower() in ("true", "1"):
            return True
        if raw.lower() in ("false", "0"):
            return False
        raise invalid(name, "must be true or false")
    return raw


def query_parser(schema: dict[str, Any] | None) -> QueryParser:
    """See the module doc; the schema is compiled once, here."""
    props: dict[str, Any] = (schema or {}).get("properties", {})
    check = compile_schema(schema) if schema else None

    def parse(request: web.Request) -> dict[str, Any]:
        out: dict[str, Any] = {}
        query = request.query
        for name in query:
            if name in out:
                continue
            spec = props.get(name)
            if spec is None:
                raise invalid(name, "unknown query parameter")
            values = query.getall(name)
            if spec.get("type") == "array":
                item_kind = (spec.get("items") or {}).get("type")
                items: list[Any] = []
                for v in values:
                    items.extend(
                        coerce_text(name, part.strip(), item_kind)
                        for part in v.split(",")
                        if part.strip()
                    )
                if not items:
                    raise invalid(name, "must not be empty")
                out[name] = items
            else:
                if len(values) > 1:
                    raise invalid(name, "given more than once")
                out[name] = coerce_text(name, values[0], spec.get("type"))
        if check is not None:
            failure = check(out)
            if failure is not None:
                raise invalid(format_path(failure[0]), failure[1])
        return out

    return parse


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


async def read_json_body(request: web.Request, check: Check | None) -> Any:
    """The request body parsed and checked (see the module doc for the statuses)."""
    raw_type = request.headers.get("Content-Type")
    if raw_type != "application/json" and not _is_json(request.content_type):
        raise ApiError(415, "unsupported_media_type", "expected Content-Type: application/json")
    limit = request.app[SETTINGS_KEY].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "body_too_large", f"request body larger than {limit} bytes")
    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT):  # a stalled sender never holds a handler
            raw = await request.read()  # stops with 413 once past client_max_size
    except TimeoutError:
        raise ApiError(408, "request_timeout", "request body not received in time") from None
    if not raw.strip():
        raise ApiError(400, "invalid_json", "request body is empty: expected JSON")
    try:
        value = parse_json(raw)
    except JsonInputError as e:
        if e.status == 400:
            raise ApiError(400, "invalid_json", e.message) from None
        raise invalid(e.path, e.message) from None
    if check is not None:
        failure = check(value)
        if failure is not None:
            raise invalid(format_path(failure[0]), failure[1])
    return value


def uuid_param(request: web.Request, name: str = "id") -> uuid.UUID:
    """A UUID path parameter (job and dead-letter ids); anything else is 422 naming it."""
    raw = request.match_info.get(name, "")
    try:
        if len(raw) > MAX_PATH_ID:
            raise ValueError
        return uuid.UUID(raw)
    except ValueError:
        raise invalid(name, "must be a UUID") from None


def uuid_query(q: dict[str, Any], name: str) -> uuid.UUID | None:
    """An optional UUID query parameter (None when absent); anything else is 422 naming it."""
    if name not in q:
        return None
    try:
        return uuid.UUID(q[name])
    except ValueError:
        raise invalid(name, "must be a UUID") from None


def name_param(request: web.Request, what: str, name: str = "name") -> str:
    """A name path parameter (schedules, runners); too long to exist is a 404."""
    value = request.match_info.get(name, "")
    if len(value) > MAX_PATH_NAME:
        raise not_found(what)
    return value
