"""Runs of stored workflows: the jobs a run starts with, what an expander adds, how a run ends.

A run is ordinary jobs with dependencies (`jobserver.db.dependencies`), all built by
`jobserver.core.submission.build_job` and inserted by `jobserver.db.jobs` (the one write path):

- at start (`start_jobs`, one transaction with the run row): each eager step's job, or one
  child per item for a forEach over the input; for each lazy step an expander job
  (`workflow.expand@1`); and the run's own job (`workflow.run@1`), which depends on the sink
  steps (the ones nothing depends on) with policy 'continue'. A step's jobs depend on what
  stands for each of its parents: the parent's jobs, or its expander until it has them.
- an expander (`expand_step`, one transaction) renders the step with its parents' results,
  inserts its jobs (none when they are there already: a retried expander adds nothing), and
  makes whatever waited for the expander wait for those jobs too (`add_parents`).
- the run's job (`finish_run`) ends the run: succeeded with the sinks' results when every
  sink step succeeded, else failed (PermanentError, one attempt) naming the steps that did not.

A run's derived status (`run_status`): the run job's end (succeeded -> completed, failed,
cancelled or expired -> failed/cancelled), else running once any of its jobs started, else
pending.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from jobserver.core import workflows as wf
from jobserver.core.errors import RuleError
from jobserver.core.rate_limits import RateLimit
from jobserver.core.submission import DefinitionRules, build_job
from jobserver.db import workflows as db
from jobserver.db.definitions import definition_get
from jobserver.db.dependencies import NotWaiting, add_parents
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.templating import TemplateError
from jobserver.validation import compile_schema_cached

EXPANDER_ATTEMPTS = 5
RUN_ITEM = -1  # workflow_run_jobs.item of a step's one job (not a forEach child)


@dataclass(frozen=True)
class PlanRules:
    """The `DefinitionRules` of a step as its run resolved it (for a job made later)."""

    key: str
    version: int
    default_max_attempts: int
    timeout_seconds: float | None
    check_params: Callable[[Any], Any]
    rate_limit: RateLimit | None = None


@dataclass
class Start:
    """What a run starts with: its jobs (in insert order), its workflow_run_jobs rows and
    the run's own job."""

    jobs: list[NewJob] = field(default_factory=list)
    rows: list[tuple[str, str, int, uuid.UUID]] = field(default_factory=list)
    run_job: NewJob | None = None


def plan_entry(
    step: Mapping[str, Any], rules: DefinitionRules, retry_delays: Sequence[float] | None = None
) -> dict[str, Any]:
    """A step of a run's plan: the step with its definition resolved (and the run's retry
    delays, which its jobs get, the ones an expander makes later too)."""
    return {
        "retryDelays": None if retry_delays is None else list(retry_delays),
        "name": step["name"],
        "key": rules.key,
        "version": rules.version,
        "defaultMaxAttempts": rules.default_max_attempts,
        "definitionTimeout": rules.timeout_seconds,
        "maxAttempts": wf.max_attempts_of(step),
        "timeoutSeconds": step.get("timeoutSeconds"),
        "params": step.get("params", {}),
        "dependsOn": list(step.get("dependsOn", ())),
        "forEach": step.get("forEach"),
        "onParentFailure": step.get("onParentFailure", "cancel"),
        "lazy": wf.is_lazy(step),
    }


def _item(entry: Mapping[str, Any], params: Any, priority: int) -> dict[str, Any]:
    """The submission (API field names) one job of a step stands for."""
    item: dict[str, Any] = {
        "definitionKey": entry["key"],
        "definitionVersion": entry["version"],
        "params": params,
        "priority": priority,
    }
    if entry.get("maxAttempts") is not None:
        item["maxAttempts"] = entry["maxAttempts"]
    if entry.get("timeoutSeconds") is not None:
        item["timeoutSeconds"] = entry["timeoutSeconds"]
    if entry.get("retryDelays") is not None:
        item["retryDelays"] = entry["retryDelays"]
    return item


