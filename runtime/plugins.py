# Copyright (c) 2026 the phaselog authors. MIT licensed.
"""Plugin services (``store.plugins``): state machines and state units of work on plugin streams.

Every transition, forced phase, retry advance/reset and state write is an event
of ``plugin:<id>``, durable before the method returns. Concurrency is
optimistic: a stale writer gets :class:`ConcurrencyConflict`, records nothing,
and (a machine) reloads itself so the caller can retry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from phaselog.domain.errors import InvalidTransition, NotFound, ValidationFailed
from phaselog.domain.events import utcnow
from phaselog.domain.plugin import (
    FORCE_PREFIX,
    PhaseChanged,
    PluginAggregate,
    PluginCreated,
    PluginPhase,
    RetryAdvanced,
    RetryPolicy,
    RetryReset,
    RetryStatus,
    Transition,
    is_valid_transition,
    parse_phase,
    plugin_stream_id,
)
from phaselog.domain.plugin_state import PluginStateManager
from phaselog.runtime.telemetry import span

if TYPE_CHECKING:
    from phaselog.runtime.ports import EventStore as Store

__all__ = ["Observer", "PluginService", "PluginStateMachine", "RetryState"]

log = logging.getLogger("phaselog.plugins")

T = TypeVar("T")
Observer = Callable[[str, Transition], object]
Backoff = timedelta | float | int


def _as_timedelta(name: str, value: Backoff) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    msg = f"{name} must be a timedelta or seconds, got {value!r}"
    raise ValidationFailed(msg)


def _check_reason(reason: object) -> str:
    if not isinstance(reason, str):
        raise ValidationFailed(f"reason must be a string, got {type(reason).__name__}")
    return reason


def _check_callable(fn: object, what: str) -> None:
    if not callable(fn):
        raise ValidationFailed(f"{what} must be callable, got {fn!r}")


def _load(store: Store, plugin_id: str) -> PluginAggregate | None:
    try:
        return store.load(plugin_stream_id(plugin_id), PluginAggregate)
    except NotFound:
        if store.exists(plugin_stream_id(plugin_id)):
            raise  # the stream exists but holds something else
        return None


def _start(plugin_id: str, phase: PluginPhase, policy: RetryPolicy) -> PluginAggregate:
    stream_id, backoff = plugin_stream_id(plugin_id), policy.initial_backoff
    return PluginAggregate.start(
        PluginCreated, stream_id, plugin_id=plugin_id, phase=phase, next_backoff=backoff
    )


def _manager_for(aggregate: PluginAggregate | None) -> PluginStateManager:
    return PluginStateManager(None, 0) if aggregate is None else PluginStateManager(
        aggregate.state, aggregate.state_version
    )


def _transitions(store: Store, stream_id: str, limit: int | None) -> list[Transition]:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        msg = f"limit must be a non-negative integer or None, got {limit!r}"
        raise ValidationFailed(msg)
    transitions = [e.transition() for e in store.stream(stream_id) if isinstance(e, PhaseChanged)]
    if limit is None:
        return transitions
    return transitions[len(transitions) - limit :] if limit else []


class RetryState:
    """The crash-recovery retry counters of one machine; every change is a recorded event."""

    def __init__(self, machine: PluginStateMachine) -> None:
        self._machine = machine

    @property
    def status(self) -> RetryStatus:
        """The current counters as an immutable value."""
        return self._machine._aggregate_retry()  # noqa: SLF001 - the machine's own helper

    @property
    def attempts(self) -> int:
        """Recovery attempts since the last reset."""
        return self.status.attempts

    @property
    def next_backoff(self) -> timedelta:
        """How long to wait before the next attempt."""
        return self.status.next_backoff

    @property
    def last_attempt(self) -> datetime | None:
        """When the last attempt was made (UTC), ``None`` after a reset."""
        return self.status.last_attempt

    @property
    def policy(self) -> RetryPolicy:
        """Return the retry limits of the machine."""
        return self._machine.policy

    def advance(self) -> None:
        """Record one more attempt: attempts+1, last_attempt=now, backoff doubled (capped)."""
        self._machine._advance_retry()  # noqa: SLF001

    def can_retry(self) -> bool:
        """Tell whether attempts are below the machine's ``max_attempts``."""
        return self.policy.can_retry(self.status)

    def reset(self) -> None:
        """Record a reset: 0 attempts, the initial backoff, no last attempt."""
        self._machine._reset_retry()  # noqa: SLF001

    def __repr__(self) -> str:
        s = self.status
        return f"RetryState(attempts={s.attempts}, next_backoff={s.next_backoff}, last={s.last_attempt})"


