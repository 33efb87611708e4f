#!/usr/bin/env python3
"""Drives workloads A (throughput), B (latency) and C (pgbench baseline) against the
throwaway cluster that run.sh started. Writes results.json and prints a table.

Every timing here is taken by this process or by the peer adapters; every job
count is read back from the database, never from logs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time

import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")
CHILDREN: dict[int, subprocess.Popen] = {}


# ---------------------------------------------------------------- helpers


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(sorted_vals: list[float], p: float) -> float:
    """Percentile with linear interpolation between closest ranks."""
    if not sorted_vals:
        return float("nan")
    k = (len(sorted_vals) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def cpu_jiffies() -> tuple[int, int, int]:
    """(total, idle, iowait) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    return sum(parts[:8]), parts[3], parts[4]


def proc_cpu_s(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
    except OSError:
        return None


def postgres_cpu_s(data_dir: str) -> float | None:
    """CPU seconds used so far by the cluster's live processes (postmaster and its children:
    backends, WAL writer, checkpointer ...), from /proc. Read before and after a workload;
    the workers' connections live through it, so no backend's time is lost on exit."""
    try:
        with open(os.path.join(data_dir, "postmaster.pid")) as f:
            master = int(f.readline())
    except (OSError, ValueError):
        return None
    total = proc_cpu_s(master) or 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == master:
            total += proc_cpu_s(int(name)) or 0.0
    return total


def loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self, cap: float) -> float:
        return max(0.0, min(cap, self.end - time.monotonic()))


class BudgetExhausted(Exception):
    pass


# ---------------------------------------------------------------- peers


class Peer:
    key = ""
    label = ""
    done_sql = ""  # jobs completed successfully
    pending_sql = ""  # jobs not completed (queued, running or failed)

    def __init__(self, cfg) -> None:
        self.cfg = cfg

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def done(self, conn, n: int) -> int:
        return conn.execute(self.done_sql).fetchone()[0]

    def version(self) -> str:
        raise NotImplementedError


class PgQueuerPeer(Peer):
    key, label = "pgqueuer", "PgQueuer"
    done_sql = "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'"
    pending_sql = "SELECT count(*) FROM pgqueuer"

    def argv(self):
        return [self.cfg.python, os.path.join(HERE, "peer_pgqueuer.py")]

    def version(self):
        from importlib.metadata import version

        return f"pgqueuer {version('pgqueuer')}, asyncpg {version('asyncpg')}"

    supports_tuned = True

    def worker_desc(self, c, tuned):
        b = os.environ.get("PGQ_TUNED_BATCH", "100") if tuned else c
        return f"pgqueuer.run(batch_size={b}), 1 asyncpg connection/process"


class ProcrastinatePeer(Peer):
    key, label = "procrastinate", "Procrastinate"
    done_sql = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
    pending_sql = "SELECT count(*) FROM procrastinate_jobs WHERE status <> 'succeeded'"

    def argv(self):
        return [self.cfg.python, os.path.join(HERE, "peer_procrastinate.py")]

    def version(self):
        from importlib.metadata import version

        return f"procrastinate {version('procrastinate')}, psycopg {version('psycopg')}"

    supports_tuned = False  # 3.x fetches and finishes one job per query; no batching knob

    def worker_desc(self, c, tuned):
        return f"run_worker_async(concurrency={c}), psycopg pool max {c + 2}"


class GraphilePeer(Peer):
    key, label = "graphile", "graphile-worker"
    pending_sql = "SELECT count(*) FROM graphile_worker._private_jobs"

    def argv(self):
        return ["node", os.path.join(HERE, "peer_graphile.js")]

    def env(self):
        e = dict(os.environ)
        e["NODE_PATH"] = os.path.join(self.cfg.node_dir, "node_modules")
        return e

    def done(self, conn, n):
        # graphile-worker deletes a job when it succeeds; a failed one stays with last_error.
        return n - conn.execute(self.pending_sql).fetchone()[0]

    def version(self):
        p = os.path.join(self.cfg.node_dir, "node_modules", "graphile-worker", "package.json")
        with open(p) as f:
            v = json.load(f)["version"]
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
        return f"graphile-worker {v}, node {node}"

    supports_tuned = True

    def worker_desc(self, c, tuned):
        if tuned:
            return (
                f"run({{concurrency: {c}}}) + localQueue.size "
                f"{os.environ.get('GW_LOCAL_QUEUE_SIZE', '100')}, completeJobBatchDelay "
                f"{os.environ.get('GW_COMPLETE_BATCH_DELAY_MS', '0')} ms"
            )
        return f"run({{concurrency: {c}}}) defaults (pool 10, no localQueue)"


