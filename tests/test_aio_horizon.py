"""The async stores answer the same horizon as the sync ones, through their own shells."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from phaselog.adapters import open_store, verify
from phaselog.aio import open_async_store

from horizon_support import held_append
from support_events import open_counter


def test_async_horizon_is_the_newest_position_when_nothing_is_in_flight(store_url: str) -> None:
    """On every store the async horizon reaches the newest position when no append is in flight."""

    async def scenario() -> tuple[int, int, int, int]:
        async with open_async_store(store_url) as store:
            saved = await store.save(open_counter("c:1"))
            horizon = await store.horizon()
            return saved.position, horizon.position, horizon.head, len(horizon.in_flight)

    assert asyncio.run(scenario()) == (1, 1, 1, 0)


def test_async_horizon_names_an_append_in_flight(make_url: Callable[[str], str]) -> None:
    """The async PostgreSQL store names the held append, as the sync store does, and shares its watch."""
    url = make_url("postgresql")

    async def scenario() -> None:
        async with open_async_store(url, stall_warning=0.1) as store:
            first = (await store.save(open_counter("c:first"))).position
            with held_append(store.sync, url, "c:held") as conn:
                later = (await store.save(open_counter("c:later"))).position
                await asyncio.sleep(0.2)
                horizon = await store.horizon()
                assert (horizon.position, horizon.head, horizon.held_back) == (first, later, 1)
                assert horizon.stall is not None
                assert horizon.stall.pid == conn.info.backend_pid
                again = store.sync.horizon().stall
                assert again is not None
                assert again.key == horizon.stall.key
                conn.commit()
            assert (await store.horizon()).position == later

    asyncio.run(scenario())


def test_async_saves_are_sealed_like_sync_ones(durable_url: str) -> None:
    """Appends through the async store are sealed within seal_interval and on close, as sync ones are."""

    async def scenario() -> tuple[int, int]:
        async with open_async_store(durable_url, seal_interval=0.2) as store:
            first = (await store.save(open_counter("c:1"))).position
            await asyncio.sleep(1.0)
            sealed_early = verify(store.sync).sealed_position
            last = (await store.save(open_counter("c:2"))).position
        assert sealed_early == first
        return last, 0

    last, _ = asyncio.run(scenario())
    with open_store(durable_url, read_only=True) as reopened:
        assert verify(reopened).sealed_position == last
