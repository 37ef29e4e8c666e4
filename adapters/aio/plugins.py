"""Async plugins (``store.plugins`` of an :class:`~phaselog.aio.AsyncStore`): the async shell.

The decisions are :mod:`phaselog.runtime.plugin_core`'s, the same the sync
:mod:`phaselog.runtime.plugins` drives: here each store call they ask for is
awaited on the async store, user functions and observers may be ``async def``,
and a machine's calls are serialised by a task-reentrant asyncio lock.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

from phaselog.domain.events import Aggregate, DomainEvent
from phaselog.domain.plugin import (
    PluginAggregate,
    PluginPhase,
    Transition,
    plugin_stream_id,
)
from phaselog.domain.plugin_state import PluginStateManager
from phaselog.runtime.plugin_core import (
    Duration,
    Flow,
    MachineCore,
    check_callable,
    load_plugin,
    machine_settings,
    manager_for,
    open_machine,
    plugin_history,
    record_state,
    transitions,
)
from phaselog.runtime.plugin_views import MachineView, RetryView
from phaselog.runtime.positions import Positioned
from phaselog.runtime.sansio import drive_async
from phaselog.runtime.store_steps import Exists, Load, Save, StoreStep, Stream

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "AsyncEventStore",
    "AsyncObserver",
    "AsyncPluginService",
    "AsyncPluginStateMachine",
    "AsyncRetryState",
]

T = TypeVar("T")
AggT = TypeVar("AggT", bound=Aggregate)
AsyncObserver = Callable[[str, Transition], object]  # may return an awaitable (async def)
StateFn = Callable[[PluginStateManager], T | Awaitable[T]]


class AsyncEventStore(Protocol):
    """What the async plugin shell awaits on a store (:class:`~phaselog.aio.AsyncStore` is one)."""

    async def save(self, *aggregates: Aggregate) -> Sequence[object]:
        """Append the pending events of ``aggregates`` atomically."""
        ...

    async def load(
        self, aggregate_id: str, aggregate_type: type[AggT], *, version: int | None = None
    ) -> AggT:
        """Load an aggregate (``NotFound`` when missing or of another type)."""
        ...

    async def exists(self, aggregate_id: str) -> bool:
        """True when the stream has at least one event."""
        ...

    async def stream(
        self, aggregate_id: str, *, gt: int | None = None, lte: int | None = None
    ) -> list[DomainEvent]:
        """All events of one stream, oldest first."""
        ...

    async def stream_ids(self, prefix: str = "") -> list[str]:
        """Ids of all streams starting with ``prefix``, sorted."""
        ...


async def _run(store: AsyncEventStore, protocol: Flow[T]) -> T:
    """Await the store calls of a plugin protocol (the async shell)."""

    async def call(step: StoreStep) -> object:
        match step:
            case Load():
                return await store.load(step.stream_id, step.aggregate_type, version=step.version)
            case Save():
                return await store.save(*step.aggregates)
            case Exists():
                return await store.exists(step.stream_id)
            case Stream():
                return await store.stream(step.stream_id)

    return await drive_async(protocol, call)


async def _resolve(value: T | Awaitable[T]) -> T:
    if inspect.isawaitable(value):
        return await value
    return value


class _TaskLock:
    """An asyncio lock the holding task may take again (a machine's ``handle`` fn may refresh it)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if self._owner is not task or task is None:
            await self._lock.acquire()
            self._owner = task
        self._depth += 1

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()


class AsyncRetryState(RetryView):
    """The retry counters of one async machine: read them, ``await advance()`` / ``await reset()``."""

    _machine: AsyncPluginStateMachine

    async def advance(self) -> None:
        """Record one more attempt: attempts+1, last_attempt=now, backoff doubled (capped)."""
        await self._machine._drive(self._machine._core.advance_retry())  # noqa: SLF001

    async def reset(self) -> None:
        """Record a reset: 0 attempts, the initial backoff, no last attempt."""
        await self._machine._drive(self._machine._core.reset_retry())  # noqa: SLF001


class AsyncPluginStateMachine(MachineView):
    """The lifecycle of one plugin for asyncio code; get one with ``await store.plugins.machine(id)``.

    The same rules and events as :class:`~phaselog.runtime.PluginStateMachine`:
    writes are serialised per machine, observers (plain or ``async def``) are
    called in the order they were added after the event is durable, and a
    stale machine gets :class:`ConcurrencyConflict` and reloads. After each
    write, :attr:`position` is the global position it committed (read your
    writes with ``await projections.wait_for(machine.position)``).
    """

    def __init__(self, store: AsyncEventStore, core: MachineCore) -> None:
        self._store = store
        self._core = core
        self._lock = _TaskLock()
        self.retry = AsyncRetryState(self)

    async def _drive(self, protocol: Flow[T]) -> T:
        async with self._lock:
            return await _run(self._store, protocol)

    # -- reading (phase, version, state: MachineView's, from the core) -------------------------------
    async def history(self, limit: int | None = None) -> list[Transition]:
        """Recorded transitions, oldest first (the newest ``limit`` if given)."""
        return await _run(self._store, transitions(self.stream_id, limit))

    async def refresh(self) -> None:
        """Reload the plugin from the store (to see other writers' events)."""
        await self._drive(self._core.reload())

    def add_observer(self, fn: AsyncObserver) -> None:
        """Call ``fn(plugin_id, transition)`` (awaited if ``async def``) after each recorded transition."""
        self._core.add_observer(fn)

    # -- writing ---------------------------------------------------------------------------------------
    async def transition_to(self, next_phase: PluginPhase | str, reason: str = "") -> Transition:
        """Move to ``next_phase`` if the lifecycle allows it; record and return the transition."""
        transition = await self._drive(self._core.transition(next_phase, reason))
        await self._notify(transition)
        return transition

    async def force_phase(self, phase: PluginPhase | str, reason: str = "") -> Transition:
        """Set ``phase`` without validation, recorded with reason ``"force: ..."``."""
        transition = await self._drive(self._core.force(phase, reason))
        await self._notify(transition)
        return transition

    @overload
    async def handle(self, fn: Callable[[PluginStateManager], Awaitable[T]]) -> T: ...
    @overload
    async def handle(self, fn: Callable[[PluginStateManager], T]) -> T: ...
    async def handle(self, fn: StateFn[T]) -> T:
        """Run ``fn`` (plain or ``async def``) with this plugin's state and record what it wrote."""
        check_callable(fn, "fn")
        async with self._lock:
            manager = manager_for(await self._drive(self._core.current()))
            result = await _resolve(fn(manager))
            await self._drive(self._core.write_state(manager))
            return result

    async def _notify(self, transition: Transition) -> None:
        for observer, result in self._core.observer_calls(transition):
            if inspect.isawaitable(result):
                try:
                    await result
                except Exception:
                    self._core.observer_failed(observer, transition)


class AsyncPluginService(Positioned):
    """``store.plugins`` of an async store: machines and state units of work, as coroutines.

    :attr:`position` is the newest global position committed through this
    service (by :meth:`handle` and by creating a plugin in :meth:`machine`).
    """

    def __init__(self, store: AsyncEventStore) -> None:
        self._store = store

    async def machine(
        self,
        plugin_id: str,
        initial: PluginPhase | str = PluginPhase.UNINSTALLED,
        *,
        max_attempts: int = 5,
        initial_backoff: Duration = timedelta(seconds=1),
        max_backoff: Duration = timedelta(seconds=60),
    ) -> AsyncPluginStateMachine:
        """The machine of ``plugin_id``: created in ``initial`` if new, loaded otherwise."""
        phase, policy = machine_settings(plugin_id, initial, max_attempts, initial_backoff, max_backoff)
        core = await _run(self._store, open_machine(plugin_id, phase, policy))
        self._committed(core)
        return AsyncPluginStateMachine(self._store, core)

    @overload
    async def handle(self, plugin_id: str, fn: Callable[[PluginStateManager], Awaitable[T]]) -> T: ...
    @overload
    async def handle(self, plugin_id: str, fn: Callable[[PluginStateManager], T]) -> T: ...
    async def handle(self, plugin_id: str, fn: StateFn[T]) -> T:
        """Run ``fn`` (plain or ``async def``) with the plugin's state; append what it wrote, if anything.

        The rules of the sync ``plugins.handle``: an exception from ``fn``
        records nothing, a new plugin's stream is created with the first
        write, a concurrent writer makes the save raise ``ConcurrencyConflict``.
        """
        plugin_stream_id(plugin_id)
        check_callable(fn, "fn")
        aggregate = await _run(self._store, load_plugin(plugin_id))
        manager = manager_for(aggregate)
        result = await _resolve(fn(manager))
        self._committed(await _run(self._store, record_state(plugin_id, aggregate, manager)))
        return result

    async def exists(self, plugin_id: str) -> bool:
        """Tell whether the plugin has a stream."""
        return await self._store.exists(plugin_stream_id(plugin_id))

    async def plugin_ids(self) -> list[str]:
        """Ids of every plugin in the store, sorted."""
        return [s.removeprefix("plugin:") for s in await self._store.stream_ids("plugin:")]

    async def get(self, plugin_id: str) -> PluginAggregate:
        """Load the plugin's current aggregate (``NotFound`` if it has no stream)."""
        return await self._store.load(plugin_stream_id(plugin_id), PluginAggregate)

    async def history(self, plugin_id: str, limit: int | None = None) -> list[Transition]:
        """Recorded transitions of ``plugin_id``, oldest first (``NotFound`` if unknown)."""
        return await _run(self._store, plugin_history(plugin_id, limit))
