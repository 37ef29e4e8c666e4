"""``Plan.execute_async``: the plan engine driven from asyncio, with ``async def`` hooks on the caller's loop.

One core, two shells: every decision (what to record, retries, pauses, time
limits, cleanup) stays in the sync engine of :mod:`phaselog.runtime.plans`; this
shell runs it on a worker thread and lets a step's ``async def`` hooks run on the
awaiting event loop, so they can use the loop's connections and sessions.
Cancelling the awaiting task cancels the plan's context: the run stops as a
cancelled run (cleanup included) before the cancellation is re-raised, even
when the task is cancelled again meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from phaselog.runtime.plan_state import PlanContext, set_hook_loop

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["AsyncExecution"]


class AsyncExecution:
    """The asyncio shell of :class:`~phaselog.runtime.plans.Plan` (mixed into it)."""

    execute: Callable[[PlanContext | None], None]
    resume: Callable[[PlanContext | None], None]

    async def execute_async(self, ctx: PlanContext | None = None) -> None:
        """Await a new run of the plan; raises what :meth:`Plan.execute` raises."""
        await _drive(self.execute, ctx)

    async def resume_async(self, ctx: PlanContext | None = None) -> None:
        """Await the continuation of an unfinished run; raises what :meth:`Plan.resume` raises."""
        await _drive(self.resume, ctx)


async def _drive(run: Callable[[PlanContext | None], None], ctx: PlanContext | None) -> None:
    loop = asyncio.get_running_loop()
    context = ctx if ctx is not None else PlanContext()

    def in_thread() -> None:
        set_hook_loop(loop)
        try:
            run(context)
        finally:
            set_hook_loop(None)

    done = loop.run_in_executor(None, in_thread)
    try:
        await asyncio.shield(done)
    except asyncio.CancelledError:
        context.cancel("cancelled")
        await _settled(done)  # the run records its cancellation and cleanup first
        raise


async def _settled(done: asyncio.Future[None]) -> None:
    """Wait for the cancelled run to end, however often the awaiting task is cancelled meanwhile.

    The wait is bounded by the plan itself: a cancelled hook is given ``grace``, a cleanup
    hook ``cleanup_limit``. The run's own outcome (``PlanCancelled``) is retrieved here:
    the caller hears of the cancellation as ``CancelledError``.
    """
    while not done.done():
        try:
            await asyncio.wait([done])
        except asyncio.CancelledError:
            continue  # a second cancellation must not cut the cleanup short
    if not done.cancelled():
        done.exception()
