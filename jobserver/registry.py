"""Job definitions in code: the `@definition` decorator and the registry workers run from.

A definition is a coroutine `run(params, ctx)` registered under `key` and integer `version`
(`echo@1`) with its metadata: `default_max_attempts`, `timeout_seconds`, `concurrency_limit`, a
JSON Schema for params, a description, an optional back-off override and optional hooks
(`on_start`, `on_success`, `on_fail`, `on_end`, each `async (params, ctx, ...)`), and
`rate_limit` (`RateLimit(n, period_seconds, key)`: at most n starts per period, fleet-wide,
per value of `key` in the params; see `jobserver.core.rate_limits`),
`outbound=True` for one that reaches the network (submitting it is a token capability), and
`check_params`: an optional plain function `check_params(params) -> [(field path, message)]`
for the bounds JSON Schema cannot express (the total digits over a list of numbers, a size
over a chunk size). The API runs it after the schema accepted the params, for every definition
it has in code (the shipped ones), and answers the first problem as a 422 naming the field,
like a schema error; an empty list accepts. It is code, not metadata: not in the fingerprint.
A definition fails an attempt without retry by raising `PermanentError`, and asks for its
retry after a delay of its choosing (an HTTP `Retry-After`) by raising `RetryAfter(seconds,
message)`: the worker then waits that long (at most `MAX_RETRY_AFTER_SECONDS`) instead of the
back-off, when attempts remain.

`redact_params`: an optional plain function `redact_params(params) -> params` returning the
params as API answers may show them (secret header values as `***`); the API applies it to
the jobs of definitions it has in code. Like `check_params`, code, not metadata.

`credentials`: params that name a stored credential (`jobserver.credentials`), each with the
kind it must be: `{"credential": "ssh"}`. The API checks them at submission (the credential
exists and is of that kind, else a 422 naming the param; naming one needs manage_jobs, else a
403): credentials are the operators', so a job may not borrow one. The definition loads it at
run time with `load_credential`. Code, not metadata, like `check_params`. While a saved job
or schedule names a credential in one of these params, deleting it is refused (409 `in_use`).

`mail_templates`: params that name a stored mail template (`mail.send`: `template`); deleting
a template a saved job or schedule names there is refused the same way. Code, not metadata.

`check_stored`: an optional coroutine `check_stored(params, conn) -> [(field path, message)]`
for what only the database knows at submission (`mail.send`: that its `template` exists).
The API awaits it after `check_params` accepted the params (single and batch submissions,
dry runs, schedules: `jobserver.api.stored_checks`) and answers the first problem as a 422
naming the field. Code, not metadata.

`preview`: an optional coroutine `preview(rendered_params, conn) -> value`: what a run would
send, for `POST /v1/simulate` to show as its `payload` (`mail.send`: the message). It raises
`jobserver.core.errors.RuleError` naming the field for what it cannot build.

`templated`: the names of the params a definition renders before each run with
`jobserver.rendering` (`{{paths}}`, `{{$macros}}`, data sources); `POST /v1/simulate` renders
the same ones. The definition's own code calls the renderer, and its `check_params` should
include `jobserver.rendering.check_submission` so that what is wrong is a 422 at submission.

Workers run only what is registered here; `register-definitions` publishes `metadata()` of each
to the `job_definitions` table, which the API validates submissions against.

    from jobserver.registry import definition

    @definition("echo", version=1, params_schema={"type": "object"})
    async def echo(params, ctx):
        return {"message": params.get("message")}
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from jobserver.core.names import DEFINITION_KEY
from jobserver.core.rate_limits import RateLimit, rate_limit_problem
from jobserver.core.retry_delays import delays_problem

RunFn = Callable[[Any, Any], Awaitable[Any]]
HookFn = Callable[..., Awaitable[Any]]
ParamsProblem = tuple[tuple[str | int, ...], str]  # (field path inside params, message)
ParamsCheck = Callable[[Any], list[ParamsProblem]]
ParamsRedact = Callable[[Any], Any]
StoredCheck = Callable[[Any, Any], Awaitable[list[ParamsProblem]]]
Preview = Callable[[Any, Any], Awaitable[Any]]


class DefinitionError(ValueError):
    """A definition declared with bad metadata (caught at import, not at run time)."""


class PermanentError(Exception):
    """Raised by a definition's code to fail the attempt for good: no retry, whatever attempts
    remain (the job goes to `failed` and the DLQ). `code` starts the stored error text, e.g.
    `outbound_denied: 127.0.0.1 is loopback`, so clients can tell why."""

    code = "permanent_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        if code is not None:
            self.code = code
        super().__init__(f"{self.code}: {message}")


MAX_RETRY_AFTER_SECONDS = 3600.0


class RetryAfter(Exception):
    """Raised by a definition's code to fail the attempt and be retried after `seconds` (not
    the back-off), e.g. what an HTTP `Retry-After` asked for. Bounded to
    [0, MAX_RETRY_AFTER_SECONDS]; with no attempt left the job fails as for any error."""

    def __init__(self, seconds: float, message: str) -> None:
        self.seconds = min(max(float(seconds), 0.0), MAX_RETRY_AFTER_SECONDS)
        super().__init__(message)


@dataclass(frozen=True)
class Backoff:
    """Per-definition retry back-off override; None fields fall back to the settings.

    `delays` replaces the formula with explicit delays in seconds (`Backoff(delays=(0, 10,
    60))`: the retry after attempt n waits delays[n-1], the last one repeating; no jitter; see
    `jobserver.core.retry_delays`). A job's own `retryDelays` wins over it."""

    base_seconds: float | None = None
    max_seconds: float | None = None
    jitter_percent: float | None = None
    delays: tuple[float, ...] | None = None

    def as_json(self) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "baseSeconds": self.base_seconds,
            "maxSeconds": self.max_seconds,
            "jitterPercent": self.jitter_percent,
            "delays": None if self.delays is None else list(self.delays),
        }
        return {k: v for k, v in raw.items() if v is not None}


