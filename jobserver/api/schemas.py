"""The JSON Schemas of the API: request bodies, query strings and answers, in one place.

The route table (`jobserver.api.routes`) attaches them to routes; the request pipeline checks
bodies and queries against them, and `/openapi.json` publishes them, so what is checked and
what is documented cannot drift. Answer schemas are closed (`additionalProperties: false`,
every field `required`, nullable fields typed `[..., "null"]`): the fuzzing run checks every
answer against them. Names and keys follow `jobserver.core.names`.
"""

from __future__ import annotations

from typing import Any

from jobserver.api.paging import list_schema, page_query
from jobserver.audit import ACCEPTED_LEVELS as AUDIT_ACCEPTED_LEVELS
from jobserver.audit import CATEGORY as AUDIT_CATEGORY
from jobserver.audit import LEVELS as AUDIT_LEVELS
from jobserver.core import control
from jobserver.core.dependencies import MAX_PARENTS
from jobserver.core.names import DEFINITION_KEY, MAIL_TEMPLATE_NAME, QUEUE, SCHEDULE_NAME
from jobserver.core.queue_health import RULES as HEALTH_RULES
from jobserver.core.queue_health import SEVERITIES as HEALTH_SEVERITIES
from jobserver.core.queue_health import STATUSES as HEALTH_STATUSES
from jobserver.core.rate_limits import MAX_RATE_LIMIT, MAX_RATE_PERIOD_SECONDS
from jobserver.core.retry_delays import MAX_RETRY_DELAY_SECONDS, MAX_RETRY_DELAYS
from jobserver.core.timing import DURATION_PATTERN, MAX_DURATION_SECONDS
from jobserver.credentials.models import CREDENTIAL_NAME
from jobserver.credentials.models import KINDS as CREDENTIAL_KINDS
from jobserver.credentials.models import TLS_MODES as CREDENTIAL_TLS_MODES
from jobserver.db.workers import WORKER_STATUSES
from jobserver.mail.templates import MAX_BODY_CHARS as MAIL_BODY_CHARS
from jobserver.mail.templates import MAX_SUBJECT_CHARS as MAIL_SUBJECT_CHARS
from jobserver.statuses import JOB_STATUSES, ON_PARENT_FAILURE, TERMINAL_STATUSES
from jobserver.video.presets import FORMATS as VIDEO_PRESETS
from jobserver.video.presets import QUALITIES as VIDEO_BOXES

Schema = dict[str, Any]

MAX_BATCH = 1000
INT32 = 2147483647

# ---------------------------------------------------------------- building blocks

ANY_JSON: Schema = {"description": "any JSON value"}
STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
UUID: Schema = {"type": "string", "format": "uuid"}
TIMESTAMP: Schema = {"type": "string", "format": "date-time"}
NULLABLE_STRING: Schema = {"type": ["string", "null"]}
NULLABLE_INTEGER: Schema = {"type": ["integer", "null"]}
NULLABLE_NUMBER: Schema = {"type": ["number", "null"]}
NULLABLE_UUID: Schema = {"type": ["string", "null"], "format": "uuid"}
NULLABLE_TIMESTAMP: Schema = {"type": ["string", "null"], "format": "date-time"}
# A date-time as a client writes it (parsed by jobserver.core.timing).
DATETIME_INPUT: Schema = {"type": "string", "format": "date-time", "maxLength": 64}
NULLABLE_DATETIME_INPUT: Schema = {
    "type": ["string", "null"],
    "format": "date-time",
    "maxLength": 64,
}


