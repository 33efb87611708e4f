"""URLs and headers as logs, events, results and answers may show them: secrets hidden.

`?api_key=SECRET` and `https://user:pass@host/` carry secrets; a log line or a stored error
keeps the scheme, host, port and path and replaces the query (and a fragment) with `?***`.

Headers that carry credentials (`SECRET_HEADERS`: Authorization, Cookie, Proxy-Authorization,
X-Api-Key, Set-Cookie, and any more a caller names) are shown with the value `***`
(`redact_headers`); `scrub` replaces their values wherever else they appear in a text (a body
that echoes them, an error message).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

SECRET_HEADERS = frozenset(
    {"authorization", "cookie", "proxy-authorization", "x-api-key", "set-cookie"}
)
HIDDEN = "***"
MIN_SCRUBBED_CHARS = 4  # shorter values would blank out ordinary text


def redact_url(url: str) -> str:
    """`url` with its userinfo dropped and its query and fragment replaced by `***`."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "<unparseable URL>"
    query = "***" if parts.query or parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def secret_names(extra: Iterable[str] = ()) -> frozenset[str]:
    """The lower-cased names of the headers to hide: `SECRET_HEADERS` and `extra`."""
    names = [n.strip().lower() for n in extra]
    return SECRET_HEADERS.union(names) if names else SECRET_HEADERS


def redact_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]], secret: Collection[str]
) -> dict[str, str]:
    """`headers` with the value of every header named in `secret` (lower-case) as `***`;
    repeated names (several Set-Cookie) are joined with ", "."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in items:
        shown = HIDDEN if name.lower() in secret else value
        out[name] = f"{out[name]}, {shown}" if name in out else shown
    return out


def secret_values(headers: Mapping[str, str], secret: Collection[str]) -> list[str]:
    """The values of the secret headers in `headers` (and the credentials of a `Bearer xyz`
    form on their own), longest first (for `scrub`)."""
    found: set[str] = set()
    for name, value in headers.items():
        if name.lower() in secret:
            found.add(value.strip())
            found.add(value.strip().partition(" ")[2].strip())
    return sorted((v for v in found if len(v) >= MIN_SCRUBBED_CHARS), key=len, reverse=True)


def scrub(text: str, values: Iterable[str]) -> str:
    """`text` with each of `values` (see `secret_values`) replaced by `***`."""
    for v in values:
        if v in text:
            text = text.replace(v, HIDDEN)
    return text
