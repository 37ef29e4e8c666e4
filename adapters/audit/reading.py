"""Reading (and writing) phaselog's integrity tables inside one repeatable-read snapshot.

Used by :mod:`~phaselog.adapters.audit.integrity` (verify, seal) and
:mod:`~phaselog.adapters.audit.archive`: queries run in ONE transaction, rows come as
tuples and are streamed (a named cursor on PostgreSQL), so concurrent appends
never make the tables look inconsistent with each other.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from psycopg.rows import tuple_row

from phaselog.adapters.postgres.recorder import PhaselogPostgresApplicationRecorder
from phaselog.adapters.sqlite.recorder import PhaselogSQLiteApplicationRecorder

if TYPE_CHECKING:
    from phaselog.adapters.audit.ports import AuditedStore

_DurableRecorder = PhaselogPostgresApplicationRecorder | PhaselogSQLiteApplicationRecorder

__all__ = ["Reader", "snapshot_reader"]


class Reader:
    """Runs queries of :func:`verify` and :func:`seal` in one snapshot, rows as tuples, streamed."""

    def __init__(
        self,
        recorder: _DurableRecorder,
        query: Callable[[str, tuple[Any, ...]], Iterator[Any]],
        execute: Callable[[str, tuple[Any, ...]], object],
        execute_many: Callable[[str, list[tuple[Any, ...]]], object],
    ) -> None:
        self.postgres = isinstance(recorder, PhaselogPostgresApplicationRecorder)
        self.schema = (
            recorder.datastore.schema if isinstance(recorder, PhaselogPostgresApplicationRecorder) else ""
        )
        self.events = recorder.events_table_name
        self.position = "notification_id" if self.postgres else "rowid"
        self.param = "%s" if self.postgres else "?"
        self._query = query
        self._execute = execute
        self._execute_many = execute_many

    def table(self, name: str) -> str:
        """``name`` qualified with the store's schema."""
        return f'"{self.schema}"."{name}"' if self.postgres else name

    def __call__(self, sql: str, params: tuple[Any, ...] = ()) -> Iterator[Any]:
        """Run the query ``sql``; its rows as tuples, streamed."""
        return self._query(sql, params)

    def write(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """Run the statement ``sql`` now, in the same transaction (a writable snapshot only)."""
        self._execute(sql, params)

    def write_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Run the statement ``sql`` once per row, batched, in the same transaction."""
        if rows:
            self._execute_many(sql, rows)


@contextmanager
def snapshot_reader(store: AuditedStore, *, write: bool = False) -> Iterator[Reader]:
    """A :class:`Reader` over one repeatable-read snapshot of the store (read-only unless ``write``).

    Only durable stores (SQLite, PostgreSQL) have one; a memory store raises TypeError.
    """
    recorder = store.app.recorder
    if not isinstance(recorder, _DurableRecorder):
        msg = f"{store.url} keeps no hash chain to read"
        raise TypeError(msg)
    if isinstance(recorder, PhaselogPostgresApplicationRecorder):
        with recorder.datastore.get_connection() as conn, conn.transaction():
            mode = "READ WRITE" if write else "READ ONLY"
            conn.execute(f"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ {mode}")

            def read_pg(sql: str, params: tuple[Any, ...]) -> Iterator[Any]:
                with conn.cursor(name=f"audit_{uuid.uuid4().hex[:12]}", row_factory=tuple_row) as cur:
                    cur.itersize = 5000
                    cur.execute(sql, params)
                    yield from cur

            yield Reader(
                recorder, read_pg, conn.execute, lambda sql, rows: conn.cursor().executemany(sql, rows)
            )
        return
    with recorder.datastore.transaction(commit=write) as cursor:
        raw: sqlite3.Cursor = cursor.sqlite_cursor  # one read transaction: a consistent snapshot in WAL mode

        def read_sqlite(sql: str, params: tuple[Any, ...]) -> Iterator[Any]:
            raw.execute(sql, params)  # verify and seal run one query at a time on it
            yield from (tuple(row) for row in raw)

        yield Reader(recorder, read_sqlite, raw.execute, raw.executemany)
