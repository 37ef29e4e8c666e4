"""Helpers shared by the benchmark modules."""

from __future__ import annotations

import statistics


def latency_summary(samples: list[float]) -> dict[str, float]:
    """Mean, p50 and p95 in milliseconds, and operations per second, of durations in seconds."""
    ordered = sorted(samples)
    return {
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 3),
        "p95_ms": round(ordered[int(len(ordered) * 0.95)] * 1000, 3),
        "ops_per_s": round(len(ordered) / sum(ordered), 1),
    }