def closed(properties: Schema) -> Schema:
    """An answer object: exactly these fields, all present."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(properties),
        "properties": properties,
    }


def query(properties: Schema) -> Schema:
    """A query string: only these parameters."""
    return {"type": "object", "additionalProperties": False, "properties": properties}


NO_QUERY: Schema = query({})
# ---------------------------------------------------------------- jobs

MAX_TAGS = 20
# Labels: no control characters; a tag has no comma either (the `tag` filter of GET /v1/jobs
# is repeatable and/or comma-separated, so a comma inside a tag could not be asked for).
EVENT_NAME: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    "pattern": "^[^\\x00-\\x1f\\x7f]+$",
    "description": "an event name to find the job by (no control characters)",
}
TAG: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 100,
    "pattern": "^[^\\x00-\\x1f\\x7f,]+$",
    "description": "a label (no control characters, no comma)",
}
DURATION_INPUT: Schema = {
    "oneOf": [
        {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DURATION_SECONDS},
        {"type": "string", "maxLength": 40, "pattern": DURATION_PATTERN},
    ],
    "description": "seconds, or a duration such as 90s, 15m, 24h, 7d, 1h30m",
}

RETRY_DELAYS: Schema = {
    "type": "array",
    "items": {"type": "number", "minimum": 0, "maximum": MAX_RETRY_DELAY_SECONDS},
    "minItems": 1,
    "maxItems": MAX_RETRY_DELAYS,
    "description": "seconds before each retry: the retry after attempt n waits the n-th"
    " delay, the last one repeating; no jitter. Replaces the definition's back-off (a"
    " server's Retry-After still wins)",
}
NULLABLE_RETRY_DELAYS: Schema = {**RETRY_DELAYS, "type": ["array", "null"]}
RETRY_DELAYS_ANSWER: Schema = {
    "type": ["array", "null"],
    "items": {"type": "number"},
    "description": "the job's own retry delays in seconds; null: the definition's back-off",
}
TIMEOUT_SECONDS: Schema = {"type": "number", "exclusiveMinimum": 0, "maximum": 604800}
RATE_LIMIT_INPUT: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["limit", "periodSeconds"],
    "properties": {
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_RATE_LIMIT},
        "periodSeconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": MAX_RATE_PERIOD_SECONDS,
        },
    },
    "description": "at most `limit` starts per `periodSeconds` (in the definition's bucket):"
    " only lowers the definition's rate limit (limit at most its, period at least its); a"
    " definition without one takes none",
}
NULLABLE_RATE_LIMIT_INPUT: Schema = {**RATE_LIMIT_INPUT, "type": ["object", "null"]}
RATE_LIMIT_ANSWER: Schema = {
    "type": ["object", "null"],
    "properties": {
        "limit": INTEGER,
        "periodSeconds": {"type": "number"},
        "bucket": {"type": "string"},
        "key": {"type": "string"},
    },
    "description": "at most `limit` starts per `periodSeconds` (a job: of its `bucket`, the"
    " definition key and its rate key's value); null: unlimited",
}

JOB_SUBMISSION: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["definitionKey"],
    "properties": {
        "definitionKey": DEFINITION_KEY.schema(),
        "definitionVersion": {"type": "integer", "minimum": 1, "maximum": INT32},
        "params": {"description": "checked against the definition's params schema"},
        "priority": {"type": "integer", "minimum": -1000, "maximum": 1000, "default": 0},
        "maxAttempts": {"type": "integer", "minimum": 1, "maximum": 100},
        "idempotencyKey": {"type": "string", "minLength": 1, "maxLength": 200},
        "queue": QUEUE.schema(default="default"),
        "runAt": DATETIME_INPUT,
        "delaySeconds": {"type": "number", "minimum": 0, "maximum": 31536000},
        "expiresAt": {
            **DATETIME_INPUT,
            "description": "must be after the run time (runAt, or now); not with expiresIn",
        },
        "expiresIn": {
            **DURATION_INPUT,
            "description": "expire this long after the run time (runAt, or now): seconds or"
            " a duration such as 90s, 15m, 24h, 7d, 1h30m; not with expiresAt. Neither given:"
            " DEFAULT_EXPIRES_DURATION, when set",
        },
        "timeoutSeconds": TIMEOUT_SECONDS,
        "retryDelays": RETRY_DELAYS,
        "rateLimit": RATE_LIMIT_INPUT,
        "event": EVENT_NAME,
        "tags": {
            "type": "array",
            "items": TAG,
            "maxItems": MAX_TAGS,
            "uniqueItems": True,
            "description": f"at most {MAX_TAGS} distinct labels",
        },
        "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": 100,
            "pattern": "^[A-Za-z_][A-Za-z0-9_-]*$",
            "description": "the job's name in its batch (unique there): other items' dependsOn"
            " may name it, and its dependents read it as parents.<name>",
        },
        "dependsOn": {
            "type": "array",
            "maxItems": MAX_PARENTS,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1, "maxLength": 100},
            "description": "jobs this one waits for (status waiting until they end): job ids,"
            " or names of other items of the same batch",
        },
        "broadcast": {
            "type": "boolean",
            "default": False,
            "description": "run the job once on every live worker that has its definition"
            " and serves its queue: one child job per worker (maxAttempts 1), and this job"
            " as their parent, which ends when they all have: succeeded when each did, else"
            " failed, with {workers, succeeded, failed} as its result. Not in a batch, not"
            " with dependsOn; 422 naming broadcast when no worker is live",
        },
        "onParentFailure": {
            "type": "string",
            "enum": list(ON_PARENT_FAILURE),
            "default": "cancel",
            "description": "when a parent fails for good, is cancelled or expires: cancel"
            " this job (and its own dependents), or continue as if it succeeded",
        },
    },
}

JOB_BATCH: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["jobs"],
    "properties": {
        "jobs": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": JOB_SUBMISSION}
    },
}

JOB: Schema = closed(
    {
        "jobId": UUID,
        "id": UUID,
        "definitionKey": STRING,
        "definitionVersion": INTEGER,
        "queue": STRING,
        "status": {"type": "string", "enum": list(JOB_STATUSES)},
        "priority": INTEGER,
        "attempt": INTEGER,
        "maxAttempts": INTEGER,
        "params": ANY_JSON,
        "result": {"description": "what the job returned (any JSON value), null until then"},
        "lastError": NULLABLE_STRING,
        "progress": {"description": "the latest progress report (an object), or null"},
        "workerId": NULLABLE_STRING,
        "owner": STRING,
        "idempotencyKey": NULLABLE_STRING,
        "timeoutSeconds": NULLABLE_NUMBER,
        "runAt": TIMESTAMP,
        "expiresAt": NULLABLE_TIMESTAMP,
        "createdAt": TIMESTAMP,
        "startedAt": NULLABLE_TIMESTAMP,
        "finishedAt": NULLABLE_TIMESTAMP,
        "cancelRequestedAt": NULLABLE_TIMESTAMP,
        "queueTimeMs": NULLABLE_NUMBER,
        "processingTimeMs": NULLABLE_NUMBER,
        "event": NULLABLE_STRING,
        "tags": {"type": ["array", "null"], "items": STRING},
        "scheduleName": {
            "type": ["string", "null"],
            "description": "the schedule that fired the job",
        },
        "scheduledFor": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "the fire time (schedules) or the run time asked for (a job"
            " submitted to run more than a second later)",
        },
        "isScheduled": {
            "type": "boolean",
            "description": "submitted to run more than a second later, or fired by a schedule",
        },
        "isRecurring": {"type": "boolean", "description": "fired by a schedule"},
        "finishReason": {
            "type": ["string", "null"],
            "enum": ["succeeded", "failed", "cancelled", "expired", None],
            "description": "null until the job is terminal",
        },
        "retryDelays": RETRY_DELAYS_ANSWER,
        "savedJobId": {
            "type": ["string", "null"],
            "format": "uuid",
            "description": "the saved job that made it (execute, trigger or retry); it may"
            " since have been deleted",
        },
        "retryOf": {
            "type": ["string", "null"],
            "format": "uuid",
            "description": "the saved job's execution this job retries",
        },
        "isTerminal": {
            "type": "boolean",
            "description": "succeeded, failed, cancelled or expired: its status is final",
        },
        "isRetriable": {
            "type": "boolean",
            "description": "failed, cancelled or expired: POST /v1/jobs/{id}/retry runs it"
            " again (once: a retried job answers 409 naming its retry)",
        },
        "metadata": {
            "type": ["object", "null"],
            "description": "what the running job set with ctx.set_metadata (merged"
            " shallowly), null until it sets any",
        },
        "retriedFrom": {
            "type": ["string", "null"],
            "format": "uuid",
            "description": "the job this one retries (POST /v1/jobs/{id}/retry)",
        },
        "retriedAs": {
            "type": ["string", "null"],
            "format": "uuid",
            "description": "the job that retries this one (it may since have been deleted)",
        },
        "clonedFrom": {
            "type": ["string", "null"],
            "format": "uuid",
            "description": "the job this one was cloned from (POST /v1/jobs/{id}/clone)",
        },
        "dependsOn": {
            "type": ["array", "null"],
            "items": UUID,
            "description": "the jobs this one waits for, in the order given; null: none",
        },
        "onParentFailure": {
            "type": ["string", "null"],
            "enum": [*ON_PARENT_FAILURE, None],
            "description": "what a parent's failure does to this job; null without parents",
        },
        "name": {"type": ["string", "null"], "description": "its name in its batch"},
        "broadcast": {
            "type": "boolean",
            "description": "a broadcast parent: it ran once on every live worker, one child"
            " job each, and sums them",
        },
        "broadcastChildren": {
            "type": ["array", "null"],
            "items": closed(
                {
                    "id": UUID,
                    "workerId": STRING,
                    "status": {"type": "string", "enum": list(JOB_STATUSES)},
                }
            ),
            "description": "a broadcast parent's children (one per worker) in the answer"
            " to its submission and to GET /v1/jobs/{id}; null elsewhere",
        },
        "rateLimit": RATE_LIMIT_ANSWER,
    }
)
# One job as GET /v1/jobs/{id} answers it: with its place in its queue (lists leave it out:
# it costs a walk of the queue per job).
JOB_DETAIL: Schema = closed(
    {
        **JOB["properties"],
        "queuePosition": {
            "type": ["integer", "null"],
            "minimum": 0,
            "description": "a queued job: the ready jobs of its queue a claim would take"
            " before it (priority, then run time, then id; approximate: claims are fair"
            " between owners and workers take only their own definitions); null when it is"
            " not queued",
        },
        "queuePositionCapped": {
            "type": "boolean",
            "description": "the count stopped after 10,000 queued jobs (of any queue):"
            " queuePosition is then a lower bound",
        },
    }
)
# What POST /v1/jobs/{id}/retry and /clone take (bodies optional): the submission's own bounds.
_SUBMITTED = JOB_SUBMISSION["properties"]
JOB_RETRY_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "delaySeconds": {
            **_SUBMITTED["delaySeconds"],
            "description": "run the retry this many seconds from now (default: now)",
        }
    },
}
JOB_CLONE_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "params": {
            "description": "deep-merged over the template's params (objects key by key,"
            " anything else replaces), then checked against the definition's params schema"
        },
        "queue": _SUBMITTED["queue"],
        "priority": _SUBMITTED["priority"],
        "delaySeconds": _SUBMITTED["delaySeconds"],
        "expiresIn": _SUBMITTED["expiresIn"],
        "rateLimit": {
            **RATE_LIMIT_INPUT,
            "description": "replaces the template's own rate limit (kept by default, within"
            " its definition's); it too may only lower the definition's",
        },
    },
}
JOB_DELETE_QUERY: Schema = query(
    {
        "force": {
            "type": "boolean",
            "description": "manage_jobs: also discard the job's dead-letter row while it waits"
            " (without it such a job is a 409)",
        }
    }
)

BATCH_RESULT: Schema = closed(
    {
        "jobIds": {"type": "array", "items": UUID},
        "created": INTEGER,
        "existing": {
            "type": "array",
            "items": INTEGER,
            "description": "indexes of the items that repeated a stored idempotencyKey",
        },
    }
)

SIMULATION: Schema = closed(
    {
        "definitionKey": STRING,
        "definitionVersion": INTEGER,
        "sent": {"const": False, "description": "a dry run sends nothing"},
        "params": {"description": "the params as a run would render them now (secrets ***)"},
        "payload": {"description": "the rendered payload (or body) a run would send, or null"},
    }
)

JOB_FILTERS: Schema = {
    "status": {
        "type": "array",
        "items": {"type": "string", "enum": list(JOB_STATUSES)},
        "maxItems": 20,
        "description": "repeatable and/or comma-separated",
    },
    "definitionKey": {"type": "string", "maxLength": 200},
    "queue": {"type": "string", "maxLength": 100},
    "createdAfter": DATETIME_INPUT,
    "since": {
        **DATETIME_INPUT,
        "description": "created after this time (createdAfter's other name: not both)",
    },
    "createdBefore": DATETIME_INPUT,
    "event": {**EVENT_NAME, "description": "jobs with exactly this event"},
    "tag": {
        "type": "array",
        "items": TAG,
        "maxItems": MAX_TAGS,
        "description": "repeatable and/or comma-separated: jobs carrying every tag given",
    },
    "scheduleName": {
        "type": "string",
        "minLength": 1,
        "maxLength": 200,
        "description": "jobs fired by this schedule",
    },
}
JOB_LIST_QUERY: Schema = page_query(
    20,
    100,
    {
        **JOB_FILTERS,
        "sortBy": {
            "type": "string",
            "enum": ["createdAt", "priority", "status", "event"],
            "description": "createdAt is submission order: job ids are time-ordered (UUIDv7);"
            " event orders by (event, id) and lists only the jobs that have an event",
        },
        "sortOrder": {"type": "string", "enum": ["asc", "desc"]},
    },
    numbered=True,
)
JOB_COUNT_QUERY: Schema = query(JOB_FILTERS)
# One message of GET /v1/stream as an event-stream parser gives it: `data` is one line of JSON
# (hello: {epoch, retryMs, maxSeconds}; job: {id, status, queue, definitionKey,
# definitionVersion, progress, attempt, updatedAt}; resync: {reason}).
STREAM_EVENT: Schema = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["hello", "job", "resync"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "id": {"type": "string", "description": "the cursor to send back as Last-Event-ID"},
        "retry": {"type": "integer", "description": "the reconnection delay asked, in ms"},
    },
}
STREAM_QUERY: Schema = query(
    {
        "queue": JOB_FILTERS["queue"],
        "jobId": {"type": "string", "format": "uuid", "maxLength": 64},
        "status": JOB_FILTERS["status"],
    }
)
JOB_COUNT: Schema = closed(
    {
        "total": {"type": "integer", "description": "exact up to 10,000, estimated above"},
        "isEstimate": BOOLEAN,
    }
)

EVENT: Schema = closed(
    {
        "id": {"type": "integer", "description": "position in the job's history, from 1"},
        "event": STRING,
        "at": TIMESTAMP,
        "workerId": NULLABLE_STRING,
        "attempt": NULLABLE_INTEGER,
        "details": {"description": "the event's data (an object), or null"},
    }
)
ATTEMPT: Schema = closed(
    {
        "attempt": INTEGER,
        "workerId": NULLABLE_STRING,
        "startedAt": TIMESTAMP,
        "finishedAt": NULLABLE_TIMESTAMP,
        "outcome": STRING,
        "error": NULLABLE_STRING,
        "traceback": NULLABLE_STRING,
        "result": {"description": "what this run returned (any JSON value), or null"},
        "durationMs": NULLABLE_NUMBER,
    }
)
EVENTS_QUERY: Schema = page_query(100, 1000, {})
ATTEMPTS_QUERY: Schema = page_query(100, 100, {})

# ---------------------------------------------------------------- definitions

DEFINITION: Schema = closed(
    {
        "key": STRING,
        "version": INTEGER,
        "ref": {"type": "string", "description": "key@version"},
        "latest": BOOLEAN,
        "defaultMaxAttempts": INTEGER,
        "timeoutSeconds": NULLABLE_NUMBER,
        "concurrencyLimit": NULLABLE_INTEGER,
        "paramsSchema": {"type": ["object", "boolean", "null"]},
        "description": STRING,
        "backoff": {"type": ["object", "null"]},
        "outbound": {
            "type": "boolean",
            "description": "it calls out: submitting it needs the outbound capability",
        },
        "rateLimit": RATE_LIMIT_ANSWER,
        "registeredAt": TIMESTAMP,
        "updatedAt": TIMESTAMP,
    }
)
DEFINITIONS_QUERY: Schema = page_query(100, 1000, {"key": {"type": "string", "maxLength": 200}})
DEFINITION_DETAIL: Schema = closed(
    {
        **DEFINITION["properties"],
        "versions": {
            "type": "array",
            "items": INTEGER,
            "description": "every registered version of the key, oldest first",
        },
        "templated": {
            "type": ["array", "null"],
            "items": STRING,
            "description": "the params rendered with {{placeholders}} before each run; null"
            " when this API process does not have the definition's code",
        },
        "paramDefaults": {
            "type": "object",
            "description": "the `default` of each top-level property of the params schema",
        },
    }
)
DEFINITION_QUERY: Schema = query(
    {
        "version": {
            "type": "integer",
            "minimum": 1,
            "maximum": INT32,
            "description": "this version instead of the latest",
        }
    }
)

# ---------------------------------------------------------------- audit log (log.message)

LOG_ENTRY: Schema = closed(
    {
        "id": INTEGER,
        "createdAt": TIMESTAMP,
        "level": {"type": "string", "enum": list(AUDIT_LEVELS)},
        "category": STRING,
        "message": STRING,
        "metadata": {"type": "object"},
        "jobId": {**NULLABLE_UUID, "description": "the log.message job that wrote it"},
        "owner": {**NULLABLE_STRING, "description": "the owner of that job"},
        "definition": {**NULLABLE_STRING, "description": "key@version of that job"},
    }
)
RFC3339_INPUT: Schema = {"type": "string", "format": "date-time", "maxLength": 64}
LOGS_QUERY: Schema = page_query(
    100,
    1000,
    {
        "category": {**AUDIT_CATEGORY.schema(), "description": "exactly this category"},
        "level": {
            "type": "string",
            "enum": list(AUDIT_ACCEPTED_LEVELS),
            "description": "this level and above (warn: warn and error); warning = warn",
        },
        "since": {**RFC3339_INPUT, "description": "RFC 3339 with an offset; from (inclusive)"},
        "until": {**RFC3339_INPUT, "description": "RFC 3339 with an offset; before (exclusive)"},
        "q": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "description": "text found anywhere in the message, ignoring case (% and _ are"
            " literal characters)",
        },
        "jobId": {"type": "string", "format": "uuid", "maxLength": 64},
    },
    numbered=True,
)
LOG_LIST = list_schema(LOG_ENTRY, numbered=True)

# ---------------------------------------------------------------- schedules

OVERLAP_POLICIES = ["allow", "skip"]
CATCHUP_POLICIES = ["none", "latest", "all"]

SCHEDULE_FIELDS: Schema = {
    "cron": {"type": ["string", "null"], "minLength": 1, "maxLength": 200},
    "everySeconds": {"type": ["integer", "null"], "minimum": 1, "maximum": 31_536_000},
    "timezone": {"type": "string", "minLength": 1, "maxLength": 64, "default": "UTC"},
    "definitionKey": DEFINITION_KEY.schema(),
    "definitionVersion": {"type": ["integer", "null"], "minimum": 1, "maximum": INT32},
    "params": {"description": "checked against the definition's params schema"},
    "queue": QUEUE.schema(default="default"),
    "priority": {"type": "integer", "minimum": -1000, "maximum": 1000, "default": 0},
    "maxAttempts": {"type": ["integer", "null"], "minimum": 1, "maximum": 100},
    "enabled": {"type": "boolean", "default": True},
    "startAt": NULLABLE_DATETIME_INPUT,
    "expiresAt": NULLABLE_DATETIME_INPUT,
    "overlapPolicy": {"enum": OVERLAP_POLICIES, "default": "allow"},
    "catchupPolicy": {"enum": CATCHUP_POLICIES, "default": "latest"},
    "catchupLimit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
    "event": {
        "type": ["string", "null"],
        "minLength": 1,
        "maxLength": 200,
        "description": "stamped on every job the schedule fires",
    },
    "tags": {
        "type": ["array", "null"],
        "items": {"type": "string", "minLength": 1, "maxLength": 100},
        "maxItems": 20,
        "uniqueItems": True,
        "description": "stamped on every job the schedule fires",
    },
    "maxConsecutiveFailures": {
        "type": ["integer", "null"],
        "minimum": 0,
        "maximum": 10000,
        "description": "disable after this many failed runs in a row; null:"
        " MAX_CONSECUTIVE_FAILURES; 0: never",
    },
    "timeoutSeconds": {
        **TIMEOUT_SECONDS,
        "type": ["number", "null"],
        "description": "stamped on every job the schedule fires (at most the definition's)",
    },
    "retryDelays": NULLABLE_RETRY_DELAYS,
}
SCHEDULE_CREATE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "definitionKey"],
    "properties": {"name": SCHEDULE_NAME.schema(), **SCHEDULE_FIELDS},
}
SCHEDULE_PATCH: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": SCHEDULE_FIELDS,
}
SCHEDULE: Schema = closed(
    {
        "name": STRING,
        "cron": NULLABLE_STRING,
        "everySeconds": NULLABLE_INTEGER,
        "timezone": STRING,
        "definitionKey": STRING,
        "definitionVersion": {
            "type": ["integer", "null"],
            "description": "null: the latest version when the schedule fires",
        },
        "params": ANY_JSON,
        "queue": STRING,
        "priority": INTEGER,
        "maxAttempts": {
            "type": ["integer", "null"],
            "description": "null: the definition's default",
        },
        "enabled": BOOLEAN,
        "startAt": NULLABLE_TIMESTAMP,
        "expiresAt": NULLABLE_TIMESTAMP,
        "overlapPolicy": {"type": "string", "enum": OVERLAP_POLICIES},
        "catchupPolicy": {"type": "string", "enum": CATCHUP_POLICIES},
        "catchupLimit": INTEGER,
        "source": {"type": "string", "enum": ["api", "code"]},
        "nextFireAt": NULLABLE_TIMESTAMP,
        "lastFireAt": NULLABLE_TIMESTAMP,
        "lastJobId": NULLABLE_UUID,
        "createdAt": TIMESTAMP,
        "updatedAt": TIMESTAMP,
        "event": NULLABLE_STRING,
        "tags": {"type": ["array", "null"], "items": STRING},
        "maxConsecutiveFailures": {
            "type": ["integer", "null"],
            "description": "null: MAX_CONSECUTIVE_FAILURES; 0: never disabled",
        },
        "consecutiveFailures": {
            "type": "integer",
            "description": "the latest finished runs that failed in a row",
        },
        "disabledReason": {
            "type": ["string", "null"],
            "description": "why repeated failures disabled it; cleared when re-enabled",
        },
        "disabledAt": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "when it was last disabled; older runs no longer count as failures",
        },
        "timeoutSeconds": NULLABLE_NUMBER,
        "retryDelays": RETRY_DELAYS_ANSWER,
        "savedJobId": {
            "type": ["string", "null"],
            "format": "uuid",
            "description": "the saved job whose trigger this is: change or delete it there",
        },
    }
)
SCHEDULE_RUN: Schema = closed(
    {
        "jobId": UUID,
        "status": {"type": "string", "enum": list(JOB_STATUSES)},
        "scheduledFor": TIMESTAMP,
        "createdAt": TIMESTAMP,
        "startedAt": NULLABLE_TIMESTAMP,
        "finishedAt": NULLABLE_TIMESTAMP,
        "attempt": INTEGER,
        "maxAttempts": INTEGER,
        "finishReason": {
            "type": ["string", "null"],
            "enum": [*TERMINAL_STATUSES, None],
            "description": "null until the run is terminal",
        },
        "lastError": NULLABLE_STRING,
        "durationMs": {
            "type": ["number", "null"],
            "description": "finishedAt - startedAt of a finished run",
        },
    }
)
SCHEDULE_RUNS_QUERY: Schema = page_query(
    100,
    1000,
    {
        "status": {
            "type": "array",
            "items": {"type": "string", "enum": list(JOB_STATUSES)},
            "maxItems": 20,
            "description": "repeatable and/or comma-separated",
        }
    },
)
SCHEDULE_TRIGGERED: Schema = closed({"jobId": UUID, "schedule": STRING, "scheduledFor": TIMESTAMP})
SCHEDULES_QUERY: Schema = page_query(
    100,
    1000,
    {"enabled": BOOLEAN, "definitionKey": {"type": "string", "maxLength": 200}},
    numbered=True,
)

# ---------------------------------------------------------------- saved jobs

SAVED_JOB_NAME: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    "pattern": "^[^\\x00-\\x1f\\x7f]+$",
    "description": "any display text (no control characters), unique per owner",
}
SAVED_JOB_FIELDS: Schema = {
    "name": SAVED_JOB_NAME,
    "description": {"type": "string", "maxLength": 2000, "default": ""},
    "definitionKey": DEFINITION_KEY.schema(),
    "definitionVersion": {
        "type": ["integer", "null"],
        "minimum": 1,
        "maximum": INT32,
        "description": "null: the latest version when it runs",
    },
    "params": {"description": "checked against the definition's params schema"},
    "enabled": {
        "type": "boolean",
        "default": True,
        "description": "a disabled saved job is not executed (409) and its trigger does not"
        " fire; true also re-enables a trigger its failures disabled",
    },
    "tags": {
        "type": ["array", "null"],
        "items": TAG,
        "maxItems": MAX_TAGS,
        "uniqueItems": True,
        "description": "stamped on every job it makes",
    },
    "maxAttempts": {
        "type": ["integer", "null"],
        "minimum": 1,
        "maximum": 100,
        "description": "null: the definition's default (a triggered run: 1, as for schedules)",
    },
    "timeoutSeconds": {**TIMEOUT_SECONDS, "type": ["number", "null"]},
    "retryDelays": NULLABLE_RETRY_DELAYS,
    "rateLimit": NULLABLE_RATE_LIMIT_INPUT,
    "cron": {
        "type": ["string", "null"],
        "minLength": 1,
        "maxLength": 200,
        "description": "trigger: a cron expression in `timezone` (not with everySeconds)",
    },
    "everySeconds": {
        "type": ["integer", "null"],
        "minimum": 1,
        "maximum": 31_536_000,
        "description": "trigger: every N seconds, within MIN_EVERY..MAX_EVERY (not with cron)",
    },
    "timezone": {"type": "string", "minLength": 1, "maxLength": 64, "default": "UTC"},
}
SAVED_JOB_CREATE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "definitionKey"],
    "properties": SAVED_JOB_FIELDS,
}
SAVED_JOB_PATCH: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": SAVED_JOB_FIELDS,
}
SAVED_JOB_SCHEDULE: Schema = closed(
    {
        "name": {"type": "string", "description": "the schedule its trigger owns"},
        "enabled": {
            "type": "boolean",
            "description": "false while the saved job is disabled, or after failed runs",
        },
        "nextFireAt": NULLABLE_TIMESTAMP,
        "lastFireAt": NULLABLE_TIMESTAMP,
        "lastJobId": NULLABLE_UUID,
        "consecutiveFailures": INTEGER,
        "disabledReason": NULLABLE_STRING,
        "disabledAt": NULLABLE_TIMESTAMP,
    }
)
SAVED_JOB: Schema = closed(
    {
        "id": UUID,
        "owner": STRING,
        "name": STRING,
        "description": STRING,
        "definitionKey": STRING,
        "definitionVersion": NULLABLE_INTEGER,
        "params": ANY_JSON,
        "enabled": BOOLEAN,
        "tags": {"type": ["array", "null"], "items": STRING},
        "maxAttempts": NULLABLE_INTEGER,
        "timeoutSeconds": NULLABLE_NUMBER,
        "retryDelays": RETRY_DELAYS_ANSWER,
        "rateLimit": RATE_LIMIT_ANSWER,
        "cron": NULLABLE_STRING,
        "everySeconds": NULLABLE_INTEGER,
        "timezone": STRING,
        "schedule": {
            "anyOf": [SAVED_JOB_SCHEDULE, {"type": "null"}],
            "description": "the state of the schedule its trigger owns; null without one",
        },
        "createdBy": NULLABLE_STRING,
        "updatedBy": NULLABLE_STRING,
        "createdAt": TIMESTAMP,
        "updatedAt": TIMESTAMP,
    }
)
SAVED_JOBS_QUERY: Schema = page_query(
    100,
    1000,
    {
        "enabled": BOOLEAN,
        "tag": {
            "type": "array",
            "items": TAG,
            "maxItems": MAX_TAGS,
            "description": "repeatable and/or comma-separated: saved jobs carrying every tag",
        },
        "definitionKey": {"type": "string", "maxLength": 200},
        "q": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "description": "text the name contains (any case)",
        },
    },
    numbered=True,
)
SAVED_JOB_EXECUTE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "params": {
            "description": "merged over the saved params (objects key by key, recursively;"
            " anything else replaces), then checked like a submission's",
        }
    },
}
EXECUTION_TRIGGERS = ["manual", "schedule", "retry"]
EXECUTION: Schema = closed(
    {
        "jobId": UUID,
        "status": {"type": "string", "enum": list(JOB_STATUSES)},
        "trigger": {
            "type": "string",
            "enum": EXECUTION_TRIGGERS,
            "description": "manual: execute; schedule: its trigger fired; retry: a retry",
        },
        "retryOf": NULLABLE_UUID,
        "scheduledFor": NULLABLE_TIMESTAMP,
        "createdAt": TIMESTAMP,
        "startedAt": NULLABLE_TIMESTAMP,
        "finishedAt": NULLABLE_TIMESTAMP,
        "durationMs": {
            "type": ["number", "null"],
            "description": "finishedAt - startedAt of a finished execution",
        },
        "attempt": INTEGER,
        "maxAttempts": INTEGER,
        "result": {"description": "what it returned (any JSON value), null until then"},
        "lastError": NULLABLE_STRING,
    }
)
EXECUTIONS_QUERY: Schema = page_query(
    100,
    1000,
    {
        "status": {
            "type": "array",
            "items": {"type": "string", "enum": list(JOB_STATUSES)},
            "maxItems": 20,
            "description": "repeatable and/or comma-separated",
        }
    },
)

# ---------------------------------------------------------------- dead-letter queue

# Written by the database when the job failed (jobserver.db.dlq): open to new fields.
DLQ_HISTORY_ENTRY: Schema = {
    "type": "object",
    "properties": {
        "attempt": INTEGER,
        "workerId": NULLABLE_STRING,
        "startedAt": NULLABLE_TIMESTAMP,
        "finishedAt": NULLABLE_TIMESTAMP,
        "outcome": NULLABLE_STRING,
        "error": NULLABLE_STRING,
        "traceback": NULLABLE_STRING,
        "durationMs": NULLABLE_NUMBER,
    },
}
DLQ_ENTRY: Schema = closed(
    {
        "id": UUID,
        "jobId": UUID,
        "definitionKey": STRING,
        "definitionVersion": INTEGER,
        "queue": STRING,
        "params": ANY_JSON,
        "owner": STRING,
        "priority": INTEGER,
        "attempts": INTEGER,
        "maxAttempts": INTEGER,
        "lastError": NULLABLE_STRING,
        "history": {"type": "array", "items": DLQ_HISTORY_ENTRY},
        "createdAt": TIMESTAMP,
        "failedAt": TIMESTAMP,
        "redrivenAt": NULLABLE_TIMESTAMP,
        "redrivenJobId": NULLABLE_UUID,
    }
)
DLQ_RETRY_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "maxAttempts": {
            "type": "integer",
            "minimum": 1,
            "maximum": 100,
            "description": "default: the failed job's",
        }
    },
}
DLQ_REDRIVEN: Schema = closed({"jobId": UUID, "redrivenFrom": UUID, "dlq": DLQ_ENTRY})
DLQ_QUERY: Schema = page_query(
    100,
    1000,
    {"definitionKey": {"type": "string", "maxLength": 200}, "redriven": BOOLEAN},
    numbered=True,
)

# ---------------------------------------------------------------- runners

RUNNER: Schema = closed(
    {
        "id": STRING,
        "host": STRING,
        "pid": INTEGER,
        "status": {"type": "string", "enum": list(WORKER_STATUSES)},
        "queues": {
            "type": ["array", "null"],
            "items": STRING,
            "description": "null: every queue",
        },
        "definitions": {"type": "array", "items": STRING},
        "maxConcurrency": INTEGER,
        "running": INTEGER,
        "held": INTEGER,
        "startedAt": TIMESTAMP,
        "lastSeenAt": TIMESTAMP,
        "stoppedAt": NULLABLE_TIMESTAMP,
    }
)
RUNNERS_QUERY: Schema = page_query(
    100,
    1000,
    {
        "status": {
            "type": "array",
            "items": {"type": "string", "enum": list(WORKER_STATUSES)},
            "maxItems": 4,
            "description": "repeatable and/or comma-separated",
        },
        "queue": QUEUE.schema(description="only the runners that take jobs of this queue"),
    },
)

# -- runner control (jobserver/core/control.py): commands, their replies, queue pause

TIMEOUT_MS: Schema = {
    "type": "integer",
    "minimum": control.MIN_TIMEOUT_MS,
    "maximum": control.MAX_TIMEOUT_MS,
    "default": control.DEFAULT_TIMEOUT_MS,
    "description": "how long to wait for the runners' replies, milliseconds",
}
SHUTDOWN_MODE: Schema = {
    "type": "string",
    "enum": list(control.SHUTDOWN_MODES),
    "default": "graceful",
    "description": "graceful: stop claiming, let running jobs finish within"
    " SHUTDOWN_GRACE_SECONDS, hand the rest back; immediate: hand them back now",
}
RUNNER_REPLY_BODY: Schema = {
    "type": "object",
    "description": "the runner's reply; its fields depend on the command",
}
PING_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"timeoutMs": TIMEOUT_MS},
}
SHUTDOWN_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"mode": SHUTDOWN_MODE, "timeoutMs": TIMEOUT_MS},
}
BROADCAST_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["command"],
    "properties": {
        "command": {"type": "string", "enum": list(control.BROADCAST_COMMANDS)},
        "timeoutMs": TIMEOUT_MS,
        "queue": QUEUE.schema(description="only the runners that take jobs of this queue"),
        "mode": {**SHUTDOWN_MODE, "description": "for shutdown: " + SHUTDOWN_MODE["description"]},
    },
}
RUNNER_COMMAND_ANSWER: Schema = closed(
    {
        "runnerId": STRING,
        "commandId": UUID,
        "command": STRING,
        "answered": BOOLEAN,
        "ms": {**NULLABLE_NUMBER, "description": "the measured round trip; null: no reply"},
        "timeoutMs": INTEGER,
        "reply": {"type": ["object", "null"], "description": RUNNER_REPLY_BODY["description"]},
    }
)
RUNNER_REPLY: Schema = closed(
    {
        "runnerId": STRING,
        "ms": {"type": "number", "description": "the measured round trip"},
        "answeredAt": TIMESTAMP,
        "reply": RUNNER_REPLY_BODY,
    }
)
BROADCAST_ANSWER: Schema = closed(
    {
        "commandId": UUID,
        "command": STRING,
        "queue": NULLABLE_STRING,
        "timeoutMs": INTEGER,
        "expected": {"type": "integer", "description": "the live runners asked"},
        "answered": INTEGER,
        "replies": {"type": "array", "items": RUNNER_REPLY},
        "notAnswered": {
            "type": "array",
            "items": STRING,
            "description": "live runners that did not answer within the timeout",
        },
    }
)
QUEUE_PAUSE_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "reason": {"type": "string", "maxLength": 1000},
        "timeoutMs": TIMEOUT_MS,
    },
}
QUEUE_RESUME_BODY: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"timeoutMs": TIMEOUT_MS},
}
PAUSED_QUEUE: Schema = closed(
    {
        "queue": STRING,
        "pausedAt": TIMESTAMP,
        "pausedBy": NULLABLE_STRING,
        "reason": NULLABLE_STRING,
    }
)
QUEUE_PAUSE_ANSWER: Schema = closed(
    {
        "queue": STRING,
        "paused": BOOLEAN,
        "changed": {"type": "boolean", "description": "false: it already was so"},
        "pausedAt": NULLABLE_TIMESTAMP,
        "pausedBy": NULLABLE_STRING,
        "reason": NULLABLE_STRING,
        "acknowledged": {
            "type": "array",
            "items": STRING,
            "description": "live runners that applied it: none of them claims the queue now",
        },
        "notAnswered": {"type": "array", "items": STRING},
    }
)
PAUSED_QUEUES_QUERY: Schema = page_query(100, 1000, {})

# ---------------------------------------------------------------- who am I

ME: Schema = closed(
    {
        "owner": {"type": "string", "description": "the owner whose jobs a plain token sees"},
        "tokenName": {**NULLABLE_STRING, "description": "null when authentication is disabled"},
        "scopes": {"type": "array", "items": STRING, "description": "sorted"},
        "canViewAll": {**BOOLEAN, "description": "view_jobs or manage_jobs: every owner's jobs"},
        "canManage": {**BOOLEAN, "description": "manage_jobs: cancel, retry, control routes"},
        "canCallOut": {**BOOLEAN, "description": "may submit outbound definitions"},
        "authEnabled": BOOLEAN,
    }
)

# ---------------------------------------------------------------- metrics

TTL: Schema = {"type": "number", "minimum": 0, "maximum": 86400, "description": "cache seconds"}
METRICS_QUERY: Schema = query({"ttl": TTL})
THROUGHPUT_QUERY: Schema = query(
    {"ttl": TTL, "hours": {"type": "integer", "minimum": 1, "maximum": 168, "default": 24}}
)
PERCENT: Schema = {"type": ["number", "null"], "description": "0-100; null with no finished job"}
FRACTION: Schema = {"type": ["number", "null"], "description": "0-1; null with no finished job"}
MILLISECONDS: Schema = {"type": ["number", "null"], "description": "milliseconds"}
PERFORMANCE_FIELDS: Schema = {
    "successRate": FRACTION,
    "avgProcessingTime": MILLISECONDS,
    "avgQueueTime": MILLISECONDS,
    "retryRate": FRACTION,
    "successRatePercent": PERCENT,
    "retryRatePercent": PERCENT,
    "windowHours": INTEGER,
}
PERFORMANCE: Schema = closed(PERFORMANCE_FIELDS)
SUMMARY: Schema = closed({"total": INTEGER, "byStatus": closed({s: INTEGER for s in JOB_STATUSES})})
THROUGHPUT_WINDOWS: Schema = closed({"lastHour": INTEGER, "lastDay": INTEGER, "lastWeek": INTEGER})
CACHED_AT: Schema = {"type": "string", "format": "date-time", "description": "when computed"}
METRICS: Schema = closed(
    {
        "summary": SUMMARY,
        "performance": PERFORMANCE,
        "throughput": THROUGHPUT_WINDOWS,
        "cachedAt": CACHED_AT,
    }
)
METRICS_BY_DEFINITION: Schema = closed(
    {
        "definitions": {
            "type": "array",
            "items": closed(
                {
                    "definitionKey": STRING,
                    "definitionVersion": INTEGER,
                    "total": INTEGER,
                    "byStatus": SUMMARY["properties"]["byStatus"],
                    "successRate": FRACTION,
                    "avgProcessingTime": MILLISECONDS,
                    "avgQueueTime": MILLISECONDS,
                    "summary": SUMMARY,
                    "performance": PERFORMANCE,
                    "throughput": THROUGHPUT_WINDOWS,
                }
            ),
        },
        "cachedAt": CACHED_AT,
    }
)
COMPLETED_FAILED: Schema = {"completed": INTEGER, "failed": INTEGER}
THROUGHPUT: Schema = closed(
    {
        "data": {
            "type": "array",
            "items": closed({"period": TIMESTAMP, **COMPLETED_FAILED}),
            "description": "the core reference's shape: the same hours as `buckets`",
        },
        "hours": INTEGER,
        "buckets": {
            "type": "array",
            "items": closed({"hour": TIMESTAMP, **COMPLETED_FAILED}),
            "description": "oldest first; the current (partial) hour last",
        },
        "totals": closed(COMPLETED_FAILED),
        "cachedAt": CACHED_AT,
    }
)
THROUGHPUT_MINUTES_QUERY: Schema = query(
    {"ttl": TTL, "minutes": {"type": "integer", "minimum": 1, "maximum": 1440, "default": 60}}
)
THROUGHPUT_MINUTES: Schema = closed(
    {
        "minutes": INTEGER,
        "buckets": {
            "type": "array",
            "items": closed({"minute": TIMESTAMP, **COMPLETED_FAILED}),
            "description": "oldest first; the current (partial) minute last",
        },
        "totals": closed(COMPLETED_FAILED),
        "cachedAt": CACHED_AT,
    }
)
PERFORMANCE_ANSWER: Schema = closed({**PERFORMANCE_FIELDS, "cachedAt": CACHED_AT})

# ---------------------------------------------------------------- queues and health

# `{name}` of /v1/queues/{name}/...: the handlers answer 422 for a name outside the queue rule.
QUEUE_PATH: dict[str, Schema] = {"name": QUEUE.schema(description="the queue's name")}

HEALTH_STATUS: Schema = {"type": "string", "enum": list(HEALTH_STATUSES)}
CHECKED_AT: Schema = {
    "type": "string",
    "format": "date-time",
    "description": "the database clock of the snapshot the answer was computed from",
}
COUNT: Schema = {"type": "integer", "minimum": 0}
QUEUE_TTL: Schema = {**TTL, "description": "reuse an answer computed less than this ago (s)"}
QUEUE_COUNTS: Schema = closed(
    {
        "total": {
            **COUNT,
            "description": "unfinished: waiting + unclaimed + scheduled + pending + running",
        },
        "waiting": {**COUNT, "description": "waiting for their parents (dependsOn)"},
        "unclaimed": {**COUNT, "description": "queued and ready to run now"},
        "pending": {**COUNT, "description": "claimed by a worker, not started (its buffer)"},
        "scheduled": {**COUNT, "description": "queued with a run time in the future"},
        "running": {**COUNT, "description": "held by a worker and started"},
        "stuck": {
            **COUNT,
            "description": "held past the lease, or past the timeout by a margin (counted in"
            " pending or running too)",
        },
    }
)
QUEUE_ALERT: Schema = closed(
    {
        "rule": {"type": "string", "enum": list(HEALTH_RULES)},
        "severity": {"type": "string", "enum": list(HEALTH_SEVERITIES)},
        "value": {"type": "number"},
        "threshold": {"type": "number"},
        "message": STRING,
    }
)
QUEUE_METRIC_FIELDS: Schema = {
    "windowMinutes": INTEGER,
    "jobsPerMinute": {
        "type": "number",
        "description": "succeeded or failed in the window, per minute of its length",
    },
    "successRate": FRACTION,
    "avgDurationMs": MILLISECONDS,
    "succeeded": COUNT,
    "failed": COUNT,
}
QUEUE_FIELDS: Schema = {
    "name": STRING,
    "status": HEALTH_STATUS,
    "counts": QUEUE_COUNTS,
    "countsCapped": {
        "type": "boolean",
        "description": "unclaimed or scheduled passed QUEUE_COUNT_CAP: answered as the cap, a"
        " lower bound",
    },
    "oldestWaitingSince": {
        "type": ["string", "null"],
        "format": "date-time",
        "description": "the run time of the oldest unclaimed job (null: none)",
    },
    "runners": closed(
        {
            "active": {**COUNT, "description": "live workers serving the queue, claiming"},
            "total": {**COUNT, "description": "live workers serving the queue"},
        }
    ),
    "paused": {
        "oneOf": [
            {"type": "null"},
            closed(
                {
                    "pausedAt": TIMESTAMP,
                    "pausedBy": NULLABLE_STRING,
                    "reason": NULLABLE_STRING,
                }
            ),
        ],
        "description": "its durable pause (POST /v1/queues/{name}/pause); null: not paused",
    },
    "alerts": {"type": "array", "items": QUEUE_ALERT},
    "metrics": closed(QUEUE_METRIC_FIELDS),
}
QUEUE_SUMMARY: Schema = closed(QUEUE_FIELDS)
QUEUE_LIST = list_schema(QUEUE_SUMMARY)
QUEUES_QUERY: Schema = page_query(100, 1000, {"ttl": QUEUE_TTL})
QUEUE_HEALTH_QUERY: Schema = query({"ttl": QUEUE_TTL})
QUEUE_HEALTH: Schema = closed(
    {
        **QUEUE_FIELDS,
        "queue": {"type": "string", "description": "the queue's name (as `name`)"},
        "oldestWaitingSeconds": {
            "type": ["number", "null"],
            "description": "how long the oldest unclaimed job has waited since its run time",
        },
        "stuckJobs": {
            "type": "array",
            "maxItems": 20,
            "description": "the longest stuck first",
            "items": closed(
                {
                    "id": UUID,
                    "workerId": NULLABLE_STRING,
                    "since": TIMESTAMP,
                    "reason": {"type": "string", "enum": ["lease_expired", "timeout"]},
                }
            ),
        },
        "metrics": closed(
            {
                **QUEUE_METRIC_FIELDS,
                "p50DurationMs": MILLISECONDS,
                "p95DurationMs": MILLISECONDS,
                "durationSample": {
                    **COUNT,
                    "description": "runs the percentiles are of (the queue's among the latest"
                    " 5,000 finished in the window)",
                },
            }
        ),
        "checkedAt": CHECKED_AT,
    }
)
SYSTEM_HEALTH: Schema = closed(
    {
        "status": HEALTH_STATUS,
        "database": closed({"ok": BOOLEAN, "latencyMs": {"type": "number"}}),
        "scheduler": closed(
            {
                "ok": {"type": "boolean", "description": "a scheduler holds the leader lease"},
                "leader": NULLABLE_STRING,
                "acquiredAt": NULLABLE_TIMESTAMP,
                "leaseExpiresAt": NULLABLE_TIMESTAMP,
            }
        ),
        "workers": closed({s: COUNT for s in WORKER_STATUSES}),
        "queues": {
            "type": "array",
            "items": closed({"name": STRING, "status": HEALTH_STATUS, "alerts": COUNT}),
        },
        "queuesTruncated": BOOLEAN,
        "checkedAt": CHECKED_AT,
    }
)
STATS: Schema = closed(
    {
        "pending": {**COUNT, "description": "queued jobs (unclaimed + scheduled)"},
        "waiting": {**COUNT, "description": "jobs waiting for their parents (dependsOn)"},
        "running": {**COUNT, "description": "held jobs (pending + running of the queues)"},
        "completed": {**COUNT, "description": "succeeded in the last 24 hours"},
        "failed": {**COUNT, "description": "failed in the last 24 hours"},
        "workers": {**COUNT, "description": "active workers"},
        "queueType": {"type": "string", "enum": ["postgresql"]},
        "avgProcessingTime": MILLISECONDS,
        "throughput": closed({"lastMinute": COUNT, "lastHour": COUNT, "lastDay": COUNT}),
        "windowMinutes": INTEGER,
        "countsCapped": BOOLEAN,
        "queuesTruncated": BOOLEAN,
        "checkedAt": CHECKED_AT,
    }
)

# ---------------------------------------------------------------- health and meta

STATUS: Schema = closed({"status": STRING})
OPENAPI_DOCUMENT: Schema = {"type": "object", "description": "an OpenAPI 3.1 document"}

# ---------------------------------------------------------------- lists

JOB_LIST = list_schema(JOB, numbered=True)
# The job list also counts the waiting and running jobs its filter matches.
_LIST_COUNT = {"type": "integer", "minimum": 0}
JOB_LIST["properties"].update(
    {
        "pendingCount": {
            **_LIST_COUNT,
            "description": "queued jobs matching the filter: exact while there are at most"
            " 10,000 queued jobs (of the owner, for a plain token), else estimated (see"
            " countsAreEstimates)",
        },
        "runningCount": {
            **_LIST_COUNT,
            "description": "running or cancelling jobs matching the filter",
        },
        "countsAreEstimates": {
            "type": "boolean",
            "description": "a count read its 10,000 rows without reaching the end: it is the"
            " planner's estimate (at least what those rows matched)",
        },
    }
)
JOB_LIST["required"] += ["pendingCount", "runningCount", "countsAreEstimates"]
EVENT_LIST = list_schema(EVENT)
ATTEMPT_LIST = list_schema(ATTEMPT)
DEFINITION_LIST = list_schema(DEFINITION)
SCHEDULE_LIST = list_schema(SCHEDULE, numbered=True)
SCHEDULE_RUN_LIST = list_schema(SCHEDULE_RUN)
DLQ_LIST = list_schema(DLQ_ENTRY, numbered=True)
RUNNER_LIST = list_schema(RUNNER)
PAUSED_QUEUE_LIST = list_schema(PAUSED_QUEUE)

# ---------------------------------------------------------------- credentials

# Secrets go in, never out: every answer shows which secret fields are stored, not their values.
_SECRET_TEXT: Schema = {"type": "string", "minLength": 1, "writeOnly": True}
CREDENTIAL_FIELDS: Schema = {
    "kind": {"enum": list(CREDENTIAL_KINDS), "description": "ssh or smtp"},
    "username": {
        "type": "string",
        "minLength": 1,
        "maxLength": 256,
        "pattern": "^[^\\x00-\\x1f\\x7f]+$",
        "description": "the login (an ssh.command job may give its own)",
    },
    "privateKey": {
        **_SECRET_TEXT,
        "maxLength": 16384,
        "description": "ssh: a private key in OpenSSH or PEM form (never shown again)",
    },
    "passphrase": {
        **_SECRET_TEXT,
        "maxLength": 1024,
        "description": "ssh: the private key's passphrase, when it is encrypted",
    },
    "password": {**_SECRET_TEXT, "maxLength": 1024, "description": "ssh or smtp: the password"},
    "hostKeys": {
        "type": "array",
        "items": {"type": "string", "minLength": 1, "maxLength": 16384},
        "minItems": 1,
        "maxItems": 50,
        "description": "ssh: the host keys to trust, each an OpenSSH public key line"
        " (`ssh-ed25519 AAAA...`) or a SHA256 fingerprint (`SHA256:...`)",
    },
    "host": {
        "type": "string",
        "minLength": 1,
        "maxLength": 253,
        "pattern": "^[^\\s/]+$",
        "description": "smtp: the server (else SMTP_HOST)",
    },
    "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "smtp"},
    "tls": {"enum": list(CREDENTIAL_TLS_MODES), "description": "smtp: starttls, tls or none"},
}
CREDENTIAL_CREATE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "kind", "username"],
    "properties": {"name": CREDENTIAL_NAME.schema(), **CREDENTIAL_FIELDS},
}
CREDENTIAL_REPLACE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["kind", "username"],
    "properties": CREDENTIAL_FIELDS,
}
CREDENTIAL: Schema = closed(
    {
        "name": STRING,
        "kind": {"type": "string", "enum": list(CREDENTIAL_KINDS)},
        "username": STRING,
        "hostKeys": {
            "type": "array",
            "items": closed(
                {
                    "fingerprint": {"type": "string", "description": "SHA256:..."},
                    "key": {
                        "type": ["string", "null"],
                        "description": "the pinned public key; null when pinned by fingerprint",
                    },
                }
            ),
        },
        "publicKey": {
            "type": ["string", "null"],
            "description": "ssh: the public half of the private key (for authorized_keys)",
        },
        "publicKeyFingerprint": NULLABLE_STRING,
        "secrets": {
            "type": "array",
            "items": {"type": "string", "enum": ["privateKey", "passphrase", "password"]},
            "description": "the secret fields stored (never their values)",
        },
        "host": NULLABLE_STRING,
        "port": NULLABLE_INTEGER,
        "tls": {"type": ["string", "null"], "enum": [*CREDENTIAL_TLS_MODES, None]},
        "keyId": {"type": "string", "description": "the id of the key that encrypted it"},
        "createdAt": TIMESTAMP,
        "updatedAt": TIMESTAMP,
        "createdBy": NULLABLE_STRING,
        "updatedBy": NULLABLE_STRING,
    }
)
CREDENTIALS_QUERY: Schema = page_query(
    100, 1000, {"kind": {"type": "string", "enum": list(CREDENTIAL_KINDS)}}
)
CREDENTIAL_LIST = list_schema(CREDENTIAL)
SAVED_JOB_LIST = list_schema(SAVED_JOB, numbered=True)
EXECUTION_LIST = list_schema(EXECUTION)
# ---------------------------------------------------------------- mail templates

MAIL_TEMPLATE_PARTS: Schema = {
    "subject": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAIL_SUBJECT_CHARS,
        "description": "a Jinja2 template of the subject (not escaped)",
    },
    "text": {
        "type": ["string", "null"],
        "maxLength": MAIL_BODY_CHARS,
        "description": "a Jinja2 template of the text/plain part (not escaped)",
    },
    "html": {
        "type": ["string", "null"],
        "maxLength": MAIL_BODY_CHARS,
        "description": "a Jinja2 template of the text/html part (variables HTML-escaped)",
    },
    "description": {"type": "string", "maxLength": 2000},
}
MAIL_TEMPLATE_CREATE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "subject"],
    "properties": {"name": MAIL_TEMPLATE_NAME.schema(), **MAIL_TEMPLATE_PARTS},
}
MAIL_TEMPLATE_PUT: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["subject"],
    "properties": MAIL_TEMPLATE_PARTS,
}
MAIL_TEMPLATE_PATCH: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": MAIL_TEMPLATE_PARTS,
}
MAIL_TEMPLATE: Schema = closed(
    {
        "name": STRING,
        "subject": STRING,
        "text": NULLABLE_STRING,
        "html": NULLABLE_STRING,
        "description": STRING,
        "createdAt": TIMESTAMP,
        "updatedAt": TIMESTAMP,
        "createdBy": {"type": "string", "description": "owner of the token that created it"},
        "updatedBy": {"type": "string", "description": "owner of the token that last changed it"},
    }
)
MAIL_TEMPLATES_QUERY: Schema = page_query(20, 100, {})
MAIL_TEMPLATE_LIST = list_schema(MAIL_TEMPLATE)

# ---------------------------------------------------------------- videos

VIDEO_FORMATS = list(VIDEO_PRESETS)  # the encoder's own tables: one list of choices
VIDEO_QUALITIES = list(VIDEO_BOXES)
VIDEO_DEFINITION = "encode.video"

# multipart/form-data: a file part and text fields (typed here as the API coerces them)
VIDEO_ENCODE_FORM: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["video"],
    "properties": {
        "video": {
            "type": "string",
            "format": "binary",
            "description": "the video file, streamed to disk (at most VIDEO_MAX_UPLOAD_BYTES)"
            " and checked with FFmpeg before it is stored",
        },
        "format": {
            "type": "string",
            "enum": VIDEO_FORMATS,
            "default": "mp4",
            "description": "mp4 (H.264 + AAC), webm (VP9 + Opus) or mkv (H.264 + AAC)",
        },
        "quality": {
            "type": "string",
            "enum": VIDEO_QUALITIES,
            "default": "1080p",
            "description": "the bounding box: 1280x720, 1920x1080 or 3840x2160 (aspect kept)",
        },
        "priority": {"type": "integer", "minimum": -1000, "maximum": 1000, "default": 0},
        "idempotencyKey": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "description": "a repeat with the same key, fields and file answers the first job"
            " (200) and stores nothing; other fields or another file: 409",
        },
        "upscale": {
            "type": "boolean",
            "default": False,
            "description": "scale a smaller source up to the quality's box (never, by default)",
        },
    },
}
VIDEO_JOB: Schema = closed(
    {
        "jobId": UUID,
        "status": {"type": "string", "enum": list(JOB_STATUSES)},
        "message": STRING,
        "inputFile": {"type": "string", "description": "the stored name of the upload"},
    }
)
VIDEO_STATUS: Schema = closed(
    {
        "jobId": UUID,
        "status": {"type": "string", "enum": list(JOB_STATUSES)},
        "definitionKey": STRING,
        "definitionVersion": INTEGER,
        "format": NULLABLE_STRING,
        "quality": NULLABLE_STRING,
        "inputFile": NULLABLE_STRING,
        "progress": {
            "type": ["number", "null"],
            "description": "percent of the input's duration encoded (100 once succeeded)",
        },
        "progressMessage": NULLABLE_STRING,
        "attempt": INTEGER,
        "maxAttempts": INTEGER,
        "createdAt": TIMESTAMP,
        "startedAt": NULLABLE_TIMESTAMP,
        "finishedAt": NULLABLE_TIMESTAMP,
        "outputPath": {
            "type": ["string", "null"],
            "description": "succeeded: where the output is kept (outputs/<outputFilename>)",
        },
        "outputFilename": NULLABLE_STRING,
        "downloadUrl": {"type": ["string", "null"], "description": "succeeded: GET it"},
        "size": {"type": ["integer", "null"], "description": "succeeded: the output's bytes"},
        "contentType": NULLABLE_STRING,
        "error": {"type": ["string", "null"], "description": "failed: why"},
    }
)

# ---------------------------------------------------------------- workflows

WORKFLOW_STEP: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "jobType"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 64},
        "jobType": {
            "type": "string",
            "minLength": 1,
            "maxLength": 210,
            "description": "a definition: key or key@version (no version: the latest when a"
            " run starts)",
        },
        "params": {
            "description": "templated: {{input...}}, {{steps.<name>.result...}} of a parent"
            " (transitively), {{item}} and {{index}} in a forEach step"
        },
        "dependsOn": {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 64},
            "maxItems": 100,
        },
        "maxAttempts": {"type": "integer", "minimum": 1, "maximum": 100},
        "retries": {
            "type": "integer",
            "minimum": 0,
            "maximum": 99,
            "description": "maxAttempts - 1 (give one of them)",
        },
        "timeoutSeconds": TIMEOUT_SECONDS,
        "forEach": {
            "type": "string",
            "minLength": 1,
            "maxLength": 500,
            "description": "input.<path> or steps.<name>.result<.path>: one job per item",
        },
        "onParentFailure": {"type": "string", "enum": list(ON_PARENT_FAILURE)},
    },
}
_WORKFLOW_FIELDS: Schema = {
    "name": SAVED_JOB_NAME,
    "description": {"type": "string", "maxLength": 2000, "default": ""},
    "steps": {"type": "array", "items": WORKFLOW_STEP, "minItems": 1, "maxItems": 100},
}
WORKFLOW_CREATE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "steps"],
    "properties": _WORKFLOW_FIELDS,
}
WORKFLOW_PATCH: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": _WORKFLOW_FIELDS,
}
WORKFLOW: Schema = closed(
    {
        "id": UUID,
        "owner": STRING,
        "name": STRING,
        "description": STRING,
        "version": INTEGER,
        "steps": {"type": "array", "items": {"type": "object"}},
        "createdBy": NULLABLE_STRING,
        "updatedBy": NULLABLE_STRING,
        "createdAt": TIMESTAMP,
        "updatedAt": TIMESTAMP,
    }
)
WORKFLOW_VERSION: Schema = closed(
    {
        "workflowId": UUID,
        "version": INTEGER,
        "name": STRING,
        "description": STRING,
        "steps": {"type": "array", "items": {"type": "object"}},
        "createdBy": NULLABLE_STRING,
        "createdAt": TIMESTAMP,
    }
)
WORKFLOW_LIST: Schema = list_schema(WORKFLOW)
WORKFLOWS_QUERY: Schema = page_query(100, 1000, {})
WORKFLOW_RUN_CREATE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "inputData": {"description": "any JSON value: {{input...}} in the steps' params"},
        "priority": {"type": "integer", "minimum": -1000, "maximum": 1000, "default": 0},
        "idempotencyKey": {"type": "string", "minLength": 1, "maxLength": 200},
        "retryDelays": {
            **RETRY_DELAYS,
            "description": "the retry delays (seconds) of every job of the run's steps,"
            " instead of their definitions' back-off",
        },
    },
}
RUN_STATUSES = ["pending", "running", "completed", "failed", "cancelled"]
WORKFLOW_RUN_STARTED: Schema = closed(
    {
        "runId": UUID,
        "jobId": {**UUID, "description": "the run's own job (workflow.run@1)"},
        "workflowId": UUID,
        "version": INTEGER,
        "status": {"type": "string", "enum": RUN_STATUSES},
    }
)
_STEP_STATUSES = [*JOB_STATUSES, "pruned"]
WORKFLOW_RUN_JOB: Schema = closed(
    {
        "index": NULLABLE_INTEGER,
        "jobId": UUID,
        "status": {"type": "string", "enum": _STEP_STATUSES},
        "attempt": NULLABLE_INTEGER,
        "maxAttempts": NULLABLE_INTEGER,
        "createdAt": NULLABLE_TIMESTAMP,
        "startedAt": NULLABLE_TIMESTAMP,
        "finishedAt": NULLABLE_TIMESTAMP,
        "result": ANY_JSON,
        "error": NULLABLE_STRING,
    }
)
WORKFLOW_RUN_STEP: Schema = closed(
    {
        "name": STRING,
        "jobType": STRING,
        "dependsOn": {"type": "array", "items": STRING},
        "status": {"type": "string", "enum": _STEP_STATUSES},
        "jobId": NULLABLE_UUID,
        "expanderJobId": NULLABLE_UUID,
        "attempt": NULLABLE_INTEGER,
        "startedAt": NULLABLE_TIMESTAMP,
        "finishedAt": NULLABLE_TIMESTAMP,
        "result": ANY_JSON,
        "error": NULLABLE_STRING,
        "forEach": {
            "anyOf": [
                closed(
                    {
                        "total": INTEGER,
                        "counts": {
                            "type": "object",
                            "additionalProperties": INTEGER,
                        },
                        "jobs": {"type": "array", "items": WORKFLOW_RUN_JOB},
                    }
                ),
                {"type": "null"},
            ]
        },
    }
)
_RUN_FIELDS: Schema = {
    "runId": UUID,
    "jobId": UUID,
    "workflowId": UUID,
    "workflowName": STRING,
    "version": INTEGER,
    "status": {"type": "string", "enum": RUN_STATUSES},
    "owner": STRING,
    "priority": INTEGER,
    "inputData": ANY_JSON,
    "idempotencyKey": NULLABLE_STRING,
    "createdAt": TIMESTAMP,
    "finishedAt": NULLABLE_TIMESTAMP,
    "cancelledAt": NULLABLE_TIMESTAMP,
    "result": ANY_JSON,
    "error": NULLABLE_STRING,
}
WORKFLOW_RUN_SUMMARY: Schema = closed(_RUN_FIELDS)
WORKFLOW_RUN: Schema = closed(
    {**_RUN_FIELDS, "steps": {"type": "array", "items": WORKFLOW_RUN_STEP}}
)
WORKFLOW_RUN_LIST: Schema = list_schema(WORKFLOW_RUN_SUMMARY)
WORKFLOW_RUNS_QUERY: Schema = page_query(100, 1000, {})
