"""The cost bounds of the shipped definitions (their `check_params` hooks) and the hook's
composition with the schema check: pure arithmetic, no database."""

from __future__ import annotations

from typing import Any

from jobserver.api.definitions_cache import with_code_check
from jobserver.definitions import compute_math, process_batch, process_data
from jobserver.validation import compile_schema

BIG = 2**63 - 1  # 19 digits


def test_total_digits_counts_digits_not_signs() -> None:
    assert compute_math.total_digits([0, 9, -10, BIG, -(2**63)]) == 1 + 1 + 2 + 19 + 19


def test_a_product_is_bounded_by_its_total_digits() -> None:
    check = compute_math.check_params
    under = [BIG] * (compute_math.MAX_PRODUCT_DIGITS // 19)
    assert check({"operation": "product", "numbers": under}) == []
    [(path, message)] = check({"operation": "product", "numbers": [*under, 1234]})
    assert path == ("numbers",)
    assert message == "must have at most 100000 digits in total for a product (these have 100001)"
    assert check({"operation": "sum", "numbers": [BIG] * 100_000}) == []  # linear: no bound


def test_fibonacci_is_bounded_by_the_total_of_n() -> None:
    check = compute_math.check_params
    assert check({"operation": "fibonacci", "numbers": [1_000_000] * 20}) == []
    [(path, message)] = check({"operation": "fibonacci", "numbers": [1_000_000] * 20 + [1]})
    assert path == ("numbers",) and "at most 20000000" in message and "20000001" in message


def test_only_small_sums_and_products_stay_on_the_event_loop() -> None:
    light = compute_math._is_light
    assert light("sum", [BIG] * 1000) and not light("sum", [BIG] * 1001)
    assert light("product", [BIG] * 100) and not light("product", [BIG] * 106)  # 2,014 digits
    assert not light("fibonacci", [1]) and not light("prime", [2])


def test_process_data_is_bounded_by_its_chunk_count() -> None:
    check = process_data.check_params
    assert check({"operation": "aggregate"}) == []  # defaults: 1,000 rows in one chunk
    assert check({"size": 10_000_000, "chunkSize": 1000}) == []  # exactly 10,000 chunks
    [(path, message)] = check({"size": 10_000_000, "chunkSize": 999})
    assert path == ("chunkSize",)
    assert message == (
        "must be at least 1000 for size 10000000: at most 10000 chunks (this is 10011)"
    )
    assert check({"size": 0, "chunkSize": 1}) == []


def test_process_batch_is_bounded_by_batches_and_total_delay() -> None:
    check = process_batch.check_params
    assert check({"items": list(range(1000)), "batchSize": 10, "delayMs": 6000}) == []
    [(path, message)] = check({"items": list(range(1000)), "batchSize": 10, "delayMs": 6001})
    assert path == ("delayMs",) and message.startswith("must be at most 6000 for 100 batches")
    [(path, _)] = check({"items": list(range(10_001)), "batchSize": 1})
    assert path == ("batchSize",)
    assert check({"items": []}) == []


def test_the_code_check_runs_after_the_schema_and_answers_its_first_problem() -> None:
    seen: list[Any] = []

    def code(params: Any) -> list[tuple[tuple[str | int, ...], str]]:
        seen.append(params)
        return [(("n",), "too costly"), (("m",), "also")] if params["n"] > 5 else []

    check = with_code_check(compile_schema({"type": "object", "required": ["n"]}), code)
    assert check({}) == (("n",), "is required") and seen == []  # the schema speaks first
    assert check({"n": 1}) is None
    assert check({"n": 6}) == (("n",), "too costly")


def test_a_code_check_that_raises_refuses_instead_of_failing_the_request() -> None:
    def broken(params: Any) -> list[tuple[tuple[str | int, ...], str]]:
        raise KeyError("oops")

    check = with_code_check(compile_schema(None), broken, "x@1")
    assert check({}) == ((), "cannot be checked: the definition's params check failed")
    assert with_code_check(compile_schema(None), None)({}) is None
