from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from pydantic import BaseModel
from task_helpers import ScriptedRunner, block_until_cancelled, wait_for

from phaselog.adapters import Store
from phaselog.domain.errors import ConcurrencyConflict, NotFound, ValidationFailed
from phaselog.domain.events import utcnow
from phaselog.domain.task import (
    ControllerClosed,
    TaskAggregate,
    TaskAlreadyRunning,
    TaskCanceled,
    TaskClaimed,
    TaskState,
)
from phaselog.runtime.task_models import CancelContext, TaskStatus
from phaselog.runtime.task_runner import ActiveTask
from phaselog.runtime.tasks import TaskController


def fast_controller(store: Store, runner: ScriptedRunner) -> TaskController:
    """A controller with a short lease and a 50 ms progress interval."""
    return TaskController(
        store, "ctl", runner, lease=timedelta(seconds=2), progress_interval=timedelta(milliseconds=50)
    )


class Job(BaseModel):
    """Metadata model used by the tests."""

    size: int
    label: str = "x"


@pytest.fixture
def runner() -> ScriptedRunner:
    return ScriptedRunner()


@pytest.fixture
def controller(store: Store, runner: ScriptedRunner) -> Iterator[TaskController]:
    ctl = fast_controller(store, runner)
    yield ctl
    ctl.close()


def topics(store: Store, task_id: str, name: str = "ctl") -> list[str]:
    return [type(e).__name__ for e in store.stream(f"task:{name}:{task_id}")]


def finished(controller: TaskController, task_id: str) -> bool:
    """The task's run ended and its completion delivery is recorded."""
    agg = controller.store.load(f"task:{controller.name}:{task_id}", TaskAggregate)
    return agg.state.is_finished and agg.delivered


def test_completed_run_records_every_state_and_delivers_once(
    store: Store, controller: TaskController, runner: ScriptedRunner
) -> None:
    """A normal run goes Pending→Running→Completed, and hooks/callbacks fire exactly once."""
    statuses: list[TaskStatus] = []
    states: list[TaskState] = []
    controller.launch_task("t1", metadata=Job(size=3), on_status=statuses.append, on_state=states.append)
    wait_for(lambda: finished(controller, "t1"), what="t1 finished")
    status = controller.task_status("t1")
    assert status.state is TaskState.COMPLETED
    expected = [TaskState.PENDING, TaskState.RUNNING, TaskState.COMPLETED]
    assert [t.state for t in status.transitions] == expected
    assert runner.hooks_of("t1") == ["pending", "running"]
    assert runner.completions_of("t1") == [TaskState.COMPLETED]
    assert len(statuses) == 1
    assert statuses[0].state is TaskState.COMPLETED
    assert states == [TaskState.COMPLETED]
    assert Job.model_validate_json(status.metadata) == Job(size=3)
    assert topics(store, "t1")[-1] == "TaskCompletionDelivered"
    assert controller.list_tasks() == ["t1"]


def test_pending_error_fails_the_task_with_the_error_logged(store: Store, runner: ScriptedRunner) -> None:
    """An exception in the pending hook ends in Failed (never stuck in Pending) with the error logged."""

    def explode(ctx: CancelContext, task: ActiveTask) -> None:
        msg = "cannot prepare"
        raise RuntimeError(msg)

    runner.pending["p"] = explode
    with fast_controller(store, runner) as ctl:
        ctl.launch_task("p")
        wait_for(lambda: finished(ctl, "p"))
        status = ctl.task_status("p")
    assert status.state is TaskState.FAILED
    assert [t.state for t in status.transitions] == [TaskState.PENDING, TaskState.FAILED]
    assert status.logs[-1].level == logging.ERROR
    assert "RuntimeError: cannot prepare" in status.logs[-1].msg
    assert runner.hooks_of("p") == ["pending"]
    ((_tid, state, args),) = runner.completed
    assert state is TaskState.FAILED
    assert isinstance(args[0], RuntimeError)


