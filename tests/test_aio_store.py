from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from pydantic import BaseModel

from phaselog.adapters import Store, open_store
from phaselog.adapters.audit.integrity import verify
from phaselog.aio import AsyncStore, open_async_store
from phaselog.aio.postgres import PostgresAsyncStore
from phaselog.domain import PluginPhase
from phaselog.domain.errors import ConcurrencyConflict, NotFound, StoreUnavailable
from phaselog.domain.plugin import PluginAggregate

from pgserver import free_port

P = PluginPhase


class Stats(BaseModel):
    """A plugin state value."""

    pages: int = 0


BOOT = [P.INSTALLING, P.INSTALLED, P.VALIDATING, P.STARTING, P.RUNNING]


@contextmanager
def sync_side(url: str, astore: AsyncStore) -> Iterator[Store]:
    """The sync store on the same data: a second one on disk, the async store's own in memory."""
    if url == "memory://":
        yield astore.sync
        return
    with open_store(url) as store:
        yield store


def test_async_writes_are_read_by_the_sync_store(store_url: str) -> None:
    """Transitions made through phaselog.aio are the sync store's events, positions and stream heads."""

    async def main() -> list[int]:
        async with open_async_store(store_url) as astore:
            machine = await astore.plugins.machine("billing")
            for phase in BOOT:
                await machine.transition_to(phase, "async")
            await astore.plugins.handle("billing", lambda mgr: mgr.put(1, Stats(pages=3)))
            await machine.refresh()  # handle wrote through the service, not this machine
            assert machine.state == (b'{"pages":3}', 1)
            positions = [n.id for n in await astore.notifications()]
            with sync_side(store_url, astore) as store:
                assert store.plugins.machine("billing").phase == P.RUNNING
                assert [t.to for t in store.plugins.history("billing")] == BOOT
                assert store.plugins.machine("billing").state == machine.state
                assert [n.id for n in store.notifications()] == positions
                assert store.stream_heads("plugin:") == await astore.stream_heads("plugin:")
                assert store.max_position() == await astore.max_position() == positions[-1]
                if store.kind != "memory":
                    assert verify(store).ok
            return positions

    assert asyncio.run(main()) == list(range(1, len(BOOT) + 3))


def test_sync_writes_are_read_by_the_async_store(store_url: str) -> None:
    """Events written by the sync API load, stream and list identically through phaselog.aio."""

    async def main() -> None:
        async with open_async_store(store_url) as astore:
            with sync_side(store_url, astore) as store:
                machine = store.plugins.machine("crawler")
                for phase in BOOT[:3]:
                    machine.transition_to(phase, "sync")
                expected = store.stream("plugin:crawler")
                stored = store.notifications()
            amachine = await astore.plugins.machine("crawler")
            assert amachine.phase == P.VALIDATING
            assert amachine.version == len(expected)
            assert await astore.stream("plugin:crawler") == expected
            assert [n.id for n in await astore.notifications()] == [n.id for n in stored]
            assert [astore.decode(n) for n in await astore.notifications()] == expected
            assert await astore.exists("plugin:crawler")
            assert not await astore.exists("plugin:nobody")
            assert await astore.stream_ids("plugin:") == ["plugin:crawler"]
            assert await astore.plugins.plugin_ids() == ["crawler"]
            loaded = await astore.load("plugin:crawler", PluginAggregate, version=3)
            assert loaded.phase == P.INSTALLED
            with pytest.raises(NotFound):
                await astore.load("plugin:nobody", PluginAggregate)

    asyncio.run(main())


def test_both_apis_interleave_on_one_stream_and_chain(store_url: str) -> None:
    """Alternating sync and async writers extend one stream; a stale writer of either API conflicts."""

    async def main() -> None:
        async with open_async_store(store_url) as astore:
            amachine = await astore.plugins.machine("shared")
            with sync_side(store_url, astore) as store:
                smachine = store.plugins.machine("shared")
                await amachine.transition_to(P.INSTALLING, "async")
                with pytest.raises(ConcurrencyConflict):
                    smachine.transition_to(P.INSTALLING, "sync, stale")
                smachine.transition_to(P.INSTALLED, "sync, reloaded")
                with pytest.raises(ConcurrencyConflict):
                    await amachine.force_phase(P.VALIDATING, "async, stale")
                assert amachine.phase == P.INSTALLED  # reloaded after the conflict
                await amachine.transition_to(P.VALIDATING, "async, reloaded")
                assert [t.reason for t in store.plugins.history("shared")] == [
                    "async",
                    "sync, reloaded",
                    "async, reloaded",
                ]
                if store.kind != "memory":
                    assert verify(store).ok

    asyncio.run(main())


def test_snapshots_written_by_the_async_store_serve_both_loads(store_url: str) -> None:
    """Crossing the snapshot interval stores a snapshot; both APIs load from it what a full replay gives."""

    async def main() -> None:
        async with open_async_store(store_url, snapshot_interval=4) as astore:
            machine = await astore.plugins.machine("snappy")
            for _ in range(3):
                for phase in BOOT:
                    await machine.force_phase(phase, "cycle")
            with sync_side(store_url, astore) as store:
                snapshots = store.app.snapshots
                assert snapshots is not None
                assert [s.originator_version for s in snapshots.get("plugin:snappy")] == [4, 8, 12, 16]
                replay: PluginAggregate = store.app.repository.get("plugin:snappy")
                loaded = await astore.load("plugin:snappy", PluginAggregate)
                synced = store.load("plugin:snappy", PluginAggregate)
                assert synced.snapshot_state() == replay.snapshot_state()
                assert loaded.snapshot_state() == replay.snapshot_state()
                assert loaded.version == 16

    asyncio.run(main())


def test_open_async_store_picks_the_native_postgres_store(make_url: Callable[[str], str]) -> None:
    """A PostgreSQL URL opens the async-pool store; SQLite and memory run a sync store on one thread."""

    async def main() -> None:
        pg_url, lite_url = make_url("postgresql"), make_url("sqlite")
        async with open_async_store(pg_url) as pg, open_async_store(lite_url) as lite:
            assert isinstance(pg, PostgresAsyncStore)
            assert type(lite) is AsyncStore
            assert pg.kind == "postgresql"
            assert lite.kind == "sqlite"
        opened = await open_async_store("memory://")
        try:
            assert await opened.max_position() == 0
        finally:
            await opened.aclose()
            await opened.aclose()  # closing twice is harmless

    asyncio.run(main())


def test_an_unreachable_server_is_store_unavailable() -> None:
    """Opening an async store on a port nobody listens on raises StoreUnavailable."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres?connect_timeout=1"

    async def main() -> None:
        async with open_async_store(url):
            pass  # pragma: no cover - never reached

    with pytest.raises(StoreUnavailable):
        asyncio.run(main())


def test_closed_store_refuses_calls(store_url: str) -> None:
    """After aclose the async store raises StoreUnavailable instead of touching the database."""

    async def main() -> None:
        async with open_async_store(store_url) as astore:
            await astore.plugins.machine("p")
        with pytest.raises(StoreUnavailable):
            await astore.max_position()

    asyncio.run(main())
