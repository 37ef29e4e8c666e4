"""Async benchmark: many coroutines on one event loop against the sync API on a thread pool.

Workload (PostgreSQL, ``phaselog.aio`` vs the sync API): ``coroutines`` plugins,
each doing ``transitions`` transitions one after another (Running -> Degraded,
forced back to Running, ...), all plugins at once:

* ``async``: one event loop, one coroutine per plugin, an ``AsyncConnectionPool`` of
  ``connections`` connections (no thread per call);
* ``sync``: a ``ThreadPoolExecutor`` of ``connections`` threads running the same
  per-plugin loops on a sync store whose pool has ``connections`` connections.

Reported: events per second (wall clock of the whole workload), per-transition
latency (mean, p50, p95 as each caller saw it: on the async side that includes
waiting for one of the pool's connections, on the sync side the wait happens in
the executor's queue, before the call), the time from the start until each
plugin's last transition (the same clock on both sides) and the threads used.
``PHASELOG_BENCH_QUICK=1`` shrinks the workload.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phaselog.adapters import open_store
from phaselog.aio import AsyncPluginStateMachine, open_async_store
from phaselog.domain.plugin import PluginPhase
from phaselog.runtime.plugins import PluginStateMachine

from bench_common import latency_summary, main_on_postgres

P = PluginPhase


def _url(dsn: str, connections: int) -> str:
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}schema=bench_aio_{uuid.uuid4().hex[:8]}&pool_min={connections}&pool_max={connections}"


async def _async_plugin(
    machine: AsyncPluginStateMachine, n: int, samples: list[float], done: list[float]
) -> None:
    for i in range(n):
        started = time.perf_counter()
        if i % 2 == 0:
            await machine.transition_to(P.DEGRADED, "bench")
        else:
            await machine.force_phase(P.RUNNING, "bench")
        samples.append(time.perf_counter() - started)
    done.append(time.perf_counter())


async def _async_run(url: str, coroutines: int, transitions: int, connections: int) -> dict[str, Any]:
    async with open_async_store(url, pool_size=connections) as store:
        machines = await asyncio.gather(
            *(store.plugins.machine(f"a{i}", initial=P.RUNNING) for i in range(coroutines))
        )
        samples: list[float] = []
        done: list[float] = []
        threads = threading.active_count()
        started = time.perf_counter()
        await asyncio.gather(*(_async_plugin(m, transitions, samples, done) for m in machines))
        wall = time.perf_counter() - started
        assert await store.max_position() >= coroutines * (transitions + 1)
    return _figures(samples, wall, threads, [t - started for t in done])


def _sync_plugin(machine: PluginStateMachine, n: int, samples: list[float], done: list[float]) -> None:
    for i in range(n):
        started = time.perf_counter()
        if i % 2 == 0:
            machine.transition_to(P.DEGRADED, "bench")
        else:
            machine.force_phase(P.RUNNING, "bench")
        samples.append(time.perf_counter() - started)
    done.append(time.perf_counter())


def _sync_run(url: str, coroutines: int, transitions: int, connections: int) -> dict[str, Any]:
    with open_store(url) as store, ThreadPoolExecutor(max_workers=connections) as pool:
        machines = list(
            pool.map(lambda i: store.plugins.machine(f"s{i}", initial=P.RUNNING), range(coroutines))
        )
        samples: list[float] = []  # list.append is atomic: threads share it safely
        done: list[float] = []
        started = time.perf_counter()
        for future in [pool.submit(_sync_plugin, m, transitions, samples, done) for m in machines]:
            future.result()
        wall = time.perf_counter() - started
        threads = threading.active_count()
        assert store.max_position() >= coroutines * (transitions + 1)
    return _figures(samples, wall, threads, [t - started for t in done])


def _figures(samples: list[float], wall: float, threads: int, finished: list[float]) -> dict[str, Any]:
    ordered = sorted(finished)
    return {
        "events": len(samples),
        "seconds": round(wall, 2),
        "events_per_s": round(len(samples) / wall, 1),
        "threads": threads,
        **{k: v for k, v in latency_summary(samples).items() if k != "ops_per_s"},
        # from the start of the workload until a plugin's last transition: the same clock on both sides
        "plugin_done_p50_ms": round(ordered[len(ordered) // 2] * 1000, 1),
        "plugin_done_p95_ms": round(ordered[int(len(ordered) * 0.95)] * 1000, 1),
    }


def run(
    dsn: str, *, coroutines: int | None = None, transitions: int | None = None, connections: int = 16
) -> dict[str, Any]:
    """Both sides on fresh schemas of one server; ratios of async to sync in the same run."""
    quick = bool(os.environ.get("PHASELOG_BENCH_QUICK"))
    count = coroutines or (100 if quick else 1000)
    per = transitions or (4 if quick else 10)
    sync = _sync_run(_url(dsn, connections), count, per, connections)
    async_ = asyncio.run(_async_run(_url(dsn, connections), count, per, connections))
    return {
        "workload": {"plugins": count, "transitions_each": per, "connections": connections},
        "sync_thread_pool": sync,
        "async_one_loop": async_,
        "throughput_ratio_async_to_sync": round(async_["events_per_s"] / sync["events_per_s"], 2),
        "p95_ratio_async_to_sync": round(async_["p95_ms"] / sync["p95_ms"], 2),
        "plugin_done_p95_ratio_async_to_sync": round(
            async_["plugin_done_p95_ms"] / sync["plugin_done_p95_ms"], 2
        ),
    }


if __name__ == "__main__":
    main_on_postgres(run)
