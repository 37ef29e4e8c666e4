from __future__ import annotations

import pytest

from conftest import load_script


@pytest.mark.slow
def test_sweep_benchmark_reports_both_sweeps_and_their_ratio(pg_dsn: str) -> None:
    """bench_sweep.run times sweeps with 0 and with many finished tasks; sweeps load only the active ones."""
    bench = load_script("benchmarks", "bench_sweep")
    figures = bench.run(pg_dsn, finished=600, repeats=3)
    empty, full = figures["without_finished"], figures["with_finished"]
    assert (empty["finished_tasks"], full["finished_tasks"]) == (0, 600)
    assert empty["sweep_ms_median"] > 0
    assert full["sweep_ms_median"] > 0
    assert figures["ratio"] == pytest.approx(full["sweep_ms_median"] / empty["sweep_ms_median"], rel=0.01)
    assert empty["loads_per_sweep"] == full["loads_per_sweep"] == bench.ACTIVE
    assert full["first_sweep_loads"] == bench.ACTIVE  # the open-stream index hides the 600 finished tasks