@dataclass(frozen=True)
class Definition:
    key: str
    version: int
    run: RunFn
    default_max_attempts: int = 3
    timeout_seconds: float | None = 300.0
    concurrency_limit: int | None = None
    params_schema: dict[str, Any] | None = None
    description: str = ""
    backoff: Backoff | None = None
    on_start: HookFn | None = None
    on_success: HookFn | None = None
    on_fail: HookFn | None = None
    on_end: HookFn | None = None
    outbound: bool = False  # it reaches the network: submitting it needs the outbound capability
    check_params: ParamsCheck | None = None  # bounds beyond the schema, run at submission
    redact_params: ParamsRedact | None = None  # params as API answers show them
    templated: tuple[str, ...] = ()  # params rendered before each run (jobserver.rendering)
    extra: dict[str, Any] = field(default_factory=dict)
    # params naming a stored credential -> the kind it must be (checked at submission)
    credentials: dict[str, str] = field(default_factory=dict)
    mail_templates: tuple[str, ...] = ()  # params naming a stored mail template
    check_stored: StoredCheck | None = None  # submission checks against the database
    preview: Preview | None = None  # what a run would send, for the dry run
    # at most N starts per period, fleet-wide, per key (jobserver.core.rate_limits)
    rate_limit: RateLimit | None = None

    @property
    def ref(self) -> str:
        return f"{self.key}@{self.version}"

    def metadata(self) -> dict[str, Any]:
        """What `register-definitions` stores; the fingerprint detects silent changes."""
        meta: dict[str, Any] = {
            "key": self.key,
            "version": self.version,
            "default_max_attempts": self.default_max_attempts,
            "timeout_seconds": self.timeout_seconds,
            "concurrency_limit": self.concurrency_limit,
            "params_schema": self.params_schema,
            "description": self.description,
            "backoff": self.backoff.as_json() if self.backoff else None,
        }
        if self.outbound:  # only when set: the fingerprints of other definitions stay as they were
            meta["outbound"] = True
        if self.rate_limit is not None:  # likewise
            meta["rate_limit"] = self.rate_limit.as_json()
        canonical = json.dumps(meta, sort_keys=True, separators=(",", ":"))
        meta["fingerprint"] = hashlib.sha256(canonical.encode()).hexdigest()
        return meta


def validate_definition(d: Definition) -> None:
    if not DEFINITION_KEY.matches(d.key):
        raise DefinitionError(f"definition key {d.key!r}: expected {DEFINITION_KEY.description}")
    if d.version < 1:
        raise DefinitionError(f"{d.ref}: version must be >= 1")
    if d.default_max_attempts < 1:
        raise DefinitionError(f"{d.ref}: default_max_attempts must be >= 1")
    if d.timeout_seconds is not None and d.timeout_seconds <= 0:
        raise DefinitionError(f"{d.ref}: timeout_seconds must be > 0")
    if d.concurrency_limit is not None and d.concurrency_limit < 1:
        raise DefinitionError(f"{d.ref}: concurrency_limit must be >= 1")
    if d.rate_limit is not None:
        rate_problem = rate_limit_problem(d.rate_limit)
        if rate_problem is not None:
            raise DefinitionError(f"{d.ref}: rate_limit: {rate_problem}")
    if d.backoff is not None and d.backoff.delays is not None:
        problem = delays_problem(d.backoff.delays)
        if problem is not None:
            raise DefinitionError(f"{d.ref}: backoff delays: {problem}")


