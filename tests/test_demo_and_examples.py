"""The demo shows what its own run made, readable at 80 columns; examples clean up after themselves."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import phaselog
from rich.console import Console

from phaselog.adapters import open_store
from phaselog.adapters.cli.render import render_projections
from phaselog.domain import PluginPhase

from conftest import ROOT

# The examples that run to an end (fastapi_service.py serves until stopped)
EXAMPLES = [
    "async_service",
    "crawler_stats",
    "deploy_plan",
    "erase_customer",
    "plugin_host",
    "read_models",
    "task_batch",
]


@pytest.mark.slow
def test_demo_shows_this_runs_plugin_and_rows_at_80_columns(tmp_path: Path) -> None:
    """A second demo on one file shows the timeline of the plugin it just made and only its own rows."""
    phaselog("demo", cwd=tmp_path, columns=80)
    second = phaselog("demo", cwd=tmp_path, columns=80)
    assert second.returncode == 0, second.stderr
    made = re.search(r"plugin (demo-echo-[0-9a-f]{6}): \d+ transitions", second.stdout)
    assert made is not None, second.stdout
    assert f"Audit timeline of plugin:{made.group(1)}" in second.stdout
    assert "task_statuses: 4 row(s) (this run)" in second.stdout  # not the 8 of both runs
    assert "plugin_phases: 1 row(s) (this run)" in second.stdout
    assert "recovered from a previous run" in second.stdout
    too_wide = [line for line in second.stdout.splitlines() if len(line) > 80]
    assert too_wide == []


def test_read_model_tables_say_how_many_rows_they_left_out(tmp_path: Path) -> None:
    """A read model with more rows than the table shows ends with "N more"."""
    with open_store(f"sqlite:///{tmp_path / 'more.db'}") as store:
        for n in range(5):
            store.plugins.machine(f"p{n}").transition_to(PluginPhase.INSTALLING, "install")
        console = Console(width=80, record=True)
        render_projections(store, console, limit=2)
    text = console.export_text()
    assert "plugin_phases: 5 row(s) (all)" in text
    assert "3 more" in text


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_leave_no_temporary_files(name: str, tmp_path: Path) -> None:
    """Each example, run with no URL, removes the temporary store it made."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / f"{name}.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert result.returncode == 0, result.stderr
    assert list(scratch.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]


def test_demo_plans_show_their_backwards_cleanup_and_events(tmp_path: Path) -> None:
    """The failed migration's row names the cleanups run (newest step first) and every row its events."""
    from phaselog.adapters.demo.plans import run_demo  # noqa: PLC0415 - the section under test

    console = Console(width=200, record=True)
    with open_store(f"sqlite:///{tmp_path / 'plans.db'}") as store:
        run_demo(store, console)
        counts = {sid: len(store.stream(sid)) for sid in store.stream_ids("plan:")}
    rows = {
        line.split("│")[1].strip(): line for line in console.export_text().splitlines() if "│ demo-" in line
    }
    assert "add-column → backup-db" in rows["demo-migrate"]
    assert "snapshot-volume" in rows["demo-backup"].split("│")[4]
    for sid, events in counts.items():
        name = sid.removeprefix("plan:").rsplit("-", 1)[0]
        assert rows[name].split("│")[6].strip() == str(events)
