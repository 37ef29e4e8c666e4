import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from projections_support import open_account

from phaselog.adapters import open_store
from phaselog.projections.runner import Projections

pytestmark = pytest.mark.slow


def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_projections_run_is_its_own_process(durable_url: str) -> None:
    """`phaselog projections run` follows the store from another process and stops cleanly on SIGTERM."""
    with open_store(durable_url) as store:
        store.plugins.machine("cam").transition_to("Installing", "one")
        views = Projections(store)
        exe = shutil.which("phaselog")
        cmd = [exe] if exe else [sys.executable, "-m", "phaselog.adapters.cli"]
        proc = subprocess.Popen(
            [*cmd, "projections", "run", "--url", durable_url, "--poll", "0.05"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _until(lambda: views.position() == store.max_position(), 60, "the runner process to catch up")
            store.plugins.machine("cam").transition_to("Installed", "two")
            _until(lambda: views.position() == store.max_position(), 60, "the runner process to follow")
            row = views.plugin_phases.get("cam")
            assert row is not None
            assert row["phase"] == "Installed"
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "stopped at position" in out
        views.close()


def test_postgresql_runner_wakes_on_notify(make_url: Callable[[str], str]) -> None:
    """On PostgreSQL a following runner is woken by LISTEN/NOTIFY, not by its (here 60 s) poll."""
    with open_store(make_url("postgresql")) as store:
        views = Projections(store, poll_interval=60)
        views.start()
        try:
            views.wait(0, timeout=1)
            _until(lambda: views.backend._listener is not None, 30, "LISTEN to be armed")  # type: ignore[attr-defined]
            for i in range(3):
                open_account(store, f"acct:{i}")
                views.wait(store.max_position(), timeout=20)
        finally:
            views.close()
