from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

import pytest
from task_helpers import ScriptedRunner, block_until_cancelled, wait_for

from phaselog.adapters import Store, open_store
from phaselog.domain.errors import InvalidTransition
from phaselog.domain.events import Snapshot, utcnow
from phaselog.domain.task import (
    StaleRun,
    TaskAggregate,
    TaskAlreadyRunning,
    TaskCanceled,
    TaskClaimHeld,
    TaskState,
)
from phaselog.runtime.task_models import CancelContext, TaskStatus, status_of
from phaselog.runtime.task_runner import ActiveTask
from phaselog.runtime.tasks import TaskController


def _launched(owner: str = "a") -> TaskAggregate:
    return TaskAggregate.launch("ctl", "t", '{"x": 1}', owner, utcnow() + timedelta(seconds=10))


def test_task_state_values_match_the_spec() -> None:
    """TaskState has its documented integer values, and finished/active partition the real states."""
    assert [(s.name, int(s)) for s in TaskState] == [
        ("UNKNOWN", 0),
        ("PENDING", 1),
        ("RUNNING", 2),
        ("COMPLETED", 3),
        ("FAILED", 4),
        ("CANCELED", 6),
    ]
    finished = {TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELED}
    assert {s for s in TaskState if s.is_finished} == finished
    assert {s for s in TaskState if s.is_active} == {TaskState.PENDING, TaskState.RUNNING}


def test_writes_from_another_owner_or_an_older_run_are_stale() -> None:
    """check_run rejects a write naming a different owner or run number."""
    agg = _launched()
    agg.check_run(1, "a")
    with pytest.raises(StaleRun):
        agg.log(1, "b", logging.INFO, "intruder")
    with pytest.raises(StaleRun):
        agg.set_progress(2, "a", 1, 2)
    agg.change_state(1, "a", TaskState.RUNNING)
    agg.change_state(1, "a", TaskState.COMPLETED)
    agg.relaunch("", "a", utcnow() + timedelta(seconds=10))
    assert agg.run == 2
    with pytest.raises(StaleRun):
        agg.change_state(1, "a", TaskState.RUNNING)


def test_a_live_claim_cannot_be_taken_but_an_expired_one_can() -> None:
    """A claim raises TaskClaimHeld before the lease ends and succeeds after it."""
    agg = _launched("a")
    now = utcnow()
    with pytest.raises(TaskClaimHeld):
        agg.claim("b", now + timedelta(seconds=10), now)
    later = now + timedelta(seconds=11)
    agg.claim("b", later + timedelta(seconds=10), later)
    assert agg.owner == "b"


def test_only_the_allowed_state_changes_are_accepted() -> None:
    """Pending may go Running or end; Running may only end; finished runs cannot change or relaunch twice."""
    agg = _launched()
    with pytest.raises(InvalidTransition):
        agg.change_state(1, "a", TaskState.COMPLETED)
    agg.change_state(1, "a", TaskState.RUNNING)
    with pytest.raises(InvalidTransition):
        agg.change_state(1, "a", TaskState.PENDING)
    with pytest.raises(TaskAlreadyRunning):
        agg.relaunch("", "a", utcnow())
    agg.change_state(1, "a", TaskState.FAILED)
    with pytest.raises(InvalidTransition):
        agg.change_state(1, "a", TaskState.RUNNING)


def test_snapshot_restores_the_same_status() -> None:
    """A snapshot of a task restores to an aggregate with the same status and claim."""
    agg = _launched()
    agg.log(1, "a", logging.WARNING, "careful")
    agg.change_state(1, "a", TaskState.RUNNING)
    agg.set_progress(1, "a", 4, 9)
    agg.collect_events()
    restored = Snapshot.take(agg).mutate(None)
    assert status_of(restored) == status_of(agg)
    assert (restored.run, restored.owner, restored.lease_expires) == (agg.run, agg.owner, agg.lease_expires)


