"""Cancelling execute_async: the caller hears of the cancellation only once the run is over."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from plan_helpers import WAIT, events_of

from phaselog.adapters import Store
from phaselog.domain import plan as ev
from phaselog.runtime.plan_state import GenericStep, PlanContext, PlanState
from phaselog.runtime.plans import Plan

CLEANUP_SECONDS = 0.3  # long enough that a caller told of the cancellation early sees no cleanup yet


def _plan(store: Store, plan_id: str, cleaned: list[str], *, async_cleanup: bool) -> Plan:
    """Step ``a`` succeeds and has a slow cleanup; step ``b`` waits on the loop until cancelled."""

    async def cleanup_async(_ctx: PlanContext, _state: PlanState) -> None:
        await asyncio.sleep(CLEANUP_SECONDS)  # runs on the awaiting loop while the caller waits
        cleaned.append("a")

    def cleanup_sync(_ctx: PlanContext, _state: PlanState) -> None:
        time.sleep(CLEANUP_SECONDS)
        cleaned.append("a")

    async def forever(_ctx: PlanContext, _state: PlanState) -> None:
        await asyncio.sleep(3600)

    cleanup = cleanup_async if async_cleanup else cleanup_sync
    plan = Plan(store, plan_id).add_step(GenericStep("a", exec=lambda _c, _s: None, cleanup=cleanup))
    return plan.add_step(GenericStep("b", exec=forever))


def _cancel_and_look(store: Store, plan: Plan, cleaned: list[str], cancels: int) -> dict[str, Any]:
    """Cancel the task awaiting execute_async ``cancels`` times; note what is recorded when it hears."""
    seen: dict[str, Any] = {}
    loop_errors: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: loop_errors.append(context))
        run = asyncio.ensure_future(plan.execute_async())
        deadline = time.monotonic() + WAIT
        while not events_of(store, plan.plan_id, ev.AttemptStarted)[1:]:  # step b is under way
            assert time.monotonic() < deadline, "step b never started"
            await asyncio.sleep(0.01)
        for _ in range(cancels):
            run.cancel()
            await asyncio.sleep(0.05)  # the run is still cleaning up: cancel it again
        try:
            await asyncio.wait_for(asyncio.shield(run), WAIT)
        except asyncio.CancelledError:
            runs = plan.runs()
            seen["status"] = runs[-1].status if runs else None
            seen["cleaned"] = list(cleaned)
            seen["cleanup_finished"] = [e.step for e in events_of(store, plan.plan_id, ev.CleanupFinished)]
            seen["task_cancelled"] = run.cancelled()
        await asyncio.sleep(0)  # let a stray failure of the run's own future be reported

    asyncio.run(main())
    seen["loop_errors"] = loop_errors
    return seen


@pytest.mark.parametrize("async_cleanup", [True, False], ids=["async-cleanup", "sync-cleanup"])
def test_the_awaiting_task_hears_of_the_cancellation_after_cleanup_and_record(
    store: Store, async_cleanup: bool
) -> None:
    """When CancelledError reaches the caller, the run is recorded cancelled and step a's cleanup has run."""
    cleaned: list[str] = []
    plan = _plan(store, f"cancel-after-cleanup-{async_cleanup}", cleaned, async_cleanup=async_cleanup)
    seen = _cancel_and_look(store, plan, cleaned, cancels=1)
    assert seen == {
        "status": "cancelled",
        "cleaned": ["a"],
        "cleanup_finished": ["a"],
        "task_cancelled": True,
        "loop_errors": [],
    }


def test_cancelling_the_awaiting_task_again_does_not_cut_the_cleanup_short(store: Store) -> None:
    """A second cancellation while the run cleans up still lets the caller hear only after the record."""
    cleaned: list[str] = []
    plan = _plan(store, "cancel-twice", cleaned, async_cleanup=True)
    seen = _cancel_and_look(store, plan, cleaned, cancels=3)
    assert seen == {
        "status": "cancelled",
        "cleaned": ["a"],
        "cleanup_finished": ["a"],
        "task_cancelled": True,
        "loop_errors": [],
    }
