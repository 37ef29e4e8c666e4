"""The stream index's prefix query, written once for every SQL recorder.

A prefix search reads the half-open range of stream ids that start with the
prefix (so the heads' primary key, or the partial index of open streams, serves
it), then keyset pages by stream id. PostgreSQL and SQLite differ only in their
parameter mark (``%s`` or ``?``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["heads_query", "prefix_range"]


def prefix_range(prefix: str) -> tuple[str, str | None]:
    """The half-open range of text (in C collation) that starts with ``prefix``."""
    if not prefix:
        return "", None
    last = prefix[-1]
    if ord(last) >= 0x10FFFF:  # pragma: no cover - no character after it
        return prefix, None
    return prefix, prefix[:-1] + chr(ord(last) + 1)


def heads_query(
    prefix: str, *, open_only: bool, after: str | None, limit: int | None, mark: str
) -> tuple[str, list[Any]]:
    """The ``WHERE ... ORDER BY ... LIMIT`` of a stream-heads search, and its parameters.

    The range may hold ids that do not start with ``prefix`` only where no
    character follows its last one; callers keep the rows that do.
    """
    low, high = prefix_range(prefix)
    text = f"WHERE stream_id >= {mark}"
    params: list[Any] = [low]
    if high is not None:
        text += f" AND stream_id < {mark}"
        params.append(high)
    if open_only:
        text += " AND open"
    if after is not None:
        text += f" AND stream_id > {mark}"
        params.append(after)
    text += " ORDER BY stream_id"
    if limit is not None:
        text += f" LIMIT {mark}"
        params.append(limit)
    return text, params
