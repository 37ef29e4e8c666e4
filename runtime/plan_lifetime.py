"""A plan's lifetime: a context manager, closed with its store, that stops a run under way cleanly."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Self

from phaselog.runtime.lifetimes import tie

if TYPE_CHECKING:
    from collections.abc import Callable

    from phaselog.runtime.plan_state import PlanContext
    from phaselog.runtime.ports import EventStore

__all__ = ["PlanLifetime"]


class PlanLifetime:
    """Mixed into :class:`~phaselog.runtime.plans.Plan`: ``with Plan(store, …) as plan:``, and :meth:`close`.

    Closing the plan, or its store (the plan is tied to it), cancels the run under
    way in this process: it stops as a cancelled run, runs its cleanup and records
    both before :meth:`close` returns (within ``timeout``). A closed plan runs no more.
    """

    _untie: Callable[[], None]

    def _start_lifetime(self, store: EventStore) -> None:
        self._running: PlanContext | None = None
        self._idle = threading.Event()
        self._idle.set()
        self.closed = False
        self._untie = tie(store, self.close)

    def _run_started(self, ctx: PlanContext | None) -> None:
        """The run under way is ``ctx`` (``None``: no run under way)."""
        self._running = ctx
        if ctx is None:
            self._idle.set()
        else:
            self._idle.clear()
            if self.closed:
                ctx.cancel("cancelled")

    def close(self, timeout: float = 10.0) -> None:
        """Cancel the run under way (if any) and wait at most ``timeout`` seconds for its cleanup."""
        self.closed = True
        self._untie()
        ctx = self._running
        if ctx is not None:
            ctx.cancel("cancelled")
        self._idle.wait(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
