"""The shared LISTEN session (jobserver.db.listener) against a real PostgreSQL: callbacks per
channel, reconnection after the session dies, `on_connect` after each connection, and a stop
that does not wait for a database that never answers."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from jobserver.db.listener import Listener
from tests.waiting import wait_for

CHANNEL = "jobserver_test_listener"


async def _true(value: bool) -> bool:
    return value


@pytest.mark.parametrize("source", ["url", "pool"])
async def test_reconnects_after_its_session_dies(
    source: str, database_url: str, pool: asyncpg.Pool
) -> None:
    got: list[str] = []
    connects: list[int] = []
    listener = Listener(
        database_url if source == "url" else pool,
        {CHANNEL: got.append},
        on_connect=lambda: connects.append(1),
    )
    listener.start()
    try:
        await wait_for(lambda: _true(listener.connected.is_set()), within=10)
        await pool.execute("SELECT pg_notify($1, 'first')", CHANNEL)
        await wait_for(lambda: _true(got == ["first"]), within=5)
        old = listener.backend_pid
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", old)

        async def reconnected() -> bool:
            return listener.connected.is_set() and listener.backend_pid != old

        await wait_for(reconnected, within=10)
        assert len(connects) == 2  # once per connection: the owner catches up each time
        await pool.execute("SELECT pg_notify($1, 'second')", CHANNEL)
        await wait_for(lambda: _true(got == ["first", "second"]), within=5)
    finally:
        await listener.stop()
        await listener.stop()  # twice: a no-op
    assert not listener.connected.is_set()


async def test_gives_its_pool_connection_back_on_stop(pool: asyncpg.Pool) -> None:
    listener = Listener(pool, {CHANNEL: lambda _payload: None})
    listener.start()
    await wait_for(lambda: _true(listener.connected.is_set()), within=10)
    before = pool.get_idle_size()
    await listener.stop()
    assert pool.get_idle_size() == before + 1


async def test_stop_does_not_wait_for_a_database_that_does_not_answer() -> None:
    accepted = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)  # accept the connection, never answer
        accepted.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    listener = Listener(f"postgresql://u@127.0.0.1:{port}/db", {CHANNEL: lambda _p: None})
    listener.start()
    await asyncio.wait_for(accepted.wait(), 5)  # it is connecting now
    t0 = time.monotonic()
    await listener.stop()
    assert time.monotonic() - t0 < 1  # not the 5 s connect timeout
    for w in writers:
        w.close()
    server.close()
    await server.wait_closed()
