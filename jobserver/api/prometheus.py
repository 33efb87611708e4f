"""`GET /metrics` on the API: Prometheus text exposition via prometheus_client.

Two parts, each in its own CollectorRegistry (never the process-global one, so a worker or
scheduler running in the same process does not leak into it):
- HTTP, counted in-process by `middleware`: `jobserver_http_requests_total{method,route,status}`
  and `jobserver_http_request_duration_seconds{method,route}` (route = the path template, so ids
  do not explode the label set; unmatched paths are "unmatched").
- Jobs, computed from the database by `JobsCollector` from a snapshot refreshed at most every
  `SNAPSHOT_TTL` seconds (bounded, indexed queries: see `jobserver.db.metrics`):
  `jobserver_jobs{status,definition,queue}` queue depth of waiting/queued/running/cancelling jobs;
  `jobserver_jobs_finished_recent{status,definition,queue}` and
  `jobserver_jobs_retried_recent{...}` over the last `RECENT_SECONDS` (1 h);
  `jobserver_job_duration_seconds` / `jobserver_job_queue_wait_seconds` gauge histograms over
  the same window; `jobserver_dlq_size` (rows not redriven).
  Fleet-wide job counters by definition and queue — `jobserver_jobs_submitted_total`,
  `_started_total`, `_retried_total`, `_succeeded_total`, `_failed_total`, `_cancelled_total`,
  `_expired_total`, `_dead_lettered_total` and `jobserver_leases_rescued_total` — are live rows
  plus the pruner's tally (`job_counts_pruned`), so they never go down when rows are pruned.
  Per-process counters (claims, batch sizes, heartbeats, fenced-off writes, leadership) are
  exposed by the workers and the scheduler on their own METRICS_PORT (bound to METRICS_HOST).

Queue names are chosen by tenants, so the `queue` label is bounded: the METRICS_MAX_QUEUES
queues with the most jobs (lifetime totals) keep their name, the rest are summed under
`other`. A queue entering the kept set makes `other` drop once (a counter reset to Prometheus).

Refreshes are single-flight: concurrent scrapes wait on the one refresh running, so the
database sees one set of metric queries per `SNAPSHOT_TTL` however many scrapers there are.

Access: a `view_jobs` token when METRICS_REQUIRE_TOKEN=true, or with `auto` (the default)
when the API is not bound to a loopback address (Prometheus sends bearer tokens); public with
`false` or `auto` on loopback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
)
from prometheus_client.registry import Collector

from jobserver.api.auth import authenticate
from jobserver.api.keys import POOL_KEY, PROMETHEUS_KEY, SETTINGS_KEY, TOKEN_CACHE_KEY
from jobserver.api.routing import Handler
from jobserver.api.singleflight import SingleFlight
from jobserver.db.dlq import dlq_count
from jobserver.db.metrics import (
    metrics_active_by_queue,
    metrics_conn,
    metrics_finished_by_queue,
    metrics_histograms,
    metrics_job_totals,
)

SNAPSHOT_TTL = 5.0
OTHER_QUEUE = "other"
RECENT_SECONDS = 3600.0
BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)

HTTP_REGISTRY = CollectorRegistry(auto_describe=True)
HTTP_REQUESTS = Counter(
    "jobserver_http_requests",
    "HTTP requests by route and status",
    ["method", "route", "status"],
    registry=HTTP_REGISTRY,
)
HTTP_LATENCY = Histogram(
    "jobserver_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    registry=HTTP_REGISTRY,
)


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request by route template and status (errors included)."""
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        # match_info is a dict of path variables: empty (falsy) for routes without any
        info = request.match_info.route.resource if request.match_info is not None else None
        route = info.canonical if info is not None else "unmatched"
        HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
        HTTP_LATENCY.labels(request.method, route).observe(time.perf_counter() - start)


