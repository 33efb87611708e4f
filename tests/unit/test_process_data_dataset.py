"""process.data takes the core reference's `{"dataset": "sales-2024", "operation": "aggregate"}`:
the name picks the data (the same rows for the same name, other rows for another), bounded by
`size` as before."""

from __future__ import annotations

import asyncio
from typing import Any

import jsonschema_rs

from jobserver.definitions.process_data import SCHEMA, check_params, process_data


class Ctx:
    def __init__(self) -> None:
        self.cancelled = asyncio.Event()
        self.reports: list[tuple[int, int]] = []

    async def progress(self, done: int, total: int, message: str) -> None:
        self.reports.append((done, total))


async def _run(params: dict[str, Any]) -> dict[str, Any]:
    jsonschema_rs.validate(SCHEMA, params)
    assert check_params(params) == []
    return await process_data(params, Ctx())


async def test_named_dataset_is_deterministic_and_bounded() -> None:
    first = await _run({"dataset": "sales-2024", "operation": "aggregate"})
    again = await _run({"dataset": "sales-2024", "operation": "aggregate"})
    other = await _run({"dataset": "sales-2025", "operation": "aggregate"})
    assert first == again and first["dataset"] == "sales-2024"
    assert first["rows"] == 1000 and sum(c["count"] for c in first["result"].values()) == 1000
    assert other["result"] != first["result"]
    seeded = await _run({"dataset": "sales-2024", "operation": "aggregate", "seed": 0})
    assert seeded["result"] == (await _run({"operation": "aggregate"}))["result"]


def test_dataset_name_is_bounded() -> None:
    for bad in ["", "x" * 201, 5]:
        try:
            jsonschema_rs.validate(SCHEMA, {"dataset": bad, "operation": "aggregate"})
        except jsonschema_rs.ValidationError:
            continue
        raise AssertionError(f"accepted dataset {bad!r}")
