"""The ack buffer without a database: which errors retry a batch, and closing always ends."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Collection

import asyncpg
import pytest

from jobserver.registry import Definition
from jobserver.worker import acks
from jobserver.worker.acks import AckBuffer, db_message, refused_row
from jobserver.worker.context import JobContext
from jobserver.worker.held import DONE, HeldJob
from tests.unit.worker.fakes import FakeHost


async def _nothing(params: object, ctx: JobContext) -> None:
    return None


def _acking() -> HeldJob:
    h = HeldJob(uuid.uuid4(), 1, 1, Definition("t", 1, _nothing), {}, None, None, 0.0)
    task = asyncio.current_task()
    assert task is not None
    h.begin(task, JobContext(FakeHost(), h.id, 1, 1, {}), time.monotonic())
    h.finish()
    return h


async def test_closing_gives_up_when_writes_keep_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM must stop a worker whose database is gone: close retries a bounded number of
    times, then the outcomes are given up (their leases expire, the rescuer ends the jobs)."""
    monkeypatch.setattr(acks, "CLOSE_RETRIES", 2)
    tries = 0

    async def connect() -> asyncpg.Connection:
        nonlocal tries
        tries += 1
        raise OSError("connection refused")

    seen: list[tuple[str, int, int]] = []

    def written(kind: str, entries: list[HeldJob], ids: Collection[uuid.UUID]) -> None:
        for h in entries:
            h.written()
        seen.append((kind, len(entries), len(ids)))

    buf = AckBuffer(connect, "w", written)
    buf.start()
    jobs = [_acking(), _acking()]
    buf.add_success(jobs[0], "{}")
    buf.add_cancel(jobs[1])
    await asyncio.wait_for(buf.close(), 10)
    assert seen == [("given_up", 2, 0)]
    assert all(h.state == DONE for h in jobs)
    assert tries >= 2 and buf.backlog() == 0


def test_which_errors_retry_the_batch() -> None:
    assert not refused_row(OSError("reset"))
    assert not refused_row(TimeoutError())
    assert not refused_row(asyncpg.ConnectionDoesNotExistError("closed"))
    assert not refused_row(asyncpg.AdminShutdownError("shutdown"))
    assert not refused_row(asyncpg.DeadlockDetectedError("deadlock"))
    assert refused_row(asyncpg.UntranslatableCharacterError("unsupported Unicode escape"))
    assert refused_row(asyncpg.DataError("invalid input for query argument $4"))
    assert refused_row(asyncpg.ProgramLimitExceededError("too big"))


def test_the_database_message_is_one_storable_line() -> None:
    e = asyncpg.DataError("bad \ud800 arg\x00\nsecond line")
    assert db_message(e) == "bad \\ud800 arg"
