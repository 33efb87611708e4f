"""Video routes: upload a video to encode, follow its `encode.video` job, download the result.

`POST /v1/videos/encode` (scope submit) takes multipart/form-data: the file as the `video` part
and the fields `format` (mp4|webm|mkv, default mp4), `quality` (720p|1080p|4k, default 1080p),
`priority`, `upscale` and `idempotencyKey`, in any order (see uploads.py for how the file is
streamed under VIDEO_MAX_UPLOAD_BYTES and what a bad form answers). The file is received
into the blob store as it arrives (`BlobStore.receiving`): with BLOB_DIR it is spooled to
the blob's own temporary name there, later renamed into place; with large objects it is
spooled to VIDEO_UPLOAD_DIR (for the probe) and written to a large object at the same time,
in a transaction that commits only once the probe passed. Then:
1. a repeat of an `idempotencyKey` is settled before anything is stored: the same fields and
   the same file (its SHA-256) answer the first job (200), anything else is 409;
2. FFmpeg probes the file (`jobserver.video.probe`): not a video is 422 naming `video` with
   the reason;
3. the blob is kept (`commit`: role "input", owned by the token's owner) under the name
   `<epoch ms>-<client's name>` (the answer's `inputFile`); a repeat, a refusal or a client
   gone mid-upload keeps nothing (the spool file removed, the large object rolled back);
4. the job is built by the one submission core (`core.submission.build_job`: the definition's
   params schema, defaults, priority rules) with params `{input: {blobId, filename}, format,
   quality, upscale}`, and inserted with the statement every submission uses, in ONE
   transaction with `BlobStore.attach` (the group committer batches other requests' jobs into
   its statements and takes no per-job hook, so this route writes its job itself, through the
   same db functions: `job_insert_times`, or the owner's quota check). A job exists only with
   its file, and a file whose job was never stored is deleted (or, had the process died, swept
   by the scheduler after BLOB_UNATTACHED_SECONDS).
Answer: 201 `{jobId, status: "queued", message, inputFile}`. The spool file is always removed.

`GET /v1/videos/{jobId}/status` and `GET|HEAD /v1/videos/{jobId}/download` see a job as
`GET /v1/jobs/{id}` does (a plain token its own jobs only: another owner's is 404, as is a job
of another definition). The download streams the output blob in chunks with Content-Type,
Content-Length, Content-Disposition (RFC 6266 `filename*` too), `Accept-Ranges: bytes` and the
content's SHA-256 as a strong ETag, and honours one byte range (206 with Content-Range; 416
with `Content-Range: bytes */size` when it cannot be met; several ranges get the whole file,
200), under `If-Range` only when it names that ETag (see byte_ranges.py). A job that has not
succeeded is 409 `{"error", "code": "invalid_state", "status"}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
from aiohttp import hdrs, web

from jobserver.api import schemas as s
from jobserver.api.auth import Principal, require_outbound
from jobserver.api.byte_ranges import (
    UNSATISFIABLE,
    ByteRange,
    content_disposition,
    content_range,
    etag_of,
    if_range_allows,
    parse_range,
    unsatisfied_range,
)
from jobserver.api.definitions_cache import DefinitionInfo
from jobserver.api.errors import ApiError, error_response, invalid, not_found
from jobserver.api.jsonio import json_response
from jobserver.api.keys import DEFINITION_CACHE_KEY, POOL_KEY, PRINCIPAL_KEY, SETTINGS_KEY
from jobserver.api.quotas import check_priority, insert_within_quota_on, queued_quota
from jobserver.api.reference_checks import check_references
from jobserver.api.request import uuid_param
from jobserver.api.uploads import FormSpec, Upload, receive_form
from jobserver.blobs import Blob, BlobStore, BlobTooLarge
from jobserver.config import Settings
from jobserver.core.errors import RuleError
from jobserver.core.idempotency import fingerprint, same_request
from jobserver.core.submission import build_job
from jobserver.db.jobs import NewJob, job_get, job_get_by_idempotency_keys, job_insert_times
from jobserver.video.probe import NotAVideo, probe

DEFINITION = s.VIDEO_DEFINITION
CREATED = "Video encoding job created"
REPEATED = "Video encoding job already created (same idempotencyKey)"
FORM = FormSpec(s.VIDEO_ENCODE_FORM, "video")
INSERT_RETRIES = 3
READ_CHUNK = 1 << 20  # bytes per read of the output blob
MAX_NAME_CHARS = 180
FALLBACK_TYPE = "application/octet-stream"

_CONTENT_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}"
)
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")
UTC = dt.UTC


def _blobs(request: web.Request) -> BlobStore:
    return BlobStore.from_settings(request.app[POOL_KEY], request.app[SETTINGS_KEY])


# ------------------------------------------------------------------------------ upload


async def encode_video(request: web.Request) -> web.Response:
    pool = request.app[POOL_KEY]
    settings = request.app[SETTINGS_KEY]
    principal = request[PRINCIPAL_KEY]
    info = await _definition(request)
    store = _blobs(request)
    try:
        async with (
            store.receiving(
                owner=principal.owner, spool_dir=settings.video_upload_dir or None
            ) as incoming,
            receive_form(
                request,
                FORM,
                directory=None,
                max_file_bytes=settings.video_max_upload_bytes,
                spool_path=incoming.path,
                tee=incoming.tee,
            ) as form,
        ):
            upload = form.upload
            assert upload is not None
            fields = form.fields
            check_priority(principal, settings, fields)
            key: str | None = fields.get("idempotencyKey")
            request_fingerprint = (
                fingerprint(_identity(fields, upload)) if key is not None else None
            )
            if key is not None:
                repeat = await _repeat(pool, principal.owner, key, request_fingerprint)
                if repeat is not None:
                    return repeat
            try:
                await probe(upload.path)
            except NotAVideo as e:
                raise invalid("video", f"not a video FFmpeg can encode: {e.reason}") from None
            blob = await incoming.commit(
                filename=stored_name(upload.filename),
                content_type=_content_type(upload.content_type),
                size=upload.size,
                sha256=upload.sha256,
            )
    except BlobTooLarge as e:
        raise ApiError(
            413,
            "body_too_large",
            f"video: larger than {e.limit} bytes (BLOB_MAX_BYTES)",
            "video",
            {"maxBytes": e.limit},
        ) from None
    # called at once: the blob is deleted unless its job is stored (see _submit)
    return await _submit(request, info, fields, key, request_fingerprint, store, blob)


async def _definition(request: web.Request) -> DefinitionInfo:
    """encode.video's latest version; without it registered the route cannot work (503)."""
    try:
        info = await request.app[DEFINITION_CACHE_KEY].resolve(
            request.app[POOL_KEY], DEFINITION, None
        )
    except RuleError:
        raise ApiError(
            503,
            "unavailable",
            f"video encoding is unavailable: {DEFINITION} is not registered"
            " (run register-definitions)",
        ) from None
    if info.outbound:
        require_outbound(request[PRINCIPAL_KEY], info.key, info.version)
    return info


