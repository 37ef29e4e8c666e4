from __future__ import annotations

import asyncio

import pytest

from phaselog.aio import open_async_store
from phaselog.domain import PluginPhase
from phaselog.projections import ProjectionTimeout

P = PluginPhase


def test_wait_then_query_read_models_without_blocking_the_loop(store_url: str) -> None:
    """After await wait(position), the plugin_phases read model answers get and list with the async writes."""

    async def main() -> None:
        async with open_async_store(store_url) as store:
            cam = await store.plugins.machine("cam")
            mic = await store.plugins.machine("mic")
            await cam.transition_to(P.INSTALLING, "go")
            await cam.transition_to(P.INSTALLED, "done")
            await mic.transition_to(P.INSTALLING, "go")
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0)

            position = await store.max_position()
            beat = asyncio.create_task(ticker())
            await asyncio.sleep(0)
            before = ticks
            await store.projections.wait(position, timeout=30)
            beat.cancel()
            assert ticks > before  # the loop kept running while the read models caught up
            row = await store.projections.plugin_phases.get("cam")
            assert row is not None
            assert row["phase"] == "Installed"
            assert await store.projections.plugin_phases.get("nobody") is None
            installing = await store.projections.plugin_phases.list(phase="Installing")
            assert [r["plugin_id"] for r in installing] == ["mic"]
            assert await store.projections.position() >= await store.max_position()
            assert {s["name"] for s in await store.projections.status()} >= {"plugin_phases"}
            assert (await store.projections["plugin_phases"].get("mic") or {}).get("phase") == "Installing"

    asyncio.run(main())


def test_wait_for_a_position_never_written_times_out(store_url: str) -> None:
    """wait() for a position beyond the log raises ProjectionTimeout after its timeout."""

    async def main() -> None:
        async with open_async_store(store_url) as store:
            await store.plugins.machine("p")
            with pytest.raises(ProjectionTimeout):
                await store.projections.wait(await store.max_position() + 5, timeout=0.3)

    asyncio.run(main())