def test_running_error_and_task_canceled_map_to_failed_and_canceled(
    store: Store, runner: ScriptedRunner
) -> None:
    """A running-hook error ends Failed; TaskCanceled from either hook ends Canceled."""

    def fail(ctx: CancelContext, task: ActiveTask) -> None:
        msg = "disk full"
        raise OSError(msg)

    def cancel(ctx: CancelContext, task: ActiveTask) -> None:
        msg = "not today"
        raise TaskCanceled(msg)

    runner.running["r-fail"] = fail
    runner.pending["p-cancel"] = cancel
    runner.running["r-cancel"] = cancel
    with fast_controller(store, runner) as ctl:
        for tid in ("r-fail", "p-cancel", "r-cancel"):
            ctl.launch_task(tid)
        wait_for(lambda: all(finished(ctl, t) for t in ("r-fail", "p-cancel", "r-cancel")))
        assert ctl.task_status("r-fail").state is TaskState.FAILED
        assert "OSError: disk full" in ctl.task_status("r-fail").logs[-1].msg
        assert ctl.task_status("p-cancel").state is TaskState.CANCELED
        assert ctl.task_status("r-cancel").state is TaskState.CANCELED
    assert runner.hooks_of("p-cancel") == ["pending"]


def test_cancel_task_cancels_a_running_task_and_ignores_finished_ones(
    store: Store, controller: TaskController, runner: ScriptedRunner
) -> None:
    """cancel_task ends a running task Canceled; on a finished task it writes nothing; unknown ids raise."""
    runner.running["long"] = block_until_cancelled
    controller.launch_task("long")
    wait_for(lambda: controller.task_status("long").state is TaskState.RUNNING)
    controller.cancel_task("long")
    wait_for(lambda: finished(controller, "long"))
    assert controller.task_status("long").state is TaskState.CANCELED
    assert "TaskCancelRequested" in topics(store, "long")
    before = topics(store, "long")
    controller.cancel_task("long")
    assert topics(store, "long") == before
    with pytest.raises(NotFound):
        controller.cancel_task("nope")


def test_relaunching_an_active_task_is_rejected_and_writes_nothing(
    store: Store, controller: TaskController, runner: ScriptedRunner
) -> None:
    """Launching an id whose run is Pending or Running raises TaskAlreadyRunning and records nothing."""
    runner.running["busy"] = block_until_cancelled
    controller.launch_task("busy")
    wait_for(lambda: controller.task_status("busy").state is TaskState.RUNNING)
    wait_for(lambda: topics(store, "busy")[-1] == "TaskStateChanged")
    before = topics(store, "busy")
    with pytest.raises(TaskAlreadyRunning):
        controller.launch_task("busy")
    with fast_controller(store, ScriptedRunner()) as other:
        with pytest.raises(TaskAlreadyRunning):
            other.launch_task("busy")
        assert other.active_tasks() == []
    after = topics(store, "busy")
    # only the owner's lease renewals (TaskClaimed) may have been appended meanwhile
    assert after[: len(before)] == before
    assert set(after[len(before) :]) <= {"TaskClaimed"}
    assert "TaskRelaunched" not in after


def test_relaunch_after_failed_keeps_logs_and_after_completed_starts_afresh(
    store: Store, controller: TaskController, runner: ScriptedRunner
) -> None:
    """Relaunch of a Failed task keeps its logs plus "restarting task"; of a Completed one resets them."""
    attempts: list[int] = []

    def flaky(ctx: CancelContext, task: ActiveTask) -> None:
        attempts.append(1)
        task.add_log_entry(logging.INFO, f"attempt {len(attempts)}")
        if len(attempts) == 1:
            msg = "first attempt fails"
            raise RuntimeError(msg)

    runner.running["f"] = flaky
    controller.launch_task("f", metadata={"n": 1})
    wait_for(lambda: finished(controller, "f"))
    controller.launch_task("f")
    wait_for(lambda: controller.task_status("f").state is TaskState.COMPLETED and finished(controller, "f"))
    status = controller.task_status("f")
    msgs = [entry.msg for entry in status.logs]
    assert msgs[0] == "attempt 1"
    assert "restarting task" in msgs
    assert msgs[-1] == "attempt 2"
    assert status.metadata == ""  # a relaunch takes the new launch's metadata: none here, as in the original
    controller.launch_task("f", metadata='{"n": 2}')
    wait_for(lambda: len(attempts) == 3 and finished(controller, "f"))
    status = controller.task_status("f")
    assert [entry.msg for entry in status.logs] == ["attempt 3"]
    all_states = [TaskState.PENDING, TaskState.RUNNING, TaskState.COMPLETED]
    assert [t.state for t in status.transitions] == all_states
    assert status.metadata == '{"n": 2}'
    assert store.load("task:ctl:f", TaskAggregate).run == 3


