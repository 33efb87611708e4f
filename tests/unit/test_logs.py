"""JSON log lines: one object per line through the codec, and a log call never raises."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid

from jobserver.logs import JsonFormatter, job_id_var


def _record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("jobserver.test", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    rec.__dict__.update(extra)
    return rec


def test_line_carries_message_context_and_extra() -> None:
    token = job_id_var.set("j-1")
    try:
        t = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        line = JsonFormatter().format(_record(at=t, id=uuid.UUID(int=1), n=2**70))
    finally:
        job_id_var.reset(token)
    entry = json.loads(line)
    assert "\n" not in line
    assert (entry["msg"], entry["level"], entry["jobId"]) == ("hello x", "info", "j-1")
    assert entry["at"] == "2024-01-01T00:00:00+00:00"
    assert entry["id"] == str(uuid.UUID(int=1)) and entry["n"] == 2**70


class _Odd:
    def __str__(self) -> str:
        return "odd thing"


class _Broken:
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_unknown_objects_are_written_as_text_and_never_raise() -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    line = JsonFormatter().format(_record(obj=_Odd(), bad=_Broken(), cycle=cycle, k=1))
    entry = json.loads(line)
    assert entry["obj"] == "odd thing" and entry["k"] == 1
    assert entry["bad"].startswith("<unprintable _Broken")
    assert entry["cycle"] == "[[...]]"


def test_text_lines_escape_control_characters_in_message_and_extras() -> None:
    from jobserver.logs import TextFormatter

    rec = logging.LogRecord(
        "jobserver.test", logging.INFO, __file__, 1, "got %s", ("a\nFAKE b\r\x1b[31mred",), None
    )
    rec.__dict__.update({"path": "/x\n12:00:00 ERROR forged", "tab\tkey": "\x7f\x85\u2028"})
    line = TextFormatter().format(rec)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "got a\\nFAKE b\\r\\x1b[31mred" in line
    assert "path=/x\\n12:00:00 ERROR forged" in line
    assert "tab\\tkey=\\x7f\\x85\\u2028" in line


def test_text_traceback_lines_are_indented_and_escaped() -> None:
    from jobserver.logs import TextFormatter

    try:
        raise ValueError("boom\n12:00:00 INFO    forged: line\x1b[2J")
    except ValueError:
        import sys

        rec = logging.LogRecord(
            "jobserver.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    lines = TextFormatter().format(rec).splitlines()
    assert lines[0].endswith("failed")
    assert all(ln.startswith("    ") for ln in lines[1:]) and len(lines) > 2
    assert not any(ln.startswith("12:00:00") for ln in lines)
    assert "\x1b" not in "".join(lines)
