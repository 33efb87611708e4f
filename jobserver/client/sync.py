"""`Client`: the blocking client of the jobserver API, on httpx.

    with Client("http://127.0.0.1:3000", token) as c:
        job = c.submit("echo", {"message": "hi"})
        done = c.wait(job.id, timeout=60)
        for j in c.list(status="failed"):
            ...

Every method maps to one route (see `jobserver.client.calls`); errors are the typed
exceptions of `jobserver.client.errors`. A 503 is retried with capped exponential back-off
honouring Retry-After, and so are connection failures where repeating is safe
(`jobserver.client.retry`). `list`, `events`, `dlq_list`... are iterators that fetch the next
page when the current one runs out. `watch` yields a job each time it changes until it ends,
woken by /v1/stream, or by reading the job with a growing interval when the server has no
stream; `wait` returns the last. `stream` follows /v1/stream and reconnects with back-off,
sending Last-Event-ID.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from jobserver.client import calls
from jobserver.client.base import (
    DEFAULT_POLL,
    STREAM_PATH,
    Target,
    WritePosition,
    changed,
    deadline_of,
    decoded,
    read_answer,
    remaining,
    request_kwargs,
    route_missing,
    stream_delay,
    stream_timeout,
)
from jobserver.client.calls import Call, Paged
from jobserver.client.errors import NetworkError, WaitTimeout, error_for, parse_retry_after
from jobserver.client.models import (
    BatchResult,
    DlqEntry,
    Event,
    Job,
    Queue,
    QueuePause,
    Redriven,
    Runner,
    RunnerCommand,
    StreamEvent,
)
from jobserver.client.retry import RETRY_STATUSES, RetryPolicy, retry_transport_error
from jobserver.client.sse import SSEDecoder

T = TypeVar("T")


class _NoStream(Exception):
    """The server has no /v1/stream."""


class Client:
    """A blocking client; see the module docstring (and `jobserver.client.base` for options)."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        poll: tuple[float, float] = DEFAULT_POLL,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.target = Target.resolve(url, token)
        self.retry_policy = retry or RetryPolicy()
        self.poll = poll
        self._stream_known: bool | None = None  # None: not tried yet
        self.written = WritePosition()  # sent back on reads (read-your-writes)
        self._http = httpx.Client(
            base_url=self.target.url,
            headers=self.target.headers(),
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -------------------------------------------------------------------- sending

    def call(self, call: Call[T]) -> T:
        """Send `call`, retrying as `jobserver.client.retry` allows; its typed answer."""
        policy = self.retry_policy
        for attempt in range(1, policy.attempts + 1):
            last = attempt == policy.attempts
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    headers=self.written.headers(call.method),
                    **request_kwargs(call),
                )
            except httpx.TransportError as e:
                if last or not retry_transport_error(e, call.idempotent):
                    raise NetworkError(f"{call.method} {call.path}: {e!r}") from e
                time.sleep(policy.delay(attempt))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                time.sleep(policy.delay(attempt, response.headers.get("Retry-After")))
                continue
            self.written.saw(response.headers)
            return read_answer(call, response)
        raise AssertionError("unreachable")  # pragma: no cover

    def pages(self, paged: Paged[T], limit: int | None = None) -> Iterator[T]:
        """The items of a list route, page after page (at most `limit` of them)."""
        cursor: str | None = None
        seen = 0
        while True:
            page = self.call(paged.call(cursor))
            for item in page.items:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    # -------------------------------------------------------------------- jobs

    def submit(self, definition_key: str, params: Any = None, **options: Any) -> Job:
        """Submit a job (see `calls.job_spec` for the options); an idempotent repeat answers
        the stored job."""
        return self.call(calls.submit(calls.job_spec(definition_key, params, **options)))

    def submit_many(self, specs: Iterable[Mapping[str, Any]]) -> BatchResult:
        """Submit jobs in one transaction, all or none (items from `calls.job_spec`)."""
        return self.call(calls.submit_many(specs))

    def get(self, job_id: str) -> Job:
        return self.call(calls.get_job(job_id))

    def cancel(self, job_id: str) -> Job:
        """Cancel: a queued job at once, a running one becomes `cancelling`; Conflict if it
        already ended."""
        return self.call(calls.cancel(job_id))

    def retry(self, job_id: str, delay_seconds: float | None = None) -> Job:
        """Run a failed, cancelled or expired job again: the new job (once per job)."""
        return self.call(calls.retry(job_id, delay_seconds))

    def list(self, *, limit: int | None = None, **filters: Any) -> Iterator[Job]:
        """Jobs matching `filters` (see `calls.list_jobs`), newest first, across pages."""
        return self.pages(calls.list_jobs(**filters), limit)

    def events(
        self, job_id: str, *, limit: int | None = None, page_size: int | None = None
    ) -> Iterator[Event]:
        """A job's lifecycle events, oldest first, across pages."""
        return self.pages(calls.events(job_id, page_size), limit)

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it is terminal (succeeded, failed, cancelled or expired); WaitTimeout
        after `timeout` seconds."""
        last: Job | None = None
        for job in self.watch(job_id, timeout=timeout):
            last = job
        assert last is not None
        return last

    def watch(self, job_id: str, timeout: float | None = None) -> Iterator[Job]:
        """The job now, then each time it changes, until it is terminal."""
        deadline = deadline_of(timeout)
        job = self.get(job_id)
        yield job
        if job.is_terminal:
            return
        try:
            if self._stream_known is not False:
                try:
                    for seen in self._watch_stream(job, deadline):
                        job = seen
                        yield seen
                    return
                except _NoStream:
                    self._stream_known = False
            yield from self._watch_poll(job, deadline)
        except WaitTimeout as e:
            raise WaitTimeout(f"job {job_id} did not finish within {timeout} s", job) from e

    def _watch_stream(self, job: Job, deadline: float | None) -> Iterator[Job]:
        events = self._stream(calls.stream_params(job_id=job.id), None, None, deadline, probe=True)
        try:
            for ev in events:
                self._stream_known = True
                if ev.job is not None and ev.job.id != job.id:
                    continue
                fresh = self.get(job.id)  # hello, resync or news: read the job itself
                if changed(fresh, job) or fresh.is_terminal:
                    job = fresh
                    yield job
                if job.is_terminal:
                    return
        finally:
            events.close()

    def _watch_poll(self, job: Job, deadline: float | None) -> Iterator[Job]:
        interval = self.poll[0]
        while not job.is_terminal:
            left = remaining(deadline, job)
            time.sleep(interval if left is None else min(interval, left))
            fresh = self.get(job.id)
            if changed(fresh, job):
                job = fresh
                yield job
            interval = min(self.poll[1], interval * 1.5)

    # -------------------------------------------------------------------- stream

    def stream(
        self,
        *,
        queue: str | None = None,
        job_id: str | None = None,
        status: Sequence[str] | None = None,
        last_event_id: str | None = None,
        max_reconnects: int | None = None,
    ) -> Iterator[StreamEvent]:
        """Messages of /v1/stream (hello, job, resync) for as long as the caller reads;
        reconnects with back-off (at most `max_reconnects` times, None: forever), resuming
        from the last id seen. A 4xx ends it with the typed error."""
        params = calls.stream_params(queue=queue, job_id=job_id, status=status)
        return self._stream(params, last_event_id, max_reconnects, None, probe=False)

    def _stream(
        self,
        params: calls.Params,
        last_event_id: str | None,
        max_reconnects: int | None,
        deadline: float | None,
        *,
        probe: bool,
    ) -> Generator[StreamEvent, None, None]:
        """`probe`: a server without the route raises _NoStream (watch then polls)."""
        decoder = SSEDecoder(last_event_id)
        failures = reconnects = 0
        ever_connected = False
        while True:
            asked: float | None = None  # a 503's Retry-After
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if decoder.last_event_id:
                headers["Last-Event-ID"] = decoder.last_event_id
            try:
                with self._http.stream(
                    "GET",
                    STREAM_PATH,
                    params=params,
                    headers=headers,
                    timeout=stream_timeout(deadline),
                ) as response:
                    if response.status_code != 200:
                        response.read()
                        status = response.status_code
                        if probe and route_missing(status) and not ever_connected:
                            raise _NoStream
                        if status < 500:
                            raise error_for(status, decoded(response), response.headers)
                        asked = parse_retry_after(response.headers.get("Retry-After"))
                    else:
                        ever_connected = True
                        for line in response.iter_lines():
                            ev = decoder.feed(line)
                            if ev is not None:
                                failures = 0
                                yield ev
            except httpx.TransportError:
                remaining(deadline)  # a read cut short by the deadline: WaitTimeout
            reconnects += 1
            if max_reconnects is not None and reconnects > max_reconnects:
                return
            failures += 1
            delay = max(stream_delay(failures, decoder.retry_ms), min(asked or 0.0, 60.0))
            left = remaining(deadline)
            time.sleep(delay if left is None else min(delay, left))

    # -------------------------------------------------------------------- DLQ

    def dlq_list(
        self, *, limit: int | None = None, page_size: int | None = None, **filters: Any
    ) -> Iterator[DlqEntry]:
        """Dead-letter entries, newest failure first (`definition_key`, `redriven`)."""
        return self.pages(calls.list_dlq(page_size=page_size, **filters), limit)

    def dlq_get(self, entry_id: str) -> DlqEntry:
        return self.call(calls.get_dlq(entry_id))

    def dlq_redrive(self, entry_id: str, max_attempts: int | None = None) -> Redriven:
        """A new job from a dead-letter entry."""
        return self.call(calls.redrive(entry_id, max_attempts))

    def dlq_discard(self, entry_id: str) -> None:
        self.call(calls.discard_dlq(entry_id))

    # -------------------------------------------------------------------- queues

    def queues(self, *, limit: int | None = None) -> Iterator[Queue]:
        """Every queue with its counts, runners, status and alerts, by name."""
        return self.pages(calls.list_queues(), limit)

    def queue_health(self, name: str) -> Queue:
        return self.call(calls.queue_health(name))

    def pause_queue(self, name: str, reason: str | None = None) -> QueuePause:
        return self.call(calls.pause_queue(name, reason))

    def resume_queue(self, name: str) -> QueuePause:
        return self.call(calls.resume_queue(name))

    # -------------------------------------------------------------------- runners

    def runners(self, *, limit: int | None = None, **filters: Any) -> Iterator[Runner]:
        """Worker processes, live ones first (`status`, `queue`)."""
        return self.pages(calls.list_runners(**filters), limit)

    def ping_runner(self, runner_id: str, timeout_ms: int | None = None) -> RunnerCommand:
        return self.call(calls.ping_runner(runner_id, timeout_ms))

    def shutdown_runner(
        self, runner_id: str, mode: str | None = None, timeout_ms: int | None = None
    ) -> RunnerCommand:
        """Stop a runner: `graceful` (default) or `immediate`."""
        return self.call(calls.shutdown_runner(runner_id, mode, timeout_ms))
