"""The runner commands of the control channel: their names, arguments and limits.

The API writes them (jobserver/api/control.py), workers act on them
(jobserver/worker/control.py); both read these names.

| command | args | a worker's reply |
| --- | --- | --- |
| `ping` | | `{"pong": true}` |
| `status` | | its state, jobs, concurrency, queues, paused queues, reloadable settings |
| `shutdown` | `mode`: graceful / immediate | `{"mode", "stopping": true}`, then it stops |
| `pause` / `resume` | | `{"paused", "changed"}`: its own claims stop / start again |
| `reload` | | `{"changed": {ENV: {"from", "to"}}, "ignored": {ENV: why}}` or `{"error"}` |
| `paused_queues` | | `{"pausedQueues": [...]}` once it re-read the paused queues |

Every command may carry `queue` in its args: only the workers that take jobs of that queue act
on it. `paused_queues` is not sent by clients: a queue's pause and resume send it.
"""

from __future__ import annotations

PING = "ping"
STATUS = "status"
SHUTDOWN = "shutdown"
PAUSE = "pause"
RESUME = "resume"
RELOAD = "reload"
PAUSED_QUEUES = "paused_queues"

# What `POST /v1/runners/broadcast` accepts.
BROADCAST_COMMANDS = (STATUS, SHUTDOWN, PAUSE, RESUME, RELOAD)
SHUTDOWN_MODES = ("graceful", "immediate")

# How long the API waits for replies (milliseconds).
MIN_TIMEOUT_MS = 1
MAX_TIMEOUT_MS = 60_000
DEFAULT_TIMEOUT_MS = 5_000

# Commands and replies are kept this long (the scheduler's pruner).
RETENTION_SECONDS = 86400.0
