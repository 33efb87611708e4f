"""Scenario 3: a worker cut off from PostgreSQL by a network partition, then healed.

The worker runs in its own network namespace and reaches a dedicated PostgreSQL over a veth
pair (10.200.N.1 <-> 10.200.N.2/30, made by the test on this machine only; the cluster listens
on 127.0.0.1 and 10.200.N.1 and trusts that /30). While it holds jobs the link goes down: the
jobs finish inside the partition but their outcome cannot be written. The leases expire, the
rescuer re-queues the jobs and a worker on the host finishes them. Then the link comes back: the
zombie's late writes are fenced off (the rows do not change; the worker logs each dropped write
and counts it in jobserver_worker_fenced_writes_total). Skipped only where the kernel refuses
network namespaces.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from jobserver.config import Settings
from jobserver.db import migrate
from jobserver.db.jobs import NewJob, job_insert_many
from jobserver.db.pool import create_pool
from jobserver.testing.cluster import LocalCluster
from tests.faults.conftest import Row, prepare
from tests.faults.helpers import (
    LEASE,
    RESCUE,
    Procs,
    active_workers,
    audit,
    scaled,
    wait_for,
    wait_terminal,
)

pytestmark = [pytest.mark.faults, pytest.mark.scenario("3. network partition")]

JOBS = scaled(10, 50)
SLACK = 1.0  # rescue transaction + heartbeat phase on a loaded machine


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class Link:
    """A network namespace joined to the host by a veth pair; removed by `close()`."""

    def __init__(self) -> None:
        n = os.getpid() % 250 + 1
        self.ns = f"jsfaults{os.getpid()}"
        self.host_if = f"jsf{os.getpid() % 100000}h"
        self.ns_if = f"jsf{os.getpid() % 100000}n"
        self.host_ip = f"10.200.{n}.1"
        self.ns_ip = f"10.200.{n}.2"

    def open(self) -> None:
        try:
            ip("netns", "add", self.ns)
        except subprocess.CalledProcessError as e:  # the kernel (or our privileges) said no
            detail = getattr(e, "stderr", "") or str(e)
            pytest.skip(f"network namespaces refused here (ip netns add: {detail.strip()})")
        ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        ip("link", "set", self.ns_if, "netns", self.ns)
        ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        ip("link", "set", self.host_if, "up")
        ip("netns", "exec", self.ns, "ip", "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
        ip("netns", "exec", self.ns, "ip", "link", "set", self.ns_if, "up")
        ip("netns", "exec", self.ns, "ip", "link", "set", "lo", "up")

    def cut(self) -> None:
        ip("link", "set", self.host_if, "down")

    def heal(self) -> None:
        ip("link", "set", self.host_if, "up")

    def close(self) -> None:
        ip("link", "del", self.host_if, check=False)
        ip("netns", "del", self.ns, check=False)


@pytest.fixture
def link() -> Iterator[Link]:
    if not os.path.exists("/usr/sbin/ip") and not os.path.exists("/sbin/ip"):
        # a missing tool is a set-up error, not a refusal by the kernel: ./scripts/test installs it
        pytest.fail(
            "iproute2 (ip) is not installed: apt-get install iproute2 (./scripts/test does)"
        )
    lk = Link()
    try:
        lk.open()
        yield lk
    finally:
        lk.close()


@pytest.fixture
def cluster(link: Link) -> Iterator[LocalCluster]:
    """A PostgreSQL that also listens on the host end of the veth pair."""
    c = LocalCluster(settings={"listen_addresses": f"'127.0.0.1,{link.host_ip}'"})
    try:
        c.start()
        with open(os.path.join(c.data_dir, "pg_hba.conf"), "a") as f:
            f.write(f"host all all {link.host_ip.rsplit('.', 1)[0]}.0/30 trust\n")
        c.pg_ctl("reload")
        yield c
    finally:
        c.stop()


async def test_partitioned_worker_is_fenced_off(
    link: Link, cluster: LocalCluster, report: Row
) -> None:
    url = cluster.url()
    await migrate.upgrade_async(url)
    pool = await create_pool(url, Settings(), max_size=4)
    procs = Procs(url)
    try:
        await prepare(pool)
        procs.scheduler("sched")
        ns_url = f"postgresql://postgres@{link.host_ip}:{cluster.port}/postgres"
        zombie = procs.worker(
            "zombie", "--concurrency", str(JOBS), env={"DATABASE_URL": ns_url}, netns=link.ns
        )
        await wait_for(lambda: active_workers(pool, ["zombie"]), within=20)
        async with pool.acquire() as conn, conn.transaction():
            ids = await job_insert_many(
                conn,
                [
                    NewJob("faults.work", 1, 3, params={"ms": 1500, "end": False})
                    for _ in range(JOBS)
                ],
            )

        async def zombie_holds_all() -> bool:
            n = await pool.fetchval(
                "SELECT count(*) FROM fault_ledger WHERE worker_id = 'zombie' AND job_id = ANY($1)",
                ids,
            )
            return n == len(ids)

        await wait_for(zombie_holds_all, within=20)
        link.cut()
        cut_at = time.time()
        procs.worker("healthy", "--concurrency", str(JOBS))
        await wait_terminal(pool, ids, 30, procs)
        before = await pool.fetch(
            "SELECT id, status, worker_id, attempt, result, finished_at FROM jobs"
            " WHERE id = ANY($1) ORDER BY id",
            ids,
        )
        assert all(r["worker_id"] == "healthy" and r["attempt"] == 2 for r in before), before
        rescued = await pool.fetchval(
            "SELECT extract(epoch FROM max(at))::float8 FROM job_events"
            " WHERE job_id = ANY($1) AND event = 'rescued'",
            ids,
        )
        link.heal()

        def fenced_ids() -> set[str]:
            return {
                r.get("jobId", "")
                for r in zombie.log_records()
                if r.get("msg", "").startswith("write fenced off")
            }

        async def all_fenced() -> bool:
            return fenced_ids() >= {str(i) for i in ids}

        await wait_for(all_fenced, within=scaled(60, 120), step=0.25)
        after = await pool.fetch(
            "SELECT id, status, worker_id, attempt, result, finished_at FROM jobs"
            " WHERE id = ANY($1) ORDER BY id",
            ids,
        )
        a = await audit(pool, ids)
        report.accepted, report.terminal, report.duplicates = a.accepted, a.terminal, a.duplicates
        report.why = a.why()
        report.recovery_s = rescued - cut_at
        report.note = (
            f"{JOBS} jobs held by a worker in netns {link.ns}; recovery = cut -> last rescue;"
            f" {len(fenced_ids())} late writes fenced off after the heal"
        )
        assert [tuple(r) for r in after] == [tuple(r) for r in before], "a zombie write landed"
        a.assert_clean()
        assert a.by_status == {"succeeded": JOBS}
        assert a.explained == {"lease expired": JOBS}
        assert rescued - cut_at <= LEASE + RESCUE + SLACK
        assert zombie.alive()  # it survived the partition and carries on
    finally:
        procs.close()
        await pool.close()
