"""phaselog's PostgreSQL application recorder: one round trip per append, no table lock.

Plugged in through eventsourcing's ``APPLICATION_RECORDER_TOPIC``; the mapper,
repository, snapshots and tracking stay eventsourcing's. Compared with
eventsourcing's own recorder:

* appends of concurrent threads are gathered (:mod:`phaselog.adapters.gathering`)
  and written by ONE statement in autocommit — ``SELECT ... FROM <events>_append_batch(...)``
  — that inserts the events, their per-stream chain rows and stream heads in one
  implicit transaction (one WAL flush for all of them), each append keeping its
  own outcome; no pipeline (so no client/server deadlock on large payloads), no
  ``LOCK TABLE``, no pre-ping; followers are woken after the commit by the
  store's :class:`~phaselog.adapters.postgres.notifier.Notifier`;
* readers of the global order (:meth:`select_notifications`, hence the projection
  runner, ``audit`` and subscriptions) only return rows whose writing transaction
  is below the oldest *append* still in flight (no other transaction, in this
  database or another, holds them back), and positions are drawn in
  transaction-id order, so a follower never passes a position that commits later;
* a broken connection is retried, and a retry that finds its own events already
  stored (the first attempt committed before the connection broke) returns their
  positions instead of reporting a conflict: an append is never duplicated.

The statements and their decoding live in :mod:`phaselog.adapters.postgres.statements`
(sans-I/O, shared with the async store); this class is their sync shell.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Generator, Sequence
from functools import partial
from typing import Any, NamedTuple, TypeVar

import psycopg
from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL
from typing_extensions import override

from phaselog.adapters.core.gather import Command, Outcome
from phaselog.adapters.gathering import ThreadGathering
from phaselog.adapters.postgres.notifier import Notifier
from phaselog.adapters.postgres.schema import (
    ddl_digest,
    install_schema,
    installed,
    lock_key,
    record_digest,
)
from phaselog.adapters.postgres.statements import (
    UNLOCK_ALL,
    Pause,
    PostgresStatements,
    Query,
    ResultRows,
    prefix_range,
)
from phaselog.adapters.postgres.steps import connection_lost, persistence_error
from phaselog.adapters.recorder_protocol import ChainRow, PhaselogRecorder
from phaselog.runtime.horizon import InFlightAppend, PreparedTransaction
from phaselog.runtime.ports import LogRecord, StreamHead
from phaselog.runtime.sansio import drive

__all__ = ["AppendSession", "PhaselogPostgresApplicationRecorder", "prefix_range"]

log = logging.getLogger("phaselog.store")

T = TypeVar("T")

APPEND_SESSION_MIN_POOL = 3
"""The smallest pool that keeps one of its connections for appends (smaller ones keep all for reads)."""

APPEND_LANES = 2
"""Batches a store writes side by side (see :mod:`phaselog.adapters.core.gather`), each on its session."""


def append_lanes(pool_size: int) -> int:
    """The lanes of a store pooling ``pool_size`` connections: one where the pool cannot spare two."""
    return APPEND_LANES if pool_size >= APPEND_SESSION_MIN_POOL + APPEND_LANES else 1


class AppendSession(NamedTuple):
    """A lane's append session: a pooled connection kept from batch to batch, and its lean cursor.

    The cursor is kept too: a new one per call cost about 35 µs of client CPU (its
    adapters' caches start empty), about 12 % of a lone writer's command.
    """

    conn: psycopg.Connection[DictRow]
    cursor: Cursor[tuple[Any, ...]]

    @classmethod
    def on(cls, conn: psycopg.Connection[DictRow]) -> AppendSession:
        """The session of ``conn`` (a connection just taken from the pool)."""
        return cls(conn, conn.cursor(row_factory=tuple_row, binary=True))


class PhaselogPostgresApplicationRecorder(PostgresApplicationRecorder):
    """The PostgreSQL application recorder behind every phaselog store."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        schema = self.datastore.schema
        install_schema(self)  # phaselog's tables and functions; new stores partitioned by position
        self._ddl_lock = lock_key(schema, self.events_table_name, "ddl")
        self.statements = PostgresStatements(schema, self.events_table_name)
        self.names = self.statements.names
        self.gathering = ThreadGathering(self._write_batch, lanes=append_lanes(self.datastore.pool.max_size))
        self.notifier = Notifier(self._notifier_connection, self.channel_name)
        self._appenders: list[AppendSession] = []  # idle append sessions, see _append_step

    # -- the sync shell ----------------------------------------------------------------------------
    def run(self, protocol: Generator[Query | Pause, Any, T]) -> T:
        """Drive one protocol of :attr:`statements` on this recorder's pool."""
        return drive(protocol, self._do)

    def _do(self, step: Query | Pause) -> ResultRows | list[tuple[Any, ...]] | None:
        if isinstance(step, Pause):
            time.sleep(step.seconds)
            return None
        with self.datastore.get_connection() as conn:
            return self._execute(conn, step)

    def _execute(
        self, conn: psycopg.Connection[DictRow], step: Query, lean: Cursor[tuple[Any, ...]] | None = None
    ) -> ResultRows | list[tuple[Any, ...]]:
        """Run ``step`` on ``conn`` (tuple rows through ``lean``, an append session's cursor, if given)."""
        try:
            if step.tuples:  # the lean log reader and the batch append
                if lean is not None:
                    lean.execute(step.sql, step.params, prepare=step.prepare)
                    return list(lean.fetchall())
                with conn.cursor(row_factory=tuple_row, binary=True) as plain:
                    plain.execute(step.sql, step.params, prepare=step.prepare)
                    return list(plain.fetchall())
            with conn.cursor() as curs:
                curs.execute(step.sql, step.params, prepare=step.prepare)
                return list(curs.fetchall()) if curs.description else []
        except BaseException:
            if step.unlock_on_error:
                self._release_position_lock(conn)
            raise

    def _append_step(
        self, held: list[AppendSession], step: Query | Pause
    ) -> ResultRows | list[tuple[Any, ...]] | None:
        """A step of a batch append, on the append session ``held`` rather than the next pooled one.

        Each lane of the gathering writes on an append session of its own, kept
        from batch to batch: its backend's caches stay warm, where rotating through
        the pool cost 60-140 µs of server time per append. After an error the
        session goes back to the pool (which replaces it if it broke), the pool
        tests its idle sessions when the error was the connection's, and the next
        step takes one afresh.
        """
        if isinstance(step, Pause):
            time.sleep(step.seconds)
            return None
        pool = self.datastore.pool
        try:
            if not held:
                held.append(self._idle_appender() or AppendSession.on(pool.getconn()))
            session = held[0]
            return self._execute(session.conn, step, session.cursor)
        except BaseException as exc:
            if held:
                pool.putconn(held.pop().conn)
            if connection_lost(exc):  # a restart drops every session: test the idle ones before the retry
                with contextlib.suppress(psycopg.Error):
                    pool.check()
            if isinstance(exc, psycopg.Error):
                raise persistence_error(exc) from exc
            raise

    def _idle_appender(self) -> AppendSession | None:
        """An append session another lane gave back, if any (one ``pop``: two lanes may ask at once)."""
        try:
            return self._appenders.pop()
        except IndexError:
            return None

    def _release_appenders(self) -> None:
        while self._appenders:
            self.datastore.pool.putconn(self._appenders.pop().conn)

    def _release_position_lock(self, conn: psycopg.Connection[DictRow]) -> None:
        """Make sure a failed append never leaves the positions lock held by a pooled session."""
        if conn.broken or conn.closed:
            return
        try:
            conn.execute(UNLOCK_ALL)
        except psycopg.Error:  # pragma: no cover - the connection is unusable; the pool drops it
            log.debug("could not reset advisory locks on a failing connection", exc_info=True)

    # -- creating --------------------------------------------------------------------------------
    @override
    def _create_table(self, curs: Cursor[DictRow]) -> None:
        # Serialise the DDL of processes opening the same new schema at once (CREATE OR REPLACE
        # FUNCTION races otherwise fail with "tuple concurrently updated").
        curs.execute(SQL("SELECT pg_advisory_xact_lock({})").format(self._ddl_lock))
        schema = self.datastore.schema
        digest = ddl_digest(self.sql_create_statements, curs)
        if installed(curs, schema, digest):
            return  # exactly this DDL is there: run none of it, so no append waits on (or deadlocks with) it
        super()._create_table(curs)
        record_digest(curs, schema, digest)

    # -- appending -------------------------------------------------------------------------------
    @override
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Append ``stored_events`` atomically, in one commit with other threads' appends; their positions.

        ``es.IntegrityError`` (nothing of this append recorded) when one of
        its streams is not at the version its events follow.
        """
        if not stored_events:
            return []
        opens: dict[str, bool] = kwargs.get("stream_open") or {}
        return self.gathering.append(stored_events, opens)

    def _write_batch(self, batch: list[Command]) -> list[Outcome]:
        """Write one gathered batch in one call, then wake followers (after the commit, not in it)."""
        flow = self.statements.append_batch(batch)
        if self.datastore.pool.max_size < APPEND_SESSION_MIN_POOL:
            outcomes: list[Outcome] = drive(flow, self._do)
        else:
            held: list[AppendSession] = []
            try:
                outcomes = drive(flow, partial(self._append_step, held))
            finally:
                self._appenders.extend(held)  # the lane's session, for the next batch
        self.notifier.poke()
        return outcomes

    def _notifier_connection(self) -> psycopg.Connection[Any]:
        pooled = self.datastore.pool.kwargs
        kwargs = {"connect_timeout": 5, **(pooled if isinstance(pooled, dict) else {}), "autocommit": True}
        kwargs.pop("row_factory", None)
        return psycopg.connect(**kwargs)

    def close(self) -> None:
        """Stop waking followers and give the append session back (the pool is the datastore's to close)."""
        self.notifier.close()
        self._release_appenders()

    # -- the global order -------------------------------------------------------------------------
    @override
    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        """Notifications from ``start`` in position order, only below the commit horizon."""
        found: list[Notification] = self.run(
            self.statements.select_notifications(
                start, limit, stop, topics, inclusive_of_start=inclusive_of_start
            )
        )
        return found

    def select_records(
        self,
        start: int,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        final: bool = True,
    ) -> list[LogRecord]:
        """The lean read of the log: :class:`LogRecord` tuples from ``start`` (inclusive), in order."""
        found: list[LogRecord] = self.run(
            self.statements.select_records(start, limit, stop, topics, final=final)
        )
        return found

    def horizon_position(self) -> int:
        """The newest final position: every position up to it has committed or never will."""
        position: int = self.run(self.statements.horizon_position())
        return position

    def positions(self) -> tuple[int, int, int]:
        """``(horizon position, newest committed position, committed events beyond the horizon)``."""
        found: tuple[int, int, int] = self.run(self.statements.positions())
        return found

    def in_flight(self) -> list[InFlightAppend]:
        """The appends to this store still in flight (they hold the horizon)."""
        found: list[InFlightAppend] = self.run(self.statements.in_flight())
        return found

    def prepared(self) -> list[PreparedTransaction]:
        """The prepared transactions of this store's database."""
        found: list[PreparedTransaction] = self.run(self.statements.prepared())
        return found

    # -- the stream index -------------------------------------------------------------------------
    def select_stream_heads(
        self, prefix: str, *, open_only: bool = False, after: str | None = None, limit: int | None = None
    ) -> list[StreamHead]:
        """Heads of the streams starting with ``prefix`` (open ones only if asked), by stream id."""
        heads: list[StreamHead] = self.run(
            self.statements.select_stream_heads(prefix, open_only=open_only, after=after, limit=limit)
        )
        return heads

    # -- the hash chain ---------------------------------------------------------------------------
    def select_chain(self, start: int, limit: int, stop: int | None = None) -> list[ChainRow]:
        """At most ``limit`` chain rows from position ``start`` (inclusive) to ``stop``, by position."""
        rows: list[ChainRow] = self.run(self.statements.select_chain(start, limit, stop))
        return rows


# mypy --strict proves the PostgreSQL recorder answers phaselog's recorder protocol.
_CONFORMS: type[PhaselogRecorder] = PhaselogPostgresApplicationRecorder
