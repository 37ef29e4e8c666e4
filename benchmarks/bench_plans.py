"""Durable plan benchmark: step throughput, state writes, reload cost and cancellation latency.

``run(url)`` measures on the given store:

* ``steps_per_s``: trivial steps executed (each step records 5 events in one commit:
  its attempt, made durable before the hooks run together with the previous step's
  outcomes, then three hook outcomes and its success; a step without a cleanup
  function records no cleanup);
* ``events_per_step``: events recorded per step, as measured;
* ``state_writes_per_s``: ``plan.state[key] = value`` calls (one event each);
* ``reload_ms``: ``Plan(store, id)`` on a plan whose stream holds ``reload_events``
  events (snapshots every 100 events keep this flat);
* ``cancel_latency_ms_median``: ``ctx.cancel()`` during a long pause until
  ``execute()`` has raised ``PlanCancelled`` (cleanup of one step included).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

from phaselog.adapters import open_store
from phaselog.domain.plan import PlanCancelled
from phaselog.runtime.plan_state import GenericStep, PlanContext
from phaselog.runtime.plans import Plan

QUICK = bool(os.environ.get("PHASELOG_BENCH_QUICK"))


def run(url: str) -> dict[str, object]:
    """Measure plans on the store at ``url``; return JSON-able figures."""
    steps = 50 if QUICK else 300
    writes = 100 if QUICK else 500
    cancels = 3 if QUICK else 10
    token = uuid.uuid4().hex[:8]
    with open_store(url) as store:
        plan = Plan(store, f"bench-steps-{token}")
        for i in range(steps):
            plan.add_step(GenericStep(f"s{i}"))
        started = time.perf_counter()
        plan.execute()
        step_seconds = time.perf_counter() - started
        events = len(store.stream(f"plan:bench-steps-{token}"))

        state_plan = Plan(store, f"bench-state-{token}")
        started = time.perf_counter()
        for i in range(writes):
            state_plan.state[f"k{i % 10}"] = i
        write_seconds = time.perf_counter() - started

        started = time.perf_counter()
        reloaded = Plan(store, f"bench-steps-{token}")
        reload_seconds = time.perf_counter() - started
        assert reloaded.runs(), "the reloaded plan lost its run"

        latencies = []
        for i in range(cancels):
            ctx = PlanContext()
            paused = Plan(store, f"bench-cancel-{token}-{i}").add_step(GenericStep("a"))
            paused.add_pause(timedelta(hours=1))
            ready = threading.Event()
            paused.state["armed"] = True  # create the stream before timing
            paused.add_step(GenericStep("b"))
            box: list[float] = []

            def execute(
                plan: Plan = paused,
                ctx: PlanContext = ctx,
                box: list[float] = box,
                ready: threading.Event = ready,
            ) -> None:
                ready.set()
                try:
                    plan.execute(ctx)
                except PlanCancelled:
                    box.append(time.perf_counter())

            worker = threading.Thread(target=execute)
            worker.start()
            ready.wait(60)
            deadline = time.monotonic() + 60
            while paused.current_run() is None or not paused.current_run().pauses_started:  # type: ignore[union-attr]
                if time.monotonic() > deadline:
                    msg = "the paused plan never reached its pause"
                    raise RuntimeError(msg)
                time.sleep(0.005)
            cancelled_at = time.perf_counter()
            ctx.cancel()
            worker.join(60)
            latencies.append((box[0] - cancelled_at) * 1000)
    return {
        "steps": steps,
        "steps_per_s": round(steps / step_seconds, 1),
        "events_per_step": round((events - 4) / steps, 2),  # minus created, started, cleanup, finished
        "state_writes_per_s": round(writes / write_seconds, 1),
        "reload_events": events,
        "reload_ms": round(reload_seconds * 1000, 2),
        "cancel_latency_ms_median": round(statistics.median(latencies), 2),
    }


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        print(
            json.dumps(
                run(sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{Path(tmp) / 'plans.db'}"), indent=2
            )
        )
