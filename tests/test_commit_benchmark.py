"""The commit benchmark's own figures: the batch append's server time per call, the CPU split per command."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import pytest

from phaselog.adapters import open_store

from conftest import IN_CI, ROOT
from pgserver import find_bindir


def test_server_time_reports_the_batch_append_and_the_floor_per_call(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """append_server_time reads pg_stat_statements: one mean per function, judged against 200 µs."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    workers = importlib.import_module("commit_workers")
    server_time = importlib.import_module("server_time")
    target = workers.prepare(pg_dsn)
    with open_store(target.url) as store:
        workers.phaselog(store, 3)
        figures = server_time.append_server_time(target, store, 30)
    if not figures["available"]:  # a server without the extension preloaded says why
        assert "pg_stat_statements" in figures["why"]
        preloadable = (find_bindir().parent / "lib" / "pg_stat_statements.so").exists()
        assert not (IN_CI and preloadable), "the test server preloads pg_stat_statements where it can"
        return
    assert figures["commands"] == 30
    assert 0 < figures["phaselog_us"] < 100_000
    assert 0 < figures["floor_us"] < 100_000
    assert figures["met"] == (figures["phaselog_us"] <= server_time.GOAL_US)


def _benchmark_module(monkeypatch: pytest.MonkeyPatch, name: str) -> Any:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return importlib.import_module(name)


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="the machine's shares are read from /proc/stat")
def test_the_cpu_split_counts_a_busy_loop_as_the_client_and_adds_up_to_the_cores_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CpuSplit: a busy loop is the client's time, and the three shares add up to the cores' time."""
    cpu_split = _benchmark_module(monkeypatch, "cpu_split")
    with cpu_split.CpuSplit() as busy:
        started = cpu_split.own_cpu()
        while cpu_split.own_cpu() - started < 0.3:
            pass
    assert busy.client >= 0.3
    cores = os.cpu_count() or 1
    total = busy.client + busy.rest + busy.idle
    assert total == pytest.approx(busy.wall * cores, rel=0.25, abs=0.05)
    shares = busy.per_command(1000)
    assert shares["client"] == pytest.approx(busy.client * 1000, rel=0.01)  # µs per command
    assert set(shares) == {"client", "rest", "idle"}


def test_a_cell_reports_the_median_cpu_split_only_where_it_was_measured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """_cell: medians of each share over the repetitions; no split for runs that measured none."""
    bench = _benchmark_module(monkeypatch, "bench_commit")
    cpu_split = _benchmark_module(monkeypatch, "cpu_split")

    def split(client: float, rest: float, idle: float) -> Any:
        made = cpu_split.CpuSplit()
        made.wall, made.client, made.busy, made.idle = 1.0, client, client + rest, idle
        return made

    runs = [(1.0, [0.001] * 10, split(c, 0.2, 0.3)) for c in (0.1, 0.5, 0.3)]
    cell = bench._cell(runs, 1000)
    assert cell["cpu_us_per_command"] == {"client": 300.0, "rest": 200.0, "idle": 300.0}
    assert cell["commands_per_s_median"] == 1000.0
    assert "cpu_us_per_command" not in bench._cell([(1.0, [0.001], None)], 1000)


def test_the_lane_ceiling_writes_every_shape_and_compares_it_with_as_many_bare_writers(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lane_ceiling: every (lanes, size) shape commits all its batches, compared with the bare INSERT."""
    workers = _benchmark_module(monkeypatch, "commit_workers")
    ceiling = _benchmark_module(monkeypatch, "lane_ceiling")
    target = workers.prepare(pg_dsn)
    with open_store(target.url) as store:
        cells = ceiling.lane_ceiling(target, store, 16)
        heads = store.stream_heads("ceiling:")
    assert set(cells) == {f"{lanes}x{size}" for lanes, size in ceiling.SHAPES}
    for cell in cells.values():
        assert cell["bare_insert_per_s"] > 0
        assert cell["vs_bare"] == pytest.approx(cell["commands_per_s"] / cell["bare_insert_per_s"], abs=0.011)
    expected = [
        max(1, 16 // (lanes * size)) + workers.WARM_UP  # each lane's stream: one event per batch
        for lanes, size in ceiling.SHAPES
        for _ in range(lanes * size)
    ]
    assert sorted(head.version for head in heads) == sorted(expected)


def test_the_kinds_of_a_cell_take_turns_in_every_repetition(monkeypatch: pytest.MonkeyPatch) -> None:
    """_interleaved runs each kind once per repetition, in turn, and keeps each kind's runs apart."""
    bench = _benchmark_module(monkeypatch, "bench_commit")
    order: list[str] = []

    def once(kind: str) -> Any:
        order.append(kind)
        return (float(len(order)), [], None)

    runs = bench._interleaved({kind: (lambda k=kind: once(k)) for kind in ("bare", "phaselog")}, 3)
    assert order == ["bare", "phaselog"] * 3
    assert [run[0] for run in runs["bare"]] == [1.0, 3.0, 5.0]
    assert [run[0] for run in runs["phaselog"]] == [2.0, 4.0, 6.0]
