"""Stored mail templates, rendered with Jinja2's sandbox.

A template has a `subject`, and a `text` and/or an `html` part. Each part is a Jinja2
template rendered in an `ImmutableSandboxedEnvironment` (no attribute of Python internals, no
mutation of the variables) with `StrictUndefined`, so a missing variable is an error naming
it, never an empty string. Only the `html` part is autoescaped: `{{ name }}` there is HTML-
escaped, while the text part and the subject keep the value as is (`| safe` marks trusted
HTML). The job's `variables` (an object) are the template's context.

- `check_syntax(field, source)`: `TemplateProblem(field, "line N: message")` for bad syntax
  (create and update answer it as a 422 naming the field);
- `render_template(parts, variables)`: the rendered parts, or `TemplateProblem` naming the part
  and what went wrong (a missing variable, a sandbox refusal, a bound passed). Blocking: the
  worker and the dry run call it in a thread.

Bounds: a part's source is at most `MAX_SUBJECT_CHARS` / `MAX_BODY_CHARS` (the API schema says
the same), a rendered part at most `MAX_RENDERED_CHARS`, `range()` at most `MAX_RANGE` items,
and one render at most `RENDER_SECONDS`: the clock is read at each output chunk, attribute or
item lookup, call and `range` step, so a runaway loop stops there. Templates are written by
`manage_jobs` tokens; the variables come from any submitter and are data only.

Why Jinja2 and not the `{{paths}}` renderer of `jobserver.templating`: templates are text with
loops, conditions and filters (a list of order lines, a greeting if a name is known), which
that renderer deliberately does not have; the job's own params still use it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg
    from jinja2 import Template
    from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_SUBJECT_CHARS = 2000
MAX_BODY_CHARS = 256 * 1024
MAX_RENDERED_CHARS = 2 * 1024 * 1024
MAX_RANGE = 10_000
RENDER_SECONDS = 5.0
PARTS = ("subject", "text", "html")


class TemplateProblem(ValueError):
    """A template that cannot be compiled or rendered; `field` is the part (`subject`, `text`,
    `html`), `reason` the message without it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class TemplateParts:
    subject: str
    text: str | None = None
    html: str | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any] | asyncpg.Record) -> TemplateParts:
        """The parts of a `mail_templates` row."""
        return cls(row["subject"], row["text"], row["html"])


class _Budget(threading.local):
    deadline: float = float("inf")


_budget = _Budget()


def _tick() -> None:
    if time.monotonic() > _budget.deadline:
        raise TemplateProblem("", f"rendering took longer than {RENDER_SECONDS:g} s")


def _bounded_range(*args: int) -> Iterator[int]:
    values = range(*args)
    if len(values) > MAX_RANGE:
        raise TemplateProblem("", f"range() of more than {MAX_RANGE} items")
    for n in values:
        _tick()
        yield n


def _environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Environment(ImmutableSandboxedEnvironment):
        """The sandbox, with the render clock read at every lookup and call."""

        def getattr(self, obj: Any, attribute: str) -> Any:
            _tick()
            return super().getattr(obj, attribute)

        def getitem(self, obj: Any, argument: Any) -> Any:
            _tick()
            return super().getitem(obj, argument)

        def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
            _tick()
            return super().call(context, obj, *args, **kwargs)

    env = Environment(autoescape=autoescape, undefined=StrictUndefined, keep_trailing_newline=True)
    env.globals["range"] = _bounded_range
    return env


@lru_cache(maxsize=2)
def _env(autoescape: bool) -> ImmutableSandboxedEnvironment:
    return _environment(autoescape)


@lru_cache(maxsize=64)
def _compiled(field: str, source: str) -> Template:
    """`source` compiled (HTML autoescaped for the `html` part); TemplateProblem on bad syntax."""
    from jinja2 import TemplateSyntaxError

    try:
        return _env(field == "html").from_string(source)
    except TemplateSyntaxError as e:
        raise TemplateProblem(field, f"line {e.lineno}: {e.message}") from None


def check_syntax(field: str, source: str) -> None:
    """TemplateProblem naming `field` with Jinja's line and message when `source` is not a
    template."""
    _compiled(field, source)


def _render_one(field: str, source: str, variables: Mapping[str, Any]) -> str:
    from jinja2 import TemplateError as JinjaError

    template = _compiled(field, source)
    out: list[str] = []
    size = 0
    try:
        for chunk in template.generate(dict(variables)):
            size += len(chunk)
            if size > MAX_RENDERED_CHARS:
                raise TemplateProblem(field, f"renders to more than {MAX_RENDERED_CHARS} chars")
            out.append(chunk)
            _tick()
    except TemplateProblem as e:
        raise TemplateProblem(field, e.reason) from None
    except JinjaError as e:  # UndefinedError ('name' is undefined), SecurityError, ...
        raise TemplateProblem(field, f"{type(e).__name__}: {e.message or e}") from None
    except (ArithmeticError, TypeError, ValueError, LookupError, RecursionError) as e:
        raise TemplateProblem(field, f"{type(e).__name__}: {e}") from None
    return "".join(out)


def render_template(
    parts: TemplateParts,
    variables: Mapping[str, Any],
    *,
    seconds: float = RENDER_SECONDS,
) -> dict[str, str | None]:
    """Every part of `parts` rendered with `variables` (see the module docstring)."""
    _budget.deadline = time.monotonic() + seconds
    try:
        return {
            "subject": _render_one("subject", parts.subject, variables),
            "text": None if parts.text is None else _render_one("text", parts.text, variables),
            "html": None if parts.html is None else _render_one("html", parts.html, variables),
        }
    finally:
        _budget.deadline = float("inf")
