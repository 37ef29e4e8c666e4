"""Projection throughput over mixed events, side by side with the raw-driver floor, and rebuild memory.

``run(url)`` fills a fresh store with mixed plugin, task, plan and state events
(100,000; 10,000 with ``PHASELOG_BENCH_QUICK``), then measures in events/s:

* ``catch_up_all``: a fresh runner folding the log into all four read models;
* ``follow_all``: the background runner (one thread and lease per read model)
  folding a second, equal batch of events written while it follows;
* ``rebuild_plugin_phases``: phaselog rebuilding one read model (shadow table + swap);
* ``floor_plugin_phases``: the same fold done with the bare driver (psycopg or
  sqlite3): one ordered scan, orjson decode, dict fold, one bulk insert;
* ``floor_all``: the raw read floor of a catch-up: the bare driver folding all
  four read models in one scan (``read_floors.four_views``); ``catch_up_vs_floor``
  is ``catch_up_all`` over it;
* ``rebuild_all``: all four read models rebuilt (each replays the whole log);
* ``verify``: the audit hash-chain check.

``memory`` rebuilds ``plugin_phases`` in a fresh process over the event count
and over five times as many events (500,000 in the full run) and reports each
process's peak RSS: a rebuild's memory must not grow with the log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import orjson
from eventsourcing.persistence import StoredEvent

sys.path.insert(0, str(Path(__file__).resolve().parent))
import read_floors

from phaselog.adapters import Store, open_store
from phaselog.adapters.audit.history import load_domain_modules, verify
from phaselog.projections.runner import Projections

from bench_common import calibration_loop_s

PHASES = ["Installing", "Installed", "Validating", "Starting", "Running", "Degraded", "Recovering"]


def _events(total: int, suffix: str = "") -> list[StoredEvent]:
    """Mixed events: plugin phase changes, task progress/logs, plan steps, state persists."""
    out: list[StoredEvent] = []
    ts = "2026-01-01T00:00:00Z"
    n = 0
    while len(out) < total:
        kind = n % 4
        sid = f"{n // 4}{suffix}"
        if kind == 0:
            out.append(
                StoredEvent(
                    f"plugin:p{sid}",
                    1,
                    "phaselog.plugin.PluginCreated",
                    orjson.dumps(
                        {
                            "timestamp": ts,
                            "plugin_id": f"p{sid}",
                            "phase": "Uninstalled",
                            "next_backoff": "PT1S",
                        }
                    ),
                )
            )
            out.extend(
                StoredEvent(
                    f"plugin:p{sid}",
                    v + 2,
                    "phaselog.plugin.PhaseChanged",
                    orjson.dumps(
                        {
                            "timestamp": ts,
                            "from_phase": PHASES[v - 1] if v else "Uninstalled",
                            "to_phase": phase,
                            "reason": "bench",
                        }
                    ),
                )
                for v, phase in enumerate(PHASES[:5])
            )
        elif kind == 1:
            stream = f"task:bench:t{sid}"
            out.append(
                StoredEvent(
                    stream,
                    1,
                    "phaselog.task.TaskLaunched",
                    orjson.dumps(
                        {"timestamp": ts, "controller": "bench", "task_id": f"t{sid}", "metadata": "{}"}
                    ),
                )
            )
            out.append(
                StoredEvent(
                    stream,
                    2,
                    "phaselog.task.TaskStateChanged",
                    orjson.dumps({"timestamp": ts, "run": 1, "state": 2}),
                )
            )
            out.append(
                StoredEvent(
                    stream,
                    3,
                    "phaselog.task.TaskLogged",
                    orjson.dumps({"timestamp": ts, "run": 1, "level": 20, "msg": "working"}),
                )
            )
            out.append(
                StoredEvent(
                    stream,
                    4,
                    "phaselog.task.TaskStateChanged",
                    orjson.dumps({"timestamp": ts, "run": 1, "state": 3}),
                )
            )
        elif kind == 2:
            stream = f"plan:pl{sid}"
            out.append(StoredEvent(stream, 1, "phaselog.plan.PlanCreated", orjson.dumps({"timestamp": ts})))
            out.append(
                StoredEvent(
                    stream,
                    2,
                    "phaselog.plan.RunStarted",
                    orjson.dumps(
                        {
                            "timestamp": ts,
                            "run": 1,
                            "layout": [],
                            "continue_on_error": False,
                            "limit_seconds": None,
                        }
                    ),
                )
            )
            out.append(
                StoredEvent(
                    stream,
                    3,
                    "phaselog.plan.StepSucceeded",
                    orjson.dumps({"timestamp": ts, "run": 1, "step": "a", "attempts": 1}),
                )
            )
            out.append(
                StoredEvent(
                    stream,
                    4,
                    "phaselog.plan.RunFinished",
                    orjson.dumps({"timestamp": ts, "run": 1, "status": "succeeded"}),
                )
            )
        else:
            out.extend(
                StoredEvent(
                    f"state:default:k{sid}",
                    v,
                    "phaselog.state.Persisted",
                    orjson.dumps(
                        {
                            "timestamp": ts,
                            "kvs": "default",
                            "key": f"k{sid}",
                            "value": {"n": v},
                            "type_name": "M",
                        }
                    ),
                )
                for v in range(1, 4)
            )
        n += 1
    return out[:total]


def _fill(store: Store, total: int) -> None:
    events = _events(total)
    for i in range(0, len(events), 2000):
        store.app.recorder.insert_events(events[i : i + 2000])


REBUILD_IN_A_FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys, time
    from phaselog.adapters import open_store
    from phaselog.adapters.audit.history import load_domain_modules
    from phaselog.projections.runner import Projections
    load_domain_modules()
    with open_store(sys.argv[1]) as store:
        views = Projections(store)
        started = time.perf_counter()
        rows = views.rebuild("plugin_phases")["plugin_phases"]
        seconds = time.perf_counter() - started
        views.close()
    # VmHWM: this process's own peak (ru_maxrss would include the parent's, inherited across exec)
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_rss_mb": round(peak / 1024, 1)}))
    """
)