def _identity(fields: Mapping[str, Any], upload: Upload) -> dict[str, Any]:
    """What makes two uploads under one idempotencyKey the same request: the fields (defaults
    filled in) and the file's content, size and name."""
    return {
        "definitionKey": DEFINITION,
        **_choices(fields),
        "priority": fields.get("priority", 0),
        "idempotencyKey": fields.get("idempotencyKey"),
        "video": {"sha256": upload.sha256, "size": upload.size, "filename": upload.filename},
    }


def _choices(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "format": fields.get("format", "mp4"),
        "quality": fields.get("quality", "1080p"),
        "upscale": fields.get("upscale", False),
    }


def stored_name(client_name: str, now: float | None = None) -> str:
    """`<epoch ms>-<name>`: the client's file name without its path, control characters or
    slashes, bounded (`video` when it gave none)."""
    base = re.split(r"[/\\]", client_name)[-1]
    base = _UNSAFE_NAME.sub("_", base).strip().lstrip(".") or "video"
    if len(base) > MAX_NAME_CHARS:  # keep a short extension: the output is named after it
        _, dot, ext = base.rpartition(".")
        tail = f".{ext}" if dot and len(ext) <= 10 else ""
        base = base[: MAX_NAME_CHARS - len(tail)] + tail
    millis = int((time.time() if now is None else now) * 1000)
    return f"{millis}-{base}"


