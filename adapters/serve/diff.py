"""The difference between two states of one aggregate, path by path (sans-I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Change", "changes"]

_ABSENT = object()


@dataclass(frozen=True)
class Change:
    """One path whose value differs: ``added``, ``removed`` or ``changed``."""

    path: str
    kind: str
    before: Any
    after: Any


def _flat(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and (value or not path):
        for key, inner in value.items():
            _flat(inner, f"{path}.{key}" if path else str(key), out)
    else:
        out[path] = value


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[Change]:
    """What changed from ``before`` to ``after`` (nested objects by dotted path; lists compared whole)."""
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    _flat(before or {}, "", old)
    _flat(after, "", new)
    found = []
    for path in sorted(old.keys() | new.keys()):
        was, now = old.get(path, _ABSENT), new.get(path, _ABSENT)
        if was is _ABSENT:
            found.append(Change(path, "added", None, now))
        elif now is _ABSENT:
            found.append(Change(path, "removed", was, None))
        elif was != now:
            found.append(Change(path, "changed", was, now))
    return found
