"""The one JSON codec: strict text for the database, lenient bytes for answers, canonical text
for fingerprints. No database needed."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest

from jobserver.codec import canonical, dumps_answer, dumps_answer_text, dumps_stored, loads

BIG = 2**70 + 1  # past 64 bits: orjson refuses it, the standard encoder keeps it exact


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        {"x": [1, float("nan")]},
        {"null": None, "x": float("inf")},  # the null sends it down the second path
        {"big": BIG, "x": float("nan")},  # orjson refuses the int: second path again
    ],
)
def test_stored_refuses_nan_and_infinity(value: Any) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        dumps_stored(value)


@pytest.mark.parametrize(
    "value",
    [
        {"big": BIG},
        {"neg": -BIG, "n": None},
        [2**64, 2**63 - 1, -(2**63)],
    ],
)
def test_integers_past_64_bits_stay_exact(value: Any) -> None:
    text = dumps_stored(value)
    assert loads(text) == value
    for n in value.values() if isinstance(value, dict) else value:
        if n is not None:
            assert str(n) in text  # digits, not a float's rounding
    assert loads(dumps_answer(value)) == value


def test_stored_is_compact_utf8_text_with_string_keys() -> None:
    text = dumps_stored({"s": "é\u2028", 1: [1.5, True, None]})
    assert text == '{"s":"é\u2028","1":[1.5,true,null]}'
    assert isinstance(text, str)


def test_stored_writes_datetimes_alike_on_both_paths() -> None:
    """A value with a null goes through the standard encoder: same text as orjson gives."""
    t = dt.datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=dt.UTC)
    u = uuid.UUID(int=7)
    fast = loads(dumps_stored({"t": t, "u": u}))
    slow = loads(dumps_stored({"t": t, "u": u, "n": None}))
    assert fast == {"t": "2024-05-06T07:08:09.000010+00:00", "u": str(u)}
    assert slow == {**fast, "n": None}


def test_answers_write_datetimes_uuids_and_sets() -> None:
    t = dt.datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=dt.UTC)
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    value = {"at": t, "day": t.date(), "id": u, "tags": {"a"}}
    for out in (dumps_answer(value).decode(), dumps_answer_text(value)):
        assert json.loads(out) == {
            "at": "2024-01-02T03:04:05.006000+00:00",
            "day": "2024-01-02",
            "id": "12345678-1234-5678-1234-567812345678",
            "tags": ["a"],
        }
    assert isinstance(dumps_answer(value), bytes)
    assert isinstance(dumps_answer_text(value), str)


def test_answers_refuse_unknown_objects() -> None:
    with pytest.raises(TypeError):
        dumps_answer({"x": object()})
    with pytest.raises(TypeError):
        dumps_answer_text({"x": object()})


def test_canonical_sorts_keys_at_every_depth() -> None:
    a = {"b": 1, "a": {"d": [1, {"z": 0, "y": 1}], "c": "é"}}
    b = {"a": {"c": "é", "d": [1, {"y": 1, "z": 0}]}, "b": 1}
    assert canonical(a) == canonical(b) == '{"a":{"c":"é","d":[1,{"y":1,"z":0}]},"b":1}'
    assert canonical([2, 1]) != canonical([1, 2])  # arrays keep their order


def test_canonical_refuses_nan() -> None:
    with pytest.raises(ValueError):
        canonical({"x": float("nan")})


def test_loads_reads_big_integers_exactly() -> None:
    assert loads(f'{{"n": {BIG}}}') == {"n": BIG}
