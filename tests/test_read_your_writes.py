"""Read your own writes: every command's committed position, and wait_for on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from projections_support import Ledger, Picky, open_account
from pydantic import BaseModel
from task_helpers import WAIT_LIMIT, ScriptedRunner
from task_helpers import wait_for as poll

from phaselog.adapters import Store, open_store
from phaselog.aio import AsyncTaskController, open_async_store
from phaselog.domain.errors import ValidationFailed
from phaselog.domain.plugin import PluginPhase
from phaselog.domain.task import TaskState
from phaselog.projections import ProjectionHalted, Projections, ProjectionTimeout
from phaselog.runtime.plan_state import GenericStep, PlanContext, PlanState
from phaselog.runtime.plans import Plan
from phaselog.runtime.recoverable import SyncRecoverableState
from phaselog.runtime.task_models import CancelContext
from phaselog.runtime.task_runner import ActiveTask
from phaselog.runtime.tasks import TaskController

from horizon_support import held_append
from support_events import open_counter

P = PluginPhase
LOG = logging.getLogger("test.read_your_writes")


class Tally(BaseModel):
    """A recoverable state's model."""

    count: int = 0


@pytest.fixture
def views(store: Store) -> Iterator[Projections]:
    """The default read models of the store, closed after the test."""
    opened = Projections(store)
    try:
        yield opened
    finally:
        opened.close()


def _positions(views: Projections) -> dict[str, int]:
    return {r["name"]: r["position"] for r in views.status()}


def test_save_returns_the_position_it_committed(store: Store) -> None:
    """save().position is the store's newest position after the save, and 0 when nothing was pending."""
    first = store.save(open_counter("c1"))
    assert first.position == store.max_position() == 1
    counter = open_counter("c2")
    counter.add(1)
    counter.add(2)
    saved = store.save(counter, open_counter("c3"))
    assert saved.position == store.max_position()
    assert saved.position == max(r.notification.id for r in saved)
    assert store.save(counter).position == 0  # nothing pending: nothing committed
    assert store.horizon().position == store.max_position()


def test_plugin_objects_carry_the_position_of_their_last_command(store: Store) -> None:
    """A machine's position follows its creation and writes; plugins.handle moves the service's."""
    assert store.plugins.position == 0
    machine = store.plugins.machine("cam")
    assert machine.position == store.plugins.position == store.max_position()
    machine.transition_to(P.INSTALLING, "go")
    assert machine.position == store.max_position()
    machine.retry.advance()
    assert machine.position == store.max_position()
    machine.handle(lambda state: state.put(1, Tally(count=1)))
    assert machine.position == store.max_position()
    store.plugins.handle("mic", lambda state: state.put(1, Tally(count=2)))
    assert store.plugins.position == store.max_position() > machine.position
    before = machine.position
    assert store.plugins.machine("cam").position == 0  # loaded, not written: nothing committed by it
    assert machine.position == before
    store.plugins.handle("mic", lambda _state: None)  # wrote nothing
    assert store.plugins.position == store.max_position()


def test_task_objects_carry_the_position_of_their_commands(store: Store, views: Projections) -> None:
    """The controller's position covers its launch; a run's covers its end state, which wait_for shows."""
    ended: dict[str, int] = {}

    class Runner(ScriptedRunner):
        def on_task_completed(
            self, ctx: CancelContext, task: ActiveTask, state: TaskState, *args: Any
        ) -> None:
            ended[task.task_id] = task.position
            super().on_task_completed(ctx, task, state, *args)

    runner = Runner()
    with TaskController(store, "jobs", runner) as controller:
        assert controller.position == 0
        controller.launch_task("t1")
        launched = controller.position
        assert 0 < launched <= store.max_position()
        views.wait_for(launched, timeout=WAIT_LIMIT, models=["task_statuses"])
        assert views.task_statuses.get("jobs:t1") is not None
        poll(lambda: "t1" in ended, what="the run's end")
        assert ended["t1"] > launched
        views.wait_for(ended["t1"], timeout=WAIT_LIMIT, models=["task_statuses"])
        row = views.task_statuses.get("jobs:t1")
        assert row is not None
        assert row["state_name"] == "Completed"


def test_plan_position_covers_its_runs_and_state_writes(store: Store, views: Projections) -> None:
    """plan.position is the newest position of its commits; wait_for(plan.position) shows the finished run."""

    def exec_hook(ctx: PlanContext, state: PlanState) -> None:
        state["seen"] = True

    plan = Plan(store, "deploy").add_step(GenericStep("only", exec=exec_hook))
    assert plan.position == 0
    plan.execute()
    assert plan.position == store.max_position()
    views.wait_for(plan.position, timeout=WAIT_LIMIT, models=["plan_runs"])
    row = views.plan_runs.get("deploy")
    assert row is not None
    assert row["status"] == "succeeded"
    plan.state["after"] = 1
    assert plan.position == store.max_position()


