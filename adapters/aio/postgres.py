"""The async PostgreSQL store: psycopg's ``AsyncConnectionPool``, the recorder's own statements.

Saves, snapshots, loads and stream reads drive the store core's protocols
(:mod:`phaselog.adapters.core`, the sync store's own core: the same checks,
span and metrics, snapshot policy and fallback); their steps and the global-order
reads run the sans-I/O statements of :mod:`phaselog.adapters.postgres.statements`
(the sync recorder's too) on async connections: the same batch append function
(concurrent tasks' appends gathered into one commit, :mod:`phaselog.aio.gathering`),
the same chain and positions, the same commit horizon, the same notifier. Subscriptions ``LISTEN`` on
the events table's channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Generator
from functools import partial
from typing import Any, NamedTuple, TypeVar

import psycopg
from eventsourcing.persistence import Notification, Recording, StoredEvent
from psycopg.conninfo import make_conninfo
from psycopg.rows import DictRow, dict_row, tuple_row
from psycopg.sql import SQL, Identifier
from psycopg_pool import AsyncConnectionPool

from phaselog.adapters import core
from phaselog.adapters.core import (
    Append,
    CoreStep,
    PutSnapshot,
    ReadArchived,
    ReadEvents,
    ReadHeads,
    ReadSnapshot,
)
from phaselog.adapters.core.gather import Command, Outcome
from phaselog.adapters.core.opening import async_pool_bounds
from phaselog.adapters.errors import translate_errors
from phaselog.adapters.postgres.notifier import Notifier
from phaselog.adapters.postgres.recorder import (
    APPEND_SESSION_MIN_POOL,
    PhaselogPostgresApplicationRecorder,
    append_lanes,
)
from phaselog.adapters.postgres.statements import (
    UNLOCK_ALL,
    Pause,
    PostgresStatements,
    Query,
    ResultRows,
    persistence_error,
)
from phaselog.adapters.postgres.steps import connection_lost
from phaselog.aio.gathering import AsyncGathering
from phaselog.aio.store import AsyncStore, FollowContext
from phaselog.domain.errors import StoreClosed, StoreUnavailable
from phaselog.domain.events import Aggregate, DomainEvent
from phaselog.runtime.horizon import Horizon
from phaselog.runtime.ports import Saved, StreamHead
from phaselog.runtime.sansio import Steps, drive_async

__all__ = ["PostgresAsyncStore"]

log = logging.getLogger("phaselog.aio")

T = TypeVar("T")
AggT = TypeVar("AggT", bound=Aggregate)
Connection = psycopg.AsyncConnection[DictRow]


class _AppendSession(NamedTuple):
    """A lane's append session and its lean cursor, kept from batch to batch (as the sync recorder's)."""

    conn: Connection
    cursor: psycopg.AsyncCursor[tuple[Any, ...]]

    @classmethod
    def on(cls, conn: Connection) -> _AppendSession:
        """The session of ``conn`` (a connection just taken from the pool)."""
        return cls(conn, conn.cursor(row_factory=tuple_row, binary=True))


# Without a notification a follower still reads again this often: writers in other
# transactions may hold the commit horizon back past the NOTIFY of a later append.
LISTEN_POLL_INTERVAL = 0.5


class PostgresAsyncStore(AsyncStore):
    """:class:`AsyncStore` on PostgreSQL, doing its I/O on async connections (no thread per call)."""

    def __init__(self, url: str | None = None, *, pool_size: int | None = None, **options: Any) -> None:
        """``pool_size``: the most async connections (default: the URL's ``pool_max``)."""
        super().__init__(url, **options)
        self._pool_min, self.pool_size = async_pool_bounds(self.location, pool_size)
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._notifier: Notifier | None = None
        self._gathering = AsyncGathering(self._write_batch, lanes=append_lanes(self.pool_size))
        self._appenders: list[_AppendSession] = []  # idle append sessions (see _append_step)

    async def _opened(self) -> None:
        recorder = self.sync.app.recorder
        snapshots = self.sync.app.snapshots
        self.statements = PostgresStatements(
            self.location.schema,
            getattr(recorder, "events_table_name", ""),
            getattr(getattr(snapshots, "recorder", None), "events_table_name", ""),
        )
        self.channel: str = getattr(recorder, "channel_name", "")
        self._notifier = (
            recorder.notifier if isinstance(recorder, PhaselogPostgresApplicationRecorder) else None
        )

        self.mapper = self.sync.app.mapper
        self.conninfo = make_conninfo(
            "", **self.location.conninfo, connect_timeout=str(self.location.connect_timeout)
        )
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            self.conninfo,
            connection_class=psycopg.AsyncConnection[DictRow],
            kwargs={"autocommit": True, "row_factory": dict_row},
            min_size=self._pool_min,
            max_size=self.pool_size,
            timeout=float(self.location.connect_timeout) * 2,
            open=False,
        )
        self._pool = pool
        with translate_errors(f"opening {self.url}"):
            await pool.open(wait=True, timeout=float(self.location.connect_timeout))

    async def _closing(self) -> None:
        await self._gathering.close()
        await self._release_appenders()
        if self._pool is not None:
            await self._pool.close()

    # -- the async shell --------------------------------------------------------------------------
    async def run(self, protocol: Generator[Query | Pause, Any, T]) -> T:
        """Drive one protocol of :attr:`statements` on the async pool."""
        return await drive_async(protocol, self._do)

    async def _do(self, step: Query | Pause) -> ResultRows | list[tuple[Any, ...]] | None:
        if isinstance(step, Pause):
            await asyncio.sleep(step.seconds)
            return None
        if self._closed:
            raise StoreClosed(f"{self!r} is closed")
        if self._pool is None:
            msg = f"{self!r} is not open"
            raise StoreUnavailable(msg)
        try:
            async with self._pool.connection() as conn:
                return await _execute(conn, step)
        except psycopg.Error as exc:
            raise persistence_error(exc) from exc

    async def _append_step(
        self, held: list[_AppendSession], step: Query | Pause
    ) -> ResultRows | list[tuple[Any, ...]] | None:
        """A step of a batch append on its lane's append session ``held`` (as the sync recorder's)."""
        if isinstance(step, Pause) or self._pool is None:
            return await self._do(step)
        pool = self._pool
        try:
            if not held:  # one event loop: no other lane runs between the check and the pop
                idle = self._appenders.pop() if self._appenders else None
                held.append(idle or _AppendSession.on(await pool.getconn()))
            session = held[0]
            return await _execute(session.conn, step, session.cursor)
        except BaseException as exc:
            if held:
                await pool.putconn(held.pop().conn)
            if connection_lost(exc):  # a restart drops every session: test the idle ones before the retry
                with contextlib.suppress(psycopg.Error):
                    await pool.check()
            if isinstance(exc, psycopg.Error):
                raise persistence_error(exc) from exc
            raise

    async def _release_appenders(self) -> None:
        while self._appenders and self._pool is not None:
            await self._pool.putconn(self._appenders.pop().conn)

    # -- writing and reading aggregates: the store core's protocols, answered on the pool -------------
    async def drive(self, protocol: Steps[CoreStep, T]) -> T:
        """Drive one store core protocol (the sync store's core) on the async pool."""
        return await drive_async(protocol, self._answer)

    async def _answer(self, step: CoreStep) -> object:  # noqa: PLR0911 - one answer per kind of core step
        match step:
            case Append():
                if not step.events:
                    return []
                return await self._gathering.append(step.events, step.opens)
            case ReadEvents():
                return await self.run(
                    self.statements.select_events(step.stream_id, gt=step.gt, lte=step.lte, limit=step.limit)
                )
            case ReadArchived():
                tier = self.sync.archives
                if tier is None:
                    return []
                return await asyncio.to_thread(tier.stream_events, step.stream_id, step.gt, step.lte)
            case ReadSnapshot():
                flow = self.statements.select_events(
                    step.stream_id, desc=True, limit=1, lte=step.lte, snapshots=True
                )
                found: list[StoredEvent] = await self.run(flow)
                return found[0] if found else None
            case PutSnapshot():
                return await self.run(self.statements.insert_snapshot(step.snapshot))
            case ReadHeads():
                return await self.run(
                    self.statements.select_stream_heads(
                        step.prefix, open_only=step.open_only, after=step.after, limit=step.limit
                    )
                )

    async def _write_batch(self, batch: list[Command]) -> list[Outcome]:
        """Write one gathered batch in one call, then wake followers (after the commit, not in it)."""
        flow = self.statements.append_batch(batch)
        if self.pool_size < APPEND_SESSION_MIN_POOL:
            outcomes: list[Outcome] = await drive_async(flow, self._do)
        else:
            held: list[_AppendSession] = []
            try:
                outcomes = await drive_async(flow, partial(self._append_step, held))
            finally:
                self._appenders.extend(held)  # the lane's session, for the next batch
        if self._notifier is not None:
            self._notifier.poke()
        return outcomes

    async def save(self, *aggregates: Aggregate) -> Saved[Recording[str]]:
        """Append the pending events of ``aggregates`` atomically through the append function.

        The sync store's save (the store core's): the same checks, span and
        metrics, snapshots and sealing; ``position`` is the newest position it
        committed (0 when nothing was pending), for ``projections.wait_for``.
        """
        return await self.drive(core.save(self.sync.core, aggregates))

    async def snapshot(self, aggregate: Aggregate) -> None:
        """Store a snapshot of ``aggregate`` as just saved; a failure is logged, never raised."""
        await self.drive(core.snapshot(self.sync.core, aggregate))

    async def load(
        self, aggregate_id: str, aggregate_type: type[AggT], *, version: int | None = None
    ) -> AggT:
        """Load an aggregate: its latest readable snapshot, then the later events (as the sync store)."""
        return await self.drive(core.load(self.sync.core, aggregate_id, aggregate_type, version))

    async def exists(self, aggregate_id: str) -> bool:
        """True when the stream has at least one event."""
        return await self.drive(core.exists(aggregate_id))

    async def stream(
        self, aggregate_id: str, *, gt: int | None = None, lte: int | None = None
    ) -> list[DomainEvent]:
        """All events of one stream, oldest first."""
        return await self.drive(core.stream(self.sync.core, aggregate_id, gt, lte))

    async def stream_heads(
        self, prefix: str = "", *, open_only: bool = False, after: str | None = None, limit: int | None = None
    ) -> list[StreamHead]:
        """The head of every stream starting with ``prefix``, by stream id (from the index), paged by id."""
        return await self.drive(core.stream_heads(prefix, open_only=open_only, after=after, limit=limit))

    # -- the global order -----------------------------------------------------------------------
    async def max_position(self) -> int:
        """Position of the newest event, 0 when empty."""
        with translate_errors("reading the event log"):
            position: int = await self.run(self.statements.max_position())
            return position

    async def notifications(
        self, start: int = 1, limit: int = 1000, *, stop: int | None = None
    ) -> list[Notification]:
        """Stored events in global order from ``start``, only those below the commit horizon."""
        with translate_errors("reading the event log"):
            found: list[Notification] = await self.run(
                self.statements.select_notifications(start, limit, stop)
            )
            return found

    async def horizon(self) -> Horizon:
        """The sync store's look at the horizon, over the async pool (the same statements and watch)."""
        with translate_errors("reading the commit horizon"):
            in_flight = await self.run(self.statements.in_flight())
            position, head, held_back = await self.run(self.statements.positions())
            prepared = await self.run(self.statements.prepared())
        return self.sync.stalls.observe(position, head, held_back, in_flight, prepared)

    def _follower(self, poll_interval: float | None) -> FollowContext:
        return _Listener(self, LISTEN_POLL_INTERVAL if poll_interval is None else poll_interval)

    def __repr__(self) -> str:
        return f"PostgresAsyncStore({self.url!r})"


