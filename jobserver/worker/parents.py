"""`ctx.parents()`: what a job with `dependsOn` reads of its parents when it runs.

`Parents` lists them in the order the submission gave (`for p in await ctx.parents()`), and
looks one up by position, by its name in its batch or by its id (`parents["fetch"].result`,
`parents[job_id]`). Each is a `Parent` (id, name, status, result); a parent pruned since
has no name, status or result (None). Read once per attempt, in one statement
(`db.dependencies.parent_results`); a job without parents gets an empty `Parents`."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Parent:
    """One parent of the running job, as it ended (status `succeeded`, or under
    `onParentFailure: continue` also `failed`, `cancelled` or `expired`)."""

    id: uuid.UUID
    name: str | None
    status: str | None
    result: Any

    def as_dict(self) -> dict[str, Any]:
        """The parent as templates see it (`{{parents.<name>.result}}`)."""
        return {"id": str(self.id), "name": self.name, "status": self.status, "result": self.result}


class Parents:
    """The parents in dependsOn order, also by name and by id (see the module doc)."""

    __slots__ = ("_by_key", "_items")

    def __init__(self, items: Iterable[Parent]) -> None:
        self._items = list(items)
        self._by_key: dict[str, Parent] = {}
        for p in reversed(self._items):  # the first of a repeated name wins
            self._by_key[str(p.id)] = p
            if p.name is not None:
                self._by_key[p.name] = p

    @classmethod
    def of_rows(cls, rows: Iterable[asyncpg.Record]) -> Parents:
        return cls(Parent(r["id"], r["name"], r["status"], r["result"]) for r in rows)

    def __iter__(self) -> Iterator[Parent]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, key: int | str | uuid.UUID) -> Parent:
        if isinstance(key, int):
            return self._items[key]
        return self._by_key[str(key)]

    def get(self, key: str | uuid.UUID) -> Parent | None:
        """The parent of that name or id, or None."""
        return self._by_key.get(str(key))

    def as_context(self) -> dict[str, Any]:
        """{name or id: parent dict}: the `parents` root of templated params."""
        return {k: p.as_dict() for k, p in self._by_key.items()}
