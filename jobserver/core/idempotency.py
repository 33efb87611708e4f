"""Idempotency: what makes two submissions under one `idempotencyKey` "the same request".

`fingerprint(item)` is the SHA-256 of the submission's canonical JSON (sorted keys, compact):
a repeat with an equal body finds the stored job (200), a different body is a conflict (409).
Keys are unique per owner, so `repeated_keys(items)` refuses a batch that uses a key twice
(there would be no single job to answer with) and returns key -> index for the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from jobserver.codec import canonical
from jobserver.core.errors import RuleError


def fingerprint(item: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(item).encode("utf-8")).hexdigest()


def same_request(stored_fingerprint: str | None, job_fingerprint: str | None) -> bool:
    """Whether a stored job answers a repeat (equal fingerprints) or it is a conflict."""
    return stored_fingerprint == job_fingerprint


def batch_keys(items: Sequence[Mapping[str, Any]], where: str = "jobs") -> dict[str, int]:
    """idempotencyKey -> index in the batch; a key given twice -> RuleError naming the second."""
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        key = item.get("idempotencyKey")
        if key is not None:
            if key in seen:
                raise RuleError(
                    f"{where}[{i}].idempotencyKey", f"repeats the key of {where}[{seen[key]}]"
                )
            seen[key] = i
    return seen
