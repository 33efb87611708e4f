"""Templated params: `{{paths}}` and `{{$macros}}` in JSON values (webhook payloads first,
then mail and SSH params).

- `render(value, context, *, macros=None, limits=Limits())`: `value` (dicts, lists, strings,
  numbers, bools, None) with each placeholder in its strings replaced:
  - `{{a.b.c}}` is a path into `context` (the caller builds it: the job's sources, its params,
    schedule and run info). Segments are identifiers (letters, digits, `_`, `-`) or list indexes
    (`{{users.0.email}}`); whitespace inside the braces is allowed (`{{ user.name }}`). Only dict
    keys and list indexes are followed, never attributes (`{{__class__}}` is a missing key).
  - Typing rule: a string that is exactly one placeholder keeps the value's JSON type
    (`"{{user}}"` -> the object, `"{{count}}"` -> 3). Inside other text a value is stringified:
    strings as is, numbers, bools and null as JSON (`3.5`, `true`, `null`), objects and arrays
    as compact JSON. A typed value is the context's own object, not a copy.
  - Macros: `$timestamp` (RFC 3339 UTC, `2026-12-02T01:02:03.456Z`), `$today` (`YYYY-MM-DD`),
    `$uuid` (uuid4), `$randomInt` (0-999) and `$randomFloat` (0-1). One render is one run:
    `$timestamp` and `$today` show one instant throughout a render; `$uuid` and the randoms are
    fresh at every occurrence (see `jobserver.templating.macros`). An unknown macro is an error.
  - Escaping: `\\{{` is a literal `{{` (the backslash is dropped). A lone `{` or `}` is text; a
    `{{` that opens no valid placeholder is an error, never text sent as is.
  - Keys of objects are not templated: only string values are.
  - Errors: `TemplateError` naming the placeholder and the JSON path of the string it sits in
    (`payload.items[2].name`), for a missing path (never an empty string), bad syntax, an
    unknown macro, or a bound passed: `Limits.max_output_bytes` (1 MiB, the JSON size of the
    result), `max_depth` (32) and `max_placeholders` (10,000).
  - A value with no `{{` anywhere comes back as the same object; dicts and lists are copied
    only where something changed.
- `placeholders(value)`: every `Placeholder` (expression, location), for checks at submission.
- `check_known(value, context, known_roots)`: a `TemplateError` for a placeholder whose root is
  in `known_roots` (e.g. `params`) but whose path `context` lacks; other roots (`sources`) wait
  for the run.

Why not a library: Jinja2 (even sandboxed) renders every template to text, so it has no
typing rule (`"{{count}}"` staying a number, `"{{user}}"` an object) and no `$name` syntax;
its sandbox still evaluates expressions and attribute access, more surface than a path lookup
needs. chevron and pystache are Mustache: text only, and a missing key renders as an empty
string, the very silent failure the issue forbids. The syntax here is one regex and a dict
walk, so a small renderer on one compiled regex is both smaller and stricter than bending a
library to it.

Emits nothing (no events, no metrics): callers turn a `TemplateError` into a 422 at
submission or a failed attempt at run time.
"""

from jobserver.templating.errors import TemplateError
from jobserver.templating.macros import Macros
from jobserver.templating.render import Limits, check_known, render
from jobserver.templating.syntax import Placeholder, placeholders

__all__ = [
    "Limits",
    "Macros",
    "Placeholder",
    "TemplateError",
    "check_known",
    "placeholders",
    "render",
]
