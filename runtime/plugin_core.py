"""The decisions of plugin machines, without I/O: one core for the sync and the async shell.

What to check, which events to record, the retry arithmetic, when to reload and
the order observers are told, the ``phaselog.plugin.transition`` span and what a
machine left stale by a failed write answers are decided here, in protocols
(generators, see :mod:`phaselog.runtime.sansio`) that yield the typed steps of
:mod:`phaselog.runtime.store_steps` on a store (:class:`Load`, :class:`Exists`,
:class:`Save`, :class:`Stream`). The sync shell (:mod:`phaselog.runtime.plugins`)
makes those calls directly; the async one (:mod:`phaselog.aio.plugins`) awaits
them on an async store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TypeVar

from phaselog.domain.errors import InvalidTransition, NotFound, StoreUnavailable, ValidationFailed
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
    Transition,
    is_valid_transition,
    parse_phase,
    plugin_stream_id,
)
from phaselog.domain.plugin_state import PluginStateManager
from phaselog.runtime.positions import Positioned
from phaselog.runtime.sansio import Steps
from phaselog.runtime.store_steps import Exists, Load, Save, StoreStep, Stream
from phaselog.runtime.telemetry import span

__all__ = [
    "Duration",
    "Flow",
    "MachineCore",
    "Observer",
    "check_callable",
    "check_reason",
    "load_plugin",
    "machine_settings",
    "manager_for",
    "open_machine",
    "plugin_history",
    "record_state",
    "transitions",
]

log = logging.getLogger("phaselog.plugins")

T = TypeVar("T")
Observer = Callable[[str, Transition], object]
Duration = timedelta | float | int
Flow = Steps[StoreStep, T]
"""A plugin protocol: it asks a store for :data:`StoreStep` steps and returns a ``T``."""


def _as_timedelta(name: str, value: Duration) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    msg = f"{name} must be a timedelta or seconds, got {value!r}"
    raise ValidationFailed(msg)


def check_reason(reason: object) -> str:
    """``reason`` if it is a string, else :class:`ValidationFailed`."""
    if not isinstance(reason, str):
        raise ValidationFailed(f"reason must be a string, got {type(reason).__name__}")
    return reason


def check_callable(fn: object, what: str) -> None:
    """:class:`ValidationFailed` unless ``fn`` is callable."""
    if not callable(fn):
        raise ValidationFailed(f"{what} must be callable, got {fn!r}")


def machine_settings(
    plugin_id: str,
    initial: PluginPhase | str,
    max_attempts: int,
    initial_backoff: Duration,
    max_backoff: Duration,
) -> tuple[PluginPhase, RetryPolicy]:
    """The checked initial phase and retry policy of ``plugins.machine(...)``."""
    plugin_stream_id(plugin_id)
    phase = parse_phase(initial)
    policy = RetryPolicy(
        max_attempts=max_attempts,
        initial_backoff=_as_timedelta("initial_backoff", initial_backoff),
        max_backoff=_as_timedelta("max_backoff", max_backoff),
    )
    return phase, policy


def _start(plugin_id: str, phase: PluginPhase, policy: RetryPolicy) -> PluginAggregate:
    stream_id, backoff = plugin_stream_id(plugin_id), policy.initial_backoff
    return PluginAggregate.start(
        PluginCreated, stream_id, plugin_id=plugin_id, phase=phase, next_backoff=backoff
    )


def manager_for(aggregate: PluginAggregate | None) -> PluginStateManager:
    """A state manager over the plugin's current state (none yet: empty, version 0)."""
    return (
        PluginStateManager(None, 0)
        if aggregate is None
        else PluginStateManager(aggregate.state, aggregate.state_version)
    )


def transitions(stream_id: str, limit: int | None) -> Flow[list[Transition]]:
    """The recorded transitions of a plugin stream, oldest first (the newest ``limit`` if given)."""
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        msg = f"limit must be a non-negative integer or None, got {limit!r}"
        raise ValidationFailed(msg)
    events = yield from Stream(stream_id)
    found = [e.transition() for e in events if isinstance(e, PhaseChanged)]
    if limit is None:
        return found
    return found[len(found) - limit :] if limit else []


