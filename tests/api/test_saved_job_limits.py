"""OWNER_MAX_SAVED_JOBS: an owner keeps at most that many saved jobs (a 429 past it)."""

from __future__ import annotations

import pytest

from jobserver.config import Settings
from tests.api.conftest import Api
from tests.api.test_saved_jobs import ECHO, counts, create


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, worker_id="t", owner_max_saved_jobs=3)


async def test_an_owner_keeps_at_most_owner_max_saved_jobs(api: Api) -> None:
    for i in range(3):
        await create(api, name=f"job {i}")
    r = await api.call("POST", "/v1/saved-jobs", token="plain", json={**ECHO, "name": "job 3"})
    assert r.status == 429 and r.body["code"] == "quota_exceeded", r.body
    assert r.body["maxSavedJobs"] == 3
    await create(api, token="other", name="job 3")  # another owner has a quota of its own
    assert await counts(api) == (4, 0, 0)
    # a deleted one makes room again
    r = await api.call("GET", "/v1/saved-jobs", token="plain", params={"q": "job 0"})
    [first] = r.body["items"]
    assert (await api.call("DELETE", f"/v1/saved-jobs/{first['id']}", token="plain")).status == 204
    await create(api, name="job 3")
