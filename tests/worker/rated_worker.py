"""`--module tests.worker.rated_worker`: the rate-limited test definitions in a worker process."""

from __future__ import annotations

from jobserver.registry import registry
from tests.worker.rated_defs import RATED

for _d in RATED.all():
    if (_d.key, _d.version) not in registry:
        registry.add(_d)
