"""Across hosts: workers in their own network namespaces, with added round-trip time to PostgreSQL.

    .venv/bin/python bench/hosts.py --out DIR/hosts.json [--quick]      (as root)

Each "host" is a network namespace joined to this machine by its own link, with addresses from
10.231.<i>.0/24 (the host end .1, the namespace end .2); a throwaway PostgreSQL 15 cluster (the
peers' settings: fsync and synchronous_commit on, shared_buffers 256MB, max_connections 200)
listens on 127.0.0.1 and on every link's host end. The link adds the round-trip time of each
column (half each way): a veth pair with `tc netem delay` on both ends where the kernel has
netem, else a TUN pair joined by bench/delayline.py (this machine's kernel is built without
CONFIG_NET_SCH_NETEM); `--link` forces one. The RTT is measured at each setting (`SELECT 1`
timed from inside every namespace) and reported with the figures.

Per RTT (full: 0, 1, 5 ms; --quick: 0, 5 ms):
- throughput: 1, 2, 4 (--quick: 1, 2) `jobserver-worker` processes, each in its own namespace,
  MAX_CONCURRENT_EXECUTIONS=100, burn down a queue pre-filled with N `bench.noop@1` jobs
  (job_insert_many, 1,000 per transaction, from this machine). Completion is counted from
  jobs.status. Steady rate = first completion to last; overall = worker start to last. N is
  sized from the previous cell's rate for >= STEADY_SECONDS of steady state (full run).
  PostgreSQL's CPU over the steady window: utime+stime of the postmaster and its children from
  /proc (plus the children it reaped), less the poller's own backend, in cores and in % of the
  machine; the machine's busy % from /proc/stat; the delay line's and the workers' CPU.
- start latency: one worker in namespace 0; an enqueuer in its own namespace inserts one job
  per statement at RATE/s (bench/peers/peer_jobserver.py's way); the job records, at its start,
  now minus the time taken just before the insert (BENCH_LATENCY_FILE, bench/peers/bench_defs.py).
  `from commit` subtracts the insert's own round trip and adds back half the measured RTT (the
  commit happens half an RTT before its answer arrives); `from call` is the raw figure.

Writes the JSON (--out), and next to it <stem>.md (the tables) and <stem>.png (the chart).
Namespaces, links, workers and the cluster are removed on exit, error and Ctrl-C alike; a
namespace left by a run that was killed (its pid gone) is removed by the next run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS_DIR = os.path.join(HERE, "peers")
sys.path[:0] = [ROOT, PEERS_DIR]

import asyncpg

from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.db.pool import connect

CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
NS_PREFIX = "jshost"
NET = "10.231"
STEADY_SECONDS = 6.0  # aimed at; a cell reports the steady seconds it got
PG_SETTINGS = {
    "shared_buffers": "256MB",
    "max_connections": "200",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
}
WORKER_ENV = {"LOG_LEVEL": "WARNING", "MAX_CONCURRENT_EXECUTIONS": "100"}
CHILDREN: list[subprocess.Popen[bytes]] = []


def log(msg: str) -> None:
    print(f"[hosts {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check)


def pct(vals: list[float], p: float) -> float | None:
    """Percentile with linear interpolation between closest ranks (as bench/peers/bench.py)."""
    if not vals:
        return None
    s = sorted(vals)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return round(s[lo] + (s[hi] - s[lo]) * (k - lo), 3)


def loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


# ------------------------------------------------------------------------------ CPU from /proc


def proc_stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def proc_cpu_s(pid: int) -> float:
    f = proc_stat(pid)
    return (int(f[11]) + int(f[12])) / CLK_TCK if f else 0.0


def tree_cpu_s(root: int) -> float:
    """CPU seconds of `root`, its live children and the children it has reaped."""
    total = 0.0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        f = proc_stat(int(d))
        if f is None:
            continue
        if int(d) == root:
            total += (int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])) / CLK_TCK
        elif int(f[1]) == root:
            total += (int(f[11]) + int(f[12])) / CLK_TCK
    return total


def machine_jiffies() -> tuple[int, int]:
    """(total, idle + iowait) jiffies of the machine from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:9]]
    return sum(parts), parts[3] + parts[4]


# ------------------------------------------------------------------------------ the network


