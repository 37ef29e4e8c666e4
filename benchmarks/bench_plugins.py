"""Plugin benchmark: transitions, state writes, and loading long histories from snapshots.

Workloads (all on one store URL):

* ``transition``: ``machine.transition_to`` round trips (one event each, durable);
* ``handle``: ``store.plugins.handle`` writing a small state model (one event each);
* ``load``: opening a machine for plugins with 137, 1,037 and 10,037 events
  (snapshot every 100 events, so each load reads one snapshot plus a 37-event
  tail); its time must not grow with history length;
* ``full_replay``: folding all 10,037 events without a snapshot, for comparison;
* ``history``: ``machine.history()`` of the 10,037-event plugin (reads every event).

``PHASELOG_BENCH_QUICK=1`` shrinks the workloads.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phaselog.adapters import Store, open_store
from phaselog.domain.plugin import PluginAggregate, PluginPhase
from phaselog.domain.plugin_state import PluginStateManager
from phaselog.runtime.plugins import PluginStateMachine

from bench_common import latency_summary

P = PluginPhase
TAIL = 37


class Checkpoint(BaseModel):
    """A small plugin state."""

    offset: int
    cursor: str


def _transitions(store: Store, tag: str, n: int) -> dict[str, Any]:
    machine: PluginStateMachine = store.plugins.machine(f"bench-t-{tag}", initial=P.RUNNING)
    samples = []
    for _ in range(n):
        to = P.DEGRADED if machine.phase is P.RUNNING else P.RUNNING
        started = time.perf_counter()
        if to is P.DEGRADED:
            machine.transition_to(to, "bench")
        else:
            machine.force_phase(to, "bench")
        samples.append(time.perf_counter() - started)
    return {"n": n, **latency_summary(samples)}


def _handle(store: Store, tag: str, n: int) -> dict[str, Any]:
    plugin_id = f"bench-h-{tag}"
    store.plugins.machine(plugin_id)
    samples = []
    for i in range(n):

        def work(mgr: PluginStateManager, i: int = i) -> None:
            mgr.get(Checkpoint)
            mgr.put(1, Checkpoint(offset=i, cursor=f"c-{i}"))

        started = time.perf_counter()
        store.plugins.handle(plugin_id, work)
        samples.append(time.perf_counter() - started)
    return {"n": n, **latency_summary(samples)}


def _build(store: Store, plugin_id: str, total: int) -> None:
    """A plugin with ``total`` events: bulk batches, then a tail of single saves."""
    store.plugins.machine(plugin_id, initial=P.RUNNING)
    agg = store.load(f"plugin:{plugin_id}", PluginAggregate)
    i = 0
    while agg.version < total:
        batch = min(500, total - TAIL - agg.version) if agg.version < total - TAIL else 1
        for _ in range(batch):
            i += 1
            if i % 7 == 0:
                agg.write_state(orjson.dumps({"offset": i, "cursor": f"c-{i}"}), 1)
            else:
                agg.change_phase(P.DEGRADED if agg.phase is P.RUNNING else P.RUNNING, "flap", forced=True)
        store.save(agg)


def _load(store: Store, tag: str, sizes: list[int], repeats: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for size in sizes:
        plugin_id = f"bench-l-{tag}-{size}"
        _build(store, plugin_id, size + TAIL)
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            machine: PluginStateMachine = store.plugins.machine(plugin_id)
            samples.append(time.perf_counter() - started)
            assert machine.version == size + TAIL
        results[str(size + TAIL)] = latency_summary(samples)
    return results


def _full_replay(store: Store, tag: str, size: int, repeats: int) -> dict[str, Any]:
    stream_id = f"plugin:bench-l-{tag}-{size}"
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        agg: Any = None
        for event in store.stream(stream_id):
            agg = event.mutate(agg)
        samples.append(time.perf_counter() - started)
        assert agg.version == size + TAIL
    return {"events": size + TAIL, **latency_summary(samples)}


def _history(store: Store, tag: str, size: int, repeats: int) -> dict[str, Any]:
    machine: PluginStateMachine = store.plugins.machine(f"bench-l-{tag}-{size}")
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        count = len(machine.history())
        samples.append(time.perf_counter() - started)
    return {"events": size + TAIL, "transitions": count, **latency_summary(samples)}


def run(url: str) -> dict[str, object]:
    """Run the plugin workloads on the store at ``url``; return JSON-able measurements."""
    quick = bool(os.environ.get("PHASELOG_BENCH_QUICK"))
    tag = uuid.uuid4().hex[:6]
    sizes = [100, 1_000] if quick else [100, 1_000, 10_000]
    with open_store(url) as store:
        return {
            "store": store.kind,
            "snapshot_interval": store.snapshot_interval,
            "transition": _transitions(store, tag, 30 if quick else 300),
            "handle": _handle(store, tag, 30 if quick else 300),
            "load": _load(store, tag, sizes, 5 if quick else 20),
            "full_replay": _full_replay(store, tag, sizes[-1], 2 if quick else 5),
            "history": _history(store, tag, sizes[-1], 2 if quick else 5),
        }


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    print(json.dumps(run(target), indent=2))
