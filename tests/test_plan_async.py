"""Plan.execute_async: the plan engine awaited from asyncio, async def hooks on the caller's loop."""

from __future__ import annotations

import asyncio

import pytest

from phaselog.adapters import Store
from phaselog.domain.plan import PlanCancelled, PlanFailed
from phaselog.runtime.plan_state import GenericStep, PlanContext, PlanState
from phaselog.runtime.plans import Plan


def test_async_hooks_run_on_the_awaiting_loop_and_record_like_sync_ones(store: Store) -> None:
    """Async and plain hooks mix in one plan; async ones run on the caller's loop; the run succeeds."""
    seen: list[tuple[str, bool]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def provision(_ctx: PlanContext, state: PlanState) -> None:
            await asyncio.sleep(0)
            seen.append(("provision", asyncio.get_running_loop() is loop))
            state.update(host="h1")

        def check(_ctx: PlanContext, state: PlanState) -> None:
            seen.append(("check", state["host"] == "h1"))

        plan = Plan(store, "async-deploy")
        plan.add_step(GenericStep("provision", exec=provision)).add_pause(0.01)
        plan.add_step(GenericStep("check", exec=check))
        await plan.execute_async()
        assert plan.runs()[-1].status == "succeeded"

    asyncio.run(main())
    assert seen == [("provision", True), ("check", True)]


def test_an_async_hook_failure_fails_the_plan_after_cleanup(store: Store) -> None:
    """An exception raised by an async def hook is a step error: PlanFailed, the done steps cleaned up."""
    cleaned: list[str] = []

    async def boom(_ctx: PlanContext, _state: PlanState) -> None:
        msg = "no capacity"
        raise RuntimeError(msg)

    async def cleanup(_ctx: PlanContext, _state: PlanState) -> None:
        cleaned.append("a")

    async def main() -> None:
        plan = Plan(store, "async-fail").add_step(GenericStep("a", exec=lambda _c, _s: None, cleanup=cleanup))
        plan.add_step(GenericStep("b", exec=boom))
        with pytest.raises(PlanFailed, match="no capacity"):
            await plan.execute_async()

    asyncio.run(main())
    assert cleaned == ["a"]


def test_cancelling_the_awaiting_task_cancels_the_run(store: Store) -> None:
    """Cancelling the task awaiting execute_async cancels the async hook and records a cancelled run."""
    started = asyncio.Event()

    async def forever(_ctx: PlanContext, _state: PlanState) -> None:
        started.set()
        await asyncio.sleep(3600)

    plan = Plan(store, "async-cancel").add_step(GenericStep("a", exec=forever))

    async def main() -> None:
        run = asyncio.ensure_future(plan.execute_async())
        await asyncio.wait_for(started.wait(), timeout=30)
        run.cancel()
        with pytest.raises((asyncio.CancelledError, PlanCancelled)):
            await asyncio.wait_for(run, timeout=60)

    asyncio.run(main())
    assert plan.runs()[-1].status == "cancelled"
