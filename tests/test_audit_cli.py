"""The audit and projections commands on SQLite and PostgreSQL stores."""

from __future__ import annotations

import orjson
import pytest
from projections_support import open_account
from typer.testing import CliRunner

from phaselog.adapters import open_store
from phaselog.adapters.cli.app import main
from phaselog.adapters.cli.audit import audit_app, projections_app

from conftest import raw_execute

runner = CliRunner()


@pytest.fixture
def url(durable_url: str) -> str:
    with open_store(durable_url) as store:
        open_account(store, "acct:a", owner="ann", deposits=(10, 5))
        open_account(store, "acct:b", owner="bob", deposits=(1,))
        store.plugins.machine("cam").transition_to("Installing", "install")
    return durable_url


def test_timeline_json_and_table(url: str) -> None:
    """Timeline lists a stream's events with global positions, as JSON or as a table."""
    result = runner.invoke(audit_app, ["timeline", "acct:a", "--json", "--url", url])
    assert result.exit_code == 0, result.output
    events = orjson.loads(result.stdout)
    assert [(e["position"], e["version"], e["topic"]) for e in events] == [
        (1, 1, "tests.proj.AccountOpened"),
        (2, 2, "tests.proj.Deposited"),
        (3, 3, "tests.proj.Deposited"),
    ]
    assert events[1]["data"]["amount"] == 10
    table = runner.invoke(audit_app, ["timeline", "plugin:cam", "--url", url], terminal_width=200)
    assert table.exit_code == 0, table.output
    assert "plugin.PhaseChanged" in table.stdout


def test_timeline_of_unknown_stream_fails(url: str) -> None:
    """Timeline of a stream that does not exist is a NotFound error."""
    assert main(["audit", "timeline", "nope:1", "--url", url]) == 1


def test_as_of_version_and_time(url: str) -> None:
    """as-of prints the aggregate's state at a version, or at the last event not after a time."""
    result = runner.invoke(audit_app, ["as-of", "acct:a", "--at-version", "2", "--json", "--url", url])
    assert result.exit_code == 0, result.output
    state = orjson.loads(result.stdout)
    assert (state["version"], state["aggregate"], state["state"]) == (
        2,
        "Account",
        {"owner": "ann", "balance": 10},
    )
    at = state["timestamp"]
    by_time = orjson.loads(
        runner.invoke(audit_app, ["as-of", "acct:a", "--at", at, "--json", "--url", url]).stdout
    )
    assert by_time["version"] == 2
    plugin = orjson.loads(
        runner.invoke(audit_app, ["as-of", "plugin:cam", "--at-version", "1", "--json", "--url", url]).stdout
    )
    assert plugin["aggregate"] == "PluginAggregate"


def test_as_of_defaults_to_the_latest_state(url: str) -> None:
    """as-of without --at-version or --at shows the latest version; a time too early fails, both is usage."""
    latest = runner.invoke(audit_app, ["as-of", "acct:a", "--json", "--url", url])
    assert latest.exit_code == 0, latest.output
    assert orjson.loads(latest.stdout)["version"] == 3
    assert orjson.loads(latest.stdout)["state"] == {"owner": "ann", "balance": 15}
    assert main(["audit", "as-of", "acct:a", "--at", "2000-01-01T00:00:00", "--url", url]) == 1
    assert main(["audit", "as-of", "acct:a", "--at-version", "9", "--url", url]) == 1
    assert main(["audit", "as-of", "acct:a", "--at-version", "1", "--at", "2000-01-01", "--url", url]) == 2
    assert main(["audit", "as-of", "acct:nope", "--url", url]) == 1


def test_export_jsonl(url: str) -> None:
    """Export writes every stored event as one JSON line, in global order."""
    result = runner.invoke(audit_app, ["export", "--format", "jsonl", "--url", url])
    assert result.exit_code == 0, result.output
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    with open_store(url) as store:
        assert [x["position"] for x in lines] == list(range(1, store.max_position() + 1))
    assert lines[0]["stream_id"] == "acct:a"
    assert main(["audit", "export", "--format", "csv", "--url", url]) == 2  # a usage error


def test_verify_exit_codes(url: str) -> None:
    """Verify exits 0 on an untouched store and 1 naming the position of a tampered event."""
    ok = runner.invoke(audit_app, ["verify", "--url", url])
    assert ok.exit_code == 0, ok.output
    assert "ok" in ok.stdout
    if url.startswith("sqlite"):
        raw_execute(url, "DROP TRIGGER stored_events_no_update")
        raw_execute(url, "UPDATE stored_events SET topic = 'x' WHERE rowid = 2")
    else:
        raw_execute(url, "ALTER TABLE phaselog_events DISABLE TRIGGER USER")
        raw_execute(url, "UPDATE phaselog_events SET topic = 'x' WHERE notification_id = 2")
    bad = runner.invoke(audit_app, ["verify", "--json", "--url", url])
    assert bad.exit_code == 1
    report = orjson.loads(bad.stdout)
    assert [(p["position"], p["kind"], p["stream_id"]) for p in report["problems"]] == [
        (2, "changed", "acct:a")
    ]


def test_projections_status_and_rebuild(url: str) -> None:
    """Projections rebuild replays the read models; status shows no lag afterwards."""
    rebuilt = runner.invoke(projections_app, ["rebuild", "--url", url])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "rebuilt plugin_phases: 1 rows" in rebuilt.stdout
    status = runner.invoke(projections_app, ["status", "--json", "--url", url])
    assert status.exit_code == 0, status.output
    rows = {r["name"]: r for r in orjson.loads(status.stdout)}
    assert rows["plugin_phases"]["lag"] == 0
    assert rows["plugin_phases"]["counts"] == {"Installing": 1}
    one = runner.invoke(projections_app, ["rebuild", "task_statuses", "--url", url])
    assert one.exit_code == 0, one.output
    assert main(["projections", "rebuild", "nope", "--url", url]) == 2  # an unknown name: a usage error
