"""JSON Schema pieces shared by the definitions that make HTTP requests (`call.api`,
`http.request`), so that submission refuses what the outbound client would refuse anyway.

- `HEADERS_SCHEMA`: an object of request headers: token names (RFC 7230), string values
  without CR, LF or NUL (at most 8 KiB each, 100 headers), and none of `Host`,
  `Content-Length` or the hop-by-hop headers (Connection, Transfer-Encoding, Upgrade, TE,
  Trailer, Keep-Alive, Proxy-*), matched case-insensitively (`jobserver.outbound.http` refuses
  them again at run time);
- `TOKEN`: the RFC 7230 token pattern (header names, methods).
"""

from __future__ import annotations

from typing import Any

TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]"

# Headers a job may not set (checked again by the outbound client), matched case-insensitively.
REFUSED_HEADER_NAMES = [
    *("host", "content-length", "connection", "transfer-encoding", "upgrade", "te", "trailer"),
    *("keep-alive", "proxy-"),
]


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in word)


REFUSED_HEADERS = (
    "^(?:"
    + "|".join(_any_case(w) + (".*" if w.endswith("-") else "") for w in REFUSED_HEADER_NAMES)
    + ")$"
)

HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "propertyNames": {
        "pattern": f"^{TOKEN}{{1,256}}$",
        "not": {"pattern": REFUSED_HEADERS},
    },
    "additionalProperties": {
        "type": "string",
        "maxLength": 8192,
        "pattern": "^[^\\r\\n\\u0000]*$",
    },
    "maxProperties": 100,
}
