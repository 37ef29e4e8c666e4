"""Scaling curves: throughput of 1, 2, 4 and 8 service processes sharing one PostgreSQL.

``run(dsn)`` starts, for each process count, that many worker processes (each
its own ``open_store``, as separate service instances would) released together
by a barrier, lets them work for a fixed window, and reports:

* ``transitions_per_s``: plugin phase transitions (one event each), each process
  cycling its own plugins through Stopped → Starting → Running → Stopping → Stopped;
* ``task_runs_per_s``: trivial tasks launched and run to a delivered completion by
  one ``TaskController`` per process (``max_workers=4``);
* ``xact_commit_per_s``: the server's own commit rate during the window
  (``pg_stat_database.xact_commit``), and ``commits_per_op`` derived from it;
* ``raw_commit_per_s`` (the ceiling): the same processes each committing a
  one-row INSERT per transaction with plain psycopg, nothing else.

Each curve is printed beside the raw ceiling of the same process count, measured
in the same run on the same server, so ratios survive a noisy shared machine.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from phaselog.adapters import open_store
from phaselog.domain import PluginPhase
from phaselog.runtime.task_models import CancelContext, TaskStatus
from phaselog.runtime.task_runner import ActiveTask
from phaselog.runtime.tasks import TaskController

QUICK = bool(os.environ.get("PHASELOG_BENCH_QUICK"))
PROCESS_COUNTS = (1, 2) if QUICK else (1, 2, 4, 8)
WINDOW_S = 1.5 if QUICK else 4.0
_CYCLE = (PluginPhase.STARTING, PluginPhase.RUNNING, PluginPhase.STOPPING, PluginPhase.STOPPED)


class _TrivialRunner:
    """A runner whose hooks do nothing: the cost measured is phaselog's."""

    def on_task_pending(self, ctx: CancelContext, task: ActiveTask) -> None:
        """Nothing to prepare."""

    def on_task_running(self, ctx: CancelContext, task: ActiveTask) -> None:
        """Nothing to do."""

    def on_task_completed(self, ctx: CancelContext, task: ActiveTask, *args: Any) -> None:
        """Nothing to report."""


def _transitions(url: str, ready: Callable[[], float], tag: str) -> int:
    """Cycle a few plugins of this process until ``deadline``; return transitions done."""
    done = 0
    with open_store(url) as store:
        machines = []
        for i in range(4):
            machine = store.plugins.machine(f"scale-{tag}-{i}")
            for phase in (PluginPhase.INSTALLING, PluginPhase.INSTALLED, PluginPhase.STOPPED):
                machine.transition_to(phase, "setup")
            machines.append(machine)
        deadline = ready()
        while time.monotonic() < deadline:
            for machine in machines:
                for phase in _CYCLE:
                    machine.transition_to(phase, "scale")
                    done += 1
    return done


def _task_runs(url: str, ready: Callable[[], float], tag: str) -> int:
    """Launch trivial tasks (at most 8 in flight) until ``deadline``; return completions."""
    completed = 0
    lock = threading.Condition()
    in_flight = [0]

    def finished(_status: TaskStatus) -> None:
        nonlocal completed
        with lock:
            completed += 1
            in_flight[0] -= 1
            lock.notify_all()

    with (
        open_store(url) as store,
        TaskController(store, f"scale-{tag}", _TrivialRunner(), max_workers=4) as ctl,
    ):
        n = 0
        deadline = ready()
        while time.monotonic() < deadline:
            with lock:
                if not lock.wait_for(lambda: in_flight[0] < 8, timeout=30):
                    msg = "tasks stopped completing"
                    raise TimeoutError(msg)
                in_flight[0] += 1
            ctl.launch_task(f"t{n}", on_status=finished)
            n += 1
        with lock:
            lock.wait_for(lambda: in_flight[0] == 0, timeout=60)
        return completed


def _raw_commits(url: str, ready: Callable[[], float], tag: str) -> int:
    """The ceiling: one-row INSERT + COMMIT per transaction with plain psycopg."""
    dsn, schema = _split(url)
    done = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        table = psycopg.sql.Identifier(schema, "scale_raw")
        insert = psycopg.sql.SQL("INSERT INTO {} (tag, payload) VALUES (%s, %s)").format(table)
        payload = b"x" * 200
        deadline = ready()
        while time.monotonic() < deadline:
            conn.execute(insert, (tag, payload))
            done += 1
    return done


