"""The held job's state machine: the moves the lifecycle has, and the ones it refuses."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from jobserver.registry import Definition
from jobserver.worker.context import JobContext
from jobserver.worker.held import (
    ACKING,
    BUFFERED,
    CANCEL,
    DONE,
    HAND_BACK,
    LOST,
    NONE,
    RUNNING,
    TIMEOUT,
    HeldJob,
    IllegalTransition,
)
from tests.unit.worker.fakes import FakeHost


async def _noop(params: object, ctx: object) -> None:
    return None


DEF = Definition("noop", 1, _noop)


def _job() -> HeldJob:
    return HeldJob(uuid.uuid4(), 1, 3, DEF, {}, None)


def _begin(h: HeldJob) -> None:
    task = asyncio.current_task()
    assert task is not None
    h.begin(task, JobContext(FakeHost(), h.id, h.attempt, h.max_attempts, h.params), 1.0)


def test_a_new_job_is_buffered_with_no_stop_reason() -> None:
    h = _job()
    assert (h.state, h.stop) == (BUFFERED, NONE)
    assert h.waited == 0.0 and h.ran_for(5.0) == 0.0
    assert not hasattr(h, "__dict__")  # slots only: one is made per claimed job


async def test_the_whole_way_buffered_running_acking_done() -> None:
    h = _job()
    _begin(h)
    assert h.state == RUNNING and h.task is asyncio.current_task() and h.ctx is not None
    h.finish()
    assert h.state == ACKING
    h.written()
    assert h.state == DONE


async def test_moves_out_of_order_are_refused() -> None:
    h = _job()
    with pytest.raises(IllegalTransition):
        h.finish()  # never ran
    with pytest.raises(IllegalTransition):
        h.written()  # nothing was acknowledged
    _begin(h)
    with pytest.raises(IllegalTransition):
        _begin(h)  # already running
    with pytest.raises(IllegalTransition):
        h.written()
    with pytest.raises(IllegalTransition):
        h.cancel_unstarted()  # it started
    h.finish()
    with pytest.raises(IllegalTransition):
        h.finish()
    with pytest.raises(IllegalTransition):
        h.lose()  # its outcome is being written
    with pytest.raises(IllegalTransition):
        h.hand_back()
    with pytest.raises(IllegalTransition):
        h.release()
    h.written()
    with pytest.raises(IllegalTransition):
        h.written()


async def test_release_needs_a_reason_to_drop_the_outcome() -> None:
    h = _job()
    with pytest.raises(IllegalTransition):
        h.release()  # no stop reason: its outcome must be written
    _begin(h)
    assert h.request_cancel()
    with pytest.raises(IllegalTransition):
        h.release()  # a cancelled job is acknowledged, not dropped
    assert h.lose()
    h.release()
    assert h.state == DONE


def test_a_buffered_job_that_was_stopped_never_begins() -> None:
    h = _job()
    assert h.hand_back()
    h.release()
    with pytest.raises(IllegalTransition):
        _begin_sync(h)


def _begin_sync(h: HeldJob) -> None:
    h.begin(None, None, 1.0)  # type: ignore[arg-type]  # refused before it reads them


def test_cancel_of_a_buffered_job_goes_straight_to_acking() -> None:
    h = _job()
    with pytest.raises(IllegalTransition):
        h.cancel_unstarted()  # no cancel request
    assert h.request_cancel()
    h.cancel_unstarted()
    assert (h.state, h.stop) == (ACKING, CANCEL)
    assert not h.request_cancel()  # being acknowledged: nothing to cancel


async def test_a_second_cancel_request_is_a_no_op() -> None:
    h = _job()
    _begin(h)
    assert h.request_cancel()
    assert not h.request_cancel()
    assert h.stop == CANCEL


async def test_a_cancel_request_overrides_a_timeout_but_not_a_loss_or_hand_back() -> None:
    h = _job()
    _begin(h)
    assert h.time_out()
    assert h.stop == TIMEOUT
    assert h.request_cancel()
    assert h.stop == CANCEL
    assert h.time_out()  # still to be cancelled, still for the cancel request
    assert h.stop == CANCEL
    assert h.hand_back()
    assert h.stop == HAND_BACK
    assert not h.request_cancel()
    assert not h.hand_back()  # twice: no-op
    assert h.lose()
    assert h.stop == LOST
    assert not h.lose()
    assert not h.hand_back()
    assert not h.request_cancel()


def test_time_out_only_stops_a_running_job() -> None:
    h = _job()
    assert not h.time_out()
    assert h.stop == NONE


async def test_finish_and_release_cancel_the_grace_timer() -> None:
    loop = asyncio.get_running_loop()
    for end in ("finish", "release"):
        h = _job()
        _begin(h)
        h.lose()
        h.cancel_handle = loop.call_later(60, lambda: None)
        getattr(h, end)()
        assert h.cancel_handle.cancelled()
