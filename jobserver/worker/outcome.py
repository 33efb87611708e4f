"""`Outcome`: what running a job came to, as the executor reports it to the slot pool.

- `succeeded`: `result_json` holds the result as stored JSON text ("null" for None)
- `failed`: a failed attempt; `failure` is "failed" (an exception, or a result that is not
  JSON) or "timed_out", with `error` (one line, bounded) and `traceback` (or None); `final`
  when the code raised `PermanentError` (no retry, whatever attempts remain); `retry_after`
  (seconds, else None) when it raised `RetryAfter`: the retry waits that long, not the back-off
- `cancelled`: a cancel request ended it (whatever its code then did)
- `released`: nothing is written; the job's stop reason says why (`lost` or `hand_back`)

Outcomes without a value are shared constants (`SUCCEEDED_NULL`, `CANCELLED`, `RELEASED`), so
a job returning None costs no allocation; the others are one small `__slots__` object.
"""

from __future__ import annotations

from typing import Final, Literal

Kind = Literal["succeeded", "failed", "cancelled", "released"]
FailureKind = Literal["failed", "timed_out"]


class Outcome:
    __slots__ = ("error", "failure", "final", "kind", "result_json", "retry_after", "traceback")

    def __init__(
        self,
        kind: Kind,
        result_json: str = "null",
        *,
        failure: FailureKind = "failed",
        error: str = "",
        traceback: str | None = None,
        final: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.kind: Kind = kind
        self.final = final
        self.retry_after = retry_after
        self.result_json = result_json
        self.failure: FailureKind = failure
        self.error = error
        self.traceback = traceback

    @classmethod
    def failed(
        cls,
        error: str,
        traceback: str | None = None,
        *,
        timed_out: bool = False,
        final: bool = False,
        retry_after: float | None = None,
    ) -> Outcome:
        return cls(
            "failed",
            failure="timed_out" if timed_out else "failed",
            error=error,
            traceback=traceback,
            final=final,
            retry_after=retry_after,
        )

    def __repr__(self) -> str:
        if self.kind == "succeeded":
            return f"<Outcome succeeded {self.result_json[:60]}>"
        if self.kind == "failed":
            return f"<Outcome {self.failure} {self.error[:60]!r}>"
        return f"<Outcome {self.kind}>"


SUCCEEDED_NULL: Final = Outcome("succeeded")
CANCELLED: Final = Outcome("cancelled")
RELEASED: Final = Outcome("released")