_WORKLOADS: dict[str, Callable[[str, Callable[[], float], str], int]] = {
    "transitions": _transitions,
    "task_runs": _task_runs,
    "raw_commits": _raw_commits,
}


def _worker(kind: str, url: str, window_s: float, barrier: Any, go: Any, start_at: Any, results: Any) -> None:  # noqa: PLR0913, PLR0917
    def ready() -> float:
        """Called by a workload once set up: wait for everyone, then return the shared deadline."""
        barrier.wait(timeout=120)
        if not go.wait(timeout=120):
            msg = "the benchmark never started"
            raise TimeoutError(msg)
        return float(start_at.value) + window_s

    results.put(_WORKLOADS[kind](url, ready, uuid.uuid4().hex[:8]))


def _split(url: str) -> tuple[str, str]:
    base, _, query = url.partition("?")
    return base, query.removeprefix("schema=") or "public"


def _commits(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        conn.execute("SELECT pg_stat_clear_snapshot()")
    return int(row[0]) if row else 0


OTHER_BACKENDS = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


def _backends(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(OTHER_BACKENDS).fetchone()
    return int(row[0]) if row else 0


def _settled_commits(dsn: str, backends: int, timeout: float = 10.0) -> int:
    """The server's commit count once the workers' backends are gone (``backends``: the others).

    A backend sends its statistics at most once a second while it runs, and the
    rest when it exits, which follows its worker process's exit: read right after
    the window, the count missed up to a second of commits, and a short window
    could show fewer commits than operations.
    """
    deadline = time.monotonic() + timeout
    while _backends(dsn) > backends and time.monotonic() < deadline:
        time.sleep(0.02)
    return _commits(dsn)


def _measure(kind: str, url: str, processes: int, window_s: float) -> dict[str, float]:
    dsn, _ = _split(url)
    others = _backends(dsn)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    start_at = ctx.Value("d", 0.0)
    go = ctx.Event()
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(kind, url, window_s, barrier, go, start_at, results))
        for _ in range(processes)
    ]
    for proc in workers:
        proc.start()
    barrier.wait(timeout=120)
    before = _commits(dsn)
    started = time.monotonic()
    start_at.value = started
    go.set()
    ops = sum(results.get(timeout=180) for _ in workers)
    elapsed = time.monotonic() - started
    for proc in workers:
        proc.join(timeout=60)
    after = _settled_commits(dsn, others)
    return {"ops_per_s": round(ops / elapsed, 1), "xact_commit_per_s": round((after - before) / elapsed, 1)}


def run(
    dsn: str, process_counts: tuple[int, ...] = PROCESS_COUNTS, window_s: float = WINDOW_S
) -> dict[str, Any]:
    """Measure the curves on a fresh schema of the server at ``dsn``; return JSON-able results."""
    schema = f"bench_scale_{os.getpid()}"
    url = f"{dsn}?schema={schema}"
    with open_store(url):  # create phaselog's tables once, before the processes race
        pass
    with psycopg.connect(dsn, autocommit=True) as conn:
        table = psycopg.sql.Identifier(schema, "scale_raw")
        conn.execute(
            psycopg.sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id bigserial PRIMARY KEY, tag text, payload bytea)"
            ).format(table)
        )
    curves: dict[str, list[dict[str, float]]] = {"transitions": [], "task_runs": [], "raw_commits": []}
    for processes in process_counts:
        for kind, points in curves.items():
            point = _measure(kind, url, processes, window_s)
            point["processes"] = processes
            points.append(point)
    for kind in ("transitions", "task_runs"):
        for point, ceiling in zip(curves[kind], curves["raw_commits"], strict=True):
            point["commits_per_op"] = round(point["xact_commit_per_s"] / max(point["ops_per_s"], 1e-9), 2)
            point["ratio_to_raw_commits"] = round(point["ops_per_s"] / ceiling["ops_per_s"], 3)
    return {"window_s": window_s, **curves}


if __name__ == "__main__":
    from bench_common import main_on_postgres

    main_on_postgres(run)
