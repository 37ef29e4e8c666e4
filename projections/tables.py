"""The read side's bookkeeping tables: shapes, leases and state, and the dead letters.

* ``phaselog_view_meta``: each read model's fingerprint (columns + fold version).
* ``phaselog_projection_state``: per read model (and ``__seal__``) the runner holding its
  lease and until when (database clock), a generation bumped by every write outside the
  runner's batches (rebuild swaps, retries), the position it halted at, its last error.
* ``phaselog_projection_errors``: dead-lettered events, keyed by table and position.

Positions stay in eventsourcing's tracking table (see :mod:`phaselog.projections.backend`).
Text that may hold NUL (errors quote event data) is stored with :func:`store_text`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from phaselog.projections.backend import Backend
from phaselog.projections.base import load_text, store_text

__all__ = [
    "ERRORS_TABLE",
    "STATE_TABLE",
    "VIEW_META_TABLE",
    "DeadLetter",
    "acquire_lease",
    "create_tables",
    "dead_letters",
    "drop_dead_letter",
    "ensure_state",
    "position_and_state",
    "read_state",
    "record_dead_letters",
    "release_leases",
    "renew_leases",
    "set_state",
    "utc_now",
]

VIEW_META_TABLE = "phaselog_view_meta"
STATE_TABLE = "phaselog_projection_state"
ERRORS_TABLE = "phaselog_projection_errors"

DeadLetter = tuple[int, str, str, str]
"""``(position, stream, topic, error)`` of one event a read model could not fold or write."""


def utc_now() -> str:
    """The current UTC time as ISO-8601 text."""
    return datetime.now(UTC).isoformat()


def create_tables(b: Backend, cur: Any) -> None:
    """Create the bookkeeping tables when missing."""
    real = "DOUBLE PRECISION" if b.kind == "postgresql" else "REAL"
    cur.execute(
        f"CREATE TABLE IF NOT EXISTS {b.table(VIEW_META_TABLE)} (name TEXT PRIMARY KEY, fingerprint TEXT)"
    )
    cur.execute(
        f"CREATE TABLE IF NOT EXISTS {b.table(STATE_TABLE)} (name TEXT PRIMARY KEY, owner TEXT, "
        f"expires {real}, generation BIGINT NOT NULL DEFAULT 0, halted BIGINT, last_error TEXT, "
        "last_error_at TEXT)"
    )
    cur.execute(
        f"CREATE TABLE IF NOT EXISTS {b.table(ERRORS_TABLE)} (tbl TEXT NOT NULL, position BIGINT NOT NULL, "
        "stream TEXT, topic TEXT, error TEXT, at TEXT, PRIMARY KEY (tbl, position))"
    )


def ensure_state(b: Backend, cur: Any, names: Iterable[str]) -> None:
    """Insert the state rows of ``names`` when missing."""
    cur.executemany(
        b.q(f"INSERT INTO {b.table(STATE_TABLE)} (name) VALUES (?) ON CONFLICT DO NOTHING"),
        [[n] for n in names],
    )


_STATE_COLUMNS = (
    "s.name, s.owner, s.expires - {now} AS remaining, s.generation, s.halted, s.last_error, s.last_error_at"
)


def _state(row: Mapping[str, Any]) -> dict[str, Any]:
    error = row["last_error"]
    return {
        "owner": row["owner"],
        "remaining": None if row["remaining"] is None else float(row["remaining"]),
        "generation": int(row["generation"] or 0),
        "halted": None if row["halted"] is None else int(row["halted"]),
        "last_error": None if error is None else load_text(str(error)),
        "last_error_at": row["last_error_at"],
    }


def read_state(b: Backend, cur: Any, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """State rows of ``names`` (owner, seconds left on the lease, generation, halted, last error)."""
    if not names:
        return {}
    cond, params = b.in_list("s.name", names)
    columns = _STATE_COLUMNS.format(now=b.now_sql)
    cur.execute(b.q(f"SELECT {columns} FROM {b.table(STATE_TABLE)} s WHERE {cond}"), params)
    return {str(row["name"]): _state(row) for row in cur.fetchall()}


def position_and_state(
    b: Backend, cur: Any, table: str, name: str | None
) -> tuple[int, dict[str, Any] | None]:
    """In one query: the tracked position of ``table`` and (unless ``name`` is None) its state row."""
    columns = _STATE_COLUMNS.format(now=b.now_sql)
    cur.execute(
        b.q(
            f"SELECT t.notification_id AS position, {columns} FROM {b.table(b.tracking_table)} t "
            f"LEFT JOIN {b.table(STATE_TABLE)} s ON s.name = ? WHERE t.application_name = ?"
        ),
        [name, table],
    )
    row = cur.fetchone()
    if row is None:
        return 0, None
    return int(row["position"] or 0), None if row["name"] is None else _state(row)


def set_state(b: Backend, cur: Any, name: str, **values: Any) -> None:
    """Update columns of one state row (``generation=True`` bumps the generation)."""
    sets, params = [], []
    for column, value in values.items():
        if column == "generation":
            sets.append("generation = generation + 1")
            continue
        sets.append(f"{column} = ?")
        params.append(store_text(value) if isinstance(value, str) and column == "last_error" else value)
    cur.execute(b.q(f"UPDATE {b.table(STATE_TABLE)} SET {', '.join(sets)} WHERE name = ?"), [*params, name])


# -- leases ---------------------------------------------------------------------------------------
def acquire_lease(b: Backend, cur: Any, name: str, owner: str, seconds: float) -> bool:
    """Take (or keep) the lease on ``name`` when it is free, expired or already ours."""
    cur.execute(
        b.q(
            f"UPDATE {b.table(STATE_TABLE)} SET owner = ?, expires = {b.now_sql} + ? "
            f"WHERE name = ? AND (owner IS NULL OR owner = ? OR expires < {b.now_sql})"
        ),
        [owner, seconds, name, owner],
    )
    return int(cur.rowcount) == 1


def renew_leases(b: Backend, cur: Any, names: Sequence[str], owner: str, seconds: float) -> set[str]:
    """Extend the leases on ``names`` still held by ``owner``; return the names still held."""
    if not names:
        return set()
    cond, params = b.in_list("name", names)
    cur.execute(
        b.q(f"UPDATE {b.table(STATE_TABLE)} SET expires = {b.now_sql} + ? WHERE owner = ? AND {cond}"),
        [seconds, owner, *params],
    )
    cur.execute(b.q(f"SELECT name FROM {b.table(STATE_TABLE)} WHERE owner = ? AND {cond}"), [owner, *params])
    return {str(row["name"]) for row in cur.fetchall()}


def release_leases(b: Backend, cur: Any, owner: str) -> None:
    """Give up every lease ``owner`` holds (a clean stop: others take over at once)."""
    cur.execute(
        b.q(f"UPDATE {b.table(STATE_TABLE)} SET owner = NULL, expires = NULL WHERE owner = ?"), [owner]
    )


# -- dead letters ------------------------------------------------------------------------------------
def record_dead_letters(b: Backend, cur: Any, table: str, letters: Sequence[DeadLetter]) -> None:
    """Write (or refresh) dead letters of ``table``."""
    at = utc_now()
    cur.executemany(
        b.q(
            f"INSERT INTO {b.table(ERRORS_TABLE)} VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tbl, position) "
            "DO UPDATE SET error = excluded.error, at = excluded.at"
        ),
        [
            [table, position, store_text(stream), store_text(topic), store_text(error), at]
            for position, stream, topic, error in letters
        ],
    )


def dead_letters(b: Backend, cur: Any, tables: Sequence[str]) -> list[dict[str, Any]]:
    """Dead letters of ``tables`` by table and position (``tbl`` names the table)."""
    if not tables:
        return []
    cond, params = b.in_list("tbl", tables)
    cur.execute(
        b.q(
            f"SELECT tbl, position, stream, topic, error, at FROM {b.table(ERRORS_TABLE)} "
            f"WHERE {cond} ORDER BY tbl, position"
        ),
        params,
    )
    return [
        {
            "tbl": str(row["tbl"]),
            "position": int(row["position"]),
            "stream": load_text(str(row["stream"])),
            "topic": load_text(str(row["topic"])),
            "error": load_text(str(row["error"])),
            "at": str(row["at"]),
        }
        for row in cur.fetchall()
    ]


def drop_dead_letter(b: Backend, cur: Any, table: str, position: int) -> None:
    """Forget one dead letter (its event now folded)."""
    cur.execute(b.q(f"DELETE FROM {b.table(ERRORS_TABLE)} WHERE tbl = ? AND position = ?"), [table, position])
