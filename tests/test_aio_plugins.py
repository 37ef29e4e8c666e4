from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
from pydantic import BaseModel

from phaselog.adapters import open_store
from phaselog.aio import open_async_store
from phaselog.domain import PluginPhase
from phaselog.domain.errors import InvalidTransition, NotFound, StoreUnavailable, ValidationFailed
from phaselog.domain.plugin import Transition
from phaselog.domain.plugin_state import PluginStateManager

P = PluginPhase


class Cursor(BaseModel):
    """A plugin state value."""

    offset: int = 0


def test_transitions_validate_record_and_read_back(store_url: str) -> None:
    """Async transitions follow the lifecycle table, force_phase bypasses it, history reads the stream."""

    async def main() -> None:
        async with open_async_store(store_url) as store:
            machine = await store.plugins.machine("m", initial=P.UNINSTALLED)
            first = await machine.transition_to(P.INSTALLING, "go")
            assert (first.from_, first.to, first.reason) == (P.UNINSTALLED, P.INSTALLING, "go")
            with pytest.raises(InvalidTransition, match="Installing -> Running"):
                await machine.transition_to(P.RUNNING, "too early")
            with pytest.raises(ValidationFailed):
                await machine.transition_to(P.INSTALLED, 42)  # type: ignore[arg-type]
            forced = await machine.force_phase("Running", "operator")
            assert forced.reason == "force: operator"
            assert machine.phase == P.RUNNING
            assert machine.version == 3
            assert [t.to for t in await machine.history()] == [P.INSTALLING, P.RUNNING]
            assert [t.to for t in await machine.history(limit=1)] == [P.RUNNING]
            assert await machine.history(limit=0) == []
            assert [t.to for t in await store.plugins.history("m")] == [P.INSTALLING, P.RUNNING]
            with pytest.raises(NotFound):
                await store.plugins.history("nobody")
            again = await store.plugins.machine("m", initial=P.RUNNING)
            assert again.phase == P.RUNNING
            assert again.version == 3

    asyncio.run(main())


def test_sync_and_async_shells_record_the_same_events(store_url: str) -> None:
    """One script through both APIs records the same event types and fields (timestamps aside)."""

    def fields(events: list[object]) -> list[tuple[str, dict[str, object]]]:
        return [
            (type(e).__name__, e.model_dump(exclude={"timestamp", "originator_id", "last_attempt"}))  # type: ignore[attr-defined]
            for e in events
        ]

    async def main() -> None:
        async with open_async_store(store_url) as store:
            machine = await store.plugins.machine("a", max_attempts=2, initial_backoff=2, max_backoff=3)
            await machine.transition_to(P.INSTALLING, "x")
            await machine.force_phase(P.FAILED, "y")
            await machine.retry.advance()
            await machine.retry.advance()
            await machine.retry.reset()
            await machine.handle(lambda mgr: mgr.put(3, Cursor(offset=1)))
            await store.plugins.handle("a", lambda mgr: mgr.reset())
            syncs = store.sync if store.kind == "memory" else open_store(store_url)
            try:
                sm = syncs.plugins.machine("s", max_attempts=2, initial_backoff=2, max_backoff=3)
                sm.transition_to(P.INSTALLING, "x")
                sm.force_phase(P.FAILED, "y")
                sm.retry.advance()
                sm.retry.advance()
                sm.retry.reset()
                sm.handle(lambda mgr: mgr.put(3, Cursor(offset=1)))
                syncs.plugins.handle("s", lambda mgr: mgr.reset())
                expected = fields(list(syncs.stream("plugin:s")))
            finally:
                if syncs is not store.sync:
                    syncs.close()
            got = fields(list(await store.stream("plugin:a")))
            assert [(name, {k: v for k, v in f.items() if k != "plugin_id"}) for name, f in got] == [
                (name, {k: v for k, v in f.items() if k != "plugin_id"}) for name, f in expected
            ]

    asyncio.run(main())


def test_retry_arithmetic_is_the_sync_one(store_url: str) -> None:
    """Advance doubles the backoff up to the cap and counts attempts; reset restores the initial values."""

    async def main() -> None:
        async with open_async_store(store_url) as store:
            machine = await store.plugins.machine("r", max_attempts=3, initial_backoff=1, max_backoff=3)
            assert machine.retry.can_retry()
            for _ in range(3):
                await machine.retry.advance()
            assert machine.retry.attempts == 3
            assert machine.retry.next_backoff == timedelta(seconds=3)
            assert machine.retry.last_attempt is not None
            assert not machine.retry.can_retry()
            await machine.retry.reset()
            after = machine.retry.status
            assert (after.attempts, after.next_backoff) == (0, timedelta(seconds=1))
            assert after.last_attempt is None
            reloaded = await store.plugins.machine("r")
            assert reloaded.retry.status == machine.retry.status

    asyncio.run(main())


