"""Prometheus for real: Debian's `prometheus` scrapes an API (with a bearer token), a worker and a
scheduler, loads docs/prometheus/alerts.yml, and answers `jobserver_jobs_succeeded_total` for
a job the test ran.

The server runs on loopback with docs/prometheus/prometheus.yml (its addresses, token path and
intervals replaced) and its own data directory. Every wait is a bounded poll of Prometheus's
HTTP API. The same scrapes check docs/metrics.md (the names it lists are the names the
processes serve) and that every metric the alert rules and the Grafana dashboard name exists.
`promtool` checks the rules and runs their unit tests (docs/prometheus/alerts.test.yml).
Without the binaries (apt package `prometheus`, installed by scripts/test) the tests skip.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from jobserver.auth import create_token
from jobserver.db.definitions import definition_upsert
from jobserver.docsgen.metrics import exposed_names
from jobserver.registry import load_modules
from jobserver.testing.cluster import free_port
from tests.faults.helpers import Proc, Procs
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "docs" / "prometheus"
DASHBOARD = ROOT / "docs" / "grafana" / "jobserver.json"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
OUTAGE_RULES = {"JobserverApiDown", "JobserverNoLiveWorkers", "JobserverSchedulerWithoutLeader"}
METRIC = re.compile(r"\bjobserver_[a-z_]+\b")

needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus binary")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="no promtool binary")


def rule_expressions() -> list[str]:
    """The `expr:` of every rule in alerts.yml (block scalars included), without PyYAML."""
    text = (PROMETHEUS_DIR / "alerts.yml").read_text()
    out = []
    for m in re.finditer(r"^( +)expr: ?(\|)?(.*)\n((?:\1 +.*\n)*)", text, re.M):
        out.append((m.group(3) + "\n" + m.group(4)).strip() if m.group(2) else m.group(3))
    assert out, "alerts.yml has no rules"
    return out


def dashboard_expressions() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in doc["templating"]["list"] if "definition" in v]
    assert exprs, "the dashboard has no queries"
    return exprs


def served_names(text: str) -> set[str]:
    """The jobserver_* sample names of one exposition, counting families without samples
    by their TYPE line (a labelled counter that never moved still exists); `_created` left
    out. prometheus_client writes counters' TYPE lines with `_total`, and a gauge histogram
    as a histogram of buckets plus `_gcount` and `_gsum` gauges."""
    names: set[str] = set()
    histograms: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            if kind == "histogram":
                histograms.add(name)
            else:
                names.add(name)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    for name in histograms:
        if name + "_bucket" not in names:
            names.update(name + s for s in ("_bucket", "_sum", "_count"))
    return {n for n in names if n.startswith("jobserver_") and not n.endswith("_created")}


def test_every_rule_and_panel_names_a_documented_metric() -> None:
    """The fast check (no server): against docs/metrics.md's source; the live test below
    shows that source is what the processes serve."""
    known = exposed_names()
    for expr in rule_expressions() + dashboard_expressions():
        unknown = set(METRIC.findall(expr)) - known
        assert not unknown, (expr, unknown)


@needs_promtool
def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    assert PROMTOOL is not None
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        done = subprocess.run(
            [PROMTOOL, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr


def prometheus_config(api: str, worker: str, scheduler: str, token_file: Path) -> str:
    """docs/prometheus/prometheus.yml pointed at this test's processes, scraping every second."""
    text = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    for old, new in (
        ("127.0.0.1:3000", api),
        ("127.0.0.1:9100", worker),
        ("127.0.0.1:9101", scheduler),
        ("/etc/prometheus/jobserver-token", str(token_file)),
        ("scrape_interval: 15s", "scrape_interval: 1s"),
        ("evaluation_interval: 15s", "evaluation_interval: 1s"),
        ("  - alerts.yml", f"  - {PROMETHEUS_DIR / 'alerts.yml'}"),
    ):
        assert old in text, f"prometheus.yml no longer holds {old!r}"
        text = text.replace(old, new)
    return text


def write_config(tmp: Path, api: str, worker: str, scheduler: str, token: str) -> Path:
    token_file = tmp / "token"
    token_file.write_text(token + "\n")
    config = tmp / "prometheus.yml"
    config.write_text(prometheus_config(api, worker, scheduler, token_file))
    return config


def as_promql(expr: str) -> str:
    """A dashboard query as Prometheus can run it: `$queue` as every queue, and Grafana's
    `label_values(metric, label)` as the series it reads the values from."""
    expr = expr.replace("$queue", ".*")
    found = re.fullmatch(r"label_values\((.+), *(\w+)\)", expr)
    return f"group by ({found.group(2)}) ({found.group(1)})" if found else expr


