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
- `FEED_CHANNEL`: sent by the statements that change jobs' status or progress while some API
  streams them (payload: up to 200 job ids, comma-separated; jobserver/db/feed.py); the API
  reads those jobs and tells its GET /v1/stream subscribers.
"""

JOBS_CHANNEL = "jobserver_jobs"
CANCEL_CHANNEL = "jobserver_cancel"
CONTROL_CHANNEL = "jobserver_control"
REPLY_CHANNEL = "jobserver_replies"
FEED_CHANNEL = "jobserver_feed"
