"""Domain rules every producer of jobs shares: the REST API, the CLI, the scheduler, future
compatibility routes and the Python client call these, never each other's copies.

- `names`: the key and name rules (definition keys, queues, schedule names), one `fullmatch`
  each, also published as JSON Schema patterns;
- `timing`: ISO 8601 date-times, `runAt`/`delaySeconds`/`expiresAt` rules;
- `idempotency`: the request fingerprint behind `idempotencyKey`, repeated keys in a batch;
- `submission`: one submission (a JSON object) -> the `NewJob` that gets inserted;
- `errors`: `RuleError`, what these modules raise (the API answers it as a 422 naming the field).

Nothing here does I/O or imports the API: the rules are plain functions.
"""
