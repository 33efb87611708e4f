"""The one outbound policy every integration goes through (see `jobserver.outbound.policy`).

- `resolve_and_check(host, port)`: the checked addresses any TCP client may connect to;
- `jobserver.outbound.http.fetch(...)`: an HTTP request on aiohttp under that policy (imported
  on use: aiohttp is heavy and most processes never call out);
- `redact_url(url)`: a URL fit for logs and errors (no query string, no credentials).
"""

from jobserver.outbound.policy import (
    OutboundDenied,
    Policy,
    configure,
    current_policy,
    policy_from_settings,
    refusal,
    resolve_and_check,
)
from jobserver.outbound.redact import redact_url

__all__ = [
    "OutboundDenied",
    "Policy",
    "configure",
    "current_policy",
    "policy_from_settings",
    "redact_url",
    "refusal",
    "resolve_and_check",
]