def load_plugin(plugin_id: str) -> Flow[PluginAggregate | None]:
    """The plugin's aggregate, None when it has no stream (NotFound when the stream is another kind)."""
    stream_id = plugin_stream_id(plugin_id)
    try:
        return (yield from Load(stream_id, PluginAggregate))
    except NotFound:
        if (yield from Exists(stream_id)):
            raise  # the stream exists but holds something else
        return None


def open_machine(plugin_id: str, initial: PluginPhase, policy: RetryPolicy) -> Flow[MachineCore]:
    """The core of a machine: the plugin loaded, or created in ``initial`` (its position, that commit).

    A creation race loads the winner's stream.
    """
    aggregate = yield from load_plugin(plugin_id)
    saved: object = None
    if aggregate is None:
        aggregate = _start(plugin_id, initial, policy)
        try:
            saved = yield from Save((aggregate,))
        except Exception:
            # another machine created it at the same moment (or the save failed): load the truth
            loaded = yield from load_plugin(plugin_id)
            if loaded is None:
                raise
            aggregate = loaded
    core = MachineCore(plugin_id, policy, aggregate)
    core._committed(saved)  # noqa: SLF001 - the core's own first write
    return core


def record_state(
    plugin_id: str, aggregate: PluginAggregate | None, manager: PluginStateManager
) -> Flow[object]:
    """After ``plugins.handle``'s fn: append what it wrote (creating the stream if new), else nothing.

    Returns what the save returned (``None`` when nothing was written).
    """
    data, version, written = manager.get_new_state()
    if not written:
        return None
    if aggregate is None:
        aggregate = _start(plugin_id, PluginPhase.UNINSTALLED, RetryPolicy())
    aggregate.write_state(data, version)
    return (yield from Save((aggregate,)))


def plugin_history(plugin_id: str, limit: int | None) -> Flow[list[Transition]]:
    """``plugins.history``: the transitions of a known plugin (NotFound otherwise)."""
    stream_id = plugin_stream_id(plugin_id)
    if not (yield from Exists(stream_id)):
        msg = f"no plugin {plugin_id!r}"
        raise NotFound(msg)
    return (yield from transitions(stream_id, limit))


