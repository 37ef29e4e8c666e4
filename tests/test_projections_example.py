import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parent.parent / "examples" / "read_models.py"


def test_read_models_example_runs(durable_url: str) -> None:
    """The read-models example runs on SQLite and PostgreSQL: read-your-writes, rebuild, verify."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), durable_url], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "read model says Installed right after the command" in done.stdout
    assert "'Installed': 2" in done.stdout
    assert "verify: ok" in done.stdout


def test_read_models_example_default_store() -> None:
    """Without an argument the example uses a temporary SQLite file."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "rebuilt from the event log" in done.stdout
