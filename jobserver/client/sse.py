"""A server-sent events decoder (the WHATWG event-stream format), fed line by line.

It knows nothing of sockets: the sync and async clients feed it the lines they read and get a
`StreamEvent` at each blank line that ends a message. Comment lines (`: ping`) only keep the
connection alive; `retry:` sets the reconnection delay the server asks for; `id:` updates the
cursor a reconnect sends back as Last-Event-ID (even on a message without data).
"""

from __future__ import annotations

import json

from jobserver.client.models import JobUpdate, StreamEvent


class SSEDecoder:
    """Accumulates fields until a blank line; `last_event_id` and `retry_ms` persist."""

    def __init__(self, last_event_id: str | None = None) -> None:
        self.last_event_id = last_event_id
        self.retry_ms: int | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> StreamEvent | None:
        """One line without its end of line; a complete message when `line` ends one."""
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\x00" not in value:
                self.last_event_id = value or None
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> StreamEvent | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        text = "\n".join(data)
        try:
            payload = json.loads(text)
        except ValueError:
            payload = text
        job = None
        if event == "job" and isinstance(payload, dict):
            job = JobUpdate.from_json(payload)
        return StreamEvent(event=event, data=payload, id=self.last_event_id, job=job)