def _step_jobs(
    entry: Mapping[str, Any],
    context: Mapping[str, Any],
    rules: DefinitionRules,
    owner: str,
    priority: int,
    now: dt.datetime,
    where: str,
) -> list[tuple[int, NewJob]]:
    """(item, job) of a step rendered in `context`; RuleError naming `where` when a value is
    missing or breaks the definition's rules."""
    if entry.get("forEach") is not None:
        try:
            items = wf.for_each_items(entry, context)
        except ValueError as e:
            raise RuleError(f"{where}.forEach", str(e)) from None
        pairs = [(i, x) for i, x in enumerate(items)]
    else:
        pairs = [(RUN_ITEM, None)]
    out = []
    for i, x in pairs:
        try:
            params = wf.step_params(entry, context, x, i)
        except TemplateError as e:
            raise RuleError(f"{where}.params", str(e)) from None
        try:
            job = build_job(_item(entry, params, priority), None, rules, owner, now)
        except RuleError as e:
            raise RuleError(f"{where}.{e.field}" if e.field else where, e.message) from None
        job.name = entry["name"] if i == RUN_ITEM else f"{entry['name']}[{i}]"
        job.on_parent_failure = entry["onParentFailure"]
        out.append((i, job))
    return out


def _expander(entry: Mapping[str, Any], run_id: uuid.UUID, owner: str, priority: int) -> NewJob:
    return NewJob(
        definition_key=wf.EXPAND_KEY,
        definition_version=wf.EXPAND_VERSION,
        max_attempts=EXPANDER_ATTEMPTS,
        params={"runId": str(run_id), "step": entry["name"]},
        owner=owner,
        priority=priority,
        name=f"{entry['name']}:expand",
        on_parent_failure=entry["onParentFailure"],
    )


def sinks(plan: Sequence[Mapping[str, Any]]) -> list[str]:
    used = {d for e in plan for d in e["dependsOn"]}
    return [e["name"] for e in plan if e["name"] not in used]


def start_jobs(
    plan: Sequence[Mapping[str, Any]],
    rules: Mapping[str, DefinitionRules],
    input_data: Any,
    run_id: uuid.UUID,
    run_job_id: uuid.UUID,
    owner: str,
    priority: int,
    now: dt.datetime,
) -> Start:
    """The jobs a run starts with (see the module doc); `plan` is parents first. RuleError
    naming `steps[i]...` when an eager step cannot be rendered from the input."""
    start = Start()
    gates: dict[str, list[uuid.UUID]] = {}  # step -> the jobs its dependents wait for
    context = {"input": input_data}
    for i, entry in enumerate(plan):
        parents = [p for d in entry["dependsOn"] for p in gates[d]]
        name = entry["name"]
        if entry["lazy"]:
            job = _expander(entry, run_id, owner, priority)
            job.depends_on = parents or None
            start.jobs.append(job)
            start.rows.append(("expand", name, RUN_ITEM, job.id))
            gates[name] = [job.id]
            continue
        made = _step_jobs(entry, context, rules[name], owner, priority, now, f"steps[{i}]")
        for item, job in made:
            job.depends_on = parents or None
            start.jobs.append(job)
            start.rows.append(("step", name, item, job.id))
        gates[name] = [job.id for _, job in made]
    start.run_job = NewJob(
        definition_key=wf.RUN_KEY,
        definition_version=wf.RUN_VERSION,
        max_attempts=1,
        params={"runId": str(run_id)},
        owner=owner,
        priority=priority,
        id=run_job_id,
        name="run",
        depends_on=[p for s in sinks(plan) for p in gates[s]] or None,
        on_parent_failure="continue",
    )
    start.jobs.append(start.run_job)
    return start


def fingerprint_item(workflow_id: uuid.UUID, body: Mapping[str, Any]) -> dict[str, Any]:
    """What a run's idempotency fingerprint covers."""
    item = {
        "workflowId": str(workflow_id),
        "inputData": body.get("inputData"),
        "priority": body.get("priority", 0),
    }
    if body.get("retryDelays") is not None:  # only then: stored fingerprints stay the same
        item["retryDelays"] = body["retryDelays"]
    return item


# -- at run time (the expander and the run's job) ------------------------------------------------


class StepFailed(Exception):
    """The run ended without every sink step succeeding (the run's job fails with it)."""


def _outcomes(plan: Sequence[Mapping[str, Any]], rows: Sequence[asyncpg.Record]) -> dict[str, Any]:
    """{step: {"result", "status"}}: a forEach step's result is its children's, in order."""
    by_step: dict[str, list[asyncpg.Record]] = {}
    for r in rows:
        by_step.setdefault(r["step"], []).append(r)
    out: dict[str, Any] = {}
    for e in plan:
        found = by_step.get(e["name"], [])
        if e.get("forEach") is not None:
            statuses = [r["status"] for r in found]
            status = "succeeded" if all(s == "succeeded" for s in statuses) else "failed"
            out[e["name"]] = {"result": [r["result"] for r in found], "status": status}
        elif found:
            out[e["name"]] = {"result": found[0]["result"], "status": found[0]["status"]}
    return out


