# Copyright (c) 2026 the phaselog authors. MIT licensed.
"""Plugin services (``store.plugins``): state machines and state units of work on plugin streams.

Every transition, forced phase, retry advance/reset and state write is an event
of ``plugin:<id>``, durable before the method returns. Concurrency is
optimistic: a stale writer gets :class:`ConcurrencyConflict`, records nothing,
and (a machine) reloads itself so the caller can retry.

This module is the sync shell over :mod:`phaselog.runtime.plugin_core`, which
decides what is checked and recorded (``phaselog.aio`` is the async shell).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

from phaselog.domain.plugin import (
    PluginAggregate,
    PluginPhase,
    RetryPolicy,
    Transition,
    plugin_stream_id,
)
from phaselog.domain.plugin_state import PluginStateManager
from phaselog.runtime.lifetimes import sync_store
from phaselog.runtime.plugin_core import (
    Duration,
    Flow,
    MachineCore,
    Observer,
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
from phaselog.runtime.sansio import drive
from phaselog.runtime.store_steps import on_store

if TYPE_CHECKING:
    from phaselog.runtime.ports import EventStore as Store
    from phaselog.runtime.ports import KeepsSyncStore

__all__ = ["Observer", "PluginService", "PluginStateMachine", "RetryState"]

T = TypeVar("T")


def _run(store: Store, protocol: Flow[T]) -> T:
    """Make the store calls of a plugin protocol (the sync shell)."""
    return drive(protocol, lambda step: on_store(store, step))


class RetryState(RetryView):
    """The crash-recovery retry counters of one machine; every change is a recorded event."""

    _machine: PluginStateMachine

    def advance(self) -> None:
        """Record one more attempt: attempts+1, last_attempt=now, backoff doubled (capped)."""
        self._machine._drive(self._machine._core.advance_retry())  # noqa: SLF001

    def reset(self) -> None:
        """Record a reset: 0 attempts, the initial backoff, no last attempt."""
        self._machine._drive(self._machine._core.reset_retry())  # noqa: SLF001


class PluginStateMachine(MachineView):
    """The lifecycle of one plugin, backed by its event stream.

    Thread-safe: writes are serialised by a lock; observers run after the
    event is durably recorded and outside the lock. Two machines for the same
    plugin (threads or processes) write optimistically; the stale one gets
    :class:`ConcurrencyConflict` and reloads. After each write, :attr:`position`
    is the global position it committed (read your writes with
    ``projections.wait_for(machine.position)``).
    """

    def __init__(
        self, store: Store | KeepsSyncStore, plugin_id: str, initial: PluginPhase, policy: RetryPolicy
    ) -> None:
        store = self._store = sync_store(store, "PluginStateMachine")
        self._lock = threading.RLock()
        self._core: MachineCore = _run(store, open_machine(plugin_id, initial, policy))
        self.retry = RetryState(self)

    def _drive(self, protocol: Flow[T]) -> T:
        with self._lock:
            return _run(self._store, protocol)

    def _known(self) -> PluginAggregate:
        with self._lock:  # never between a write's event and its save
            return self._core.known

    # -- reading (phase, version, state: MachineView's, from the core) -------------------------------
    def history(self, limit: int | None = None) -> list[Transition]:
        """Return recorded transitions, oldest first, read from the stream (all by default).

        With ``limit``, the newest ``limit`` transitions (still oldest first).
        """
        return _run(self._store, transitions(self.stream_id, limit))

    def refresh(self) -> None:
        """Reload the plugin from the store (to see other writers' events)."""
        self._drive(self._core.reload())

    def add_observer(self, fn: Observer) -> None:
        """Call ``fn(plugin_id, transition)`` after each recorded transition of this machine."""
        with self._lock:
            self._core.add_observer(fn)

    # -- writing ---------------------------------------------------------------------------------------
    def transition_to(self, next_phase: PluginPhase | str, reason: str = "") -> Transition:
        """Move to ``next_phase`` if the lifecycle table allows it; record and return the transition.

        Raises :class:`InvalidTransition` (naming plugin, from and to),
        :class:`~phaselog.domain.plugin.UnknownPhase` for unknown names, and
        :class:`ConcurrencyConflict` when another writer got there first; in
        every failure case nothing is recorded.
        """
        transition = self._drive(self._core.transition(next_phase, reason))
        self._notify(transition)
        return transition

    def force_phase(self, phase: PluginPhase | str, reason: str = "") -> Transition:
        """Set ``phase`` without validation, recorded as a distinct event with reason ``"force: ..."``."""
        transition = self._drive(self._core.force(phase, reason))
        self._notify(transition)
        return transition

    def handle(self, fn: Callable[[PluginStateManager], T]) -> T:
        """Run ``fn`` with this plugin's state and record what it wrote (see :meth:`PluginService.handle`)."""
        check_callable(fn, "fn")
        with self._lock:
            manager = manager_for(self._drive(self._core.current()))
            result = fn(manager)
            self._drive(self._core.write_state(manager))
            return result

    # -- internals -----------------------------------------------------------------------------------
    def _notify(self, transition: Transition) -> None:
        with self._lock:
            calls = self._core.observer_calls(transition)
        for _ in calls:  # each observer is called as the iteration reaches it
            pass


class PluginService(Positioned):
    """``store.plugins``: plugin machines and state units of work on one store.

    :attr:`position` is the newest global position committed through this
    service: by :meth:`handle` and by the creation of a plugin in :meth:`machine`
    (each machine keeps its own ``position`` of its later writes).
    """

    def __init__(self, store: Store | KeepsSyncStore) -> None:
        self._store = sync_store(store, "PluginService")

    def machine(
        self,
        plugin_id: str,
        initial: PluginPhase | str = PluginPhase.UNINSTALLED,
        *,
        max_attempts: int = 5,
        initial_backoff: Duration = timedelta(seconds=1),
        max_backoff: Duration = timedelta(seconds=60),
    ) -> PluginStateMachine:
        """Return the machine of ``plugin_id``: created in ``initial`` if new, loaded otherwise.

        ``initial`` is ignored for an existing plugin. The retry limits belong
        to this machine (they shape the values it records).
        """
        phase, policy = machine_settings(plugin_id, initial, max_attempts, initial_backoff, max_backoff)
        machine = PluginStateMachine(self._store, plugin_id, phase, policy)
        self._committed(machine)
        return machine

    def handle(self, plugin_id: str, fn: Callable[[PluginStateManager], T]) -> T:
        """Run ``fn`` with the plugin's current state; if it wrote state, append one event with it.

        ``manager.reset()`` records the state cleared (empty, version 0);
        not writing records nothing. An exception from ``fn`` propagates and
        records nothing. A plugin with no stream yet starts with no state
        (``(0, None)``) and its stream is created (phase Uninstalled) together
        with the first write. A concurrent writer makes the save raise
        :class:`ConcurrencyConflict` with nothing recorded; ``fn`` is not re-run.
        """
        plugin_stream_id(plugin_id)
        check_callable(fn, "fn")
        aggregate = _run(self._store, load_plugin(plugin_id))
        manager = manager_for(aggregate)
        result = fn(manager)
        self._committed(_run(self._store, record_state(plugin_id, aggregate, manager)))
        return result

    def exists(self, plugin_id: str) -> bool:
        """Tell whether the plugin has a stream."""
        return self._store.exists(plugin_stream_id(plugin_id))

    def plugin_ids(self) -> list[str]:
        """Ids of every plugin in the store, sorted."""
        return [s.removeprefix("plugin:") for s in self._store.stream_ids("plugin:")]

    def get(self, plugin_id: str) -> PluginAggregate:
        """Load the plugin's current aggregate (``NotFound`` if it has no stream)."""
        return self._store.load(plugin_stream_id(plugin_id), PluginAggregate)

    def history(self, plugin_id: str, limit: int | None = None) -> list[Transition]:
        """Return recorded transitions of ``plugin_id``, oldest first (``NotFound`` if unknown)."""
        return _run(self._store, plugin_history(plugin_id, limit))