def test_loading_through_snapshots_equals_replaying_every_event(durable_url: str) -> None:
    """With frequent snapshots, a loaded task equals the fold of all its events."""
    with open_store(durable_url, snapshot_interval=4) as store:
        runner = ScriptedRunner()

        def chatty(ctx: CancelContext, task: ActiveTask) -> None:
            for i in range(10):
                task.add_log_entry(logging.INFO, f"line {i}")

        runner.running["c"] = chatty
        with TaskController(store, "ctl", runner) as ctl:
            ctl.launch_task("c", metadata={"k": "v"})
            wait_for(lambda: store.load("task:ctl:c", TaskAggregate).delivered)
        assert store.app.snapshots is not None
        assert list(store.app.snapshots.get("task:ctl:c"))
        folded: Any = None
        for event in store.stream("task:ctl:c"):
            folded = event.mutate(folded)
        assert status_of(store.load("task:ctl:c", TaskAggregate)) == status_of(folded)


def test_a_cancel_from_another_controller_reaches_the_running_owner(store: Store) -> None:
    """cancel_task on a controller that does not run the task cancels it where it runs."""
    owner_runner = ScriptedRunner(running={"x": block_until_cancelled})
    lease = timedelta(seconds=3)  # renewed every second: ample on a loaded machine, noticed within 1 s
    with (
        TaskController(store, "ctl", owner_runner, lease=lease) as owner,
        TaskController(store, "ctl", ScriptedRunner(), lease=lease) as other,
    ):
        owner.launch_task("x")
        wait_for(lambda: owner.task_status("x").state is TaskState.RUNNING)
        other.cancel_task("x")
        wait_for(lambda: store.load("task:ctl:x", TaskAggregate).delivered, what="remote cancel")
        assert other.task_status("x").state is TaskState.CANCELED
        assert other.active_tasks() == []
    assert owner_runner.completions_of("x") == [TaskState.CANCELED]


def test_a_completion_callback_may_relaunch_its_task(store: Store) -> None:
    """on_status can relaunch the same id (a retry); the second run is a new run that completes."""
    runner = ScriptedRunner()
    relaunched = threading.Event()
    errors: list[Exception] = []
    with TaskController(store, "ctl", runner) as ctl:

        def retry(status: TaskStatus) -> None:
            try:
                ctl.launch_task("again", on_status=lambda _s: relaunched.set())
            except Exception as exc:
                errors.append(exc)

        ctl.launch_task("again", on_status=retry)
        assert relaunched.wait(15)
        wait_for(lambda: store.load("task:ctl:again", TaskAggregate).delivered)
    assert errors == []
    assert store.load("task:ctl:again", TaskAggregate).run == 2
    assert runner.completions_of("again") == [TaskState.COMPLETED, TaskState.COMPLETED]


def test_canceling_an_orphaned_task_adopts_it_and_ends_it_canceled(store: Store) -> None:
    """cancel_task on a task whose owner's lease expired ends it Canceled here without calling hooks."""
    runner = ScriptedRunner()
    with TaskController(store, "ctl", runner, lease=timedelta(hours=1)) as ctl:  # sweeps every 30 min
        store.save(TaskAggregate.launch("ctl", "o", "", "dead", utcnow() - timedelta(seconds=1)))
        ctl.cancel_task("o")
        wait_for(lambda: store.load("task:ctl:o", TaskAggregate).delivered)
        assert ctl.task_status("o").state is TaskState.CANCELED
    assert runner.hooks_of("o") == []
    assert runner.completions_of("o") == [TaskState.CANCELED]


def test_close_returns_while_a_hook_ignores_cancellation_and_its_late_writes_are_dropped(
    store: Store,
) -> None:
    """close(timeout) does not wait for a stuck hook; the hook's later writes record nothing."""
    gate = threading.Event()
    late: list[BaseException] = []

    def stubborn(ctx: CancelContext, task: ActiveTask) -> None:
        gate.wait(15)
        try:
            task.add_log_entry(logging.INFO, "too late")
        except TaskCanceled as exc:
            late.append(exc)

    runner = ScriptedRunner(running={"s": stubborn})
    ctl = TaskController(store, "ctl", runner)
    ctl.launch_task("s")
    wait_for(lambda: runner.hooks_of("s") == ["pending", "running"])
    ctl.close(timeout=0.2)
    assert not gate.is_set()
    released = len(store.stream("task:ctl:s"))
    assert type(store.stream("task:ctl:s")[-1]).__name__ == "TaskReleased"
    gate.set()
    wait_for(lambda: len(late) == 1, what="the stuck hook to give up")
    assert len(store.stream("task:ctl:s")) == released
    assert store.load("task:ctl:s", TaskAggregate).state is TaskState.RUNNING
    assert runner.completed == []