class MachineCore(Positioned):
    """The state of one plugin machine and the protocols of its operations.

    The shells serialise calls (a lock) and run each protocol to its end; the
    core keeps the aggregate and the newest ``position`` its writes committed,
    drops unsaved events after a failed write (reloading now, or at the next
    write when the store is unreachable), and lists the observers to tell after
    a transition is durable. Reads do no I/O (:attr:`known`): a stale machine
    answers them with :class:`StoreUnavailable` until it is refreshed or writes.
    """

    def __init__(self, plugin_id: str, policy: RetryPolicy, aggregate: PluginAggregate) -> None:
        self.plugin_id = plugin_id
        self.stream_id = plugin_stream_id(plugin_id)
        self.policy = policy
        self._aggregate = aggregate
        self._stale = False
        self._observers: list[Observer] = []

    @property
    def known(self) -> PluginAggregate:
        """The aggregate as of the last write or reload (StoreUnavailable while a reload is pending)."""
        if self._stale:
            msg = f"plugin {self.plugin_id!r}: a failed write left this machine to reload; refresh it"
            raise StoreUnavailable(msg)
        return self._aggregate

    def current(self) -> Flow[PluginAggregate]:
        """The aggregate, reloaded first if a failed write left it stale."""
        if self._stale:
            yield from self.reload()
        return self._aggregate

    def reload(self) -> Flow[None]:
        """Reload the plugin from the store."""
        loaded = yield from load_plugin(self.plugin_id)
        if loaded is None:
            raise NotFound(f"plugin {self.plugin_id!r} has no stream")
        self._aggregate = loaded
        self._stale = False

    def _save(self) -> Flow[None]:
        try:
            self._committed((yield from Save((self._aggregate,))))
        except Exception:
            self._stale = True
            try:
                yield from self.reload()
            except Exception as exc:
                log.warning(
                    "plugin %s: reload after failed write failed, will retry: %s", self.plugin_id, exc
                )
            raise
        except BaseException:
            self._stale = True  # interrupted: reload at the next use
            raise

    # -- operations ----------------------------------------------------------------------------------
    def transition(self, next_phase: PluginPhase | str, reason: object) -> Flow[Transition]:
        """Validate and record a transition, in a ``phaselog.plugin.transition`` span; return it.

        An unknown phase raises before the span; InvalidTransition records nothing.
        """
        to = parse_phase(next_phase)
        with span("phaselog.plugin.transition", plugin_id=self.plugin_id, to=to.value):
            why = check_reason(reason)
            agg = yield from self.current()
            if not is_valid_transition(agg.phase, to):
                msg = f"plugin {self.plugin_id!r}: invalid transition {agg.phase.value} -> {to.value}"
                raise InvalidTransition(msg)
            event = agg.change_phase(to, why)
            yield from self._save()
            return event.transition()

    def force(self, phase: PluginPhase | str, reason: object) -> Flow[Transition]:
        """Record ``phase`` without validation, reason ``"force: ..."``, in a span; return the transition."""
        with span("phaselog.plugin.transition", plugin_id=self.plugin_id, forced=True):
            to, why = parse_phase(phase), check_reason(reason)
            agg = yield from self.current()
            event = agg.change_phase(to, FORCE_PREFIX + why, forced=True)
            yield from self._save()
            return event.transition()

    def advance_retry(self) -> Flow[None]:
        """Record one more attempt: attempts+1, last_attempt=now, backoff doubled (capped)."""
        agg = yield from self.current()
        new = self.policy.advanced(agg.retry, utcnow())
        agg.trigger(RetryAdvanced, **new.model_dump())
        yield from self._save()

    def reset_retry(self) -> Flow[None]:
        """Record a reset: 0 attempts, the initial backoff, no last attempt."""
        agg = yield from self.current()
        agg.trigger(RetryReset, next_backoff=self.policy.initial_backoff)
        yield from self._save()

    def write_state(self, manager: PluginStateManager) -> Flow[None]:
        """After a machine's ``handle`` fn: record what it wrote (the fn may have reloaded the machine)."""
        data, version, written = manager.get_new_state()
        if written:
            agg = yield from self.current()
            agg.write_state(data, version)
            yield from self._save()

    # -- observers ------------------------------------------------------------------------------------
    def add_observer(self, fn: Observer) -> None:
        """Tell ``fn(plugin_id, transition)`` about each later transition of this machine."""
        check_callable(fn, "observer")
        self._observers.append(fn)

    def observer_calls(self, transition: Transition) -> Iterator[tuple[Observer, object]]:
        """Call the observers in the order they were added; yield each with what it returned.

        An observer that raises is logged and the next one is still called; an
        async shell awaits results that are awaitable, reporting their failure
        with :meth:`observer_failed`.
        """
        return self._calls(list(self._observers), transition)

    def _calls(self, observers: list[Observer], transition: Transition) -> Iterator[tuple[Observer, object]]:
        for observer in observers:
            try:
                result = observer(self.plugin_id, transition)
            except Exception:
                self.observer_failed(observer, transition)
                continue
            yield observer, result

    def observer_failed(self, observer: Observer, transition: Transition) -> None:
        """Log the failure of ``observer`` (call it inside the ``except`` block)."""
        log.error(
            "observer %r of plugin %s failed on %s",
            observer,
            self.plugin_id,
            transition,
            exc_info=True,  # noqa: LOG014 - the shells call this inside their except blocks
        )
