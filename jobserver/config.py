"""Settings: one frozen object read from environment variables.

Every process reads `Settings.from_env()` once at start. A malformed or out-of-range value raises
`ConfigError` whose message is one line naming the variable, the value and what is allowed; the
console scripts print that line and exit 2 (no traceback).

Each setting is declared once, as a typed field of `Settings` (`int`, `float`, `bool`, `str`, or a
`Literal[...]` of the values allowed) with its environment variable, default, bounds and meaning.
`FIELDS` is derived from those declarations (the parser and the README table read it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from jobserver.core.errors import RuleError
from jobserver.core.timing import parse_duration

_T = TypeVar("_T")


def fmt_number(value: float) -> str:
    """3600000 rather than 3.6e+06, 0.05 rather than 0.050000."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`: bind addresses only this machine reaches.
    Other names are not resolved (what a name points at can change after the check)."""
    name = host.strip().lower()
    if name in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


class ConfigError(ValueError):
    """A bad environment variable; the message is meant to be printed as is."""


_BOOLS = {"true": True, "false": False}


@dataclass(frozen=True)
class Field:
    """How one setting is read: derived from its declaration in `Settings`."""

    env: str
    kind: type  # int, float, bool or str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None  # a Literal's values
    help: str = ""
    secret: bool = False  # its value is never shown (errors, repr)

    def allowed(self) -> str:
        if self.kind is bool:
            return "one of " + ", ".join(_BOOLS)
        if self.choices:
            return "one of " + ", ".join(self.choices)
        kind = "an integer" if self.kind is int else "a number" if self.kind is float else "text"
        if self.minimum is not None and self.maximum is not None:
            return f"{kind} between {fmt_number(self.minimum)} and {fmt_number(self.maximum)}"
        if self.minimum is not None:
            return f"{kind} >= {fmt_number(self.minimum)}"
        return kind

    def shown_default(self) -> str:
        """The default as the README shows it."""
        if self.default is None or self.default == "":
            return "unset"
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        if isinstance(self.default, int | float):
            return f"`{fmt_number(self.default)}`"
        return f"`{self.default}`"

    def parse(self, raw: str) -> Any:
        value: Any
        try:
            if self.kind is bool:
                value = _BOOLS[raw.strip().lower()]
            elif self.kind is int:
                value = int(raw.strip())
            elif self.kind is float:
                value = float(raw.strip())
                if value != value or value in (float("inf"), float("-inf")):
                    raise ValueError
            else:
                value = raw
        except (KeyError, ValueError):
            raise ConfigError(self._error(raw)) from None
        if self.choices and value not in self.choices:
            raise ConfigError(self._error(raw))
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(self._error(raw))
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(self._error(raw))
        return value

    def _error(self, raw: str) -> str:
        shown = "(hidden)" if self.secret else repr(raw)
        return f"invalid {self.env}={shown}: expected {self.allowed()}"


def setting(
    env: str,
    default: _T,
    doc: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    secret: bool = False,
) -> _T:
    """Declare one setting: its environment variable, default, bounds and meaning. A `secret`
    one is left out of the settings' repr (and its value out of its error message)."""
    meta = {"env": env, "doc": doc, "minimum": minimum, "maximum": maximum, "secret": secret}
    return field(default=default, metadata=meta, repr=not secret)


DAY = 86400