def _content_type(declared: str) -> str:
    value = declared.split(";", 1)[0].strip().lower()
    return value if _CONTENT_TYPE.fullmatch(value) else FALLBACK_TYPE


async def _repeat(
    pool: asyncpg.Pool, owner: str, key: str, request_fingerprint: str | None
) -> web.Response | None:
    """The stored job holding `key`: 200 when this is the same upload, 409 otherwise; None when
    no job holds the key."""
    found = await job_get_by_idempotency_keys(pool, owner, [key])
    if not found:
        return None
    row = found[0]
    if not same_request(row["request_fingerprint"], request_fingerprint):
        raise ApiError(
            409,
            "idempotency_conflict",
            f"idempotencyKey {key!r} was already used with other fields or another file",
            "idempotencyKey",
        )
    return json_response(_created_json(row["id"], row["status"], REPEATED, row["params"]))


def _created_json(job_id: uuid.UUID, status: str, message: str, params: Any) -> dict[str, Any]:
    return {"jobId": job_id, "status": status, "message": message, "inputFile": _input_name(params)}


def _input_name(params: Any) -> str:
    source = params.get("input") if isinstance(params, dict) else None
    name = source.get("filename") if isinstance(source, dict) else None
    return name if isinstance(name, str) else ""


async def _submit(
    request: web.Request,
    info: DefinitionInfo,
    fields: Mapping[str, Any],
    key: str | None,
    request_fingerprint: str | None,
    store: BlobStore,
    blob: Blob,
) -> web.Response:
    """Build and insert the job with its input attached; the blob is deleted unless attached."""
    pool = request.app[POOL_KEY]
    principal = request[PRINCIPAL_KEY]
    settings = request.app[SETTINGS_KEY]
    attached = False
    try:
        item: dict[str, Any] = {
            "definitionKey": info.key,
            "definitionVersion": info.version,
            "params": {"input": {"blobId": str(blob.id), "filename": blob.filename}}
            | _choices(fields),
        }
        for name in ("priority", "idempotencyKey"):
            if name in fields:
                item[name] = fields[name]
        job = build_job(
            item, None, info, principal.owner, dt.datetime.now(UTC), None, settings.default_expires
        )
        # build_job fingerprints the item, which names this upload's blob: a repeat compares
        # the fields and the file's content instead (`_identity`)
        job.request_fingerprint = request_fingerprint
        await check_references(pool, principal, info, job.params)
        for _ in range(INSERT_RETRIES):
            try:
                await _insert_with_input(pool, principal, settings, job, store, blob)
            except asyncpg.UniqueViolationError:
                if key is None:
                    raise
                repeat = await _repeat(pool, principal.owner, key, request_fingerprint)
                if repeat is None:
                    continue  # the holder was pruned meanwhile: try again
                return repeat  # a concurrent upload with the key won; this one's blob goes
            attached = True
            return json_response(_created_json(job.id, "queued", CREATED, job.params), status=201)
        raise ApiError(409, "conflict", "could not store the job; retry")
    finally:
        if not attached:
            with contextlib.suppress(Exception):
                await asyncio.shield(store.delete(blob.id))


async def _insert_with_input(
    pool: asyncpg.Pool,
    principal: Principal,
    settings: Settings,
    job: NewJob,
    store: BlobStore,
    blob: Blob,
) -> None:
    """The job and its input's attachment: one transaction, so neither exists without the
    other. Within the owner's queued quota when it has one (429 past it)."""
    quota = queued_quota(principal, settings)
    async with pool.acquire() as conn, conn.transaction():
        if quota is not None:
            await insert_within_quota_on(conn, [job], job.owner, quota)
        else:
            await job_insert_times(conn, [job])
        if not await store.attach(conn, blob.id, job.id):
            raise ApiError(
                409, "conflict", "the uploaded file was removed before its job was stored; retry"
            )


# ------------------------------------------------------------------------------ status


async def _video_job(request: web.Request) -> asyncpg.Record:
    """The encode.video job in the path if this principal may see it, else 404."""
    row = await job_get(
        request.app[POOL_KEY],
        uuid_param(request, "jobId"),
        request[PRINCIPAL_KEY].owner_filter(),
    )
    if row is None or row["definition_key"] != DEFINITION:
        raise not_found("video job")
    return row