def _variant(url: str, tag: str) -> str:
    """Another fresh store next to ``url`` (its own schema or file)."""
    if url.startswith("postgresql"):
        return url.replace("schema=", f"schema={tag}_", 1)
    return url.removesuffix(".db") + f"-{tag}.db"


def _rebuild_memory(url: str, events: int) -> dict[str, object]:
    """Fill a fresh store with ``events`` and rebuild one read model in a fresh process."""
    with open_store(url) as store:
        _fill(store, events)
    done = subprocess.run(
        [sys.executable, "-c", REBUILD_IN_A_FRESH_PROCESS, url], capture_output=True, text=True, check=True
    )
    figures = json.loads(done.stdout)
    return {
        "events": events,
        "rebuild_events_per_s": round(events / figures["seconds"]),
        "peak_rss_mb": figures["peak_rss_mb"],
        "rows": figures["rows"],
    }


def _follow(store: Store, views: Projections, total: int) -> float:
    """Seconds the background runner needs to fold ``total`` more events written while it follows."""
    views.start()
    try:
        views.wait(store.max_position(), timeout=600)
        started = time.perf_counter()
        events = _events(total, suffix="b")  # new streams: no clash with the first fill
        base = store.max_position()
        for i in range(0, len(events), 2000):
            store.app.recorder.insert_events(events[i : i + 2000])
        views.wait(base + total, timeout=600)
        return time.perf_counter() - started
    finally:
        views.stop()


def run(url: str, events: int | None = None) -> dict[str, object]:
    """Fill a store at ``url`` with mixed events and measure the read side (events/s, peak RSS).

    ``events`` defaults to 100,000 (10,000 with ``PHASELOG_BENCH_QUICK``); the tests pass a smoke size.
    """
    load_domain_modules()
    total = events or (10_000 if os.environ.get("PHASELOG_BENCH_QUICK") else 100_000)
    with open_store(url) as store:
        started = time.perf_counter()
        _fill(store, total)
        fill = time.perf_counter() - started
        views = Projections(store)  # the defaults a user gets (batch_size=5000)
        calibration = calibration_loop_s()
        try:
            started = time.perf_counter()
            views.catch_up()
            catch_up = time.perf_counter() - started
            started = time.perf_counter()
            views.rebuild("plugin_phases")
            one = time.perf_counter() - started
            floor = read_floors.one_view(store)
            floor_all = read_floors.four_views(store)
            started = time.perf_counter()
            counts = views.rebuild()
            everything = time.perf_counter() - started
            follow = _follow(store, views, total)
        finally:
            views.close()
        started = time.perf_counter()
        report = verify(store)
        checked = time.perf_counter() - started
    memory = [_rebuild_memory(_variant(url, f"mem{n}"), n * total) for n in (1, 5)]

    def rate(seconds: float) -> int:
        return round(total / seconds)

    return {
        "events": total,
        "calibration_loop_s": calibration,
        "insert_events_per_s": rate(fill),
        "catch_up_all_events_per_s": rate(catch_up),
        "follow_all_events_per_s": rate(follow),
        "rebuild_plugin_phases_events_per_s": rate(one),
        "floor_plugin_phases_events_per_s": rate(floor),
        "rebuild_vs_floor": round(floor / one, 3),
        "floor_all_events_per_s": rate(floor_all),
        "catch_up_vs_floor": round(floor_all / catch_up, 3),
        "rebuild_all_events_per_s": rate(everything),
        "verify_events_per_s": rate(checked),
        "verify_ok": report.ok,
        "rows": counts,
        "memory": {
            "rebuilds": memory,
            "peak_rss_growth_mb": round(memory[1]["peak_rss_mb"] - memory[0]["peak_rss_mb"], 1),  # type: ignore[operator]
        },
    }


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        print(json.dumps(run(f"sqlite:///{folder}/bench-{uuid.uuid4().hex[:6]}.db"), indent=2))
