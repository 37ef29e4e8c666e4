from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from phaselog.adapters import Store, open_store
from phaselog.adapters.demo.state import run_demo
from phaselog.domain.state import StatePersisted

from conftest import load_script

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_example_runs_as_a_script_on_a_temporary_sqlite_file() -> None:
    """examples/crawler_stats.py runs standalone and its second run continues the first run's counts."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "crawler_stats.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "recovered: 6 finished, 2 failed, 1 earlier runs" in done.stdout
    assert "continued from the first run's statistics" in done.stdout


def test_example_keeps_counting_across_invocations_on_one_store(
    durable_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Running the example twice on the same store URL recovers the statistics of all earlier runs."""
    example = load_script("examples", "crawler_stats")
    example.main([durable_url])
    example.main([durable_url])
    out = capsys.readouterr().out
    assert "recovered: 15 finished, 5 failed, 3 earlier runs" in out
    with open_store(durable_url) as store:
        events = store.stream("state:crawler:CRAWLER_STATISTICS")
    assert events
    assert all(isinstance(e, StatePersisted) for e in events)


def test_demo_recovers_state_across_two_runs(durable_store: Store) -> None:
    """The demo section shows the default on its first run and the recovered statistics on its second."""
    outputs = []
    for _ in range(2):
        buffer = io.StringIO()
        run_demo(durable_store, Console(file=buffer, width=200))
        outputs.append(buffer.getvalue())
    assert "from the default" in outputs[0]
    assert "from a previous run" in outputs[1]
    assert "2 persist and 0 reset events" in outputs[1]
    events = durable_store.stream("state:demo:demo-crawler")
    assert [e.value["runs"] for e in events if isinstance(e, StatePersisted)] == [1, 2]
