""":class:`AsyncStore`: the store's API for code running on an event loop (open with ``open_async_store``).

SQLite and memory stores run a sync :class:`~phaselog.adapters.Store` on ONE
worker thread (their drivers block); PostgreSQL does its I/O on psycopg's
async connections (:mod:`phaselog.aio.postgres`). Every kind writes the same
rows as the sync store, so a store written by one API is read by the other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, Self, TypeVar

from eventsourcing.persistence import Notification, Recording

from phaselog.adapters.crypto.erasure import Erasure
from phaselog.adapters.store import DEFAULT_SNAPSHOT_INTERVAL, Store
from phaselog.adapters.urls import parse_url
from phaselog.domain.errors import StoreClosed, StoreUnavailable
from phaselog.domain.events import Aggregate, DomainEvent
from phaselog.runtime.horizon import Horizon
from phaselog.runtime.ports import Saved, StreamHead

if TYPE_CHECKING:
    from types import TracebackType

    from phaselog.aio.plugins import AsyncPluginService
    from phaselog.aio.projections import AsyncProjections

__all__ = ["AsyncStore"]

log = logging.getLogger("phaselog.aio")

T = TypeVar("T")
AggT = TypeVar("AggT", bound=Aggregate)
# How long a follower waits before reading again when nothing told it about new events.
POLL_INTERVAL = 0.05
# How long a follower waits before retrying a store that became unreachable (doubling up to the max).
RECONNECT_DELAY = (0.05, 2.0)
SUBSCRIBE_BATCH = 500
# Entered around a subscription; gives the coroutine that waits until new events may be there.
FollowContext = AbstractAsyncContextManager[Callable[[], Awaitable[Any]]]


class AsyncStore:
    """A phaselog store for asyncio code; open with ``async with open_async_store(url) as store:``.

    It mirrors :class:`~phaselog.adapters.Store` with coroutines (``save``,
    ``load``, ``exists``, ``stream``, ``stream_ids``, ``stream_heads``,
    ``max_position``, ``notifications``) and adds :meth:`subscribe`. ``sync`` is
    the sync store it keeps open on the same database (the one it runs on
    SQLite and memory; on PostgreSQL the one that created the tables and that
    the read models use).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL,
        stall_warning: float | None = None,
        stall_unhealthy: float | None = None,
        seal_interval: float | None = None,
    ) -> None:
        self.location = parse_url(url)
        self._url = url
        self.snapshot_interval = snapshot_interval
        self._stall_warning, self._stall_unhealthy = stall_warning, stall_unhealthy
        self._seal_interval = seal_interval
        self._sync: Store | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    # -- opening and closing --------------------------------------------------------------------
    async def open(self) -> Self:
        """Open the store (creating its tables on first use); ``async with`` calls it."""
        if self._sync is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="phaselog-aio")
            try:
                self._sync = await self._in_thread(
                    partial(
                        Store,
                        self._url,
                        snapshot_interval=self.snapshot_interval,
                        stall_warning=self._stall_warning,
                        stall_unhealthy=self._stall_unhealthy,
                        seal_interval=self._seal_interval,
                    )
                )
                await self._opened()
            except BaseException:
                await self.aclose()
                raise
        return self

    async def _opened(self) -> None:
        """Hook for subclasses: the sync store is open."""

    async def aclose(self) -> None:
        """Release the store's connections and its thread; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await self._closing()
        if self._executor is not None:
            if self._sync is not None:
                await asyncio.get_running_loop().run_in_executor(self._executor, self._sync.close)
            self._executor.shutdown(wait=True)

    async def _closing(self) -> None:
        """Hook for subclasses: release what they opened."""

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __await__(self) -> Generator[Any, None, Self]:
        return self.open().__await__()

    @property
    def sync(self) -> Store:
        """The sync store on the same database (open while this store is)."""
        if self._closed:
            raise StoreClosed(f"{self!r} is closed")
        if self._sync is None:
            msg = f"{self!r} is not open: use `async with open_async_store(url) as store:`"
            raise StoreUnavailable(msg)
        return self._sync

    @property
    def url(self) -> str:
        """The store's URL without its password."""
        return self.location.display

    @property
    def kind(self) -> str:
        """``"memory"``, ``"sqlite"`` or ``"postgresql"``."""
        return self.location.kind

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the store's worker thread."""
        if self._closed:
            raise StoreClosed(f"{self!r} is closed")
        if self._executor is None:
            msg = f"{self!r} is not open"
            raise StoreUnavailable(msg)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # -- writing and reading aggregates ---------------------------------------------------------
    async def save(self, *aggregates: Aggregate) -> Saved[Recording[str]]:
        """Append the pending events of ``aggregates`` atomically (see ``Store.save``; ``.position``)."""
        return await self._in_thread(partial(self.sync.save, *aggregates))

    async def load(
        self, aggregate_id: str, aggregate_type: type[AggT], *, version: int | None = None
    ) -> AggT:
        """Load an aggregate (from its latest snapshot plus later events)."""
        return await self._in_thread(partial(self.sync.load, aggregate_id, aggregate_type, version=version))

    async def exists(self, aggregate_id: str) -> bool:
        """True when the stream has at least one event."""
        return await self._in_thread(partial(self.sync.exists, aggregate_id))

    async def stream(
        self, aggregate_id: str, *, gt: int | None = None, lte: int | None = None
    ) -> list[DomainEvent]:
        """All events of one stream, oldest first."""
        return await self._in_thread(partial(self.sync.stream, aggregate_id, gt=gt, lte=lte))

    async def stream_heads(
        self, prefix: str = "", *, open_only: bool = False, after: str | None = None, limit: int | None = None
    ) -> list[StreamHead]:
        """The head of every stream starting with ``prefix``, by stream id, paged by id."""
        heads = partial(self.sync.stream_heads, prefix, open_only=open_only, after=after, limit=limit)
        return await self._in_thread(heads)

    async def stream_ids(self, prefix: str = "") -> list[str]:
        """Ids of all streams starting with ``prefix``, sorted (from the index)."""
        return [head.stream_id for head in await self.stream_heads(prefix)]

    async def erase(
        self, subject: str, *, reason: str, requested_by: str | None = None, projections: Any = None
    ) -> Erasure:
        """Erase ``subject`` (``Store.erase``: its key destroyed for good), in a worker thread."""
        erase = partial(
            self.sync.erase, subject, reason=reason, requested_by=requested_by, projections=projections
        )
        return await self._in_thread(erase)

    # -- the global order -----------------------------------------------------------------------
    async def max_position(self) -> int:
        """Position of the newest event, 0 when empty."""
        return await self._in_thread(self.sync.max_position)

    async def notifications(
        self, start: int = 1, limit: int = 1000, *, stop: int | None = None
    ) -> list[Notification]:
        """Stored events in global order from ``start`` (inclusive), only final ones on PostgreSQL."""
        return await self._in_thread(partial(self.sync.notifications, start, limit, stop=stop))

    async def horizon(self) -> Horizon:
        """Where readers of the global order stop, and the appends in flight holding them there.

        The same look as :meth:`Store.horizon` (one stall watch per store: a stall
        is logged once, whichever of the two shells saw it).
        """
        return await self._in_thread(self.sync.horizon)

    def decode(self, notification: Notification) -> DomainEvent:
        """Turn a stored notification back into its domain event."""
        return self.sync.decode(notification)

    async def subscribe(
        self, start: int = 1, *, poll_interval: float | None = None
    ) -> AsyncIterator[tuple[int, DomainEvent]]:
        """Every event from position ``start`` in global order, then each new one as it commits.

        Each position is yielded once, in order, none skipped (on PostgreSQL
        only positions below the commit horizon are read). A store that
        becomes unreachable is retried until it is back; the iteration goes on
        from the next position. Stop by leaving the ``async for``.
        """
        position = max(1, start)
        delay = RECONNECT_DELAY[0]
        async with self._follower(poll_interval) as wait_for_news:
            while True:
                try:
                    page = await self.notifications(position, SUBSCRIBE_BATCH)
                except StoreUnavailable as exc:
                    log.warning("subscription at position %d: %s; retrying in %.2fs", position, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RECONNECT_DELAY[1])
                    continue
                delay = RECONNECT_DELAY[0]
                for notification in page:
                    yield notification.id, self.decode(notification)
                    position = notification.id + 1
                if len(page) < SUBSCRIBE_BATCH:
                    await wait_for_news()

    def _follower(self, poll_interval: float | None) -> FollowContext:
        """How a subscription learns of new events: polling here, LISTEN on PostgreSQL."""
        return _Polling(POLL_INTERVAL if poll_interval is None else poll_interval)

    # -- services ---------------------------------------------------------------------------------
    @cached_property
    def plugins(self) -> AsyncPluginService:
        """Plugin lifecycles and versioned plugin state, as coroutines."""
        from phaselog.aio.plugins import AsyncPluginService  # noqa: PLC0415 - the plugins import this module

        return AsyncPluginService(self)

    @cached_property
    def projections(self) -> AsyncProjections:
        """The read models of this store's database, as coroutines (run on threads)."""
        from phaselog.aio.projections import AsyncProjections  # noqa: PLC0415 - loads the read models

        return AsyncProjections(self.sync)

    def __repr__(self) -> str:
        return f"AsyncStore({self.url!r})"


class _Polling:
    """A follower that simply waits a fixed interval between reads."""

    def __init__(self, interval: float) -> None:
        self.interval = interval

    async def __aenter__(self) -> Callable[[], Awaitable[Any]]:
        return partial(asyncio.sleep, self.interval)

    async def __aexit__(self, *exc: object) -> None:
        return None
