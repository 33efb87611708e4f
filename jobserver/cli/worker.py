"""`jobserver-worker`: run jobs of the definitions in code.

    jobserver-worker [--queues a,b] [--module pkg.mod ...] [--burst] [--concurrency N]

Loads the shipped `definitions` package plus every `--module`, then claims jobs until SIGTERM or
SIGINT (graceful: running jobs get SHUTDOWN_GRACE_SECONDS, the rest are handed back; a second
signal exits at once with code 143). `--burst` drains what is ready and exits 0. Settings come
from the environment (DATABASE_URL, MAX_CONCURRENT_EXECUTIONS, LEASE_DURATION_SECONDS, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

from jobserver.cli.common import fail, load_settings, run
from jobserver.config import Settings
from jobserver.registry import DefinitionError, load_modules
from jobserver.worker import metrics
from jobserver.worker.worker import Worker

log = logging.getLogger("jobserver.worker")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="jobserver-worker", description="Run jobserver jobs.")
    p.add_argument("--queues", help="comma-separated queues to take jobs from (default: all)")
    p.add_argument(
        "--module",
        action="append",
        default=[],
        metavar="PKG.MOD",
        help="import this module for its definitions (repeatable)",
    )
    p.add_argument("--burst", action="store_true", help="drain the ready jobs, then exit")
    p.add_argument(
        "--concurrency", type=int, help="jobs at once (default MAX_CONCURRENT_EXECUTIONS)"
    )
    return p.parse_args(argv)


async def serve(settings: Settings, worker: Worker) -> int:
    if worker.burst:
        await worker.run_burst()
        return 0
    loop = asyncio.get_running_loop()
    signals = 0
    pending: set[asyncio.Task[None]] = set()

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            log.warning("second signal: exiting now; leases will expire")
            os._exit(143)
        log.info("signal received: shutting down gracefully")
        task = loop.create_task(worker.stop())
        pending.add(task)
        task.add_done_callback(pending.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await worker.start()
    metrics.serve(settings.metrics_port, settings.metrics_host)
    await worker.wait_stopped()
    return 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = load_settings()
    queues = [q.strip() for q in (args.queues or "").split(",") if q.strip()] or None
    if args.concurrency is not None and args.concurrency < 1:
        fail(f"invalid --concurrency={args.concurrency}: expected an integer >= 1")
    try:
        reg = load_modules(args.module, check_schemas=False)  # schemas: see registry
    except (ImportError, DefinitionError) as e:
        fail(f"cannot load definitions: {e}")
    if len(reg) == 0:
        fail("no definitions loaded")
    worker = Worker(settings, reg, queues=queues, concurrency=args.concurrency, burst=args.burst)
    raise SystemExit(run(serve(settings, worker)))


if __name__ == "__main__":
    main()
