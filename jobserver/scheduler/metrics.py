"""Prometheus metrics of a scheduler process, served on METRICS_PORT when it is > 0.

- jobserver_scheduler_ticks_total{service,outcome}: runs of each service (ok, error, skipped =
  not leader)
- jobserver_scheduler_tick_seconds{service}: duration of each run
- jobserver_scheduler_is_leader: 1 while this process holds the leadership lease
- jobserver_scheduler_leadership_changes_total{change}: acquired / lost / released
- jobserver_scheduler_jobs_rescued_total{outcome}: requeued / failed / cancelled
- jobserver_scheduler_jobs_expired_total, jobserver_scheduler_jobs_pruned_total{status}
- jobserver_scheduler_workers_gone_total
- jobserver_scheduler_cron_fired_total, jobserver_scheduler_cron_missed_total
- jobserver_scheduler_schedules_disabled_total: schedules disabled after repeated failed runs
- jobserver_scheduler_audit_rows_pruned_total: audit log rows past LOG_RETENTION_DAYS deleted
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

TICKS = Counter("jobserver_scheduler_ticks", "Service runs", ["service", "outcome"])
TICK_SECONDS = Histogram("jobserver_scheduler_tick_seconds", "Service run duration", ["service"])
IS_LEADER = Gauge("jobserver_scheduler_is_leader", "1 while this process is the leader")
LEADERSHIP = Counter("jobserver_scheduler_leadership_changes", "Leadership changes", ["change"])
RESCUED = Counter("jobserver_scheduler_jobs_rescued", "Expired leases rescued", ["outcome"])
EXPIRED = Counter("jobserver_scheduler_jobs_expired", "Queued jobs expired")
PRUNED = Counter("jobserver_scheduler_jobs_pruned", "Finished jobs pruned", ["status"])
WORKERS_GONE = Counter("jobserver_scheduler_workers_gone", "Workers marked gone")
CRON_FIRED = Counter("jobserver_scheduler_cron_fired", "Jobs created by schedules")
CRON_MISSED = Counter("jobserver_scheduler_cron_missed", "Fires skipped by catch-up policy")
SCHEDULES_DISABLED = Counter(
    "jobserver_scheduler_schedules_disabled", "Schedules disabled after repeated failed runs"
)
AUDIT_PRUNED = Counter("jobserver_scheduler_audit_rows_pruned", "Audit log rows pruned")


def serve(port: int, addr: str = "127.0.0.1") -> None:
    """Expose /metrics on `port` (no-op when 0)."""
    if port > 0:
        start_http_server(port, addr=addr)
