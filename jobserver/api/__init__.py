"""The REST API (aiohttp), in layers; each module has one job.

Wiring: `app` (the factory: puts shared objects on the app, registers the route table behind
the pipeline), `routes` (the route table as data), `routing` (the `Route` record), `keys`
(typed app and request keys), `pool` (the API's connection pool).

Every request: `middleware` (access log, request id), `prometheus` (HTTP counters; `/metrics`),
`errors` (the error middleware, `ApiError`, which failures are 503), `pipeline` (auth, scope,
query, body before each handler), `request` (query coercion, body reading, path parameters),
`auth` (tokens to principals), `jsonio` (JSON answers, hostile-input-safe parsing),
`validation` (JSON Schema checks).

Shared by handlers: `schemas` (every request and answer schema), `paging` (the list envelope and
keyset cursors), `views` (rows as clients see them), `definitions_cache`, `metrics_cache`,
`group_commit`.

Handlers, one module per resource, importing none of the above wiring nor each other:
`health`, `openapi`, `jobs`, `definitions`, `schedules`, `dlq`, `runners`, `metrics`,
`prometheus`. Domain rules (building a job, idempotency, run/expiry, names) are in
`jobserver.core`, shared with every other producer of jobs.
"""
