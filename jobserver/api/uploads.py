"""Multipart form uploads: text fields checked, one file streamed to a temp file, never held.

`FormSpec(schema, file_field)` is compiled once from a form's JSON Schema (an object whose
properties are the fields; `file_field` is the file part, `{"type": "string", "format":
"binary"}` in the schema so /openapi.json describes it). `receive_form(request, spec,
directory=..., max_file_bytes=...)` is an async context manager yielding a `Form`: the text
fields coerced by their property type (`request.coerce_text`) and checked against their
property schema as they arrive, and the file (`Upload`: a temp file in `directory`, its size
and SHA-256, the client's filename and content type). The temp file (`jobserver-upload-<uuid>`,
a name the scheduler's pruner sweeps once old, should the process die) is removed when the
context exits, whatever happened. Fields may come before or after the file.

`spool_path` names the spool file instead (created, must not exist: a blob store's own
temporary name, so the file can later be renamed into place rather than copied); `tee` is
given every batch of the file while it is written to the spool (a blob store writing the
upload as it arrives); an exception from it ends the upload.

The file part is read straight from the request stream (part_reader.py: aiohttp's
`read_chunk` copies every byte twice) and written in a thread about `WRITE_BYTES` at a time
(hashing there too, overlapped with reading the next chunks), so memory stays at a few MiB
whatever the size. Statuses, each a JSON error:
- 415 `unsupported_media_type`: not `multipart/form-data`;
- 413 `body_too_large` naming the file field: the file passed `max_file_bytes` (reading stops
  there), or the declared Content-Length cannot fit under it (refused before reading);
- 408 `request_timeout`: no data for `BODY_READ_TIMEOUT` seconds (an idle limit, not a total
  one: a large file on a slow link is fine while it keeps moving);
- 400 `invalid_multipart`: a body that does not parse as multipart, a part without a name, a
  body cut off by the client going away (logged as a 400, not as an error);
- 422 naming the field: unknown, repeated, longer than MAX_FIELD_BYTES, not UTF-8, of the
  wrong type or outside its schema; the file field missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from jobserver.api.errors import ApiError, invalid
from jobserver.api.part_reader import part_chunks
from jobserver.api.request import BODY_READ_TIMEOUT, coerce_text
from jobserver.blobs.leftovers import spool_name
from jobserver.core.errors import format_path
from jobserver.validation import Check, compile_schema

FORM_TYPE = "multipart/form-data"
WRITE_BYTES = 1 << 20  # gathered before one write + hash in a thread (and one tee call)
MAX_FIELD_BYTES = 4096  # a text field (format, priority, a key, ...)
MAX_PARTS = 32
# What a form may add around its file (boundaries, part headers, text fields): a declared
# Content-Length past max_file_bytes plus this cannot hold an acceptable file.
FORM_OVERHEAD = MAX_PARTS * (MAX_FIELD_BYTES + 1024)


Chunk = bytes | memoryview
# Given each batch of the file as it is written to the spool file, at the same time (a blob
# store writing the upload while it arrives); what it raises ends the upload.
Tee = Callable[[list[Chunk]], Awaitable[None]]


@dataclass(frozen=True)
class Upload:
    """The file part, on disk until the form's context exits."""

    path: Path
    filename: str  # as the client named it, "" when it gave none
    content_type: str  # as the client declared it, "" when it gave none
    size: int
    sha256: str  # hex


@dataclass(frozen=True)
class Form:
    fields: dict[str, Any]  # the text fields given, coerced and checked
    upload: Upload | None  # None only while reading: `receive_form` requires the file


class FormSpec:
    """A form's schema compiled once: each text field's type and check, the file's name."""

    def __init__(self, schema: dict[str, Any], file_field: str) -> None:
        props: dict[str, Any] = schema.get("properties", {})
        if file_field not in props:
            raise ValueError(f"the form schema has no property {file_field!r}")
        self.schema = schema
        self.file_field = file_field
        self.kinds: dict[str, str | None] = {
            name: spec.get("type") for name, spec in props.items() if name != file_field
        }
        self.checks: dict[str, Check] = {
            name: compile_schema(spec) for name, spec in props.items() if name != file_field
        }