class PluginStateMachine:
    """The lifecycle of one plugin, backed by its event stream.

    Thread-safe: writes are serialised by a lock; observers run after the
    event is durably recorded and outside the lock. Two machines for the same
    plugin (threads or processes) write optimistically; the stale one gets
    :class:`ConcurrencyConflict` and reloads.
    """

    def __init__(self, store: Store, plugin_id: str, initial: PluginPhase, policy: RetryPolicy) -> None:
        self._store = store
        self._plugin_id = plugin_id
        self._stream_id = plugin_stream_id(plugin_id)
        self.policy = policy
        self._lock = threading.RLock()
        self._observers: list[Observer] = []
        self._stale = False
        aggregate = _load(store, plugin_id)
        if aggregate is None:
            aggregate = _start(plugin_id, initial, policy)
            try:
                store.save(aggregate)
            except Exception:
                # another machine created it at the same moment (or the save failed): load the truth
                loaded = _load(store, plugin_id)
                if loaded is None:
                    raise
                aggregate = loaded
        self._aggregate = aggregate
        self.retry = RetryState(self)

    # -- reading -------------------------------------------------------------------------------------
    @property
    def plugin_id(self) -> str:
        """The plugin this machine drives."""
        return self._plugin_id

    @property
    def stream_id(self) -> str:
        """The plugin's stream id (``plugin:<plugin_id>``)."""
        return self._stream_id

    @property
    def phase(self) -> PluginPhase:
        """The current phase (as of this machine's last write or reload)."""
        with self._lock:
            return self._current().phase

    @property
    def version(self) -> int:
        """The version of the plugin's stream this machine is at."""
        with self._lock:
            return self._current().version

    @property
    def state(self) -> tuple[bytes | None, int]:
        """The plugin's versioned state: ``(bytes or None, version)``."""
        with self._lock:
            agg = self._current()
            return agg.state, agg.state_version

    def history(self, limit: int | None = None) -> list[Transition]:
        """Return recorded transitions, oldest first, read from the stream (all by default).

        With ``limit``, the newest ``limit`` transitions (still oldest first).
        """
        return _transitions(self._store, self._stream_id, limit)

    def refresh(self) -> None:
        """Reload the plugin from the store (to see other writers' events)."""
        with self._lock:
            self._reload()

    def add_observer(self, fn: Observer) -> None:
        """Call ``fn(plugin_id, transition)`` after each recorded transition of this machine."""
        _check_callable(fn, "observer")
        with self._lock:
            self._observers.append(fn)

    # -- writing ---------------------------------------------------------------------------------------
    def transition_to(self, next_phase: PluginPhase | str, reason: str = "") -> Transition:
        """Move to ``next_phase`` if the lifecycle table allows it; record and return the transition.

        Raises :class:`InvalidTransition` (naming plugin, from and to),
        :class:`~phaselog.domain.plugin.UnknownPhase` for unknown names, and
        :class:`ConcurrencyConflict` when another writer got there first; in
        every failure case nothing is recorded.
        """
        to = parse_phase(next_phase)
        reason = _check_reason(reason)
        with self._lock, span("phaselog.plugin.transition", plugin_id=self._plugin_id, to=to.value):
            agg = self._current()
            if not is_valid_transition(agg.phase, to):
                msg = f"plugin {self._plugin_id!r}: invalid transition {agg.phase.value} -> {to.value}"
                raise InvalidTransition(msg)
            event = agg.change_phase(to, reason)
            self._save()
        transition = event.transition()
        self._notify(transition)
        return transition

    def force_phase(self, phase: PluginPhase | str, reason: str = "") -> Transition:
        """Set ``phase`` without validation, recorded as a distinct event with reason ``"force: ..."``."""
        to = parse_phase(phase)
        reason = _check_reason(reason)
        with self._lock, span("phaselog.plugin.transition", plugin_id=self._plugin_id, forced=True):
            event = self._current().change_phase(to, FORCE_PREFIX + reason, forced=True)
            self._save()
        transition = event.transition()
        self._notify(transition)
        return transition

    def handle(self, fn: Callable[[PluginStateManager], T]) -> T:
        """Run ``fn`` with this plugin's state and record what it wrote (see :meth:`PluginService.handle`)."""
        _check_callable(fn, "fn")
        with self._lock:
            manager = _manager_for(self._current())
            result = fn(manager)
            data, version, written = manager.get_new_state()
            if written:
                self._current().write_state(data, version)  # fn may have reloaded this machine
                self._save()
            return result

    # -- internals -----------------------------------------------------------------------------------
    def _aggregate_retry(self) -> RetryStatus:
        with self._lock:
            return self._current().retry

    def _advance_retry(self) -> None:
        with self._lock:
            agg = self._current()
            new = self.policy.advanced(agg.retry, utcnow())
            agg.trigger(RetryAdvanced, **new.model_dump())
            self._save()

    def _reset_retry(self) -> None:
        with self._lock:
            self._current().trigger(RetryReset, next_backoff=self.policy.initial_backoff)
            self._save()

    def _current(self) -> PluginAggregate:
        if self._stale:
            self._reload()
        return self._aggregate

    def _reload(self) -> None:
        loaded = _load(self._store, self._plugin_id)
        if loaded is None:
            raise NotFound(f"plugin {self._plugin_id!r} has no stream")
        self._aggregate = loaded
        self._stale = False

    def _save(self) -> None:
        try:
            self._store.save(self._aggregate)
        except BaseException:
            self._reload_after_failure()
            raise

    def _reload_after_failure(self) -> None:
        """Drop unsaved events: reload now, or on next use when the store is unreachable."""
        self._stale = True
        try:
            self._reload()
        except Exception as exc:
            log.warning("plugin %s: reload after failed write failed, will retry: %s", self._plugin_id, exc)

    def _notify(self, transition: Transition) -> None:
        with self._lock:
            observers = list(self._observers)
        for observer in observers:
            try:
                observer(self._plugin_id, transition)
            except Exception:
                log.exception("observer %r of plugin %s failed on %s", observer, self._plugin_id, transition)

    def __repr__(self) -> str:
        return f"PluginStateMachine({self._plugin_id!r}, phase={self._aggregate.phase.value})"


