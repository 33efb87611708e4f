"""docs/metrics.md: every Prometheus metric jobserver exposes, from the metric definitions.

Three sources: the API's `/metrics` (its HTTP metrics and the database-computed job metrics of
`jobserver.api.prometheus`), and the per-process metrics of workers and schedulers served on
their METRICS_PORT (`jobserver.worker.metrics`, `jobserver.scheduler.metrics`).
`exposed_names()` gives the sample names a scrape can hold, for the tests of the alert rules
and the dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from prometheus_client.metrics import MetricWrapperBase

from jobserver.api import prometheus
from jobserver.scheduler import metrics as scheduler_metrics
from jobserver.worker import metrics as worker_metrics

SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
}


@dataclass(frozen=True)
class Metric:
    name: str  # the family name, without `_total`
    kind: str
    labels: tuple[str, ...]
    help: str
    where: str

    @property
    def samples(self) -> tuple[str, ...]:
        return tuple(self.name + s for s in SUFFIXES[self.kind])


def _wrapped(module: ModuleType, where: str) -> list[Metric]:
    out = []
    for value in vars(module).values():
        if isinstance(value, MetricWrapperBase):
            out.append(
                Metric(
                    value._name,
                    str(value._type),
                    tuple(value._labelnames),
                    value._documentation,
                    where,
                )
            )
    return out


def _api_jobs() -> list[Metric]:
    """The job metrics, read off a collector given a snapshot of one row of each kind."""
    collector = prometheus.JobsCollector()
    row = {
        "status": "queued",
        "definition_key": "echo",
        "queue": "default",
        "n": 1,
        "retried": 0,
        "jobs": 1,
        "attempts": 1,
        "retries": 0,
        "rescues": 0,
    }
    hist = {"le": float("inf"), "duration_n": 1, "duration_sum": 1.0, "wait_n": 1, "wait_sum": 1.0}
    collector.snapshot = {
        "active": [row],
        "finished": [row],
        "hist": [hist],
        "dlq": 0,
        "totals": [{**row, "status": s} for s in ("succeeded", "failed", "cancelled", "expired")],
    }
    out = []
    for fam in collector.collect():
        labels = {k for s in fam.samples for k in s.labels} - {"le"}
        order = ("status", "definition", "queue")
        out.append(
            Metric(
                fam.name,
                fam.type,
                tuple(k for k in order if k in labels),
                fam.documentation,
                "API",
            )
        )
    return out


def all_metrics() -> list[Metric]:
    return [
        *_wrapped(prometheus, "API"),
        *_api_jobs(),
        *_wrapped(worker_metrics, "worker"),
        *_wrapped(scheduler_metrics, "scheduler"),
    ]


def exposed_names() -> set[str]:
    return {s for m in all_metrics() for s in m.samples}


HEADER = """# Metrics

Every Prometheus metric jobserver exposes, generated from the metric definitions by
`python -m jobserver.docsgen` (`scripts/gen-docs`); a test fails when this page is stale, and
another scrapes real processes and checks the names below are what they serve.

- **API** (`GET /metrics` on every API process): HTTP counts, and job metrics computed from the
  database (the same figures whichever API process is scraped: scrape one, or all and
  aggregate with `max`). Needs a `view_jobs` token when `METRICS_REQUIRE_TOKEN=true`, or with
  `auto` (the default) when the API does not bind a loopback address. The snapshot is taken at
  most every 5 s; the `*_recent` gauges and the histograms cover the last hour. The job counters
  (`jobserver_jobs_*_total`) are live rows plus what the pruner tallied, so they never go down
  when rows are pruned. The `queue` label keeps the `METRICS_MAX_QUEUES` largest queues by name
  and sums the rest under `other`.
- **worker** and **scheduler**: per-process counters on `http://METRICS_HOST:METRICS_PORT/metrics`
  when `METRICS_PORT` is not 0 (no token; binds `127.0.0.1` unless `METRICS_HOST` says
  otherwise), plus prometheus_client's own `process_*` and `python_*` metrics.

`definition` labels hold the definition key (`echo`). See
[prometheus/alerts.yml](prometheus/alerts.yml) for alerting rules and
[grafana/jobserver.json](grafana/jobserver.json) for a dashboard.
"""


def render() -> str:
    out = [HEADER]
    for where in ("API", "worker", "scheduler"):
        out += [
            f"## {where}",
            "",
            "| metric | type | labels | meaning |",
            "| --- | --- | --- | --- |",
        ]
        for m in all_metrics():
            if m.where != where:
                continue
            names = ", ".join(f"`{s}`" for s in m.samples)
            labels = ", ".join(f"`{label}`" for label in m.labels) or "none"
            out.append(f"| {names} | {m.kind} | {labels} | {m.help} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