class PromApi:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def get(self, path: str, **params: str) -> Any:
        try:
            async with self.session.get(f"{self.base}{path}", params=params) as r:
                body = await r.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        assert body.get("status") == "success", body
        return body["data"]

    async def value(self, query: str) -> float | None:
        data = await self.get("/api/v1/query", query=query)
        if not data or not data["result"]:
            return None
        return float(data["result"][0]["value"][1])


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        yield s


async def _text(session: aiohttp.ClientSession, url: str, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.get(url, headers=headers) as r:
        assert r.status == 200, (url, r.status, await r.text())
        return await r.text()


@needs_prometheus
async def test_prometheus_scrapes_api_worker_and_scheduler(
    pool: asyncpg.Pool, database_url: str, session: aiohttp.ClientSession
) -> None:
    assert PROMETHEUS is not None
    for d in load_modules().all():
        await definition_upsert(pool, d.metadata())
    scrape_token = await create_token(pool, "prometheus", ["view_jobs"], "prometheus")
    submit_token = await create_token(pool, "app", [], "app")
    worker_port, scheduler_port, prom_port = free_port(), free_port(), free_port()
    procs = Procs(database_url)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            _, api = await procs.api(env={"METRICS_REQUIRE_TOKEN": "true"})
            procs.start(
                "jobserver.cli.worker", name="worker", env={"METRICS_PORT": str(worker_port)}
            )
            procs.scheduler("scheduler", env={"METRICS_PORT": str(scheduler_port)})
            async with session.get(f"{api}/metrics") as r:
                assert r.status == 401  # so the scrapes below carried the token
            worker, scheduler = f"127.0.0.1:{worker_port}", f"127.0.0.1:{scheduler_port}"
            config = write_config(Path(tmp), api.split("//")[1], worker, scheduler, scrape_token)
            argv = [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp}/data",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ]
            prom = Proc("prometheus", argv, {"PATH": "/usr/bin:/bin"})
            procs.all.append(prom)
            papi = PromApi(session, f"http://127.0.0.1:{prom_port}")

            async with session.post(
                f"{api}/v1/jobs",
                headers={"Authorization": f"Bearer {submit_token}"},
                json={"definitionKey": "echo", "params": {"message": "scraped"}},
            ) as r:
                assert r.status == 201, await r.text()

            async def targets_up() -> bool:
                assert prom.alive(), prom.output()[-3000:]
                data = await papi.get("/api/v1/targets")
                if not data:
                    return False
                health = {t["labels"]["job"]: t["health"] for t in data["activeTargets"]}
                errors = [t["lastError"] for t in data["activeTargets"] if t["lastError"]]
                assert "401" not in " ".join(errors), errors
                return set(health.values()) == {"up"} and len(health) == 3

            await wait_for(targets_up, within=60, step=0.5)

            async def succeeded() -> float | None:
                assert prom.alive(), prom.output()[-3000:]
                return await papi.value(
                    'sum(jobserver_jobs_succeeded_total{job="jobserver-api",definition="echo"})'
                )

            assert await wait_for(succeeded, within=60, step=0.5) == 1.0
            finished = 'sum(jobserver_worker_jobs_finished_total{job="jobserver-worker"})'
            assert await wait_for(lambda: papi.value(finished), within=30, step=0.5) >= 1.0
            leader = 'max(jobserver_scheduler_is_leader{job="jobserver-scheduler"})'
            assert await wait_for(lambda: papi.value(leader), within=30, step=0.5) == 1.0

            async def rules_evaluated() -> list[dict[str, Any]] | None:
                data = await papi.get("/api/v1/rules")
                rules = [r for g in (data or {}).get("groups", []) for r in g["rules"]]
                if not rules or any(r["lastEvaluation"].startswith("0001") for r in rules):
                    return None
                return rules

            rules = await wait_for(rules_evaluated, within=30, step=0.5)
            assert len(rules) == len(rule_expressions())
            assert [r for r in rules if r["health"] != "ok"] == []
            # with everything up, the outage rules' conditions hold for nothing
            for rule in rules:
                if rule["name"] in OUTAGE_RULES:
                    data = await papi.get("/api/v1/query", query=rule["query"])
                    assert data is not None and data["result"] == [], (rule["name"], data)
            assert {r["name"] for r in rules} >= OUTAGE_RULES
            for expr in dashboard_expressions():
                data = await papi.get("/api/v1/query", query=as_promql(expr))
                assert data is not None, expr

            served = served_names(await _text(session, f"{api}/metrics", scrape_token))
            served |= served_names(await _text(session, f"http://{worker}/metrics"))
            served |= served_names(await _text(session, f"http://{scheduler}/metrics"))
        finally:
            procs.close()
    assert served == exposed_names(), "docs/metrics.md differs from what the processes serve"
