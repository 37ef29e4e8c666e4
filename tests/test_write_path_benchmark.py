"""The write-path benchmark runs end to end and reports every figure the docs quote."""

from __future__ import annotations

import importlib

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_write_path_benchmark_reports_threads_processes_and_a_large_event(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench_write_path measures 1/4/8 writers as threads and processes, with ratios to the floor."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # spawned workers import it by name
    bench = importlib.import_module("bench_write_path")
    figures = bench.run(pg_dsn, per_writer=5)
    for mode in ("threads", "processes"):
        for writers in ("1", "4", "8"):
            row = figures[mode][writers]
            assert row["phaselog"] > 0
            assert row["raw"] > 0
            assert row["ratio_vs_raw"] == round(row["phaselog"] / row["raw"], 2)
    assert figures["processes"]["growth_1_to_4"] > 0
    assert figures["large_event"]["event_bytes"] > 3_900_000
