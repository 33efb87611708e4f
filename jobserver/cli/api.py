"""`jobserver-api`: serve the REST API on HOST:PORT until SIGTERM/SIGINT.

Options override the environment: `--host`, `--port`. Shutdown is graceful: the listener
closes, in-flight requests get SHUTDOWN_GRACE_SECONDS (at most 10 s) to finish, then the pool
closes. With `--reuse-port`, several processes can share one port (SO_REUSEPORT) for more
throughput on one host. JOBSERVER_AUTH=disabled is refused (exit 2) unless the bind address is a
loopback one.

Speed: the event loop is uvloop when it is installed (a default dependency on Linux and
macOS), and after start-up the objects that live as long as the process are frozen out of the
cyclic garbage collector, whose young-generation threshold is raised: per-request garbage is
reference-counted away anyway, and full collections no longer walk the whole heap (fewer
pauses, a lower p99).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import logging

from aiohttp import web

from jobserver.api.app import create_app
from jobserver.cli.common import load_settings, new_event_loop, refuse_open_auth

log = logging.getLogger("jobserver.api")

GC_THRESHOLD = (10_000, 20, 20)
# Idle keep-alive connections, and connections that never complete a request head (slowloris),
# are closed after this many seconds.
KEEPALIVE_TIMEOUT = 15.0


def tune_gc() -> None:
    """Freeze what start-up allocated and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="jobserver-api", description="Run the jobserver REST API.")
    p.add_argument("--host", help="bind address (default HOST or 0.0.0.0)")
    p.add_argument("--port", type=int, help="port (default PORT or 3000)")
    p.add_argument("--reuse-port", action="store_true", help="set SO_REUSEPORT on the listener")
    args = p.parse_args(argv)
    settings = load_settings()
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    refuse_open_auth(settings, host)
    # the app decides by the address it really listens on (METRICS_REQUIRE_TOKEN=auto)
    app = create_app(dataclasses.replace(settings, host=host, port=port))
    log.info("api listening", extra={"host": host, "port": port})
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    tune_gc()
    web.run_app(
        app,
        loop=loop,
        host=host,
        port=port,
        print=None,
        access_log=None,
        shutdown_timeout=min(settings.shutdown_grace_seconds, 10.0),
        keepalive_timeout=KEEPALIVE_TIMEOUT,
        reuse_port=args.reuse_port or None,
        handle_signals=True,
    )


if __name__ == "__main__":
    main()
