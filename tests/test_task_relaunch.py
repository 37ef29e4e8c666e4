from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from task_helpers import ScriptedRunner, block_until_cancelled, wait_for

from phaselog.adapters import Store
from phaselog.domain.events import utcnow
from phaselog.domain.task import TaskAggregate, TaskAlreadyRunning, TaskState
from phaselog.domain.task_state import RELAUNCH_RESETS
from phaselog.runtime.task_models import CancelContext, Progress
from phaselog.runtime.task_runner import ActiveTask
from phaselog.runtime.tasks import TaskController

P, R, C, F, X = (
    TaskState.PENDING,
    TaskState.RUNNING,
    TaskState.COMPLETED,
    TaskState.FAILED,
    TaskState.CANCELED,
)


def _ended(state: TaskState) -> TaskAggregate:
    """A run-1 task with progress (2, 4), one log entry and metadata '{"n":1}', ended in ``state``."""
    agg = TaskAggregate.launch("ctl", "t", '{"n":1}', "a", utcnow() + timedelta(seconds=10))
    agg.change_state(1, "a", R)
    agg.set_progress(1, "a", 2, 4)
    agg.log(1, "a", logging.INFO, "run 1")
    agg.change_state(1, "a", state)
    return agg


@pytest.mark.parametrize("previous", sorted(RELAUNCH_RESETS), ids=lambda s: s.name.title())
def test_each_row_of_the_reset_table_is_what_a_relaunch_keeps(previous: TaskState) -> None:
    """A relaunch keeps or clears progress, logs and transitions exactly as its RELAUNCH_RESETS row says."""
    agg = _ended(previous)
    transitions_before = [state for state, _ in agg.transitions]
    agg.relaunch("", "a", utcnow() + timedelta(seconds=10))
    row = RELAUNCH_RESETS[previous]
    assert agg.run == 2
    assert agg.state is P
    assert agg.metadata == ""  # always the new launch's metadata, empty when none is given
    assert agg.progress == ((2, 4) if row.progress == "keep" else None)
    msgs = [msg for _level, msg, _at in agg.logs]
    assert msgs == (["run 1", "restarting task"] if row.logs == "keep+append" else [])
    states = [state for state, _ in agg.transitions]
    assert states == ([*transitions_before, P] if row.transitions == "keep" else [P])


def test_the_table_has_the_originals_rows() -> None:
    """Failed keeps logs (+ restart entry) and transitions; Canceled keeps progress; Completed nothing."""
    table = {state.name: (r.progress, r.logs, r.transitions) for state, r in RELAUNCH_RESETS.items()}
    assert table == {
        "FAILED": ("clear", "keep+append", "keep"),
        "CANCELED": ("keep", "clear", "clear"),
        "COMPLETED": ("clear", "clear", "clear"),
    }


@pytest.fixture
def runner() -> ScriptedRunner:
    return ScriptedRunner()


@pytest.fixture
def controller(store: Store, runner: ScriptedRunner) -> Iterator[TaskController]:
    ctl = TaskController(
        store, "ctl", runner, lease=timedelta(seconds=5), progress_interval=timedelta(milliseconds=50)
    )
    yield ctl
    ctl.close()


def _done(controller: TaskController, task_id: str, run: int) -> bool:
    agg = controller.store.load(f"task:ctl:{task_id}", TaskAggregate)
    return agg.run == run and agg.state.is_finished and agg.delivered


def test_a_canceled_task_relaunched_resumes_from_its_progress(
    controller: TaskController, runner: ScriptedRunner
) -> None:
    """After Canceled the next run sees the saved progress, so a resuming runner finishes the rest once."""
    processed: list[int] = []
    halfway = threading.Event()

    def work(ctx: CancelContext, task: ActiveTask) -> None:
        progress = task.get_progress()
        start = progress.current if progress is not None else 0
        for item in range(start + 1, 11):
            processed.append(item)
            task.set_progress(item, 10)
            if item == 5 and not halfway.is_set():
                task.add_log_entry(logging.INFO, "halfway")
                halfway.set()
                block_until_cancelled(ctx, task)

    runner.running["crawl"] = work
    controller.launch_task("crawl", metadata={"n": 1})
    assert halfway.wait(30)
    controller.cancel_task("crawl")
    wait_for(lambda: _done(controller, "crawl", 1), what="the canceled run")
    assert controller.task_status("crawl").state is X
    controller.launch_task("crawl", metadata={"n": 2})
    wait_for(lambda: _done(controller, "crawl", 2), what="the resumed run")
    status = controller.task_status("crawl")
    assert status.state is C
    assert processed == list(range(1, 11))  # items 1-5, then 6-10: nothing twice, nothing skipped
    assert status.progress == Progress(current=10, total=10)
    assert status.logs == []  # the canceled run's logs are cleared
    assert [t.state for t in status.transitions] == [P, R, C]
    assert status.metadata == '{"n":2}'


def test_a_failed_task_relaunched_keeps_its_logs_and_transitions_but_not_progress_or_metadata(
    controller: TaskController, runner: ScriptedRunner
) -> None:
    """After Failed the next run starts with no progress and no metadata but keeps the history."""
    seen: list[Progress | None] = []

    def flaky(ctx: CancelContext, task: ActiveTask) -> None:
        seen.append(task.get_progress())
        task.set_progress(3, 4)
        task.add_log_entry(logging.INFO, f"attempt {len(seen)}")
        if len(seen) == 1:
            msg = "first attempt fails"
            raise RuntimeError(msg)

    runner.running["f"] = flaky
    controller.launch_task("f", metadata={"n": 1})
    wait_for(lambda: _done(controller, "f", 1))
    controller.launch_task("f")
    wait_for(lambda: _done(controller, "f", 2))
    status = controller.task_status("f")
    assert seen == [None, None]
    msgs = [entry.msg for entry in status.logs]
    assert msgs[0] == "attempt 1"
    assert msgs.index("restarting task") < msgs.index("attempt 2") == len(msgs) - 1
    assert [t.state for t in status.transitions] == [P, R, F, P, R, C]
    assert status.metadata == ""


def test_a_completed_task_relaunched_starts_afresh(
    controller: TaskController, runner: ScriptedRunner
) -> None:
    """After Completed nothing is kept: no progress, logs, transitions or metadata of the old run."""
    seen: list[Progress | None] = []

    def once(ctx: CancelContext, task: ActiveTask) -> None:
        seen.append(task.get_progress())
        task.set_progress(1, 1)
        task.add_log_entry(logging.INFO, f"run {len(seen)}")

    runner.running["c"] = once
    controller.launch_task("c", metadata={"n": 1})
    wait_for(lambda: _done(controller, "c", 1))
    controller.launch_task("c")
    wait_for(lambda: _done(controller, "c", 2))
    status = controller.task_status("c")
    assert seen == [None, None]
    assert [entry.msg for entry in status.logs] == ["run 2"]
    assert [t.state for t in status.transitions] == [P, R, C]
    assert status.metadata == ""


def test_relaunching_an_active_task_is_rejected_and_writes_nothing(
    store: Store, controller: TaskController, runner: ScriptedRunner
) -> None:
    """The original's "Running: keep everything" row is a resume; a launch of an active run is refused."""
    runner.running["busy"] = block_until_cancelled
    controller.launch_task("busy")
    assert runner.started.wait(30)
    before = len(store.stream("task:ctl:busy"))
    with pytest.raises(TaskAlreadyRunning):
        controller.launch_task("busy", metadata={"n": 2})
    assert len(store.stream("task:ctl:busy")) == before
    controller.cancel_task("busy")
    wait_for(lambda: _done(controller, "busy", 1))
