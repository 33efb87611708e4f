"""Submission checks of templated params: what can be known before the run is a problem."""

from __future__ import annotations

from typing import Any

from jobserver.rendering import check_submission

KEYS = ("url", "headers", "payload", "body")
USER = {"collection": "users", "match": {"name": "John"}, "fields": ["name"], "single": True}


def problems(params: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    return check_submission(params, KEYS)


def test_plain_params_and_known_names_pass() -> None:
    assert problems({"url": "https://x", "payload": {"a": 1}}) == []
    assert problems({"url": "https://x/{{params.payload.id}}", "payload": {"id": 3}}) == []
    assert problems({"payload": {"at": "{{$timestamp}}", "job": "{{job.id}}"}}) == []
    assert problems({"payload": "{{schedule.name}}"}) == []
    assert problems({"useSources": True, "sources": {"user": USER}, "payload": "{{user.x}}"}) == []


def test_a_root_that_is_no_source_names_the_placeholder_and_field() -> None:
    [(path, message)] = problems({"payload": {"msg": "Hello {{user.name}}"}})
    assert path == ("payload", "msg")
    assert "{{user.name}}" in message and "no sources" in message


def test_sources_are_ignored_unless_use_sources_is_true() -> None:
    [(path, message)] = problems({"sources": {"user": USER}, "payload": "{{user}}"})
    assert path == ("payload",) and "{{user}}" in message


def test_a_missing_params_or_job_path_is_known_at_submission() -> None:
    [(path, message)] = problems({"payload": {"x": "{{params.nothing}}"}})
    assert path == ("payload", "x") and "{{params.nothing}}" in message
    [(path, message)] = problems({"body": "id={{job.nope}}"})
    assert path == ("body",) and "{{job.nope}}" in message


def test_bad_syntax_and_unknown_macros() -> None:
    [(path, message)] = problems({"headers": {"X-Id": "{{$nope}}"}})
    assert path == ("headers", "X-Id") and "unknown macro" in message
    [(path, _)] = problems({"payload": ["ok", "{{ bad path! }}"]})
    assert path == ("payload", 1)


def test_bad_sources_name_the_field() -> None:
    [(path, message)] = problems(
        {"useSources": True, "sources": {"user": {**USER, "limit": 0}}, "payload": "x"}
    )
    assert path[:2] == ("sources", "user")
    [(path, message)] = problems({"useSources": True, "sources": {"params": USER}})
    assert path == ("sources", "params") and "reserved" in message


def test_untemplated_keys_are_not_checked() -> None:
    assert problems({"other": "{{nothing}}", "payload": 1}) == []
