"""Helpers shared by the benchmark modules."""

from __future__ import annotations

import statistics
import time


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
