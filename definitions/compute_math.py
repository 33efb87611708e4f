"""`compute.math@1`: real arithmetic over `numbers` — sum, product, fibonacci or prime.

- sum / product: of all the numbers (big integers are exact; a value past 2^53 is returned as a
  decimal string so JSON clients lose nothing)
- fibonacci: F(n) for each n (0 ≤ n ≤ 1,000,000); up to 1,000 digits the value is returned as a
  string, beyond that its digit count and first/last 20 digits
- prime: whether each n (2 ≤ n < 2^64) is prime (deterministic Miller-Rabin) and the next prime

Cost bounds, refused at submission with a 422 naming the field (and again when the job runs,
as a permanent failure, for a job written by some other path):
- every number fits in 64 bits (the schema's integer rule: at most 19 digits each), at most
  100,000 of them (10,000 for prime, 100 for fibonacci);
- product: at most `MAX_PRODUCT_DIGITS` (100,000) digits over all the numbers, so the product
  has at most that many digits (about 0.1 s of CPU; 1,000,000 digits would be minutes, as each
  multiplication costs the size of the product so far). A sum costs one pass over the numbers
  and needs no bound beyond their count;
- fibonacci: n <= 1,000,000 each and at most `MAX_FIB_TOTAL` (20,000,000, about 3 s of
  CPU) over all of them.
The digit total is a `check_params` hook (JSON Schema cannot add up a list).

Everything but a small sum or product (`_is_light`: at most 1,000 numbers and, for a product,
`LIGHT_PRODUCT_DIGITS` digits) runs in the worker's process pool (`ctx.run_cpu`), so no
computation blocks the event loop: heartbeats and other jobs keep going. A bad `operation` is
rejected at submit by the schema's enum.
"""

from __future__ import annotations

from typing import Any

from jobserver.registry import ParamsProblem, PermanentError, definition

MAX_FIB = 1_000_000
MAX_FIB_TOTAL = 20_000_000
MAX_PRODUCT_DIGITS = 100_000
LIGHT_PRODUCT_DIGITS = 2_000
LIGHT_COUNT = 1_000
LOG10_2 = 0.30102999566398120
SAFE_INT = 2**53

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["operation", "numbers"],
    "properties": {
        "operation": {"enum": ["sum", "product", "fibonacci", "prime"]},
        "numbers": {
            "type": "array",
            "items": {"type": "integer"},
            "minItems": 1,
            "maxItems": 100000,
        },
    },
    "additionalProperties": False,
    "allOf": [
        {
            "if": {"properties": {"operation": {"const": "fibonacci"}}},
            "then": {
                "properties": {
                    "numbers": {
                        "maxItems": 100,
                        "items": {"minimum": 0, "maximum": MAX_FIB},
                    }
                }
            },
        },
        {
            "if": {"properties": {"operation": {"const": "prime"}}},
            "then": {
                "properties": {
                    "numbers": {
                        "maxItems": 10000,
                        "items": {"minimum": 2, "maximum": 2**64 - 1},
                    }
                }
            },
        },
    ],
}


def _json_int(value: int) -> int | str:
    return value if -SAFE_INT < value < SAFE_INT else str(value)


def fibonacci(n: int) -> int:
    """F(n) by fast doubling: O(log n) big-integer multiplications."""
    a, b = 0, 1  # F(k), F(k+1)
    for bit in bin(n)[2:]:
        c = a * (2 * b - a)
        d = a * a + b * b
        a, b = (d, c + d) if bit == "1" else (c, d)
    return a


_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin for n < 3.3·10^24 (covers every 64-bit integer)."""
    if n < 2:
        return False
    for p in _MR_BASES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in _MR_BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def next_prime(n: int) -> int:
    candidate = n + 1
    while not is_prime(candidate):
        candidate += 1
    return candidate


def digit_count(value: int) -> int:
    """Decimal digits of |value| without str() (which refuses ints past 4,300 digits)."""
    value = abs(value)
    if value < 10:
        return 1
    k = int(value.bit_length() * LOG10_2)
    while 10**k <= value:
        k += 1
    while k > 1 and 10 ** (k - 1) > value:
        k -= 1
    return k


def _big(value: int, n: int | None = None) -> dict[str, Any]:
    """A JSON view of a possibly huge integer: exact up to 1,000 digits, else head and tail."""
    digits = digit_count(value)
    out: dict[str, Any] = {} if n is None else {"n": n}
    out["digits"] = digits
    if digits <= 1000:
        out["value"] = str(value)
    else:
        out["head"] = str(value // 10 ** (digits - 20))
        out["tail"] = f"{value % 10**20:020d}"
    return out


def compute(operation: str, numbers: list[int]) -> Any:
    """The pure computation (runs in a child process)."""
    if operation == "sum":
        return _json_int(sum(numbers))
    if operation == "product":
        product = 1
        for n in numbers:
            product *= n
        return _json_int(product) if -SAFE_INT < product < SAFE_INT else _big(product)
    if operation == "fibonacci":
        return [_big(fibonacci(n), n) for n in numbers]
    if operation == "prime":
        return [{"n": n, "prime": is_prime(n), "next": _json_int(next_prime(n))} for n in numbers]
    raise ValueError(f"unknown operation {operation!r}")


def total_digits(numbers: list[int]) -> int:
    """Decimal digits over all `numbers` (signs not counted); 64-bit numbers, so str is safe."""
    return sum(map(len, map(str, map(abs, numbers))))


def check_params(params: dict[str, Any]) -> list[ParamsProblem]:
    """The cost bounds the schema cannot express (run on params the schema accepted)."""
    operation, numbers = params["operation"], params["numbers"]
    if operation == "product":
        digits = total_digits(numbers)
        if digits > MAX_PRODUCT_DIGITS:
            message = (
                f"must have at most {MAX_PRODUCT_DIGITS} digits in total for a product"
                f" (these have {digits})"
            )
            return [(("numbers",), message)]
    elif operation == "fibonacci":
        total = sum(numbers)
        if total > MAX_FIB_TOTAL:
            message = (
                f"must add up to at most {MAX_FIB_TOTAL} for fibonacci (these add up to {total})"
            )
            return [(("numbers",), message)]
    return []


def _is_light(operation: str, numbers: list[int]) -> bool:
    """Cheap enough for the event loop: a pool round trip would cost more than the work."""
    if operation not in ("sum", "product") or len(numbers) > LIGHT_COUNT:
        return False
    return operation == "sum" or total_digits(numbers) <= LIGHT_PRODUCT_DIGITS


@definition(
    "compute.math",
    1,
    params_schema=SCHEMA,
    default_max_attempts=3,
    timeout_seconds=300,
    check_params=check_params,
)
async def compute_math(params: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Sum, product, fibonacci or primality over a list of integers."""
    operation = params["operation"]
    numbers = [int(n) for n in params["numbers"]]
    for path, message in check_params({"operation": operation, "numbers": numbers}):
        raise PermanentError(f"params.{'.'.join(map(str, path))} {message}", code="invalid_params")
    if _is_light(operation, numbers):
        result = compute(operation, numbers)
    else:
        result = await ctx.run_cpu(compute, operation, numbers)
    return {"operation": operation, "result": result}
