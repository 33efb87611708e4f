"""Settings: one frozen object read from environment variables.

Every process reads `Settings.from_env()` once at start. A malformed or out-of-range value raises
`ConfigError` whose message is one line naming the variable, the value and what is allowed; the
console scripts print that line and exit 2 (no traceback).

The table `FIELDS` is the single source of names, defaults and bounds; the README documents it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


def fmt_number(value: float) -> str:
    """3600000 rather than 3.6e+06, 0.05 rather than 0.050000."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class ConfigError(ValueError):
    """A bad environment variable; the message is meant to be printed as is."""


@dataclass(frozen=True)
class Field:
    env: str
    kind: type
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    help: str = ""

    def allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        kind = "an integer" if self.kind is int else "a number" if self.kind is float else "text"
        if self.minimum is not None and self.maximum is not None:
            return f"{kind} between {fmt_number(self.minimum)} and {fmt_number(self.maximum)}"
        if self.minimum is not None:
            return f"{kind} >= {fmt_number(self.minimum)}"
        return kind

    def parse(self, raw: str) -> Any:
        value: Any
        try:
            if self.kind is int:
                value = int(raw.strip())
            elif self.kind is float:
                value = float(raw.strip())
                if value != value or value in (float("inf"), float("-inf")):
                    raise ValueError
            else:
                value = raw
        except ValueError:
            raise ConfigError(self._error(raw)) from None
        if self.choices and value not in self.choices:
            raise ConfigError(self._error(raw))
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(self._error(raw))
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(self._error(raw))
        return value

    def _error(self, raw: str) -> str:
        return f"invalid {self.env}={raw!r}: expected {self.allowed()}"