async def _execute(
    conn: Connection, step: Query, lean: psycopg.AsyncCursor[tuple[Any, ...]] | None = None
) -> ResultRows | list[tuple[Any, ...]]:
    """Run one query on ``conn`` (tuple rows through ``lean``, an append session's cursor, if given).

    A failed append never leaves the positions lock held.
    """
    try:
        if step.tuples:  # the lean log reader and the batch append
            plain = lean if lean is not None else conn.cursor(row_factory=tuple_row, binary=True)
            await plain.execute(step.sql, step.params, prepare=step.prepare)
            return list(await plain.fetchall())
        cursor = await conn.execute(step.sql, step.params, prepare=step.prepare)
        return list(await cursor.fetchall()) if cursor.description else []
    except BaseException:
        if step.unlock_on_error:
            await _release_position_lock(conn)
        raise


async def _release_position_lock(conn: Connection) -> None:
    """Make sure a failed (or cancelled) append never leaves the positions lock held by a pooled session."""
    if conn.broken or conn.closed:
        return
    try:
        await conn.execute(UNLOCK_ALL)
    except psycopg.Error:  # the connection is unusable; the pool drops it
        log.debug("could not reset advisory locks on a failing connection", exc_info=True)


class _Listener:
    """A dedicated connection LISTENing on the events channel; reconnected when it breaks."""

    def __init__(self, store: PostgresAsyncStore, interval: float) -> None:
        self._store = store
        self._interval = interval
        self._conn: Connection | None = None

    async def __aenter__(self) -> Callable[[], Awaitable[None]]:
        await self._connect()
        return self.wait

    async def __aexit__(self, *exc: object) -> None:
        await self._drop()

    async def _connect(self) -> None:
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._store.conninfo, autocommit=True, row_factory=dict_row
            )
            await conn.execute(SQL("LISTEN {}").format(Identifier(self._store.channel)))
        except psycopg.Error as exc:
            log.info("subscription cannot LISTEN yet (%s); polling until it can", exc)
            return
        self._conn = conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def wait(self) -> None:
        """Return at the next notification, after the poll interval, or once reconnected."""
        if self._conn is None or self._conn.broken or self._conn.closed:
            await self._drop()
            await asyncio.sleep(self._interval)
            await self._connect()  # whatever was notified meanwhile, the caller reads again now
            return
        try:
            async for _ in self._conn.notifies(timeout=self._interval, stop_after=1):
                pass
        except psycopg.Error as exc:
            log.info("subscription lost its LISTEN connection: %s", exc)
            await self._drop()
