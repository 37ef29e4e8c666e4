"""The async PostgreSQL store: psycopg's ``AsyncConnectionPool``, the recorder's own statements.

Appends, loads, stream and global-order reads drive the sans-I/O protocols of
:mod:`phaselog.adapters.postgres.statements` (the sync recorder's too) on async
connections: the same append function, the same chain and positions, the same
commit horizon. Subscriptions ``LISTEN`` on the events table's channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar, cast

import psycopg
from eventsourcing.persistence import Notification, Recording, StoredEvent
from psycopg.conninfo import make_conninfo
from psycopg.rows import DictRow, dict_row, tuple_row
from psycopg.sql import SQL, Identifier
from psycopg_pool import AsyncConnectionPool

from phaselog.adapters.codec import PydanticMapper
from phaselog.adapters.errors import translate_errors
from phaselog.adapters.postgres.statements import (
    UNLOCK_ALL,
    Pause,
    PostgresStatements,
    Query,
    ResultRows,
    persistence_error,
)
from phaselog.adapters.store import snapshot_due
from phaselog.aio.store import AsyncStore, FollowContext
from phaselog.domain.errors import NotFound, PhaselogError, StoreUnavailable
from phaselog.domain.events import Aggregate, DomainEvent, Snapshot
from phaselog.runtime.horizon import Horizon
from phaselog.runtime.ports import Saved, StreamHead
from phaselog.runtime.sansio import drive_async

__all__ = ["PostgresAsyncStore"]

log = logging.getLogger("phaselog.aio")

T = TypeVar("T")
AggT = TypeVar("AggT", bound=Aggregate)
Connection = psycopg.AsyncConnection[DictRow]
# Without a notification a follower still reads again this often: writers in other
# transactions may hold the commit horizon back past the NOTIFY of a later append.
LISTEN_POLL_INTERVAL = 0.5


class PostgresAsyncStore(AsyncStore):
    """:class:`AsyncStore` on PostgreSQL, doing its I/O on async connections (no thread per call)."""

    def __init__(self, url: str | None = None, *, pool_size: int | None = None, **options: Any) -> None:
        """``pool_size``: the most async connections (default: the URL's ``pool_max``)."""
        super().__init__(url, **options)
        env = self.location.env
        self.pool_size = pool_size or int(env["POSTGRES_POOL_SIZE"]) + int(env["POSTGRES_MAX_OVERFLOW"])
        self._pool: AsyncConnectionPool[Connection] | None = None

    async def _opened(self) -> None:
        recorder = self.sync.app.recorder
        snapshots = self.sync.app.snapshots
        self.statements = PostgresStatements(
            self.location.schema,
            getattr(recorder, "events_table_name", ""),
            getattr(getattr(snapshots, "recorder", None), "events_table_name", ""),
        )
        self.channel: str = getattr(recorder, "channel_name", "")
        self.mapper = cast("PydanticMapper", self.sync.app.mapper)
        self.conninfo = make_conninfo(
            "", **self.location.conninfo, connect_timeout=str(self.location.connect_timeout)
        )
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            self.conninfo,
            connection_class=psycopg.AsyncConnection[DictRow],
            kwargs={"autocommit": True, "row_factory": dict_row},
            min_size=min(self.pool_size, int(self.location.env["POSTGRES_POOL_SIZE"])),
            max_size=self.pool_size,
            timeout=float(self.location.connect_timeout) * 2,
            open=False,
        )
        self._pool = pool
        with translate_errors(f"opening {self.url}"):
            await pool.open(wait=True, timeout=float(self.location.connect_timeout))

    async def _closing(self) -> None:
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
        if self._pool is None:
            msg = f"{self!r} is not open"
            raise StoreUnavailable(msg)
        try:
            async with self._pool.connection() as conn:
                try:
                    if step.tuples:  # the lean log reader
                        plain = await conn.cursor(row_factory=tuple_row, binary=True).execute(
                            step.sql, step.params, prepare=step.prepare
                        )
                        return list(await plain.fetchall())
                    cursor = await conn.execute(step.sql, step.params, prepare=step.prepare)
                    return list(await cursor.fetchall()) if cursor.description else []
                except BaseException:
                    if step.unlock_on_error:
                        await _release_position_lock(conn)
                    raise
        except psycopg.Error as exc:
            raise persistence_error(exc) from exc

    # -- writing and reading aggregates ---------------------------------------------------------
    async def save(self, *aggregates: Aggregate) -> Saved[Recording[str]]:
        """Append the pending events of ``aggregates`` atomically through the append function.

        As the sync store's, the result's ``position`` is the newest position this
        save committed (0 when nothing was pending), for ``projections.wait_for``.
        """
        before = [(agg, agg.version - len(agg.pending_events)) for agg in aggregates]
        opens = {agg.id: agg.stream_open for agg in aggregates}
        events = [event for agg in aggregates for event in agg.collect_events()]
        with translate_errors("saving events"):
            stored = [self.mapper.to_stored_event(event) for event in events]
            positions: list[int] = await self.run(self.statements.append(stored, opens))
        recordings = [
            Recording(domain_event=event, notification=_notification(position, record))
            for event, record, position in zip(events, stored, positions, strict=True)
        ]
        for agg, version in before:
            if snapshot_due(agg, version, self.snapshot_interval):
                await self.snapshot(agg)
        saved = Saved(recordings, max(positions, default=0))
        self.sync.committed(saved.position)  # sealed as the sync store's own saves are
        return saved

    async def snapshot(self, aggregate: Aggregate) -> None:
        """Store a snapshot of ``aggregate`` as just saved; a failure is logged, never raised."""
        if aggregate.pending_events:
            return
        try:
            with translate_errors(f"snapshotting {aggregate.id!r}"):
                stored = self.mapper.to_stored_event(Snapshot.take(aggregate))
                await self.run(self.statements.insert_snapshot(stored))
        except PhaselogError as exc:
            log.warning("snapshot of %s at version %d not stored: %s", aggregate.id, aggregate.version, exc)

    async def load(
        self, aggregate_id: str, aggregate_type: type[AggT], *, version: int | None = None
    ) -> AggT:
        """Load an aggregate: its latest readable snapshot, then the later events (as the sync store)."""
        restored: Any = None
        gt: int | None = None
        try:
            with translate_errors(f"loading {aggregate_id!r}"):
                found = await self._select(aggregate_id, desc=True, limit=1, lte=version, snapshots=True)
                if found:
                    snapshot = self.mapper.to_domain_event(found[0])
                    restored, gt = snapshot.mutate(None), snapshot.originator_version
        except PhaselogError as exc:
            log.warning("ignoring unreadable snapshot of %s, replaying all events: %s", aggregate_id, exc)
        with translate_errors(f"loading {aggregate_id!r}"):
            for stored in await self._select(aggregate_id, gt=gt, lte=version):
                restored = self.mapper.to_domain_event(stored).mutate(restored)
        if restored is None:
            msg = f"no stream {aggregate_id!r}" + ("" if version is None else f" at version {version}")
            raise NotFound(msg)
        if not isinstance(restored, aggregate_type):
            msg = (
                f"stream {aggregate_id!r} holds a {type(restored).__name__}, not a {aggregate_type.__name__}"
            )
            raise NotFound(msg)
        return restored

    async def _select(self, aggregate_id: str, **options: Any) -> list[StoredEvent]:
        found: list[StoredEvent] = await self.run(self.statements.select_events(aggregate_id, **options))
        return found

    async def exists(self, aggregate_id: str) -> bool:
        """True when the stream has at least one event."""
        with translate_errors(f"looking up {aggregate_id!r}"):
            return bool(await self._select(aggregate_id, limit=1))

    async def stream(
        self, aggregate_id: str, *, gt: int | None = None, lte: int | None = None
    ) -> list[DomainEvent]:
        """All events of one stream, oldest first."""
        with translate_errors(f"reading {aggregate_id!r}"):
            stored = await self._select(aggregate_id, gt=gt, lte=lte)
            return [cast("DomainEvent", self.mapper.to_domain_event(s)) for s in stored]

    async def stream_heads(self, prefix: str = "", *, open_only: bool = False) -> list[StreamHead]:
        """The head of every stream starting with ``prefix``, by stream id (from the index)."""
        with translate_errors(f"listing stream heads {prefix!r}"):
            heads: list[StreamHead] = await self.run(
                self.statements.select_stream_heads(prefix, open_only=open_only)
            )
            return heads

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


async def _release_position_lock(conn: Connection) -> None:
    """Make sure a failed (or cancelled) append never leaves the positions lock held by a pooled session."""
    if conn.broken or conn.closed:
        return
    try:
        await conn.execute(UNLOCK_ALL)
    except psycopg.Error:  # the connection is unusable; the pool drops it
        log.debug("could not reset advisory locks on a failing connection", exc_info=True)


def _notification(position: int, stored: StoredEvent) -> Notification:
    return Notification(
        id=position,
        originator_id=stored.originator_id,
        originator_version=stored.originator_version,
        topic=stored.topic,
        state=stored.state,
    )


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