@pytest.mark.parametrize(
    "metadata",
    [object(), "not json {", {"when": object()}, 42, b"{}"],
    ids=["object", "bad-json", "unserialisable-dict", "int", "bytes"],
)
def test_invalid_metadata_raises_validation_failed_and_writes_nothing(
    store: Store, controller: TaskController, metadata: object
) -> None:
    """Metadata that is not a model, dict or JSON string is rejected before anything is recorded."""
    before = store.max_position()
    with pytest.raises(ValidationFailed):
        controller.launch_task("m", metadata=metadata)
    assert store.max_position() == before
    assert controller.list_tasks() == []


@pytest.mark.parametrize("task_id", ["", "two\nlines"])
def test_invalid_task_ids_are_rejected(store: Store, controller: TaskController, task_id: str) -> None:
    """Empty or non-printable task ids raise ValidationFailed and record nothing."""
    with pytest.raises(ValidationFailed):
        controller.launch_task(task_id)
    assert store.max_position() == 0


def test_unknown_task_status_raises_not_found(controller: TaskController) -> None:
    """task_status of an id never launched raises NotFound."""
    with pytest.raises(NotFound):
        controller.task_status("ghost")


def test_metadata_round_trips_as_model_dict_or_json(
    store: Store, controller: TaskController, runner: ScriptedRunner
) -> None:
    """load_task_metadata decodes model, dict and JSON-string metadata; no metadata gives None."""
    seen: dict[str, object] = {}

    def grab(ctx: CancelContext, task: ActiveTask) -> None:
        if task.task_id == "wrong":
            try:
                task.load_task_metadata(Job)
            except ValidationFailed as exc:
                seen["wrong"] = exc
            return
        seen[task.task_id] = task.load_task_metadata(Job)
        if task.task_id == "none":
            seen["none-dict"] = task.load_task_metadata(dict)

    for tid, md in [
        ("model", Job(size=1)),
        ("dict", {"size": 2}),
        ("json", '{"size": 3}'),
        ("none", None),
        ("wrong", {"size": "big"}),
    ]:
        runner.pending[tid] = grab
        controller.launch_task(tid, metadata=md)
    wait_for(lambda: len(seen) == 6)
    assert seen["model"] == Job(size=1)
    assert seen["dict"] == Job(size=2)
    assert seen["json"] == Job(size=3)
    assert seen["none"] is None
    assert seen["none-dict"] is None
    assert isinstance(seen["wrong"], ValidationFailed)


def test_progress_is_coalesced_and_the_final_value_is_durable(
    store: Store, controller: TaskController, runner: ScriptedRunner
) -> None:
    """Thousands of set_progress calls become a handful of events; the last value precedes the final state."""
    updates = 5000

    def busy(ctx: CancelContext, task: ActiveTask) -> None:
        for i in range(1, updates + 1):
            task.set_progress(i, updates)
        progress = task.get_progress()
        assert progress is not None
        assert progress.current == updates

    runner.running["p"] = busy
    controller.launch_task("p")
    wait_for(lambda: finished(controller, "p"))
    events = store.stream("task:ctl:p")
    names = [type(e).__name__ for e in events]
    progress_events = [e for e in events if type(e).__name__ == "TaskProgressed"]
    assert 1 <= len(progress_events) < 50
    last_progress = max(i for i, n in enumerate(names) if n == "TaskProgressed")
    final_state = max(i for i, n in enumerate(names) if n == "TaskStateChanged")
    assert last_progress < final_state
    status = controller.task_status("p")
    assert status.progress is not None
    assert (status.progress.current, status.progress.total) == (updates, updates)


def test_progress_is_flushed_in_the_background_while_the_runner_waits(
    store: Store, controller: TaskController, runner: ScriptedRunner
) -> None:
    """Progress set by a runner that then blocks reaches the store without any further call."""
    release = threading.Event()

    def report_then_wait(ctx: CancelContext, task: ActiveTask) -> None:
        task.set_progress(7, 10)
        release.wait(15)

    runner.running["bg"] = report_then_wait
    controller.launch_task("bg")
    wait_for(lambda: store.load("task:ctl:bg", TaskAggregate).progress == (7, 10), what="progress flushed")
    release.set()
    wait_for(lambda: finished(controller, "bg"))


