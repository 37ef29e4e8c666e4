"""Recoverable-state benchmark: persisting, skipping unchanged values, recovering.

Workloads (all on one store URL):

* ``persist_changed``: ``await persist_state()`` after each change (one event each);
* ``persist_unchanged``: ``persist_state()`` with nothing changed (no I/O: compared
  with the last recorded value);
* ``periodic``: 20 states on one ``EventManager`` ticking every 10 ms, each changed
  between ticks, for a fixed number of ticks;
* ``recover``: ``initialize()`` of a key with a long history (snapshots every 100
  events, so only the tail is replayed);
* ``sync_persist``: the sync facade's ``persist_state()`` after each change.

``PHASELOG_BENCH_QUICK=1`` shrinks the workloads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phaselog.adapters import Store, open_store
from phaselog.runtime.recoverable import EventManager, RecoverableState, SyncRecoverableState

from bench_common import latency_summary

log = logging.getLogger("bench.state")


class CrawlStats(BaseModel):
    """A statistics object of realistic size (~1 KB of JSON)."""

    finished: int = 0
    failed: int = 0
    retry_histogram: list[int] = Field(default_factory=lambda: [0] * 10)
    recent_urls: list[str] = Field(default_factory=list)


def _bump(stats: CrawlStats, n: int) -> None:
    stats.finished += 1
    stats.retry_histogram[n % 10] += 1
    stats.recent_urls = [*stats.recent_urls, f"https://shop.example/products/{n}/details"][-20:]


def _state(store: Store, key: str, manager: EventManager | None = None) -> RecoverableState[CrawlStats]:
    return RecoverableState(
        default_state=CrawlStats(),
        persist_state_key=key,
        persistence_enabled=True if manager else "explicit_only",
        persist_state_kvs_name="bench",
        logger=log,
        store=store,
        event_manager=manager,
    )


async def _persist_changed(store: Store, tag: str, n: int) -> dict[str, Any]:
    state = _state(store, f"changed-{tag}")
    stats = await state.initialize()
    samples = []
    for i in range(n):
        _bump(stats, i)
        started = time.perf_counter()
        await state.persist_state()
        samples.append(time.perf_counter() - started)
    return {"n": n, **latency_summary(samples), "events": len(store.stream(state.stream_id))}


async def _persist_unchanged(store: Store, tag: str, n: int) -> dict[str, Any]:
    state = _state(store, f"unchanged-{tag}")
    _bump(await state.initialize(), 0)
    await state.persist_state()
    started = time.perf_counter()
    for _ in range(n):
        await state.persist_state()
    elapsed = time.perf_counter() - started
    return {
        "n": n,
        "mean_us": round(elapsed / n * 1e6, 1),
        "events": len(store.stream(state.stream_id)),
    }


async def _periodic(store: Store, tag: str, ticks: int) -> dict[str, Any]:
    states = 20
    started = time.perf_counter()
    async with EventManager(timedelta(milliseconds=10)) as manager:
        objs = [_state(store, f"periodic-{tag}-{k}", manager) for k in range(states)]
        values = [await s.initialize() for s in objs]
        for t in range(ticks):
            for v in values:
                _bump(v, t)
            await asyncio.sleep(0.01)
        for s in objs:
            await s.teardown()
    elapsed = time.perf_counter() - started
    events = sum(len(store.stream(s.stream_id)) for s in objs)
    return {
        "states": states,
        "ticks": ticks,
        "seconds": round(elapsed, 2),
        "events": events,
        "events_per_s": round(events / elapsed, 1),
    }


async def _recover(store: Store, tag: str, history: int) -> dict[str, Any]:
    writer = _state(store, f"recover-{tag}")
    stats = await writer.initialize()
    for i in range(history):
        _bump(stats, i)
        await writer.persist_state()
    samples = []
    for _ in range(20):
        reader = _state(store, f"recover-{tag}")
        started = time.perf_counter()
        value = await reader.initialize()
        samples.append(time.perf_counter() - started)
        assert value == stats
    return {"history_events": history, **latency_summary(samples)}


def _sync_persist(store: Store, tag: str, n: int) -> dict[str, Any]:
    state = SyncRecoverableState(
        default_state=CrawlStats(),
        persist_state_key=f"sync-{tag}",
        persistence_enabled="explicit_only",
        persist_state_kvs_name="bench",
        logger=log,
        store=store,
    )
    stats = state.initialize()
    samples = []
    for i in range(n):
        _bump(stats, i)
        started = time.perf_counter()
        state.persist_state()
        samples.append(time.perf_counter() - started)
    return {"n": n, **latency_summary(samples)}


def run(url: str) -> dict[str, object]:
    """Run every workload against the store at ``url``; return JSON-able measurements."""
    quick = bool(os.environ.get("PHASELOG_BENCH_QUICK"))
    n, history, ticks = (100, 300, 10) if quick else (500, 2000, 50)
    tag = uuid.uuid4().hex[:8]
    with open_store(url) as store:
        result: dict[str, object] = {
            "persist_changed": asyncio.run(_persist_changed(store, tag, n)),
            "persist_unchanged": asyncio.run(_persist_unchanged(store, tag, n * 10)),
            "periodic": asyncio.run(_periodic(store, tag, ticks)),
            "recover": asyncio.run(_recover(store, tag, history)),
            "sync_persist": _sync_persist(store, tag, n),
        }
    return result


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        target = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{tmp}/bench_state.db"
        print(json.dumps(run(target), indent=2))
