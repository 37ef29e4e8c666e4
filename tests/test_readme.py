from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _block(marker: str, language: str) -> str:
    section = re.search(
        rf"<!-- {marker} -->\n```{language}\n(.*?)\n```\n<!-- /{marker} -->", README, re.DOTALL
    )
    assert section is not None, f"README lacks the {marker} block"
    return section.group(1)


def test_readme_gives_exactly_two_commands() -> None:
    """README's quick start is two one-line bash commands: the demo and the tests."""
    assert len(re.findall(r"```bash\n", README)) == 2
    demo, tests = _block("demo-command", "bash"), _block("test-command", "bash")
    assert demo.count("\n") == 0
    assert "phaselog demo" in demo
    assert tests.count("\n") == 0
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run executes the README's test command rather than a copy that could drift."""
    ci = (ROOT / ".ci" / "run").read_text()
    assert "test-command" in ci
    assert "pytest" not in ci.replace("pytest's", "")


@pytest.mark.slow
def test_readme_tour_runs_and_runs_again(tmp_path: Path) -> None:
    """The README's Python tour runs as written, prints what it promises, and runs again on its ops.db."""
    (tmp_path / "tour.py").write_text(_block("tour", "python"))
    for run in (1, 2):
        result = subprocess.run(
            [sys.executable, "tour.py"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].startswith("Installing 0:00:02")
        assert "COMPLETED" in lines[1]
        assert "current=3 total=3" in lines[1]
        assert lines[2] == str(run)  # the crawler's state is recovered and counts on
        assert lines[3].startswith("Installing")


@pytest.mark.slow
def test_readme_audit_commands_run_on_the_tour_store(tmp_path: Path) -> None:
    """Every `phaselog ... --url sqlite:///ops.db` command the README names runs on the tour's store."""
    (tmp_path / "tour.py").write_text(_block("tour", "python"))
    subprocess.run([sys.executable, "tour.py"], cwd=tmp_path, capture_output=True, timeout=120, check=True)
    commands = sorted(set(re.findall(r"`phaselog ([^`]*--url sqlite:///ops\.db)", README)))
    assert len(commands) >= 6
    for command in commands:
        args = [a for a in re.sub(r"\[[^\]]*\]", "", command).split() if a]
        result = subprocess.run(
            [sys.executable, "-m", "phaselog", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, (command, result.stderr)
