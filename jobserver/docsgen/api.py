"""docs/api.md: the API reference, rendered from the OpenAPI document the API serves.

One section per path and method, in route-table order: summary, the scope a token needs, the
path and query parameters, the request body's top-level fields, the success answer's top-level
fields and the error statuses. The full schemas stay in `GET /openapi.json`.
"""

from __future__ import annotations

from typing import Any

from jobserver.api.openapi import build_openapi
from jobserver.api.routes import all_routes
from jobserver.docsgen.schema_text import cell, fields_table, type_text

SCOPES = {
    "public": "public (no token)",
    "submit": "any token (a plain token: its own owner's jobs only)",
    "view_jobs": "`view_jobs` (or `manage_jobs`)",
    "manage_jobs": "`manage_jobs`",
}

HEADER = """# API reference

Generated from `GET /openapi.json` by `python -m jobserver.docsgen` (`scripts/gen-docs`);
a test fails when this page is stale. Every route answers errors as
`{"error": "...", "code": "...", "field": "..."}` (`field` when one is at fault). The scope
is what the bearer token needs (see [security.md](security.md)). Only the top-level fields
of bodies and answers are listed here; `/openapi.json` has the full schemas.
"""


def render(document: dict[str, Any] | None = None) -> str:
    doc = document if document is not None else build_openapi(all_routes())
    out = [HEADER]
    tags: dict[str, list[str]] = {}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            tag = (op.get("tags") or ["other"])[0]
            tags.setdefault(tag, []).append(
                f"- [`{method.upper()} {path}`](#{_anchor(method, path)})"
            )
    out.append("## Contents\n")
    for tag, links in tags.items():
        out.append(f"**{tag}**: " + ", ".join(link[2:] for link in links) + "\n")
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            out.append(_operation(method, path, op))
    return "\n".join(out).rstrip() + "\n"


def _anchor(method: str, path: str) -> str:
    """The id of an operation's heading, as GitHub derives it from `METHOD path`."""
    text = f"{method} {path}".lower()
    return "".join(c for c in text.replace(" ", "-") if c.isalnum() or c in "-_")


def _operation(method: str, path: str, op: dict[str, Any]) -> str:
    lines = [f"### {method.upper()} {path}", "", f"{op.get('summary', '')}", ""]
    scope = op.get("x-scope", "public")
    lines.append(f"Scope: {SCOPES.get(scope, f'`{scope}`')}.")
    lines.append("")
    params = op.get("parameters", [])
    if params:
        lines += ["| parameter | in | type | description |", "| --- | --- | --- | --- |"]
        for p in params:
            desc = p.get("description", p["schema"].get("description", ""))
            lines.append(
                f"| `{p['name']}` | {p['in']} | {cell(type_text(p['schema']))} | {cell(desc)} |"
            )
        lines.append("")
    body = op.get("requestBody")
    if body:
        for media, content in body["content"].items():
            lines.append(f"Body (`{media}`{'' if body.get('required') else ', optional'}):")
            lines.append("")
            table = fields_table(content.get("schema"))
            lines += (table or [f"{cell(type_text(content.get('schema')))}"]) + [""]
    responses = op.get("responses", {})
    shown: dict[str, str] = {}  # the status first documenting each answer body
    for status, answer in responses.items():
        if "$ref" in answer:
            continue
        content = answer.get("content", {})
        same = shown.get(repr(content)) if content else None
        lines.append(f"**{status}** {answer.get('description', '')}" + (":" if content else "."))
        lines.append("")
        if same is not None:
            lines += [f"The same fields as **{same}**.", ""]
            continue
        shown[repr(content)] = status
        for media, c in content.items():
            table = fields_table(c.get("schema"))
            lines += (table or [f"`{media}`: {cell(type_text(c.get('schema')))}"]) + [""]
    errors = [s for s, a in responses.items() if "$ref" in a]
    if errors:
        lines += ["Errors: " + ", ".join(errors) + ".", ""]
    return "\n".join(lines)