def test_recoverable_state_position_follows_persists_and_resets(store: Store, views: Projections) -> None:
    """A recoverable state's position is that of its last persist or reset, and wait_for shows the value."""
    state = SyncRecoverableState(
        default_state=Tally(),
        persist_state_key="tally",
        persistence_enabled="explicit_only",
        logger=LOG,
        store=store,
    )
    state.initialize()
    assert state.position == 0
    state.current_value.count = 3
    state.persist_state()
    assert state.position == store.max_position()
    views.wait_for(state.position, timeout=WAIT_LIMIT, models=["recoverable_states"])
    row = views.recoverable_states.get("default:tally")
    assert row is not None
    assert row["value"] == {"count": 3}
    persisted = state.position
    state.persist_state()  # unchanged: nothing recorded
    assert state.position == persisted
    state.reset()
    assert state.position == store.max_position() > persisted


@pytest.mark.parametrize("follow", [False, True], ids=["no-follower", "follower"])
def test_wait_for_returns_once_the_models_applied_the_position(
    store: Store, views: Projections, follow: bool
) -> None:
    """wait_for(machine.position) returns with the write visible, whether or not a follower runs."""
    if follow:
        views.start()
    for step, phase in enumerate((P.INSTALLING, P.INSTALLED, P.VALIDATING)):
        machine = store.plugins.machine("cam")
        machine.transition_to(phase, f"step {step}")
        views.wait_for(machine.position, timeout=WAIT_LIMIT)
        row = views.plugin_phases.get("cam")
        assert row is not None
        assert row["phase"] == phase.value
        assert min(_positions(views).values()) >= machine.position


def test_wait_for_named_models_catches_up_only_those(store: Store, views: Projections) -> None:
    """With models=[...] and no follower, wait_for folds the named read models and leaves the others."""
    machine = store.plugins.machine("cam")
    machine.transition_to(P.INSTALLING, "go")
    views.wait_for(machine.position, timeout=WAIT_LIMIT, models=["plugin_phases"])
    positions = _positions(views)
    assert positions["plugin_phases"] >= machine.position
    assert positions["task_statuses"] < machine.position
    views.wait(machine.position, timeout=WAIT_LIMIT)  # wait() is wait_for on every read model
    assert min(_positions(views).values()) >= machine.position


def test_wait_for_timeout_names_each_model_behind_and_its_position(store: Store, views: Projections) -> None:
    """A position never written times out naming the chosen models behind, their positions and the head."""
    machine = store.plugins.machine("cam")
    head = store.max_position()
    with pytest.raises(ProjectionTimeout) as caught:
        views.wait_for(head + 5, timeout=0.2, models=["plugin_phases", "plan_runs"])
    error = caught.value
    assert isinstance(error, TimeoutError)
    assert error.position == head + 5
    assert error.behind == {"plugin_phases": machine.position, "plan_runs": machine.position}
    assert error.holder is None
    text = str(error)
    assert f"plugin_phases at {machine.position}" in text
    assert f"plan_runs at {machine.position}" in text
    assert "task_statuses" not in text
    assert f"newest committed position is {head}" in text
    with pytest.raises(ProjectionTimeout, match="task_statuses at"):
        views.wait(head + 5, timeout=0.05)


def test_wait_for_refuses_malformed_input(store: Store, views: Projections) -> None:
    """wait_for refuses a negative or non-int position and a bare, empty or unknown model list."""
    for position in (-1, "3", True, None):
        with pytest.raises(ValidationFailed, match="position"):
            views.wait_for(position, timeout=0.1)  # type: ignore[arg-type]
    for models in ("plugin_phases", [], ["nobody"]):
        with pytest.raises(ValidationFailed):
            views.wait_for(0, timeout=0.1, models=models)
    views.wait_for(0, timeout=0.1)  # nothing to wait for
    assert store.max_position() == 0


