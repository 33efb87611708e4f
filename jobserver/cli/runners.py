"""`jobserver runners`: worker processes through the API.

    jobserver runners list [--status S] [--queue Q]
    jobserver runners ping ID [--timeout-ms N]                          (manage_jobs)
    jobserver runners shutdown ID [--mode graceful|immediate] [--timeout-ms N]  (manage_jobs)

`ping` prints the measured round trip through the control channel, and exits 1 when the
runner did not answer in time; so does `shutdown`. See jobserver.cli.remote for --url,
--token and --json.
"""

from __future__ import annotations

import argparse

from jobserver.cli.remote import comma_list, connection_flags, print_json, run, table, when
from jobserver.client import Client, RunnerCommand


def _parser() -> argparse.ArgumentParser:
    common = connection_flags()
    p = argparse.ArgumentParser(prog="jobserver runners", description="Runners (workers).")
    sub = p.add_subparsers(dest="action", required=True)
    ls = sub.add_parser("list", parents=[common], help="worker processes, live ones first")
    ls.add_argument("--status", action="append", help="repeatable or comma-separated")
    ls.add_argument("--queue", help="only those taking jobs of this queue")
    ping = sub.add_parser("ping", parents=[common], help="round trip to one runner")
    ping.add_argument("id")
    ping.add_argument("--timeout-ms", type=int)
    stop = sub.add_parser("shutdown", parents=[common], help="stop one runner")
    stop.add_argument("id")
    stop.add_argument("--mode", choices=("graceful", "immediate"))
    stop.add_argument("--timeout-ms", type=int)
    return p


def _list(client: Client, args: argparse.Namespace) -> int:
    runners = list(client.runners(status=comma_list(args.status), queue=args.queue))
    if args.json:
        print_json([r.raw for r in runners])
        return 0
    rows = [
        (
            r.id,
            r.status,
            r.host,
            r.pid,
            "all" if r.queues is None else r.queues,
            f"{r.running}/{r.max_concurrency}",
            when(r.last_seen_at),
        )
        for r in runners
    ]
    table(None, ("ID", "STATUS", "HOST", "PID", "QUEUES", "RUNNING", "LAST SEEN"), rows)
    return 0


def _answer(answer: RunnerCommand, as_json: bool) -> int:
    if as_json:
        print_json(answer.raw)
    elif answer.answered:
        print(f"runner {answer.runner_id} answered {answer.command} in {answer.ms:.1f} ms")
    else:
        print(f"runner {answer.runner_id} did not answer {answer.command} in time")
    return 0 if answer.answered else 1


def _ping(client: Client, args: argparse.Namespace) -> int:
    return _answer(client.ping_runner(args.id, args.timeout_ms), args.json)


def _shutdown(client: Client, args: argparse.Namespace) -> int:
    return _answer(client.shutdown_runner(args.id, args.mode, args.timeout_ms), args.json)


ACTIONS = {"list": _list, "ping": _ping, "shutdown": _shutdown}


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    run(args, ACTIONS[args.action])


if __name__ == "__main__":
    main()
