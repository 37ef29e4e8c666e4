"""Closing the event manager from inside one of its listeners: no deadlock, no error, a bounded wait."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

from phaselog.runtime.recoverable_events import Event, EventManager

BOUND = 10.0  # seconds: a close that deadlocks fails the test instead of hanging it


def test_closing_from_within_a_listener_neither_deadlocks_nor_raises() -> None:
    """A listener leaving the context waits for the other listeners, not for itself, and ends cleanly."""
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        loop_errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: loop_errors.append(context))
        manager = EventManager(timedelta(hours=1))
        await manager.__aenter__()
        closing_started = asyncio.Event()
        closed = asyncio.Event()
        release_other = asyncio.Event()
        other_done = asyncio.Event()
        closing_task: asyncio.Task[Any] | None = None

        async def other_listener() -> None:
            await release_other.wait()
            other_done.set()

        async def closing_listener() -> None:
            nonlocal closing_task
            closing_task = asyncio.current_task()
            closing_started.set()
            await manager.__aexit__(None, None, None)  # as an actor's exit() does
            seen["other_done_when_closed"] = other_done.is_set()
            closed.set()

        # A second listener makes the close wait for a listener that is still running.
        manager.on(event=Event.MIGRATING, listener=other_listener)
        manager.on(event=Event.MIGRATING, listener=closing_listener)
        manager.emit(event=Event.MIGRATING)
        await asyncio.wait_for(closing_started.wait(), BOUND)
        await asyncio.sleep(0.05)  # the close is in its wait by now
        assert not closed.is_set()  # it waits for the other listener
        release_other.set()
        await asyncio.wait_for(closed.wait(), BOUND)
        assert closing_task is not None
        await asyncio.wait_for(closing_task, BOUND)  # the closing listener's own task ends without error
        seen["task_cancelled"] = closing_task.cancelled()
        seen["active"] = manager.active
        seen["listeners"] = manager.has_listener(event=Event.MIGRATING, listener=other_listener)
        await asyncio.sleep(0)  # a stray failure of a listener task would be reported by now
        seen["loop_errors"] = loop_errors

    asyncio.run(asyncio.wait_for(scenario(), BOUND))
    assert seen == {
        "other_done_when_closed": True,
        "task_cancelled": False,
        "active": False,
        "listeners": False,
        "loop_errors": [],
    }


def test_a_sync_listener_leaving_a_with_block_neither_deadlocks_nor_raises() -> None:
    """After ``with manager:``, a sync listener calling ``__exit__`` closes it and returns; re-entry works."""
    # The close timeout only frees a deadlocked thread after the test failed (so the run can exit).
    manager = EventManager(timedelta(hours=1), close_timeout=timedelta(seconds=BOUND * 1.5))
    outcome: list[object] = []
    done = threading.Event()

    def closing_listener() -> None:
        try:
            manager.__exit__(None, None, None)
            outcome.append(manager.active)
        except BaseException as exc:  # the outcome is what the test looks at
            outcome.append(exc)
        finally:
            done.set()

    manager.__enter__()
    manager.on(event=Event.MIGRATING, listener=closing_listener)
    manager.emit(event=Event.MIGRATING)
    assert done.wait(BOUND), "closing from a sync listener deadlocked"
    assert outcome == [False]
    with manager:  # entered again, it works as before
        ran = threading.Event()
        manager.on(event=Event.MIGRATING, listener=ran.set)
        manager.emit(event=Event.MIGRATING)
        assert ran.wait(BOUND)
