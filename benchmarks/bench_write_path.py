"""Write-path benchmark: appends from 1, 4 and 8 writers (threads and processes) beside the raw floor.

Each writer appends ``per_writer`` events to its own stream, one command (one
transaction) per event, the way services write. Three implementations on the
same PostgreSQL server, in the same run:

* ``phaselog`` — ``store.save`` through phaselog's recorder;
* ``eventsourcing`` — plain eventsourcing 9.5 (its recorder: table lock, NOTIFY per insert);
* ``raw`` — psycopg inserting the same rows, one autocommit INSERT per event (the floor).

``ratio_vs_raw`` is phaselog's throughput over the floor's (1.0 = as fast).
Also: one 3.9 MiB event written by phaselog and by raw psycopg.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
import uuid
from typing import Any

import psycopg
from pydantic import BaseModel

from phaselog.adapters import open_store

from bench_store import (
    INSERT_ROW,
    BenchItem,
    BenchOpened,
    BenchTicked,
    Phaselog,
    PlainEventsourcing,
    RawPsycopg,
)

WRITERS = (1, 4, 8)


def _process_worker(  # noqa: PLR0913, PLR0917 - one worker's whole brief
    kind: str, url: str, schema: str, per_writer: int, barrier: Any, results: Any
) -> None:
    """Append ``per_writer`` events to one stream after every worker is ready; report start and end."""
    if kind == "phaselog":
        store = open_store(url)
        item = BenchItem.start(BenchOpened, f"bench:{uuid.uuid4()}")
        store.save(item)
        barrier.wait()
        started = time.time()
        for i in range(per_writer):
            item.trigger(BenchTicked, n=i)
            store.save(item)
        results.put((started, time.time()))
        store.close()
        return
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        sid = f"raw:{uuid.uuid4()}"
        barrier.wait()
        started = time.time()
        for i in range(per_writer):
            conn.execute(INSERT_ROW, (sid, i + 1, "bench.Ticked", RawPsycopg.STATE), prepare=True)
        results.put((started, time.time()))


def _processes(kind: str, url: str, schema: str, writers: int, per_writer: int) -> float:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(writers), ctx.Queue()
    procs = [
        ctx.Process(target=_process_worker, args=(kind, url, schema, per_writer, barrier, results))
        for _ in range(writers)
    ]
    for proc in procs:
        proc.start()
    spans: list[tuple[float, float]] = []
    deadline = time.monotonic() + 600
    while len(spans) < writers:
        try:
            spans.append(results.get(timeout=1))
        except queue.Empty:
            failed = [proc.exitcode for proc in procs if proc.exitcode not in (None, 0)]
            if failed or time.monotonic() > deadline:  # a worker died: fail now, not after the timeout
                for proc in procs:
                    proc.kill()
                msg = f"write-path worker processes failed (exit codes {failed})"
                raise RuntimeError(msg) from None
    for proc in procs:
        proc.join(timeout=60)
    return max(end for _, end in spans) - min(start for start, _ in spans)


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1)


class Blob(BaseModel):
    """A plugin state of a chosen size."""

    text: str


def _large(dsn: str, url: str, raw_schema: str) -> dict[str, Any]:
    """Write one event of about 3.9 MiB through phaselog (a plugin state) and through psycopg."""
    state = Blob(text="x" * int(3.9 * 1024 * 1024 - 200))  # a model's state travels as its JSON
    out: dict[str, Any] = {}
    with open_store(url) as store:
        started = time.perf_counter()
        store.plugins.handle(f"large-{uuid.uuid4().hex[:6]}", lambda mgr: mgr.put(1, state))
        out["phaselog_ms"] = round((time.perf_counter() - started) * 1000, 1)
        out["event_bytes"] = len(store.notifications(store.max_position())[0].state)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{raw_schema}"')
        started = time.perf_counter()
        conn.execute(INSERT_ROW, (f"raw:{uuid.uuid4()}", 1, "bench.Ticked", b"x" * out["event_bytes"]))
        out["raw_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return out


def run(pg_dsn: str, *, per_writer: int = 300) -> dict[str, Any]:
    """Append throughput with 1, 4 and 8 writers as threads and as processes, and a large write."""
    tag = uuid.uuid4().hex[:8]
    url = f"{pg_dsn}?schema=wp_pl_{tag}"
    ph = Phaselog(url)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "wp_es_{tag}"')
    es = PlainEventsourcing({**ph.store.env, "POSTGRES_SCHEMA": f"wp_es_{tag}"})
    raw = RawPsycopg(pg_dsn, f"wp_raw_{tag}")
    report: dict[str, Any] = {"per_writer": per_writer, "threads": {}, "processes": {}}
    for writers in WRITERS:
        row: dict[str, Any] = {}
        for name, impl in (("phaselog", ph), ("eventsourcing", es), ("raw", raw)):
            row[name] = _rate(writers * per_writer, impl.append(writers, per_writer))
        row["ratio_vs_raw"] = round(row["phaselog"] / row["raw"], 2)
        row["ratio_vs_eventsourcing"] = round(row["phaselog"] / row["eventsourcing"], 2)
        report["threads"][str(writers)] = row
    for writers in WRITERS:
        row = {
            "phaselog": _rate(writers * per_writer, _processes("phaselog", url, "", writers, per_writer)),
            "raw": _rate(
                writers * per_writer, _processes("raw", pg_dsn, f"wp_raw_{tag}", writers, per_writer)
            ),
        }
        row["ratio_vs_raw"] = round(row["phaselog"] / row["raw"], 2)
        report["processes"][str(writers)] = row
    one, four = report["processes"]["1"]["phaselog"], report["processes"]["4"]["phaselog"]
    report["processes"]["growth_1_to_4"] = round(four / one, 2)
    report["large_event"] = _large(pg_dsn, url, f"wp_raw_{tag}")
    for impl in (ph, es, raw):
        impl.close()
    return report
