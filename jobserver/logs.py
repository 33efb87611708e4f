"""Logging set-up: one JSON object per line (default) or human-readable text (LOG_FORMAT=text).

Context such as the request id, job id and worker id travels in `contextvars` and is added to
every record logged while it is set; `extra={...}` fields are included too. Secrets never reach
a log line: callers must not pass tokens, and `Authorization` headers are never logged.

Text lines cannot be forged: control characters in the message, the context and the extras
(newlines, carriage returns, other C0 and C1 codes, ESC that starts ANSI sequences, DEL,
U+2028/U+2029) are written as escapes (`\\n`, `\\x1b`), so a request path with `%0A` stays
on its own line. A traceback keeps its lines, each indented, so none can pass for a record.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from typing import Any

from jobserver.codec import dumps_answer_text

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
job_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)
worker_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "worker_id", default=None
)

_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _context(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, var in (
        ("requestId", request_id_var),
        ("jobId", job_id_var),
        ("workerId", worker_id_var),
    ):
        value = var.get()
        if value is not None:
            out[key] = value
    for k, v in record.__dict__.items():
        if k not in _STD and not k.startswith("_"):
            out[k] = v
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_context(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _json_line(entry)


_PLAIN = (str, int, float, bool, type(None))


def _json_line(entry: dict[str, Any]) -> str:
    """The entry as one JSON line; never raises (a log call must not fail the code that logs).
    A value the codec cannot write (an object passed in `extra`, a cycle) is written as its
    str()."""
    try:
        return dumps_answer_text(entry)
    except (TypeError, ValueError, RecursionError):
        return dumps_answer_text(
            {k: v if isinstance(v, _PLAIN) else _text(v) for k, v in entry.items()}
        )


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception as e:  # a broken __str__ must not break logging either
        return f"<unprintable {type(value).__name__}: {type(e).__name__}>"


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(m: re.Match[str]) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def escape_text(value: str) -> str:
    """`value` with every control character written as an escape (one search when clean)."""
    return _CONTROL.sub(_escape_char, value) if _CONTROL.search(value) else value


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ctx = " ".join(
            f"{escape_text(str(k))}={escape_text(_text(v))}" for k, v in _context(record).items()
        )
        line = (
            f"{time.strftime('%H:%M:%S', time.localtime(record.created))} "
            f"{record.levelname:<7} {escape_text(record.name)}: "
            f"{escape_text(record.getMessage())}"
        )
        if ctx:
            line += f" [{ctx}]"
        if record.exc_info:
            trace = self.formatException(record.exc_info)
            line += "".join(f"\n    {escape_text(t)}" for t in trace.splitlines())
        return line


def setup_logging(fmt: str = "json", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # Alembic announces each of its autogenerate plugins at INFO on every `migrate`: noise.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
