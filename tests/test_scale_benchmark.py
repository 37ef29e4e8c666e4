from __future__ import annotations

import importlib

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_scale_benchmark_reports_a_point_per_process_count(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench_scale.run measures each workload in real worker processes beside the raw ceiling."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # spawned workers import it by name
    bench_scale = importlib.import_module("bench_scale")

    figures = bench_scale.run(pg_dsn, process_counts=(1, 2), window_s=0.5)
    for kind in ("transitions", "task_runs", "raw_commits"):
        assert [point["processes"] for point in figures[kind]] == [1, 2]
        assert all(point["ops_per_s"] > 0 for point in figures[kind])
        assert all(point["xact_commit_per_s"] >= point["ops_per_s"] * 0.5 for point in figures[kind])
    assert all(point["ratio_to_raw_commits"] > 0 for point in figures["transitions"])
