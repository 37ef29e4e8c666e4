"""What the batch append can do with no Python around it: lanes x commands per batch, raw psycopg.

:func:`lane_ceiling` runs ``lanes`` threads, each on a connection of its own,
each calling phaselog's batch append function with batches of ``size`` commands
(one event each, on streams of its own) one after another; so ``lanes * size``
commands are in flight, as ``lanes * size`` writers would keep them. It reports
commands/s for each shape next to the bare INSERT at the same number of writers,
in the same run. This is the ceiling that group commit's lanes are chosen by: on
the development VM, two lanes of four commands beat the bare INSERT of eight
writers where one lane of four (how eight writers alternate with one batch in
flight) did not, and batches of one or two cost nearly a whole commit each.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import commit_workers as w
import psycopg
from psycopg.rows import tuple_row

from phaselog.adapters import Store

__all__ = ["SHAPES", "lane_ceiling"]

SHAPES = ((1, 4), (2, 4), (1, 8), (4, 2), (8, 1), (2, 8))
"""(lanes, commands per batch): 8 commands in flight in the first five shapes, 16 in the last."""


def _lane(target: w.Target, sql: Any, size: int, batches: int, start: threading.Barrier) -> None:
    streams = [f"ceiling:{uuid.uuid4()}" for _ in range(size)]
    commands = list(range(1, size + 1))
    with psycopg.connect(target.dsn, autocommit=True, row_factory=tuple_row) as conn:
        for version in range(1, batches + w.WARM_UP + 1):
            if version == w.WARM_UP + 1:
                start.wait()
            params = (
                commands,
                streams,
                [version] * size,
                ["bench.Ticked"] * size,
                [w.STATE] * size,
                [True] * size,
            )
            conn.execute(sql, params, prepare=True).fetchall()


def _rate(lanes: int, run: Any) -> float:
    start = threading.Barrier(lanes + 1)
    threads = [threading.Thread(target=run, args=(start,)) for _ in range(lanes)]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def lane_ceiling(target: w.Target, store: Store, commands: int) -> dict[str, Any]:
    """Commands/s of each (lanes, size) shape and of the bare INSERT at as many writers; ratios to it."""
    sql = store.app.recorder.statements.append_batch_sql  # type: ignore[attr-defined]
    cells: dict[str, Any] = {}
    for lanes, size in SHAPES:
        batches = max(1, commands // (lanes * size))
        seconds = _rate(lanes, lambda start, s=size, n=batches: _lane(target, sql, s, n, start))
        writers = lanes * size
        bare = _rate(writers, lambda start, n=batches: _bare(target, n, start))
        done = lanes * size * batches
        cells[f"{lanes}x{size}"] = {
            "commands_per_s": round(done / seconds, 1),
            "bare_insert_per_s": round(done / bare, 1),
            "vs_bare": round(bare / seconds, 2),
        }
    return cells


def _bare(target: w.Target, per_writer: int, start: threading.Barrier) -> None:
    sid = f"bare:{uuid.uuid4()}"
    statement = target.bare_insert
    with psycopg.connect(target.dsn, autocommit=True) as conn:
        for i in range(per_writer + w.WARM_UP):
            if i == w.WARM_UP:
                start.wait()
            conn.execute(statement, (sid, i + 1, "bench.Ticked", w.STATE), prepare=True)
