from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from task_helpers import ScriptedRunner, wait_for

from phaselog.adapters import Store
from phaselog.domain.task import TaskAggregate, TaskAlreadyRunning, TaskState
from phaselog.runtime.task_models import CancelContext
from phaselog.runtime.task_runner import ActiveTask
from phaselog.runtime.tasks import TaskController

# Upper bound of every wait here, never reached when the code is right (tools/mutation.sh
# shortens it so that a mutant which makes a hook wait fails fast).
WAIT = float(os.environ.get("PHASELOG_TEST_WAIT", "30"))
P, R, C, X = TaskState.PENDING, TaskState.RUNNING, TaskState.COMPLETED, TaskState.CANCELED


@pytest.fixture
def runner() -> ScriptedRunner:
    return ScriptedRunner()


@pytest.fixture
def controller(store: Store, runner: ScriptedRunner) -> Iterator[TaskController]:
    ctl = TaskController(store, "ctl", runner, lease=timedelta(seconds=10))
    yield ctl
    ctl.close()


def _delivered(controller: TaskController, task_id: str, run: int = 1) -> bool:
    agg = controller.store.load(f"task:ctl:{task_id}", TaskAggregate)
    return agg.run == run and agg.state.is_finished and agg.delivered


class Gate:
    """A pending hook that announces it runs, then waits (bounded) until the test lets it return."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, _ctx: CancelContext, _task: ActiveTask) -> None:
        self.entered.set()
        assert self.release.wait(WAIT), "the test never released the pending hook"


def test_a_cancel_during_the_pending_hook_ends_canceled_without_running(
    controller: TaskController, runner: ScriptedRunner
) -> None:
    """The pending hook returns normally after cancel_task: the task ends Canceled, never Running."""
    gate = Gate()
    runner.pending["p"] = gate
    controller.launch_task("p")
    assert gate.entered.wait(WAIT)
    controller.cancel_task("p")
    gate.release.set()
    wait_for(lambda: _delivered(controller, "p"), what="the canceled run")
    status = controller.task_status("p")
    assert status.state is X
    assert [t.state for t in status.transitions] == [P, X]
    assert runner.hooks_of("p") == ["pending"]
    assert runner.completions_of("p") == [X]


def test_relaunching_a_pending_task_is_refused_and_writes_nothing(
    store: Store, controller: TaskController, runner: ScriptedRunner
) -> None:
    """Reset table, Pending row: a launch of an id whose run is still Pending raises and records nothing."""
    gate = Gate()
    runner.pending["p"] = gate
    controller.launch_task("p", metadata={"n": 1})
    assert gate.entered.wait(WAIT)
    assert controller.task_status("p").state is P
    before = len(store.stream("task:ctl:p"))
    with pytest.raises(TaskAlreadyRunning):
        controller.launch_task("p", metadata={"n": 2})
    assert len(store.stream("task:ctl:p")) == before
    gate.release.set()
    wait_for(lambda: _delivered(controller, "p"), what="the first run")
    status = controller.task_status("p")
    assert (status.state, status.metadata) == (C, '{"n":1}')
    assert [t.state for t in status.transitions] == [P, R, C]
    assert store.load("task:ctl:p", TaskAggregate).run == 1
