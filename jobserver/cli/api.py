"""`jobserver-api`: serve the REST API on HOST:PORT until SIGTERM/SIGINT.

Options override the environment: `--host`, `--port`. Shutdown is graceful: the listener
closes, in-flight requests get SHUTDOWN_GRACE_SECONDS (at most 10 s) to finish, then the pool
closes. With `--reuse-port`, several processes can share one port (SO_REUSEPORT) for more
throughput on one host.
"""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from jobserver.api.app import create_app
from jobserver.cli.common import load_settings

log = logging.getLogger("jobserver.api")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="jobserver-api", description="Run the jobserver REST API.")
    p.add_argument("--host", help="bind address (default HOST or 0.0.0.0)")
    p.add_argument("--port", type=int, help="port (default PORT or 3000)")
    p.add_argument("--reuse-port", action="store_true", help="set SO_REUSEPORT on the listener")
    args = p.parse_args(argv)
    settings = load_settings()
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    app = create_app(settings)
    log.info("api listening", extra={"host": host, "port": port})
    web.run_app(
        app,
        host=host,
        port=port,
        print=None,
        access_log=None,
        shutdown_timeout=min(settings.shutdown_grace_seconds, 10.0),
        reuse_port=args.reuse_port or None,
        handle_signals=True,
    )


if __name__ == "__main__":
    main()
