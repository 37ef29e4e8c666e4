"""Commit benchmark: commands/s and p50/p99 per command beside the bare-INSERT and same-work floors.

Usage: ``python benchmarks/bench_commit.py [DSN]`` (a throwaway PostgreSQL when no DSN is
given; ``PHASELOG_BENCH_QUICK=1`` shrinks it). Prints JSON.

Each writer sends one command (one commit) at a time to a stream of its own; see
``commit_workers.py`` for the four implementations (``bare``, ``floor``,
``eventsourcing``, ``phaselog``). Concurrency: 1/4/8/16 writers as threads (sharing
one phaselog store or eventsourcing application, as a service does), as asyncio
tasks on one loop (phaselog: one async store; floors: a connection per task;
eventsourcing has no async API) and 1/4/8 processes (each with its own store).
For the processes, ``waits`` says what each kind's backends waited
on meanwhile (``wait_sampler``: mean active backends per wait event, ungranted locks).

For each cell: commands/s (best and median over the repetitions) and p50/p99 per command
in ms over all repetitions. Thread and asyncio cells take turns: each repetition runs
every kind once, so a slow spell of a shared machine hits them all alike. Ratios,
computed from the medians of the same run: ``vs_bare`` = phaselog / bare INSERT,
``vs_floor`` = phaselog / same-work floor, ``vs_eventsourcing``; ``commands_per_commit``
says how many commands group commit put in each transaction. ``cpu_us_per_command``
splits the machine's core time per command into the writers' own CPU (``client``: their
process, or the writer processes' sum), everything else (``rest``: the database) and
``idle`` (``cpu_split.py``). ``goals`` judges each goal (PostgreSQL, fsync on) by this
run's medians: 1 writer ≥ 0.8x the floor; 8 threads ≥ 1.0x and 16 asyncio tasks ≥ 1.5x
the bare INSERT at the same concurrency; 8 processes ≥ 4 ≥ 1; p99 at 1 writer within
1.25x the floor's; the batch append's server time for one event at most 200 µs
(``server_time``: ``pg_stat_statements``, see ``server_time.py``). ``lane_ceiling`` is
what the batch append function does with no Python around it, by lanes and commands per
batch, beside the bare INSERT at as many writers (``lane_ceiling.py``).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import queue
import statistics
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from eventsourcing.application import Application

from phaselog.adapters import open_store
from phaselog.aio import open_async_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
import commit_workers as w
from cpu_split import CpuSplit, own_cpu
from lane_ceiling import lane_ceiling
from server_time import append_server_time
from wait_sampler import sampling

from bench_common import main_on_postgres

QUICK = bool(os.environ.get("PHASELOG_BENCH_QUICK"))
THREADS = (1, 4, 8, 16)
TASKS = (1, 4, 8, 16)
PROCESSES = (1, 4, 8)
KINDS = ("bare", "floor", "eventsourcing", "phaselog")


Run = tuple[float, list[float], CpuSplit | None]
"""One repetition of a cell: wall seconds, every command's seconds, where the core time went."""


def _threads(writers: int, work: Callable[[], list[float]]) -> Run:
    """Run ``work`` on ``writers`` threads started together; wall seconds, every sample, the CPU split."""
    samples: list[float] = []
    lock, barrier = threading.Lock(), threading.Barrier(writers + 1)

    def run() -> None:
        barrier.wait()
        mine = work()
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(writers)]
    for t in threads:
        t.start()
    barrier.wait()
    with CpuSplit() as split:
        for t in threads:
            t.join()
    return split.wall, samples, split


def _tasks(writers: int, make: Callable[[], Any]) -> Run:
    """Run ``writers`` coroutines made by ``make`` on one event loop; wall seconds, samples, CPU split."""

    async def main() -> Run:
        with CpuSplit() as split:
            results = await asyncio.gather(*(make() for _ in range(writers)))
        return split.wall, [s for r in results for s in r], split

    return asyncio.run(main())


