"""URLs as logs and errors may show them: credentials and query strings hidden.

`?api_key=SECRET` and `https://user:pass@host/` carry secrets; a log line or a stored error
keeps the scheme, host, port and path and replaces the query (and a fragment) with `?***`.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """`url` with its userinfo dropped and its query and fragment replaced by `***`."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "<unparseable URL>"
    query = "***" if parts.query or parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