class Network:
    """`count` namespaces, each joined to this machine by one link with a settable RTT."""

    def __init__(self, count: int, mode: str) -> None:
        self.tag = os.getpid() % 100000
        self.count = count
        self.mode = mode
        self.ns = [f"{NS_PREFIX}{os.getpid()}-{i}" for i in range(count)]
        self.host_if = [f"jh{self.tag}{i}h" for i in range(count)]
        self.ns_if = [f"jh{self.tag}{i}n" for i in range(count)]
        self.host_ip = [f"{NET}.{i + 1}.1" for i in range(count)]
        self.ns_ip = [f"{NET}.{i + 1}.2" for i in range(count)]
        self.relay: subprocess.Popen[str] | None = None
        self.rtt_ms = 0.0

    @staticmethod
    def remove_stale() -> None:
        """Namespaces of earlier runs whose process is gone (killed before it could clean up)."""
        for line in sh("ip", "netns", "list", check=False).stdout.splitlines():
            m = re.match(rf"({NS_PREFIX}(\d+)-\d+)", line)
            if m and not os.path.exists(f"/proc/{m.group(2)}"):
                sh("ip", "netns", "del", m.group(1), check=False)

    @staticmethod
    def netem_works() -> bool:
        """Whether `tc netem` is available: tried on the loopback of a scratch namespace."""
        ns = f"{NS_PREFIX}{os.getpid()}-probe"
        try:
            sh("ip", "netns", "add", ns)
            r = sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem",
                   "delay", "1ms", check=False)  # fmt: skip
            return r.returncode == 0
        finally:
            sh("ip", "netns", "del", ns, check=False)

    def open(self) -> None:
        used = sh("ip", "-4", "-o", "addr", "show").stdout
        if f" {NET}." in used:
            raise RuntimeError(f"addresses in {NET}.0.0/16 are in use here (another run?)")
        for ns in self.ns:
            sh("ip", "netns", "add", ns)
        if self.mode == "netem":
            for i, ns in enumerate(self.ns):
                sh("ip", "link", "add", self.host_if[i], "type", "veth", "peer", "name",
                   self.ns_if[i])  # fmt: skip
                sh("ip", "link", "set", self.ns_if[i], "netns", ns)
                sh("ip", "addr", "add", f"{self.host_ip[i]}/24", "dev", self.host_if[i])
                self.ns_run(i, "ip", "addr", "add", f"{self.ns_ip[i]}/24", "dev", self.ns_if[i])
        else:
            pairs = [f"{h}:{n}" for h, n in zip(self.host_if, self.ns_if, strict=True)]
            self.relay = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "delayline.py"), *pairs],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            assert self.relay.stdout is not None
            if self.relay.stdout.readline().strip() != "ready":
                raise RuntimeError("bench/delayline.py did not start")
            for i, ns in enumerate(self.ns):
                sh("ip", "link", "set", self.ns_if[i], "netns", ns)
                sh("ip", "addr", "add", self.host_ip[i], "peer", f"{self.ns_ip[i]}/32", "dev",
                   self.host_if[i])  # fmt: skip
                self.ns_run(i, "ip", "addr", "add", self.ns_ip[i], "peer",
                            f"{self.host_ip[i]}/32", "dev", self.ns_if[i])  # fmt: skip
        for i in range(self.count):
            sh("ip", "link", "set", self.host_if[i], "up")
            self.ns_run(i, "ip", "link", "set", self.ns_if[i], "up")
            self.ns_run(i, "ip", "link", "set", "lo", "up")

    def ns_run(self, i: int, *argv: str) -> None:
        sh("ip", "netns", "exec", self.ns[i], *argv)

    def set_rtt(self, rtt_ms: float) -> None:
        """Half the RTT on each direction of every link."""
        one_way = f"{rtt_ms / 2:g}ms"
        if self.mode == "netem":
            # 0 ms: the bare veth (no qdisc); else `replace` adds the netem qdisc or changes it
            tc = ["del"] if rtt_ms == 0 else ["replace"]
            netem = [] if rtt_ms == 0 else ["netem", "delay", one_way]
            for i in range(self.count):
                sh("tc", "qdisc", *tc, "dev", self.host_if[i], "root", *netem, check=bool(netem))
                sh("ip", "netns", "exec", self.ns[i], "tc", "qdisc", *tc, "dev", self.ns_if[i],
                   "root", *netem, check=bool(netem))  # fmt: skip
        else:
            assert self.relay is not None and self.relay.stdin and self.relay.stdout
            self.relay.stdin.write(f"delay {rtt_ms / 2}\n")
            self.relay.stdin.flush()
            if self.relay.stdout.readline().strip() != "ok":
                raise RuntimeError("bench/delayline.py did not take the delay")
        self.rtt_ms = rtt_ms

    def relay_cpu_s(self) -> float:
        return proc_cpu_s(self.relay.pid) if self.relay else 0.0

    def close(self) -> None:
        if self.mode == "netem":
            for i in range(self.count):
                sh("ip", "link", "del", self.host_if[i], check=False)
        if self.relay is not None:
            with contextlib.suppress(OSError):
                assert self.relay.stdin is not None
                self.relay.stdin.close()
            try:
                self.relay.wait(5)
            except subprocess.TimeoutExpired:
                self.relay.kill()
                self.relay.wait(5)
            self.relay = None  # its TUN devices went with it
        for ns in self.ns:
            sh("ip", "netns", "del", ns, check=False)


