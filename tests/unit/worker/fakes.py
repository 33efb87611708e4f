"""An in-memory `JobHost` for unit tests of the job context and the executor."""

from __future__ import annotations

import json
import uuid
from typing import Any, NoReturn

from jobserver.worker.writes import Limits


class FakeHost:
    """Records the writes a job context makes; `fenced` makes them all fenced off."""

    def __init__(
        self, *, fenced: bool = False, fail_writes: bool = False, limits: Limits | None = None
    ) -> None:
        self.events: list[tuple[str, Any]] = []
        self.progress: list[Any] = []
        self.progress_events = 0
        self.fenced = fenced
        self.fail_writes = fail_writes
        self.limits = limits or Limits()
        self.stored = (0, False)  # what events_stored answers (earlier attempts' events)
        self.metadata: dict[str, Any] = {}  # what write_metadata merged

    @property
    def worker_id(self) -> str:
        return "worker-test"

    @property
    def pool(self) -> NoReturn:
        raise AssertionError("no database in unit tests")

    @property
    def blobs(self) -> NoReturn:
        raise AssertionError("no blob store in unit tests")

    def cpu_pool(self) -> NoReturn:
        raise AssertionError("no process pool in unit tests")

    async def write_event(
        self, job_id: uuid.UUID, attempt: int, event: str, details_json: str | None
    ) -> bool:
        if self.fail_writes:
            raise ConnectionError("database unavailable")
        self.events.append((event, None if details_json is None else json.loads(details_json)))
        return not self.fenced

    async def write_progress(
        self, job_id: uuid.UUID, attempt: int, body_json: str, *, event: bool = True
    ) -> bool:
        self.progress.append(json.loads(body_json))
        self.progress_events += event
        return not self.fenced

    async def events_stored(self, job_id: uuid.UUID) -> tuple[int, bool]:
        return self.stored

    async def write_metadata(self, job_id: uuid.UUID, attempt: int, patch_json: str) -> bool:
        self.metadata.update(json.loads(patch_json))
        return not self.fenced
