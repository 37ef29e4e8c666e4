"""Helpers shared by the benchmark modules."""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def calibration_loop_s() -> float:
    """Seconds of CPU a fixed pure-Python loop (10 million additions) takes now.

    The VM is shared: the same loop took 0.69 s at one moment and 1.1 s an hour
    later. Reported next to a benchmark's figures, it says how fast the machine
    was while they were taken.
    """
    started = time.process_time()
    total = 0
    for i in range(10_000_000):
        total += i
    return round(time.process_time() - started, 3)


def latency_summary(samples: list[float]) -> dict[str, float]:
    """Mean, p50 and p95 in milliseconds, and operations per second, of durations in seconds."""
    ordered = sorted(samples)
    return {
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 3),
        "p95_ms": round(ordered[int(len(ordered) * 0.95)] * 1000, 3),
        "ops_per_s": round(len(ordered) / sum(ordered), 1),
    }


@contextmanager
def _database() -> Iterator[str]:
    """``argv[1]`` or ``$PHASELOG_BENCH_DSN`` when given, else a throwaway server (stopped after)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from pgserver import PostgresServer  # noqa: PLC0415 - the test suite's helper, only for the command line

    given = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PHASELOG_BENCH_DSN")
    server = None if given else PostgresServer.start()
    try:
        yield given or server.dsn  # type: ignore[union-attr]
    finally:
        if server is not None:
            server.stop()


def main_on_postgres(run: Callable[[str], dict[str, Any]]) -> None:
    """A PostgreSQL-only benchmark's command line: print ``run``'s JSON for a database.

    The database is ``argv[1]`` or ``$PHASELOG_BENCH_DSN`` when given, else a throwaway server.
    """
    with _database() as dsn:
        print(json.dumps(run(dsn), indent=2))


def main_on_both(run: Callable[[str], dict[str, Any]], name: str) -> None:
    """A benchmark's command line on PostgreSQL (schema ``bench_NAME_PID``) and a temporary SQLite file."""
    with _database() as dsn, tempfile.TemporaryDirectory() as tmp:
        result = {
            "machine": {"calibration_loop_s": calibration_loop_s()},
            "postgresql": run(f"{dsn}?schema=bench_{name}_{os.getpid()}"),
            "sqlite": run(f"sqlite:///{tmp}/{name}.db"),
        }
    print(json.dumps(result, indent=2))
