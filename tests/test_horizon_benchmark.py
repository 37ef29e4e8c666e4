"""The horizon benchmark runs and reports both readers side by side."""

from __future__ import annotations

import importlib

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_horizon_benchmark_reports_both_readers_and_their_ratio(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench_horizon.run measures both horizons beside raw psycopg and plain eventsourcing, with ratios."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    bench_horizon = importlib.import_module("bench_horizon")

    figures = bench_horizon.run(pg_dsn, events=600, rounds=2)
    for reader in ("appends_in_flight", "former"):
        assert figures[reader]["catch_up_events_per_s"] > 0
        assert figures[reader]["scan_events_per_s"] > 0
    assert figures["catch_up_ratio"] > 0
    assert figures["scan_ratio"] > 0
    for floor in ("raw_psycopg", "eventsourcing"):
        assert figures[f"{floor}_scan_events_per_s"] > 0
        assert figures[f"scan_vs_{floor}"] > 0
