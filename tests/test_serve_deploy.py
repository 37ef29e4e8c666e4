"""The deployment examples (systemd units, Dockerfile) run commands and options this phaselog has."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from conftest import ROOT

DEPLOY = ROOT / "examples" / "deploy"


def _commands() -> dict[str, list[str]]:
    """``phaselog`` argument lists started by each unit's ExecStart and by the Dockerfile's CMD."""
    found = {}
    for unit in sorted(DEPLOY.glob("*.service")):
        (line,) = [s for s in unit.read_text().splitlines() if s.startswith("ExecStart=")]
        found[unit.name] = line.removeprefix("ExecStart=").split()[1:]
    (cmd,) = [s for s in (DEPLOY / "Dockerfile").read_text().splitlines() if s.startswith("CMD ")]
    found["Dockerfile"] = json.loads(cmd.removeprefix("CMD "))[1:]
    return found


def test_examples_are_present() -> None:
    """Both systemd units and the Dockerfile exist, each starting phaselog."""
    assert set(_commands()) == {"phaselog-console.service", "phaselog-projections.service", "Dockerfile"}


@pytest.mark.parametrize("name", sorted(_commands()))
def test_example_command_line_is_accepted(name: str) -> None:
    """Each example's command and options parse (``--help`` after them exits 0 without opening a store)."""
    args = _commands()[name]
    out = subprocess.run(
        [sys.executable, "-m", "phaselog", *args, "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    for option in (a for a in args if a.startswith("--")):
        assert option in out.stdout


def test_docker_health_check_matches_the_metrics_port() -> None:
    """The Dockerfile's health check asks the port the runner's metrics listen on, which it exposes."""
    text = (DEPLOY / "Dockerfile").read_text()
    port = _commands()["Dockerfile"][_commands()["Dockerfile"].index("--metrics-port") + 1]
    assert re.search(rf"PHASELOG_HEALTH_URL=http://127\.0\.0\.1:{port}/healthz", text)
    assert re.search(rf"^EXPOSE .*\b{port}\b", text, re.MULTILINE)
    assert "PHASELOG_METRICS_HOST=0.0.0.0" in text
