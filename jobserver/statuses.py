"""The job states (DESIGN.md, "Job states"), in one module with no imports.

The API validates filters and answers with them and the schema (`db/tables.py`) checks them;
keeping them here, not in the SQLAlchemy tables, keeps SQLAlchemy out of the API process.
"""

from __future__ import annotations

JOB_STATUSES = (
    "queued",
    "running",
    "cancelling",
    "succeeded",
    "failed",
    "cancelled",
    "expired",
    "waiting",  # its parents (dependsOn) have not all finished: never claimed
)
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled", "expired")
ACTIVE_STATUSES = ("running", "cancelling")
# Not started yet: what a cancel ends at once and what counts toward an owner's queued quota.
PENDING_STATUSES = ("queued", "waiting")
ON_PARENT_FAILURE = ("cancel", "continue")
# A job in one of these may be run again by POST /v1/jobs/{id}/retry (a success is not retried).
RETRIABLE_STATUSES = ("failed", "cancelled", "expired")
