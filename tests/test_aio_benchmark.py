from __future__ import annotations

from conftest import load_script


def test_aio_benchmark_reports_both_sides_and_their_ratios(pg_dsn: str) -> None:
    """bench_aio runs the coroutine and thread-pool workloads, reporting the figures docs/async.md quotes."""
    bench = load_script("benchmarks", "bench_aio")
    figures = bench.run(pg_dsn, coroutines=20, transitions=3, connections=4)
    assert figures["workload"] == {"plugins": 20, "transitions_each": 3, "connections": 4}
    for side in ("sync_thread_pool", "async_one_loop"):
        row = figures[side]
        assert row["events"] == 60
        assert row["events_per_s"] > 0
        assert row["p95_ms"] >= row["p50_ms"] > 0
        assert row["plugin_done_p95_ms"] >= row["plugin_done_p50_ms"] > 0
        assert row["threads"] >= 1
    ratio = figures["async_one_loop"]["events_per_s"] / figures["sync_thread_pool"]["events_per_s"]
    assert figures["throughput_ratio_async_to_sync"] == round(ratio, 2)
