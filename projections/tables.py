"""The read side's bookkeeping tables: their names, and their rows as the read side sees them.

* ``phaselog_view_meta``: each read model's fingerprint (columns + fold version).
* ``phaselog_projection_state``: per read model (and ``__seal__``) the runner holding its
  lease and until when (database clock), a generation bumped by every write outside the
  runner's batches (rebuild swaps, retries), the position it halted at, its last error.
* ``phaselog_projection_errors``: dead-lettered events, keyed by table and position.

Positions stay in eventsourcing's tracking table. A :class:`~phaselog.projections.ports.ViewSession`
reads and writes these tables; the helpers here turn its rows into what the read side
uses, and the values it stores, the same way on every database. Text that may hold
NUL (errors quote event data) is stored with :func:`store_text`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from phaselog.projections.base import load_text, store_text
from phaselog.projections.ports import DeadLetter

__all__ = [
    "ERRORS_TABLE",
    "STATE_TABLE",
    "VIEW_META_TABLE",
    "DeadLetter",
    "dead_letter_from_row",
    "dead_letter_rows",
    "state_from_row",
    "state_value",
    "utc_now",
]

VIEW_META_TABLE = "phaselog_view_meta"
STATE_TABLE = "phaselog_projection_state"
ERRORS_TABLE = "phaselog_projection_errors"


def utc_now() -> str:
    """The current UTC time as ISO-8601 text."""
    return datetime.now(UTC).isoformat()


def state_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A state row (``owner``, ``remaining`` lease seconds, ``generation``, ``halted``, last error)."""
    error = row["last_error"]
    return {
        "owner": row["owner"],
        "remaining": None if row["remaining"] is None else float(row["remaining"]),
        "generation": int(row["generation"] or 0),
        "halted": None if row["halted"] is None else int(row["halted"]),
        "last_error": None if error is None else load_text(str(error)),
        "last_error_at": row["last_error_at"],
    }


def state_value(column: str, value: Any) -> Any:
    """``value`` as state column ``column`` stores it (the last error escaped)."""
    return store_text(value) if isinstance(value, str) and column == "last_error" else value


def dead_letter_rows(table: str, letters: Sequence[DeadLetter]) -> list[list[Any]]:
    """The stored rows (tbl, position, stream, topic, error, at) of ``table``'s ``letters``."""
    at = utc_now()
    return [
        [table, position, store_text(stream), store_text(topic), store_text(error), at]
        for position, stream, topic, error in letters
    ]


def dead_letter_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored dead letter as the read side reports it."""
    return {
        "tbl": str(row["tbl"]),
        "position": int(row["position"]),
        "stream": load_text(str(row["stream"])),
        "topic": load_text(str(row["topic"])),
        "error": load_text(str(row["error"])),
        "at": str(row["at"]),
    }