# ------------------------------------------------------------------------------ processes


def child_env(extra: dict[str, str]) -> dict[str, str]:
    path = os.pathsep.join([PEERS_DIR, ROOT, os.environ.get("PYTHONPATH", "")]).rstrip(":")
    return {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1", **extra}


def spawn(ns: str, argv: list[str], env: dict[str, str], logpath: str) -> subprocess.Popen[bytes]:
    """A process inside namespace `ns` (`ip netns exec` execs: the pid is the program's)."""
    with open(logpath, "ab") as logf:
        p = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            env=child_env(env),
            stdout=logf,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
    CHILDREN.append(p)
    return p


def stop(procs: list[subprocess.Popen[bytes]], grace: float = 15) -> bool:
    """SIGTERM (graceful stop), then SIGKILL after `grace` seconds. True if all stopped in time."""
    graceful = True
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
    end = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            graceful = False
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
        if p in CHILDREN:
            CHILDREN.remove(p)
    return graceful


def write_json(path: str, obj: Any) -> None:
    with open(path, "w") as f:
        json.dump(obj, f)


def truncate(path: str) -> None:
    open(path, "w").close()


def read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def read_lines(path: str) -> list[str]:
    with open(path) as f:
        return f.readlines()


def new_job(params: object) -> NewJob:
    return NewJob(definition_key="bench.noop", definition_version=1, max_attempts=3, params=params)


# ------------------------------------------------------------------------------ inside a namespace


async def cmd_rtt(dsn: str, rounds: int) -> None:
    """Prints the round trip of `SELECT 1` from here, in ms (median, min, p90, max)."""
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(5):
            await conn.fetchval("SELECT 1")
        ms = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            await conn.fetchval("SELECT 1")
            ms.append((time.perf_counter() - t0) * 1000)
    finally:
        await conn.close()
    print(json.dumps({"median": pct(ms, 50), "min": round(min(ms), 3), "p90": pct(ms, 90),
                      "max": round(max(ms), 3)}))  # fmt: skip


async def cmd_enqueue(dsn: str, n: int, rate: float, tag: str, out: str) -> None:
    """One job per statement at `rate`/s; writes each insert's round trip (ms) to `out`."""
    conn = await connect(dsn)
    interval = 1.0 / rate
    start = time.perf_counter()
    call_ms: list[float] = []
    try:
        for i in range(n):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t0 = time.perf_counter()
            await job_insert_many(conn, [new_job({"t": time.time() * 1000.0, "s": i, "tag": tag})])
            call_ms.append((time.perf_counter() - t0) * 1000.0)
    finally:
        await conn.close()
    dur = time.perf_counter() - start
    write_json(out, {"call_ms": call_ms, "duration_s": dur, "achieved_rate": n / dur})


# ------------------------------------------------------------------------------ the benchmark


class Bench:
    def __init__(self, a: argparse.Namespace, net: Network, cluster: Any, logdir: str) -> None:
        self.a = a
        self.net = net
        self.cluster = cluster
        self.logdir = logdir
        self.end = time.monotonic() + a.budget
        with open(os.path.join(cluster.data_dir, "postmaster.pid")) as f:
            self.postmaster = int(f.readline())

    def left(self, cap: float) -> float:
        return max(0.0, min(cap, self.end - time.monotonic()))

    def dsn(self, db: str, host: int | None = None) -> str:
        h = "127.0.0.1" if host is None else self.net.host_ip[host]
        return f"postgresql://postgres@{h}:{self.cluster.port}/{db}"

    async def make_template(self) -> None:
        import bench_defs  # noqa: F401  (registers bench.noop@1)

        from jobserver.db import migrate
        from jobserver.db.definitions import definition_upsert
        from jobserver.registry import registry

        await self.admin("CREATE DATABASE hosts_tpl")
        await migrate.upgrade_async(self.dsn("hosts_tpl"))
        conn = await connect(self.dsn("hosts_tpl"))
        try:
            for d in registry.all():
                await definition_upsert(conn, d.metadata())
        finally:
            await conn.close()

    async def admin(self, *sql: str) -> None:
        conn = await asyncpg.connect(self.dsn("postgres"))
        try:
            for s in sql:
                await conn.execute(s)
        finally:
            await conn.close()

    async def fresh_db(self, db: str) -> str:
        await self.admin(
            f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)',
            f'CREATE DATABASE "{db}" TEMPLATE hosts_tpl',
        )
        return self.dsn(db)

    async def drop_db(self, db: str) -> None:
        """Its dead rows would otherwise be vacuumed while the next cell is measured."""
        await self.admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)', "CHECKPOINT")

    def worker(self, host: int, db: str, name: str, extra: dict[str, str] | None = None) -> Any:
        argv = [sys.executable, "-m", "jobserver.cli.worker", "--module", "bench_defs"]
        env = {**WORKER_ENV, "DATABASE_URL": self.dsn(db, host), "WORKER_ID": name, **(extra or {})}
        return spawn(self.net.ns[host], argv, env, os.path.join(self.logdir, f"{name}.log"))

    def measure_rtt(self) -> dict[str, Any]:
        """`SELECT 1` round trips from inside every namespace, one namespace after the other."""
        per_host = []
        for i, ns in enumerate(self.net.ns):
            r = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    sys.executable,
                    __file__,
                    "_rtt",
                    "--dsn",
                    self.dsn("postgres", i),
                    "--n",
                    "50",
                ],
                env=child_env({}),
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            per_host.append(json.loads(r.stdout.strip().splitlines()[-1]))
        return {
            "median_ms": round(statistics.median(h["median"] for h in per_host), 3),
            "min_ms": round(min(h["min"] for h in per_host), 3),
            "per_host": per_host,
        }

    def snapshot(self, poller_pid: int, workers: list[Any]) -> dict[str, float]:
        tot, idle = machine_jiffies()
        return {
            "t": time.monotonic(),
            "pg": tree_cpu_s(self.postmaster),
            "poller": proc_cpu_s(poller_pid),
            "jiffies": tot,
            "idle": idle,
            "relay": self.net.relay_cpu_s(),
            "workers": sum(proc_cpu_s(w.pid) for w in workers),
        }

    @staticmethod
    def window(s0: dict[str, float], s1: dict[str, float]) -> dict[str, Any]:
        dt = s1["t"] - s0["t"]
        if dt <= 0:
            return {}
        pg = (s1["pg"] - s0["pg"]) - (s1["poller"] - s0["poller"])
        jt = s1["jiffies"] - s0["jiffies"] or 1
        return {
            "seconds": round(dt, 3),
            "pg_cpu_cores": round(pg / dt, 2),
            "pg_cpu_pct": round(100 * pg / dt / NCPU, 1),
            "machine_busy_pct": round(100 * (jt - (s1["idle"] - s0["idle"])) / jt, 1),
            "workers_cpu_cores": round((s1["workers"] - s0["workers"]) / dt, 2),
            "delayline_cpu_cores": round((s1["relay"] - s0["relay"]) / dt, 2),
        }

    async def throughput(self, rtt: float, procs: int, n: int) -> dict[str, Any]:
        db = f"hosts_r{str(rtt).replace('.', '_')}_w{procs}"
        dsn = await self.fresh_db(db)
        conn = await connect(dsn)
        res: dict[str, Any] = {"rtt_ms": rtt, "workers": procs, "n": n}
        workers: list[Any] = []
        try:
            t_enq = time.monotonic()
            for k in range(0, n, 1000):
                async with conn.transaction():
                    await job_insert_many(conn, [new_job({}) for _ in range(min(1000, n - k))])
            res["enqueue_jobs_s"] = round(n / (time.monotonic() - t_enq), 1)
            await conn.execute("ANALYZE jobs")
            await conn.execute("CHECKPOINT")
            poller_pid = await conn.fetchval("SELECT pg_backend_pid()")
            count = "SELECT count(*) FROM jobs WHERE status = 'succeeded'"
            s0 = self.snapshot(poller_pid, [])
            workers = [self.worker(i, db, f"hosts-r{rtt:g}-w{procs}-{i}") for i in range(procs)]
            timeout = self.left(self.a.cell_timeout)
            first: tuple[dict[str, float], int] | None = None
            last: tuple[dict[str, float], int] | None = None
            c, last_c, last_t = 0, 0, s0["t"]
            while True:
                c = int(await conn.fetchval(count))
                t = time.monotonic()
                if c > 0 and first is None:
                    first = (self.snapshot(poller_pid, workers), c)
                if c >= n:
                    last = (self.snapshot(poller_pid, workers), c)
                    break
                if t - s0["t"] > timeout or any(w.poll() is not None for w in workers):
                    break
                rate = (c - last_c) / (t - last_t) if t > last_t and c > last_c else 0.0
                last_c, last_t = c, t
                # often near the start and the end only: the poller's own cost stays small
                await asyncio.sleep(
                    0.02
                    if first is None
                    else min(0.25, max(0.01, (n - c) / rate / 3))
                    if rate
                    else 0.05
                )
            res["completed"] = c
            res["ok"] = last is not None
            if last is None:
                crashed = [w.pid for w in workers if w.poll() is not None]
                res["error"] = "a worker exited early" if crashed else f"timeout ({timeout:.0f} s)"
                return res
            res["overall_jobs_s"] = round(n / (last[0]["t"] - s0["t"]), 1)
            res["first_completion_s"] = round(first[0]["t"] - s0["t"], 3) if first else None
            res["overall"] = self.window(s0, last[0])
            if first and last[0]["t"] > first[0]["t"]:
                steady = self.window(first[0], last[0])
                res["steady_jobs_s"] = round((n - first[1]) / steady["seconds"], 1)
                res["steady"] = steady
        finally:
            res["graceful_stop"] = stop(workers)
            await conn.close()
            await self.drop_db(db)
        return res

    async def latency(self, rtt: float, rtt_measured: float) -> dict[str, Any]:
        db = f"hosts_lat_r{str(rtt).replace('.', '_')}"
        dsn = await self.fresh_db(db)
        lat_file = os.path.join(self.logdir, f"latency_r{rtt:g}.txt")
        truncate(lat_file)
        name = f"hosts-lat-r{rtt:g}"
        w = self.worker(0, db, name, {"BENCH_LATENCY_FILE": lat_file})
        enq_ns = self.net.ns[-1]
        enq_dsn = self.dsn(db, self.net.count - 1)
        try:
            conn = await connect(dsn)
            try:
                for _ in range(int(self.left(30) / 0.05)):
                    sql = "SELECT count(*) FROM workers WHERE id = $1 AND status = 'active'"
                    if await conn.fetchval(sql, name) or w.poll() is not None:
                        break
                    await asyncio.sleep(0.05)
            finally:
                await conn.close()
            calls = {}
            for tag, n, rate in (
                ("w", self.a.latency_warmup, 20.0),
                ("m", self.a.latency_n, self.a.rate),
            ):
                out = os.path.join(self.logdir, f"enqueue_r{rtt:g}_{tag}.json")
                p = await asyncio.to_thread(
                    subprocess.run,
                    [
                        "ip",
                        "netns",
                        "exec",
                        enq_ns,
                        sys.executable,
                        __file__,
                        "_enqueue",
                        "--dsn",
                        enq_dsn,
                        "--n",
                        str(n),
                        "--rate",
                        str(rate),
                        "--tag",
                        tag,
                        "--file",
                        out,
                    ],
                    env=child_env({}),
                    capture_output=True,
                    text=True,
                    timeout=self.left(n / rate + 60),
                )
                if p.returncode != 0:
                    raise RuntimeError(f"enqueuer failed: {p.stderr[-1500:]}")
                calls[tag] = read_json(out)
                got = await self.wait_lines(lat_file, tag, n, self.left(30), w)
                await asyncio.sleep(1.0 if tag == "w" else 0)  # the worker idle, listening
        finally:
            stop([w])
            await self.drop_db(db)
        raw: dict[int, float] = {}
        for ln in read_lines(lat_file):
            parts = ln.split()
            if parts[:1] == ["m"]:
                raw[int(parts[1])] = float(parts[2])
        call_ms = calls["m"]["call_ms"]
        from_call = list(raw.values())
        from_commit = [v - call_ms[s] + rtt_measured / 2 for s, v in raw.items()]
        return {
            "rtt_ms": rtt,
            "jobs": self.a.latency_n,
            "rate": self.a.rate,
            "achieved_rate": round(calls["m"]["achieved_rate"], 1),
            "recorded": got,
            "ok": got == self.a.latency_n,
            "insert_call_ms_p50": pct(call_ms, 50),
            "from_commit": {f"p{q}_ms": pct(from_commit, q) for q in (50, 95, 99)},
            "from_call": {f"p{q}_ms": pct(from_call, q) for q in (50, 95, 99)},
        }

    @staticmethod
    async def wait_lines(path: str, tag: str, want: int, timeout: float, w: Any) -> int:
        end = time.monotonic() + timeout
        while True:
            got = sum(1 for ln in read_lines(path) if ln.startswith(tag + " "))
            if got >= want or time.monotonic() > end:
                return got
            if w.poll() is not None:
                raise RuntimeError(f"latency worker exited with rc={w.returncode}")
            await asyncio.sleep(0.05)

    async def run(self) -> dict[str, Any]:
        a = self.a
        await self.make_template()
        out: dict[str, Any] = {"rtts": []}
        est: dict[int, float] = {}  # workers -> the last steady rate seen
        for rtt in a.rtts:
            self.net.set_rtt(rtt)
            measured = self.measure_rtt()
            log(f"RTT {rtt} ms: measured SELECT 1 round trip {measured['median_ms']} ms")
            row: dict[str, Any] = {"rtt_ms": rtt, "measured": measured, "throughput": []}
            out["rtts"].append(row)
            prev = 0.0
            for procs in a.workers:
                if a.n:
                    n = a.n
                else:
                    guess = est.get(procs) or (prev * 1.4 if prev else 40000.0)
                    n = int(min(a.max_n, max(a.min_n, guess * STEADY_SECONDS)) // 1000 * 1000)
                if self.left(1e9) < 20:
                    row["throughput"].append({"workers": procs, "error": "time budget used up"})
                    continue
                r = await self.throughput(rtt, procs, n)
                row["throughput"].append(r)
                st = r.get("steady", {})
                log(
                    f"  {procs} worker(s), n={n}: steady {r.get('steady_jobs_s')}/s, overall "
                    f"{r.get('overall_jobs_s')}/s, PG CPU {st.get('pg_cpu_cores')} cores, "
                    f"machine {st.get('machine_busy_pct')}% "
                    f"{r.get('error', '')}"
                )
                if r.get("steady_jobs_s"):
                    prev = est[procs] = r["steady_jobs_s"]
            if self.left(1e9) < 20:
                row["latency"] = {"error": "time budget used up"}
                continue
            try:
                row["latency"] = await self.latency(rtt, measured["median_ms"])
                lat = row["latency"]
                log(f"  latency from commit {lat['from_commit']}, from call {lat['from_call']}")
            except Exception as e:  # reported, and the other cells still run
                row["latency"] = {"error": str(e)[-1500:]}
                log(f"  latency FAILED: {e}")
        return out


# ------------------------------------------------------------------------------ report


def fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        f"# Across hosts ({res['started_at']})",
        "",
        f"Machine: {m['nproc']} cores, load average before {m['loadavg_before']}, after "
        f"{m.get('loadavg_after')}; {res['postgres']}, fsync=on, synchronous_commit=on, "
        f"shared_buffers=256MB. Links: {res['link']}. Workers: jobserver-worker, "
        "MAX_CONCURRENT_EXECUTIONS=100, each in its own network namespace; bench.noop@1 jobs.",
        "",
        "| RTT (measured median) | workers | N | steady jobs/s | overall jobs/s | steady s | "
        "PostgreSQL CPU (cores / % of machine) | machine busy % | workers CPU (cores) | "
        "delay line CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in res.get("rtts", []):
        rtt = f"{row['rtt_ms']:g} ms ({row['measured']['median_ms']:.2f})"
        for r in row["throughput"]:
            st = r.get("steady", {})
            if "error" in r:
                lines.append(f"| {rtt} | {r['workers']} | {fmt(r.get('n'))} | {r['error']} |"
                             " | | | | | |")  # fmt: skip
                continue
            lines.append(
                f"| {rtt} | {r['workers']} | {fmt(r['n'])} | {fmt(r.get('steady_jobs_s'))} | "
                f"{fmt(r.get('overall_jobs_s'))} | {fmt(st.get('seconds'), 2)} | "
                f"{fmt(st.get('pg_cpu_cores'), 2)} / {fmt(st.get('pg_cpu_pct'))}% | "
                f"{fmt(st.get('machine_busy_pct'))} | {fmt(st.get('workers_cpu_cores'), 2)} | "
                f"{fmt(st.get('delayline_cpu_cores'), 2)} |"
            )
    lines += [
        "",
        "| RTT (measured median) | start latency from commit p50 / p95 / p99 ms | "
        "from call p50 / p95 / p99 ms | insert round trip p50 ms | jobs |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in res.get("rtts", []):
        lat = row.get("latency", {})
        rtt = f"{row['rtt_ms']:g} ms ({row['measured']['median_ms']:.2f})"
        if "error" in lat:
            lines.append(f"| {rtt} | {lat['error'][:80]} | | | |")
            continue
        fc, fl = lat["from_commit"], lat["from_call"]
        lines.append(
            f"| {rtt} | {fmt(fc['p50_ms'], 2)} / {fmt(fc['p95_ms'], 2)} / {fmt(fc['p99_ms'], 2)} | "
            f"{fmt(fl['p50_ms'], 2)} / {fmt(fl['p95_ms'], 2)} / {fmt(fl['p99_ms'], 2)} | "
            f"{fmt(lat['insert_call_ms_p50'], 2)} | {lat['recorded']}/{lat['jobs']} at "
            f"{fmt(lat['achieved_rate'])}/s |"
        )
    return "\n".join(lines) + "\n"


def chart(res: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.5))
    for n, row in enumerate(res.get("rtts", [])):
        ok = [r for r in row["throughput"] if r.get("steady_jobs_s")]
        label = f"RTT {row['rtt_ms']:g} ms"
        color = f"C{n}"
        xs = [r["workers"] for r in ok]
        ax1.plot(xs, [r["steady_jobs_s"] for r in ok], marker="o", color=color, label=label)
        ax2.plot(xs, [r["steady"]["pg_cpu_pct"] for r in ok], marker="o", color=color,
                 label=f"PostgreSQL, {label}")  # fmt: skip
        ax2.plot(xs, [r["steady"]["machine_busy_pct"] for r in ok], linestyle="--", color=color,
                 label=f"machine, {label}")  # fmt: skip
    workers = sorted({r["workers"] for row in res.get("rtts", []) for r in row["throughput"]})
    for ax in (ax1, ax2):
        ax.set_xticks(workers)
    ax1.set_xlabel("worker processes (one namespace each)")
    ax1.set_ylabel("jobs/s, steady (first completion to last)")
    ax1.set_title("Throughput, concurrency 100 per worker")
    ax1.legend()
    ax2.set_xlabel("worker processes")
    ax2.set_ylabel(f"% of the machine's {NCPU} cores")
    ax2.set_title("CPU during the steady window")
    ax2.set_ylim(0, 100)
    ax2.legend(fontsize="small")
    rows = [r for r in res.get("rtts", []) if "from_commit" in r.get("latency", {})]
    for q in ("p50_ms", "p95_ms", "p99_ms"):
        ax3.plot([r["rtt_ms"] for r in rows], [r["latency"]["from_commit"][q] for r in rows],
                 marker="o", label=q.replace("_ms", ""))  # fmt: skip
    ax3.set_xlabel("added RTT, ms")
    ax3.set_ylabel("ms, enqueue commit -> job start")
    ax3.set_title("Start latency")
    ax3.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)