class JobsCollector(Collector):
    """Yields metric families from the last snapshot taken by `refresh`."""

    def __init__(self, max_queues: int = 50) -> None:
        self.snapshot: dict[str, Any] = {}
        self.taken = -1e9
        self.max_queues = max_queues
        self.flights: SingleFlight[None] = SingleFlight()

    async def refresh(
        self, pool: asyncpg.Pool, ttl: float = SNAPSHOT_TTL, timeout_ms: int = 5000
    ) -> None:
        """Take a new snapshot unless the last is younger than `ttl`; one at a time; each
        query stops after `timeout_ms` (asyncpg.QueryCanceledError, a 503)."""
        if time.monotonic() - self.taken < ttl:
            return
        await self.flights.run("snapshot", lambda: self._take(pool, timeout_ms))

    async def _take(self, pool: asyncpg.Pool, timeout_ms: int) -> None:
        started = time.monotonic()
        async with metrics_conn(pool, timeout_ms) as conn:
            active = await metrics_active_by_queue(conn)
            finished = await metrics_finished_by_queue(conn, RECENT_SECONDS)
            hist = await metrics_histograms(conn, RECENT_SECONDS, BUCKETS)
            dlq = await dlq_count(conn)
            totals = await metrics_job_totals(conn)
        label = queue_labels(totals, self.max_queues)
        self.snapshot = {
            "active": _summed(active, label, ("status", "definition_key", "queue"), ("n",)),
            "finished": _summed(
                finished, label, ("status", "definition_key", "queue"), ("n", "retried")
            ),
            "hist": sorted(hist, key=lambda r: r["le"]),
            "dlq": dlq,
            "totals": _summed(
                totals,
                label,
                ("definition_key", "queue", "status"),
                ("jobs", "attempts", "retries", "rescues"),
            ),
        }
        self.taken = started

    def collect(self) -> Iterator[Any]:
        s = self.snapshot
        if not s:
            return
        labels = ["status", "definition", "queue"]
        jobs = GaugeMetricFamily(
            "jobserver_jobs",
            "Jobs waiting, queued, running or cancelling (queue depth)",
            labels=labels,
        )
        for r in s["active"]:
            jobs.add_metric([r["status"], r["definition_key"], r["queue"]], r["n"])
        yield jobs
        finished = GaugeMetricFamily(
            "jobserver_jobs_finished_recent",
            f"Jobs that reached a final status in the last {RECENT_SECONDS:g} s",
            labels=labels,
        )
        retried = GaugeMetricFamily(
            "jobserver_jobs_retried_recent",
            f"Jobs finished in the last {RECENT_SECONDS:g} s after more than one attempt",
            labels=labels,
        )
        for r in s["finished"]:
            key = [r["status"], r["definition_key"], r["queue"]]
            finished.add_metric(key, r["n"])
            retried.add_metric(key, r["retried"])
        yield finished
        yield retried
        for name, col, sum_col, what in (
            ("jobserver_job_duration_seconds", "duration_n", "duration_sum", "Run duration"),
            ("jobserver_job_queue_wait_seconds", "wait_n", "wait_sum", "Queue wait"),
        ):
            rows = s["hist"]
            fam = GaugeHistogramMetricFamily(
                name,
                f"{what} of jobs finished in the last {RECENT_SECONDS:g} s",
                buckets=[
                    ("+Inf" if r["le"] == float("inf") else f"{r['le']:g}", r[col]) for r in rows
                ],
                gsum_value=rows[-1][sum_col] if rows else 0.0,
            )
            yield fam
        yield GaugeMetricFamily("jobserver_dlq_size", "Dead-letter jobs not redriven", s["dlq"])
        yield from job_counters(s["totals"])


# (metric name, help, which total, which statuses; None = every status)
COUNTERS: tuple[tuple[str, str, str, tuple[str, ...] | None], ...] = (
    ("jobserver_jobs_submitted", "Jobs submitted", "jobs", None),
    ("jobserver_jobs_started", "Job runs started (attempts)", "attempts", None),
    ("jobserver_jobs_retried", "Job runs after the first attempt", "retries", None),
    ("jobserver_jobs_succeeded", "Jobs succeeded", "jobs", ("succeeded",)),
    ("jobserver_jobs_failed", "Jobs failed for good", "jobs", ("failed",)),
    ("jobserver_jobs_dead_lettered", "Jobs copied to the dead-letter queue", "jobs", ("failed",)),
    ("jobserver_jobs_cancelled", "Jobs cancelled", "jobs", ("cancelled",)),
    ("jobserver_jobs_expired", "Jobs expired before they could finish", "jobs", ("expired",)),
    ("jobserver_leases_rescued", "Attempts ended by an expired lease", "rescues", None),
)


def job_counters(totals: list[Any]) -> Iterator[CounterMetricFamily]:
    """Fleet-wide monotonic counters by definition and queue from `metrics_job_totals`."""
    for name, doc, column, statuses in COUNTERS:
        sums: dict[tuple[str, str], int] = {}
        for r in totals:
            if statuses is None or r["status"] in statuses:
                key = (r["definition_key"], r["queue"])
                sums[key] = sums.get(key, 0) + int(r[column] or 0)
        fam = CounterMetricFamily(name, doc, labels=["definition", "queue"])
        for (definition, queue), value in sorted(sums.items()):
            fam.add_metric([definition, queue], value)
        yield fam


def queue_labels(totals: list[Any], max_queues: int) -> Callable[[str], str]:
    """The `queue` label of each queue name: itself for the `max_queues` queues with the most
    jobs (ties by name), `other` for the rest."""
    sizes: dict[str, int] = {}
    for r in totals:
        sizes[r["queue"]] = sizes.get(r["queue"], 0) + int(r["jobs"] or 0)
    if len(sizes) <= max_queues:
        return lambda q: q
    kept = set(sorted(sizes, key=lambda q: (-sizes[q], q))[:max_queues])
    return lambda q: q if q in kept else OTHER_QUEUE


def _summed(
    rows: list[Any], label: Callable[[str], str], keys: tuple[str, ...], values: tuple[str, ...]
) -> list[dict[str, Any]]:
    """`rows` with their queue relabelled and the rows that now share a key summed."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        row = {k: label(r[k]) if k == "queue" else r[k] for k in keys}
        ident = tuple(row.values())
        acc = out.get(ident)
        if acc is None:
            out[ident] = {**row, **{v: int(r[v] or 0) for v in values}}
        else:
            for v in values:
                acc[v] += int(r[v] or 0)
    return list(out.values())


def jobs_exposition(max_queues: int = 50) -> tuple[CollectorRegistry, JobsCollector]:
    """The registry of one app's job metrics (kept under `PROMETHEUS_KEY`)."""
    registry = CollectorRegistry(auto_describe=False)
    collector = JobsCollector(max_queues)
    registry.register(collector)
    return registry, collector


async def metrics(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    if settings.metrics_token_required:
        await authenticate(
            request,
            "view_jobs",
            pool=request.app[POOL_KEY],
            cache=request.app[TOKEN_CACHE_KEY],
            enabled=settings.auth_enabled,
        )
    registry, collector = request.app[PROMETHEUS_KEY]
    await collector.refresh(request.app[POOL_KEY], timeout_ms=settings.metrics_statement_timeout_ms)
    body = generate_latest(HTTP_REGISTRY) + generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
