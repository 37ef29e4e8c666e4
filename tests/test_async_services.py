"""One async story: every runtime service takes the async store (through the sync store it keeps)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from pydantic import BaseModel

from phaselog.aio import AsyncStore, open_async_store
from phaselog.domain import PluginPhase
from phaselog.domain.errors import StoreUnavailable, ValidationFailed
from phaselog.domain.task import TaskState
from phaselog.projections.runner import Projections
from phaselog.runtime import GenericStep, Plan, PluginService, RecoverableState, TaskController
from phaselog.runtime.task_models import CancelContext, TaskStatus
from phaselog.runtime.task_runner import ActiveTask

DEADLINE = 20.0


class Stats(BaseModel):
    """A recoverable state."""

    pages: int = 0


class Quick:
    """A task runner that completes at once."""

    def on_task_pending(self, ctx: CancelContext, task: ActiveTask) -> None:
        """Nothing to prepare."""

    def on_task_running(self, ctx: CancelContext, task: ActiveTask) -> None:  # noqa: ARG002 - the protocol's
        """Finish at once."""
        task.set_progress(1, 1)

    def on_task_completed(self, ctx: CancelContext, task: ActiveTask, state: TaskState, *args: Any) -> None:
        """Nothing to deliver."""


async def _service(store: AsyncStore) -> dict[str, Any]:
    """A plan, a state, a task, a plugin and the read models, all handed the async store."""
    plan = Plan(store, "deploy").add_step(GenericStep("provision", exec=lambda _ctx, s: s.update(host="h1")))
    await plan.execute_async()
    state = RecoverableState(
        default_state=Stats(),
        persist_state_key="crawler",
        persistence_enabled=True,
        logger=logging.getLogger("crawler"),
        store=store,
    )
    stats = await state.initialize()
    stats.pages = 3
    await state.teardown()
    finished = threading.Event()
    statuses: list[TaskStatus] = []

    def done(status: TaskStatus) -> None:
        statuses.append(status)
        finished.set()

    with TaskController(store, "batch", Quick()) as tasks:
        tasks.launch_task("t1", on_status=done)
        assert await asyncio.to_thread(finished.wait, DEADLINE)
    PluginService(store).machine("billing").transition_to(PluginPhase.INSTALLING, "operator")
    with Projections(store) as views:
        views.catch_up()
        return {
            "plan": views.plan_runs.get("deploy"),
            "state": views.recoverable_states.counts(),
            "task": statuses[0].state,
            "plugin": views.plugin_phases.get("billing"),
        }


def test_every_runtime_service_runs_on_the_async_store(store_url: str) -> None:
    """Plan, RecoverableState, TaskController, PluginService and Projections accept an open async store."""

    async def main() -> dict[str, Any]:
        async with open_async_store(store_url) as store:
            return await _service(store)

    seen = asyncio.run(main())
    assert seen["plan"] is not None
    assert seen["plan"]["status"] == "succeeded"
    assert sum(seen["state"].values()) == 1
    assert seen["task"] is TaskState.COMPLETED
    assert seen["plugin"] is not None
    assert seen["plugin"]["phase"] == "Installing"


def test_an_async_store_not_yet_open_is_refused_with_the_call_to_make(store_url: str) -> None:
    """A service given an async store that is not open says how to open it; nothing is written."""
    with pytest.raises(StoreUnavailable, match="async with open_async_store"):
        Plan(AsyncStore(store_url), "deploy")


def test_a_store_with_only_coroutines_is_refused_naming_what_to_pass() -> None:
    """An async-only store (no sync store kept) is refused at construction, naming open_store."""

    class AsyncOnly:
        async def save(self, *aggregates: Any) -> list[object]:  # noqa: ARG002 - the port's signature
            """An async save (and no sync store kept)."""
            return []

    with pytest.raises(ValidationFailed, match="open_store"):
        TaskController(AsyncOnly(), "batch", Quick())  # type: ignore[arg-type]


def test_closing_the_async_store_closes_the_services_started_on_it(store_url: str) -> None:
    """Services tied to an async store's sync store stop when the async store closes."""

    async def main() -> Projections:
        async with open_async_store(store_url) as store:
            views = Projections(store)
            views.start()
            assert views.running
            return views

    assert not asyncio.run(main()).running