def test_wait_for_raises_halted_only_for_a_chosen_model(store: Store) -> None:
    """A halted read model raises ProjectionHalted when waited for; waiting for the others still returns."""
    open_account(store, "a", deposits=(1, 13, 2))
    picky = Picky()
    views = Projections(store, [picky, Ledger()], on_error="stop", batch_size=1)
    try:
        head = store.max_position()
        views.wait_for(head, timeout=WAIT_LIMIT, models=["ledger"])
        with pytest.raises(ProjectionHalted, match="unlucky amount"):
            views.wait_for(head, timeout=WAIT_LIMIT, models=["picky"])
        with pytest.raises(ProjectionHalted):
            views.wait(head, timeout=WAIT_LIMIT)
        assert views["ledger"].get("a") is not None
    finally:
        views.close()


def _pg_store(make_url: Callable[[str], str]) -> tuple[Store, str]:
    url = make_url("postgresql")
    return open_store(url), url


@pytest.mark.parametrize("follow", [False, True], ids=["no-follower", "follower"])
def test_wait_for_names_the_append_holding_the_horizon_then_returns(
    make_url: Callable[[str], str], follow: bool
) -> None:
    """On PostgreSQL a held append makes wait_for time out naming its pid; once it commits, it returns."""
    store, url = _pg_store(make_url)
    views = Projections(store)
    try:
        if follow:
            views.start()
        machine = store.plugins.machine("cam")
        views.wait_for(machine.position, timeout=WAIT_LIMIT)
        with held_append(store, url, "held-1") as conn:
            pid = conn.info.backend_pid
            machine.transition_to(P.INSTALLING, "behind the held append")
            with pytest.raises(ProjectionTimeout) as caught:
                views.wait_for(machine.position, timeout=0.5, models=["plugin_phases"])
            error = caught.value
            assert error.holder is not None
            assert error.holder.pid == pid
            assert f"pid {pid}" in str(error)
            assert "'held-append'" in str(error)
            assert f"pg_terminate_backend({pid})" in str(error)
            assert "plugin_phases at" in str(error)
            row = views.plugin_phases.get("cam")
            assert row is not None
            assert row["phase"] == P.UNINSTALLED.value  # the transition is committed but not yet readable
            conn.commit()
        views.wait_for(machine.position, timeout=WAIT_LIMIT, models=["plugin_phases"])
        row = views.plugin_phases.get("cam")
        assert row is not None
        assert row["phase"] == P.INSTALLING.value
        assert store.horizon().in_flight == ()
    finally:
        views.close()
        store.close()


def test_async_objects_and_wait_for_read_their_own_writes(store_url: str) -> None:
    """Async save, machines, plugins and the task controller carry positions; await wait_for shows them."""

    async def main() -> None:
        async with open_async_store(store_url) as store:
            saved = await store.save(open_counter("c1"))
            assert saved.position == await store.max_position()
            machine = await store.plugins.machine("cam")
            assert machine.position == store.plugins.position == await store.max_position()
            await machine.transition_to(P.INSTALLING, "go")
            assert machine.position == await store.max_position()
            await store.plugins.handle("mic", lambda state: state.put(1, Tally(count=2)))
            assert store.plugins.position == await store.max_position()
            await store.projections.wait_for(machine.position, timeout=WAIT_LIMIT, models=["plugin_phases"])
            row = await store.projections.plugin_phases.get("cam")
            assert row is not None
            assert row["phase"] == "Installing"
            with pytest.raises(ProjectionTimeout, match="task_statuses at"):
                await store.projections.wait_for(
                    await store.max_position() + 3, timeout=0.2, models=["task_statuses"]
                )
            jobs = AsyncTaskController(store, "jobs", ScriptedRunner())
            assert jobs.position == 0
            async with jobs:
                await jobs.launch_task("t1")
                assert 0 < jobs.position == jobs.sync.position
                await store.projections.wait_for(jobs.position, timeout=WAIT_LIMIT, models=["task_statuses"])
                assert await store.projections.task_statuses.get("jobs:t1") is not None

    asyncio.run(main())


def test_async_wait_for_names_the_held_append(make_url: Callable[[str], str]) -> None:
    """On PostgreSQL the async wait_for times out naming a held append's pid, and returns once it commits."""
    url = make_url("postgresql")

    async def main() -> None:
        async with open_async_store(url) as store:
            machine = await store.plugins.machine("cam")
            with held_append(store.sync, url, "held-async") as conn:
                await machine.transition_to(P.INSTALLING, "behind")
                with pytest.raises(ProjectionTimeout, match=f"pid {conn.info.backend_pid}"):
                    await store.projections.wait_for(machine.position, timeout=0.5)
                conn.commit()
            await store.projections.wait_for(machine.position, timeout=WAIT_LIMIT)
            row = await store.projections.plugin_phases.get("cam")
            assert row is not None
            assert row["phase"] == "Installing"
            await store.projections.close()

    asyncio.run(main())
