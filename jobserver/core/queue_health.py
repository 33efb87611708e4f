"""Queue health rules: the alerts a queue's figures raise, and the status they give it.

Each rule compares one figure of the queue with a threshold (settings; 0 turns a rule off):

- `backlog`: unclaimed jobs (ready to run now), QUEUE_ALERT_BACKLOG (500);
- `oldest_waiting`: seconds the oldest unclaimed job has waited since its run time,
  QUEUE_ALERT_WAIT_SECONDS (300);
- `failure_rate`: failed / (succeeded + failed) in the window, once 10 or more finished,
  QUEUE_ALERT_FAILURE_RATE (0.1);
- `stuck`: stuck jobs (held past their lease, or past their timeout by a margin),
  QUEUE_ALERT_STUCK (1);
- `no_runners`: active runners serving the queue while it has unclaimed jobs, always on;
- `paused`: the queue is paused (`POST /v1/queues/{name}/pause`): nobody claims its jobs until
  it is resumed; a warning, always on.

An alert is a `warning` when its figure reaches the threshold and `critical` at twice the
threshold (a rate: twice, at most 1); `no_runners` is always critical (nobody will run the
jobs). The status of a queue is `unhealthy` with a critical alert, `degraded` with a warning
only, `healthy` with none; the system's status is the worst of its queues'.

Pure functions of plain values: the API computes the figures (`jobserver.api.queue_snapshot`)
and renders the alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["healthy", "degraded", "unhealthy"]
Severity = Literal["warning", "critical"]

STATUSES: tuple[Status, ...] = ("healthy", "degraded", "unhealthy")
SEVERITIES: tuple[Severity, ...] = ("warning", "critical")
RULES = ("backlog", "oldest_waiting", "failure_rate", "stuck", "no_runners", "paused")
# A failure rate says little about a handful of jobs.
FAILURE_RATE_MIN_FINISHED = 10


@dataclass(frozen=True)
class Thresholds:
    """When each rule fires (0: never)."""

    backlog: int = 500
    wait_seconds: float = 300.0
    failure_rate: float = 0.1
    stuck: int = 1


@dataclass(frozen=True)
class QueueFigures:
    """What the rules look at."""

    unclaimed: int
    oldest_wait_seconds: float | None  # None: nothing unclaimed
    succeeded: int  # in the window
    failed: int  # in the window
    stuck: int
    active_runners: int
    unclaimed_capped: bool = False  # `unclaimed` is the count cap: a lower bound
    paused: bool = False


@dataclass(frozen=True)
class Alert:
    rule: str
    severity: Severity
    value: float
    threshold: float
    message: str


def _severity(value: float, threshold: float, ceiling: float | None = None) -> Severity | None:
    if threshold <= 0 or value < threshold:
        return None
    critical = 2 * threshold if ceiling is None else min(ceiling, 2 * threshold)
    return "critical" if value >= critical else "warning"


def queue_alerts(f: QueueFigures, t: Thresholds) -> list[Alert]:
    """The alerts `f` raises under `t`, in the order of RULES."""
    out: list[Alert] = []
    level = _severity(f.unclaimed, t.backlog)
    if level:
        more = "at least " if f.unclaimed_capped else ""
        out.append(
            Alert(
                "backlog",
                level,
                f.unclaimed,
                t.backlog,
                f"{more}{f.unclaimed} unclaimed jobs (threshold {t.backlog})",
            )
        )
    wait = f.oldest_wait_seconds
    level = None if wait is None else _severity(wait, t.wait_seconds)
    if level and wait is not None:
        out.append(
            Alert(
                "oldest_waiting",
                level,
                round(wait, 3),
                t.wait_seconds,
                f"the oldest unclaimed job has waited {wait:.0f} s"
                f" (threshold {t.wait_seconds:g} s)",
            )
        )
    finished = f.succeeded + f.failed
    if finished >= FAILURE_RATE_MIN_FINISHED:
        rate = f.failed / finished
        level = _severity(rate, t.failure_rate, ceiling=1.0)
        if level:
            out.append(
                Alert(
                    "failure_rate",
                    level,
                    round(rate, 4),
                    t.failure_rate,
                    f"{f.failed} of {finished} finished jobs failed ({rate:.1%}; threshold"
                    f" {t.failure_rate:.1%})",
                )
            )
    level = _severity(f.stuck, t.stuck)
    if level:
        out.append(
            Alert("stuck", level, f.stuck, t.stuck, f"{f.stuck} stuck jobs (threshold {t.stuck})")
        )
    if f.unclaimed > 0 and f.active_runners == 0:
        out.append(
            Alert(
                "no_runners",
                "critical",
                0,
                1,
                f"{f.unclaimed} unclaimed jobs and no active runner serves the queue",
            )
        )
    if f.paused:
        out.append(
            Alert("paused", "warning", 1, 1, "paused: no worker claims its jobs until resumed")
        )
    return out


def status_of(alerts: list[Alert]) -> Status:
    if any(a.severity == "critical" for a in alerts):
        return "unhealthy"
    return "degraded" if alerts else "healthy"


def worst(statuses: list[Status]) -> Status:
    """The worst of `statuses` (healthy when there are none)."""
    return max(statuses, key=STATUSES.index, default="healthy")