DAY = 86400
FIELDS: dict[str, Field] = {
    "database_url": Field(
        "DATABASE_URL", str, None, help="PostgreSQL URL; unset = `jobserver up` embeds one"
    ),
    "host": Field("HOST", str, "0.0.0.0", help="API bind address"),
    "port": Field("PORT", int, 3000, 1, 65535, help="API port"),
    "worker_id": Field("WORKER_ID", str, None, help="worker name; default worker-<host>-<pid>"),
    "max_concurrent_executions": Field(
        "MAX_CONCURRENT_EXECUTIONS", int, 10, 1, 10000, help="jobs one worker runs at once"
    ),
    "lease_duration_seconds": Field(
        "LEASE_DURATION_SECONDS", float, 60.0, 1, DAY, help="lease a claim gets; renewed by beats"
    ),
    "heartbeat_interval_seconds": Field(
        "HEARTBEAT_INTERVAL_SECONDS",
        float,
        10.0,
        0.05,
        DAY,
        help="how often a worker renews all its leases (must be < lease)",
    ),
    "cancel_grace_ms": Field(
        "CANCEL_GRACE_MS", int, 5000, 0, 3600_000, help="wait after a cancel signal before the kill"
    ),
    "poll_interval_ms": Field(
        "POLL_INTERVAL_MS", int, 2000, 10, 3600_000, help="worker fallback poll without NOTIFY"
    ),
    "db_pool_max": Field("DB_POOL_MAX", int, 20, 1, 1000, help="connections per process pool"),
    "db_pool_idle_timeout_ms": Field(
        "DB_POOL_IDLE_TIMEOUT_MS", int, 30000, 0, DAY * 1000, help="idle connections closed after"
    ),
    "db_pool_connection_timeout_ms": Field(
        "DB_POOL_CONNECTION_TIMEOUT_MS", int, 2000, 1, 3600_000, help="connect timeout"
    ),
    "backoff_base_seconds": Field(
        "BACKOFF_BASE_SECONDS", float, 1.0, 0, DAY, help="retry delay base: base * 2^(attempt-1)"
    ),
    "backoff_max_seconds": Field(
        "BACKOFF_MAX_SECONDS", float, 3600.0, 0, 30 * DAY, help="retry delay cap (>= base)"
    ),
    "backoff_jitter_percent": Field(
        "BACKOFF_JITTER_PERCENT", float, 0.3, 0, 1, help="± jitter on retry delays (0.3 = 30%)"
    ),
    "cancel_check_interval_ms": Field(
        "CANCEL_CHECK_INTERVAL_MS",
        int,
        1000,
        10,
        3600_000,
        help="worker fallback check for cancel requests",
    ),
    "metrics_cache_ttl_ms": Field(
        "METRICS_CACHE_TTL_MS",
        int,
        30000,
        0,
        DAY * 1000,
        help="cache for database-computed metrics",
    ),
    "shutdown_grace_seconds": Field(
        "SHUTDOWN_GRACE_SECONDS",
        float,
        30.0,
        0,
        DAY,
        help="SIGTERM: how long running jobs may finish before hand-back",
    ),
    "leader_lease_seconds": Field(
        "LEADER_LEASE_SECONDS", float, 15.0, 1, 3600, help="scheduler leadership lease"
    ),
    "rescue_interval_seconds": Field(
        "RESCUE_INTERVAL_SECONDS",
        float,
        5.0,
        0.05,
        3600,
        help="how often expired leases are rescued",
    ),
    "scheduler_tick_seconds": Field(
        "SCHEDULER_TICK_SECONDS", float, 1.0, 0.05, 3600, help="scheduler loop period (cron, etc.)"
    ),
    "prune_interval_seconds": Field(
        "PRUNE_INTERVAL_SECONDS", float, 60.0, 0.05, DAY, help="how often old jobs are pruned"
    ),
    "prune_batch_size": Field(
        "PRUNE_BATCH_SIZE", int, 1000, 1, 100_000, help="rows deleted per prune statement"
    ),
    "retention_succeeded_seconds": Field(
        "RETENTION_SUCCEEDED_SECONDS", float, 7 * DAY, 0, 3650 * DAY, help="keep succeeded jobs"
    ),
    "retention_cancelled_seconds": Field(
        "RETENTION_CANCELLED_SECONDS",
        float,
        7 * DAY,
        0,
        3650 * DAY,
        help="keep cancelled and expired jobs",
    ),
    "retention_failed_seconds": Field(
        "RETENTION_FAILED_SECONDS",
        float,
        7 * DAY,
        0,
        3650 * DAY,
        help="keep failed jobs once out of the DLQ",
    ),
    "metrics_port": Field(
        "METRICS_PORT", int, 0, 0, 65535, help="worker/scheduler Prometheus port; 0 = none"
    ),
    "metrics_require_token": Field(
        "METRICS_REQUIRE_TOKEN",
        str,
        "false",
        choices=("true", "false"),
        help="API /metrics needs a view_jobs token",
    ),
    "max_body_bytes": Field(
        "MAX_BODY_BYTES", int, 1024 * 1024, 1024, 1024 * 1024 * 1024, help="request body limit"
    ),
    "auth": Field(
        "JOBSERVER_AUTH",
        str,
        "enabled",
        choices=("enabled", "disabled"),
        help="disabled = no tokens needed (local use only)",
    ),
    "log_format": Field(
        "LOG_FORMAT",
        str,
        "json",
        choices=("json", "text"),
        help="one JSON object per line, or text",
    ),
    "log_level": Field(
        "LOG_LEVEL", str, "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="log level"
    ),
    "home": Field(
        "JOBSERVER_HOME",
        str,
        ".jobserver",
        help="where `jobserver up` keeps the embedded database and the dev token",
    ),
}


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    host: str = "0.0.0.0"
    port: int = 3000
    worker_id: str = ""
    max_concurrent_executions: int = 10
    lease_duration_seconds: float = 60.0
    heartbeat_interval_seconds: float = 10.0
    cancel_grace_ms: int = 5000
    poll_interval_ms: int = 2000
    db_pool_max: int = 20
    db_pool_idle_timeout_ms: int = 30000
    db_pool_connection_timeout_ms: int = 2000
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 3600.0
    backoff_jitter_percent: float = 0.3
    cancel_check_interval_ms: int = 1000
    metrics_cache_ttl_ms: int = 30000
    shutdown_grace_seconds: float = 30.0
    leader_lease_seconds: float = 15.0
    rescue_interval_seconds: float = 5.0
    scheduler_tick_seconds: float = 1.0
    prune_interval_seconds: float = 60.0
    prune_batch_size: int = 1000
    retention_succeeded_seconds: float = 7 * DAY
    retention_cancelled_seconds: float = 7 * DAY
    retention_failed_seconds: float = 7 * DAY
    metrics_port: int = 0
    metrics_require_token: str = "false"
    max_body_bytes: int = 1024 * 1024
    auth: str = "enabled"
    log_format: str = "json"
    log_level: str = "INFO"
    home: str = ".jobserver"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            spec = FIELDS[f.name]
            raw = env.get(spec.env)
            if raw is None or raw == "":
                continue
            values[f.name] = spec.parse(raw)
        if not values.get("worker_id"):
            values["worker_id"] = f"worker-{socket.gethostname()}-{os.getpid()}"
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Cross-field rules that a single variable cannot express."""
        if self.heartbeat_interval_seconds >= self.lease_duration_seconds:
            raise ConfigError(
                f"invalid HEARTBEAT_INTERVAL_SECONDS={self.heartbeat_interval_seconds:g}: "
                f"expected less than LEASE_DURATION_SECONDS={self.lease_duration_seconds:g}"
            )
        if self.backoff_max_seconds < self.backoff_base_seconds:
            raise ConfigError(
                f"invalid BACKOFF_MAX_SECONDS={self.backoff_max_seconds:g}: "
                f"expected >= BACKOFF_BASE_SECONDS={self.backoff_base_seconds:g}"
            )

    @property
    def auth_enabled(self) -> bool:
        return self.auth == "enabled"

    def require_database_url(self) -> str:
        if not self.database_url:
            raise ConfigError("DATABASE_URL is not set: expected a postgresql:// URL")
        return self.database_url
