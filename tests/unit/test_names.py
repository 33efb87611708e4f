"""The one key/name rule (`jobserver.core.names`) and its users: registry, code schedules."""

from __future__ import annotations

from typing import Any

import pytest

from jobserver.core.names import DEFINITION_KEY, QUEUE, SCHEDULE_NAME
from jobserver.registry import DefinitionError, Registry, definition
from jobserver.schedules import CodeSchedule, schedule


async def _run(params: Any, ctx: Any) -> None:
    """A definition that does nothing."""


@pytest.mark.parametrize(
    "value",
    ["café", "echo\n", "echo\r\n", "\necho", "", "a" * 201, "a b", "echo\x00", "é", "\uff45cho"],
)
def test_definition_key_refuses(value: str) -> None:
    assert not DEFINITION_KEY.matches(value)
    with pytest.raises(ValueError, match="definition key"):
        DEFINITION_KEY.check(value)


@pytest.mark.parametrize("value", ["echo", "a", "Mail.send_v2-x", "a" * 200])
def test_definition_key_accepts(value: str) -> None:
    assert DEFINITION_KEY.matches(value) and DEFINITION_KEY.check(value) == value


def test_queue_and_schedule_name_allow_colons_but_no_newline() -> None:
    assert QUEUE.matches("tenant:emails") and SCHEDULE_NAME.matches("nightly:report")
    assert not QUEUE.matches("default\n") and not SCHEDULE_NAME.matches("nightly\n")
    assert not QUEUE.matches("q" * 101) and SCHEDULE_NAME.matches("s" * 200)
    assert not DEFINITION_KEY.matches("a:b")


def test_schema_pattern_is_the_same_rule() -> None:
    assert DEFINITION_KEY.pattern == "^[A-Za-z0-9._-]{1,200}$"
    assert DEFINITION_KEY.schema() == {"type": "string", "pattern": DEFINITION_KEY.pattern}


@pytest.mark.parametrize("key", ["café", "echo\n"])
def test_registry_refuses_what_the_api_refuses(key: str) -> None:
    target = Registry()
    with pytest.raises(DefinitionError, match="expected 1-200 of"):
        definition(key, 1, target=target)(_run)
    assert len(target) == 0


def test_code_schedules_follow_the_rules() -> None:
    target: list[CodeSchedule] = []
    for bad in (
        {"name": "nightly\n", "definition": "echo"},
        {"name": "café", "definition": "echo"},
        {"name": "nightly", "definition": "café"},
        {"name": "nightly", "definition": "echo", "queue": "default\n"},
    ):
        with pytest.raises(ValueError):
            schedule(every_seconds=60, target=target, **bad)
    assert target == []
    ok = schedule("nightly:x", definition="echo", every_seconds=60, target=target)
    assert target == [ok]
