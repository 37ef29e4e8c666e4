from __future__ import annotations

import itertools
import logging
import threading
from datetime import timedelta

import pytest
from pydantic import BaseModel
from rich.console import Console

from phaselog.adapters import Store, open_store
from phaselog.adapters.demo.plugins import run_demo
from phaselog.domain.errors import ConcurrencyConflict, InvalidTransition, NotFound, ValidationFailed
from phaselog.domain.plugin import (
    PhaseChanged,
    PhaseForced,
    PluginCreated,
    PluginPhase,
    PluginStateCleared,
    PluginStateWritten,
    RetryAdvanced,
    RetryReset,
    Transition,
    UnknownPhase,
)
from phaselog.domain.plugin_state import PluginStateManager
from phaselog.runtime.plugins import PluginStateMachine

P = PluginPhase
TO_RUNNING = [P.INSTALLING, P.INSTALLED, P.VALIDATING, P.STARTING, P.RUNNING]
CYCLE = [P.DEGRADED, P.RECOVERING, P.VALIDATING, P.STARTING, P.RUNNING]


class Progress(BaseModel):
    """Plugin state used by these tests."""

    done: int
    note: str = ""


def running(store: Store, plugin_id: str = "p") -> PluginStateMachine:
    machine: PluginStateMachine = store.plugins.machine(plugin_id)
    for phase in TO_RUNNING:
        machine.transition_to(phase, f"to {phase}")
    return machine


def test_new_machine_creates_stream_in_initial_phase(store: Store) -> None:
    """machine() creates plugin:<id> with one creation event in the initial phase; reopening loads it."""
    machine = store.plugins.machine("p", initial="Stopped")
    assert machine.phase is P.STOPPED
    events = store.stream("plugin:p")
    assert [type(e) for e in events] == [PluginCreated]
    again = store.plugins.machine("p", initial=P.RUNNING)  # initial is ignored for an existing plugin
    assert again.phase is P.STOPPED
    assert len(store.stream("plugin:p")) == 1
    assert store.plugins.plugin_ids() == ["p"]


def test_each_transition_is_an_event_and_survives_reload(store: Store) -> None:
    """Every transition is one PhaseChanged event; a new machine sees the same phase and history."""
    machine = running(store)
    assert machine.phase is P.RUNNING
    events = store.stream("plugin:p")
    assert [type(e) for e in events] == [PluginCreated] + [PhaseChanged] * 5
    history = store.plugins.machine("p").history()
    expected = list(zip([P.UNINSTALLED, *TO_RUNNING[:-1]], TO_RUNNING, strict=True))
    assert [(t.from_, t.to) for t in history] == expected
    assert [t.reason for t in history] == [f"to {p}" for p in TO_RUNNING]
    assert all(t.timestamp.utcoffset() == timedelta(0) for t in history)


def test_invalid_transition_raises_and_records_nothing(store: Store) -> None:
    """An invalid transition raises InvalidTransition naming plugin, from and to; nothing recorded."""
    machine = store.plugins.machine("web")
    before = store.max_position()
    with pytest.raises(InvalidTransition) as info:
        machine.transition_to(P.RUNNING, "skip ahead")
    assert all(word in str(info.value) for word in ("web", "Uninstalled", "Running"))
    with pytest.raises(InvalidTransition):
        machine.transition_to(P.UNINSTALLED, "self")
    assert store.max_position() == before
    assert machine.phase is P.UNINSTALLED
    assert machine.version == 1


def test_bad_input_is_typed_and_records_nothing(store: Store) -> None:
    """Unknown phases, non-string reasons and empty ids raise typed errors and record nothing."""
    machine = store.plugins.machine("p")
    before = store.max_position()
    with pytest.raises(UnknownPhase):
        machine.transition_to("Installng", "typo")
    with pytest.raises(UnknownPhase):
        machine.force_phase("Nowhere", "typo")
    with pytest.raises(ValidationFailed):
        machine.transition_to(P.INSTALLING, 42)  # type: ignore[arg-type]  # bad input on purpose
    with pytest.raises(ValidationFailed):
        store.plugins.machine("")
    with pytest.raises(UnknownPhase):
        store.plugins.machine("q", initial="Sleeping")
    with pytest.raises(ValidationFailed):
        store.plugins.machine("q", max_backoff=timedelta(0))
    with pytest.raises(ValidationFailed):
        machine.history(-1)
    assert store.max_position() == before
    assert not store.plugins.exists("q")