def _process_main(kind: str, target: w.Target, per_writer: int, barrier: Any, results: Any) -> None:
    work, close = w.in_process(kind, target, per_writer)
    barrier.wait()
    started, cpu = time.time(), own_cpu()
    samples = work()
    results.put((started, time.time(), samples, own_cpu() - cpu))
    close()


def _processes(kind: str, target: w.Target, writers: int, per_writer: int) -> Run:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(writers + 1), ctx.Queue()  # the parent starts the CPU split with them
    procs = [
        ctx.Process(target=_process_main, args=(kind, target, per_writer, barrier, results))
        for _ in range(writers)
    ]
    for proc in procs:
        proc.start()
    spans: list[tuple[float, float, list[float], float]] = []
    deadline = time.monotonic() + 900

    def check() -> None:  # a writer that died, or a run past its deadline, fails the cell at once
        failed = [proc.exitcode for proc in procs if proc.exitcode not in (None, 0)]
        if failed or time.monotonic() > deadline:
            for proc in procs:
                proc.kill()
            msg = f"commit benchmark workers failed (exit codes {failed})"
            raise RuntimeError(msg) from None

    while barrier.n_waiting < writers:  # every writer is set up and waits for the start
        check()
        time.sleep(0.01)
    barrier.wait(timeout=60)
    with CpuSplit() as split:
        while len(spans) < writers:
            try:
                spans.append(results.get(timeout=1))
            except queue.Empty:
                check()
    split.client = sum(cpu for *_, cpu in spans)  # the writers' own CPU, each measured by itself
    for proc in procs:
        proc.join(timeout=60)
    wall = max(end for _, end, _, _ in spans) - min(start for start, _, _, _ in spans)
    return wall, [s for _, _, samples, _ in spans for s in samples], split


def _interleaved(kinds: dict[str, Callable[[], Run]], repeats: int) -> dict[str, list[Run]]:
    """Each kind's runs, the kinds taking turns in every repetition (a slow spell then hits them all)."""
    runs: dict[str, list[Run]] = {kind: [] for kind in kinds}
    for _ in range(repeats):
        for kind, once in kinds.items():
            runs[kind].append(once())
    return runs


