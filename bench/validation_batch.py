"""Time the checks of one 1,000-job batch: envelope schema plus each job's params (µs).

Run by hand (not a test): `.venv/bin/python bench/validation_batch.py [module]`, where module
holds `compile_schema` (default `jobserver.validation`). Prints the best of several rounds.
"""

from __future__ import annotations

import importlib
import sys
import time
from typing import Any

from definitions.echo import SCHEMA as ECHO_PARAMS
from jobserver.api.jobs import BATCH_SCHEMA

ROUNDS = 200
BODIES: dict[str, dict[str, Any]] = {
    "bench body (key + params)": {
        "jobs": [{"definitionKey": "echo", "params": {"message": "x"}} for _ in range(1000)]
    },
    "full body (7 fields)": {
        "jobs": [
            {
                "definitionKey": "echo",
                "definitionVersion": 1,
                "params": {"message": f"m{i}"},
                "priority": i % 100,
                "maxAttempts": 3,
                "queue": "default",
                "idempotencyKey": f"k{i}",
            }
            for i in range(1000)
        ]
    },
}


def main() -> None:
    module = importlib.import_module(sys.argv[1] if len(sys.argv) > 1 else "jobserver.validation")
    check_body = module.compile_schema(BATCH_SCHEMA)
    check_params = module.compile_schema(ECHO_PARAMS)
    for name, body in BODIES.items():
        best = float("inf")
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            assert check_body(body) is None
            for job in body["jobs"]:
                assert check_params(job["params"]) is None
            best = min(best, time.perf_counter() - t0)
        print(f"{module.__name__}: {name}: {best * 1e6:,.0f} µs per 1,000-job batch")


if __name__ == "__main__":
    main()
