"""The command line `ssh.command` sends, run through a real `sh` as sshd runs it: in a session
of its own (`start_new_session`), its stdin a pipe the test holds open as the channel would.

Quoting keeps env values and the directory literal; the job's exit status is the line's; and
the watchdog kills the command's process group when stdin ends (the channel was closed), but
leaves alone what the command left running once it has ended.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobserver.definitions.ssh_command import remote_command
from tests.waiting import wait_until
from tests.worker.sshd import remote_processes


@pytest.fixture
def channel() -> Iterator[tuple[int, int]]:
    """(read end, write end) of a pipe standing for the channel's stdin."""
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        with contextlib.suppress(OSError):  # closed by the test
            os.close(fd)


def run(line: str, stdin: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", line],
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=20,
        start_new_session=True,  # the watchdog kills its process group: never the test's
    )


def marker() -> str:
    return f"3000.{secrets.randbelow(10**9):09d}"  # a unique sleep for pgrep


def test_env_values_and_the_directory_are_quoted_literally(
    tmp_path: Path, channel: tuple[int, int]
) -> None:
    hostile = 'it\'s $(echo pwned) `echo pwned` ; echo pwned "q" \\ *'
    where = tmp_path / "a dir'x"
    where.mkdir()
    line = remote_command(
        'printf "%s\\n" "$A"; printf "%s\\n" "$B"; pwd', str(where), {"A": hostile, "B": ""}
    )
    done = run(line, channel[0])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [hostile, "", str(where)]


def test_the_exit_status_is_the_commands_even_when_it_exits_itself(
    channel: tuple[int, int],
) -> None:
    assert run(remote_command("echo out; exit 7", None, {}), channel[0]).returncode == 7
    assert run(remote_command("false", None, {}), channel[0]).returncode == 1
    done = run(remote_command("echo ran", "/nonexistent/dir", {}), channel[0])
    assert done.returncode == 1 and "ran" not in done.stdout


def test_the_command_reads_nothing_from_the_channel(channel: tuple[int, int]) -> None:
    os.write(channel[1], b"not for the command\n")
    done = run(remote_command("cat; echo end", None, {}), channel[0])
    assert (done.returncode, done.stdout) == (0, "end\n")


def test_a_closed_channel_kills_the_command_and_its_children(
    channel: tuple[int, int],
) -> None:
    mark = marker()
    r, w = channel
    proc = subprocess.Popen(
        ["sh", "-c", remote_command(f"echo started; sleep {mark}; echo never", None, {})],
        stdin=r,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    os.close(r)
    try:
        wait_until(lambda: remote_processes(mark))
        os.close(w)  # the channel is gone
        wait_until(lambda: not remote_processes(mark))
        assert proc.wait(10) == -signal.SIGTERM
        assert proc.stdout is not None and proc.stdout.read() == b"started\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def session(sid: int) -> set[int]:
    """The pids of the processes in session `sid`."""
    done = subprocess.run(
        ["pgrep", "-s", str(sid)], capture_output=True, text=True, timeout=10, check=False
    )
    return {int(p) for p in done.stdout.split()}


def test_what_the_command_left_running_survives_its_end(channel: tuple[int, int]) -> None:
    mark = marker()
    r, w = channel
    proc = subprocess.Popen(
        ["sh", "-c", remote_command(f"sleep {mark} >/dev/null 2>&1 &", None, {})],
        stdin=r,
        start_new_session=True,  # its pid is its session id
    )
    try:
        assert proc.wait(10) == 0
        [left] = wait_until(lambda: remote_processes(mark))
        left_pid = int(left.split()[0])
        os.close(w)  # the channel closes after the command ended
        # once the watchdog's reader has seen the end and nothing but the sleep is left in the
        # session, no watchdog is there to kill it: it was stopped when the command ended
        wait_until(lambda: session(proc.pid) == {left_pid})
        assert remote_processes(mark) == [left]
    finally:
        for line in remote_processes(mark):
            os.kill(int(line.split()[0]), signal.SIGKILL)  # by pid: the one this test started
