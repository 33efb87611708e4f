"""`ctx.set_metadata` without a database: an object is sent as one merge, anything else is a
TypeError, and a value PostgreSQL cannot store (or past the size limit) raises NotStorable
before anything is sent."""

from __future__ import annotations

import uuid

import pytest

from jobserver.codec import NotStorable
from jobserver.worker.context import JobContext
from jobserver.worker.writes import Limits
from tests.unit.worker.fakes import FakeHost


def _ctx(host: FakeHost) -> JobContext:
    return JobContext(host, uuid.uuid4(), 1, 1, {})


async def test_each_call_is_one_merge() -> None:
    host = FakeHost()
    ctx = _ctx(host)
    assert await ctx.set_metadata({"emailsSent": 1, "batch": "a"})
    assert await ctx.set_metadata({"emailsSent": 42})
    assert host.metadata == {"emailsSent": 42, "batch": "a"}


async def test_fenced_off_answers_false() -> None:
    assert await _ctx(FakeHost(fenced=True)).set_metadata({"n": 1}) is False


@pytest.mark.parametrize("value", [[1, 2], "text", None, 3])
async def test_only_an_object_is_metadata(value: object) -> None:
    host = FakeHost()
    with pytest.raises(TypeError, match="metadata must be a dict"):
        await _ctx(host).set_metadata(value)  # type: ignore[arg-type]
    assert host.metadata == {}


@pytest.mark.parametrize("value", [{"s": "a\x00b"}, {"s": "x" * 2000}, {"s": "\ud800"}])
async def test_what_cannot_be_stored_is_refused_before_it_is_sent(value: dict[str, str]) -> None:
    host = FakeHost(limits=Limits(max_result_bytes=1000))
    with pytest.raises(NotStorable, match="metadata"):
        await _ctx(host).set_metadata(value)
    assert host.metadata == {}
