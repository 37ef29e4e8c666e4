"""The read models' SQL for PostgreSQL, composed with :mod:`psycopg.sql`: one session per transaction.

A :class:`PostgresViewSession` renders the
:class:`~phaselog.projections.ports.ViewSession` operations as statements on
one cursor of the store's schema. Bulk writes of many rows go through ``COPY``
(an upsert through a temporary staging table emptied at commit). Leases run on
the database clock (``clock_timestamp()``), so every runner uses one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from eventsourcing.persistence import Tracking
from psycopg.sql import SQL, Composable, Composed, Identifier

from phaselog.projections import tables
from phaselog.projections.ports import DeadLetter, TableSpec

__all__ = ["COPY_FROM", "COPY_TYPES", "NOW", "SQL_TYPES", "TRACKING_TABLE", "PostgresViewSession"]

TRACKING_TABLE = "phaselog_projection_tracking"
NOW = SQL("extract(epoch from clock_timestamp())::float8")
COPY_TYPES = {"text": "text", "int": "bigint", "bool": "boolean", "json": "text"}
"""The PostgreSQL type of each column kind: its tables' columns, and what a COPY dumps values as
(the values come from ``encode_row``, already of that type)."""
SQL_TYPES = {kind: SQL(name.upper()) for kind, name in COPY_TYPES.items()}
COPY_FROM = 64
"""Rows per batch from which upserts and inserts go through COPY rather than one pipelined executemany."""
_STATE_COLUMNS = SQL(
    "s.name, s.owner, s.expires - {now} AS remaining, s.generation, s.halted, s.last_error, s.last_error_at"
).format(now=NOW)


def _names(columns: Sequence[str]) -> Composed:
    return SQL(", ").join(Identifier(n) for n in columns)


@lru_cache(maxsize=256)
def _insert_sql(schema: str, table: str, columns: tuple[str, ...]) -> Composed:
    marks = SQL(", ").join(SQL("%s") for _ in columns)
    return SQL("INSERT INTO {} ({}) VALUES ({})").format(Identifier(schema, table), _names(columns), marks)


@lru_cache(maxsize=256)
def _on_conflict_sql(key: str, columns: tuple[str, ...]) -> Composed:
    updates = SQL(", ").join(
        SQL("{} = excluded.{}").format(Identifier(n), Identifier(n)) for n in columns if n != key
    )
    return SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(Identifier(key), updates)


def _insert(schema: str, spec: TableSpec) -> Composed:
    return _insert_sql(schema, spec.name, tuple(spec.columns))


def _on_conflict(spec: TableSpec) -> Composed:
    return _on_conflict_sql(spec.key, tuple(spec.columns))


class PostgresViewSession:
    """One transaction's read-model operations on a psycopg cursor in ``schema``."""

    def __init__(self, cursor: Any, schema: str, tracking: Any) -> None:
        self.cursor = cursor
        self.schema = schema
        self._tracking = tracking
        self._track = Identifier(schema, TRACKING_TABLE)
        self._state = Identifier(schema, tables.STATE_TABLE)
        self._errors = Identifier(schema, tables.ERRORS_TABLE)
        self._meta = Identifier(schema, tables.VIEW_META_TABLE)

    def table(self, name: str) -> Identifier:
        """The schema-qualified name of ``name``."""
        return Identifier(self.schema, name)

    def _run(self, query: Composable, params: Sequence[Any] | None = None) -> None:
        self.cursor.execute(query, params)

    def _all(self, query: Composable, params: Sequence[Any] | None = None) -> list[Any]:
        self.cursor.execute(query, params)
        return list(self.cursor.fetchall())

    # -- positions ----------------------------------------------------------------------------
    def positions(self, names: Sequence[str]) -> dict[str, int]:
        """Tracked positions of ``names`` (0 when absent)."""
        if not names:
            return {}
        rows = self._all(
            SQL("SELECT application_name, notification_id FROM {} WHERE application_name = ANY(%s)").format(
                self._track
            ),
            [list(names)],
        )
        found = {str(row["application_name"]): int(row["notification_id"] or 0) for row in rows}
        return {name: found.get(name, 0) for name in names}

    def advance(self, name: str, position: int) -> None:
        """Record ``position`` for ``name`` (eventsourcing refuses to move backwards)."""
        self._tracking._insert_tracking(self.cursor, Tracking(name, position))  # noqa: SLF001 - the documented hook

    def set_position(self, name: str, position: int | None) -> None:
        """Overwrite (or with ``None`` remove) a tracked position."""
        self._run(SQL("DELETE FROM {} WHERE application_name = %s").format(self._track), [name])
        if position is not None:
            self._run(SQL("INSERT INTO {} VALUES (%s, %s)").format(self._track), [name, position])

    def position_and_state(self, table: str, name: str | None) -> tuple[int, dict[str, Any] | None]:
        """In one query: the tracked position of ``table`` and (unless ``name`` is None) its state row."""
        self._run(
            SQL(
                "SELECT t.notification_id AS position, {} FROM {} t "
                "LEFT JOIN {} s ON s.name = %s WHERE t.application_name = %s"
            ).format(_STATE_COLUMNS, self._track, self._state),
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
            SQL("INSERT INTO {} (name) VALUES (%s) ON CONFLICT DO NOTHING").format(self._state),
            [[n] for n in names],
        )

    def read_state(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """State rows of ``names``."""
        if not names:
            return {}
        rows = self._all(
            SQL("SELECT {} FROM {} s WHERE s.name = ANY(%s)").format(_STATE_COLUMNS, self._state),
            [list(names)],
        )
        return {str(row["name"]): tables.state_from_row(row) for row in rows}

    def set_state(self, name: str, **values: Any) -> None:
        """Update columns of one state row (``generation=True`` bumps the generation)."""
        sets: list[Composable] = []
        params: list[Any] = []
        for column, value in values.items():
            if column == "generation":
                sets.append(SQL("generation = generation + 1"))
                continue
            sets.append(SQL("{} = %s").format(Identifier(column)))
            params.append(tables.state_value(column, value))
        self._run(
            SQL("UPDATE {} SET {} WHERE name = %s").format(self._state, SQL(", ").join(sets)), [*params, name]
        )

    def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Take (or keep) the lease on ``name`` when it is free, expired or already ours."""
        self._run(
            SQL(
                "UPDATE {} SET owner = %s, expires = {now} + %s "
                "WHERE name = %s AND (owner IS NULL OR owner = %s OR expires < {now})"
            ).format(self._state, now=NOW),
            [owner, seconds, name, owner],
        )
        return int(self.cursor.rowcount) == 1

    def renew_leases(self, names: Sequence[str], owner: str, seconds: float) -> set[str]:
        """Extend the leases on ``names`` still held by ``owner``; return the names still held."""
        if not names:
            return set()
        self._run(
            SQL("UPDATE {} SET expires = {} + %s WHERE owner = %s AND name = ANY(%s)").format(
                self._state, NOW
            ),
            [seconds, owner, list(names)],
        )
        rows = self._all(
            SQL("SELECT name FROM {} WHERE owner = %s AND name = ANY(%s)").format(self._state),
            [owner, list(names)],
        )
        return {str(row["name"]) for row in rows}

    def release_leases(self, owner: str) -> None:
        """Give up every lease ``owner`` holds."""
        self._run(
            SQL("UPDATE {} SET owner = NULL, expires = NULL WHERE owner = %s").format(self._state), [owner]
        )

    # -- dead letters -----------------------------------------------------------------------------
    def record_dead_letters(self, table: str, letters: Sequence[DeadLetter]) -> None:
        """Write (or refresh) dead letters of ``table``."""
        self.cursor.executemany(
            SQL(
                "INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (tbl, position) "
                "DO UPDATE SET error = excluded.error, at = excluded.at"
            ).format(self._errors),
            tables.dead_letter_rows(table, letters),
        )

    def dead_letters(self, tables_: Sequence[str]) -> list[dict[str, Any]]:
        """Dead letters of ``tables_`` by table and position."""
        if not tables_:
            return []
        rows = self._all(
            SQL(
                "SELECT tbl, position, stream, topic, error, at FROM {} "
                "WHERE tbl = ANY(%s) ORDER BY tbl, position"
            ).format(self._errors),
            [list(tables_)],
        )
        return [tables.dead_letter_from_row(row) for row in rows]

    def dead_letter_counts(self) -> dict[str, int]:
        """Dead letters per table."""
        rows = self._all(SQL("SELECT tbl, COUNT(*) AS n FROM {} GROUP BY tbl").format(self._errors))
        return {str(r["tbl"]): int(r["n"]) for r in rows}

    def drop_dead_letter(self, table: str, position: int) -> None:
        """Forget one dead letter."""
        self._run(
            SQL("DELETE FROM {} WHERE tbl = %s AND position = %s").format(self._errors), [table, position]
        )

    def clear_dead_letters(self, table: str) -> None:
        """Forget every dead letter of ``table``."""
        self._run(SQL("DELETE FROM {} WHERE tbl = %s").format(self._errors), [table])

    def move_dead_letters(self, source: str, target: str) -> None:
        """Give ``source``'s dead letters to ``target``."""
        self._run(SQL("UPDATE {} SET tbl = %s WHERE tbl = %s").format(self._errors), [target, source])

    # -- shapes -------------------------------------------------------------------------------------
    def create_bookkeeping(self) -> None:
        """Create the bookkeeping tables when missing."""
        self._run(
            SQL("CREATE TABLE IF NOT EXISTS {} (name TEXT PRIMARY KEY, fingerprint TEXT)").format(self._meta)
        )
        self._run(
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (name TEXT PRIMARY KEY, owner TEXT, expires DOUBLE PRECISION, "
                "generation BIGINT NOT NULL DEFAULT 0, halted BIGINT, last_error TEXT, last_error_at TEXT)"
            ).format(self._state)
        )
        self._run(
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (tbl TEXT NOT NULL, position BIGINT NOT NULL, "
                "stream TEXT, topic TEXT, error TEXT, at TEXT, PRIMARY KEY (tbl, position))"
            ).format(self._errors)
        )

    def fingerprints(self) -> dict[str, str]:
        """Each read model's recorded shape fingerprint."""
        rows = self._all(SQL("SELECT name, fingerprint FROM {}").format(self._meta))
        return {str(r["name"]): str(r["fingerprint"]) for r in rows}

    def set_fingerprint(self, name: str, fingerprint: str) -> None:
        """Record ``fingerprint`` as the shape of read model ``name``."""
        self._run(SQL("DELETE FROM {} WHERE name = %s").format(self._meta), [name])
        self._run(SQL("INSERT INTO {} VALUES (%s, %s)").format(self._meta), [name, fingerprint])

    def table_exists(self, table: str) -> bool:
        """True when ``table`` exists in the schema."""
        self._run(SQL("SELECT to_regclass(%s) AS oid"), [self.table(table).as_string(self.cursor)])
        row = self.cursor.fetchone()
        return row is not None and row["oid"] is not None

    def create_table(self, spec: TableSpec, *, indexes: bool = True) -> None:
        """Create ``spec``'s table (and its indexes) when missing."""
        columns: list[Composable] = [
            SQL("{} {}{}").format(
                Identifier(name), SQL_TYPES[kind], SQL(" PRIMARY KEY" if name == spec.key else "")
            )
            for name, kind in spec.columns.items()
        ]
        columns.extend(SQL("CHECK ({})").format(SQL(check)) for check in spec.checks)
        self._run(
            SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(self.table(spec.name), SQL(", ").join(columns))
        )
        if indexes:
            self.create_indexes(spec)

    def create_indexes(self, spec: TableSpec) -> None:
        """Create ``spec``'s indexes when missing."""
        for index, column in spec.indexes:
            self._run(
                SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                    Identifier(index), self.table(spec.name), Identifier(column)
                )
            )

    def drop_table(self, table: str) -> None:
        """Drop ``table`` if it exists."""
        self._run(SQL("DROP TABLE IF EXISTS {}").format(self.table(table)))

    def rename_table(self, table: str, new_name: str) -> None:
        """Rename ``table`` to ``new_name`` (in the same schema)."""
        self._run(SQL("ALTER TABLE {} RENAME TO {}").format(self.table(table), Identifier(new_name)))

    # -- rows ---------------------------------------------------------------------------------------
    def is_empty(self, table: str) -> bool:
        """True when ``table`` has no row."""
        self._run(SQL("SELECT 1 AS one FROM {} LIMIT 1").format(self.table(table)))
        return self.cursor.fetchone() is None

    def fetch_rows(self, table: str, column: str, values: Sequence[Any]) -> list[Mapping[str, Any]]:
        """The rows of ``table`` whose ``column`` is one of ``values``."""
        return self._all(
            SQL("SELECT * FROM {} WHERE {} = ANY(%s)").format(self.table(table), Identifier(column)),
            [list(values)],
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
        query: Composable = SQL("SELECT * FROM {}").format(self.table(table))
        conditions = [SQL("{} = %s").format(Identifier(k)) for k in where]
        params = list(where.values())
        if order_by is not None and after is not None:
            conditions.append(SQL("{} > %s").format(Identifier(order_by)))
            params.append(after)
        if conditions:
            query += SQL(" WHERE {}").format(SQL(" AND ").join(conditions))
        if order_by is not None:
            query += SQL(" ORDER BY {}").format(Identifier(order_by))
        if limit is not None:
            query += SQL(" LIMIT %s")
            params.append(limit)
        return self._all(query, params)

    def count_by(self, table: str, column: str) -> list[tuple[Any, int]]:
        """``(value, rows)`` per value of ``column``."""
        col = Identifier(column)
        rows = self._all(
            SQL("SELECT {} AS value, COUNT(*) AS n FROM {} GROUP BY {} ORDER BY {}").format(
                col, self.table(table), col, col
            )
        )
        return [(row["value"], int(row["n"])) for row in rows]

    def insert_rows(self, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` known to be new (by COPY from :data:`COPY_FROM` rows)."""
        if len(rows) < COPY_FROM:
            self.cursor.executemany(_insert(self.schema, spec), rows)
            return
        self._copy(self.table(spec.name), spec, rows)

    def upsert_rows(self, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        """Insert or replace ``rows`` by key (many rows: COPY into a staging table, then one upsert)."""
        if len(rows) < COPY_FROM:
            self.cursor.executemany(_insert(self.schema, spec) + _on_conflict(spec), rows)
            return
        names = _names(list(spec.columns))
        stage = Identifier(f"phaselog_stage_{spec.model}")
        self._run(
            SQL(
                "CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA"
            ).format(stage, names, self.table(spec.name))
        )
        self._run(SQL("TRUNCATE {}").format(stage))
        self._copy(stage, spec, rows)
        self._run(
            SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(self.table(spec.name), names, names, stage)
            + _on_conflict(spec)
        )

    def _copy(self, table: Identifier, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        with self.cursor.copy(
            SQL("COPY {} ({}) FROM STDIN").format(table, _names(list(spec.columns)))
        ) as copy:
            # Fixed dumpers: psycopg then looks up no dumper per value (half the client CPU per row).
            copy.set_types([COPY_TYPES[kind] for kind in spec.columns.values()])
            for row in rows:
                copy.write_row(row)

    def delete_rows(self, table: str, column: str, values: Sequence[Any]) -> None:
        """Delete the rows whose ``column`` equals one of ``values``."""
        self.cursor.executemany(
            SQL("DELETE FROM {} WHERE {} = %s").format(self.table(table), Identifier(column)),
            [[v] for v in values],
        )

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """What the block wrote is rolled back when it raises."""
        self._run(SQL("SAVEPOINT phaselog_event"))
        try:
            yield
        except BaseException:
            self._run(SQL("ROLLBACK TO SAVEPOINT phaselog_event"))
            raise
        self._run(SQL("RELEASE SAVEPOINT phaselog_event"))