def check_params_schema(d: Definition) -> None:
    """Check `params_schema` against its meta-schema (Draft 2020-12 unless `$schema` says
    otherwise) and that it compiles (ECMA-262 patterns, local `$ref`s), as the API will.

    Separate from `validate_definition` because it needs jsonschema-rs, whose import only the
    processes that publish or enforce schemas (register-definitions, `jobserver up`, the API)
    should pay: a worker never reads the schema.
    """
    if d.params_schema is None:
        return
    from jobserver.validation import schema_problem

    problem = schema_problem(d.params_schema)
    if problem is not None:
        raise DefinitionError(f"{d.ref}: invalid params_schema: {problem}")


class Registry:
    """Definitions by (key, version). The module-level `registry` is the default one."""

    def __init__(self) -> None:
        self._defs: dict[tuple[str, int], Definition] = {}
        # only the definitions with a `redact_params` hook: looking one up costs the API a
        # dict miss for every other job
        self.redactors: dict[tuple[str, int], ParamsRedact] = {}

    def add(self, d: Definition) -> Definition:
        validate_definition(d)
        existing = self._defs.get((d.key, d.version))
        if existing is not None and existing.run is not d.run:
            raise DefinitionError(f"{d.ref} is defined twice")
        self._defs[(d.key, d.version)] = d
        if d.redact_params is not None:
            self.redactors[(d.key, d.version)] = d.redact_params
        return d

    def get(self, key: str, version: int) -> Definition | None:
        return self._defs.get((key, version))

    def latest(self, key: str) -> Definition | None:
        versions = [d for (k, _), d in self._defs.items() if k == key]
        return max(versions, key=lambda d: d.version) if versions else None

    def all(self) -> list[Definition]:
        return sorted(self._defs.values(), key=lambda d: (d.key, d.version))

    def refs(self) -> list[str]:
        return [d.ref for d in self.all()]

    def __len__(self) -> int:
        return len(self._defs)

    def __contains__(self, ref: object) -> bool:
        return isinstance(ref, tuple) and ref in self._defs


registry = Registry()


def definition(
    key: str,
    version: int = 1,
    *,
    default_max_attempts: int = 3,
    timeout_seconds: float | None = 300.0,
    concurrency_limit: int | None = None,
    params_schema: dict[str, Any] | None = None,
    description: str = "",
    backoff: Backoff | None = None,
    on_start: HookFn | None = None,
    on_success: HookFn | None = None,
    on_fail: HookFn | None = None,
    on_end: HookFn | None = None,
    outbound: bool = False,
    check_params: ParamsCheck | None = None,
    redact_params: ParamsRedact | None = None,
    templated: tuple[str, ...] = (),
    credentials: dict[str, str] | None = None,
    mail_templates: tuple[str, ...] = (),
    target: Registry | None = None,
    check_stored: StoredCheck | None = None,
    preview: Preview | None = None,
    rate_limit: RateLimit | None = None,
) -> Callable[[RunFn], RunFn]:
    """Register the decorated coroutine as definition `key@version`; `outbound=True` marks one
    that calls out (through `jobserver.outbound`): only tokens with the outbound capability may
    submit it; `check_params` adds bounds the schema cannot say, `redact_params` hides
    secrets of the params in API answers and `credentials` names the params that name a
    stored credential (see the module docstring)."""

    def wrap(run: RunFn) -> RunFn:
        (registry if target is None else target).add(
            Definition(
                key=key,
                version=version,
                run=run,
                default_max_attempts=default_max_attempts,
                timeout_seconds=timeout_seconds,
                concurrency_limit=concurrency_limit,
                params_schema=params_schema,
                description=description or (run.__doc__ or "").strip().split("\n")[0],
                backoff=backoff,
                on_start=on_start,
                on_success=on_success,
                on_fail=on_fail,
                on_end=on_end,
                outbound=outbound,
                check_params=check_params,
                redact_params=redact_params,
                templated=templated,
                credentials=dict(credentials or {}),
                mail_templates=tuple(mail_templates),
                check_stored=check_stored,
                preview=preview,
                rate_limit=rate_limit,
            )
        )
        return run

    return wrap


BUILTIN_PACKAGE = "jobserver.definitions"  # the repository's definitions/, see pyproject.toml


def load_modules(
    names: Iterable[str] = (), include_builtin: bool = True, *, check_schemas: bool = True
) -> Registry:
    """Import every module of the shipped definitions (and `names`) so they register,
    then (unless `check_schemas` is false: the worker) check their params schemas."""
    if include_builtin:
        builtin = importlib.import_module(BUILTIN_PACKAGE)
        for info in pkgutil.iter_modules(builtin.__path__, f"{BUILTIN_PACKAGE}."):
            importlib.import_module(info.name)
    for name in names:
        importlib.import_module(name)
    if check_schemas:
        for d in registry.all():
            check_params_schema(d)
    return registry