def _output(row: asyncpg.Record) -> dict[str, Any] | None:
    """The result's `output` ({blobId, filename, size, contentType}) of a succeeded job."""
    if row["status"] != "succeeded" or not isinstance(row["result"], dict):
        return None
    output = row["result"].get("output")
    return output if isinstance(output, dict) else None


def status_json(row: asyncpg.Record) -> dict[str, Any]:
    status = row["status"]
    params = row["params"] if isinstance(row["params"], dict) else {}
    report = row["progress"] if isinstance(row["progress"], dict) else {}
    percent = report.get("percent")
    if status == "succeeded":
        percent = 100.0
    output = _output(row) or {}
    name = output.get("filename")
    name = name if isinstance(name, str) else None
    size = output.get("size")
    content_type = output.get("contentType")
    message = report.get("message")
    return {
        "jobId": row["id"],
        "status": status,
        "definitionKey": row["definition_key"],
        "definitionVersion": row["definition_version"],
        "format": _text(params.get("format")),
        "quality": _text(params.get("quality")),
        "inputFile": _input_name(params) or None,
        "progress": float(percent) if isinstance(percent, (int, float)) else None,
        "progressMessage": _text(message),
        "attempt": row["attempt"],
        "maxAttempts": row["max_attempts"],
        "createdAt": row["created_at"],
        "startedAt": row["started_at"],
        "finishedAt": row["finished_at"],
        "outputPath": f"outputs/{name}" if name else None,
        "outputFilename": name,
        "downloadUrl": f"/v1/videos/{row['id']}/download" if name else None,
        "size": size if isinstance(size, int) and not isinstance(size, bool) else None,
        "contentType": _text(content_type),
        "error": row["last_error"] if status in ("failed", "cancelled", "expired") else None,
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


async def video_status(request: web.Request) -> web.Response:
    return json_response(status_json(await _video_job(request)))


# ------------------------------------------------------------------------------ download


async def _output_blob(store: BlobStore, row: asyncpg.Record) -> Blob:
    output = _output(row) or {}
    try:
        blob_id = uuid.UUID(str(output.get("blobId")))
    except ValueError:
        raise not_found("output file") from None
    blob = await store.get(blob_id)
    if blob is None or blob.job_id != row["id"]:
        raise not_found("output file")  # pruned, or not this job's
    return blob


async def download_video(request: web.Request) -> web.StreamResponse:
    """The output file; HEAD gives the headers alone (see the module doc for ranges)."""
    row = await _video_job(request)
    status = row["status"]
    if status != "succeeded":
        raise ApiError(
            409,
            "invalid_state",
            f"the video job is {status}: its file can be downloaded once it has succeeded",
            extra={"status": status, "jobStatus": status},
        )
    store = _blobs(request)
    blob = await _output_blob(store, row)
    etag = etag_of(blob.sha256)
    headers: dict[str, str] = {hdrs.ACCEPT_RANGES: "bytes", hdrs.ETAG: etag}
    wanted = None
    if if_range_allows(request.headers.get(hdrs.IF_RANGE), etag):
        wanted = parse_range(request.headers.get(hdrs.RANGE), blob.size)
    if wanted is UNSATISFIABLE:
        err = ApiError(
            416,
            "range_not_satisfiable",
            f"the file has {blob.size} bytes: the range asked for is outside it",
            extra={"size": blob.size},
        )
        return error_response(err, {**headers, hdrs.CONTENT_RANGE: unsatisfied_range(blob.size)})
    headers[hdrs.CONTENT_DISPOSITION] = content_disposition(blob.filename)
    part = wanted if isinstance(wanted, ByteRange) else ByteRange(0, blob.size)
    response = web.StreamResponse(status=206 if wanted is not None else 200, headers=headers)
    response.content_type = _content_type(blob.content_type)
    response.content_length = part.length
    if wanted is not None:
        response.headers[hdrs.CONTENT_RANGE] = content_range(part, blob.size)
    await response.prepare(request)
    if request.method == hdrs.METH_HEAD or part.length == 0:
        await response.write_eof()
        return response
    try:
        async for chunk in store.read(blob, part.start, part.stop, chunk_size=READ_CHUNK):
            await response.write(chunk)
        await response.write_eof()
    except ConnectionResetError:  # the client went away mid-file: nothing to answer
        pass
    return response
