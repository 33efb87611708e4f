"""Runner control handlers (`manage_jobs`; the paused queues list: `view_jobs`).

- `POST /v1/runners/{id}/ping` {timeoutMs}: one round trip through the control channel;
  answers `answered` and the measured `ms` (null when no reply came within the timeout).
- `POST /v1/runners/{id}/shutdown` {mode: graceful | immediate, timeoutMs}: the runner answers,
  then stops (graceful: stop claiming, running jobs finish within SHUTDOWN_GRACE_SECONDS, the
  rest are handed back; immediate: handed back now) and its process exits 0.
- `POST /v1/runners/broadcast` {command: status | shutdown | pause | resume | reload,
  timeoutMs, queue?, mode?}: to every live runner (of `queue` when given); answers each reply
  and names the live runners that did not answer (`notAnswered`). `pause`/`resume` stop and
  start one runner's own claims (not durable: a restart resumes).
- `POST /v1/queues/{name}/pause` {reason?, timeoutMs} and `/resume` {timeoutMs}: the durable,
  fleet-wide pause (`paused_queues`); every live runner is told, and the answer says which
  runners of the queue applied it (`acknowledged`: none of those claims the queue once the answer is
  given) and which did not answer. Pausing a paused queue, or resuming one that is not, changes
  nothing (`changed: false`).
- `GET /v1/queues/paused`: the paused queues by name (limit, cursor).

A ping or shutdown of an unknown runner is a 404, of one that is not live (stopped, gone) a
409. Commands go through `ControlChannel` (control_channel.py); the runners' side is
jobserver/worker/control.py.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from jobserver.api.control_channel import Sent
from jobserver.api.errors import ApiError, invalid, not_found
from jobserver.api.jsonio import json_response
from jobserver.api.keys import BODY_KEY, CONTROL_KEY, POOL_KEY, PRINCIPAL_KEY, QUERY_KEY
from jobserver.api.paging import Pager
from jobserver.api.request import name_param
from jobserver.core import control
from jobserver.core.names import QUEUE
from jobserver.db.paused_queues import paused_queue_list, paused_queue_pause, paused_queue_resume
from jobserver.db.workers import LIVE_STATUSES, worker_get, worker_live_ids

PAUSED = Pager("paused_queues", ("str",))


def _who(request: web.Request) -> str:
    principal = request[PRINCIPAL_KEY]
    return principal.token_name or principal.owner


def _timeout_ms(body: dict[str, Any]) -> int:
    return int(body.get("timeoutMs", control.DEFAULT_TIMEOUT_MS))


async def _send(
    request: web.Request,
    target: str | None,
    command: str,
    args: dict[str, Any],
    expect: list[str],
    timeout_ms: int,
) -> Sent:
    return await request.app[CONTROL_KEY].send(
        request.app[POOL_KEY],
        target=target,
        command=command,
        args=args,
        created_by=_who(request),
        expect=expect,
        timeout=timeout_ms / 1000,
    )


async def _live_runner(request: web.Request) -> str:
    runner_id = name_param(request, "runner", "id")
    row = await worker_get(request.app[POOL_KEY], runner_id)
    if row is None:
        raise not_found("runner")
    if row["status"] not in LIVE_STATUSES:
        raise ApiError(
            409,
            "invalid_state",
            f"runner {runner_id!r} is {row['status']}: it cannot answer",
            extra={"runnerStatus": row["status"]},
        )
    return runner_id


async def _one(request: web.Request, command: str, args: dict[str, Any]) -> web.Response:
    runner_id = await _live_runner(request)
    timeout_ms = _timeout_ms(request[BODY_KEY])
    sent = await _send(request, runner_id, command, args, [runner_id], timeout_ms)
    reply = next((r for r in sent.replies if r.worker_id == runner_id), None)
    return json_response(
        {
            "runnerId": runner_id,
            "commandId": sent.command_id,
            "command": command,
            "answered": reply is not None,
            "ms": None if reply is None else reply.ms,
            "timeoutMs": timeout_ms,
            "reply": None if reply is None else reply.reply,
        }
    )


async def ping_runner(request: web.Request) -> web.Response:
    return await _one(request, control.PING, {})


async def shutdown_runner(request: web.Request) -> web.Response:
    mode = request[BODY_KEY].get("mode", "graceful")
    return await _one(request, control.SHUTDOWN, {"mode": mode})


async def broadcast(request: web.Request) -> web.Response:
    body: dict[str, Any] = request[BODY_KEY]
    command: str = body["command"]
    queue: str | None = body.get("queue")
    if "mode" in body and command != control.SHUTDOWN:
        raise invalid("mode", "only for the shutdown command")
    args: dict[str, Any] = {}
    if queue is not None:
        args["queue"] = queue
    if command == control.SHUTDOWN:
        args["mode"] = body.get("mode", "graceful")
    timeout_ms = _timeout_ms(body)
    expect = await worker_live_ids(request.app[POOL_KEY], queue)
    sent = await _send(request, None, command, args, expect, timeout_ms)
    return json_response(
        {
            "commandId": sent.command_id,
            "command": command,
            "queue": queue,
            "timeoutMs": timeout_ms,
            "expected": len(expect),
            "answered": len(sent.replies),
            "replies": [
                {
                    "runnerId": r.worker_id,
                    "ms": r.ms,
                    "answeredAt": r.answered_at,
                    "reply": r.reply,
                }
                for r in sent.replies
            ],
            "notAnswered": sent.missing,
        }
    )


# -- the durable pause of a queue ---------------------------------------------------------------


def _queue(request: web.Request) -> str:
    name = request.match_info.get("name", "")
    if not QUEUE.matches(name):
        raise invalid("name", f"queue {name[:120]!r}: expected {QUEUE.description}")
    return name


async def _tell_runners(
    request: web.Request, queue: str, timeout_ms: int
) -> tuple[list[str], list[str]]:
    """Every live runner re-reads the paused queues; those of `queue` are waited for. Returns
    (the runners of the queue that applied it, those that did not answer)."""
    expect = await worker_live_ids(request.app[POOL_KEY], queue)
    sent = await _send(request, None, control.PAUSED_QUEUES, {}, expect, timeout_ms)
    return sorted(r.worker_id for r in sent.replies if r.worker_id in expect), sent.missing


def _pause_answer(
    queue: str, paused: bool, row: Any, changed: bool, told: tuple[list[str], list[str]]
) -> dict[str, Any]:
    return {
        "queue": queue,
        "paused": paused,
        "changed": changed,
        "pausedAt": None if row is None else row["paused_at"],
        "pausedBy": None if row is None else row["paused_by"],
        "reason": None if row is None else row["reason"],
        "acknowledged": told[0],
        "notAnswered": told[1],
    }


async def pause_queue(request: web.Request) -> web.Response:
    queue = _queue(request)
    body: dict[str, Any] = request[BODY_KEY]
    row, changed = await paused_queue_pause(
        request.app[POOL_KEY], queue, _who(request), body.get("reason")
    )
    told = await _tell_runners(request, queue, _timeout_ms(body))
    return json_response(_pause_answer(queue, True, row, changed, told))


async def resume_queue(request: web.Request) -> web.Response:
    queue = _queue(request)
    row = await paused_queue_resume(request.app[POOL_KEY], queue)
    told = await _tell_runners(request, queue, _timeout_ms(request[BODY_KEY]))
    return json_response(_pause_answer(queue, False, None, row is not None, told))


def paused_queue_json(r: Any) -> dict[str, Any]:
    return {
        "queue": r["queue"],
        "pausedAt": r["paused_at"],
        "pausedBy": r["paused_by"],
        "reason": r["reason"],
    }


async def list_paused_queues(request: web.Request) -> web.Response:
    q = request[QUERY_KEY]
    limit = q.get("limit", 100)
    after = PAUSED.after(q)
    rows = await paused_queue_list(
        request.app[POOL_KEY], limit=limit + 1, after=None if after is None else after[0]
    )
    return json_response(PAUSED.page(rows, limit, lambda r: (r["queue"],), paused_queue_json))
