"""The README stays true: its two set-up commands exist, and it documents every setting."""

from __future__ import annotations

import os
import re
from pathlib import Path

from jobserver.config import FIELDS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_readme_opens_with_two_commands() -> None:
    block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert block is not None and README.index("```sh") < README.index("\n## ")
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert commands == ["./scripts/up", "./scripts/test"]
    for cmd in commands:
        assert os.access(ROOT / cmd, os.X_OK), cmd


def test_ci_runs_the_test_command() -> None:
    ci = ROOT / ".ci" / "run"
    assert os.access(ci, os.X_OK)
    assert "./scripts/test" in ci.read_text()


def test_every_setting_is_documented() -> None:
    rows = {
        m.group(1): m.group(2) for m in re.finditer(r"^\| `([A-Z_]+)` \| ([^|]+) \|", README, re.M)
    }
    assert set(rows) == {f.env for f in FIELDS.values()}, "run scripts/config-table"
    for f in FIELDS.values():
        assert rows[f.env].strip() == f.shown_default(), f"{f.env}: run scripts/config-table"


def test_make_targets() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("up", "test", "lint", "fmt", "migrate"):
        assert re.search(rf"^{target}:", makefile, re.M), target
