"""Stored workflows: checking a workflow's steps, and what a run of it is made of.

A workflow is a named DAG of steps (API field names):

- `name` (unique in the workflow), `jobType` (`key` or `key@version`: a definition),
- `params`, templated from `{{input...}}` (the run's inputData), `{{steps.<name>.result...}}`
  and `{{steps.<name>.status}}` of an ancestor step (for a forEach step its result is the list
  of its children's results, in item order), and `{{item}}` / `{{index}}` in a forEach step;
  `\\{{` passes a literal `{{` on to the job (for job types that template their own params),
- `dependsOn` (step names), `maxAttempts` or `retries` (= maxAttempts - 1), `timeoutSeconds`
  (within the definition's, as for any job), `onParentFailure` ('cancel' | 'continue'),
- `forEach`: `input.<path>` or `steps.<name>.result<.path>` (with or without `{{ }}`): one
  child job per item of that list; the steps after it wait for every child (fan-in).

`check_steps` refuses a bad workflow with a `RuleError` naming the field (`steps[2].dependsOn[0]`):
a repeated name, an unknown step, a cycle, a placeholder naming something the step cannot
see. The API adds the definition checks (`jobType` known, attempts and timeout within it,
params against its schema when they hold no placeholder).

A step is *eager* when everything it reads is known when the run starts (the input): its
jobs are inserted with the run. Otherwise it is *lazy*: an expander job (`workflow.expand@1`)
stands in for it, depending on the step's parents, and when it runs it renders the params
with the parents' results and inserts the step's jobs (see `jobserver.core.workflow_runs`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from jobserver.core.errors import RuleError
from jobserver.templating import TemplateError, placeholders, render
from jobserver.templating.syntax import strings

MAX_STEPS = 100
MAX_FOREACH_ITEMS = 10_000
STEP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
ROOTS = ("input", "steps", "item", "index")
EXPAND_KEY, EXPAND_VERSION = "workflow.expand", 1
RUN_KEY, RUN_VERSION = "workflow.run", 1


def job_type(value: str, where: str) -> tuple[str, int | None]:
    """(key, version) of `key` or `key@version`."""
    key, sep, version = value.partition("@")
    if not sep:
        return key, None
    if not version.isdigit() or int(version) < 1 or len(version) > 9:
        raise RuleError(where, f"{value!r}: the version after @ must be a positive integer")
    return key, int(version)


def for_each_path(expr: str) -> str:
    """The path a forEach expression names (`{{input.files}}` -> `input.files`)."""
    expr = expr.strip()
    if expr.startswith("{{") and expr.endswith("}}"):
        expr = expr[2:-2].strip()
    return expr


def step_refs(step: Mapping[str, Any]) -> set[str]:
    """The steps whose outcome `step` reads (in its params or its forEach)."""
    refs: set[str] = set()
    for p in placeholders(step.get("params", {})):
        if p.root == "steps":
            parts = p.expression.split(".")
            if len(parts) > 1:
                refs.add(parts[1])
    fe = step.get("forEach")
    if fe is not None:
        parts = for_each_path(fe).split(".")
        if parts[0] == "steps" and len(parts) > 1:
            refs.add(parts[1])
    return refs


def is_lazy(step: Mapping[str, Any]) -> bool:
    """Whether the step waits for its parents' results before its jobs can be made."""
    return bool(step_refs(step))


def order(steps: Sequence[Mapping[str, Any]]) -> list[str]:
    """Step names parents first (the steps are checked: no cycle)."""
    deps = {s["name"]: list(s.get("dependsOn", ())) for s in steps}
    done: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for d in deps[name]:
            visit(d)
        done.append(name)

    for s in steps:
        visit(s["name"])
    return done


def ancestors(steps: Sequence[Mapping[str, Any]]) -> dict[str, set[str]]:
    deps = {s["name"]: list(s.get("dependsOn", ())) for s in steps}
    out: dict[str, set[str]] = {}
    for name in order(steps):
        acc: set[str] = set()
        for d in deps[name]:
            acc.add(d)
            acc |= out[d]
        out[name] = acc
    return out


