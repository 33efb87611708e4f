"""`dependsOn` of a submission: which jobs a job waits for (see db/dependencies.py).

A reference is a job id, or, in a batch, the `name` of another item of the same batch
(names are unique within a batch and never look like a job id). `batch_names` maps a batch's
names to the ids minted for its items; `parent_ids` turns one item's references into ids;
`check_acyclic` refuses a batch whose references go round in a circle. Errors are `RuleError`s
naming the field (`jobs[2].dependsOn[1]`, `dependsOn[0]`). Whether a referenced id exists (and
belongs to the owner) is the database's answer, checked at insert.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from jobserver.core.errors import RuleError, at

MAX_PARENTS = 1000  # the schema's bound on dependsOn


def _as_uuid(ref: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(ref)
    except ValueError:
        return None


def batch_names(items: Sequence[Mapping[str, Any]], ids: Sequence[uuid.UUID]) -> dict[str, int]:
    """{name: item index} of a batch; a repeated name, or one that reads as a job id, is a
    RuleError on the later item's `name`."""
    names: dict[str, int] = {}
    for k, item in enumerate(items):
        name = item.get("name")
        if name is None:
            continue
        if name in names:
            raise RuleError(f"jobs[{k}].name", f"repeats the name of jobs[{names[name]}]")
        if _as_uuid(name) is not None:
            raise RuleError(f"jobs[{k}].name", "must not be a job id")
        names[name] = k
    return names


def parent_ids(
    item: Mapping[str, Any],
    where: str,
    job_id: uuid.UUID,
    names: Mapping[str, int] | None = None,
    ids: Sequence[uuid.UUID] = (),
) -> list[uuid.UUID] | None:
    """The ids `item.dependsOn` names (None when it names none); `names`/`ids` are the
    batch's (`batch_names`, the minted ids), `where` the item's path (`jobs[3]`, or ``)."""
    refs: list[str] | None = item.get("dependsOn")
    if not refs:
        return None
    out: list[uuid.UUID] = []
    seen: set[uuid.UUID] = set()
    for i, ref in enumerate(refs):
        field = f"{at(where, 'dependsOn')}[{i}]"
        k = None if names is None else names.get(ref)
        parent = ids[k] if k is not None else _as_uuid(ref)
        if parent is None:
            what = "a job id or the name of another job of the batch" if names else "a job id"
            raise RuleError(field, f"{ref!r} is not {what}")
        if parent == job_id:
            raise RuleError(field, "a job cannot depend on itself")
        if parent in seen:
            raise RuleError(field, "names a job already listed")
        seen.add(parent)
        out.append(parent)
    return out


def check_acyclic(parents: Sequence[list[uuid.UUID] | None], ids: Sequence[uuid.UUID]) -> None:
    """Refuse a batch whose in-batch references form a cycle (RuleError on the `dependsOn`
    of an item on it). `parents[k]` are item k's parent ids, `ids` the items' ids."""
    index = {job_id: k for k, job_id in enumerate(ids)}
    waits = [0] * len(ids)
    children: dict[int, list[int]] = {}
    for k, ps in enumerate(parents):
        for p in ps or ():
            if p in index:
                waits[k] += 1
                children.setdefault(index[p], []).append(k)
    ready = [k for k, n in enumerate(waits) if n == 0]
    while ready:
        for c in children.get(ready.pop(), ()):
            waits[c] -= 1
            if waits[c] == 0:
                ready.append(c)
    stuck = [k for k, n in enumerate(waits) if n > 0]
    if stuck:
        raise RuleError(
            f"jobs[{stuck[0]}].dependsOn",
            "the batch's dependsOn form a cycle (through "
            + ", ".join(f"jobs[{k}]" for k in stuck[:10])
            + ")",
        )
