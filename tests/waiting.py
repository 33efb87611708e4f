"""The polling helpers of the suite: wait on a condition read from the system under test
(`wait_for` in async tests, `wait_until` for tests that drive child processes synchronously)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def wait_for(
    check: Callable[[], Awaitable[Any]], within: float = 10.0, step: float = 0.02
) -> Any:
    """Poll `check` until it returns something truthy and return that; fail after `within`
    seconds with the last value seen."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s (last: {value!r})")
        await asyncio.sleep(step)


def wait_until(check: Callable[[], Any], within: float = 10.0, step: float = 0.05) -> Any:
    """`wait_for` for synchronous tests: poll `check` until it returns something truthy; an
    AssertionError it raises (e.g. "the child exited") fails the test at once."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s (last: {value!r})")
        time.sleep(step)
