"""The CLI as an auditor uses it, run as a real subprocess on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

import orjson
import psycopg
import pytest
from cli_support import (
    assert_one_line_error,
    assert_usage_error,
    fill,
    json_out,
    meta,
    phaselog,
    schema_v1_url,
    store_exists,
)

from phaselog.adapters import open_store
from phaselog.adapters.migrate import SCHEMA_VERSION

from conftest import raw_execute

READ_ONLY_COMMANDS = [
    ["audit", "verify"],
    ["audit", "timeline", "plugin:cam"],
    ["audit", "as-of", "plugin:cam"],
    ["audit", "export"],
    ["streams"],
    ["projections", "status"],
    ["projections", "errors"],
]


# -- read-only: a missing store is an error and nothing is created ------------------------------------
def test_commands_on_a_missing_store_fail_in_one_line_and_create_nothing(
    durable_url: str, tmp_path: Path
) -> None:
    """Every audit/status command (and seal, migrate) on a store that does not exist: exit 1, nothing made."""
    for command in [*READ_ONLY_COMMANDS, ["audit", "seal"], ["migrate"], ["projections", "rebuild"]]:
        result = phaselog(*command, "--url", durable_url, cwd=tmp_path)
        assert "no phaselog store" in assert_one_line_error(result), command
        assert not store_exists(durable_url), command
    assert list(tmp_path.iterdir()) == [], "a command left a file behind"


def test_a_select_only_role_runs_every_audit_command(
    make_url: Callable[[str], str], pg_dsn: str, tmp_path: Path
) -> None:
    """A PostgreSQL role with only USAGE on the schema and SELECT on its tables runs every read command."""
    filled_url = make_url("postgresql")  # database roles are a PostgreSQL matter
    with open_store(filled_url, seal_interval=0) as store:  # left unsealed: the auditor's seal must write
        fill(store)
        store.projections.catch_up()
    schema = filled_url.partition("?schema=")[2]
    role = "auditor_" + uuid.uuid4().hex[:8]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
    auditor_url = filled_url.replace("postgres@", f"{role}@", 1)
    for command in READ_ONLY_COMMANDS:
        result = phaselog(*command, "--url", auditor_url, cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
    streams = json_out(phaselog("streams", "--json", "--url", auditor_url, cwd=tmp_path))
    assert {s["stream_id"] for s in streams} == {"plugin:cam", "task:cli:t1"}
    verify = json_out(phaselog("audit", "verify", "--json", "--url", auditor_url, cwd=tmp_path))
    assert verify["ok"] is True
    # writing is refused by the database, in one line
    assert "permission denied" in assert_one_line_error(
        phaselog("audit", "seal", "--url", auditor_url, cwd=tmp_path)
    )


# -- errors ---------------------------------------------------------------------------------------------
def test_errors_are_one_line_on_stderr_never_a_traceback(filled_url: str, tmp_path: Path) -> None:
    """Bad URLs, unknown parameters, unwritable paths: usage errors (exit 2, an Error: line), no traceback."""
    out = tmp_path / "out.jsonl"
    bad = phaselog("audit", "export", "--url", "foo://x", "-o", str(out), cwd=tmp_path)
    assert_usage_error(bad, "unsupported store URL")
    assert not out.exists()
    typo = filled_url + ("&" if "?" in filled_url else "?") + "shcema=ops"
    assert_usage_error(phaselog("audit", "verify", "--url", typo, cwd=tmp_path), "shcema")
    nowhere = phaselog("audit", "export", "-o", "/nonexistent/dir/f.jsonl", "--url", filled_url, cwd=tmp_path)
    assert_usage_error(nowhere, "/nonexistent/dir")
    # a long message is not wrapped to the (narrow) terminal when piped
    long_url = "mysql://" + "x" * 300
    assert_usage_error(phaselog("streams", "--url", long_url, cwd=tmp_path, columns=40), long_url)
    usage = phaselog("audit", "verify", "--bogus", cwd=tmp_path)
    assert usage.returncode == 2
    assert "No such option" in usage.stderr
    assert "Traceback" not in usage.stderr


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE stored_events SET state = CAST(state AS TEXT) WHERE rowid = 2",
        "UPDATE stored_events SET state = 42 WHERE rowid = 2",
        "UPDATE stored_events SET state = 4.5 WHERE rowid = 2",
        "UPDATE stored_events SET topic = X'00ff' WHERE rowid = 2",
        "UPDATE stored_events SET originator_version = 'two' WHERE rowid = 2",
    ],
)
def test_verify_names_a_row_whose_values_changed_type(
    make_url: Callable[[str], str], tamper: str, tmp_path: Path
) -> None:
    """A SQLite row edited to another storage type (TEXT, INTEGER, REAL, BLOB) is reported as changed."""
    url = make_url("sqlite")
    with open_store(url) as store:
        fill(store)
    raw_execute(url, "DROP TRIGGER stored_events_no_update")
    raw_execute(url, tamper)
    result = phaselog("audit", "verify", "--json", "--url", url, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    problems = orjson.loads(result.stdout)["problems"]
    assert [(p["position"], p["kind"]) for p in problems][:1] == [(2, "changed")]
    table = phaselog("audit", "verify", "--url", url, cwd=tmp_path)
    assert table.returncode == 1
    assert "first tampered position: 2" in table.stdout


# -- migrate --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migrate_upgrades_a_schema_v1_store_explicitly_and_records_it(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Read commands refuse an old store with a hint and change nothing; migrate upgrades and records it."""
    dsn = request.getfixturevalue("pg_dsn") if kind == "postgresql" else None
    url = schema_v1_url(kind, tmp_path, dsn)
    refused = assert_one_line_error(phaselog("audit", "verify", "--url", url, cwd=tmp_path))
    assert "schema version 1" in refused
    assert "phaselog migrate" in refused
    assert meta(url) == {}, "a refused open changed the store"
    done = phaselog("migrate", "--url", url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"from schema version 1 to {SCHEMA_VERSION}" in done.stdout
    rows = meta(url)
    assert rows["schema_version"] == str(SCHEMA_VERSION)
    record = orjson.loads(rows[f"migrated:1->{SCHEMA_VERSION}"])
    assert record["by"] == f"phaselog {version('phaselog')}"
    datetime.fromisoformat(record["at"])
    assert json_out(phaselog("audit", "verify", "--json", "--url", url, cwd=tmp_path))["ok"] is True
    again = json_out(phaselog("migrate", "--json", "--url", url, cwd=tmp_path))
    assert (again["changed"], again["from_version"], again["to_version"]) == (
        False,
        SCHEMA_VERSION,
        SCHEMA_VERSION,
    )


def test_migrate_marks_finished_streams_closed_in_the_index(filled_url: str, tmp_path: Path) -> None:
    """An index counting every stream open (as an upgrade from schema 1 left it) is fixed by migrate."""
    raw_execute(
        filled_url, "UPDATE phaselog_streams SET open = " + ("1" if "sqlite" in filled_url else "true")
    )
    raw_execute(filled_url, "DROP TABLE phaselog_meta")  # schema version 1, before phaselog_meta existed
    done = json_out(phaselog("migrate", "--json", "--url", filled_url, cwd=tmp_path))
    assert (done["from_version"], done["to_version"], done["closed_streams"]) == (1, SCHEMA_VERSION, 1)
    streams = json_out(phaselog("streams", "--json", "--url", filled_url, cwd=tmp_path))
    assert {s["stream_id"]: s["open"] for s in streams} == {"plugin:cam": True, "task:cli:t1": False}


# -- finding things -------------------------------------------------------------------------------------
def test_streams_lists_kind_version_and_last_event_time(filled_url: str, tmp_path: Path) -> None:
    """`streams [--prefix] [--json]` gives each stream's kind, version, open flag and last event time."""
    rows = json_out(phaselog("streams", "--json", "--url", filled_url, cwd=tmp_path))
    with open_store(filled_url) as store:
        for row in rows:
            events = store.stream(row["stream_id"])
            assert row["version"] == len(events)
            assert datetime.fromisoformat(row["last_event_at"]) == events[-1].timestamp
    assert [(r["stream_id"], r["kind"]) for r in rows] == [("plugin:cam", "plugin"), ("task:cli:t1", "task")]
    tasks = json_out(phaselog("streams", "--prefix", "task:", "--json", "--url", filled_url, cwd=tmp_path))
    assert [r["stream_id"] for r in tasks] == ["task:cli:t1"]
    table = phaselog("streams", "--url", filled_url, cwd=tmp_path, columns=80)
    assert table.returncode == 0, table.stderr
    assert "plugin:cam" in table.stdout
    assert max(len(line) for line in table.stdout.splitlines()) <= 80


def test_timeline_decodes_values_and_filters(filled_url: str, tmp_path: Path) -> None:
    """Timeline shows plugin state as JSON, task states and log levels by name; --limit/--since/--until."""
    plugin = json_out(
        phaselog("audit", "timeline", "plugin:cam", "--json", "--url", filled_url, cwd=tmp_path)
    )
    written = [e for e in plugin if e["topic"] == "phaselog.plugin.StateWritten"]
    assert written[0]["data"]["value"] == {"pages": 3}  # the model's JSON, shown as structure
    task = json_out(phaselog("audit", "timeline", "task:cli:t1", "--json", "--url", filled_url, cwd=tmp_path))
    states = [e["data"]["state"] for e in task if e["topic"] == "phaselog.task.TaskStateChanged"]
    assert states == ["RUNNING", "COMPLETED"]
    assert {e["data"]["level"] for e in task if e["topic"] == "phaselog.task.TaskLogged"} == {"INFO"}
    assert task[0]["data"]["metadata"] == {"month": "2026-11"}
    limited = json_out(
        phaselog(
            "audit", "timeline", "task:cli:t1", "--limit", "2", "--json", "--url", filled_url, cwd=tmp_path
        )
    )
    assert [e["version"] for e in limited] == [1, 2]
    since, until = task[2]["timestamp"], task[3]["timestamp"]
    window = json_out(
        phaselog(
            "audit", "timeline", "task:cli:t1", "--since", since, "--until", until, "--json",
            "--url", filled_url, cwd=tmp_path,
        )
    )  # fmt: skip
    assert [e["version"] for e in window] == [3, 4]
    table = phaselog("audit", "timeline", "task:cli:t1", "--limit", "2", "--url", filled_url, cwd=tmp_path)
    assert f"{len(task) - 2} more event(s)" in table.stdout


def test_timeline_wide_shows_details_in_full(filled_url: str, tmp_path: Path) -> None:
    """--wide prints every event's details whole even on a narrow terminal; the table cuts them to fit."""
    events = json_out(
        phaselog("audit", "timeline", "task:cli:t1", "--json", "--url", filled_url, cwd=tmp_path)
    )
    claimed = next(e for e in events if e["topic"] == "phaselog.task.TaskClaimed")
    details = orjson.dumps(claimed["data"]).decode()
    wide = phaselog(
        "audit", "timeline", "task:cli:t1", "--wide", "--url", filled_url, cwd=tmp_path, columns=60
    )
    assert wide.returncode == 0, wide.stderr
    assert details in wide.stdout
    narrow = phaselog("audit", "timeline", "task:cli:t1", "--url", filled_url, cwd=tmp_path, columns=60)
    assert details not in narrow.stdout
    assert "…" in narrow.stdout
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 60


def test_as_of_defaults_to_the_latest_state_as_json(filled_url: str, tmp_path: Path) -> None:
    """as-of with no selector shows the newest version; --at-version picks one; plugin state is decoded."""
    latest = json_out(phaselog("audit", "as-of", "plugin:cam", "--json", "--url", filled_url, cwd=tmp_path))
    with open_store(filled_url) as store:
        assert latest["version"] == len(store.stream("plugin:cam"))
    assert latest["state"]["phase"] == "Installed"
    assert latest["state"]["state"]["value"] == {"pages": 3}
    first = json_out(
        phaselog(
            "audit", "as-of", "plugin:cam", "--at-version", "1", "--json", "--url", filled_url, cwd=tmp_path
        )
    )
    assert (first["version"], first["state"]["phase"]) == (1, "Uninstalled")
    text = phaselog("audit", "as-of", "plugin:cam", "--url", filled_url, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert f"version {latest['version']}" in text.stdout


# -- conventions ----------------------------------------------------------------------------------------
def test_version_module_entry_and_help(tmp_path: Path) -> None:
    """--version and python -m phaselog --version print the installed version; help shows no type labels."""
    expected = f"phaselog {version('phaselog')}\n"
    assert phaselog("--version", cwd=tmp_path).stdout == expected
    assert phaselog("--version", cwd=tmp_path, module=True).stdout == expected
    for command in (["--help"], ["audit", "timeline", "--help"], ["audit", "verify", "--help"]):
        shown = phaselog(*command, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert "<bool>" not in shown.stdout
        assert "<str>" not in shown.stdout
    assert "--at-version" in phaselog("audit", "as-of", "--help", cwd=tmp_path).stdout


def test_verbose_and_json_log_lines_go_to_stderr(filled_url: str, tmp_path: Path) -> None:
    """-v/-vv and --log-level show phaselog's logs on stderr, as JSON lines with --log-format json."""
    quiet = phaselog("streams", "--json", "--url", filled_url, cwd=tmp_path)
    assert quiet.stderr == ""
    debug = phaselog("-vv", "streams", "--json", "--url", filled_url, cwd=tmp_path)
    assert "DEBUG phaselog.store: opened" in debug.stderr
    orjson.loads(debug.stdout)  # the data on stdout stays clean
    lines = phaselog(
        "--log-level", "debug", "--log-format", "json", "streams", "--url", filled_url, cwd=tmp_path
    ).stderr.splitlines()
    records = [orjson.loads(line) for line in lines]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["logger"] == "phaselog.store" and r["level"] == "DEBUG" for r in records)
    assert phaselog("--log-level", "loud", "streams", cwd=tmp_path).returncode == 2


# -- projections status sees runners of other processes -------------------------------------------------
def test_projections_status_shows_a_runner_alive_in_another_process(filled_url: str, tmp_path: Path) -> None:
    """While `projections run` follows in another process, status names it as each model's lease holder."""
    exe = shutil.which("phaselog")
    cmd = [exe] if exe else [sys.executable, "-m", "phaselog"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "200"}
    runner = subprocess.Popen(
        [*cmd, "projections", "run", "--poll", "0.05", "--url", filled_url],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # a bounded wait for the runner to take every lease
            rows = json_out(phaselog("projections", "status", "--json", "--url", filled_url, cwd=tmp_path))
            if all(r["owner"] and f":{runner.pid}:" in r["owner"] for r in rows):
                break
            assert runner.poll() is None, runner.communicate()[1]
            assert time.monotonic() < deadline, rows
        table = phaselog("projections", "status", "--url", filled_url, cwd=tmp_path, columns=200)
        assert table.returncode == 0, table.stderr
        assert f":{runner.pid}:" in table.stdout
        assert "(live lease)" in table.stdout
        assert "following" in table.stdout
    finally:
        runner.send_signal(signal.SIGTERM)
        _, err = runner.communicate(timeout=120)
    assert runner.returncode == 0, err
    after = json_out(phaselog("projections", "status", "--json", "--url", filled_url, cwd=tmp_path))
    assert [r["owner"] for r in after] == [None] * len(after)  # a clean stop hands its leases back
    assert "none live" in phaselog("projections", "status", "--url", filled_url, cwd=tmp_path).stdout
