"""`RuleError`: a value breaks a domain rule; `field` names it as the request spells it."""

from __future__ import annotations


class RuleError(ValueError):
    """Raised by the core rules; the API renders it as 422 `{"error", "code", "field"}`.

    `field` is a path such as `jobs[3].runAt` (empty when the whole value is at fault);
    `code` is the API's error code (`validation_error`, `unknown_definition`, ...)."""

    def __init__(self, field: str, message: str, code: str = "validation_error") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.code = code


def at(where: str, name: str) -> str:
    """`name` inside `where` (`jobs[2]` + `runAt` -> `jobs[2].runAt`; `` + `runAt` -> `runAt`)."""
    return f"{where}.{name}" if where else name


def format_path(parts: list[str | int] | tuple[str | int, ...], prefix: str = "") -> str:
    """`["jobs", 3, "params", "message"]` -> `jobs[3].params.message`."""
    out = prefix
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out = f"{out}.{p}" if out else str(p)
    return out
