"""The one JSON codec: strict text for the database, lenient bytes for answers, canonical text
for fingerprints. No database needed."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest

from jobserver.codec import (
    NotStorable,
    canonical,
    dumps_answer,
    dumps_answer_text,
    dumps_storable,
    dumps_stored,
    loads,
    rendered_length,
)

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


# -- dumps_storable: what PostgreSQL cannot store fails before it reaches a write ----------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"x": "a\x00b"}, "result holds a NUL character at x"),
        ({"a": [1, {"b\x00": 2}]}, "result holds a NUL character at a.1.b\\u0000"),
        ("\x00", "result holds a NUL character at the top level"),
        ({"x": None, "y": ["\x00"]}, "result holds a NUL character at y.0"),  # the null path
        ({"x": "\ud800"}, "result holds a lone surrogate at x"),
        ({"k\udc00": 1}, "result holds a lone surrogate at k\\udc00"),
        ({"big": BIG, "s": "\ud800"}, "result holds a lone surrogate at s"),
        ({"x": "y" * 2000}, "result is 2008 bytes of JSON, over the limit of 2000"),
        ({"x": "é" * 1000}, "result is 2008 bytes of JSON"),  # bytes, not characters
    ],
)
def test_storable_refuses_what_postgres_cannot_store(value: Any, message: str) -> None:
    with pytest.raises(NotStorable) as e:
        dumps_storable(value, 2000)
    assert str(e.value).startswith(f"result_not_storable: {message}")
    assert isinstance(e.value, ValueError)
    str(e.value).encode()  # the message itself is storable text


def test_storable_refuses_deep_nesting() -> None:
    value: Any = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(NotStorable, match="nested too deeply"):
        dumps_storable(value, 1 << 20)


@pytest.mark.parametrize(
    "value",
    [
        {"message": "hi", "n": 1, "ok": True, "none": None},
        {"text": "a backslash then u0000: \\u0000"},  # looks like NUL in the JSON text only
        {"big": BIG},
        {"x": "y" * 1990},
        "café",
    ],
)
def test_storable_is_stored_text_for_everything_else(value: Any) -> None:
    assert dumps_storable(value, 2000) == dumps_stored(value)


def test_storable_names_what_it_checks() -> None:
    with pytest.raises(NotStorable, match=r"^result_not_storable: event holds a NUL"):
        dumps_storable({"data": "\x00"}, 100, "event")


# -- rendered numbers: PostgreSQL prints jsonb numbers without an exponent -----------------------


@pytest.mark.parametrize(
    ("number", "printed"),
    [
        (1e308, "1" + "0" * 308),
        (1e16, "1" + "0" * 16),
        (-2.5e20, "-25" + "0" * 19),
        (1.5e-300, "0." + "0" * 299 + "15"),
        (1e-05, "0.00001"),
        (123.456, "123.456"),
        (1.0, "1.0"),
        (0.0, "0.0"),
        (0.5, "0.5"),
    ],
)
def test_rendered_length_is_what_postgresql_prints(number: float, printed: str) -> None:
    assert rendered_length(number) == len(printed)


def test_a_result_that_reads_back_over_the_cap_is_not_storable() -> None:
    value = {"x": [1e308] * 10}  # 77 bytes sent, 3,107 printed back
    assert len(dumps_stored(value)) < 100
    with pytest.raises(NotStorable) as e:
        dumps_storable(value, 2000)
    assert str(e.value) == (
        "result_not_storable: result is 77 bytes of JSON that PostgreSQL would print back as"
        " 3107 (numbers written out in full), over the limit of 2000"
    )


def test_rendered_size_counts_on_the_standard_encoder_path_too() -> None:
    value = {"n": None, "big": BIG, "tiny": [1.5e-300] * 10}  # null and a big int: _strict
    with pytest.raises(NotStorable, match="would print back as"):
        dumps_storable(value, 2000)
    with pytest.raises(NotStorable, match="would print back as"):
        dumps_storable((1e308, {1e308}), 300)  # tuples and sets are walked as lists


@pytest.mark.parametrize(
    "value",
    [
        {"avogadro": 6.02e23, "planck": 6.626e-34},  # a few exponents: well under the cap
        {"x": 1e308},  # 309 digits printed: fits 2,000 bytes
        {"text": "re-run e-mail 1e+308 written in a string"},  # looks like an exponent
        [0.1, 2.5, -3.75, 1e15],  # written without an exponent
    ],
)
def test_exponents_that_fit_once_printed_are_stored(value: Any) -> None:
    assert dumps_storable(value, 2000) == dumps_stored(value)