def check_steps(steps: Sequence[Mapping[str, Any]]) -> None:
    """A `RuleError` naming the first field at fault (see the module doc)."""
    if not steps:
        raise RuleError("steps", "a workflow needs at least one step")
    index: dict[str, int] = {}
    for i, s in enumerate(steps):
        name = s["name"]
        if not STEP_NAME.match(name):
            raise RuleError(
                f"steps[{i}].name", "letters, digits, _ and -, starting with a letter or _"
            )
        if name in index:
            raise RuleError(f"steps[{i}].name", f"step {name!r} is already steps[{index[name]}]")
        index[name] = i
        if "maxAttempts" in s and "retries" in s:
            raise RuleError(f"steps[{i}].retries", "give maxAttempts or retries, not both")
    for i, s in enumerate(steps):
        for j, d in enumerate(s.get("dependsOn", ())):
            if d not in index:
                raise RuleError(f"steps[{i}].dependsOn[{j}]", f"unknown step {d!r}")
            if d == s["name"]:
                raise RuleError(f"steps[{i}].dependsOn[{j}]", "a step cannot depend on itself")
            if list(s["dependsOn"]).index(d) != j:
                raise RuleError(f"steps[{i}].dependsOn[{j}]", f"step {d!r} is named twice")
    _check_acyclic(steps, index)
    anc = ancestors(steps)
    for i, s in enumerate(steps):
        _check_placeholders(s, i, anc[s["name"]])


def _check_acyclic(steps: Sequence[Mapping[str, Any]], index: Mapping[str, int]) -> None:
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(name: str) -> None:
        state[name] = 1
        i = index[name]
        for j, d in enumerate(steps[i].get("dependsOn", ())):
            if state.get(d) == 1:
                raise RuleError(f"steps[{i}].dependsOn[{j}]", f"depending on {d!r} makes a cycle")
            if d not in state:
                visit(d)
        state[name] = 2

    for s in steps:
        if s["name"] not in state:
            visit(s["name"])


def _check_placeholders(s: Mapping[str, Any], i: int, visible: set[str]) -> None:
    where = f"steps[{i}]"
    fe = s.get("forEach")
    if fe is not None:
        parts = for_each_path(fe).split(".")
        if parts[0] == "input":
            pass
        elif parts[0] == "steps" and len(parts) > 2 and parts[2] == "result":
            if parts[1] not in visible:
                raise RuleError(
                    f"{where}.forEach", f"step {parts[1]!r} is not among this step's parents"
                )
        else:
            raise RuleError(
                f"{where}.forEach",
                "names a list: input.<path> or steps.<name>.result<.path>",
            )
    try:
        found = list(placeholders(s.get("params", {})))
    except TemplateError as e:
        raise RuleError(f"{where}.params", str(e)) from None
    for p in found:
        if p.is_macro:
            continue
        field = f"{where}.params" + (f".{p.location}" if p.location else "")
        if p.root not in ROOTS:
            raise RuleError(
                field,
                f"{{{{{p.expression}}}}}: a placeholder starts with input, steps, item or index",
            )
        if p.root in ("item", "index") and fe is None:
            raise RuleError(field, f"{{{{{p.expression}}}}}: only a forEach step has items")
        if p.root == "steps":
            parts = p.expression.split(".")
            if len(parts) < 3 or parts[2] not in ("result", "status"):
                raise RuleError(field, "write steps.<name>.result... or steps.<name>.status")
            if parts[1] not in visible:
                raise RuleError(
                    field, f"step {parts[1]!r} is not among this step's parents (dependsOn)"
                )


def has_placeholders(params: Any) -> bool:
    return next(strings(params), None) is not None


def for_each_items(step: Mapping[str, Any], context: Mapping[str, Any]) -> list[Any]:
    """The list a forEach step fans out over; `ValueError` when it is not a bounded list."""
    expr = for_each_path(step["forEach"])
    try:
        items = render("{{" + expr + "}}", context)
    except TemplateError as e:
        raise ValueError(f"forEach {expr}: {e}") from None
    if not isinstance(items, list):
        raise ValueError(f"forEach {expr}: is {type(items).__name__}, not a list")
    if len(items) > MAX_FOREACH_ITEMS:
        raise ValueError(f"forEach {expr}: {len(items)} items, over {MAX_FOREACH_ITEMS}")
    return items


def step_params(
    step: Mapping[str, Any], context: Mapping[str, Any], item: Any = None, index: int = -1
) -> Any:
    """The step's params rendered (`TemplateError` for a missing path)."""
    params = step.get("params", {})
    if index >= 0:
        context = {**context, "item": item, "index": index}
    return render(params, context)


def max_attempts_of(step: Mapping[str, Any]) -> int | None:
    if "retries" in step:
        return int(step["retries"]) + 1
    value = step.get("maxAttempts")
    return None if value is None else int(value)
