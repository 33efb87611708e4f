"""A stand-in child process for the `jobserver up` supervisor tests.

Behaviour from CHILD_MODE: `obedient` exits 0 on SIGTERM, `stubborn` ignores SIGTERM, `crash`
exits 3 at once. Writes CHILD_READY (a path) once its signal handlers are in place.
"""

from __future__ import annotations

import os
import signal
import sys
import threading


def main() -> None:
    mode = os.environ.get("CHILD_MODE", "obedient")
    if mode == "crash":
        sys.exit(3)
    stop = threading.Event()
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ready = os.environ.get("CHILD_READY")
    if ready:
        with open(ready, "a") as f:
            f.write(f"{os.getpid()}\n")
    while not stop.wait(0.05):
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