@contextlib.asynccontextmanager
async def receive_form(
    request: web.Request,
    spec: FormSpec,
    *,
    directory: str | None,
    max_file_bytes: int,
    idle_timeout: float = BODY_READ_TIMEOUT,
    spool_path: Path | None = None,
    tee: Tee | None = None,
) -> AsyncIterator[Form]:
    """See the module doc; `directory` None is the system's temp directory."""
    if request.content_type != FORM_TYPE:
        raise ApiError(415, "unsupported_media_type", f"expected Content-Type: {FORM_TYPE}")
    declared = request.content_length
    if declared is not None and declared > max_file_bytes + FORM_OVERHEAD:
        raise _too_large(spec.file_field, max_file_bytes)
    # a name of our own shape (leftovers.py), so a crash's leftover is swept, nothing else
    path = spool_path or Path(directory or tempfile.gettempdir()) / spool_name()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    fd = await asyncio.to_thread(os.open, path, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            form = await _read_form(request, spec, out, path, max_file_bytes, idle_timeout, tee)
        yield form
    finally:
        await asyncio.to_thread(_remove, path)  # a large file takes a while to free


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _too_large(field: str, limit: int) -> ApiError:
    return ApiError(
        413,
        "body_too_large",
        f"{field}: larger than {limit} bytes (VIDEO_MAX_UPLOAD_BYTES)",
        field,
        {"maxBytes": limit},
    )


def _malformed(message: str) -> ApiError:
    return ApiError(400, "invalid_multipart", f"malformed multipart body: {message}")


async def _within(what: Awaitable[Any], idle_timeout: float) -> Any:
    try:
        async with asyncio.timeout(idle_timeout):
            return await what
    except TimeoutError:
        raise ApiError(408, "request_timeout", "request body not received in time") from None


async def _read_form(
    request: web.Request,
    spec: FormSpec,
    out: IO[bytes],
    path: Path,
    max_file_bytes: int,
    idle_timeout: float,
    tee: Tee | None,
) -> Form:
    try:
        reader = await request.multipart()
    except (KeyError, ValueError, AssertionError):  # no or a bad boundary
        raise _malformed("no usable boundary in Content-Type") from None
    fields: dict[str, Any] = {}
    upload: Upload | None = None
    try:
        for _ in range(MAX_PARTS + 1):
            part = await _within(reader.next(), idle_timeout)
            if part is None:
                break
            if isinstance(part, MultipartReader):
                raise _malformed("nested multipart parts are not accepted")
            name = part.name
            if not name:
                raise _malformed("a part without a name")
            if name in fields or (name == spec.file_field and upload is not None):
                raise invalid(name, "given more than once")
            if name == spec.file_field:
                upload = await _spool(part, name, out, path, max_file_bytes, idle_timeout, tee)
            elif name in spec.kinds:
                fields[name] = await _field(part, name, spec, idle_timeout)
            else:
                raise invalid(name, "unknown field")
        else:
            raise _malformed(f"more than {MAX_PARTS} parts")
    except (ValueError, HttpProcessingError) as e:  # aiohttp's parse errors of a bad body
        raise _malformed(str(e)[:200] or type(e).__name__) from None
    except ConnectionResetError:  # the client went away: nobody reads this answer
        raise _malformed("the connection was lost before the body ended") from None
    if upload is None:
        raise invalid(spec.file_field, "missing: send the file as a part of that name")
    return Form(fields, upload)


async def _field(part: BodyPartReader, name: str, spec: FormSpec, idle_timeout: float) -> Any:
    raw = bytearray()
    while chunk := await _within(part.read_chunk(MAX_FIELD_BYTES + 1), idle_timeout):
        raw += chunk
        if len(raw) > MAX_FIELD_BYTES:
            raise invalid(name, f"longer than {MAX_FIELD_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid(name, "not valid UTF-8") from None
    value = coerce_text(name, text, spec.kinds[name])
    failure = spec.checks[name](value)
    if failure is not None:
        raise invalid(format_path(failure[0], name), failure[1])
    return value


def _write(out: IO[bytes], digest: Any, chunks: list[Chunk]) -> None:
    for chunk in chunks:
        digest.update(chunk)  # releases the GIL on large buffers
        out.write(chunk)
    out.flush()


async def _write_in_thread(out: IO[bytes], digest: Any, chunks: list[Chunk]) -> None:
    try:
        await asyncio.to_thread(_write, out, digest, chunks)
    except OSError as e:  # the temp directory is full or gone: not the client's fault
        raise ApiError(
            503, "storage_unavailable", f"could not store the upload: {e.strerror or e}"
        ) from None


async def _store(out: IO[bytes], digest: Any, chunks: list[Chunk], tee: Tee | None) -> None:
    """One batch to the spool file (and the tee, at the same time); both end before this does,
    whichever fails, so nothing writes to a file or a connection about to be closed."""
    if tee is None:
        await _write_in_thread(out, digest, chunks)
        return
    results = await asyncio.gather(
        _write_in_thread(out, digest, chunks), tee(chunks), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _spool(
    part: BodyPartReader,
    field: str,
    out: IO[bytes],
    path: Path,
    max_file_bytes: int,
    idle_timeout: float,
    tee: Tee | None,
) -> Upload:
    """The file part into `out`, hashed; one batch in flight while the next chunks arrive."""
    digest = hashlib.sha256()
    size = 0
    batch: list[Chunk] = []
    batched = 0
    writing: asyncio.Future[None] | None = None
    chunks = part_chunks(part)
    try:
        while (chunk := await _within(anext(chunks, None), idle_timeout)) is not None:
            size += len(chunk)
            if size > max_file_bytes:
                raise _too_large(field, max_file_bytes)
            batch.append(chunk)
            batched += len(chunk)
            if batched >= WRITE_BYTES:
                if writing is not None:
                    await asyncio.shield(writing)
                writing = asyncio.ensure_future(_store(out, digest, batch, tee))
                batch, batched = [], 0
        if writing is not None:
            await asyncio.shield(writing)
        await _store(out, digest, batch, tee)
    finally:
        await chunks.aclose()
        if writing is not None:
            if not writing.done():
                # never leave a thread writing to a file that is about to be closed and removed
                await asyncio.wait({writing})
            if not writing.cancelled():
                writing.exception()  # retrieved: it was raised above when it mattered
    return Upload(
        path=path,
        filename=part.filename or "",
        content_type=part.headers.get(hdrs.CONTENT_TYPE, ""),
        size=size,
        sha256=digest.hexdigest(),
    )