# ------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--out", required=True, help="the JSON result; .md and .png go next to it")
    p.add_argument("--quick", action="store_true", help="CI size: RTT 0 and 5 ms, 1-2 workers")
    p.add_argument("--rtts", help="comma-separated added RTTs in ms (default 0,1,5)")
    p.add_argument("--workers", help="comma-separated worker counts (default 1,2,4)")
    p.add_argument("--n", type=int, default=0, help="jobs per throughput cell (default: sized)")
    p.add_argument("--min-n", type=int, default=20000)
    p.add_argument("--max-n", type=int, default=400000)
    p.add_argument("--latency-n", type=int, default=500)
    p.add_argument("--latency-warmup", type=int, default=10)
    p.add_argument("--rate", type=float, default=100.0, help="latency enqueues per second")
    p.add_argument("--cell-timeout", type=float, default=120.0)
    p.add_argument("--budget", type=float, default=660.0, help="seconds for all cells")
    p.add_argument(
        "--log-statements", action="store_true", help="log every statement (kept with the logs)"
    )
    p.add_argument("--link", choices=["auto", "netem", "tun"], default="auto")
    a = p.parse_args(argv)
    if a.quick:
        a.rtts = a.rtts or "0,5"
        a.workers = a.workers or "1,2"
        a.n = a.n or 5000
        a.latency_n = min(a.latency_n, 50)
        a.budget = min(a.budget, 120.0)
    a.rtts = [float(x) for x in (a.rtts or "0,1,5").split(",")]
    a.workers = [int(x) for x in (a.workers or "1,2,4").split(",") if int(x) > 0]
    return a


