"""A reference system's status words against ours, shared by the compatibility modules."""

from __future__ import annotations

from collections.abc import Mapping


def ours_for(words: Mapping[str, str]) -> dict[str, list[str]]:
    """{our status: its word} -> {its word: our statuses}, in the order `words` gives them:
    what a status filter in the document's words asks `/v1` for."""
    out: dict[str, list[str]] = {}
    for ours, word in words.items():
        out.setdefault(word, []).append(ours)
    return out
