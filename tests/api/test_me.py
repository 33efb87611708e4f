"""`GET /v1/me`: a token learns its own name, owner and scopes (the dashboard shows only the
actions they allow)."""

from __future__ import annotations

from tests.api.conftest import Api


async def test_each_token_reads_its_own_rights(api: Api) -> None:
    seen = {}
    for name in ("plain", "view", "manage"):
        r = await api.call("GET", "/v1/me", token=name)
        assert r.status == 200, r.body
        seen[name] = r.body
    assert seen["plain"]["scopes"] == [] and not seen["plain"]["canViewAll"]
    assert not seen["plain"]["canManage"] and not seen["plain"]["canCallOut"]
    assert seen["view"]["canViewAll"] and not seen["view"]["canManage"]
    assert seen["manage"]["canViewAll"] and seen["manage"]["canManage"]
    assert seen["manage"]["canCallOut"] and "manage_jobs" in seen["manage"]["scopes"]
    assert all(b["authEnabled"] for b in seen.values())
    assert len({b["tokenName"] for b in seen.values()}) == 3
    assert seen["plain"]["owner"] != seen["manage"]["owner"]


async def test_no_token_or_a_bad_one_is_401_and_a_query_is_422(api: Api) -> None:
    for token in (None, "js_not_a_token"):
        r = await api.call("GET", "/v1/me", token=token)
        assert r.status == 401 and r.body["code"] == "unauthorized"
    r = await api.call("GET", "/v1/me", token="plain", params={"x": "1"})
    assert r.status == 422
