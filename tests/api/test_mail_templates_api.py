"""`/v1/mail-templates` (CRUD, scopes, 422s naming the field) and the submission checks of
`mail.send` (a 422 naming the field for what the params alone or the stored templates can
tell), and its dry run through `POST /v1/simulate`."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from jobserver.mail.config import MailConfig, MailLimits, SmtpServer, configure_mail
from tests.api.conftest import Api

WELCOME = {
    "name": "welcome",
    "subject": "Welcome, {{ name }}",
    "text": "Hi {{ name }}!",
    "html": "<p>Hi {{ name }}!</p>",
    "description": "sent on sign-up",
}


def mail(**params: Any) -> dict[str, Any]:
    return {"definitionKey": "mail.send", "params": {"to": "ann@example.com", **params}}


@pytest.fixture
def small_cap() -> Iterator[None]:
    configure_mail(
        MailConfig(
            server=SmtpServer(host="smtp.example.com", from_address="Jobs <jobs@example.com>"),
            limits=MailLimits(attachment_dir=None, max_attachment_bytes=1000),
        )
    )
    yield
    configure_mail(None)


async def test_create_read_list_replace_patch_delete(api: Api) -> None:
    r = await api.call("POST", "/v1/mail-templates", json=WELCOME)
    assert r.status == 201, r.body
    created = r.body
    assert created["name"] == "welcome" and created["createdBy"] == "admin"
    assert created["updatedBy"] == "admin" and created["html"] == WELCOME["html"]

    r = await api.call("GET", "/v1/mail-templates/welcome", token="view")
    assert r.status == 200 and r.body == created

    for name in ("b-one", "c-two"):
        r = await api.call("POST", "/v1/mail-templates", json={**WELCOME, "name": name})
        assert r.status == 201
    r = await api.call("GET", "/v1/mail-templates", token="view", params={"limit": "2"})
    assert r.status == 200 and [t["name"] for t in r.body["items"]] == ["b-one", "c-two"]
    r = await api.call(
        "GET", "/v1/mail-templates", token="view", params={"cursor": r.body["nextCursor"]}
    )
    assert [t["name"] for t in r.body["items"]] == ["welcome"] and r.body["nextCursor"] is None

    r = await api.call("PUT", "/v1/mail-templates/welcome", json={"subject": "Hi", "html": "<p/>"})
    assert r.status == 200, r.body
    assert r.body["text"] is None and r.body["description"] == "" and r.body["html"] == "<p/>"
    assert r.body["createdAt"] == created["createdAt"]

    r = await api.call("PATCH", "/v1/mail-templates/welcome", json={"text": "plain {{ x }}"})
    assert r.status == 200 and r.body["text"] == "plain {{ x }}" and r.body["html"] == "<p/>"
    r = await api.call("PATCH", "/v1/mail-templates/welcome", json={"html": None})
    assert r.status == 200 and r.body["html"] is None

    r = await api.call("DELETE", "/v1/mail-templates/welcome")
    assert r.status == 204
    for method in ("GET", "DELETE"):
        r = await api.call(method, "/v1/mail-templates/welcome")
        assert r.status == 404 and r.body["code"] == "not_found"
    r = await api.call("PUT", "/v1/mail-templates/welcome", json={"subject": "x", "text": "y"})
    assert r.status == 404


async def test_bad_templates_are_422s_naming_the_part(api: Api) -> None:
    cases = [
        ({**WELCOME, "html": "<p>\n{{ name }</p>"}, "html", "line 2"),
        ({**WELCOME, "subject": "{% if %}"}, "subject", "line 1"),
        ({**WELCOME, "text": "{% for x in y %}"}, "text", "line 1"),
        ({"name": "x", "subject": "s"}, "text", "text or an html part"),
        ({"name": "x", "subject": "s", "text": None, "html": None}, "text", "text or an html"),
        ({**WELCOME, "name": "bad name"}, "name", ""),
        ({**WELCOME, "subject": ""}, "subject", ""),
        ({**WELCOME, "text": "x" * (256 * 1024 + 1)}, "text", ""),
    ]
    for body, field, words in cases:
        r = await api.call("POST", "/v1/mail-templates", json=body)
        assert r.status in (413, 422), (body["name"], r.body)
        if r.status == 422:
            assert r.body["field"] == field, r.body
            assert words in r.body["error"], r.body
    r = await api.call("POST", "/v1/mail-templates", json=WELCOME)
    assert r.status == 201
    r = await api.call("POST", "/v1/mail-templates", json=WELCOME)
    assert r.status == 409 and r.body["field"] == "name"
    r = await api.call("PATCH", "/v1/mail-templates/welcome", json={"text": None, "html": None})
    assert r.status == 422 and r.body["field"] == "text"
    r = await api.call("PATCH", "/v1/mail-templates/welcome", json={"html": "{{ a + }}"})
    assert r.status == 422 and r.body["field"] == "html" and "line 1" in r.body["error"]
    r = await api.call("GET", "/v1/mail-templates/welcome")
    assert r.body["html"] == WELCOME["html"]  # nothing written


async def test_scopes(api: Api) -> None:
    r = await api.call("POST", "/v1/mail-templates", json=WELCOME, token="view")
    assert r.status == 403
    r = await api.call("POST", "/v1/mail-templates", json=WELCOME)
    assert r.status == 201
    for token in ("plain", None):
        r = await api.call("GET", "/v1/mail-templates", token=token)
        assert r.status == (403 if token else 401)
    for method, body in (("PUT", {"subject": "x", "text": "y"}), ("PATCH", {}), ("DELETE", None)):
        r = await api.call(method, "/v1/mail-templates/welcome", json=body, token="view")
        assert r.status == 403, method
    r = await api.call("GET", "/v1/mail-templates/welcome", token="view")
    assert r.status == 200 and r.body["subject"] == WELCOME["subject"]


async def test_a_submission_naming_a_missing_template_is_a_422(api: Api) -> None:
    r = await api.call("POST", "/v1/jobs", json=mail(template="welcome"))
    assert r.status == 422 and r.body["field"] == "params.template", r.body
    r = await api.call(
        "POST",
        "/v1/jobs/batch",
        json={"jobs": [mail(text="hi"), mail(template="welcome")]},
    )
    assert r.status == 422 and r.body["field"] == "jobs[1].params.template", r.body
    r = await api.call(
        "POST",
        "/v1/schedules",
        json={"name": "weekly", "everySeconds": 3600, **mail(template="welcome")},
    )
    assert r.status == 422 and r.body["field"] == "params.template", r.body
    assert await api.job_count() == 0

    assert (await api.call("POST", "/v1/mail-templates", json=WELCOME)).status == 201
    r = await api.call("POST", "/v1/jobs", json=mail(template="welcome", variables={"name": "A"}))
    assert r.status == 201, r.body


async def test_mail_params_are_checked_at_submission(api: Api, small_cap: None) -> None:
    big = base64.b64encode(b"x" * 1001).decode()
    cases = [
        (mail(), "params.text"),
        (mail(text="x", template="welcome"), "params.text"),
        (mail(text="x", variables={"a": 1}), "params.variables"),
        ({"definitionKey": "mail.send", "params": {"text": "x"}}, "params.to"),
        (mail(text="x", to=["ann@example.com", "not an address"]), "params.to[1]"),
        (mail(text="x", cc="Ann <ann@@example.com>"), "params.cc"),
        (mail(text="x", to="a@example.com, b@example.com"), "params.to"),
        (mail(text="x", bcc=[f"u{i}@example.com" for i in range(100)]), "params.to"),
        (mail(text="x", **{"from": "nobody"}), "params.from"),
        (mail(text="x", headers={"Bcc": "spy@example.com"}), "params.headers.Bcc"),
        (mail(text="x", headers={"content-type": "text/evil"}), "params.headers.content-type"),
        (mail(text="x", headers={"X-A": "1\r\nBcc: spy@example.com"}), "params.headers.X-A"),
        (mail(text="x", subject="a\r\nBcc: spy@example.com"), "params.subject"),
        (
            mail(text="x", attachments=[{"filename": "a", "content": "not base64!"}]),
            "params.attachments[0].content",
        ),
        (mail(text="x", attachments=[{"filename": "a", "content": big}]), "params.attachments"),
        (
            mail(text="x", attachments=[{"filename": "a", "path": "r.pdf"}]),
            "params.attachments[0].path",
        ),
        (mail(text="Hi {{nobody.name}}"), "params.text"),
    ]
    for body, field in cases:
        for route in ("/v1/jobs", "/v1/simulate"):
            r = await api.call("POST", route, json=body)
            assert r.status == 422, (route, body, r.body)
            assert r.body["field"] == field, (route, body, r.body)
    assert await api.job_count() == 0
    ok = mail(
        text="x",
        to="Ann Example <ann@example.com>",
        attachments=[{"filename": "a.txt", "content": base64.b64encode(b"x" * 1000).decode()}],
    )
    r = await api.call("POST", "/v1/jobs", json=ok)
    assert r.status == 201, r.body


async def test_a_plain_token_needs_the_outbound_capability(api: Api) -> None:
    r = await api.call("POST", "/v1/jobs", json=mail(text="x"), token="plain")
    assert r.status == 403


async def test_simulate_shows_the_message_it_would_send(api: Api, small_cap: None) -> None:
    assert (await api.call("POST", "/v1/mail-templates", json=WELCOME)).status == 201
    body = mail(
        template="welcome",
        variables={"name": "<Ann>"},
        bcc="Secret <boss@example.com>",
        headers={"X-Tag": "{{$today}}"},
        attachments=[{"filename": "a.txt", "content": base64.b64encode(b"hello").decode()}],
    )
    r = await api.call("POST", "/v1/simulate", json=body)
    assert r.status == 200, r.body
    assert r.body["sent"] is False
    message = r.body["payload"]
    assert message["subject"] == "Welcome, <Ann>"
    assert message["text"] == "Hi <Ann>!" and message["html"] == "<p>Hi &lt;Ann&gt;!</p>"
    assert message["from"] == "Jobs <jobs@example.com>"
    assert message["bcc"] == ["Secret <boss@example.com>"]
    assert "Bcc" not in message["headers"] and message["headers"]["To"] == "ann@example.com"
    assert len(message["headers"]["X-Tag"]) == 10
    assert message["envelope"] == {
        "sender": "jobs@example.com",
        "recipients": ["ann@example.com", "boss@example.com"],
    }
    assert message["attachments"] == [{"filename": "a.txt", "contentType": "text/plain", "size": 5}]
    assert message["contentType"] == "multipart/mixed" and message["size"] > 0
    assert await api.job_count() == 0

    r = await api.call(
        "POST", "/v1/simulate", json=mail(template="welcome", variables={"nom": "x"})
    )
    assert r.status == 422 and r.body["field"] == "params.template", r.body
    assert "'name' is undefined" in r.body["error"]


async def test_a_template_named_by_a_saved_job_or_schedule_is_not_deleted(api: Api) -> None:
    for name in ("welcome", "unused"):
        r = await api.call("POST", "/v1/mail-templates", json={**WELCOME, "name": name})
        assert r.status == 201, r.body
    job = mail(template="welcome", variables={"name": "Ann"})
    r = await api.call("POST", "/v1/saved-jobs", json={"name": "greet", **job})
    assert r.status == 201, r.body
    saved = r.body["id"]
    r = await api.call(
        "POST", "/v1/schedules", json={"name": "weekly", "everySeconds": 3600, **job}
    )
    assert r.status == 201, r.body
    # a job naming it is no user: it fails for good at run time if the template is gone
    assert (await api.call("POST", "/v1/jobs", json=job)).status == 201

    r = await api.call("DELETE", "/v1/mail-templates/welcome")
    assert (r.status, r.body["code"]) == (409, "in_use"), r.body
    assert r.body["usedBy"] == {
        "savedJobs": [{"id": saved, "name": "greet", "owner": "admin"}],
        "schedules": [{"name": "weekly"}],
        "savedJobCount": 1,
        "scheduleCount": 1,
    }
    assert (await api.call("GET", "/v1/mail-templates/welcome")).status == 200
    assert (await api.call("DELETE", "/v1/mail-templates/unused")).status == 204

    # a saved job that stops naming it is no longer a user
    r = await api.call(
        "PATCH", f"/v1/saved-jobs/{saved}", json={"params": {"to": "ann@example.com", "text": "hi"}}
    )
    assert r.status == 200, r.body
    r = await api.call("DELETE", "/v1/mail-templates/welcome")
    assert r.status == 409 and r.body["usedBy"]["savedJobCount"] == 0, r.body
    assert (await api.call("DELETE", "/v1/schedules/weekly")).status == 204
    assert (await api.call("DELETE", "/v1/mail-templates/welcome")).status == 204
