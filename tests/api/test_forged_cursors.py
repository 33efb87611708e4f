"""Forged cursors are a 422 naming `cursor` on every list route, never a 500.

An attacker takes a real `nextCursor`, decodes it (URL-safe base64 of a JSON array), changes
one value and encodes it again. Every list route of the route table is tried with every
forgery: out-of-range integers (an `integer` column given 2**31, a `bigint` one 2**63),
timestamps at the ends of the calendar, wrong types, NUL and lone surrogates in text, a cursor
of another list, too many or too few values, raw bytes that are not JSON. Without the checks
in `jobserver/api/paging.py` the database refuses these values and the API answered 500 (with
a traceback logged every time).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from jobserver.api.paging import decode_cursor
from jobserver.core.errors import RuleError
from jobserver.db.workers import worker_register
from jobserver.scheduler.rescuer import Rescuer
from tests.api.conftest import Api
from tests.api.test_lists import _list_routes, _path, _seed, seed_credential, seed_workflow
from tests.scheduler.helpers import insert_job

# Replacements for one value of a real cursor. Some may name a real position (200); the rest
# must be refused (422). None may be a 500.
MAYBE_VALID: list[Any] = [
    0,
    -1,
    2**31 - 1,
    -(2**31),
    2**31,  # past an `integer` column (attempts, priorities), fine for a `bigint` one (events)
    -(2**31) - 1,
    "x",
    "9999-12-31T23:59:59.999999+00:00",
    "0001-01-01T00:00:00+00:00",
    "00000000-0000-0000-0000-000000000000",
    True,
    False,
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
]
REFUSED: list[Any] = [
    2**63,
    -(2**63) - 1,
    10**30,
    1.5,
    1e308,
    None,
    [],
    {},
    [[1]],
    "a\u0000b",
]
# Dates past the ends of the calendar once in UTC: refused where a time is expected, plain
# text where a name is (the unit test below pins the refusal).
CALENDAR_ENDS = ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> list[Any]:
    data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert isinstance(data, list)
    return data


def encode(data: Any) -> str:
    return _b64(json.dumps(data).encode())


async def _seed_two_of_each(api: Api) -> dict[str, str]:
    """Two items in every list, so that `limit=1` gives a real `nextCursor` everywhere."""
    ids = await _seed(api)
    await insert_job(
        api.pool, status="running", attempt=2, max_attempts=2, lease_offset=-1, worker_id="w2"
    )
    assert (await Rescuer(api.pool).run_once())["failed"] == 1
    # a second queue (named by a live worker) for GET /v1/queues
    await worker_register(api.pool, "w2", "host", 2, ["default", "other"], ["echo@1"], 4)
    r = await api.call(
        "POST", "/v1/schedules", json={"name": "other", "everySeconds": 60, "definitionKey": "echo"}
    )
    assert r.status == 201, r.body
    r = await api.call("POST", f"/v1/schedules/{ids['name']}/trigger")  # a second run
    assert r.status == 201, r.body
    await seed_credential(api, "other")
    r = await api.call("POST", "/v1/saved-jobs", json={"name": "other", "definitionKey": "echo"})
    assert r.status == 201, r.body
    r = await api.call("POST", f"/v1/saved-jobs/{ids['savedJobId']}/execute")  # a second run
    assert r.status == 201, r.body
    template = {"name": "other", "subject": "s", "text": "t"}
    assert (await api.call("POST", "/v1/mail-templates", json=template)).status == 201
    await seed_workflow(api, "other")
    r = await api.call("POST", f"/v1/workflows/{ids['workflowId']}/runs", json={})  # a second run
    assert r.status == 201, r.body
    assert (await api.call("POST", f"/v1/workflows/runs/{r.body['runId']}/cancel")).status == 200
    return ids


async def _real_cursors(api: Api, ids: dict[str, str]) -> list[tuple[str, dict[str, str], str]]:
    """(path, extra query, a real nextCursor) for every list route and every jobs sort."""
    out = []
    for route in _list_routes(api):
        path = _path(route, ids)
        variants: list[dict[str, str]] = [{}]
        if route.path == "/v1/jobs":
            for i in range(2):
                await api.submit(priority=5, event=f"e{i}")
            variants = [
                {"sortBy": by, "sortOrder": order}
                for by in ("createdAt", "priority", "status", "event")
                for order in ("asc", "desc")
            ]
        for extra in variants:
            r = await api.call("GET", path, params={"limit": "1", **extra})
            assert r.status == 200 and r.body["nextCursor"], (path, extra, r.body)
            out.append((path, extra, r.body["nextCursor"]))
    return out


def forgeries(real: str, other_scope: str) -> list[tuple[str, bool]]:
    """(forged cursor, must be refused) built from a real one."""
    data = decode(real)
    out: list[tuple[str, bool]] = []
    for i in range(1, len(data)):
        for value in MAYBE_VALID:
            out.append((encode([*data[:i], value, *data[i + 1 :]]), False))
        for value in REFUSED:
            out.append((encode([*data[:i], value, *data[i + 1 :]]), True))
        # a lone surrogate, escaped as json.dumps writes it
        text = json.dumps([*data[:i], "\ud800", *data[i + 1 :]])
        out.append((_b64(text.encode()), True))
    out += [
        (encode([other_scope, *data[1:]]), True),  # another list's (or sort order's) scope
        (encode([*data, 1]), True),
        (encode(data[:-1]), True),
        (encode([]), True),
        (encode(data[1:]), True),
        (encode({"scope": data[0]}), True),
        (_b64(json.dumps(data).encode()[:-1]), True),  # truncated JSON
        (_b64(b"\x00" + json.dumps(data).encode()), True),  # NUL before the JSON
        (_b64(b"\xff\xfe\x00"), True),  # not UTF-8
        (_b64(("[" * 200 + "]" * 200).encode()), True),
        (_b64(f'["{data[0]}", {"9" * 400}]'.encode()), True),  # a 400-digit integer
    ]
    return out


async def test_forged_cursors_are_422_on_every_list_route(api: Api) -> None:
    ids = await _seed_two_of_each(api)
    cursors = await _real_cursors(api, ids)
    assert len(cursors) >= 12, cursors
    for n, (path, extra, real) in enumerate(cursors):
        other = decode(cursors[(n + 1) % len(cursors)][2])[0]
        for forged, refused in forgeries(real, other):
            r = await api.call("GET", path, params={**extra, "cursor": forged})
            where = (path, extra, base64.urlsafe_b64decode(forged + "=" * (-len(forged) % 4)))
            assert r.status in (200, 422), (where, r.status, r.body)
            if r.status == 422 or refused:
                assert (r.status, r.body.get("field")) == (422, "cursor"), (where, r.body)


@pytest.mark.parametrize(
    ("kinds", "values"),
    [
        (("datetime",), [CALENDAR_ENDS[0]]),
        (("datetime",), [CALENDAR_ENDS[1]]),
        (("datetime",), ["2024-01-01T00:00:00"]),  # no time zone
        (("int",), [2**31]),
        (("bigint",), [2**63]),
        (("uuid",), ["not-a-uuid"]),
        (("str",), ["\ud800"]),
        (("bool",), [1]),
        (("int",), [True]),
    ],
)
def test_decode_refuses_values_the_database_would(kinds: Any, values: list[Any]) -> None:
    forged = encode(["s", *values])  # json.dumps: lone surrogates escaped as an attacker would
    with pytest.raises(RuleError) as err:
        decode_cursor(forged, "s", kinds)
    assert err.value.field == "cursor"
