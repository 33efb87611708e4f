"""`jobserver jobs`: list, show, watch, submit, cancel and retry jobs through the API.

    jobserver jobs list [--status S] [--queue Q] [--definition K] [--tag T] [--limit N]
    jobserver jobs show ID [--events]
    jobserver jobs watch ID [--timeout SECONDS]
    jobserver jobs submit KEY [--params JSON|@FILE] [--version N] [--queue Q] [--priority N]
                          [--max-attempts N] [--idempotency-key K] [--delay SECONDS]
                          [--tag T] [--watch]
    jobserver jobs cancel ID
    jobserver jobs retry ID [--delay SECONDS]

`watch` (and `submit --watch`) shows a live progress bar until the job ends and exits 0 when
it succeeded, 1 otherwise (failed, cancelled, expired, or the timeout passed). See
jobserver.cli.remote for --url, --token and --json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from jobserver.cli.common import fail
from jobserver.cli.remote import (
    comma_list,
    connection_flags,
    console,
    fields,
    print_json,
    run,
    table,
    when,
)
from jobserver.client import Client, Job, WaitTimeout

JOB_COLUMNS = ("ID", "STATUS", "DEFINITION", "QUEUE", "ATTEMPT", "PROGRESS", "CREATED")


def _parser() -> argparse.ArgumentParser:
    common = connection_flags()
    p = argparse.ArgumentParser(prog="jobserver jobs", description="Jobs, through the API.")
    sub = p.add_subparsers(dest="action", required=True)
    ls = sub.add_parser("list", parents=[common], help="list jobs, newest first")
    ls.add_argument("--status", action="append", help="repeatable or comma-separated")
    ls.add_argument("--queue")
    ls.add_argument("--definition", help="definition key")
    ls.add_argument("--tag", action="append", help="jobs carrying every tag given")
    ls.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    show = sub.add_parser("show", parents=[common], help="one job")
    show.add_argument("id")
    show.add_argument("--events", action="store_true", help="with its lifecycle events")
    watch = sub.add_parser("watch", parents=[common], help="follow a job until it ends")
    watch.add_argument("id")
    watch.add_argument("--timeout", type=float, help="give up after this many seconds")
    s = sub.add_parser("submit", parents=[common], help="submit a job")
    s.add_argument("definition", help="definition key")
    s.add_argument("--params", help="params as JSON, or @FILE holding JSON")
    s.add_argument("--version", type=int, help="definition version (default: the latest)")
    s.add_argument("--queue")
    s.add_argument("--priority", type=int)
    s.add_argument("--max-attempts", type=int)
    s.add_argument("--idempotency-key")
    s.add_argument("--delay", type=float, help="run this many seconds from now")
    s.add_argument("--tag", action="append")
    s.add_argument("--watch", action="store_true", help="then watch it until it ends")
    s.add_argument("--timeout", type=float, help="with --watch: give up after this long")
    c = sub.add_parser("cancel", parents=[common], help="cancel a job")
    c.add_argument("id")
    r = sub.add_parser("retry", parents=[common], help="run a finished job again as a new one")
    r.add_argument("id")
    r.add_argument("--delay", type=float, help="run the retry this many seconds from now")
    return p


def progress_text(job: Job) -> str:
    if job.percent is not None:
        return f"{job.percent:g}%"
    return "-" if job.progress is None else str(job.progress.get("done", "-"))


def job_rows(jobs: list[Job]) -> list[tuple[Any, ...]]:
    return [
        (
            j.id,
            j.status,
            f"{j.definition_key}@{j.definition_version}",
            j.queue,
            f"{j.attempt}/{j.max_attempts}",
            progress_text(j),
            when(j.created_at),
        )
        for j in jobs
    ]


def show_job(job: Job) -> None:
    fields(
        f"job {job.id}",
        [
            ("status", job.status),
            ("definition", f"{job.definition_key}@{job.definition_version}"),
            ("queue", job.queue),
            ("priority", job.priority),
            ("attempt", f"{job.attempt}/{job.max_attempts}"),
            ("owner", job.owner),
            ("worker", job.worker_id),
            ("progress", job.progress),
            ("created", when(job.created_at)),
            ("started", when(job.started_at)),
            ("finished", when(job.finished_at)),
            ("params", json.dumps(job.params, default=str)),
            ("result", json.dumps(job.result, default=str)),
            ("last error", job.last_error),
            ("tags", job.tags),
        ],
    )


def _list(client: Client, args: argparse.Namespace) -> int:
    jobs = list(
        client.list(
            limit=args.limit,
            page_size=min(max(args.limit, 1), 100),
            status=comma_list(args.status),
            queue=args.queue,
            definition_key=args.definition,
            tag=comma_list(args.tag),
        )
    )
    if args.json:
        print_json([j.raw for j in jobs])
    else:
        table(None, JOB_COLUMNS, job_rows(jobs))
    return 0


def _show(client: Client, args: argparse.Namespace) -> int:
    job = client.get(args.id)
    events = list(client.events(job.id)) if args.events else []
    if args.json:
        print_json({**job.raw, "events": [e.raw for e in events]} if args.events else job.raw)
        return 0
    show_job(job)
    if args.events:
        rows = [(e.id, e.event, when(e.at), e.attempt, e.worker_id, e.details) for e in events]
        table("events", ("#", "EVENT", "AT", "ATTEMPT", "WORKER", "DETAILS"), rows)
    return 0


def watch(client: Client, job_id: str, timeout: float | None, as_json: bool) -> int:
    """Follow a job with a progress bar (on stderr); 0 when it succeeded, else 1."""
    err = console(stderr=True)
    last: Job | None = None
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=err, disable=as_json) as bar:
            task = bar.add_task(job_id, total=None)
            for job in client.watch(job_id, timeout=timeout):
                last = job
                done = 100.0 if job.succeeded else job.percent
                bar.update(
                    task,
                    description=f"{job.id} {job.status}",
                    total=None if done is None else 100.0,
                    completed=done or 0.0,
                )
    except WaitTimeout as e:
        fail(f"job {job_id} still {e.job.status if e.job else 'unfinished'} after {timeout} s", 1)
    assert last is not None
    if as_json:
        print_json(last.raw)
    else:
        tail = f": {last.last_error}" if last.last_error and not last.succeeded else ""
        print(f"job {last.id} {last.status}{tail}")
    return 0 if last.succeeded else 1


def _watch(client: Client, args: argparse.Namespace) -> int:
    return watch(client, args.id, args.timeout, args.json)


def _params(raw: str | None) -> Any:
    if raw is None:
        return None
    text = raw
    if raw.startswith("@"):
        try:
            text = Path(raw[1:]).read_text()
        except OSError as e:
            fail(f"--params: cannot read {raw[1:]}: {e.strerror}", 2)
    try:
        return json.loads(text)
    except ValueError as e:
        fail(f"--params: not JSON: {e}", 2)


def _submit(client: Client, args: argparse.Namespace) -> int:
    job = client.submit(
        args.definition,
        _params(args.params),
        version=args.version,
        queue=args.queue,
        priority=args.priority,
        max_attempts=args.max_attempts,
        idempotency_key=args.idempotency_key,
        delay_seconds=args.delay,
        tags=comma_list(args.tag),
    )
    if args.watch:
        if not args.json:
            print(f"job {job.id} submitted")
        return watch(client, job.id, args.timeout, args.json)
    if args.json:
        print_json(job.raw)
    else:
        table(None, JOB_COLUMNS, job_rows([job]))
    return 0


def _one(action: str) -> Any:
    def act(client: Client, args: argparse.Namespace) -> int:
        job = client.cancel(args.id) if action == "cancel" else client.retry(args.id, args.delay)
        if args.json:
            print_json(job.raw)
        else:
            table(None, JOB_COLUMNS, job_rows([job]))
        return 0

    return act


ACTIONS = {
    "list": _list,
    "show": _show,
    "watch": _watch,
    "submit": _submit,
    "cancel": _one("cancel"),
    "retry": _one("retry"),
}


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if getattr(args, "limit", 1) < 1:
        fail("--limit must be at least 1", 2)
    run(args, ACTIONS[args.action])


if __name__ == "__main__":
    main()
