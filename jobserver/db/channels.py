"""LISTEN/NOTIFY channel names shared by the API, workers and the scheduler.

- `JOBS_CHANNEL`: sent once per submitting transaction (payload: the queue name, or "*" for
  several); idle workers wake and claim.
- `CANCEL_CHANNEL`: sent when a running job is asked to cancel (payload: the job id); the worker
  holding it sets `ctx.cancelled`.
- `CONTROL_CHANNEL`: sent when a runner command is written (payload: "<command id> <target>",
  target a worker id or "*" for all); workers act on it and write a reply row
  (jobserver/db/runner_commands.py).
- `REPLY_CHANNEL`: sent with each reply row (payload: "<command id> <worker id>"); the API
  waiting on the command wakes.
"""

JOBS_CHANNEL = "jobserver_jobs"
CANCEL_CHANNEL = "jobserver_cancel"
CONTROL_CHANNEL = "jobserver_control"
REPLY_CHANNEL = "jobserver_replies"
