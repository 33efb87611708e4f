"""A built wheel, installed (not editable) into a fresh virtualenv outside the checkout, migrates,
registers its definitions and runs a job: nothing it needs may live only in the repository.

The wheel is built from a copy of the files a build reads (pyproject.toml, README.md and the three
source trees), so the checkout stays clean and a build that reached for anything else fails. The
build backend (an isolated build, as users get) and the wheel's dependencies come from the package
index pip is configured with; pip's cache keeps a rerun at about 20 s.
Every command runs with the temp directory as cwd and no PYTHONPATH, so nothing of the checkout
is importable there (checked).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jobserver.testing.cluster import free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BUILD_INPUTS = ["pyproject.toml", "README.md", "jobserver", "definitions", "migrations"]
# where each source tree lands inside the wheel (pyproject.toml, [tool.setuptools.package-dir])
INSTALLED_AS = {
    "jobserver": "jobserver",
    "definitions": "jobserver/definitions",
    "migrations": "jobserver/migrations",
}
STEP_TIMEOUT = 180


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    cwd: Path

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
        }
        env["PATH"] = os.pathsep.join([str(self.venv / "bin"), env.get("PATH", "")])
        env["PYTHONNOUSERSITE"] = "1"
        env["LOG_FORMAT"] = "text"
        return {**env, **extra}

    def run(self, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv),
            env=self.env(**env),
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
        )


def _check(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}:\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    src, dist, venv, cwd = (base / n for n in ("src", "dist", "venv", "cwd"))
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    src.mkdir()
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    cwd.mkdir()
    _check(
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
        )
    )
    [wheel] = dist.glob("jobserver-*.whl")
    _check(
        subprocess.run(
            [sys.executable, "-m", "venv", str(venv)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
        )
    )
    inst = Installed(wheel, venv, cwd)
    _check(inst.run(inst.bin("python"), "-m", "pip", "install", "-q", str(wheel)))
    return inst


def test_wheel_holds_every_source_file_and_no_other_top_level(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"jobserver", "jobserver-0.1.0.dist-info"}, tops
    expected = {
        f"{INSTALLED_AS[tree]}/{path.relative_to(ROOT / tree).as_posix()}"
        for tree in INSTALLED_AS
        for path in (ROOT / tree).rglob("*")
        if path.suffix in (".py", ".mako") and "__pycache__" not in path.parts
    }
    assert expected - names == set()
    # the dashboard's static files (package data of jobserver.ui)
    static = ROOT / "jobserver" / "ui" / "static"
    shipped = {f"jobserver/ui/static/{p.relative_to(static).as_posix()}" for p in static.rglob("*")}
    assert {n for n in shipped if "." in n.rsplit("/", 1)[-1]} - names == set()


def test_nothing_of_the_checkout_is_importable(installed: Installed) -> None:
    probe = """
import importlib.util, json, sys
import jobserver, jobserver.definitions, jobserver.migrations
files = [m.__file__ for m in (jobserver, jobserver.definitions, jobserver.migrations)]
top = [importlib.util.find_spec(n) is not None for n in ("definitions", "migrations")]
print(json.dumps({"path": sys.path, "files": files, "top": top}))
"""
    seen: dict[str, Any] = json.loads(_check(installed.run(installed.bin("python"), "-c", probe)))
    site = str(installed.venv)
    assert all(f.startswith(site) for f in seen["files"]), seen["files"]
    assert not [p for p in seen["path"] if p.startswith(str(ROOT))], seen["path"]
    assert seen["top"] == [False, False]  # no top-level `definitions` or `migrations` installed


def _http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@contextlib.contextmanager
def serve_api(installed: Installed, database_url: str) -> Iterator[str]:
    """The installed `jobserver-api` on a free port once it answers /healthz (auth disabled:
    this test is about packaging, tests/api covers tokens); yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [installed.bin("jobserver-api"), "--host", "127.0.0.1", "--port", str(port)],
        env=installed.env(DATABASE_URL=database_url, JOBSERVER_AUTH="disabled"),
        cwd=installed.cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert proc.poll() is None, f"jobserver-api exited:\n{proc.communicate()[1]}"
            try:
                return bool(_http("GET", f"{base}/healthz")[0] == 200)
            except OSError:
                return False

        wait_until(healthy, within=30)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_installed_wheel_migrates_registers_and_runs_a_job(
    installed: Installed, empty_database_url: str
) -> None:
    db = {"DATABASE_URL": empty_database_url}
    migrated = _check(installed.run(installed.bin("jobserver"), "migrate", **db))
    assert "database migrated to head" in migrated
    registered = _check(installed.run(installed.bin("register-definitions"), **db)).splitlines()
    assert "echo@1: created" in registered

    with serve_api(installed, empty_database_url) as api:
        body = {"definitionKey": "echo", "definitionVersion": 1, "params": {"message": "wheel"}}
        status, job = _http("POST", f"{api}/v1/jobs", body)
        assert status == 201, job
        _check(installed.run(installed.bin("jobserver-worker"), "--burst", **db))
        status, done = _http("GET", f"{api}/v1/jobs/{job['id']}")
    assert status == 200, done
    assert (done["status"], done["result"]) == ("succeeded", {"message": "wheel"})
