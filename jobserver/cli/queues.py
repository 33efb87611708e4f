"""`jobserver queues`: queue health and durable pause through the API.

    jobserver queues list
    jobserver queues health NAME
    jobserver queues pause NAME [--reason TEXT]     (manage_jobs)
    jobserver queues resume NAME                    (manage_jobs)

A paused queue is claimed by no runner (including runners started later) until resumed.
See jobserver.cli.remote for --url, --token and --json.
"""

from __future__ import annotations

import argparse

from jobserver.cli.remote import connection_flags, fields, print_json, run, table, when
from jobserver.client import Client, Queue, QueuePause


def _parser() -> argparse.ArgumentParser:
    common = connection_flags()
    p = argparse.ArgumentParser(prog="jobserver queues", description="Queues, through the API.")
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("list", parents=[common], help="every queue with its counts and status")
    h = sub.add_parser("health", parents=[common], help="one queue's health")
    h.add_argument("name")
    pause = sub.add_parser("pause", parents=[common], help="stop every runner claiming it")
    pause.add_argument("name")
    pause.add_argument("--reason")
    resume = sub.add_parser("resume", parents=[common], help="resume a paused queue")
    resume.add_argument("name")
    return p


def _counts(q: Queue) -> tuple[object, ...]:
    c = q.counts
    return (c.get("unclaimed"), c.get("scheduled"), c.get("running"), c.get("stuck"))


def _list(client: Client, args: argparse.Namespace) -> int:
    queues = list(client.queues())
    if args.json:
        print_json([q.raw for q in queues])
        return 0
    rows = [
        (
            q.name,
            q.status,
            *_counts(q),
            f"{q.runners.get('active', 0)}/{q.runners.get('total', 0)}",
            "yes" if q.paused else "no",
            len(q.alerts),
        )
        for q in queues
    ]
    columns = ("QUEUE", "STATUS", "READY", "SCHEDULED", "RUNNING", "STUCK", "RUNNERS")
    table(None, (*columns, "PAUSED", "ALERTS"), rows)
    return 0


def _health(client: Client, args: argparse.Namespace) -> int:
    q = client.queue_health(args.name)
    if args.json:
        print_json(q.raw)
        return 0
    fields(
        f"queue {q.name}",
        [
            ("status", q.status),
            *((f"count {k}", v) for k, v in q.counts.items()),
            ("runners", f"{q.runners.get('active', 0)} active of {q.runners.get('total', 0)}"),
            ("paused", q.paused),
            ("oldest waiting since", when(q.oldest_waiting_since)),
            ("jobs per minute", q.metrics.get("jobsPerMinute")),
            ("success rate", q.metrics.get("successRate")),
        ],
    )
    if q.alerts:
        rows = [(a.get("severity"), a.get("rule"), a.get("message")) for a in q.alerts]
        table("alerts", ("SEVERITY", "RULE", "MESSAGE"), rows)
    return 0


def _show_pause(answer: QueuePause, as_json: bool) -> int:
    if as_json:
        print_json(answer.raw)
        return 0
    state = "paused" if answer.paused else "resumed"
    news = "" if answer.changed else " (it already was)"
    print(f"queue {answer.queue} {state}{news}; runners acknowledged: {len(answer.acknowledged)}")
    if answer.not_answered:
        print(f"runners that did not answer: {', '.join(answer.not_answered)}")
    return 0


def _pause(client: Client, args: argparse.Namespace) -> int:
    return _show_pause(client.pause_queue(args.name, args.reason), args.json)


def _resume(client: Client, args: argparse.Namespace) -> int:
    return _show_pause(client.resume_queue(args.name), args.json)


ACTIONS = {"list": _list, "health": _health, "pause": _pause, "resume": _resume}


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    run(args, ACTIONS[args.action])


if __name__ == "__main__":
    main()
