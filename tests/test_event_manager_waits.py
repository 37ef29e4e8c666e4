from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from phaselog.domain.state import EventManagerNotActive
from phaselog.runtime.recoverable_events import Event, EventManager

BOUND = 10.0  # seconds: no test here may hang, whatever the mutation


def test_two_listeners_that_each_wait_for_all_listeners_both_finish() -> None:
    """Two PERSIST_STATE listeners each waiting for all listeners do not wait for each other."""
    finished: list[str] = []

    async def scenario() -> None:
        manager = EventManager(timedelta(hours=1))

        def make(name: str) -> object:
            async def listener() -> None:
                await manager.wait_for_all_listeners_to_complete()
                finished.append(name)

            return listener

        async with manager:
            manager.on(event=Event.PERSIST_STATE, listener=make("a"))
            manager.on(event=Event.PERSIST_STATE, listener=make("b"))
            manager.emit(event=Event.PERSIST_STATE)
            await manager.wait_for_all_listeners_to_complete()
            assert sorted(finished) == ["a", "b"]

    asyncio.run(asyncio.wait_for(scenario(), BOUND))


def test_a_waiting_listener_still_waits_for_listeners_that_are_not_waiting() -> None:
    """A listener's wait skips only other waiters: a busy listener is still waited for."""
    order: list[str] = []

    async def scenario() -> None:
        manager = EventManager(timedelta(hours=1))
        release = asyncio.Event()

        async def busy() -> None:
            await release.wait()
            order.append("busy")

        async def waiter() -> None:
            await manager.wait_for_all_listeners_to_complete()
            order.append("waiter")

        async with manager:
            manager.on(event=Event.PERSIST_STATE, listener=busy)
            manager.on(event=Event.PERSIST_STATE, listener=waiter)
            manager.emit(event=Event.PERSIST_STATE)
            release.set()
            await manager.wait_for_all_listeners_to_complete()
            assert order == ["busy", "waiter"]

    asyncio.run(asyncio.wait_for(scenario(), BOUND))


def test_cancelling_a_wait_cancels_the_listener_tasks_it_waited_for() -> None:
    """As in the original, a cancelled wait cancels the listeners it was waiting on."""
    cancelled = asyncio.Event

    async def scenario() -> None:
        manager = EventManager(timedelta(hours=1), close_timeout=timedelta(seconds=BOUND))
        started = asyncio.Event()
        was_cancelled = cancelled()

        async def stuck() -> None:
            started.set()
            try:
                await asyncio.Event().wait()  # never set
            except asyncio.CancelledError:
                was_cancelled.set()
                raise

        async with manager:
            manager.on(event=Event.PERSIST_STATE, listener=stuck)
            manager.emit(event=Event.PERSIST_STATE)
            await asyncio.wait_for(started.wait(), BOUND)
            waiting = asyncio.create_task(manager.wait_for_all_listeners_to_complete())
            await asyncio.sleep(0)  # one loop turn: the wait task runs up to its wait on the listener
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await asyncio.wait_for(was_cancelled.wait(), BOUND)
            manager.off(event=Event.PERSIST_STATE)

    asyncio.run(asyncio.wait_for(scenario(), BOUND))


def test_waiting_on_an_inactive_manager_raises() -> None:
    """wait_for_all_listeners_to_complete outside the manager's context raises EventManagerNotActive."""

    async def scenario() -> None:
        manager = EventManager(timedelta(hours=1))
        with pytest.raises(EventManagerNotActive):
            await manager.wait_for_all_listeners_to_complete()
        async with manager:
            await manager.wait_for_all_listeners_to_complete()
        with pytest.raises(EventManagerNotActive):
            await manager.wait_for_all_listeners_to_complete()

    asyncio.run(asyncio.wait_for(scenario(), BOUND))


def test_the_last_exit_removes_listeners_and_pending_listener_tasks() -> None:
    """Leaving the outermost context drops every listener and cancels listener tasks still pending."""
    calls: list[str] = []

    async def scenario() -> None:
        manager = EventManager(timedelta(hours=1), close_timeout=timedelta(milliseconds=200))
        release = asyncio.Event()
        cancelled = asyncio.Event()

        async def slow() -> None:
            calls.append("slow")
            try:
                await release.wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        async with manager:
            manager.on(event=Event.PERSIST_STATE, listener=slow)
            async with manager:  # nested: the inner exit keeps everything
                pass
            assert manager.has_listener(event=Event.PERSIST_STATE, listener=slow)
        # the final PERSIST_STATE of the last exit started `slow`; close_timeout cancelled it
        assert cancelled.is_set()
        assert not manager.has_listener(event=Event.PERSIST_STATE, listener=slow)
        runs = len(calls)
        async with manager:
            manager.emit(event=Event.PERSIST_STATE)
            await manager.wait_for_all_listeners_to_complete()
        assert len(calls) == runs  # nothing left registered from before

    asyncio.run(asyncio.wait_for(scenario(), BOUND))
