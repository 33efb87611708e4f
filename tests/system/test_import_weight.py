"""The API process does not import SQLAlchemy or Alembic (schema tooling: +125 ms at start,
+13 MB per process); only migrations and the schema test need them."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import jobserver.cli.api
from jobserver.api.app import create_app
from jobserver.config import Settings

create_app(Settings())  # imports every route module, as the real start does
print(sorted(m for m in ("sqlalchemy", "alembic") if m in sys.modules))
"""


def test_the_api_process_imports_no_sqlalchemy() -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