def test_a_stale_run_never_overwrites_the_task_after_losing_its_claim(
    store: Store, controller: TaskController, runner: ScriptedRunner
) -> None:
    """After another owner claims the task, the old run's writes raise TaskCanceled and record nothing."""
    claimed = threading.Event()
    outcome: dict[str, object] = {}

    def slow(ctx: CancelContext, task: ActiveTask) -> None:
        claimed.wait(15)
        try:
            task.add_log_entry(logging.INFO, "should not land")
        except TaskCanceled as exc:
            outcome["error"] = exc
        outcome["reason"] = ctx.reason

    runner.running["s"] = slow
    controller.launch_task("s")
    wait_for(lambda: runner.hooks_of("s") == ["pending", "running"])
    wait_for(lambda: controller.task_status("s").state is TaskState.RUNNING)
    for _ in range(20):  # the owner renews concurrently: retry on conflict like any writer
        agg = store.load("task:ctl:s", TaskAggregate)
        agg.trigger(TaskClaimed, run=agg.run, owner="intruder", expires_at=utcnow() + timedelta(hours=1))
        try:
            store.save(agg)
            break
        except ConcurrencyConflict:
            continue
    claimed.set()
    wait_for(lambda: "reason" in outcome and "s" not in controller.active_tasks())
    assert isinstance(outcome["error"], TaskCanceled)
    assert outcome["reason"] == "lost"
    agg = store.load("task:ctl:s", TaskAggregate)
    assert agg.state is TaskState.RUNNING
    assert agg.owner == "intruder"
    assert all(msg != "should not land" for _lvl, msg, _ts in agg.logs)
    assert runner.completed == []


def test_close_leaves_running_tasks_resumable_and_a_new_controller_resumes_them(
    store: Store, runner: ScriptedRunner
) -> None:
    """close() returns promptly without canceling; the next controller resumes the run in its state."""
    runner.running["r"] = block_until_cancelled
    runner.pending["p"] = block_until_cancelled
    ctl = fast_controller(store, runner)
    ctl.launch_task("r", metadata={"size": 5})
    ctl.launch_task("p")
    wait_for(lambda: runner.hooks_of("r") == ["pending", "running"] and runner.hooks_of("p") == ["pending"])
    ctl.close()
    for tid in ("r", "p"):
        agg = store.load(f"task:ctl:{tid}", TaskAggregate)
        assert agg.owner is None
        assert agg.state.is_active
    assert runner.completed == []
    with pytest.raises(ControllerClosed):
        ctl.launch_task("late")
    second = ScriptedRunner()
    with fast_controller(store, second) as again:
        wait_for(lambda: finished(again, "r") and finished(again, "p"))
        assert again.task_status("r").state is TaskState.COMPLETED
    assert second.hooks_of("r") == ["running"]
    assert second.hooks_of("p") == ["pending", "running"]


def test_completion_is_not_redelivered_by_a_later_controller(store: Store, runner: ScriptedRunner) -> None:
    """A new controller in the same process does not call completion hooks again for a delivered run."""
    calls: list[TaskStatus] = []
    with fast_controller(store, runner) as ctl:
        ctl.launch_task("once", on_status=calls.append)
        wait_for(lambda: finished(ctl, "once"))
    second = ScriptedRunner()
    with fast_controller(store, second) as again:
        assert again.active_tasks() == []
    assert len(calls) == 1
    assert runner.completions_of("once") == [TaskState.COMPLETED]
    assert second.completed == []


def test_an_undelivered_completion_is_delivered_by_the_next_controller(store: Store) -> None:
    """A run that ended but whose delivery was not recorded gets on_task_completed once, state unchanged."""
    now_agg = TaskAggregate.launch("ctl", "u", "", "dead-owner", utcnow() - timedelta(seconds=1))
    now_agg.change_state(1, "dead-owner", TaskState.RUNNING)
    now_agg.change_state(1, "dead-owner", TaskState.FAILED)
    store.save(now_agg)
    runner = ScriptedRunner()
    with fast_controller(store, runner) as ctl:
        wait_for(lambda: runner.completions_of("u") == [TaskState.FAILED])
        wait_for(lambda: store.load("task:ctl:u", TaskAggregate).delivered)
        assert ctl.task_status("u").state is TaskState.FAILED
    assert runner.calls == []
