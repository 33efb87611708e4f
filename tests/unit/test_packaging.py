"""pyproject.toml lists every package the wheel needs: each directory of Python files under
jobserver/, definitions/ and migrations/ must be a listed package, under the name its
package-dir mapping gives it (tests/system/test_wheel.py builds and installs the real wheel)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _source_dir(package: str) -> Path:
    """Where setuptools reads `package` from: the longest package-dir prefix, else its path."""
    mapping: dict[str, str] = SETUPTOOLS.get("package-dir", {})
    parts = package.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in mapping:
            return ROOT / mapping[prefix] / Path(*parts[n:])
    return ROOT / Path(*parts)


def _packages_on_disk() -> set[str]:
    found = {"jobserver"}
    trees = {"jobserver": "jobserver", **SETUPTOOLS.get("package-dir", {})}
    for package, where in trees.items():
        for init in (ROOT / where).rglob("*.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(ROOT / where).parts
            found.add(".".join((package, *rel)))
    return found


def test_every_source_directory_is_a_listed_package() -> None:
    assert set(SETUPTOOLS["packages"]) == _packages_on_disk()


def test_listed_packages_exist_where_the_mapping_says() -> None:
    for package in SETUPTOOLS["packages"]:
        assert any(_source_dir(package).glob("*.py")), package


def test_nothing_installs_at_the_top_level_but_jobserver() -> None:
    assert {p.split(".")[0] for p in SETUPTOOLS["packages"]} == {"jobserver"}