class PluginService:
    """``store.plugins``: plugin machines and state units of work on one store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def machine(
        self,
        plugin_id: str,
        initial: PluginPhase | str = PluginPhase.UNINSTALLED,
        *,
        max_attempts: int = 5,
        initial_backoff: Backoff = timedelta(seconds=1),
        max_backoff: Backoff = timedelta(seconds=60),
    ) -> PluginStateMachine:
        """Return the machine of ``plugin_id``: created in ``initial`` if new, loaded otherwise.

        ``initial`` is ignored for an existing plugin. The retry limits belong
        to this machine (they shape the values it records).
        """
        plugin_stream_id(plugin_id)
        phase = parse_phase(initial)
        policy = RetryPolicy(
            max_attempts=max_attempts,
            initial_backoff=_as_timedelta("initial_backoff", initial_backoff),
            max_backoff=_as_timedelta("max_backoff", max_backoff),
        )
        return PluginStateMachine(self._store, plugin_id, phase, policy)

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
        _check_callable(fn, "fn")
        aggregate = _load(self._store, plugin_id)
        manager = _manager_for(aggregate)
        result = fn(manager)
        data, version, written = manager.get_new_state()
        if written:
            if aggregate is None:
                aggregate = _start(plugin_id, PluginPhase.UNINSTALLED, RetryPolicy())
            aggregate.write_state(data, version)
            self._store.save(aggregate)
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
        if not self.exists(plugin_id):
            msg = f"no plugin {plugin_id!r}"
            raise NotFound(msg)
        return _transitions(self._store, plugin_stream_id(plugin_id), limit)
