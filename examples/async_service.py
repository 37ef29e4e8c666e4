"""A complete asyncio service on one async store: plugin, task, plan, state, read models, subscribe.

Run: ``python examples/async_service.py [STORE_URL]`` (default: a temporary SQLite file).

Every service takes the async store: the plugin machine and the task controller
have async shells (``store.plugins``, ``AsyncTaskController``); a plan runs with
``execute_async()`` and a recoverable state is async already, both given the
async store itself. The read models answer with read-your-writes, and
``subscribe`` replays the global order. Leaving the ``async with`` block, by an
exception too, closes everything started on the store.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from phaselog.aio import AsyncStore, AsyncTaskController, open_async_store
from phaselog.domain import PluginPhase
from phaselog.domain.task import TaskState
from phaselog.runtime import GenericStep, Plan, RecoverableState
from phaselog.runtime.task_models import CancelContext
from phaselog.runtime.task_runner import ActiveTask


class Stats(BaseModel):
    """What the service remembers across restarts."""

    reports: int = 0


class Reports:
    """An async task runner: its hooks run on the service's event loop."""

    async def on_task_pending(self, ctx: CancelContext, task: ActiveTask) -> None:  # noqa: ARG002 - the protocol's
        """Prepare the task; returning moves it to Running."""
        task.add_log_entry(logging.INFO, "queued")

    async def on_task_running(self, ctx: CancelContext, task: ActiveTask) -> None:
        """Do the work; returning moves it to Completed."""
        for page in range(3):
            ctx.raise_if_cancelled()
            await asyncio.sleep(0)
            task.set_progress(page + 1, 3)

    async def on_task_completed(
        self,
        ctx: CancelContext,  # noqa: ARG002 - the protocol's
        task: ActiveTask,
        state: TaskState,
        *args: Any,  # noqa: ARG002 - the exception after Failed
    ) -> None:
        """Handle the end of a run."""
        task.add_log_entry(logging.INFO, f"finished: {state.name}")


async def serve(store: AsyncStore) -> dict[str, Any]:
    """One pass of the service; returns what its read models and the log say."""
    machine = await store.plugins.machine("billing")  # plugin lifecycle
    if machine.phase is PluginPhase.UNINSTALLED:
        await machine.transition_to(PluginPhase.INSTALLING, "operator request")

    async with AsyncTaskController(store, "reports", Reports()) as tasks:  # tasks
        done: asyncio.Future[TaskState] = asyncio.get_running_loop().create_future()
        await tasks.launch_task(
            "daily", on_state=lambda s: done.get_loop().call_soon_threadsafe(done.set_result, s)
        )
        finished = await asyncio.wait_for(done, 30)

    plan = Plan(store, "deploy")  # plans: hooks may be async def too
    plan.add_step(GenericStep("provision", exec=lambda _ctx, state: state.update(host="h1")))
    await plan.execute_async()

    state = RecoverableState(  # recoverable state
        default_state=Stats(),
        persist_state_key="service-stats",
        persistence_enabled=True,
        logger=logging.getLogger("service"),
        store=store,
    )
    stats = await state.initialize()
    stats.reports += 1
    await state.teardown()

    await store.projections.wait_for(plan.position, timeout=10)  # read your own writes
    topics = [type(event).__name__ async for _, event in _replay(store)]
    return {
        "plugin": (await store.projections.plugin_phases.get("billing") or {}).get("phase"),
        "task": finished.name,
        "plan": (await store.projections.plan_runs.get("deploy") or {}).get("status"),
        "reports": stats.reports,
        "events": len(topics),
    }


async def _replay(store: AsyncStore) -> Any:
    """The global order so far (``subscribe`` goes on live; this stops at the current end)."""
    end = await store.max_position()
    async for position, event in store.subscribe(start=1):
        yield position, event
        if position >= end:
            return


async def main(url: str) -> dict[str, Any]:
    """Open the async store and run the service on it."""
    async with open_async_store(url) as store:
        return await serve(store)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(asyncio.run(main(sys.argv[1])))
    else:
        with tempfile.TemporaryDirectory() as folder:
            print(asyncio.run(main(f"sqlite:///{Path(folder) / 'service.db'}")))
