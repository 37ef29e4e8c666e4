"""Task sweep benchmark (PostgreSQL): a sweep's cost with many finished tasks beside a few active.

``run(dsn)`` builds two stores on the server at ``dsn`` (fresh schemas), one with
0 finished tasks and one with ``finished`` (100,000; 2,000 with ``--quick``),
each beside 10 *active* tasks held by a live controller (Pending, claimed for an
hour). Between timed sweeps the holder renews its 10 claims, as a live
controller does every ``lease / 3``, so every sweep must load them again (the
controller's memo of idle streams cannot skip them). It reports per store:

* ``first_sweep_ms``: constructing a ``TaskController`` (its first sweep);
* ``sweep_ms_median``/``sweep_ms_max``: later sweeps (``TaskController._resume``), the two
  setups sweeping in turn so a noisy machine slows both alike;
* ``loads_per_sweep``: task streams each later sweep loaded (10 expected);

and ``ratio`` = median sweep with ``finished`` tasks over median sweep with none
(the goal: at most 2). ``build_s`` is how long seeding took.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the test suite's helpers

from sweep_helpers import CountingStore, save_finished

from phaselog.adapters import Store, open_store
from phaselog.domain.events import utcnow
from phaselog.domain.task import TaskAggregate, TaskState
from phaselog.runtime.task_models import CancelContext
from phaselog.runtime.task_runner import ActiveTask
from phaselog.runtime.tasks import TaskController

QUICK = bool(os.environ.get("PHASELOG_BENCH_QUICK"))
FINISHED = 2_000 if QUICK else 100_000
ACTIVE = 10
REPEATS = 15 if QUICK else 40
BATCH = 500  # aggregates per store.save call while seeding
NAME = "sweep"
HOLDER = f"{NAME}/live-holder"


class _IdleRunner:
    """Never called: every active task is held by another controller."""

    def on_task_pending(self, ctx: CancelContext, task: ActiveTask) -> None:
        """Nothing to prepare."""

    def on_task_running(self, ctx: CancelContext, task: ActiveTask) -> None:
        """Nothing to do."""

    def on_task_completed(self, ctx: CancelContext, task: ActiveTask, state: TaskState, *args: Any) -> None:
        """Nothing to report."""


def _seed(store: Store, finished: int) -> list[str]:
    """Save ``finished`` delivered tasks (many per append) and the active ones; return the active ids."""
    save_finished(store, NAME, finished, batch=BATCH)
    active = [
        TaskAggregate.launch(NAME, f"active-{i:02d}", "", HOLDER, utcnow() + timedelta(hours=1))
        for i in range(ACTIVE)
    ]
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


class _Setup:
    """One store with ``finished`` finished tasks and the active ones, and a controller sweeping it."""

    def __init__(self, stack: ExitStack, url: str, finished: int) -> None:
        self.finished = finished
        self.store = stack.enter_context(open_store(url))
        started = time.perf_counter()
        self.active = _seed(self.store, finished)
        self.build_s = time.perf_counter() - started
        self.counting = CountingStore(self.store)
        started = time.perf_counter()
        self.ctl = stack.enter_context(
            TaskController(
                self.counting,
                NAME,
                _IdleRunner(),
                lease=timedelta(seconds=30),
                sweep_interval=timedelta(hours=1),
            )  # only the timed sweeps run
        )
        self.first_ms = (time.perf_counter() - started) * 1000
        self.first_loads = self.loaded()
        self.times: list[float] = []
        self.loads: list[int] = []

    def loaded(self) -> int:
        """Aggregates the controller has loaded so far (the sweep's unit of work)."""
        return sum(self.counting.loads.values())

    def sweep(self) -> None:
        """Let the holder renew its claims, then time one sweep."""
        _renew(self.store, self.active)
        before = self.loaded()
        started = time.perf_counter()
        self.ctl._resume(attempts=1)  # noqa: SLF001 - the benchmark times the sweep itself
        self.times.append((time.perf_counter() - started) * 1000)
        self.loads.append(self.loaded() - before)
        if self.ctl.active_tasks():
            msg = "the sweep adopted a task held by a live controller"
            raise RuntimeError(msg)

    def figures(self) -> dict[str, Any]:
        """The JSON figures of this setup."""
        return {
            "finished_tasks": self.finished,
            "active_tasks": ACTIVE,
            "build_s": round(self.build_s, 1),
            "first_sweep_ms": round(self.first_ms, 2),
            "first_sweep_loads": self.first_loads,
            "sweeps": len(self.times),
            "sweep_ms_median": round(statistics.median(self.times), 3),
            "sweep_ms_max": round(max(self.times), 3),
            "loads_per_sweep": max(self.loads),
        }


def run(dsn: str, finished: int = FINISHED, repeats: int = REPEATS) -> dict[str, Any]:
    """Measure sweeps with 0 and with ``finished`` finished tasks on fresh schemas of ``dsn``.

    The two setups sweep in turn (0, N, 0, N, ...), so a noisy machine slows both alike.
    """
    tag = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
    sep = "&" if "?" in dsn else "?"
    with ExitStack() as stack:
        empty = _Setup(stack, f"{dsn}{sep}schema=bench_sweep0_{tag}", 0)
        full = _Setup(stack, f"{dsn}{sep}schema=bench_sweep_{tag}", finished)
        for _ in range(repeats):
            empty.sweep()
            full.sweep()
        without, with_ = empty.figures(), full.figures()
    ratio = with_["sweep_ms_median"] / max(without["sweep_ms_median"], 1e-9)
    return {
        "store": "postgresql",
        "without_finished": without,
        "with_finished": with_,
        "ratio": round(ratio, 2),
        "goal_ratio_at_most": 2,
    }


if __name__ == "__main__":
    from bench_common import main_on_postgres

    main_on_postgres(run)
