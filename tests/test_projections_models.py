"""The four built-in read models fold the real plugin, task, plan and state events."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from phaselog.adapters import Store
from phaselog.domain.plan import PlanFailed
from phaselog.projections.base import event_data
from phaselog.projections.runner import Projections, default_projections
from phaselog.runtime.plan_state import GenericStep
from phaselog.runtime.plans import Plan
from phaselog.runtime.recoverable import SyncRecoverableState
from phaselog.runtime.tasks import TaskController


class Settings(BaseModel):
    """Plugin state and recoverable state used below."""

    level: int = 0
    name: str = "x"


@pytest.fixture
def views(store: Store) -> Iterator[Projections]:
    projections = Projections(store)
    yield projections
    projections.close()


def _matches_fold(store: Store, views: Projections) -> None:
    events = [event_data(store.app.mapper, n) for n in store.iter_notifications()]
    for projection in default_projections():
        assert views[projection.name].all() == projection.fold(events), projection.name
    views.rebuild()  # replays only each view's topics, then swaps in
    for projection in default_projections():
        assert views[projection.name].all() == projection.fold(events), projection.name
    assert views.position() == store.max_position()


def test_plugin_phases(store: Store, views: Projections) -> None:
    """PluginPhases shows phase, since, reason, forced flag, retry attempts and state version."""
    machine = store.plugins.machine("cam")
    machine.transition_to("Installing", "install")
    machine.transition_to("Installed", "done")
    machine.retry.advance()
    machine.retry.advance()
    machine.handle(lambda sm: sm.put(3, Settings(level=1)))
    machine.force_phase("Failed", "operator")
    store.plugins.machine("mic").transition_to("Installing", "install")
    views.wait(store.max_position())
    row = views.plugin_phases.get("cam")
    assert row is not None
    assert (row["phase"], row["forced"], row["retry_attempts"], row["state_version"]) == ("Failed", 1, 2, 3)
    assert row["reason"].startswith("force: ")
    assert row["forced"] is True  # a boolean on every backend, not 1
    assert row["state_written"] is True
    assert row["transitions"] == 3
    assert views.plugin_phases.counts() == {"Failed": 1, "Installing": 1}
    assert [r["plugin_id"] for r in views.plugin_phases.list(phase="Installing")] == ["mic"]
    _matches_fold(store, views)


class _Runner:
    def on_task_pending(self, _ctx: Any, task: Any) -> None:
        task.add_log_entry(logging.INFO, "preparing")

    def on_task_running(self, _ctx: Any, task: Any) -> None:
        task.set_progress(5, 5)
        task.add_log_entry(logging.WARNING, "all done")

    def on_task_completed(self, ctx: Any, task: Any, state: Any, *args: Any) -> None:
        pass


def test_task_statuses(store: Store, views: Projections) -> None:
    """TaskStatuses shows controller, state, progress and the last log line of each task."""
    done = threading.Event()
    controller = TaskController(store, "billing", _Runner(), progress_interval=timedelta(0))
    try:
        controller.launch_task("t1", metadata={"n": 1}, on_status=lambda _status: done.set())
        assert done.wait(30)
    finally:
        controller.close()
    views.wait(store.max_position())
    row = views.task_statuses.get("t1")
    assert row is not None
    assert row == views.task_statuses.get("billing:t1")
    assert (row["controller"], row["state_name"], row["state"]) == ("billing", "Completed", 3)
    assert (row["progress_current"], row["progress_total"]) == (5, 5)
    assert (row["last_log"], row["last_log_level"]) == ("all done", logging.WARNING)
    assert views.task_statuses.counts() == {"Completed": 1}
    assert len(views.task_statuses.list(state=3)) == 1
    assert (row["delivered"], row["cancel_requested"]) == (True, False)
    assert all(isinstance(row[c], bool) for c in ("delivered", "cancel_requested"))
    assert len(views.task_statuses.list(delivered=True)) == 1  # booleans filter as booleans
    assert views.task_statuses.list(cancel_requested=True) == []
    _matches_fold(store, views)


def test_plan_runs(store: Store, views: Projections) -> None:
    """PlanRuns shows the latest run's status, the succeeded steps and each step error."""

    def boom(_ctx: Any, _state: Any) -> None:
        msg = "disk full"
        raise RuntimeError(msg)

    plan = Plan(store, "deploy").add_step(GenericStep("fetch")).add_step(GenericStep("install", exec=boom))
    with pytest.raises(PlanFailed):
        plan.execute()
    Plan(store, "ok").add_step(GenericStep("only")).execute()
    views.wait(store.max_position())
    row = views.plan_runs.get("deploy")
    assert row is not None
    assert (row["status"], row["run"], row["succeeded_steps"]) == ("failed", 1, ["fetch"])
    assert row["errors"] == [{"step": "install", "type": "RuntimeError", "message": "disk full"}]
    assert views.plan_runs.counts() == {"failed": 1, "succeeded": 1}
    _matches_fold(store, views)


def test_recoverable_states(store: Store, views: Projections) -> None:
    """RecoverableStates shows each key's current value JSON, and resets."""
    log = logging.getLogger("test")
    state = SyncRecoverableState(
        default_state=Settings(),
        persist_state_key="cfg",
        persistence_enabled=True,
        persist_state_kvs_name="app",
        logger=log,
        store=store,
    )
    state.initialize()
    state.current_value.level = 7
    state.persist_state()
    other = SyncRecoverableState(
        default_state=Settings(), persist_state_key="tmp", persistence_enabled=True, logger=log, store=store
    )
    other.initialize()
    other.persist_state()
    other.reset()
    views.wait(store.max_position())
    row = views.recoverable_states.get("app:cfg")
    assert row is not None
    assert row == views.recoverable_states.get("cfg")
    assert (row["kvs"], row["key"], row["value"], row["cleared"]) == (
        "app",
        "cfg",
        {"level": 7, "name": "x"},
        0,
    )
    tmp = views.recoverable_states.get("tmp")
    assert tmp is not None
    assert (tmp["cleared"], tmp["resets"]) == (1, 1)
    assert (row["cleared"], tmp["cleared"]) == (False, True)
    assert isinstance(row["cleared"], bool)
    assert isinstance(tmp["cleared"], bool)
    assert views.recoverable_states.counts() == {"app": 1, "default": 1}
    _matches_fold(store, views)