def test_force_phase_is_a_distinct_event_with_prefixed_reason(store: Store) -> None:
    """force_phase skips validation, records PhaseForced with reason "force: ..." and notifies observers."""
    machine = store.plugins.machine("p")
    seen: list[Transition] = []
    machine.add_observer(lambda _pid, t: seen.append(t))
    transition = machine.force_phase(P.RUNNING, "reconciled from runtime")
    assert machine.phase is P.RUNNING
    assert transition.reason == "force: reconciled from runtime"
    assert (transition.from_, transition.to) == (P.UNINSTALLED, P.RUNNING)
    assert type(store.stream("plugin:p")[-1]) is PhaseForced
    assert seen == [transition]
    assert machine.history() == [transition]


def test_history_is_complete_and_limit_takes_newest(store: Store) -> None:
    """history() returns every transition (well past 50), oldest first; limit=n gives the newest n."""
    machine = running(store)
    for _ in range(12):
        for phase in CYCLE:
            machine.transition_to(phase, "cycle")
    machine.retry.advance()
    history = machine.history()
    assert len(history) == 5 + 12 * 5 == 65
    assert history[0].from_ is P.UNINSTALLED
    assert all(a.to == b.from_ for a, b in itertools.pairwise(history))
    assert machine.history(3) == history[-3:]
    assert machine.history(0) == []
    assert machine.history(1000) == history
    assert store.plugins.history("p") == history
    with pytest.raises(NotFound):
        store.plugins.history("nobody")


def test_retry_advance_and_reset_are_recorded(store: Store) -> None:
    """advance/reset are events: attempts, doubling capped backoff and last_attempt survive a reload."""
    machine = store.plugins.machine(
        "p", max_attempts=3, initial_backoff=0.5, max_backoff=timedelta(seconds=3)
    )
    assert (machine.retry.attempts, machine.retry.next_backoff, machine.retry.last_attempt) == (
        0,
        timedelta(seconds=0.5),
        None,
    )
    backoffs = []
    while machine.retry.can_retry():
        machine.retry.advance()
        backoffs.append(machine.retry.next_backoff.total_seconds())
    assert backoffs == [1, 2, 3]
    assert machine.retry.attempts == 3
    reloaded = store.plugins.machine("p")
    assert reloaded.retry.attempts == 3
    assert reloaded.retry.next_backoff == timedelta(seconds=3)
    assert reloaded.retry.last_attempt == machine.retry.last_attempt is not None
    assert reloaded.retry.can_retry()  # reloaded machine has the default limit of 5
    machine.retry.reset()
    after_reset = machine.retry  # a fresh name: the narrowing of last_attempt above no longer applies
    assert (after_reset.attempts, after_reset.next_backoff, after_reset.last_attempt) == (
        0,
        timedelta(seconds=0.5),
        None,
    )
    kinds = [type(e) for e in store.stream("plugin:p")]
    assert kinds == [PluginCreated, RetryAdvanced, RetryAdvanced, RetryAdvanced, RetryReset]
    assert machine.history() == []


