"""LISTEN/NOTIFY channel names shared by the API, workers and the scheduler.

- `JOBS_CHANNEL`: sent once per submitting transaction (payload: the queue name, or "*" for
  several); idle workers wake and claim.
- `CANCEL_CHANNEL`: sent when a running job is asked to cancel (payload: the job id); the worker
  holding it sets `ctx.cancelled`.
"""

JOBS_CHANNEL = "jobserver_jobs"
CANCEL_CHANNEL = "jobserver_cancel"
