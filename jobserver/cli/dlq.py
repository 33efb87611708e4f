"""`jobserver dlq`: the dead-letter queue through the API (needs a manage_jobs token).

    jobserver dlq list [--definition K] [--redriven | --not-redriven] [--limit N]
    jobserver dlq show ID
    jobserver dlq redrive ID [--max-attempts N]

`redrive` creates a new job from the failed one and prints its id. See jobserver.cli.remote
for --url, --token and --json.
"""

from __future__ import annotations

import argparse

from jobserver.cli.common import fail
from jobserver.cli.remote import connection_flags, fields, print_json, run, table, when
from jobserver.client import Client, DlqEntry


def _parser() -> argparse.ArgumentParser:
    common = connection_flags()
    p = argparse.ArgumentParser(prog="jobserver dlq", description="The dead-letter queue.")
    sub = p.add_subparsers(dest="action", required=True)
    ls = sub.add_parser("list", parents=[common], help="dead-letter jobs, newest failure first")
    ls.add_argument("--definition", help="definition key")
    which = ls.add_mutually_exclusive_group()
    which.add_argument("--redriven", action="store_true", default=None)
    which.add_argument("--not-redriven", dest="redriven", action="store_false")
    ls.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    show = sub.add_parser("show", parents=[common], help="one entry with its attempts")
    show.add_argument("id")
    r = sub.add_parser("redrive", parents=[common], help="a new job from a dead-letter entry")
    r.add_argument("id")
    r.add_argument("--max-attempts", type=int, help="default: the failed job's")
    return p


def _rows(entries: list[DlqEntry]) -> list[tuple[object, ...]]:
    return [
        (
            e.id,
            e.job_id,
            f"{e.definition_key}@{e.definition_version}",
            e.queue,
            e.attempts,
            when(e.failed_at),
            e.redriven_job_id,
            (e.last_error or "")[:80],
        )
        for e in entries
    ]


COLUMNS = ("ID", "JOB", "DEFINITION", "QUEUE", "ATTEMPTS", "FAILED", "REDRIVEN AS", "ERROR")


def _list(client: Client, args: argparse.Namespace) -> int:
    if args.limit < 1:
        fail("--limit must be at least 1", 2)
    entries = list(
        client.dlq_list(
            limit=args.limit,
            page_size=min(args.limit, 1000),
            definition_key=args.definition,
            redriven=args.redriven,
        )
    )
    if args.json:
        print_json([e.raw for e in entries])
    else:
        table(None, COLUMNS, _rows(entries))
    return 0


def _show(client: Client, args: argparse.Namespace) -> int:
    e = client.dlq_get(args.id)
    if args.json:
        print_json(e.raw)
        return 0
    fields(
        f"dead-letter {e.id}",
        [
            ("job", e.job_id),
            ("definition", f"{e.definition_key}@{e.definition_version}"),
            ("queue", e.queue),
            ("owner", e.owner),
            ("attempts", f"{e.attempts}/{e.max_attempts}"),
            ("failed", when(e.failed_at)),
            ("redriven", when(e.redriven_at)),
            ("redriven as", e.redriven_job_id),
            ("params", e.params),
            ("last error", e.last_error),
        ],
    )
    rows = [
        (h.get("attempt"), h.get("workerId"), h.get("outcome"), h.get("error")) for h in e.history
    ]
    table("attempts", ("#", "WORKER", "OUTCOME", "ERROR"), rows)
    return 0


def _redrive(client: Client, args: argparse.Namespace) -> int:
    done = client.dlq_redrive(args.id, args.max_attempts)
    if args.json:
        print_json(done.raw)
    else:
        print(f"dead-letter {done.redriven_from} redriven as job {done.job_id}")
    return 0


ACTIONS = {"list": _list, "show": _show, "redrive": _redrive}


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    run(args, ACTIONS[args.action])


if __name__ == "__main__":
    main()
