"""The README's client example runs as written against the real API and a worker, with
JOBSERVER_URL and JOBSERVER_TOKEN set as a reader would."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.api.conftest import Api
from tests.client.conftest import StartWorker, base_url

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


async def test_the_client_example_runs(
    api: Api, start_worker: StartWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = re.search(r"<!-- run: client -->\n```python\n(.*?)```", README, re.S)
    assert found is not None
    await start_worker()
    failed = await api.submit(definitionKey="failing", maxAttempts=1, params={})
    monkeypatch.setenv("JOBSERVER_URL", base_url(api))
    monkeypatch.setenv("JOBSERVER_TOKEN", api.tokens["manage"])
    scope: dict[str, object] = {}
    await asyncio.to_thread(exec, found.group(1), scope)
    done = scope["done"]
    assert getattr(done, "status", None) == "succeeded"
    retried = await api.pool.fetchval(
        "SELECT count(*) FROM jobs WHERE retried_from = $1::uuid", failed["id"]
    )
    assert retried == 1
