"""The commit benchmark's server-time figure: the batch append function's own time per call."""

from __future__ import annotations

import importlib

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
