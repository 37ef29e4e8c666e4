"""Where read models live: the store's own SQLite or PostgreSQL database.

A :class:`Backend` hands out write transactions that hold the lock which
serialises projection writers (SQLite ``BEGIN IMMEDIATE``; PostgreSQL row locks
on the tracking rows), read transactions, and eventsourcing's tracking recorder
whose ``_insert_tracking(cursor, tracking)`` records a projection's position in
the same transaction as its rows. The memory store keeps its read models in a
private in-memory SQLite database.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteTrackingRecorder,
)
from typing_extensions import override

from phaselog.domain.errors import StoreUnavailable
from phaselog.domain.retry import Backoff
from phaselog.projections.errors import ProjectionBusy, db_errors
from phaselog.runtime.retry import retry

if TYPE_CHECKING:
    import threading

__all__ = ["Backend", "PostgresBackend", "SQLiteBackend", "open_backend"]

PG_TRACKING_TABLE = "phaselog_projection_tracking"
_COPY_FROM = 64
"""Rows per batch from which PostgreSQL upserts go through COPY rather than one pipelined executemany."""


class Backend:
    """Common SQL helpers; subclasses provide transactions, tracking and waking up."""

    kind = ""
    tracking_table = "tracking"
    now_sql = "(julianday('now') - 2440587.5) * 86400.0"
    """SQL for the database clock in seconds since the epoch (leases use one clock for all runners)."""

    def q(self, sql: str) -> str:
        """Adapt ``?`` placeholders to the driver's paramstyle."""
        return sql

    def table(self, name: str) -> str:
        """The (schema-qualified) name of one of our tables."""
        return name

    def write(
        self, names: Sequence[str], *, lock_timeout: float | None = None
    ) -> AbstractContextManager[Any]:
        """A write transaction holding the lock on the tracking rows ``names`` (created when missing).

        With ``lock_timeout`` (PostgreSQL) a lock held longer by another runner raises
        :class:`ProjectionBusy` instead of waiting.
        """
        raise NotImplementedError

    def read(self) -> AbstractContextManager[Any]:
        """A read-only transaction (one consistent snapshot)."""
        raise NotImplementedError

    @property
    def tracking(self) -> Any:
        """Eventsourcing's tracking recorder for this database."""
        raise NotImplementedError

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """A ``column IN (...)`` condition and its parameters."""
        return f"{column} IN ({','.join('?' * len(values))})", list(values)

    def upsert(self, cursor: Any, qualified: str, projection: Any, rows: Sequence[Sequence[Any]]) -> None:
        """Insert or replace ``rows`` (column values in declared order) of ``projection``'s table."""
        cursor.executemany(self.q(_insert_sql(qualified, projection) + _on_conflict(projection)), rows)

    def insert(self, cursor: Any, qualified: str, projection: Any, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` known to be new to ``projection``'s table."""
        cursor.executemany(self.q(_insert_sql(qualified, projection)), rows)

    def is_empty(self, cursor: Any, qualified: str) -> bool:
        """True when the table has no row."""
        cursor.execute(f"SELECT 1 AS one FROM {qualified} LIMIT 1")
        return cursor.fetchone() is None

    def positions(self, cursor: Any, names: Sequence[str]) -> dict[str, int]:
        """Current tracked positions of ``names`` (0 when absent), read inside ``cursor``'s transaction."""
        if not names:
            return {}
        cond, params = self.in_list("application_name", names)
        cursor.execute(
            self.q(
                f"SELECT application_name, notification_id FROM {self.table(self.tracking_table)} "
                f"WHERE {cond}"
            ),
            params,
        )
        found = {str(row["application_name"]): int(row["notification_id"] or 0) for row in cursor.fetchall()}
        return {name: found.get(name, 0) for name in names}

    def advance(self, cursor: Any, name: str, position: int) -> None:
        """Record ``position`` for ``name`` (must move forward; eventsourcing raises otherwise)."""
        self.tracking._insert_tracking(cursor, Tracking(name, position))  # noqa: SLF001 - the documented hook

    def set_position(self, cursor: Any, name: str, position: int | None) -> None:
        """Overwrite (or with ``None`` remove) a tracked position, for resets and swaps."""
        cursor.execute(
            self.q(f"DELETE FROM {self.table(self.tracking_table)} WHERE application_name = ?"), [name]
        )
        if position is not None:
            cursor.execute(
                self.q(f"INSERT INTO {self.table(self.tracking_table)} VALUES (?, ?)"), [name, position]
            )

    def table_exists(self, cursor: Any, name: str) -> bool:
        """True when our table ``name`` exists."""
        raise NotImplementedError

    def wait_for_events(self, timeout: float, stop: threading.Event) -> None:
        """Block until new events may exist, ``timeout`` passes, or ``stop`` is set."""
        stop.wait(timeout)

    def close(self) -> None:
        """Release what this backend opened itself."""


class SQLiteBackend(Backend):
    """Read models in the store's SQLite file (or a private in-memory database)."""

    kind = "sqlite"

    def __init__(self, datastore: SQLiteDatastore, *, owned: bool = False, create: bool = True) -> None:
        self.datastore = datastore
        self._owned = owned
        self._busy_ms = int((datastore.pool.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT) * 1000)
        with db_errors("creating projection tracking"):
            self._tracking = SQLiteTrackingRecorder(datastore)
            if create:  # a read-only store creates nothing
                _retry(self._tracking.create_table)

    @override
    @property
    def tracking(self) -> SQLiteTrackingRecorder:
        return self._tracking

    @override
    @contextmanager
    def write(self, names: Sequence[str], *, lock_timeout: float | None = None) -> Iterator[sqlite3.Cursor]:
        with self.datastore.get_connection(commit=True) as conn:
            raw: sqlite3.Connection = conn._sqlite_conn  # noqa: SLF001 - BEGIN IMMEDIATE needs the driver
            if lock_timeout is not None:  # one write lock per file: wait for it this long at most
                raw.execute(f"PRAGMA busy_timeout = {max(1, int(lock_timeout * 1000))}")
            try:
                raw.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise ProjectionBusy("another runner holds the SQLite write lock") from exc
                raise
            finally:
                if lock_timeout is not None:
                    raw.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            try:
                cursor = raw.cursor()
                if names:
                    cursor.executemany(
                        "INSERT INTO tracking VALUES (?, 0) ON CONFLICT DO NOTHING", [[n] for n in names]
                    )
                yield cursor
            except BaseException:
                raw.rollback()
                raise
            raw.commit()

    @override
    @contextmanager
    def read(self) -> Iterator[SQLiteCursor]:
        with self.datastore.transaction(commit=False) as cursor:
            yield cursor

    @override
    def table_exists(self, cursor: Any, name: str) -> bool:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [name])
        return cursor.fetchone() is not None

    @override
    def close(self) -> None:
        if self._owned:
            self.datastore.close()


class PostgresBackend(Backend):
    """Read models in the store's PostgreSQL schema; live following by LISTEN/NOTIFY."""

    kind = "postgresql"
    tracking_table = PG_TRACKING_TABLE

    def __init__(
        self, recorder: PostgresApplicationRecorder, conninfo: dict[str, str], *, create: bool = True
    ) -> None:
        self.datastore: PostgresDatastore = recorder.datastore
        self.schema = self.datastore.schema
        self.channel = recorder.channel_name
        self._conninfo = conninfo
        self._listener: psycopg.Connection[Any] | None = None
        with db_errors("creating projection tracking"):
            self._tracking = PostgresTrackingRecorder(self.datastore, tracking_table_name=PG_TRACKING_TABLE)
            if create:  # a read-only store creates nothing
                _retry(self._tracking.create_table)

    @override
    @property
    def tracking(self) -> PostgresTrackingRecorder:
        return self._tracking

    now_sql = "extract(epoch from clock_timestamp())::float8"

    @override
    def q(self, sql: str) -> str:
        return sql.replace("?", "%s")

    @override
    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?)", [list(values)]

    @override
    def table(self, name: str) -> str:
        return f'"{self.schema}"."{name}"'

    @override
    def upsert(self, cursor: Any, qualified: str, projection: Any, rows: Sequence[Sequence[Any]]) -> None:
        if len(rows) < _COPY_FROM:
            super().upsert(cursor, qualified, projection, rows)
            return
        # COPY the batch into a temporary table (emptied first, and at commit), then one upsert from it.
        names = ", ".join(projection.columns)
        stage = f"phaselog_stage_{projection.name}"
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
            f"SELECT {names} FROM {qualified} WITH NO DATA"
        )
        cursor.execute(f"TRUNCATE {stage}")
        _copy(cursor, stage, projection, rows)
        cursor.execute(
            f"INSERT INTO {qualified} ({names}) SELECT {names} FROM {stage}" + _on_conflict(projection)
        )

    @override
    def insert(self, cursor: Any, qualified: str, projection: Any, rows: Sequence[Sequence[Any]]) -> None:
        if len(rows) < _COPY_FROM:
            super().insert(cursor, qualified, projection, rows)
            return
        _copy(cursor, qualified, projection, rows)

    @override
    @contextmanager
    def write(self, names: Sequence[str], *, lock_timeout: float | None = None) -> Iterator[Any]:
        with self.datastore.transaction(commit=True) as cursor:
            # A read model is derived data: a server crash may lose its last batches (never half of one:
            # rows and position commit together) and the runner folds them again. So its commits need not
            # wait for the WAL flush. Both settings are local to this transaction, and sent in one statement.
            settings = ["set_config('synchronous_commit', 'off', true)"] if names else []
            if lock_timeout is not None:
                settings.append(f"set_config('lock_timeout', '{max(1, int(lock_timeout * 1000))}ms', true)")
            if settings:
                cursor.execute(f"SELECT {', '.join(settings)}")
            if names:
                # Lock the tracking rows in one global order (created first when missing): the writers
                # of one read model (runners in any process, rebuild swaps) serialise here, others don't.
                tracking = self.table(self.tracking_table)
                lock = (
                    f"SELECT application_name FROM {tracking} WHERE application_name = ANY(%s) "
                    "ORDER BY application_name FOR UPDATE"
                )
                try:
                    if len(cursor.execute(lock, [list(names)]).fetchall()) < len(set(names)):
                        cursor.execute(
                            f"INSERT INTO {tracking} SELECT unnest(%s::text[]), 0 ON CONFLICT DO NOTHING",
                            [list(names)],
                        )
                        cursor.execute(lock, [list(names)])
                except psycopg.errors.LockNotAvailable as exc:
                    raise ProjectionBusy(f"another runner is updating {', '.join(names)}") from exc
            yield cursor

    @override
    @contextmanager
    def read(self) -> Iterator[Any]:
        with self.datastore.transaction(commit=False) as cursor:
            yield cursor

    @override
    def table_exists(self, cursor: Any, name: str) -> bool:
        cursor.execute("SELECT to_regclass(%s) AS oid", [self.table(name)])
        row = cursor.fetchone()
        return row is not None and row["oid"] is not None

    @override
    def wait_for_events(self, timeout: float, stop: threading.Event) -> None:
        if self._listener is None or self._listener.closed:
            try:
                self._listener = psycopg.connect(**self._conninfo, autocommit=True, connect_timeout=5)  # type: ignore[arg-type]
                self._listener.execute(
                    psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(self.channel))
                )
            except psycopg.Error:
                self._listener = None
                stop.wait(timeout)
                return
            return  # LISTEN is now armed; the caller catches up once more before sleeping
        deadline = time.monotonic() + timeout
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                for _ in self._listener.notifies(timeout=min(0.25, timeout), stop_after=1):
                    return
        except psycopg.Error:
            self._drop_listener()

    def _drop_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(psycopg.Error):
                self._listener.close()
            self._listener = None

    @override
    def close(self) -> None:
        self._drop_listener()


def _insert_sql(qualified: str, projection: Any) -> str:
    """``INSERT`` of one row of ``projection``'s columns, in declared order, with ``?`` placeholders."""
    names = list(projection.columns)
    return f"INSERT INTO {qualified} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


def _on_conflict(projection: Any) -> str:
    """The clause that turns an insert of ``projection``'s rows into an upsert on its key."""
    updates = ", ".join(f"{n} = excluded.{n}" for n in projection.columns if n != projection.key)
    return f" ON CONFLICT ({projection.key}) DO UPDATE SET {updates}"


def _copy(cursor: Any, table: str, projection: Any, rows: Sequence[Sequence[Any]]) -> None:
    """``COPY`` ``rows`` (``projection``'s columns, in declared order) into ``table``."""
    with cursor.copy(f"COPY {table} ({', '.join(projection.columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _retry(create: Any) -> None:
    """Run table creation, retrying when another process created the same objects at once."""
    retry(create, policy=Backoff(first=0.1, attempts=5), retry_on=IntegrityError)


_MEMORY_VIEWS: weakref.WeakKeyDictionary[Any, SQLiteDatastore] = weakref.WeakKeyDictionary()


def open_backend(store: Any) -> Backend:
    """The backend for ``store``'s database (a private in-memory SQLite for ``memory://``)."""
    recorder = store.app.recorder
    create = not getattr(store, "read_only", False)
    if store.kind == "sqlite":
        return SQLiteBackend(recorder.datastore, create=create)
    if store.kind == "postgresql":
        assert isinstance(recorder, PostgresApplicationRecorder)  # noqa: S101 - narrowed by kind
        return PostgresBackend(recorder, store.location.conninfo, create=create)
    if store.kind == "memory":
        # One private database per memory store, shared by every runner of that store.
        datastore = _MEMORY_VIEWS.get(store)
        if datastore is None:
            name = f"file:phaselog-views-{uuid.uuid4().hex}?mode=memory&cache=shared"
            with db_errors("opening in-memory read models"):
                datastore = _MEMORY_VIEWS[store] = SQLiteDatastore(name, pool_size=4, max_overflow=4)
        return SQLiteBackend(datastore)
    msg = f"no read-model backend for a {store.kind} store"
    raise StoreUnavailable(msg)
