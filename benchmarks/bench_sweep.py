"""Task sweep benchmark (PostgreSQL): a sweep's cost with many finished tasks beside a few active.

``run(dsn)`` builds two stores on the server at ``dsn`` (fresh schemas), one with
0 finished tasks and one with ``finished`` (100,000; 2,000 with ``--quick``),
each beside 10 *active* tasks held by a live controller (Pending, claimed for an
hour). Between timed sweeps the holder renews its 10 claims, as a live
controller does every ``lease / 3``, so every sweep must load them again (the
controller's memo of idle streams cannot skip them). It reports per store:

* ``first_sweep_ms``: constructing a ``TaskController`` (its first sweep);
* ``sweep_ms_median``/``sweep_ms_max``: later sweeps (``TaskController._resume``);
* ``loads_per_sweep``: task streams each later sweep loaded (10 expected);

and ``ratio`` = median sweep with ``finished`` tasks over median sweep with none
(the goal of issue 16: at most 2). ``build_s`` is how long seeding took.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from phaselog.adapters import Store, open_store
from phaselog.domain.events import Aggregate, DomainEvent, utcnow
from phaselog.domain.task import TaskAggregate, TaskState
from phaselog.runtime.ports import EventStore, StreamHead
from phaselog.runtime.task_models import CancelContext
from phaselog.runtime.task_runner import ActiveTask
from phaselog.runtime.tasks import TaskController

QUICK = bool(os.environ.get("PHASELOG_BENCH_QUICK"))
FINISHED = 2_000 if QUICK else 100_000
ACTIVE = 10
REPEATS = 5 if QUICK else 15
BATCH = 500  # aggregates per store.save call while seeding
NAME = "sweep"
HOLDER = f"{NAME}/live-holder"
AggT = TypeVar("AggT", bound=Aggregate)


class _IdleRunner:
    """Never called: every active task is held by another controller."""

    def on_task_pending(self, ctx: CancelContext, task: ActiveTask) -> None:
        """Nothing to prepare."""

    def on_task_running(self, ctx: CancelContext, task: ActiveTask) -> None:
        """Nothing to do."""

    def on_task_completed(self, ctx: CancelContext, task: ActiveTask, state: TaskState, *args: Any) -> None:
        """Nothing to report."""


class _CountingStore:
    """Delegates to a real store and counts the aggregates loaded (the sweep's unit of work)."""

    def __init__(self, inner: EventStore) -> None:
        self.inner = inner
        self.loads = 0
        self._lock = threading.Lock()

    @property
    def kind(self) -> str:
        """The wrapped store's kind."""
        return self.inner.kind

    def save(self, *aggregates: Aggregate) -> Sequence[object]:
        """Delegate."""
        return self.inner.save(*aggregates)

    def load(self, aggregate_id: str, aggregate_type: type[AggT], *, version: int | None = None) -> AggT:
        """Count, then delegate."""
        with self._lock:
            self.loads += 1
        return self.inner.load(aggregate_id, aggregate_type, version=version)

    def exists(self, aggregate_id: str) -> bool:
        """Delegate."""
        return self.inner.exists(aggregate_id)

    def stream_ids(self, prefix: str = "") -> list[str]:
        """Delegate."""
        return self.inner.stream_ids(prefix)

    def stream_heads(self, prefix: str = "", *, open_only: bool = False) -> list[StreamHead]:
        """Delegate."""
        return self.inner.stream_heads(prefix, open_only=open_only)

    def stream(
        self, aggregate_id: str, *, gt: int | None = None, lte: int | None = None
    ) -> list[DomainEvent]:
        """Delegate."""
        return self.inner.stream(aggregate_id, gt=gt, lte=lte)

    def close(self) -> None:
        """The benchmark closes the real store."""


def _finished(task_id: str, end: TaskState) -> TaskAggregate:
    owner = f"{NAME}/gone"
    agg = TaskAggregate.launch(NAME, task_id, "", owner, utcnow() + timedelta(seconds=30))
    if end is not TaskState.FAILED:
        agg.change_state(1, owner, TaskState.RUNNING)
    agg.change_state(1, owner, end)
    agg.mark_delivered(1, owner)
    return agg


def _seed(store: Store, finished: int) -> list[str]:
    """Save ``finished`` delivered tasks (many per append) and the active ones; return the active ids."""
    ends = (TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELED)
    for start in range(0, finished, BATCH):
        stop = min(start + BATCH, finished)
        store.save(*(_finished(f"done-{i:06d}", ends[i % 3]) for i in range(start, stop)))
    active = [TaskAggregate.launch(NAME, f"active-{i:02d}", "", HOLDER, utcnow() + timedelta(hours=1))
              for i in range(ACTIVE)]
    store.save(*active)
    return [agg.id for agg in active]


def _renew(store: Store, active: list[str]) -> None:
    """The live holder renews its claims (so every sweep has to look at them again)."""
    now = utcnow()
    renewed = []
    for sid in active:
        agg = store.load(sid, TaskAggregate)
        agg.claim(HOLDER, now + timedelta(hours=1), now)
        renewed.append(agg)
    store.save(*renewed)


def _measure(url: str, finished: int, repeats: int) -> dict[str, Any]:
    with open_store(url) as store:
        started = time.perf_counter()
        active = _seed(store, finished)
        build_s = time.perf_counter() - started
        counting = _CountingStore(store)
        started = time.perf_counter()
        ctl = TaskController(counting, NAME, _IdleRunner(), lease=timedelta(seconds=30),
                             sweep_interval=timedelta(hours=1))  # only the timed sweeps run
        first_ms = (time.perf_counter() - started) * 1000
        first_loads = counting.loads
        times, loads = [], []
        with ctl:
            for _ in range(repeats):
                _renew(store, active)
                before = counting.loads
                started = time.perf_counter()
                ctl._resume(attempts=1)  # noqa: SLF001 - the benchmark times the sweep itself
                times.append((time.perf_counter() - started) * 1000)
                loads.append(counting.loads - before)
            if ctl.active_tasks():
                msg = "the sweep adopted a task held by a live controller"
                raise RuntimeError(msg)
    return {
        "finished_tasks": finished,
        "active_tasks": ACTIVE,
        "build_s": round(build_s, 1),
        "first_sweep_ms": round(first_ms, 2),
        "first_sweep_loads": first_loads,
        "sweep_ms_median": round(statistics.median(times), 3),
        "sweep_ms_max": round(max(times), 3),
        "loads_per_sweep": max(loads),
    }


def run(dsn: str, finished: int = FINISHED, repeats: int = REPEATS) -> dict[str, Any]:
    """Measure sweeps with 0 and with ``finished`` finished tasks on fresh schemas of ``dsn``."""
    tag = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
    sep = "&" if "?" in dsn else "?"
    empty = _measure(f"{dsn}{sep}schema=bench_sweep0_{tag}", 0, repeats)
    full = _measure(f"{dsn}{sep}schema=bench_sweep_{tag}", finished, repeats)
    ratio = full["sweep_ms_median"] / max(empty["sweep_ms_median"], 1e-9)
    return {
        "store": "postgresql",
        "without_finished": empty,
        "with_finished": full,
        "ratio": round(ratio, 2),
        "goal_ratio_at_most": 2,
    }


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from pgserver import PostgresServer

    if len(sys.argv) > 1:
        print(json.dumps(run(sys.argv[1]), indent=2))
    else:
        server = PostgresServer.start()
        try:
            print(json.dumps(run(server.dsn), indent=2))
        finally:
            server.stop()
