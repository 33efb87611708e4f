"""The generated pages of docs/ match the code, and the job-type examples would be accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobserver.docsgen import __main__ as gen
from jobserver.docsgen import job_types
from jobserver.validation import compile_schema

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("page", sorted(gen.PAGES))
def test_generated_page_is_current(page: str) -> None:
    assert (DOCS / page).read_text() == gen.PAGES[page](), (
        f"docs/{page} is stale: run python -m jobserver.docsgen"
    )


def test_check_mode_names_a_stale_page(tmp_path: Path) -> None:
    for page, render in gen.PAGES.items():
        (tmp_path / page).write_text(render())
    assert gen.main(["--check", str(tmp_path)]) == 0
    (tmp_path / "api.md").write_text("old\n")
    assert gen.main(["--check", str(tmp_path)]) == 1
    assert (tmp_path / "api.md").read_text() == "old\n"


def test_every_shipped_definition_has_an_accepted_example() -> None:
    defs = job_types.definitions()
    assert {d.key for d in defs} == set(job_types.EXAMPLES)
    for d in defs:
        params = job_types.EXAMPLES[d.key]
        assert compile_schema(d.params_schema)(params) is None, d.ref
        if d.check_params is not None:
            assert d.check_params(params) == [], d.ref