def internal(argv: list[str]) -> None:
    """`_rtt` and `_enqueue`: what the benchmark runs inside a namespace."""
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["_rtt", "_enqueue"])
    p.add_argument("--dsn", required=True)
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--tag", default="m")
    p.add_argument("--file", default="")
    a = p.parse_args(argv)
    if a.cmd == "_rtt":
        asyncio.run(cmd_rtt(a.dsn, a.n))
    else:
        asyncio.run(cmd_enqueue(a.dsn, a.n, a.rate, a.tag, a.file))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        internal(sys.argv[1:])
        return
    a = parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/hosts.py needs root (network namespaces, links)")
    from jobserver.testing.cluster import LocalCluster

    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # Ctrl-C, even where the parent shell ignored it
    Network.remove_stale()
    mode = a.link if a.link != "auto" else ("netem" if Network.netem_works() else "tun")
    net = Network(max([1, *a.workers]) + 1, mode)  # + the enqueuer's host
    logdir = tempfile.mkdtemp(prefix="jobserver-hosts-")
    res: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "nproc": NCPU,
            "kernel": platform.release(),
            "python": platform.python_version(),
            "loadavg_before": loadavg(),
        },
        "link": (
            "veth pairs, tc netem delay RTT/2 on both ends"
            if mode == "netem"
            else "TUN pairs joined by bench/delayline.py, RTT/2 each way (no netem in this kernel)"
        ),
        "params": {
            k: getattr(a, k) for k in ("quick", "rtts", "workers", "n", "latency_n", "rate")
        },
        "logs": logdir,
    }
    cluster = LocalCluster(fast=False, settings=dict(PG_SETTINGS))
    t0 = time.monotonic()
    try:
        net.open()
        listen = ",".join(["127.0.0.1", *net.host_ip])
        cluster.settings = {**PG_SETTINGS, "listen_addresses": f"'{listen}'"}
        if a.log_statements:
            cluster.settings.update(log_min_duration_statement="0", log_line_prefix="'%m [%p] %a '")
        cluster.start()
        with open(os.path.join(cluster.data_dir, "pg_hba.conf"), "a") as f:
            f.write(f"host all all {NET}.0.0/16 trust\n")
        cluster.pg_ctl("reload")
        res["postgres"] = subprocess.run(
            [os.path.join(cluster.bin_dir, "postgres"), "--version"], capture_output=True, text=True
        ).stdout.strip()
        log(f"{res['postgres']} on port {cluster.port}; {net.count} namespaces; {res['link']}")
        res.update(asyncio.run(Bench(a, net, cluster, logdir).run()))
    except BaseException as e:
        res["error"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        stop(list(CHILDREN), grace=5)
        net.close()
        if cluster.base_dir and os.path.exists(cluster.log_file):
            subprocess.run(["cp", cluster.log_file, logdir], check=False)
        cluster.stop()
        res["machine"]["loadavg_after"] = loadavg()
        res["seconds"] = round(time.monotonic() - t0, 1)
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(res, f, indent=2)
        stem = os.path.splitext(a.out)[0]
        if res.get("rtts"):
            with open(stem + ".md", "w") as f:
                f.write(markdown(res))
            chart(res, stem + ".png")
            print(markdown(res))
        log(f"wrote {a.out} (+ .md, .png) in {res['seconds']} s; logs in {logdir}")
    if failed := failures(res):
        print("hosts benchmark incomplete:\n  " + "\n  ".join(failed), file=sys.stderr)
        sys.exit(1)


def failures(res: dict[str, Any]) -> list[str]:
    out = []
    for row in res.get("rtts", []):
        for r in row["throughput"]:
            if not r.get("ok"):
                out.append(f"RTT {row['rtt_ms']:g} ms, {r['workers']} workers: {r.get('error')}")
        if not row.get("latency", {}).get("ok"):
            out.append(f"RTT {row['rtt_ms']:g} ms latency: {row.get('latency', {}).get('error')}")
    return out


if __name__ == "__main__":
    main()