@dataclass(frozen=True)
class Settings:
    """Every setting of every process, each declared once."""

    database_url: str | None = setting(
        "DATABASE_URL", None, "PostgreSQL URL; unset = `jobserver up` embeds one"
    )
    sources_database_url: str | None = setting(
        "SOURCES_DATABASE_URL",
        None,
        "database the data sources of jobs read (a read-only role); unset = no sources",
    )
    database_read_url: str | None = setting(
        "DATABASE_READ_URL",
        None,
        "a streaming replica of DATABASE_URL the API serves job lists and reads, metrics and"
        " health from (read-your-writes kept, see docs/operations.md); unset = all on the primary",
    )
    read_replica_max_wait_ms: int = setting(
        "READ_REPLICA_MAX_WAIT_MS",
        50,
        "longest a read waits for the replica to replay a client's last write (then the"
        " primary answers it)",
        minimum=0,
        maximum=60_000,
    )
    read_replica_retry_ms: int = setting(
        "READ_REPLICA_RETRY_MS",
        5000,
        "after the replica failed a read, reads go to the primary this long before it is tried"
        " again",
        minimum=0,
        maximum=3600_000,
    )
    read_your_writes_window_ms: int = setting(
        "READ_YOUR_WRITES_WINDOW_MS",
        10_000,
        "an API process remembers each owner's last write this long: its reads wait for the"
        " replica to have it, header or not",
        minimum=0,
        maximum=3600_000,
    )
    host: str = setting("HOST", "0.0.0.0", "API bind address")
    port: int = setting("PORT", 3000, "API port", minimum=1, maximum=65535)
    worker_id: str = setting("WORKER_ID", "", "worker name; default worker-<host>-<pid>")
    max_concurrent_executions: int = setting(
        "MAX_CONCURRENT_EXECUTIONS", 10, "jobs one worker runs at once", minimum=1, maximum=10000
    )
    lease_duration_seconds: float = setting(
        "LEASE_DURATION_SECONDS",
        60.0,
        "lease a claim gets; renewed by beats",
        minimum=1,
        maximum=DAY,
    )
    heartbeat_interval_seconds: float = setting(
        "HEARTBEAT_INTERVAL_SECONDS",
        10.0,
        "how often a worker renews all its leases (must be < lease)",
        minimum=0.05,
        maximum=DAY,
    )
    cancel_grace_ms: int = setting(
        "CANCEL_GRACE_MS",
        5000,
        "wait after a cancel signal before the kill",
        minimum=0,
        maximum=3600_000,
    )
    poll_interval_ms: int = setting(
        "POLL_INTERVAL_MS",
        2000,
        "worker fallback poll without NOTIFY",
        minimum=10,
        maximum=3600_000,
    )
    db_pool_max: int = setting(
        "DB_POOL_MAX", 20, "connections per process pool", minimum=1, maximum=1000
    )
    db_pool_idle_timeout_ms: int = setting(
        "DB_POOL_IDLE_TIMEOUT_MS",
        30000,
        "idle connections closed after",
        minimum=0,
        maximum=DAY * 1000,
    )
    db_pool_connection_timeout_ms: int = setting(
        "DB_POOL_CONNECTION_TIMEOUT_MS", 2000, "connect timeout", minimum=1, maximum=3600_000
    )
    backoff_base_seconds: float = setting(
        "BACKOFF_BASE_SECONDS",
        1.0,
        "retry delay base: base * 2^(attempt-1)",
        minimum=0,
        maximum=DAY,
    )
    backoff_max_seconds: float = setting(
        "BACKOFF_MAX_SECONDS", 3600.0, "retry delay cap (>= base)", minimum=0, maximum=30 * DAY
    )
    backoff_jitter_percent: float = setting(
        "BACKOFF_JITTER_PERCENT",
        0.3,
        "± jitter on retry delays (0.3 = 30%)",
        minimum=0,
        maximum=1,
    )
    cancel_check_interval_ms: int = setting(
        "CANCEL_CHECK_INTERVAL_MS",
        1000,
        "worker fallback check for cancel requests",
        minimum=10,
        maximum=3600_000,
    )
    metrics_cache_ttl_ms: int = setting(
        "METRICS_CACHE_TTL_MS",
        30000,
        "cache for database-computed metrics",
        minimum=0,
        maximum=DAY * 1000,
    )
    shutdown_grace_seconds: float = setting(
        "SHUTDOWN_GRACE_SECONDS",
        30.0,
        "SIGTERM: how long running jobs may finish before hand-back",
        minimum=0,
        maximum=DAY,
    )
    leader_lease_seconds: float = setting(
        "LEADER_LEASE_SECONDS", 15.0, "scheduler leadership lease", minimum=1, maximum=3600
    )
    rescue_interval_seconds: float = setting(
        "RESCUE_INTERVAL_SECONDS",
        5.0,
        "how often expired leases are rescued",
        minimum=0.05,
        maximum=3600,
    )
    scheduler_tick_seconds: float = setting(
        "SCHEDULER_TICK_SECONDS",
        1.0,
        "scheduler loop period (cron, etc.)",
        minimum=0.05,
        maximum=3600,
    )
    # -- schedules: how often they may fire, when repeated failures disable them --
    min_every: int = setting(
        "MIN_EVERY",
        5,
        "shortest schedule interval in seconds (everySeconds, and the gap between two cron fires)",
        minimum=1,
        maximum=DAY,
    )
    max_every: int = setting(
        "MAX_EVERY",
        DAY,
        "longest everySeconds a schedule may have (>= MIN_EVERY)",
        minimum=1,
        maximum=365 * DAY,
    )
    max_consecutive_failures: int = setting(
        "MAX_CONSECUTIVE_FAILURES",
        3,
        "a schedule whose latest runs failed this many times in a row is disabled, unless"
        " it sets maxConsecutiveFailures (0 = never)",
        minimum=0,
        maximum=10_000,
    )
    owner_max_saved_jobs: int = setting(
        "OWNER_MAX_SAVED_JOBS",
        1000,
        "saved jobs one token owner may keep (a 429 past it; 0 = no limit)",
        minimum=0,
        maximum=1_000_000,
    )
    prune_interval_seconds: float = setting(
        "PRUNE_INTERVAL_SECONDS",
        60.0,
        "how often old jobs are pruned",
        minimum=0.05,
        maximum=DAY,
    )
    prune_batch_size: int = setting(
        "PRUNE_BATCH_SIZE", 1000, "rows deleted per prune statement", minimum=1, maximum=100_000
    )
    retention_succeeded_seconds: float = setting(
        "RETENTION_SUCCEEDED_SECONDS",
        7.0 * DAY,
        "keep succeeded jobs",
        minimum=0,
        maximum=3650 * DAY,
    )
    retention_cancelled_seconds: float = setting(
        "RETENTION_CANCELLED_SECONDS",
        7.0 * DAY,
        "keep cancelled and expired jobs",
        minimum=0,
        maximum=3650 * DAY,
    )
    retention_failed_seconds: float = setting(
        "RETENTION_FAILED_SECONDS",
        7.0 * DAY,
        "keep failed jobs once out of the DLQ",
        minimum=0,
        maximum=3650 * DAY,
    )
    log_retention_days: int = setting(
        "LOG_RETENTION_DAYS",
        30,
        "keep audit log rows (log.message jobs, GET /v1/logs) this many days (0 = forever)",
        minimum=0,
        maximum=3650,
    )
    # -- what one job may store (a result, its events, its progress) --
    max_result_bytes: int = setting(
        "MAX_RESULT_BYTES",
        1024 * 1024,
        "largest JSON a job may store as its result, an event or a progress report",
        minimum=1024,
        maximum=256 * 1024 * 1024,
    )
    progress_min_interval_ms: int = setting(
        "PROGRESS_MIN_INTERVAL_MS",
        1000,
        "at most one progress write per job this often (the last one is always written)",
        minimum=0,
        maximum=DAY * 1000,
    )
    max_events_per_job: int = setting(
        "MAX_EVENTS_PER_JOB",
        10_000,
        "custom and progress events stored per job; then one events_truncated event",
        minimum=1,
        maximum=100_000_000,
    )
    metrics_port: int = setting(
        "METRICS_PORT",
        0,
        "worker/scheduler Prometheus port; 0 = none",
        minimum=0,
        maximum=65535,
    )
    # -- API safety: pool waits, metrics exposure ------------------------------------------
    metrics_require_token: Literal["auto", "true", "false"] = setting(
        "METRICS_REQUIRE_TOKEN",
        "auto",
        "API /metrics needs a view_jobs token; auto = unless HOST is a loopback address",
    )
    metrics_host: str = setting(
        "METRICS_HOST", "127.0.0.1", "worker/scheduler Prometheus bind address"
    )
    metrics_statement_timeout_ms: int = setting(
        "METRICS_STATEMENT_TIMEOUT_MS",
        5000,
        "longest a metrics query may run (then 503 database_busy; the connection is freed)",
        minimum=1,
        maximum=3600_000,
    )
    metrics_max_queues: int = setting(
        "METRICS_MAX_QUEUES",
        50,
        "queue label values in API /metrics; the rest are summed under `other`",
        minimum=1,
        maximum=10000,
    )
    # -- the live feed (GET /v1/stream)
    stream_max_seconds: int = setting(
        "STREAM_MAX_SECONDS",
        900,
        "a GET /v1/stream connection is closed after this many seconds (0: right after its"
        " hello); clients reconnect with Last-Event-ID and miss nothing the API still holds",
        minimum=0,
        maximum=DAY,
    )
    stream_max_subscribers: int = setting(
        "STREAM_MAX_SUBSCRIBERS",
        1000,
        "open GET /v1/stream connections per API process; more are refused with 503",
        minimum=1,
        maximum=100_000,
    )
    # -- queue health and stats (/v1/queues, /v1/queues/{name}/health, /v1/health, /v1/stats)
    queue_health_window_minutes: int = setting(
        "QUEUE_HEALTH_WINDOW_MINUTES",
        15,
        "window of a queue's figures (jobsPerMinute, successRate, durations) and of its"
        " failure-rate alert, in minutes",
        minimum=1,
        maximum=1440,
    )
    queue_health_cache_ttl_ms: int = setting(
        "QUEUE_HEALTH_CACHE_TTL_MS",
        1000,
        "queue health and stats are computed at most this often per API process (?ttl= of a"
        " request overrides)",
        minimum=0,
        maximum=DAY * 1000,
    )
    queue_count_cap: int = setting(
        "QUEUE_COUNT_CAP",
        1000,
        "a queue's unclaimed and scheduled jobs are counted exactly up to this many (each job"
        " counted costs an index entry and mostly a heap row); past it: this many, countsCapped",
        minimum=100,
        maximum=10_000_000,
    )
    queue_stuck_margin_seconds: float = setting(
        "QUEUE_STUCK_MARGIN_SECONDS",
        60.0,
        "a running job is stuck once its lease has expired, or when it runs this long past"
        " its timeout",
        minimum=0,
        maximum=DAY,
    )
    queue_alert_backlog: int = setting(
        "QUEUE_ALERT_BACKLOG",
        500,
        "alert when a queue has this many unclaimed (ready) jobs; critical at twice (0 = never;"
        " at most QUEUE_COUNT_CAP, and critical only where twice it is too)",
        minimum=0,
        maximum=10_000_000,
    )
    queue_alert_wait_seconds: float = setting(
        "QUEUE_ALERT_WAIT_SECONDS",
        300.0,
        "alert when a queue's oldest unclaimed job has waited this long since its run time;"
        " critical at twice (0 = never)",
        minimum=0,
        maximum=30 * DAY,
    )
    queue_alert_failure_rate: float = setting(
        "QUEUE_ALERT_FAILURE_RATE",
        0.1,
        "alert when this fraction of a queue's jobs finished in the window failed (10 or more"
        " finished); critical at twice (0 = never)",
        minimum=0,
        maximum=1,
    )
    queue_alert_stuck: int = setting(
        "QUEUE_ALERT_STUCK",
        1,
        "alert when a queue has this many stuck jobs; critical at twice (0 = never)",
        minimum=0,
        maximum=10_000_000,
    )
    db_acquire_timeout_ms: int = setting(
        "DB_ACQUIRE_TIMEOUT_MS",
        2000,
        "longest an API request waits for a pooled connection (then 503 database_busy)",
        minimum=1,
        maximum=600_000,
    )
    max_body_bytes: int = setting(
        "MAX_BODY_BYTES",
        1024 * 1024,
        "request body limit",
        minimum=1024,
        maximum=1024 * 1024 * 1024,
    )
    video_max_upload_bytes: int = setting(
        "VIDEO_MAX_UPLOAD_BYTES",
        4 * 1024**3,
        "largest video file POST /v1/videos/encode accepts (streamed to disk, then stored)",
        minimum=1,
        maximum=1024**4,
    )
    video_upload_dir: str = setting(
        "VIDEO_UPLOAD_DIR",
        "",
        "directory where the API spools an upload for the probe while writing it to a large"
        " object (with BLOB_DIR the upload is spooled there instead); unset = the system's temp"
        " directory",
    )
    auth: Literal["enabled", "disabled"] = setting(
        "JOBSERVER_AUTH", "enabled", "disabled = no tokens needed (local use only)"
    )
    compat: str = setting(
        "JOBSERVER_COMPAT",
        "",
        "compatibility routes served: a comma list of janaah, mojo, gatrix, workflow (each"
        " `name` or `name=/prefix`), `all` or `none`; `jobserver up` defaults to all",
    )
    log_format: Literal["json", "text"] = setting(
        "LOG_FORMAT", "json", "one JSON object per line, or text"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = setting(
        "LOG_LEVEL", "INFO", "log level"
    )
    home: str = setting(
        "JOBSERVER_HOME",
        ".jobserver",
        "where `jobserver up` keeps the embedded database and the dev token",
    )
    # -- outbound requests (jobserver/outbound): the one policy every integration goes through
    owner_max_running: int = setting(
        "OWNER_MAX_RUNNING",
        0,
        "jobs one token owner may have running fleet-wide unless its token sets"
        " --max-running (0 = no limit)",
        minimum=0,
        maximum=10_000_000,
    )
    owner_max_queued: int = setting(
        "OWNER_MAX_QUEUED",
        0,
        "jobs one token owner may have queued (a 429 past it) unless its token sets"
        " --max-queued (0 = no limit)",
        minimum=0,
        maximum=1_000_000_000,
    )
    max_priority_plain: int = setting(
        "MAX_PRIORITY_PLAIN",
        10,
        "the highest job priority a token without manage_jobs may give",
        minimum=-1000,
        maximum=1000,
    )
    max_retries: int = setting(
        "MAX_RETRIES",
        2,
        "retries of a once job made through the webhook-jobs compatibility routes (`POST /jobs`:"
        " it runs at most 1 + MAX_RETRIES times)",
        minimum=0,
        maximum=99,
    )
    default_expires_duration: str = setting(
        "DEFAULT_EXPIRES_DURATION",
        "",
        "expiry of a submitted job that gives no expiresAt/expiresIn, from its run time"
        " (seconds or 90s, 15m, 24h, 7d, 1h30m; unset = none; jobs a schedule fires keep none)",
    )
    outbound_allow_cidrs: str = setting(
        "OUTBOUND_ALLOW_CIDRS",
        "",
        "comma-separated networks jobs may reach although internal (e.g. 10.1.0.0/16)",
    )
    outbound_allow_hosts: str = setting(
        "OUTBOUND_ALLOW_HOSTS",
        "",
        "comma-separated host names (*.suffix too) jobs may reach whatever they resolve to",
    )
    outbound_max_redirects: int = setting(
        "OUTBOUND_MAX_REDIRECTS", 5, "redirects an outbound request follows", minimum=0, maximum=20
    )
    outbound_max_response_bytes: int = setting(
        "OUTBOUND_MAX_RESPONSE_BYTES",
        1024 * 1024,
        "response body cap of an outbound request",
        minimum=1024,
        maximum=1024 * 1024 * 1024,
    )
    outbound_timeout_seconds: float = setting(
        "OUTBOUND_TIMEOUT_SECONDS",
        300.0,
        "the longest an outbound request may take (a job's own timeout is capped to it)",
        minimum=0.1,
        maximum=3600,
    )
    # -- stored credentials (jobserver/credentials) and ssh.command ---------------------------
    secret_key: str = setting(
        "JOBSERVER_SECRET_KEY",
        "",
        "key that encrypts stored credentials: 32 random bytes, urlsafe base64 (several,"
        " comma-separated: the first encrypts, every one decrypts); unset = credentials can"
        " be neither stored nor used",
        secret=True,
    )
    ssh_known_hosts: str = setting(
        "SSH_KNOWN_HOSTS",
        "",
        "an OpenSSH known_hosts file whose keys ssh.command trusts besides each credential's"
        " hostKeys; unset = none",
    )
    ssh_output_cap: int = setting(
        "SSH_OUTPUT_CAP",
        1024 * 1024,
        "bytes of stdout and of stderr an ssh.command keeps, each (the rest is counted);"
        " also at most a quarter of MAX_RESULT_BYTES",
        minimum=1024,
        maximum=256 * 1024 * 1024,
    )
    # -- mail.send: the SMTP server and attachments (jobserver/mail) --------------------------
    smtp_host: str = setting(
        "SMTP_HOST", "", "SMTP server of mail.send jobs (through the outbound policy); unset = none"
    )
    smtp_port: int = setting("SMTP_PORT", 587, "SMTP server port", minimum=1, maximum=65535)
    smtp_username: str = setting("SMTP_USERNAME", "", "SMTP AUTH user; unset = no AUTH")
    smtp_password: str = setting(
        "SMTP_PASSWORD", "", "SMTP AUTH password (never logged or shown)", secret=True
    )
    smtp_tls: Literal["starttls", "tls", "none"] = setting(
        "SMTP_TLS",
        "starttls",
        "starttls = upgrade a plain connection (required), tls = TLS from the start (465),"
        " none = no TLS",
    )
    smtp_from: str = setting(
        "SMTP_FROM", "", "sender of mail.send jobs that give no `from` (Name <addr> allowed)"
    )
    smtp_timeout: float = setting(
        "SMTP_TIMEOUT", 30.0, "seconds one SMTP command may take", minimum=0.1, maximum=600
    )
    smtp_ca_file: str = setting(
        "SMTP_CA_FILE",
        "",
        "CA bundle (PEM) the SMTP server's certificate is checked against; unset = the system's",
    )
    mail_attachment_dir: str = setting(
        "MAIL_ATTACHMENT_DIR",
        "",
        "directory `path` attachments of mail.send are read from; unset = refused",
    )
    mail_max_attachment_bytes: int = setting(
        "MAIL_MAX_ATTACHMENT_BYTES",
        10 * 1024 * 1024,
        "total decoded size of one mail's attachments",
        minimum=0,
        maximum=1024 * 1024 * 1024,
    )
    # -- files jobs take and produce (jobserver/blobs) ----------------------------------------
    blob_dir: str = setting(
        "BLOB_DIR",
        "",
        "directory new blobs (job input and output files) are written to, e.g. a mount every"
        " API and worker host shares; unset = PostgreSQL large objects",
    )
    blob_max_bytes: int = setting(
        "BLOB_MAX_BYTES",
        10 * 1024**3,
        "largest blob that may be stored (an upload or a job's output past it is refused)",
        minimum=1,
        maximum=1024**5,
    )
    blob_unattached_seconds: float = setting(
        "BLOB_UNATTACHED_SECONDS",
        3600.0,
        "a blob no job took within this many seconds is deleted by the scheduler",
        minimum=1,
        maximum=365 * DAY,
    )
    # -- encode.video and upload probing: which FFmpeg (jobserver/video) -----------------------
    ffmpeg_binary: str = setting(
        "FFMPEG_BINARY",
        "",
        "the ffmpeg that encodes and probes videos: a path or a name on PATH (a system FFmpeg);"
        " unset = the one in the imageio-ffmpeg wheel",
    )
    ffprobe_binary: str = setting(
        "FFPROBE_BINARY",
        "",
        "the ffprobe that probes videos: a path or a name on PATH; unset = the one beside"
        " FFMPEG_BINARY when it is set and has one, else none (probing reads `ffmpeg -i`)",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, spec in FIELDS.items():
            raw = env.get(spec.env)
            if raw is None or raw == "":
                continue
            values[name] = spec.parse(raw)
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
        if self.max_every < self.min_every:
            raise ConfigError(
                f"invalid MAX_EVERY={self.max_every}: expected >= MIN_EVERY={self.min_every}"
            )
        if self.queue_alert_backlog > self.queue_count_cap:
            raise ConfigError(
                f"invalid QUEUE_ALERT_BACKLOG={self.queue_alert_backlog}: "
                f"expected at most QUEUE_COUNT_CAP={self.queue_count_cap}"
            )
        self._check_outbound()
        self._check_secret_key()
        self._check_compat()
        if self.default_expires_duration:
            self.default_expires  # noqa: B018 (parsed at start, not at the first submission)

    @cached_property
    def default_expires(self) -> dt.timedelta | None:
        """DEFAULT_EXPIRES_DURATION as a timedelta (None when unset)."""
        if not self.default_expires_duration:
            return None
        try:
            return parse_duration(self.default_expires_duration, "DEFAULT_EXPIRES_DURATION")
        except RuleError as e:
            raise ConfigError(
                f"invalid DEFAULT_EXPIRES_DURATION={self.default_expires_duration!r}: {e.message}"
            ) from None

    def _check_outbound(self) -> None:
        """OUTBOUND_ALLOW_CIDRS must parse at start, not at a job's first request."""
        import ipaddress

        for item in (p.strip() for p in self.outbound_allow_cidrs.split(",")):
            try:
                if item:
                    ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ConfigError(
                    f"invalid OUTBOUND_ALLOW_CIDRS={self.outbound_allow_cidrs!r}: {item!r} is "
                    "not a network (expected comma-separated CIDRs such as 10.0.0.0/8)"
                ) from None

    def _check_secret_key(self) -> None:
        """JOBSERVER_SECRET_KEY must parse at start; the message never shows the value."""
        if not self.secret_key:
            return
        from jobserver.credentials.keyring import parse_keyring

        try:
            parse_keyring(self.secret_key)
        except ValueError as e:
            raise ConfigError(f"invalid JOBSERVER_SECRET_KEY: {e}") from None

    def _check_compat(self) -> None:
        """JOBSERVER_COMPAT must name known systems and prefixes at start."""
        if not self.compat:
            return
        from jobserver.compat.registry import mounts
        from jobserver.compat.spec import CompatSpecError

        try:
            mounts(self.compat)
        except CompatSpecError as e:
            raise ConfigError(f"invalid JOBSERVER_COMPAT={self.compat!r}: {e}") from None

    @property
    def auth_enabled(self) -> bool:
        return self.auth == "enabled"

    @property
    def metrics_token_required(self) -> bool:
        """Whether API /metrics needs a `view_jobs` token (`auto`: unless bound to loopback)."""
        if self.metrics_require_token == "auto":
            return not is_loopback(self.host)
        return self.metrics_require_token == "true"

    def require_database_url(self) -> str:
        if not self.database_url:
            raise ConfigError("DATABASE_URL is not set: expected a postgresql:// URL")
        return self.database_url


_KINDS: dict[Any, type] = {int: int, float: float, bool: bool, str: str, str | None: str}


def _field_of(declared: dataclasses.Field[Any], hint: Any) -> Field:
    """The parser's view of one declared setting (a Literal's values become its choices)."""
    meta = declared.metadata
    choices = get_args(hint) if get_origin(hint) is Literal else None
    return Field(
        env=meta["env"],
        kind=str if choices else _KINDS[hint],
        default=declared.default,
        minimum=meta["minimum"],
        maximum=meta["maximum"],
        choices=choices,
        help=meta["doc"],
        secret=meta["secret"],
    )


_HINTS = get_type_hints(Settings)
FIELDS: dict[str, Field] = {f.name: _field_of(f, _HINTS[f.name]) for f in fields(Settings)}
