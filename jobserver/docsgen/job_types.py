"""docs/job-types.md: every definition shipped under definitions/, from the registry.

For each: its key and version, description, limits (attempts, timeout, concurrency, rate
limit), whether it reaches the network (the `outbound` capability) or names a stored
credential, its params as a table, and an example submission body from `EXAMPLES` (a test
checks every shipped definition has one and that the API's checks accept it).
"""

from __future__ import annotations

import json
from typing import Any

from jobserver.docsgen.schema_text import fields_table
from jobserver.registry import BUILTIN_PACKAGE, Definition, load_modules

# An example `POST /v1/jobs` params object per shipped definition.
EXAMPLES: dict[str, dict[str, Any]] = {
    "call.api": {"endpoint": "https://api.example.com/orders/42", "method": "GET"},
    "compute.math": {"operation": "sum", "numbers": [1, 2, 3]},
    "echo": {"message": "hello"},
    "encode.video": {
        "input": {"blobId": "0b7c2a52-8c1e-4a3e-9a57-3f0f5b1d2c4e", "filename": "clip.mp4"},
        "format": "webm",
        "quality": "720p",
    },
    "failing": {"reason": "to see a retry and the DLQ"},
    "http.request": {
        "url": "https://hooks.example.com/signup",
        "method": "POST",
        "headers": {"Authorization": "Bearer s3cret"},
        "secretHeaders": ["Authorization"],
        "payload": {"event": "signup", "at": "{{$timestamp}}", "id": "{{$uuid}}"},
        "expectedStatus": "2xx",
    },
    "log.message": {
        "level": "warn",
        "message": "Login failed for john",
        "category": "authentication",
        "metadata": {"user": "john"},
    },
    "mail.send": {
        "credential": "sendgrid",
        "to": "ann@example.com",
        "subject": "Hello",
        "text": "Hello Ann",
    },
    "process.batch": {"items": [1, 2, 3, 4, 5], "batchSize": 2},
    "process.data": {"operation": "aggregate", "size": 1000, "seed": 1},
    "ssh.command": {"host": "deploy.example.com", "credential": "deploy", "command": "uptime"},
    "workflow.expand": {"runId": "0b7c2a52-8c1e-4a3e-9a57-3f0f5b1d2c4e", "step": "each"},
    "workflow.run": {"runId": "0b7c2a52-8c1e-4a3e-9a57-3f0f5b1d2c4e"},
}

# Definitions the server submits itself; a client has no reason to.
INTERNAL = {
    "workflow.expand": "submitted by `POST /v1/workflows/{id}/runs`, not by clients",
    "workflow.run": "submitted by `POST /v1/workflows/{id}/runs`, not by clients",
}

HEADER = """# Job types

The definitions shipped with the server (`definitions/`), generated from the registry by
`python -m jobserver.docsgen` (`scripts/gen-docs`); a test fails when this page is stale, and
another runs the API's params checks on every example below. Submit one with
`POST /v1/jobs {"definitionKey": KEY, "params": {...}}`; `maxAttempts` and `timeoutSeconds`
on a job may lower the definition's own values, never raise them. Types marked *outbound* reach
the network through the outbound policy and need a token with the `outbound` capability (see
[security.md](security.md)). To write your own, see the README's "Writing a definition".
"""


def definitions() -> list[Definition]:
    """The shipped ones only: the registry is process-wide, and whatever else the process
    imported (a test's definitions, `--module` ones) registered there too."""
    shipped = [
        d for d in load_modules().all() if d.run.__module__.startswith(BUILTIN_PACKAGE + ".")
    ]
    return sorted(shipped, key=lambda d: (d.key, d.version))


def render() -> str:
    out = [HEADER]
    defs = definitions()
    out.append("| type | what it does |\n| --- | --- |")
    out += [f"| [`{d.ref}`](#{_anchor(d.ref)}) | {d.description} |" for d in defs]
    out.append("")
    for d in defs:
        out.append(_section(d))
    return "\n".join(out).rstrip() + "\n"


def _anchor(ref: str) -> str:
    return "".join(c for c in ref.lower() if c.isalnum() or c in "-_")


def _section(d: Definition) -> str:
    lines = [f"## {d.ref}", "", d.description, ""]
    facts = [f"attempts: {d.default_max_attempts}"]
    facts.append(f"timeout: {d.timeout_seconds:g} s" if d.timeout_seconds else "timeout: none")
    if d.concurrency_limit:
        facts.append(f"at most {d.concurrency_limit} running fleet-wide")
    if d.rate_limit is not None:
        facts.append(f"rate limit: `{json.dumps(d.rate_limit.as_json())}`")
    if d.outbound:
        facts.append("*outbound*")
    for param, kind in sorted(d.credentials.items()):
        facts.append(f"`{param}` names a stored `{kind}` credential")
    if d.templated:
        facts.append("templated params: " + ", ".join(f"`{p}`" for p in d.templated))
    lines += ["- " + "; ".join(facts) + ".", ""]
    if d.key in INTERNAL:
        lines += [f"Internal: {INTERNAL[d.key]}.", ""]
    table = fields_table(d.params_schema)
    lines += (["Params:", "", *table] if table else ["Params: any JSON object."]) + [""]
    example = {"definitionKey": d.key, "params": EXAMPLES.get(d.key, {})}
    lines += ["Example body of `POST /v1/jobs`:", "", "```json"]
    lines += [json.dumps(example, indent=2), "```", ""]
    return "\n".join(lines)
