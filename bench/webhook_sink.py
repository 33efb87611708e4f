"""A fast webhook receiver for the benchmark: a bare HTTP/1.1 server (keep-alive, requests with
a Content-Length body) that answers every request `200 {"ok":true}` and counts them.

It runs as its own process (`python bench/webhook_sink.py PORT`) so the worker under test does
not share its event loop; it parses only what it must so that it takes as little of the
machine's CPU as it can (the worker, PostgreSQL and the receiver share two cores here).
`GET /count` answers how many requests it received before.
"""

from __future__ import annotations

import asyncio
import sys

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
received = 0


class Sink(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        global received
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at)
                length = int(head[at + 15 : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(self.buf) < total:
                return
            self.buf = self.buf[total:]
            assert self.transport is not None
            if head.startswith(b"get /count "):
                body = b'{"received":%d}' % received
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            else:
                received += 1
                self.transport.write(OK)


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Sink, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
