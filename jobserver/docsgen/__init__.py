"""The generated pages of docs/: the API reference, the job types and the metrics reference.

Each page is a pure function of the code (the route table, the definitions registry, the metric
registries), so a test can regenerate it and fail when the committed page is stale:
`python -m jobserver.docsgen` (or `scripts/gen-docs`) rewrites them, `--check` only compares.
"""
