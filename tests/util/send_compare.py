"""Compare the plain-data results of send scenarios run by both implementations.

Outcomes (``{"ok": value}`` or ``{"error", "errno", "message"}``, see
``util.send_scenarios.error_of``) are compared by exception type and errno; a message is
compared only for ``ValueError``, whose text spead2 writes itself (system error texts, pybind11
signatures and Python's own messages legitimately differ).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

COMPARED_MESSAGES = ("ValueError",)
"""Exception types whose messages must match the peer's word for word."""


def normal(value: Any) -> Any:
    """``value`` with every error outcome reduced to what must match (see module doc)."""
    if isinstance(value, Mapping):
        if "error" in value and "errno" in value:
            message = value["message"] if value["error"] in COMPARED_MESSAGES else None
            return ("error", value["error"], value["errno"], message)
        return {key: normal(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [normal(v) for v in value]
    return value


def describe(value: Any, limit: int = 300) -> str:
    """A short printable form of an outcome."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def mismatches(
    ours: Mapping[str, Any], theirs: Mapping[str, Any], keys: Iterable[str]
) -> list[str]:
    """For each of ``keys`` whose normalised values differ: ``key: ours ... peer ...``."""
    out = []
    for key in keys:
        a, b = ours.get(key, "<missing>"), theirs.get(key, "<missing>")
        if normal(a) != normal(b):
            out.append(f"{key}:\n    ours: {describe(a)}\n    peer: {describe(b)}")
    return out


def error_kind(outcome: Mapping[str, Any]) -> tuple[str, int | None] | None:
    """``(exception type, errno)`` of an error outcome, None for success."""
    if "error" not in outcome:
        return None
    return outcome["error"], outcome.get("errno")
