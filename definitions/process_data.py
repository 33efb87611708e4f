"""`process.data@1`: generate a dataset of `size` rows and aggregate, filter or transform it.

Rows are generated from `seed` (same seed, same data): id, category (a-e), value (0-100) and
quantity (1-10). A `dataset` name (the reference's `{"dataset": "sales-2024", "operation":
"aggregate"}`) picks the seed when none is given: a stable hash of the name (`dataset_seed`), so
one name always means the same `size` rows on every worker; the result names the dataset.
Work goes in chunks of `chunkSize` rows with a progress report after each and a yield to the
event loop; it stops between chunks once `ctx.cancelled` is set.

- aggregate: per category count, sum, mean, min and max of `value`
- filter: rows with value > `threshold` (count, and the first 10 ids)
- transform: value scaled to 0-1 and multiplied by quantity (count, total, first 5 rows)

Cost: at most 10,000,000 rows and at most `MAX_CHUNKS` (10,000) chunks (`size / chunkSize`,
a `check_params` bound refused at submission with a 422 on `chunkSize`), so a job cannot turn
into millions of one-row steps. A chunk of more than `LIGHT_ROWS` rows is generated and fed in
the worker's process pool (`ctx.run_cpu`, the sink and the generator's state travel with it,
so the data is the same as inline); smaller ones run on the event loop (about 15 ms each).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from typing import Any

from jobserver.registry import ParamsProblem, definition

CATEGORIES = ("a", "b", "c", "d", "e")
MAX_CHUNKS = 10_000
LIGHT_ROWS = 10_000

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["operation"],
    "properties": {
        "operation": {"enum": ["aggregate", "filter", "transform"]},
        "dataset": {"type": "string", "minLength": 1, "maxLength": 200},
        "size": {"type": "integer", "minimum": 0, "maximum": 10_000_000, "default": 1000},
        "seed": {"type": "integer", "default": 0},
        "threshold": {"type": "number", "default": 50},
        "chunkSize": {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 10000},
    },
    "additionalProperties": False,
}


def dataset_seed(name: str) -> int:
    """A seed that depends on the name alone (Python's `hash` of a str varies per process)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def seed_of(params: dict[str, Any]) -> int:
    """An explicit `seed` wins; else the `dataset` name's; else 0."""
    if "seed" in params:
        return int(params["seed"])
    if "dataset" in params:
        return dataset_seed(str(params["dataset"]))
    return 0


def generate(rng: random.Random, start: int, count: int) -> list[tuple[int, str, float, int]]:
    return [
        (i, CATEGORIES[rng.randrange(5)], round(rng.random() * 100, 3), rng.randint(1, 10))
        for i in range(start, start + count)
    ]


class _Aggregate:
    def __init__(self) -> None:
        self.stats: dict[str, list[float]] = {}  # count, sum, min, max

    def feed(self, rows: list[tuple[int, str, float, int]]) -> None:
        for _, cat, value, _ in rows:
            s = self.stats.get(cat)
            if s is None:
                self.stats[cat] = [1, value, value, value]
            else:
                s[0] += 1
                s[1] += value
                s[2] = min(s[2], value)
                s[3] = max(s[3], value)

    def result(self) -> dict[str, Any]:
        return {
            cat: {
                "count": int(s[0]),
                "sum": round(s[1], 3),
                "mean": round(s[1] / s[0], 3),
                "min": s[2],
                "max": s[3],
            }
            for cat, s in sorted(self.stats.items())
        }


class _Filter:
    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.count = 0
        self.first: list[int] = []

    def feed(self, rows: list[tuple[int, str, float, int]]) -> None:
        for row_id, _, value, _ in rows:
            if value > self.threshold:
                self.count += 1
                if len(self.first) < 10:
                    self.first.append(row_id)

    def result(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "count": self.count, "firstIds": self.first}


class _Transform:
    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.sample: list[dict[str, Any]] = []

    def feed(self, rows: list[tuple[int, str, float, int]]) -> None:
        for row_id, cat, value, qty in rows:
            scaled = round(value / 100 * qty, 5)
            self.count += 1
            self.total += scaled
            if len(self.sample) < 5:
                self.sample.append({"id": row_id, "category": cat, "weighted": scaled})

    def result(self) -> dict[str, Any]:
        return {"count": self.count, "total": round(self.total, 3), "sample": self.sample}


def feed_chunk(
    sink: _Aggregate | _Filter | _Transform, rng: random.Random, start: int, count: int
) -> tuple[_Aggregate | _Filter | _Transform, random.Random]:
    """One chunk generated and fed (in a pool process): the updated sink and generator."""
    sink.feed(generate(rng, start, count))
    return sink, rng


def check_params(params: dict[str, Any]) -> list[ParamsProblem]:
    """At most MAX_CHUNKS chunks: `size / chunkSize`, which the schema cannot bound."""
    size = int(params.get("size", 1000))
    chunk = int(params.get("chunkSize", 10000))
    chunks = -(-size // chunk)
    if chunks > MAX_CHUNKS:
        least = -(-size // MAX_CHUNKS)
        return [
            (
                ("chunkSize",),
                f"must be at least {least} for size {size}: at most {MAX_CHUNKS} chunks"
                f" (this is {chunks})",
            )
        ]
    return []


@definition(
    "process.data",
    1,
    params_schema=SCHEMA,
    default_max_attempts=3,
    timeout_seconds=600,
    check_params=check_params,
)
async def process_data(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Aggregate, filter or transform a generated dataset, reporting progress."""
    operation = params["operation"]
    size = int(params.get("size", 1000))
    chunk = int(params.get("chunkSize", 10000))
    rng = random.Random(seed_of(params))
    sink: _Aggregate | _Filter | _Transform
    if operation == "aggregate":
        sink = _Aggregate()
    elif operation == "filter":
        sink = _Filter(float(params.get("threshold", 50)))
    else:
        sink = _Transform()
    done = 0
    while done < size and not ctx.cancelled.is_set():
        n = min(chunk, size - done)
        if n <= LIGHT_ROWS:
            sink.feed(generate(rng, done, n))
        else:
            sink, rng = await ctx.run_cpu(feed_chunk, sink, rng, done, n)
        done += n
        await ctx.progress(done, size, f"{done} of {size} rows")
        await asyncio.sleep(0)
    answer: dict[str, Any] = {
        "operation": operation,
        "rows": done,
        "size": size,
        "result": sink.result(),
    }
    if "dataset" in params:
        answer["dataset"] = params["dataset"]
    return answer