async def _rules(conn: asyncpg.Connection, entry: Mapping[str, Any]) -> PlanRules:
    row = await definition_get(conn, entry["key"], entry["version"])
    schema = row["params_schema"] if row is not None else None
    return PlanRules(
        entry["key"],
        entry["version"],
        entry["defaultMaxAttempts"],
        entry["definitionTimeout"],
        compile_schema_cached(schema),
        RateLimit.from_json(row["rate_limit"]) if row is not None else None,
    )


async def expand_step(conn: asyncpg.Connection, run_id: uuid.UUID, step: str) -> int:
    """Make a lazy step's jobs (one transaction); returns how many it inserted (0 when they
    were made already or the run was cancelled). ValueError for a step that cannot be
    rendered from its parents' outcomes (the expander fails for good)."""
    async with conn.transaction():
        run = await db.workflow_run_get(conn, run_id, share=True)
        if run is None:
            raise ValueError(f"run {run_id} does not exist")
        if run["cancelled_at"] is not None or await db.workflow_step_lock(conn, run_id, step):
            return 0
        plan: list[dict[str, Any]] = run["plan"]
        index = {e["name"]: i for i, e in enumerate(plan)}
        entry = plan[index[step]]
        refs = sorted(wf.step_refs(entry))
        outcomes = _outcomes(plan, await db.workflow_step_outcomes(conn, run_id, refs))
        context = {"input": run["input_data"], "steps": outcomes}
        try:
            made = _step_jobs(
                entry,
                context,
                await _rules(conn, entry),
                run["owner"],
                run["priority"],
                dt.datetime.now(dt.UTC),
                f"steps[{index[step]}]",
            )
        except RuleError as e:
            raise ValueError(f"{e.field}: {e.message}") from None
        parents = [
            g["job_id"] for g in await db.workflow_step_gates(conn, run_id, entry["dependsOn"])
        ]
        for _, job in made:
            job.depends_on = parents or None  # all ended or ending: kept for ctx.parents()
        await job_insert_many(conn, [job for _, job in made])
        await db.workflow_run_jobs_insert(
            conn, run_id, [("step", step, item, job.id) for item, job in made]
        )
        ids = [job.id for _, job in made]
        waiting = [e["name"] for e in plan if step in e["dependsOn"]]
        targets = [g["job_id"] for g in await db.workflow_step_gates(conn, run_id, waiting)]
        if step in sinks(plan):
            targets.append(run["job_id"])
        for target in targets:
            # a target settled already (cancelled by another parent, or the run) is left be
            with contextlib.suppress(NotWaiting):
                await add_parents(conn, target, ids)
        return len(ids)


async def finish_run(conn: asyncpg.Connection, run_id: uuid.UUID) -> dict[str, Any]:
    """The run's result: the sink steps' results; StepFailed when one did not succeed."""
    run = await db.workflow_run_get(conn, run_id)
    if run is None:
        raise StepFailed(f"run {run_id} does not exist")
    plan = run["plan"]
    ends = sinks(plan)
    outcomes = _outcomes(plan, await db.workflow_step_outcomes(conn, run_id, ends))
    bad = [s for s in ends if outcomes.get(s, {}).get("status") != "succeeded"]
    lazy_empty = [s for s in bad if s not in outcomes]
    if bad:
        detail = ", ".join(
            f"{s} ({'not made' if s in lazy_empty else outcomes[s]['status']})" for s in bad
        )
        raise StepFailed(f"steps did not succeed: {detail}")
    return {"status": "completed", "results": {s: outcomes[s]["result"] for s in ends}}


def run_status(run: asyncpg.Record, any_started: bool) -> str:
    """The derived status of a run (see the module doc)."""
    s = run["job_status"]
    if s == "succeeded":
        return "completed"
    if s in ("failed", "expired"):
        return "failed"
    if s == "cancelled" or run["cancelled_at"] is not None:
        return "cancelled"
    return "running" if any_started else "pending"


def step_status(statuses: Sequence[str | None], for_each: bool) -> str:
    """A step's status from its jobs': one job's own; a fan-out's summary."""
    if not for_each:
        return statuses[0] or "pruned"
    if not statuses or all(s == "succeeded" for s in statuses):
        return "succeeded"
    for s in ("failed", "cancelled", "expired", "running", "cancelling", "queued"):
        if s in statuses:
            return s
    return "waiting"
