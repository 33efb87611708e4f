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
from jobserver.core.names import DEFINITION_KEY, MAIL_TEMPLATE_NAME, QUEUE, SCHEDULE_NAME
from jobserver.core.timing import DURATION_PATTERN, MAX_DURATION_SECONDS
from jobserver.db.workers import WORKER_STATUSES
from jobserver.mail.templates import MAX_BODY_CHARS as MAIL_BODY_CHARS
from jobserver.mail.templates import MAX_SUBJECT_CHARS as MAIL_SUBJECT_CHARS
from jobserver.statuses import JOB_STATUSES, TERMINAL_STATUSES

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
        "timeoutSeconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 604800},
        "event": EVENT_NAME,
        "tags": {
            "type": "array",
            "items": TAG,
            "maxItems": MAX_TAGS,
            "uniqueItems": True,
            "description": f"at most {MAX_TAGS} distinct labels",
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
        "registeredAt": TIMESTAMP,
        "updatedAt": TIMESTAMP,
    }
)
DEFINITIONS_QUERY: Schema = page_query(100, 1000, {"key": {"type": "string", "maxLength": 200}})

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
        }
    },
)

# ---------------------------------------------------------------- metrics

TTL: Schema = {"type": "number", "minimum": 0, "maximum": 86400, "description": "cache seconds"}
METRICS_QUERY: Schema = query({"ttl": TTL})
THROUGHPUT_QUERY: Schema = query(
    {"ttl": TTL, "hours": {"type": "integer", "minimum": 1, "maximum": 168, "default": 24}}
)
PERCENT: Schema = {"type": ["number", "null"], "description": "0-100; null with no finished job"}
MILLISECONDS: Schema = {"type": ["number", "null"], "description": "milliseconds"}
PERFORMANCE_FIELDS: Schema = {
    "successRate": PERCENT,
    "avgProcessingTime": MILLISECONDS,
    "avgQueueTime": MILLISECONDS,
    "retryRate": PERCENT,
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
PERFORMANCE_ANSWER: Schema = closed({**PERFORMANCE_FIELDS, "cachedAt": CACHED_AT})

# ---------------------------------------------------------------- health and meta

STATUS: Schema = closed({"status": STRING})
OPENAPI_DOCUMENT: Schema = {"type": "object", "description": "an OpenAPI 3.1 document"}

# ---------------------------------------------------------------- lists

JOB_LIST = list_schema(JOB, numbered=True)
EVENT_LIST = list_schema(EVENT)
ATTEMPT_LIST = list_schema(ATTEMPT)
DEFINITION_LIST = list_schema(DEFINITION)
SCHEDULE_LIST = list_schema(SCHEDULE, numbered=True)
SCHEDULE_RUN_LIST = list_schema(SCHEDULE_RUN)
DLQ_LIST = list_schema(DLQ_ENTRY, numbered=True)
RUNNER_LIST = list_schema(RUNNER)

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
