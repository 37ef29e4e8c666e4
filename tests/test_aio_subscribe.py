from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from phaselog.adapters import open_store
from phaselog.aio import AsyncStore, open_async_store
from phaselog.domain import PluginPhase
from phaselog.domain.errors import StoreUnavailable
from phaselog.domain.events import DomainEvent

from pgserver import PostgresNotAvailable, PostgresServer

P = PluginPhase
DEADLINE = 60.0


async def _collect(
    store: AsyncStore,
    start: int,
    count: int,
    into: list[tuple[int, DomainEvent]],
    reached: tuple[int, asyncio.Event] | None = None,
) -> None:
    async for position, event in store.subscribe(start):
        into.append((position, event))
        if reached is not None and len(into) == reached[0]:
            reached[1].set()
        if len(into) == count:
            return


async def _cycle(store: AsyncStore, plugin_id: str, rounds: int) -> None:
    machine = await store.plugins.machine(plugin_id)
    for _ in range(rounds):
        await machine.force_phase(P.RUNNING, "up")
        await machine.force_phase(P.DEGRADED, "down")


def test_subscribe_catches_up_then_follows_live(store_url: str) -> None:
    """subscribe(1) yields the stored events, then those both APIs append later, once each and in order."""

    async def main() -> None:
        async with open_async_store(store_url) as store:
            await _cycle(store, "early", 2)  # 1 + 4 events before subscribing
            seen: list[tuple[int, DomainEvent]] = []
            follower = asyncio.create_task(_collect(store, 1, 5 + 5 + 5, seen))
            await _cycle(store, "async-live", 2)
            sync_writer = threading.Thread(target=_sync_cycle, args=(store, store_url, "sync-live"))
            sync_writer.start()
            await asyncio.to_thread(sync_writer.join, DEADLINE)
            await asyncio.wait_for(follower, DEADLINE)
            stored = await store.notifications()
            assert [p for p, _ in seen] == [n.id for n in stored]
            assert [e for _, e in seen] == [store.decode(n) for n in stored]

    asyncio.run(main())


def _sync_cycle(store: AsyncStore, url: str, plugin_id: str) -> None:
    if url == "memory://":
        _sync_rounds(store.sync, plugin_id)
        return
    with open_store(url) as sync:
        _sync_rounds(sync, plugin_id)


def _sync_rounds(sync: object, plugin_id: str) -> None:
    machine = sync.plugins.machine(plugin_id)  # type: ignore[attr-defined]
    for _ in range(2):
        machine.force_phase(P.RUNNING, "up")
        machine.force_phase(P.DEGRADED, "down")


def test_subscribe_starts_at_the_given_position(store_url: str) -> None:
    """subscribe(start) begins at position ``start`` exactly."""

    async def main() -> None:
        async with open_async_store(store_url) as store:
            await _cycle(store, "p", 3)
            seen: list[tuple[int, DomainEvent]] = []
            await asyncio.wait_for(_collect(store, 4, 4, seen), DEADLINE)
            assert [p for p, _ in seen] == [4, 5, 6, 7]

    asyncio.run(main())


def test_concurrent_writers_are_followed_without_a_gap(make_url: Callable[[str], str]) -> None:
    """Many coroutines appending at once on PostgreSQL: the follower yields every committed position once."""
    url = make_url("postgresql")

    async def main() -> None:
        async with open_async_store(url, pool_size=8) as store:
            seen: list[tuple[int, DomainEvent]] = []
            writers = 16
            total = writers * (1 + 2 * 5)
            follower = asyncio.create_task(_collect(store, 1, total, seen))
            await asyncio.gather(*(_cycle(store, f"w{i}", 5) for i in range(writers)))
            await asyncio.wait_for(follower, DEADLINE)
            stored = [n.id for n in await store.notifications(1, 10_000)]
            assert [p for p, _ in seen] == stored
            assert len(stored) == total

    asyncio.run(main())


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A dedicated throwaway PostgreSQL this test may crash and restart."""
    try:
        server = PostgresServer.start()
    except (PostgresNotAvailable, OSError) as exc:
        pytest.skip(f"no PostgreSQL on this machine: {exc}")
    try:
        yield server
    finally:
        server.stop()


async def _write_until_done(store: AsyncStore, plugin_id: str, version: int) -> None:
    """Write until the plugin's stream reaches ``version``, retrying while the server restarts."""
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            machine = await store.plugins.machine(plugin_id)
            break
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    while machine.version < version:  # an append the restart left uncertain is seen by the refresh
        try:
            await machine.force_phase(P.RUNNING if machine.version % 2 else P.DEGRADED, "after restart")
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
            await _refresh(machine)


async def _refresh(machine: object) -> None:
    try:
        await machine.refresh()  # type: ignore[attr-defined]
    except StoreUnavailable:
        return


@pytest.mark.slow
def test_subscribe_survives_a_database_restart(own_server: PostgresServer) -> None:
    """PostgreSQL crash-restarts mid-subscription: the follower reconnects, skipping and repeating nothing."""
    url = f"{own_server.dsn}?schema=s_{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        async with open_async_store(url) as store:
            await _cycle(store, "before", 2)
            seen: list[tuple[int, DomainEvent]] = []
            caught_up = asyncio.Event()
            follower = asyncio.create_task(_collect(store, 1, 5 + 7, seen, (5, caught_up)))
            await asyncio.wait_for(caught_up.wait(), DEADLINE)
            await asyncio.to_thread(own_server.restart_immediately)
            await _write_until_done(store, "after", 7)
            await asyncio.wait_for(follower, DEADLINE)
            stored = [n.id for n in await store.notifications()]
            assert [p for p, _ in seen] == stored
            assert len(set(stored)) == len(stored) == 12

    asyncio.run(main())