def test_observers_plain_and_async_run_in_order_after_the_write(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Observers are called in the order added, async ones awaited; one that fails is logged, not raised."""

    async def main() -> None:
        async with open_async_store(store_url) as store:
            machine = await store.plugins.machine("o")
            calls: list[tuple[str, str, P]] = []

            def plain(plugin_id: str, t: Transition) -> None:
                calls.append(("plain", plugin_id, t.to))

            async def later(plugin_id: str, t: Transition) -> None:
                await asyncio.sleep(0)
                assert [e.to for e in await machine.history()][-1] == t.to  # durable before observers
                calls.append(("async", plugin_id, t.to))

            async def broken(plugin_id: str, t: Transition) -> None:
                raise RuntimeError("observer bug")

            def broken_plain(plugin_id: str, t: Transition) -> None:
                raise RuntimeError("plain observer bug")

            for fn in (plain, broken, later, broken_plain, plain):
                machine.add_observer(fn)
            with caplog.at_level(logging.ERROR, logger="phaselog.plugins"):
                await machine.transition_to(P.INSTALLING, "go")
            expected = [
                ("plain", "o", P.INSTALLING),
                ("async", "o", P.INSTALLING),
                ("plain", "o", P.INSTALLING),
            ]
            assert calls == expected
            assert sum("failed on" in r.getMessage() for r in caplog.records) == 2
            with pytest.raises(ValidationFailed):
                machine.add_observer("not callable")  # type: ignore[arg-type]

    asyncio.run(main())


def test_handle_runs_plain_and_async_functions(store_url: str) -> None:
    """Handle records what fn wrote (plain or async), nothing when fn raises; fn may refresh its machine."""

    async def main() -> None:
        async with open_async_store(store_url) as store:

            async def write(mgr: PluginStateManager) -> str:
                await asyncio.sleep(0)
                mgr.put(1, Cursor(offset=7))
                return "done"

            assert await store.plugins.handle("h", write) == "done"
            machine = await store.plugins.machine("h")
            assert machine.state == (b'{"offset":7}', 1)

            def fail(mgr: PluginStateManager) -> None:
                mgr.put(2, Cursor(offset=8))
                raise RuntimeError("no")

            with pytest.raises(RuntimeError):
                await machine.handle(fail)
            assert machine.version == 2

            async def refresh_then_write(mgr: PluginStateManager) -> int:
                await machine.refresh()  # re-entering the machine's lock from its own handle
                mgr.put(2, Cursor(offset=9))
                return mgr.get_state_version()

            assert await machine.handle(refresh_then_write) == 1
            assert machine.state == (b'{"offset":9}', 2)
            assert machine.version == 3

    asyncio.run(main())


def test_concurrent_coroutines_on_one_machine_are_serialised(store_url: str) -> None:
    """Transitions from many coroutines on one machine each get their own version; none conflicts."""

    async def main() -> None:
        async with open_async_store(store_url) as store:
            machine = await store.plugins.machine("busy")
            phases = [P.RUNNING, P.DEGRADED] * 10
            done = await asyncio.gather(*(machine.force_phase(p, str(i)) for i, p in enumerate(phases)))
            assert len(done) == 20
            assert machine.version == 21
            assert sorted(t.reason for t in await machine.history()) == sorted(
                f"force: {i}" for i in range(20)
            )

    asyncio.run(main())


def test_a_machine_whose_store_went_away_says_so(make_url: Callable[[str], str]) -> None:
    """A write to a closed store fails with StoreUnavailable and leaves the machine to reload, not lie."""

    async def main() -> None:
        store = await open_async_store(make_url("sqlite"))
        machine = await store.plugins.machine("gone")
        await store.aclose()
        with pytest.raises(StoreUnavailable):
            await machine.transition_to(P.INSTALLING, "late")
        with pytest.raises(StoreUnavailable):
            _ = machine.phase

    asyncio.run(main())


def test_a_cancelled_transition_leaves_the_machine_to_reload(store_url: str) -> None:
    """Cancelling a coroutine mid-write never leaves a phantom phase: the machine reloads what was stored."""

    async def main() -> None:
        async with open_async_store(store_url) as store:
            machine = await store.plugins.machine("c", initial=P.RUNNING)
            task = asyncio.create_task(machine.force_phase(P.DEGRADED, "cancelled"))
            await asyncio.sleep(0)  # let the task reach its first await (the write), then cancel it
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(StoreUnavailable):
                _ = machine.phase  # it cannot know whether the write landed until it reloads
            await machine.refresh()
            stored = await store.stream("plugin:c")
            assert machine.version == len(stored)
            assert machine.phase == (P.DEGRADED if len(stored) == 2 else P.RUNNING)
            await machine.transition_to(P.STOPPING if machine.phase == P.RUNNING else P.RECOVERING, "after")
            assert machine.version == len(stored) + 1

    asyncio.run(main())
