"""What submission can know about templated params: every problem as (field path, message)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jobserver.rendering.context import (
    JOB_KEYS,
    RESERVED_ROOTS,
    path_tuple,
    source_specs,
    templated_part,
)
from jobserver.sources.spec import SourceError
from jobserver.templating import TemplateError, check_known, placeholders

Problem = tuple[tuple[str | int, ...], str]

_JOB_SHAPE: dict[str, Any] = {key: "" for key in JOB_KEYS} | {"tags": []}


def check_submission(params: Mapping[str, Any], keys: Iterable[str]) -> list[Problem]:
    """Problems of the templated `keys` of `params` that are certain before the run: a bad
    source, bad syntax, an unknown macro, a root that is neither a source nor `params`, `job`
    or `schedule`, a missing path under `params` or `job`. Source data and `schedule` are
    known only at run time."""
    try:
        specs = source_specs(params)
    except SourceError as e:
        return [(path_tuple(e.path), e.message)]
    part = templated_part(params, keys)
    try:
        for found in placeholders(part):
            if found.is_macro or found.root in specs or found.root in RESERVED_ROOTS:
                continue
            if specs:
                known = "the sources " + ", ".join(sorted(specs)) + " or "
            else:
                known = "(no sources: set useSources and sources) "
            raise TemplateError(
                "{{" + found.expression + "}}",
                f"unknown name {found.root!r}: a placeholder starts with {known}"
                "params, job, schedule or parents",
                found.location,
            )
        check_known(part, {"params": params, "job": _JOB_SHAPE}, {"params", "job"})
    except TemplateError as e:
        return [(path_tuple(e.location), str(e))]
    return []