class JobserverPeer(Peer):
    key, label = "jobserver", "jobserver"
    done_sql = "SELECT count(*) FROM jobs WHERE status = 'succeeded'"
    pending_sql = "SELECT count(*) FROM jobs WHERE status <> 'succeeded'"

    def argv(self):
        return [self.cfg.jobserver_python, os.path.join(HERE, "peer_jobserver.py")]

    def env(self):
        e = dict(os.environ)
        e["PYTHONPATH"] = HERE + os.pathsep + e.get("PYTHONPATH", "")
        return e

    def version(self):
        r = subprocess.run(
            [
                self.cfg.jobserver_python,
                "-c",
                "from importlib.metadata import version as v; "
                "print(f\"jobserver {v('jobserver')}, asyncpg {v('asyncpg')}\")",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return r.stdout.strip()

    supports_tuned = True

    def worker_desc(self, c, tuned):
        return f"jobserver-worker MAX_CONCURRENT_EXECUTIONS={100 if tuned else c}"


PEERS = {p.key: p for p in (JobserverPeer, PgQueuerPeer, ProcrastinatePeer, GraphilePeer)}


# ---------------------------------------------------------------- bench


class Bench:
    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.admin_dsn = cfg.dsn_base + "/postgres"

    def dsn(self, db: str) -> str:
        return f"{self.cfg.dsn_base}/{db}"

    def fresh_db(self, db: str) -> str:
        with psycopg.connect(self.admin_dsn, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            c.execute(f'CREATE DATABASE "{db}"')
        if self.cfg.profile:
            with psycopg.connect(self.dsn(db), autocommit=True) as c:
                c.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        return self.dsn(db)

    def statements(self, conn, reset: bool = False) -> list[dict]:
        """With --profile: the statements that took the most time since the last reset."""
        if not self.cfg.profile:
            return []
        if reset:
            conn.execute("SELECT pg_stat_statements_reset()")
            return []
        rows = conn.execute(
            "SELECT calls, rows, total_exec_time, total_plan_time, mean_exec_time, wal_records,"
            " left(regexp_replace(query, '\\s+', ' ', 'g'), 160) FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " ORDER BY total_exec_time DESC LIMIT 12"
        ).fetchall()
        keys = ("calls", "rows", "total_ms", "plan_ms", "mean_ms", "wal_records", "query")
        out = []
        for r in rows:
            row = dict(zip(keys, r, strict=True))
            for k in ("total_ms", "plan_ms", "mean_ms"):
                row[k] = round(float(row[k]), 3)
            out.append(row)
        return out

    def drop_db(self, db: str) -> None:
        """Drop a measured workload's database: its dead rows would otherwise be vacuumed in
        the background while the next workload (of any system) is being measured."""
        with psycopg.connect(self.admin_dsn, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    def checkpoint(self) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as c:
            c.execute("CHECKPOINT")

    def peer_cmd(self, peer: Peer, dsn: str, cmd: str, *extra: str, timeout: float) -> dict:
        if timeout <= 1:
            raise BudgetExhausted(cmd)
        argv = [*peer.argv(), cmd, "--dsn", dsn, *extra]
        r = subprocess.run(
            argv,
            env=peer.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.cfg.run_dir,
        )
        if r.returncode != 0:
            raise RuntimeError(f"{peer.key} {cmd} rc={r.returncode}: {r.stderr[-2000:]}")
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        return json.loads(lines[-1]) if lines else {}

    def spawn_worker(
        self, peer: Peer, dsn: str, idx: int, latency_file: str = "", tuned: bool = False
    ) -> subprocess.Popen:
        argv = [*peer.argv(), "worker", "--dsn", dsn, "--concurrency", str(self.cfg.concurrency)]
        if latency_file:
            argv += ["--latency-file", latency_file]
        if tuned:
            argv += ["--tuned"]
        logf = open(os.path.join(self.cfg.run_dir, f"{peer.key}_worker{idx}.log"), "a")
        p = subprocess.Popen(
            argv,
            env=peer.env(),
            stdout=logf,
            stderr=subprocess.STDOUT,
            cwd=self.cfg.run_dir,
            start_new_session=True,
        )
        CHILDREN[p.pid] = p
        with open(os.path.join(self.cfg.run_dir, "children.pids"), "a") as f:
            f.write(f"{p.pid}\n")
        return p

    def stop_workers(self, procs: list[subprocess.Popen]) -> bool:
        graceful = True
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        end = time.monotonic() + 15
        for p in procs:
            try:
                p.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                graceful = False
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
            CHILDREN.pop(p.pid, None)
        return graceful

    # ------------------------------------------------------------ workload A

    def throughput(
        self, peer: Peer, procs: int, tuned: bool, dl: Deadline, n: int | None = None
    ) -> dict:
        n = n or self.cfg.n
        db = f"{peer.key}_a{procs}{'t' if tuned else ''}_{n}"
        dsn = self.fresh_db(db)
        self.peer_cmd(peer, dsn, "setup", timeout=dl.left(60))
        self.checkpoint()
        enq = self.peer_cmd(
            peer,
            dsn,
            "enqueue-bulk",
            "--n",
            str(n),
            "--batch",
            str(self.cfg.batch),
            timeout=dl.left(self.cfg.enqueue_timeout),
        )
        with psycopg.connect(dsn, autocommit=True) as conn:
            queued = conn.execute(peer.pending_sql).fetchone()[0]
            if queued != n:
                raise RuntimeError(f"expected {n} queued jobs after enqueue, found {queued}")
            self.checkpoint()
            self.statements(conn, reset=True)
            cpu0 = cpu_jiffies()
            pg0 = postgres_cpu_s(self.cfg.pg_data)
            t0 = time.monotonic()
            workers = [self.spawn_worker(peer, dsn, i, tuned=tuned) for i in range(procs)]
            timeout = dl.left(self.cfg.process_timeout)
            first = None
            last_c, last_t = 0, t0
            t_end = None
            c = 0
            while True:
                c = peer.done(conn, n)
                t = time.monotonic()
                if c > 0 and first is None:
                    first = (t, c)
                if c >= n:
                    t_end = t
                    break
                if t - t0 > timeout or any(w.poll() is not None for w in workers):
                    break
                rate = (c - last_c) / (t - last_t) if t > last_t else 0.0
                last_c, last_t = c, t
                # poll often only near the end, so the poller costs little CPU
                time.sleep(min(0.25, max(0.01, (n - c) / rate / 3)) if rate > 0 else 0.1)
            t_stop = time.monotonic()
            cpu1 = cpu_jiffies()
            pg1 = postgres_cpu_s(self.cfg.pg_data)
            worker_cpu = [proc_cpu_s(w.pid) for w in workers]
            crashed = [w.pid for w in workers if w.poll() is not None]
            graceful = self.stop_workers(workers)
            final_done = peer.done(conn, n)
            pending = conn.execute(peer.pending_sql).fetchone()[0]
            top = self.statements(conn)
        self.drop_db(db)
        tot = cpu1[0] - cpu0[0] or 1
        elapsed = (t_end or t_stop) - t0
        res = {
            "procs": procs,
            "tuned": tuned,
            "concurrency_per_proc": self.cfg.concurrency,
            "worker": peer.worker_desc(self.cfg.concurrency, tuned),
            "n": n,
            "enqueue_batch": self.cfg.batch,
            "enqueue_s": round(enq["enqueue_s"], 3),
            "enqueue_jobs_s": round(n / enq["enqueue_s"], 1),
            "completed": final_done,
            "pending_after": pending,
            "ok": t_end is not None and final_done == n,
            "process_s": round(elapsed, 3),
            "process_jobs_s": round((final_done if t_end is None else n) / elapsed, 1),
            "first_completion_s": round(first[0] - t0, 3) if first else None,
            "machine_cpu_busy_pct": round(
                100 * (tot - (cpu1[1] - cpu0[1]) - (cpu1[2] - cpu0[2])) / tot, 1
            ),
            "machine_iowait_pct": round(100 * (cpu1[2] - cpu0[2]) / tot, 1),
            "worker_cpu_s": [round(x, 2) if x is not None else None for x in worker_cpu],
            # PostgreSQL's CPU over the run, in cores (1.0 = one core busy the whole time)
            "postgres_cpu_s": round(pg1 - pg0, 2) if pg0 is not None and pg1 else None,
            "postgres_cores": (
                round((pg1 - pg0) / ((t_end or t_stop) - t0), 2)
                if pg0 is not None and pg1
                else None
            ),
            "graceful_stop": graceful,
        }
        if top:
            res["statements"] = top
        if first and t_end and t_end > first[0]:
            res["steady_jobs_s"] = round((n - first[1]) / (t_end - first[0]), 1)
        if t_end is None:
            res["error"] = "workers exited early" if crashed else f"timeout after {elapsed:.0f}s"
        return res

    # ------------------------------------------------------------ workload B

    def latency(self, peer: Peer, dl: Deadline) -> dict:
        dsn = self.fresh_db(f"{peer.key}_b")
        self.peer_cmd(peer, dsn, "setup", timeout=dl.left(60))
        lat_file = os.path.join(self.cfg.run_dir, f"{peer.key}_latency.txt")
        open(lat_file, "w").close()
        self.checkpoint()
        w = self.spawn_worker(peer, dsn, 99, lat_file)
        try:
            time.sleep(1.0)
            warm = self.cfg.latency_warmup
            self.peer_cmd(
                peer,
                dsn,
                "enqueue-paced",
                "--n",
                str(warm),
                "--rate",
                "20",
                "--tag",
                "w",
                timeout=dl.left(60),
            )
            self._wait_lines(lat_file, "w", warm, dl.left(30), w)
            time.sleep(1.0)  # worker idle, listening
            sent = self.peer_cmd(
                peer,
                dsn,
                "enqueue-paced",
                "--n",
                str(self.cfg.latency_n),
                "--rate",
                str(self.cfg.rate),
                "--tag",
                "m",
                timeout=dl.left(90),
            )
            got = self._wait_lines(lat_file, "m", self.cfg.latency_n, dl.left(30), w)
        finally:
            self.stop_workers([w])
        with psycopg.connect(dsn, autocommit=True) as conn:
            done = peer.done(conn, warm + self.cfg.latency_n)
        self.drop_db(f"{peer.key}_b")
        vals = sorted(float(ln.split()[2]) for ln in open(lat_file) if ln.startswith("m "))
        return {
            "jobs": self.cfg.latency_n,
            "target_rate": self.cfg.rate,
            "enqueuer": sent,
            "latencies_recorded": got,
            "completed_in_db": done,
            "ok": got == self.cfg.latency_n and done == warm + self.cfg.latency_n,
            "p50_ms": round(pct(vals, 50), 2),
            "p95_ms": round(pct(vals, 95), 2),
            "p99_ms": round(pct(vals, 99), 2),
            "max_ms": round(vals[-1], 2) if vals else None,
            "mean_ms": round(sum(vals) / len(vals), 2) if vals else None,
        }

    @staticmethod
    def _wait_lines(path: str, tag: str, want: int, timeout: float, w) -> int:
        end = time.monotonic() + timeout
        while True:
            with open(path) as f:
                got = sum(1 for ln in f if ln.startswith(tag + " "))
            if got >= want or time.monotonic() > end:
                return got
            if w.poll() is not None:
                raise RuntimeError(f"worker exited with rc={w.returncode} (see its log)")
            time.sleep(0.1)

    # ------------------------------------------------------------ per peer

    def run_peer(self, peer: Peer) -> dict:
        out: dict = {"label": peer.label}
        try:
            out["version"] = peer.version()
        except Exception as e:
            out["version"] = None
            out["error"] = f"not installed: {e}"
            return out
        dl = Deadline(self.cfg.peer_budget)
        out["A"] = []
        steps = [("A", p) for p in self.cfg.procs] + [("B", (1, False))]
        if self.cfg.long_n:
            # the long burn-down, where steady state dominates: every configuration for us,
            # the batching one for the peers that have knobs (their defaults would take minutes)
            out["L"] = []
            long = self.cfg.long_procs if peer.key == "jobserver" else [(1, True)]
            steps += [("L", p) for p in long if not p[1] or peer.supports_tuned]
        for kind, (procs, tuned) in steps:
            name = (
                f"{kind} procs={procs}{' tuned' if tuned else ''}"
                + (f" n={self.cfg.long_n}" if kind == "L" else "")
                if kind != "B"
                else "B latency"
            )
            log(f"{peer.label}: {name}")
            if tuned and not peer.supports_tuned:
                out["A"].append({"procs": procs, "tuned": True, "error": "n/a (no batching knobs)"})
                continue
            try:
                if dl.left(1e9) < 5:
                    raise BudgetExhausted(name)
                if kind in ("A", "L"):
                    n = self.cfg.long_n if kind == "L" else None
                    r = self.throughput(peer, procs, tuned, dl, n)
                    out[kind].append(r)
                    log(
                        f"  enqueue {r['enqueue_jobs_s']}/s, process {r['process_jobs_s']}/s "
                        f"(steady {r.get('steady_jobs_s')}), completed {r['completed']}/{r['n']}"
                    )
                else:
                    r = out["B"] = self.latency(peer, dl)
                    log(
                        f"  p50 {r['p50_ms']} p95 {r['p95_ms']} p99 {r['p99_ms']} ms, "
                        f"recorded {r['latencies_recorded']}, in db {r['completed_in_db']}"
                    )
            except (BudgetExhausted, subprocess.TimeoutExpired) as e:
                err = {"error": f"skipped/timed out (peer budget {self.cfg.peer_budget}s): {e}"}
                log(f"  {err['error']}")
                out[kind].append(
                    {"procs": procs, "tuned": tuned, **err}
                ) if kind != "B" else out.update(B=err)
            except Exception as e:
                err = {"error": str(e)[-1500:]}
                log(f"  FAILED: {err['error']}")
                out[kind].append(
                    {"procs": procs, "tuned": tuned, **err}
                ) if kind != "B" else out.update(B=err)
        return out

    # ------------------------------------------------------------ workload C

    PGB_SETUP = """
        CREATE TABLE pb_jobs (
            id bigserial PRIMARY KEY,
            status text NOT NULL DEFAULT 'queued',
            payload jsonb NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT now()
        )"""
    PGB_3TX = (
        "INSERT INTO pb_jobs (payload) VALUES ('{}') RETURNING id \\gset\n"
        "UPDATE pb_jobs SET status = 'running' WHERE id = :id;\n"
        "DELETE FROM pb_jobs WHERE id = :id;\n"
    )
    PGB_1TX = "BEGIN;\n" + PGB_3TX + "COMMIT;\n"

    def pgbench(self) -> dict:
        dsn = self.fresh_db("pgbench_c")
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(self.PGB_SETUP)
        out = {
            "clients": self.cfg.pgb_clients,
            "seconds": self.cfg.pgb_seconds,
            "threads": 2,
            "protocol": "prepared",
            "scripts": {},
        }
        for name, script in (("3tx", self.PGB_3TX), ("1tx", self.PGB_1TX)):
            path = os.path.join(self.cfg.run_dir, f"pgbench_{name}.sql")
            with open(path, "w") as f:
                f.write(script)
            self.checkpoint()
            argv = [
                os.path.join(self.cfg.pgbin, "pgbench"),
                "-n",
                "-M",
                "prepared",
                "-c",
                str(self.cfg.pgb_clients),
                "-j",
                "2",
                "-T",
                str(self.cfg.pgb_seconds),
                "-f",
                path,
                "-h",
                self.cfg.host,
                "-p",
                str(self.cfg.port),
                "-U",
                "postgres",
                "pgbench_c",
            ]
            log(f"pgbench {name}: {' '.join(argv[1:])}")
            try:
                r = subprocess.run(
                    argv, capture_output=True, text=True, timeout=self.cfg.pgb_seconds + 60
                )
                with open(os.path.join(self.cfg.run_dir, f"pgbench_{name}.out"), "w") as f:
                    f.write(r.stdout + r.stderr)
                m = re.search(r"tps = ([0-9.]+) \(without initial", r.stdout)
                lat = re.search(r"latency average = ([0-9.]+) ms", r.stdout)
                fails = re.search(r"number of failed transactions: (\d+)", r.stdout)
                tps = float(m.group(1)) if m else None
                out["scripts"][name] = {
                    "jobs_per_s": round(tps, 1) if tps else None,
                    "commits_per_s": round(tps * (3 if name == "3tx" else 1), 1) if tps else None,
                    "latency_avg_ms": float(lat.group(1)) if lat else None,
                    "failed_tx": int(fails.group(1)) if fails else None,
                    "rc": r.returncode,
                }
                log(f"  {out['scripts'][name]}")
            except Exception as e:
                out["scripts"][name] = {"error": str(e)}
        return out

    def fsync_probe(self) -> dict:
        """pg_test_fsync on the cluster's disk: the raw single-writer commit ceiling."""
        path = os.path.join(self.cfg.work_dir, "pg_test_fsync.tmp")
        argv = [os.path.join(self.cfg.pgbin, "pg_test_fsync"), "-s", "1", "-f", path]
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=90)
        finally:
            if os.path.exists(path):
                os.unlink(path)
        with open(os.path.join(self.cfg.run_dir, "pg_test_fsync.out"), "w") as f:
            f.write(r.stdout + r.stderr)
        sec = r.stdout.split("Compare file sync methods using one 8kB write", 1)[-1]
        sec = sec.split("Compare file sync methods using two", 1)[0]
        ops = {
            m.group(1): float(m.group(2))
            for m in re.finditer(r"^\s+(\S+)\s+([0-9.]+) ops/sec", sec, re.M)
        }
        return {"one_8kB_write_ops_per_s": ops}


# ---------------------------------------------------------------- report


def table(res: dict) -> str:
    lines = [
        f"N={res['params']['n']} no-op jobs, enqueue batches of {res['params']['batch']}, "
        f"concurrency {res['params']['concurrency']}/process; procs 't' = peer batching knobs; "
        f"latency = {res['params']['latency_n']} jobs at {res['params']['rate']:.0f}/s, ms; "
        f"L = the long burn-down of {res['params'].get('long_n')} jobs"
    ]
    hdr = (
        f"{'peer':<16}{'procs':>5} {'enq jobs/s':>11} {'proc jobs/s':>12} {'steady/s':>9} "
        f"{'ok':>3}  {'lat p50':>8} {'p95':>8} {'p99':>8}"
    )
    lines += [hdr, "-" * len(hdr)]
    for _key, p in res["peers"].items():
        b = p.get("B") or {}
        latcols = (
            f"{b.get('p50_ms', '-'):>8} {b.get('p95_ms', '-'):>8} {b.get('p99_ms', '-'):>8}"
            if "p50_ms" in b
            else f"{'(' + str(b.get('error', 'n/a'))[:30] + ')':>26}"
        )
        rows = (p.get("A") or [{"error": p.get("error", "n/a")}]) + [
            {**r, "long": True} for r in p.get("L", [])
        ]
        for i, a in enumerate(rows):
            if "error" in a and "enqueue_jobs_s" not in a:
                txt = a["error"] if a["error"].startswith("n/a") else "error: " + a["error"]
                mid = f"{txt[:46]:>46}"
            else:
                mid = (
                    f"{a['enqueue_jobs_s']:>11} {a['process_jobs_s']:>12} "
                    f"{a.get('steady_jobs_s', '-')!s:>9} {'y' if a['ok'] else 'N':>3}"
                )
            pr = f"{a.get('procs', '')}{'t' if a.get('tuned') else ''}"
            pr += " L" if a.get("long") else ""
            lines.append(
                f"{p['label'] if i == 0 else '':<16}{pr:>5} {mid}  " + (latcols if i == 0 else "")
            )
    pg = res.get("pgbench", {}).get("scripts", {})
    if pg:
        s3, s1 = pg.get("3tx", {}), pg.get("1tx", {})
        lines.append("")
        lines.append(f"pgbench (8 clients, {res['pgbench']['seconds']}s, INSERT+UPDATE+DELETE):")
        lines.append(
            f"  3 commits/job : {s3.get('jobs_per_s')} jobs/s = {s3.get('commits_per_s')} commits/s"
        )
        lines.append(f"  1 commit/job  : {s1.get('jobs_per_s')} jobs/s")
    fs = res.get("fsync", {}).get("one_8kB_write_ops_per_s")
    if fs:
        lines.append(
            "pg_test_fsync one 8kB write (ops/s): "
            + ", ".join(f"{k} {v:.0f}" for k, v in fs.items())
        )
    lines.append("versions: " + "; ".join(str(p.get("version")) for p in res["peers"].values()))
    st = res["postgres"]["settings"]
    lines.append(
        "postgres: "
        + res["postgres"]["version"].split(" on ")[0]
        + "; "
        + ", ".join(
            f"{k}={st[k]}"
            for k in (
                "shared_buffers",
                "max_connections",
                "fsync",
                "synchronous_commit",
                "wal_sync_method",
            )
            if k in st
        )
    )
    lines.append(
        f"load average before: {res['machine']['loadavg_before']}, "
        f"after: {res['machine'].get('loadavg_after')}"
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pgbin", required=True)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--node-dir", required=True)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--jobserver-python", default=sys.executable)
    ap.add_argument("--peers", default="jobserver,pgqueuer,procrastinate,graphile")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--procs", default="1,2,1t")
    ap.add_argument("--long-n", type=int, default=200000, help="the long burn-down; 0: none")
    ap.add_argument("--long-procs", default="1,2,1t", help="jobserver's long configurations")
    ap.add_argument("--pg-data", default="", help="the cluster's data directory (its CPU)")
    ap.add_argument(
        "--profile", action="store_true", help="pg_stat_statements per workload (not for ratios)"
    )
    ap.add_argument("--latency-n", type=int, default=500)
    ap.add_argument("--latency-warmup", type=int, default=10)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--enqueue-timeout", type=float, default=90)
    ap.add_argument("--process-timeout", type=float, default=90)
    ap.add_argument("--peer-budget", type=float, default=200)
    ap.add_argument("--pgb-clients", type=int, default=8)
    ap.add_argument("--pgb-seconds", type=int, default=20)
    ap.add_argument("--skip-pgbench", action="store_true")
    ap.add_argument("--out", required=True)
    ap.add_argument("--uptime-before", default="")
    cfg = ap.parse_args()
    # "1,2,1t": one process, two processes, one process with the peer's batching knobs
    cfg.procs = [(int(x.rstrip("t")), x.endswith("t")) for x in cfg.procs.split(",") if x]
    cfg.long_procs = [(int(x.rstrip("t")), x.endswith("t")) for x in cfg.long_procs.split(",") if x]
    cfg.dsn_base = f"postgresql://postgres@{cfg.host}:{cfg.port}"

    def on_term(signum, frame):
        raise SystemExit(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    b = Bench(cfg)
    with psycopg.connect(b.admin_dsn) as c:
        pgver = c.execute("SELECT version()").fetchone()[0]
        settings = dict(
            c.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s) "
                "ORDER BY name",
                (
                    [
                        "listen_addresses",
                        "port",
                        "shared_buffers",
                        "max_connections",
                        "fsync",
                        "synchronous_commit",
                        "full_page_writes",
                        "wal_sync_method",
                        "wal_level",
                        "wal_buffers",
                        "checkpoint_timeout",
                        "max_wal_size",
                        "autovacuum",
                        "work_mem",
                        "commit_delay",
                        "effective_io_concurrency",
                    ],
                ),
            ).fetchall()
        )
    res = {
        "run_id": os.path.basename(cfg.run_dir),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "nproc": os.cpu_count(),
            "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "uptime_before": cfg.uptime_before,
            "loadavg_before": loadavg(),
        },
        "postgres": {"version": pgver, "settings": settings},
        "params": {
            k: getattr(cfg, k)
            for k in (
                "n",
                "batch",
                "concurrency",
                "procs",
                "long_n",
                "latency_n",
                "latency_warmup",
                "rate",
                "enqueue_timeout",
                "process_timeout",
                "peer_budget",
                "pgb_clients",
                "pgb_seconds",
            )
        },
        "peers": {},
    }
    try:
        for key in [k for k in cfg.peers.split(",") if k]:
            res["peers"][key] = b.run_peer(PEERS[key](cfg))
        if not cfg.skip_pgbench:
            res["pgbench"] = b.pgbench()
            log("pg_test_fsync -s 1")
            try:
                res["fsync"] = b.fsync_probe()
            except Exception as e:
                res["fsync"] = {"error": str(e)}
    finally:
        b.stop_workers(list(CHILDREN.values()))
        res["machine"]["loadavg_after"] = loadavg()
        res["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        with open(cfg.out, "w") as f:
            json.dump(res, f, indent=2)
    print()
    print(table(res))


if __name__ == "__main__":
    main()
