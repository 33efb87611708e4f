"""The process supervisor inside `jobserver up`: stop order, escalation, crash detection, and
children that die with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from jobserver.cli.up import Child, Supervisor

ROOT = Path(__file__).resolve().parents[2]
STUB = "tests.system.child_stub"


def _env(tmp_path: Path, mode: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CHILD_MODE": mode,
        "CHILD_READY": str(tmp_path / f"ready-{mode}"),
    }


def _wait_ready(path: Path, count: int = 1, limit: float = 20.0) -> list[int]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if path.exists():
            pids = [int(x) for x in path.read_text().split()]
            if len(pids) >= count:
                return pids
        time.sleep(0.02)
    raise AssertionError(f"{path} not written in {limit}s")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_stop_terminates_children(tmp_path: Path) -> None:
    sup = Supervisor(_env(tmp_path, "obedient"), 5.0, [Child("a", STUB), Child("b", STUB)])
    sup.start()
    try:
        _wait_ready(tmp_path / "ready-obedient", 2)
        assert sup.first_exited() is None
        started = time.monotonic()
        sup.stop()
        assert time.monotonic() - started < 5
        assert [c.returncode for c in sup.children] == [0, 0]
        assert sup.killed == []
    finally:
        sup.signal_all(signal.SIGKILL)


def test_stubborn_child_is_killed_after_grace(tmp_path: Path) -> None:
    sup = Supervisor(_env(tmp_path, "stubborn"), 0.3, [Child("s", STUB)], kill_margin_seconds=0.2)
    sup.start()
    try:
        _wait_ready(tmp_path / "ready-stubborn")
        sup.stop()
        assert sup.killed == ["s"]
        assert sup.children[0].returncode == -signal.SIGKILL
    finally:
        sup.signal_all(signal.SIGKILL)


def test_crashed_child_is_reported(tmp_path: Path) -> None:
    sup = Supervisor(_env(tmp_path, "crash"), 1.0, [Child("c", STUB)])
    sup.start()
    try:
        deadline = time.monotonic() + 20
        exited = None
        while exited is None and time.monotonic() < deadline:
            exited = sup.first_exited()
            time.sleep(0.02)
        assert exited is not None and (exited.name, exited.returncode) == ("c", 3)
    finally:
        sup.stop()


def test_children_die_with_their_parent(tmp_path: Path) -> None:
    """Even when the parent is SIGKILLed, the kernel sends the children SIGTERM."""
    script = (
        "import sys, time\n"
        "from jobserver.cli.up import Child, Supervisor\n"
        "import os\n"
        f"sup = Supervisor(dict(os.environ), 1.0, [Child('x', {STUB!r})])\n"
        "sup.start()\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], env=_env(tmp_path, "obedient"))
    try:
        (child_pid,) = _wait_ready(tmp_path / "ready-obedient")
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while not _gone(child_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(child_pid)
    finally:
        if parent.poll() is None:
            parent.kill()
