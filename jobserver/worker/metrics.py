"""Prometheus metrics of a worker process, served on METRICS_PORT when it is > 0.

Counters are bumped once per batch, not per job, to keep the hot path cheap:
- jobserver_worker_claims_total / jobserver_worker_jobs_claimed_total, claim batch sizes
- jobserver_worker_ack_batch_size (jobs per acknowledgement flush)
- jobserver_worker_jobs_finished_total{outcome}
- jobserver_worker_heartbeats_total, jobserver_worker_leases_lost_total
- jobserver_worker_fenced_writes_total{kind}: writes that matched nothing (lease lost)
- jobserver_worker_db_errors_total{where}: database errors the loops survived
- jobserver_worker_running: jobs running right now
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)

CLAIMS = Counter("jobserver_worker_claims", "Claim round trips")
JOBS_CLAIMED = Counter("jobserver_worker_jobs_claimed", "Jobs claimed")
RATED_CLAIMS = Counter("jobserver_worker_rated_claims", "Rated claim round trips (rate limits)")
CLAIM_BATCH = Histogram("jobserver_worker_claim_batch_size", "Jobs per claim", buckets=_SIZES)
ACK_BATCH = Histogram("jobserver_worker_ack_batch_size", "Jobs per ack flush", buckets=_SIZES)
FINISHED = Counter("jobserver_worker_jobs_finished", "Jobs finished by outcome", ["outcome"])
HEARTBEATS = Counter("jobserver_worker_heartbeats", "Lease heartbeats sent")
LEASES_LOST = Counter("jobserver_worker_leases_lost", "Held jobs whose lease was lost")
FENCED = Counter("jobserver_worker_fenced_writes", "Writes fenced off (lease lost)", ["kind"])
DB_ERRORS = Counter("jobserver_worker_db_errors", "Database errors survived", ["where"])
RUNNING = Gauge("jobserver_worker_running", "Jobs running now")


def serve(port: int, addr: str = "127.0.0.1") -> None:
    """Expose /metrics on `port` (no-op when 0)."""
    if port > 0:
        start_http_server(port, addr=addr)
