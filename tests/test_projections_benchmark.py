from __future__ import annotations

import pytest

from conftest import load_script

pytestmark = pytest.mark.slow


def test_projections_benchmark_smoke_run(durable_url: str) -> None:
    """bench_projections.run at a smoke size reports every figure, a verified log and rows in all views."""
    bench = load_script("benchmarks", "bench_projections")
    figures = bench.run(durable_url, events=1200)
    assert figures["events"] == 1200
    for key in (
        "catch_up_all_events_per_s",
        "follow_all_events_per_s",
        "rebuild_plugin_phases_events_per_s",
        "floor_plugin_phases_events_per_s",
        "rebuild_all_events_per_s",
    ):
        assert figures[key] > 0, key
    assert figures["verify_ok"] is True
    assert all(rows > 0 for rows in figures["rows"].values())
    small, large = figures["memory"]["rebuilds"]
    assert (small["events"], large["events"]) == (1200, 6000)
    assert large["rows"] > small["rows"] > 0
    assert small["peak_rss_mb"] > 0
