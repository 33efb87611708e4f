"""`python -m jobserver.docsgen [--check] [DIR]`: write (or compare) the generated pages.

DIR defaults to ./docs. With `--check`, writes nothing and exits 1 naming the stale pages.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from jobserver.docsgen import api, job_types, metrics

PAGES: dict[str, Callable[[], str]] = {
    "api.md": api.render,
    "job-types.md": job_types.render,
    "metrics.md": metrics.render,
}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    rest = [a for a in argv if a != "--check"]
    out = Path(rest[0] if rest else "docs")
    stale = []
    for name, render in PAGES.items():
        path = out / name
        text = render()
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not check:
            path.write_text(text)
            print(f"wrote {path}")
    if check and stale:
        print("stale: " + ", ".join(stale) + " (run python -m jobserver.docsgen)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
