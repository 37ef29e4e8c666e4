"""The read models' SQL for SQLite: one session per transaction, every identifier quoted by :func:`quote`.

A :class:`SQLiteViewSession` renders the
:class:`~phaselog.projections.ports.ViewSession` operations (positions,
state rows and leases, dead letters, the rows of a
:class:`~phaselog.projections.ports.TableSpec`) as SQLite statements on one
cursor. Leases run on the database clock, so every runner of a file uses one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import Tracking

from phaselog.projections import tables
from phaselog.projections.ports import DeadLetter, TableSpec

__all__ = ["NOW", "SQL_TYPES", "SQLiteViewSession", "quote"]

NOW = "(julianday('now') - 2440587.5) * 86400.0"
"""The database clock in seconds since the epoch (leases use one clock for all runners)."""
SQL_TYPES = {"text": "TEXT", "int": "BIGINT", "bool": "INTEGER", "json": "TEXT"}  # bool: 0/1
TRACKING = '"tracking"'
STATE = '"phaselog_projection_state"'
ERRORS = '"phaselog_projection_errors"'
META = '"phaselog_view_meta"'
_STATE_COLUMNS = (
    f"s.name, s.owner, s.expires - {NOW} AS remaining, s.generation, s.halted, s.last_error, s.last_error_at"
)


def quote(name: str) -> str:
    """``name`` as an SQLite identifier (double-quoted, inner quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def _marks(count: int) -> str:
    return ", ".join("?" * count)


class SQLiteViewSession:
    """One transaction's read-model operations on an SQLite cursor."""

    def __init__(self, cursor: Any, tracking: Any) -> None:
        self.cursor = cursor
        self._tracking = tracking

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self.cursor.execute(sql, params)
        return list(self.cursor.fetchall())

    # -- positions ----------------------------------------------------------------------------
    def positions(self, names: Sequence[str]) -> dict[str, int]:
        """Tracked positions of ``names`` (0 when absent)."""
        if not names:
            return {}
        rows = self._all(
            f"SELECT application_name, notification_id FROM {TRACKING} "
            f"WHERE application_name IN ({_marks(len(names))})",
            list(names),
        )
        found = {str(row["application_name"]): int(row["notification_id"] or 0) for row in rows}
        return {name: found.get(name, 0) for name in names}

    def advance(self, name: str, position: int) -> None:
        """Record ``position`` for ``name`` (eventsourcing refuses to move backwards)."""
        self._tracking._insert_tracking(self.cursor, Tracking(name, position))  # noqa: SLF001 - the documented hook

    def set_position(self, name: str, position: int | None) -> None:
        """Overwrite (or with ``None`` remove) a tracked position."""
        self.cursor.execute(f"DELETE FROM {TRACKING} WHERE application_name = ?", [name])
        if position is not None:
            self.cursor.execute(f"INSERT INTO {TRACKING} VALUES (?, ?)", [name, position])

    def position_and_state(self, table: str, name: str | None) -> tuple[int, dict[str, Any] | None]:
        """In one query: the tracked position of ``table`` and (unless ``name`` is None) its state row."""
        self.cursor.execute(
            f"SELECT t.notification_id AS position, {_STATE_COLUMNS} FROM {TRACKING} t "
            f"LEFT JOIN {STATE} s ON s.name = ? WHERE t.application_name = ?",
            [name, table],
        )
        row = self.cursor.fetchone()
        if row is None:
            return 0, None
        return int(row["position"] or 0), None if row["name"] is None else tables.state_from_row(row)

    # -- state rows and leases ------------------------------------------------------------------
    def ensure_state(self, names: Sequence[str]) -> None:
        """Insert the state rows of ``names`` when missing."""
        self.cursor.executemany(
            f"INSERT INTO {STATE} (name) VALUES (?) ON CONFLICT DO NOTHING", [[n] for n in names]
        )

    def read_state(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """State rows of ``names``."""
        if not names:
            return {}
        rows = self._all(
            f"SELECT {_STATE_COLUMNS} FROM {STATE} s WHERE s.name IN ({_marks(len(names))})", list(names)
        )
        return {str(row["name"]): tables.state_from_row(row) for row in rows}

    def set_state(self, name: str, **values: Any) -> None:
        """Update columns of one state row (``generation=True`` bumps the generation)."""
        sets, params = [], []
        for column, value in values.items():
            if column == "generation":
                sets.append("generation = generation + 1")
                continue
            sets.append(f"{quote(column)} = ?")
            params.append(tables.state_value(column, value))
        self.cursor.execute(f"UPDATE {STATE} SET {', '.join(sets)} WHERE name = ?", [*params, name])

    def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Take (or keep) the lease on ``name`` when it is free, expired or already ours."""
        self.cursor.execute(
            f"UPDATE {STATE} SET owner = ?, expires = {NOW} + ? "
            f"WHERE name = ? AND (owner IS NULL OR owner = ? OR expires < {NOW})",
            [owner, seconds, name, owner],
        )
        return int(self.cursor.rowcount) == 1

    def renew_leases(self, names: Sequence[str], owner: str, seconds: float) -> set[str]:
        """Extend the leases on ``names`` still held by ``owner``; return the names still held."""
        if not names:
            return set()
        cond = f"name IN ({_marks(len(names))})"
        self.cursor.execute(
            f"UPDATE {STATE} SET expires = {NOW} + ? WHERE owner = ? AND {cond}", [seconds, owner, *names]
        )
        rows = self._all(f"SELECT name FROM {STATE} WHERE owner = ? AND {cond}", [owner, *names])
        return {str(row["name"]) for row in rows}

    def release_leases(self, owner: str) -> None:
        """Give up every lease ``owner`` holds."""
        self.cursor.execute(f"UPDATE {STATE} SET owner = NULL, expires = NULL WHERE owner = ?", [owner])

    # -- dead letters -----------------------------------------------------------------------------
    def record_dead_letters(self, table: str, letters: Sequence[DeadLetter]) -> None:
        """Write (or refresh) dead letters of ``table``."""
        self.cursor.executemany(
            f"INSERT INTO {ERRORS} VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tbl, position) "
            "DO UPDATE SET error = excluded.error, at = excluded.at",
            tables.dead_letter_rows(table, letters),
        )

    def dead_letters(self, tables_: Sequence[str]) -> list[dict[str, Any]]:
        """Dead letters of ``tables_`` by table and position."""
        if not tables_:
            return []
        rows = self._all(
            f"SELECT tbl, position, stream, topic, error, at FROM {ERRORS} "
            f"WHERE tbl IN ({_marks(len(tables_))}) ORDER BY tbl, position",
            list(tables_),
        )
        return [tables.dead_letter_from_row(row) for row in rows]

    def dead_letter_counts(self) -> dict[str, int]:
        """Dead letters per table."""
        return {
            str(r["tbl"]): int(r["n"])
            for r in self._all(f"SELECT tbl, COUNT(*) AS n FROM {ERRORS} GROUP BY tbl")
        }

    def drop_dead_letter(self, table: str, position: int) -> None:
        """Forget one dead letter."""
        self.cursor.execute(f"DELETE FROM {ERRORS} WHERE tbl = ? AND position = ?", [table, position])

    def clear_dead_letters(self, table: str) -> None:
        """Forget every dead letter of ``table``."""
        self.cursor.execute(f"DELETE FROM {ERRORS} WHERE tbl = ?", [table])

    def move_dead_letters(self, source: str, target: str) -> None:
        """Give ``source``'s dead letters to ``target``."""
        self.cursor.execute(f"UPDATE {ERRORS} SET tbl = ? WHERE tbl = ?", [target, source])

    # -- shapes -------------------------------------------------------------------------------------
    def create_bookkeeping(self) -> None:
        """Create the bookkeeping tables when missing."""
        execute = self.cursor.execute
        execute(f"CREATE TABLE IF NOT EXISTS {META} (name TEXT PRIMARY KEY, fingerprint TEXT)")
        execute(
            f"CREATE TABLE IF NOT EXISTS {STATE} (name TEXT PRIMARY KEY, owner TEXT, expires REAL, "
            "generation BIGINT NOT NULL DEFAULT 0, halted BIGINT, last_error TEXT, last_error_at TEXT)"
        )
        execute(
            f"CREATE TABLE IF NOT EXISTS {ERRORS} (tbl TEXT NOT NULL, position BIGINT NOT NULL, "
            "stream TEXT, topic TEXT, error TEXT, at TEXT, PRIMARY KEY (tbl, position))"
        )

    def fingerprints(self) -> dict[str, str]:
        """Each read model's recorded shape fingerprint."""
        return {
            str(r["name"]): str(r["fingerprint"]) for r in self._all(f"SELECT name, fingerprint FROM {META}")
        }

    def set_fingerprint(self, name: str, fingerprint: str) -> None:
        """Record ``fingerprint`` as the shape of read model ``name``."""
        self.cursor.execute(f"DELETE FROM {META} WHERE name = ?", [name])
        self.cursor.execute(f"INSERT INTO {META} VALUES (?, ?)", [name, fingerprint])

    def table_exists(self, table: str) -> bool:
        """True when ``table`` exists."""
        return bool(self._all("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [table]))

    def create_table(self, spec: TableSpec, *, indexes: bool = True) -> None:
        """Create ``spec``'s table (and its indexes) when missing."""
        columns = [
            f"{quote(name)} {SQL_TYPES[kind]}{' PRIMARY KEY' if name == spec.key else ''}"
            for name, kind in spec.columns.items()
        ]
        columns.extend(f"CHECK ({check})" for check in spec.checks)
        self.cursor.execute(f"CREATE TABLE IF NOT EXISTS {quote(spec.name)} ({', '.join(columns)})")
        if indexes:
            self.create_indexes(spec)

    def create_indexes(self, spec: TableSpec) -> None:
        """Create ``spec``'s indexes when missing."""
        for index, column in spec.indexes:
            self.cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {quote(index)} ON {quote(spec.name)} ({quote(column)})"
            )

    def drop_table(self, table: str) -> None:
        """Drop ``table`` if it exists."""
        self.cursor.execute(f"DROP TABLE IF EXISTS {quote(table)}")

    def rename_table(self, table: str, new_name: str) -> None:
        """Rename ``table`` to ``new_name``."""
        self.cursor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(new_name)}")

    # -- rows ---------------------------------------------------------------------------------------
    def is_empty(self, table: str) -> bool:
        """True when ``table`` has no row."""
        self.cursor.execute(f"SELECT 1 AS one FROM {quote(table)} LIMIT 1")
        return self.cursor.fetchone() is None

    def fetch_rows(self, table: str, column: str, values: Sequence[Any]) -> list[Mapping[str, Any]]:
        """The rows of ``table`` whose ``column`` is one of ``values``."""
        return self._all(
            f"SELECT * FROM {quote(table)} WHERE {quote(column)} IN ({_marks(len(values))})", list(values)
        )

    def select_rows(
        self,
        table: str,
        where: Mapping[str, Any],
        *,
        order_by: str | None = None,
        after: Any = None,
        limit: int | None = None,
    ) -> list[Mapping[str, Any]]:
        """The rows of ``table`` whose columns equal ``where``."""
        sql = f"SELECT * FROM {quote(table)}"
        conditions = [f"{quote(k)} = ?" for k in where]
        params = list(where.values())
        if order_by is not None and after is not None:
            conditions.append(f"{quote(order_by)} > ?")
            params.append(after)
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        if order_by is not None:
            sql += f" ORDER BY {quote(order_by)}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return self._all(sql, params)

    def count_by(self, table: str, column: str) -> list[tuple[Any, int]]:
        """``(value, rows)`` per value of ``column``."""
        col = quote(column)
        rows = self._all(
            f"SELECT {col} AS value, COUNT(*) AS n FROM {quote(table)} GROUP BY {col} ORDER BY {col}"
        )
        return [(row["value"], int(row["n"])) for row in rows]

    def insert_rows(self, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` known to be new."""
        self.cursor.executemany(_insert(spec), rows)

    def upsert_rows(self, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        """Insert or replace ``rows`` by key."""
        updates = ", ".join(f"{quote(n)} = excluded.{quote(n)}" for n in spec.columns if n != spec.key)
        self.cursor.executemany(
            _insert(spec) + f" ON CONFLICT ({quote(spec.key)}) DO UPDATE SET {updates}", rows
        )

    def delete_rows(self, table: str, column: str, values: Sequence[Any]) -> None:
        """Delete the rows whose ``column`` equals one of ``values``."""
        self.cursor.executemany(
            f"DELETE FROM {quote(table)} WHERE {quote(column)} = ?", [[v] for v in values]
        )

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """What the block wrote is rolled back when it raises."""
        self.cursor.execute("SAVEPOINT phaselog_event")
        try:
            yield
        except BaseException:
            self.cursor.execute("ROLLBACK TO SAVEPOINT phaselog_event")
            raise
        self.cursor.execute("RELEASE SAVEPOINT phaselog_event")


def _insert(spec: TableSpec) -> str:
    names = ", ".join(quote(n) for n in spec.columns)
    return f"INSERT INTO {quote(spec.name)} ({names}) VALUES ({_marks(len(spec.columns))})"
