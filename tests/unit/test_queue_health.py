"""The queue health rules: which alerts a queue's figures raise, their severity, the status."""

from __future__ import annotations

from dataclasses import replace

from jobserver.core.queue_health import (
    FAILURE_RATE_MIN_FINISHED,
    QueueFigures,
    Thresholds,
    queue_alerts,
    status_of,
    worst,
)

CALM = QueueFigures(
    unclaimed=0, oldest_wait_seconds=None, succeeded=100, failed=0, stuck=0, active_runners=1
)
RULES = Thresholds(backlog=100, wait_seconds=60.0, failure_rate=0.1, stuck=2)


def rules_of(f: QueueFigures, t: Thresholds = RULES) -> dict[str, tuple[str, float, float]]:
    return {a.rule: (a.severity, a.value, a.threshold) for a in queue_alerts(f, t)}


def test_a_calm_queue_is_healthy() -> None:
    assert queue_alerts(CALM, RULES) == []
    assert status_of([]) == "healthy"


def test_warning_from_the_threshold_critical_from_twice() -> None:
    for unclaimed, expected in ((99, None), (100, "warning"), (199, "warning"), (200, "critical")):
        got = rules_of(replace(CALM, unclaimed=unclaimed, oldest_wait_seconds=1.0))
        assert got.get("backlog", (None,))[0] == expected, unclaimed
    assert rules_of(replace(CALM, unclaimed=1, oldest_wait_seconds=59.9)) == {}
    assert rules_of(replace(CALM, unclaimed=1, oldest_wait_seconds=60.0)) == {
        "oldest_waiting": ("warning", 60.0, 60.0)
    }
    assert rules_of(replace(CALM, stuck=4)) == {"stuck": ("critical", 4, 2)}


def test_the_failure_rate_needs_enough_finished_jobs() -> None:
    few = replace(CALM, succeeded=0, failed=FAILURE_RATE_MIN_FINISHED - 1)
    assert rules_of(few) == {}
    enough = replace(CALM, succeeded=8, failed=2)
    assert rules_of(enough) == {"failure_rate": ("critical", 0.2, 0.1)}
    assert rules_of(replace(CALM, succeeded=9, failed=1)) == {"failure_rate": ("warning", 0.1, 0.1)}
    # twice a high threshold is capped at 1: every job failing is critical
    high = replace(RULES, failure_rate=0.7)
    assert rules_of(replace(CALM, succeeded=2, failed=8), high) == {
        "failure_rate": ("warning", 0.8, 0.7)
    }
    assert rules_of(replace(CALM, succeeded=0, failed=10), high) == {
        "failure_rate": ("critical", 1.0, 0.7)
    }


def test_zero_turns_a_rule_off() -> None:
    off = Thresholds(backlog=0, wait_seconds=0, failure_rate=0, stuck=0)
    busy = QueueFigures(
        unclaimed=10**6,
        oldest_wait_seconds=1e6,
        succeeded=0,
        failed=100,
        stuck=50,
        active_runners=1,
    )
    assert queue_alerts(busy, off) == []


def test_no_runner_for_unclaimed_jobs_is_critical() -> None:
    orphan = replace(CALM, unclaimed=1, oldest_wait_seconds=0.0, active_runners=0)
    [alert] = queue_alerts(orphan, RULES)
    assert (alert.rule, alert.severity, alert.value, alert.threshold) == (
        "no_runners",
        "critical",
        0,
        1,
    )
    assert status_of([alert]) == "unhealthy"
    assert queue_alerts(replace(CALM, active_runners=0), RULES) == []  # nothing to run


def test_a_capped_backlog_says_at_least() -> None:
    [alert] = queue_alerts(
        replace(CALM, unclaimed=100, oldest_wait_seconds=0.0, unclaimed_capped=True), RULES
    )
    assert alert.message.startswith("at least 100 unclaimed jobs")


def test_the_worst_status_wins() -> None:
    assert worst([]) == "healthy"
    assert worst(["healthy", "degraded"]) == "degraded"
    assert worst(["degraded", "unhealthy", "healthy"]) == "unhealthy"
    warning = queue_alerts(replace(CALM, stuck=2), RULES)
    assert status_of(warning) == "degraded"


def test_a_paused_queue_is_degraded() -> None:
    [alert] = queue_alerts(replace(CALM, paused=True), RULES)
    assert (alert.rule, alert.severity) == ("paused", "warning")
    assert status_of([alert]) == "degraded"
