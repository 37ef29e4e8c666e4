"""Task controller benchmark: launch throughput, end-to-end latency, and progress coalescing.

``run(url)`` measures on the given store:

* ``launch_tasks_per_s``: trivial tasks launched and run to a delivered
  completion (about 7 events each), ``max_workers=8``;
* ``task_latency_ms_median``: launch → completion callback of one trivial task;
* ``progress_updates_per_s``: ``set_progress`` calls a runner makes while the
  controller persists them every 200 ms, with ``progress_events`` the number of
  progress events actually written for those updates;
* ``progress_call_us``: the average cost of one ``set_progress`` call.
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
from functools import partial
from pathlib import Path
from typing import Any

from phaselog.adapters import open_store
from phaselog.domain.task import TaskAggregate, TaskState, task_stream_id
from phaselog.runtime.task_models import CancelContext, TaskStatus
from phaselog.runtime.task_runner import ActiveTask
from phaselog.runtime.tasks import TaskController

QUICK = bool(os.environ.get("PHASELOG_BENCH_QUICK"))


class BenchRunner:
    """Trivial tasks, except ``progress-*`` which reports progress in a tight loop."""

    def __init__(self, updates: int) -> None:
        self.updates = updates
        self.progress_seconds = 0.0

    def on_task_pending(self, ctx: CancelContext, task: ActiveTask) -> None:
        """Nothing to prepare."""

    def on_task_running(self, ctx: CancelContext, task: ActiveTask) -> None:  # noqa: ARG002 - protocol
        """Report progress ``updates`` times for progress tasks."""
        if task.task_id.startswith("progress-"):
            start = time.perf_counter()
            for i in range(1, self.updates + 1):
                task.set_progress(i, self.updates)
            self.progress_seconds = time.perf_counter() - start

    def on_task_completed(self, ctx: CancelContext, task: ActiveTask, state: TaskState, *args: Any) -> None:
        """Nothing to report."""


def _set(event: threading.Event, _status: TaskStatus) -> None:
    event.set()


def _wait(done: threading.Event, what: str, timeout: float = 300) -> None:
    if not done.wait(timeout):
        msg = f"benchmark timed out waiting for {what}"
        raise TimeoutError(msg)


def run(url: str) -> dict[str, object]:
    """Run the task benchmarks on ``url``; return JSON-able measurements."""
    tasks = 40 if QUICK else 200
    updates = 50_000 if QUICK else 500_000
    token = uuid.uuid4().hex[:6]
    runner = BenchRunner(updates)
    with open_store(url) as store, TaskController(store, "bench", runner, max_workers=8) as ctl:
        # launch throughput
        remaining = [tasks]
        all_done = threading.Event()
        lock = threading.Lock()

        def count(_status: TaskStatus) -> None:
            with lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    all_done.set()

        start = time.perf_counter()
        for i in range(tasks):
            ctl.launch_task(f"t{i}-{token}", metadata={"i": i}, on_status=count)
        _wait(all_done, "launched tasks")
        launch_s = time.perf_counter() - start

        # latency of single tasks
        latencies = []
        for i in range(5 if QUICK else 20):
            one = threading.Event()
            start = time.perf_counter()
            ctl.launch_task(f"lat{i}-{token}", on_status=partial(_set, one))
            _wait(one, "a single task")
            latencies.append(time.perf_counter() - start)

        # progress coalescing
        finished = threading.Event()
        pid = f"progress-{token}"
        ctl.launch_task(pid, on_status=partial(_set, finished))
        _wait(finished, "the progress task")
        events = store.stream(task_stream_id("bench", pid))
        progress_events = sum(type(e).__name__ == "TaskProgressed" for e in events)
        final = store.load(task_stream_id("bench", pid), TaskAggregate).progress
    return {
        "store": url.split(":", 1)[0],
        "tasks": tasks,
        "launch_tasks_per_s": round(tasks / launch_s, 1),
        "task_latency_ms_median": round(statistics.median(latencies) * 1000, 2),
        "progress_updates": updates,
        "progress_updates_per_s": round(updates / runner.progress_seconds),
        "progress_call_us": round(runner.progress_seconds / updates * 1e6, 3),
        "progress_events": progress_events,
        "final_progress_durable": final == (updates, updates),
    }


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        target = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{Path(folder) / 'bench.db'}"
        print(json.dumps(run(target), indent=2))
