"""Key and name rules: which strings may name definitions, queues, schedules, mail templates.

Each rule is one `NameRule` (ASCII characters and a length), checked with `re.fullmatch`, so a
trailing newline or a non-ASCII letter (`café`) never passes; `NameRule.pattern` is the same
rule as a JSON Schema pattern (ECMA `^…$`, which has no "before a final newline" escape) for
request schemas. The registry, the code schedules and the API all use these rules:

| rule | characters | length |
| --- | --- | --- |
| `DEFINITION_KEY` | `A-Z a-z 0-9 . _ -` | 1-200 |
| `QUEUE` | `A-Z a-z 0-9 . _ : -` | 1-100 |
| `SCHEDULE_NAME` | `A-Z a-z 0-9 . _ : -` | 1-200 |
| `MAIL_TEMPLATE_NAME` | `A-Z a-z 0-9 . _ : -` | 1-200 |
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class NameRule:
    """A name: 1..`max_length` characters of the class `chars` (a regex character class)."""

    what: str
    chars: str
    max_length: int
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.compile(f"[{self.chars}]{{1,{self.max_length}}}", re.ASCII)
        object.__setattr__(self, "_regex", regex)

    @property
    def pattern(self) -> str:
        """The rule as a JSON Schema `pattern` (anchored both ends)."""
        return f"^[{self.chars}]{{1,{self.max_length}}}$"

    @property
    def description(self) -> str:
        return f"1-{self.max_length} of [{self.chars}]"

    def matches(self, value: object) -> bool:
        return isinstance(value, str) and self._regex.fullmatch(value) is not None

    def check(self, value: object) -> str:
        """`value` when it follows the rule, else ValueError naming the rule."""
        if not self.matches(value):
            raise ValueError(f"{self.what} {value!r}: expected {self.description}")
        assert isinstance(value, str)
        return value

    def schema(self, **extra: object) -> dict[str, object]:
        """A JSON Schema for a string following the rule."""
        return {"type": "string", "pattern": self.pattern, **extra}


DEFINITION_KEY = NameRule("definition key", "A-Za-z0-9._-", 200)
QUEUE = NameRule("queue", "A-Za-z0-9._:-", 100)
SCHEDULE_NAME = NameRule("schedule name", "A-Za-z0-9._:-", 200)
MAIL_TEMPLATE_NAME = NameRule("mail template name", "A-Za-z0-9._:-", 200)
