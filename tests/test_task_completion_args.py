from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from task_helpers import ScriptedRunner, wait_for

from phaselog.adapters import Store
from phaselog.domain.task import TaskAggregate, TaskCanceled, TaskState
from phaselog.runtime.task_models import CancelContext
from phaselog.runtime.task_runner import ActiveTask
from phaselog.runtime.tasks import TaskController


class Recording(ScriptedRunner):
    """Also records the context each on_task_completed call received."""

    def __init__(self) -> None:
        super().__init__()
        self.contexts: list[object] = []

    def on_task_completed(self, ctx: CancelContext, task: ActiveTask, state: TaskState, *args: Any) -> None:
        """Record the context, then the end state and arguments."""
        self.contexts.append(ctx)
        super().on_task_completed(ctx, task, state, *args)


@pytest.fixture
def runner() -> Recording:
    return Recording()


@pytest.fixture
def controller(store: Store, runner: Recording) -> Iterator[TaskController]:
    ctl = TaskController(store, "ctl", runner, lease=timedelta(seconds=10))
    yield ctl
    ctl.close()


def _cancel(_ctx: CancelContext, _task: ActiveTask) -> None:
    msg = "the runner gives up"
    raise TaskCanceled(msg)


def _fail(_ctx: CancelContext, _task: ActiveTask) -> None:
    msg = "broken"
    raise RuntimeError(msg)


def test_only_a_failed_task_gets_its_exception_in_on_task_completed(
    store: Store, controller: TaskController, runner: Recording
) -> None:
    """on_task_completed gets (exception,) after Failed, and no extra argument after Canceled or Completed."""
    runner.running.update({"x": _cancel, "f": _fail})
    for task_id in ("x", "f", "c"):
        controller.launch_task(task_id)
    wait_for(lambda: all(store.load(f"task:ctl:{t}", TaskAggregate).delivered for t in "xfc"))
    by_id = {tid: (state, args) for tid, state, args in runner.completed}
    assert by_id["x"] == (TaskState.CANCELED, ())
    assert by_id["c"] == (TaskState.COMPLETED, ())
    state, args = by_id["f"]
    assert state is TaskState.FAILED
    assert len(args) == 1
    assert isinstance(args[0], RuntimeError)
    assert str(args[0]) == "broken"
    assert all(isinstance(ctx, CancelContext) for ctx in runner.contexts)
    assert len(runner.contexts) == 3
