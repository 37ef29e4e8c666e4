"""docs/getting-started.md works as written: its sync service, its audit commands and its async service."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import phaselog

from conftest import ROOT

GUIDE = (ROOT / "docs" / "getting-started.md").read_text()


def _block(name: str, language: str) -> str:
    found = re.search(rf"<!-- getting-started: {name} -->\n```{language}\n(.*?)\n```", GUIDE, re.DOTALL)
    assert found is not None, f"docs/getting-started.md has no {language} block {name!r}"
    return found.group(1)


def _python(code: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_getting_started_guide_runs_as_written(tmp_path: Path) -> None:
    """The sync service runs twice (state recovered), the audit commands pass, the async service runs."""
    sync = _block("sync", "python")
    first = _python(sync, tmp_path)
    assert first.splitlines()[:6] == [
        "task finished: COMPLETED",
        "runs so far: 1",
        "Installing",
        "Completed",
        "succeeded",
        "{'Completed': 1}",
    ]
    assert "runs so far: 2" in _python(sync, tmp_path)
    for line in _block("audit", "bash").splitlines():
        command = shlex.split(line)
        assert command[0] == "phaselog"
        shown = phaselog(*command[1:], cwd=tmp_path)
        assert shown.returncode == 0, (line, shown.stdout, shown.stderr)
        assert shown.stdout.strip(), line
    out = _python(_block("async", "python"), tmp_path).splitlines()
    assert "task finished: COMPLETED" in out
    assert "succeeded" in out
    assert out[-1].split()[1] == "StatePersisted"