def test_observers_run_after_recording_and_failures_are_isolated(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Observers see the event already stored; a raising observer is logged and others still run."""
    machine = store.plugins.machine("p")
    stored_versions: list[int] = []
    calls: list[str] = []

    def broken(_pid: str, _t: Transition) -> None:
        calls.append("broken")
        msg = "observer bug"
        raise RuntimeError(msg)

    def checker(pid: str, t: Transition) -> None:
        calls.append(f"{pid}:{t.to}")
        stored_versions.append(len(store.stream("plugin:p")))

    machine.add_observer(broken)
    machine.add_observer(checker)
    with caplog.at_level(logging.ERROR, logger="phaselog.plugins"):
        machine.transition_to(P.INSTALLING, "go")
    assert calls == ["broken", "p:Installing"]
    assert stored_versions == [2]
    assert machine.phase is P.INSTALLING
    assert "observer bug" in caplog.text
    with pytest.raises(ValidationFailed):
        machine.add_observer("not callable")  # type: ignore[arg-type]  # bad input on purpose


def test_observers_run_outside_the_machine_lock(store: Store) -> None:
    """An observer can wait on another thread that uses the same machine: no lock is held."""
    machine = store.plugins.machine("p")
    results: list[PluginPhase] = []
    worker_stuck: list[bool] = []  # checked outside the observer, whose exceptions are swallowed

    def observer(_pid: str, t: Transition) -> None:
        if t.to is P.INSTALLING:
            worker = threading.Thread(target=lambda: results.append(machine.transition_to(P.INSTALLED).to))
            worker.start()
            worker.join(timeout=20)
            worker_stuck.append(worker.is_alive())

    machine.add_observer(observer)
    machine.transition_to(P.INSTALLING)
    assert worker_stuck == [False], "the observer ran while the machine lock was held"
    assert results == [P.INSTALLED]
    assert machine.phase is P.INSTALLED


def test_stale_machine_gets_conflict_records_nothing_and_reloads(store: Store) -> None:
    """Two machines on one plugin: the stale write raises ConcurrencyConflict, records nothing, reloads."""
    first = store.plugins.machine("p")
    second = store.plugins.machine("p")
    first.transition_to(P.INSTALLING, "first")
    before = store.max_position()
    with pytest.raises(ConcurrencyConflict):
        second.transition_to(P.INSTALLING, "second")
    assert store.max_position() == before
    assert second.phase is P.INSTALLING  # reloaded: the caller can decide again
    second.transition_to(P.INSTALLED, "second, after reload")
    with pytest.raises(ConcurrencyConflict):
        first.retry.advance()
    first.retry.advance()
    assert [t.reason for t in first.history()] == ["first", "second, after reload"]
    assert store.plugins.get("p").retry.attempts == 1


def test_observers_are_not_notified_when_the_save_fails_with_a_conflict(store: Store) -> None:
    """A transition or forced phase whose save raises ConcurrencyConflict reaches no observer."""
    first = store.plugins.machine("p")
    stale = store.plugins.machine("p")
    seen: list[Transition] = []
    stale.add_observer(lambda _pid, t: seen.append(t))
    first.transition_to(P.INSTALLING, "first")
    with pytest.raises(ConcurrencyConflict):
        stale.transition_to(P.INSTALLING, "stale")
    first.transition_to(P.INSTALLED, "first again")
    with pytest.raises(ConcurrencyConflict):
        stale.force_phase(P.FAILED, "stale force")
    assert seen == []
    stale.transition_to(P.VALIDATING, "after reload")  # the machine reloaded itself: it notifies again
    assert [(t.from_, t.to) for t in seen] == [(P.INSTALLED, P.VALIDATING)]


def test_threads_racing_from_one_version_have_one_winner(store: Store) -> None:
    """Eight threads with their own machines at the same version: exactly one transition is recorded."""
    running(store)
    machines = [store.plugins.machine("p") for _ in range(8)]
    barrier = threading.Barrier(len(machines), timeout=30)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(m: PluginStateMachine) -> None:
        barrier.wait()
        try:
            m.transition_to(P.DEGRADED, "probe failed")
            result = "won"
        except ConcurrencyConflict:
            result = "conflict"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(m,)) for m in machines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["conflict"] * 7 + ["won"]
    assert [t.to for t in store.plugins.history("p")][-2:] == [P.RUNNING, P.DEGRADED]
    assert all(m.phase is P.DEGRADED for m in machines)


# -- handle -------------------------------------------------------------------------------------------
def test_handle_records_written_state_and_reads_it_next_round(store: Store) -> None:
    """Handle appends one StateWritten event with the put state; the next round reads it back."""
    store.plugins.machine("p")

    def first(mgr: PluginStateManager) -> str:
        assert mgr.get(Progress) == (0, None)
        mgr.put(3, Progress(done=1, note="a"))
        return "ok"

    assert store.plugins.handle("p", first) == "ok"
    assert type(store.stream("plugin:p")[-1]) is PluginStateWritten
    assert store.plugins.handle("p", lambda mgr: mgr.get(Progress)) == (3, Progress(done=1, note="a"))
    assert store.plugins.machine("p").state == (b'{"done":1,"note":"a"}', 3)


def test_handle_without_write_records_nothing(store: Store) -> None:
    """A round that only reads (or writes nothing) appends no event at all."""
    store.plugins.machine("p")
    store.plugins.handle("p", lambda mgr: mgr.put(1, Progress(done=1)))
    before = store.max_position()
    assert store.plugins.handle("p", lambda mgr: mgr.get_state_version()) == 1
    assert store.max_position() == before


def test_handle_reset_records_cleared_state(store: Store) -> None:
    """A reset in handle records a StateCleared event: state None, version 0 (written as empty)."""
    store.plugins.handle("p", lambda mgr: mgr.put(9, Progress(done=2)))
    before = store.max_position()
    store.plugins.handle("p", lambda mgr: mgr.reset())
    assert store.max_position() == before + 1
    assert type(store.stream("plugin:p")[-1]) is PluginStateCleared
    after = store.plugins.handle("p", lambda mgr: (mgr.get(Progress), mgr.get_state_version()))
    assert after == ((0, None), 0)


def test_handle_exception_propagates_and_records_nothing(store: Store) -> None:
    """An exception raised by fn propagates unchanged and nothing is recorded, even after a put."""
    store.plugins.handle("p", lambda mgr: mgr.put(1, Progress(done=1)))
    before = store.max_position()

    def failing(mgr: PluginStateManager) -> None:
        mgr.put(2, Progress(done=2))
        msg = "plugin crashed"
        raise KeyError(msg)

    with pytest.raises(KeyError, match="plugin crashed"):
        store.plugins.handle("p", failing)
    assert store.max_position() == before
    assert store.plugins.get("p").state_version == 1


def test_handle_on_new_plugin_creates_stream_only_when_written(store: Store) -> None:
    """Handle on an unknown plugin sees (0, None); only a write creates its stream (Uninstalled)."""
    assert store.plugins.handle("new", lambda mgr: mgr.get(Progress)) == (0, None)
    assert not store.plugins.exists("new")
    store.plugins.handle("new", lambda mgr: mgr.put(0, Progress(done=0)))
    assert store.plugins.machine("new").phase is P.UNINSTALLED
    assert store.plugins.get("new").state_version == 0


def test_handle_bad_put_raises_and_records_nothing(store: Store) -> None:
    """A put with a bad version or a non-model value in handle is ValidationFailed; nothing recorded."""
    store.plugins.machine("p")
    before = store.max_position()
    with pytest.raises(ValidationFailed):
        store.plugins.handle("p", lambda mgr: mgr.put(300, Progress(done=1)))
    with pytest.raises(ValidationFailed):
        store.plugins.handle("p", lambda mgr: mgr.put(1, {"done": 1}))  # type: ignore[arg-type]  # bad input
    with pytest.raises(ValidationFailed):
        store.plugins.handle("p", "not callable")  # type: ignore[arg-type]  # bad input on purpose
    assert store.max_position() == before


def test_handle_conflict_records_nothing(store: Store) -> None:
    """A state write racing another writer raises ConcurrencyConflict and records nothing of its own."""
    machine = store.plugins.machine("p")

    def sneaky(mgr: PluginStateManager) -> None:
        machine.transition_to(P.INSTALLING, "meanwhile")  # another writer extends the stream
        mgr.put(1, Progress(done=1))

    with pytest.raises(ConcurrencyConflict):
        store.plugins.handle("p", sneaky)
    assert store.plugins.get("p").state is None
    assert store.plugins.get("p").phase is P.INSTALLING


def test_machine_handle_keeps_the_machine_fresh(store: Store) -> None:
    """machine.handle writes through the machine, so its next transition needs no reload."""
    machine = running(store)
    machine.handle(lambda mgr: mgr.put(4, Progress(done=4)))
    machine.transition_to(P.DEGRADED, "after state write")
    assert machine.state == (b'{"done":4,"note":""}', 4)
    assert machine.handle(lambda mgr: mgr.get(Progress)) == (4, Progress(done=4))


def test_state_survives_reopening_a_durable_store(durable_url: str) -> None:
    """Phase, retry and plugin state are all back after closing and reopening the store."""
    with open_store(durable_url) as first:
        machine = running(first, "keep")
        machine.retry.advance()
        first.plugins.handle("keep", lambda mgr: mgr.put(5, Progress(done=5)))
    with open_store(durable_url) as second:
        machine = second.plugins.machine("keep")
        assert machine.phase is P.RUNNING
        assert machine.retry.attempts == 1
        assert second.plugins.handle("keep", lambda mgr: mgr.get(Progress)) == (5, Progress(done=5))
        assert len(machine.history()) == 5


def test_demo_hook_shows_a_lifecycle_and_can_run_twice(store: Store) -> None:
    """run_demo prints the plugin's transition table and works when repeated on one store."""
    for _ in range(2):
        console = Console(record=True, width=200)
        run_demo(store, console)
        text = console.export_text()
        assert "Degraded" in text
        assert "force: operator reconciled" in text
        assert "phase Stopped" in text
    assert len(store.plugins.plugin_ids()) == 2
