"""`jobserver-scheduler`: compete for leadership and run cron, rescue, expiry, pruning.

Run any number of them; one leads at a time (see `jobserver.scheduler.leader`). SIGTERM or
SIGINT stops the services and releases leadership so a successor takes over at once; a second
signal exits immediately. Settings: DATABASE_URL, LEADER_LEASE_SECONDS, SCHEDULER_TICK_SECONDS,
RESCUE_INTERVAL_SECONDS, PRUNE_INTERVAL_SECONDS, PRUNE_BATCH_SIZE, RETENTION_*_SECONDS,
BLOB_UNATTACHED_SECONDS, BLOB_DIR and VIDEO_UPLOAD_DIR (the pruner's blob expiry and file
sweep, and where it looks for upload spool files a dead API left),
HEARTBEAT_INTERVAL_SECONDS (workers' beat, for "gone"), METRICS_PORT (Prometheus, 0 = off,
on METRICS_HOST),
SCHEDULER_ID (optional holder name; default scheduler-<host>-<pid>).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

from jobserver.cli.common import load_settings, run
from jobserver.config import Settings
from jobserver.db.pool import create_pool
from jobserver.scheduler import metrics
from jobserver.scheduler.daemon import SchedulerDaemon, default_holder

log = logging.getLogger("jobserver.scheduler")


async def serve(settings: Settings, holder: str) -> None:
    pool = await create_pool(settings.require_database_url(), settings, max_size=4)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            log.warning("second signal: exiting now")
            os._exit(1)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    daemon = SchedulerDaemon(settings, pool, holder)
    try:
        await daemon.start()
        await stop.wait()
        log.info("scheduler stopping")
    finally:
        await daemon.stop()
        await pool.close()
    log.info("scheduler stopped")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="jobserver-scheduler",
        description="Leader-elected scheduler: cron schedules, lease rescue, expiry, pruning.",
    )
    p.add_argument("--id", default=None, help="holder name (default: SCHEDULER_ID or host-pid)")
    args = p.parse_args(argv)
    settings = load_settings()
    holder = args.id or os.environ.get("SCHEDULER_ID") or default_holder()
    metrics.serve(settings.metrics_port, settings.metrics_host)
    run(serve(settings, holder))


if __name__ == "__main__":
    main()
