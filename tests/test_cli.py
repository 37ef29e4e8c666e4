from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from phaselog.adapters.cli.app import main


def _phaselog(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("phaselog")
    cmd = [exe] if exe else [sys.executable, "-m", "phaselog.adapters.cli.app"]
    return subprocess.run(
        [*cmd, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"COLUMNS": "160", "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )


@pytest.mark.slow
def test_demo_on_the_default_sqlite_store_twice(tmp_path: Path) -> None:
    """`phaselog demo` with no URL uses ./phaselog.db, shows every section, and recovers state on run 2."""
    first = _phaselog("demo", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "phaselog.db").exists()
    for section in ("Plugins", "Tasks", "Plans", "Recoverable state", "Projections", "Audit timeline"):
        assert section in first.stdout
    second = _phaselog("demo", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "recovered from a previous run" in second.stdout
    verify = _phaselog("audit", "verify", cwd=tmp_path)
    assert verify.returncode == 0, verify.stdout + verify.stderr


@pytest.mark.slow
def test_demo_on_postgresql(make_url: Callable[[str], str], tmp_path: Path) -> None:
    """`phaselog demo --url postgresql://…` runs every section against a real PostgreSQL."""
    url = make_url("postgresql")
    result = _phaselog("demo", "--url", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Audit timeline of plugin:" in result.stdout


def test_phaselog_errors_are_one_line_on_stderr(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A PhaselogError (here no store at the URL) exits 1 with one line on stderr and nothing on stdout."""
    assert main(["audit", "verify", "--url", f"sqlite:///{tmp_path / 'none.db'}"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: no phaselog store at")
    assert len(captured.err.splitlines()) == 1


def test_a_bad_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A URL that cannot be parsed (here an unsupported scheme) exits 2 naming --url, nothing on stdout."""
    assert main(["demo", "--url", "mysql://nowhere"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Error: Invalid value for '--url': unsupported store URL" in captured.err
