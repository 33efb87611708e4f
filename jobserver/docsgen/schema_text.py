"""JSON Schema fragments as one short line of text, for the tables of the generated pages."""

from __future__ import annotations

import json
from typing import Any


def type_text(schema: Any) -> str:
    """`string (uuid)`, `integer 1..100`, `array of string`, `"a" | "b"`, `any`."""
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    for combo in ("oneOf", "anyOf"):
        if combo in schema:
            return " or ".join(dict.fromkeys(type_text(s) for s in schema[combo]))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(type_text({**schema, "type": k}) for k in kind)
    if kind is None:
        return "any"
    if kind == "null":
        return "null"
    text = str(kind)
    if kind == "array":
        text = f"array of {type_text(schema.get('items'))}" if "items" in schema else "array"
    if "format" in schema:
        text += f" ({schema['format']})"
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None or high is not None:
        text += f" {'' if low is None else low}..{'' if high is None else high}"
    return text


def cell(text: Any) -> str:
    """A value made safe for one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def fields_table(schema: Any) -> list[str]:
    """The top-level properties of an object schema as a Markdown table (none: no lines)."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not props:
        return []
    required = set(schema.get("required", ()))
    lines = ["| field | type | required | description |", "| --- | --- | --- | --- |"]
    for name, spec in props.items():
        desc = spec.get("description", "") if isinstance(spec, dict) else ""
        if isinstance(spec, dict) and "default" in spec:
            desc = (desc + f" (default `{json.dumps(spec['default'])}`)").strip()
        req = "yes" if name in required else ""
        lines.append(f"| `{name}` | {cell(type_text(spec))} | {req} | {cell(desc)} |")
    return lines
