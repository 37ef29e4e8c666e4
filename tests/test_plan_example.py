from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from phaselog.adapters import Store, open_store
from phaselog.adapters.demo.plans import run_demo

from conftest import load_script

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_example_runs_as_a_script_on_a_temporary_sqlite_file() -> None:
    """examples/deploy_plan.py runs standalone: run 1 fails and cleans up, run 2 succeeds."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "deploy_plan.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = done.stdout
    assert "=> run 1 FAILED at smoke-test: ConnectionError" in out
    assert out.index("removed the config") < out.index("deleted vm-")
    assert "=> run 2 succeeded" in out
    assert "runs: ['failed', 'succeeded']" in out


def test_example_records_both_runs_in_the_given_store(
    durable_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a given store URL the example records a failed then a succeeded run of one plan stream."""
    assert load_script("examples", "deploy_plan").main([durable_url]) == 0
    out = capsys.readouterr().out
    assert "smoke:     attempt 3: connection refused" in out
    assert "attempt 2: 200 OK" in out
    with open_store(durable_url) as store:
        (stream,) = store.stream_ids("plan:deploy-web-")
        kinds = [type(e).__name__ for e in store.stream(stream)]
    assert kinds.count("RunFinished") == 2
    assert kinds.count("PauseStarted") == 2


def test_demo_runs_repeatedly_on_one_store(durable_store: Store) -> None:
    """The demo section prints its three plans each time and adds new plan streams on every run."""
    for expected in (3, 6):
        console = Console(file=io.StringIO(), width=200)
        run_demo(durable_store, console)
        text = console.file.getvalue()  # type: ignore[attr-defined]
        assert "PlanFailed" in text
        assert "PlanTimeout" in text
        assert "succeeded" in text
        assert len(durable_store.stream_ids("plan:demo-")) == expected


@pytest.mark.slow
def test_benchmark_reports_its_figures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """benchmarks/bench_plans.run returns positive JSON-able figures (quick mode)."""
    monkeypatch.setenv("PHASELOG_BENCH_QUICK", "1")
    bench = load_script("benchmarks", "bench_plans")
    figures = bench.run(f"sqlite:///{tmp_path / 'bench.db'}")
    assert figures["events_per_step"] == 5.0  # attempt, three hook outcomes, success; no cleanup given
    for key in ("steps_per_s", "state_writes_per_s", "reload_ms", "cancel_latency_ms_median"):
        assert isinstance(figures[key], float)
        assert figures[key] > 0
