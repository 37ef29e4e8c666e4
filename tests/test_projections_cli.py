import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import orjson
import pytest
from eventsourcing.persistence import StoredEvent
from projections_support import open_account
from typer.testing import CliRunner

from phaselog.adapters import open_store
from phaselog.adapters.cli.audit import projections_app
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
        cmd = [exe] if exe else [sys.executable, "-m", "phaselog.adapters.cli.app"]
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
            listener = views.reader.listener  # type: ignore[attr-defined]  # the PostgreSQL reader's
            _until(lambda: listener.connection is not None, 30, "LISTEN to be armed")
            for i in range(3):
                open_account(store, f"acct:{i}")
                views.wait(store.max_position(), timeout=20)
        finally:
            views.close()


def test_projections_errors_and_retry_commands(durable_url: str) -> None:
    """`projections errors` lists a dead-lettered event (table and JSON); `projections retry` re-folds it."""
    cli = CliRunner()
    with open_store(durable_url) as store:
        store.plugins.machine("cam").transition_to("Installing", "one")
        bad = {"timestamp": "2026-01-01T00:00:00+00:00", "attempts": "many"}  # not an int: the fold fails
        store.app.recorder.insert_events(
            [StoredEvent("plugin:cam", 3, "phaselog.plugin.RetryAdvanced", orjson.dumps(bad))]
        )
        position = store.max_position()
        store.projections.catch_up()  # a runner meets the poison event and moves on
    listed = cli.invoke(projections_app, ["errors", "--json", "--url", durable_url])
    assert listed.exit_code == 0, listed.output
    (letter,) = orjson.loads(listed.stdout)
    assert (letter["projection"], letter["position"], letter["stream"]) == (
        "plugin_phases",
        position,
        "plugin:cam",
    )
    assert letter["topic"] == "phaselog.plugin.RetryAdvanced"
    only = cli.invoke(projections_app, ["errors", "task_statuses", "--json", "--url", durable_url])
    assert orjson.loads(only.stdout) == []
    table = cli.invoke(projections_app, ["errors", "--url", durable_url], terminal_width=200)
    assert table.exit_code == 0, table.output
    assert "1 dead-lettered event(s)" in table.stdout
    assert "'many'" in table.stdout  # the error names the value the fold could not take
    status = cli.invoke(projections_app, ["status", "--json", "--url", durable_url])
    rows = {r["name"]: r for r in orjson.loads(status.stdout)}
    assert rows["plugin_phases"]["errors"] == 1
    assert rows["plugin_phases"]["lag"] == 0
    assert rows["task_statuses"]["errors"] == 0
    retried = cli.invoke(projections_app, ["retry", "plugin_phases", "--url", durable_url])
    assert retried.exit_code == 0, retried.output
    assert "retried 1 dead-lettered event(s): 0 now folded, 1 still failing" in retried.stdout
    unknown = cli.invoke(projections_app, ["retry", "nope", "--url", durable_url])
    assert unknown.exit_code != 0