def _cell(runs: list[Run], commands: int) -> dict[str, Any]:
    rates = [commands / wall for wall, _, _ in runs]
    samples = sorted(s for _, ss, _ in runs for s in ss)
    cell: dict[str, Any] = {
        "commands_per_s_best": round(max(rates), 1),
        "commands_per_s_median": round(statistics.median(rates), 1),
        "p50_ms": round(samples[len(samples) // 2] * 1000, 3),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000, 3),
    }
    splits = [split.per_command(commands) for _, _, split in runs if split is not None]
    if splits:  # median per share over the repetitions, in µs of core time per command
        cell["cpu_us_per_command"] = {
            share: _median([split[share] for split in splits]) for share in ("client", "rest", "idle")
        }
    return cell


def _median(values: list[float | None]) -> float | None:
    """The median, or None when any repetition could not measure the share."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if len(known) == len(values) else None


def _ratios(row: dict[str, Any]) -> None:
    ours = row["phaselog"]["commands_per_s_median"]
    for name, key in (("bare", "vs_bare"), ("floor", "vs_floor"), ("eventsourcing", "vs_eventsourcing")):
        if name in row:
            row[key] = round(ours / row[name]["commands_per_s_median"], 2)


def run(dsn: str, *, per_writer: int | None = None, repeats: int | None = None) -> dict[str, Any]:
    """Every cell of the commit benchmark, side by side in one run."""
    per_writer = per_writer or (40 if QUICK else 200)
    repeats = repeats or (1 if QUICK else 3)
    target = w.prepare(dsn)
    store = open_store(target.url)
    app: Application[Any] = Application(env=target.es_env)
    w.phaselog(store, w.WARM_UP)
    w.eventsourcing(app, w.WARM_UP)
    report: dict[str, Any] = {"per_writer": per_writer, "repeats": repeats}
    report["server_time"] = append_server_time(target, store, 10 * per_writer)
    report["lane_ceiling"] = lane_ceiling(target, store, 8 * per_writer)  # the batch shapes, no Python
    thread_work: dict[str, Callable[[], list[float]]] = {
        "bare": lambda: w.bare(target, per_writer),
        "floor": lambda: w.floor(target, per_writer),
        "eventsourcing": lambda: w.eventsourcing(app, per_writer),
        "phaselog": lambda: w.phaselog(store, per_writer),
    }
    gathered = store.app.recorder.gathering  # type: ignore[attr-defined]
    report["threads"] = {}
    for writers in THREADS:
        batches, commands = gathered.batches, gathered.commands
        cells = _interleaved({kind: partial(_threads, writers, thread_work[kind]) for kind in KINDS}, repeats)
        row: dict[str, Any] = {kind: _cell(runs, writers * per_writer) for kind, runs in cells.items()}
        row["phaselog"]["commands_per_commit"] = round(  # how many commands shared each commit
            (gathered.commands - commands) / max(1, gathered.batches - batches), 2
        )
        _ratios(row)
        report["threads"][str(writers)] = row
    store.close()
    app.close()
    report["asyncio"] = {}
    for writers in TASKS:
        tasks: dict[str, Callable[[], Run]] = {
            kind: partial(_tasks, writers, partial(getattr(w, f"{kind}_async"), target, per_writer))
            for kind in ("bare", "floor")
        }
        tasks["phaselog"] = partial(_async_phaselog, target, writers, per_writer)
        row = {kind: _cell(runs, writers * per_writer) for kind, runs in _interleaved(tasks, repeats).items()}
        _ratios(row)
        report["asyncio"][str(writers)] = row
    report["processes"] = {}
    for writers in PROCESSES:
        row = {}
        for kind in KINDS:
            with sampling(dsn) as waits:
                runs = [_processes(kind, target, writers, per_writer) for _ in range(repeats)]
            row[kind] = _cell(runs, writers * per_writer) | {"waits": waits}  # see docs/scale.md
        _ratios(row)
        report["processes"][str(writers)] = row
    procs = report["processes"]
    report["processes"]["growth_4_to_8"] = round(
        procs["8"]["phaselog"]["commands_per_s_median"] / procs["4"]["phaselog"]["commands_per_s_median"], 2
    )
    report["goals"] = _goals(report)
    return report


def _goals(report: dict[str, Any]) -> dict[str, Any]:
    """Each goal with the figure it is judged by (medians of this run) and whether it is met."""
    threads, tasks, procs = report["threads"], report["asyncio"], report["processes"]
    rate = {n: procs[n]["phaselog"]["commands_per_s_median"] for n in ("1", "4", "8")}
    figures = {
        "one_writer_vs_floor": (threads["1"]["vs_floor"], threads["1"]["vs_floor"] >= 0.8),
        "eight_threads_vs_bare": (threads["8"]["vs_bare"], threads["8"]["vs_bare"] >= 1.0),
        "sixteen_tasks_vs_bare": (tasks["16"]["vs_bare"], tasks["16"]["vs_bare"] >= 1.5),
        "processes_1_4_8": ([rate["1"], rate["4"], rate["8"]], rate["8"] >= rate["4"] >= rate["1"]),
        "server_time_us": (report["server_time"].get("phaselog_us"), report["server_time"].get("met", False)),
        "one_writer_p99_ms_vs_floor": (
            [threads["1"]["phaselog"]["p99_ms"], threads["1"]["floor"]["p99_ms"]],
            threads["1"]["phaselog"]["p99_ms"] <= threads["1"]["floor"]["p99_ms"] * 1.25,
        ),
    }
    return {name: {"figure": figure, "met": met} for name, (figure, met) in figures.items()}


def _async_phaselog(target: w.Target, writers: int, per_writer: int) -> Run:
    async def main() -> Run:
        async with open_async_store(target.url) as store:
            await w.phaselog_async(store, w.WARM_UP)
            with CpuSplit() as split:
                results = await asyncio.gather(*(w.phaselog_async(store, per_writer) for _ in range(writers)))
            return split.wall, [s for r in results for s in r], split

    return asyncio.run(main())


if __name__ == "__main__":
    main_on_postgres(run)
