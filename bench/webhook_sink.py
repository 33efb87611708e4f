"""A fast webhook receiver for the benchmark: answers 200 with a small JSON body and counts.

Run as its own process (`python bench/webhook_sink.py PORT`) so that the worker under test
does not share its event loop. GET /count tells how many requests it received.
"""

from __future__ import annotations

import sys

from aiohttp import web

received = 0


async def hook(request: web.Request) -> web.Response:
    global received
    await request.read()
    received += 1
    return web.json_response({"ok": True})


async def count(request: web.Request) -> web.Response:
    return web.json_response({"received": received})


def main() -> None:
    app = web.Application()
    app.router.add_get("/count", count)
    app.router.add_route("*", "/{tail:.*}", hook)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
