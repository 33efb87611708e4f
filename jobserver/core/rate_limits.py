"""Rate limits: at most N starts per period (seconds), fleet-wide, optionally per key.

A definition declares one in code (`@definition(..., rate_limit=RateLimit(50, 1.0))`), with an
optional `key` naming what in its params splits the limit: a dotted path (`customer.id`: one
bucket per customer) or a template (`{{customer.id}}/{{region}}`). `register-definitions`
publishes it (`job_definitions.rate_limit`), and the API answers it as the definition's
`rateLimit`.

A submission (or a saved job) may carry its own `rateLimit` `{"limit", "periodSeconds"}` that
only LOWERS its definition's: `limit` at most the definition's and `periodSeconds` at least
its (so in any window of the definition's period it starts no more than the definition
allows); a definition without a rate limit takes none. The key is always the definition's: a
job cannot leave its bucket.

`job_rate` computes, AT SUBMISSION, what the claim needs: the job's bucket (`key` or
`key:value`, the value hashed when long) and its N and period; the claim reads only those
columns (`jobs.rate_bucket`, `rate_limit`, `rate_period`; NULL for an unlimited job).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobserver.core.errors import RuleError, at, format_path

MAX_RATE_LIMIT = 1_000_000
MAX_RATE_PERIOD_SECONDS = 7 * 86400.0
MAX_KEY_VALUE = 200  # longer bucket values are stored as their SHA-256
_TEMPLATE = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_PATH = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")

RateFields = tuple[str, int, float]  # (bucket, limit, period seconds)


@dataclass(frozen=True)
class RateLimit:
    """At most `limit` starts per `period_seconds`, per value of `key` (None: one bucket)."""

    limit: int
    period_seconds: float
    key: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"limit": self.limit, "periodSeconds": self.period_seconds}
        if self.key is not None:
            out["key"] = self.key
        return out

    @classmethod
    def from_json(cls, value: Any) -> RateLimit | None:
        """The stored JSON (`as_json`) back; None for none."""
        if not isinstance(value, Mapping):
            return None
        return cls(int(value["limit"]), float(value["periodSeconds"]), value.get("key"))


def rate_limit_problem(r: RateLimit) -> str | None:
    """What is wrong with a declared rate limit (None: nothing)."""
    if not 1 <= r.limit <= MAX_RATE_LIMIT:
        return f"limit must be between 1 and {MAX_RATE_LIMIT}"
    if not 0 < r.period_seconds <= MAX_RATE_PERIOD_SECONDS:
        return f"period_seconds must be > 0 and <= {MAX_RATE_PERIOD_SECONDS:g}"
    if r.key is not None:
        paths = key_paths(r.key)
        if not paths or not all(_PATH.match(p) for p in paths):
            return "key must be a dotted path (customer.id) or a template ({{customer.id}})"
    return None


def key_paths(key: str) -> list[str]:
    """The params paths a key reads: the template's `{{paths}}`, or the key itself."""
    found = _TEMPLATE.findall(key)
    return found if found else [key]


def _lookup(params: Any, path: str) -> tuple[bool, Any]:
    value = params
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def key_value(key: str, params: Any, where: str) -> str:
    """The key's value for these params; a path missing from them is a RuleError naming it."""
    values: dict[str, str] = {}
    for path in key_paths(key):
        found, value = _lookup(params, path)
        if not found or value is None:
            raise RuleError(
                format_path(tuple(path.split(".")), at(where, "params")),
                "is required: the definition's rate limit is per value of it",
            )
        values[path] = _text(value)
    if not _TEMPLATE.search(key):
        return values[key]
    return _TEMPLATE.sub(lambda m: values[m.group(1)], key)


def bucket_of(definition_key: str, rate: RateLimit, params: Any, where: str = "") -> str:
    """`key` or `key:value`: what the claim serializes on and counts starts of."""
    if rate.key is None:
        return definition_key
    value = key_value(rate.key, params, where)
    if len(value) > MAX_KEY_VALUE:
        value = "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return f"{definition_key}:{value}"


def job_rate(
    own: Mapping[str, Any] | None,
    definition_key: str,
    declared: RateLimit | None,
    params: Any,
    where: str = "",
) -> RateFields | None:
    """(bucket, limit, period) of a job whose own rate limit is `own` (the submission's
    `rateLimit`, None when not given) under its definition's `declared` one. RuleError naming
    `rateLimit.limit` / `rateLimit.periodSeconds` when `own` would raise the definition's."""
    if declared is None:
        if own is not None:
            raise RuleError(
                at(where, "rateLimit"),
                "the definition has no rate limit; a job may only lower its definition's",
            )
        return None
    limit, period = declared.limit, declared.period_seconds
    if own is not None:
        own_limit, own_period = int(own["limit"]), float(own["periodSeconds"])
        if own_limit > limit:
            raise RuleError(
                at(where, "rateLimit.limit"),
                f"{own_limit} is above the definition's rate limit ({limit}); a job may only"
                " lower it",
            )
        if own_period < period:
            raise RuleError(
                at(where, "rateLimit.periodSeconds"),
                f"{own_period:g} is below the definition's period ({period:g} s); a job may"
                " only lower its rate",
            )
        limit, period = own_limit, own_period
    return bucket_of(definition_key, declared, params, where), limit, period


def shown_rate(bucket: str | None, limit: int | None, period: float | None) -> Any:
    """A job's `rateLimit` as answers show it (None for an unlimited job)."""
    if bucket is None:
        return None
    return {"limit": limit, "periodSeconds": period, "bucket": bucket}
