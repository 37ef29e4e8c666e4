"""CLI edges: relative times, usage errors (exit 2), empty timelines, rebuild names, foreign files."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from cli_support import assert_one_line_error, assert_usage_error, fill, json_out, phaselog

from phaselog.adapters import open_store
from phaselog.adapters.cli.app import _mount_subcommands, app
from phaselog.adapters.cli.times import TIME_FORMS, parse_moment
from phaselog.adapters.migrate import NotAPhaselogStore

NOW = datetime(2026, 3, 4, 12, 30, 15, tzinfo=UTC)


def _all_params() -> list[tuple[str, Any]]:
    """Every parameter of every ``phaselog`` command, named by the command path."""
    _mount_subcommands()
    found: list[tuple[str, Any]] = []

    def walk(command: Any, path: str) -> None:
        found.extend((path, p) for p in command.params)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "phaselog")
    return found


# -- 1. relative times -----------------------------------------------------------------------------
def test_parse_moment_reads_iso_and_relative_times() -> None:
    """ISO-8601 (naive as UTC), Ns/Nm/Nh/Nd/Nw ago, now, today and yesterday (UTC midnights)."""
    assert parse_moment("2026-01-31T10:00:00", now=NOW) == datetime(2026, 1, 31, 10, tzinfo=UTC)
    assert parse_moment("2026-01-31T10:00:00+02:00", now=NOW) == datetime(2026, 1, 31, 8, tzinfo=UTC)
    assert parse_moment("2026-01-31", now=NOW) == datetime(2026, 1, 31, tzinfo=UTC)
    for text, ago in [
        ("45s", timedelta(seconds=45)),
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        (" 3H ago ", timedelta(hours=3)),
    ]:
        assert parse_moment(text, now=NOW) == NOW - ago, text
    assert parse_moment("now", now=NOW) == NOW
    assert parse_moment("today", now=NOW) == datetime(2026, 3, 4, tzinfo=UTC)
    assert parse_moment("Yesterday", now=NOW) == datetime(2026, 3, 3, tzinfo=UTC)
    for bad in ("", "1x", "h", "-1h", "soon", "2026-13-01"):
        with pytest.raises(ValueError, match="not a time"):
            parse_moment(bad, now=NOW)


def test_every_time_option_takes_the_one_time_parser() -> None:
    """Each --since/--until/--at-like option of every command is a TIME option naming every time form."""
    timed = set()
    for path, p in _all_params():
        names = {o.lstrip("-") for o in getattr(p, "opts", [])}
        if names & {"since", "until", "at", "as-of", "after", "older-than", "newer-than"}:
            assert p.metavar == "TIME", (path, p.name)
            assert TIME_FORMS in (getattr(p, "help", None) or ""), (path, p.name)
            timed.add((path, p.name))
    assert timed == {
        ("phaselog audit timeline", "since"),
        ("phaselog audit timeline", "until"),
        ("phaselog audit as-of", "at"),
    }


def test_timeline_and_as_of_take_relative_times(filled_url: str, tmp_path: Path) -> None:
    """`--since 1h`, `--since 30m`, `--since yesterday`, `--until now` and `--at now` are accepted."""
    every = json_out(
        phaselog("audit", "timeline", "task:cli:t1", "--json", "--url", filled_url, cwd=tmp_path)
    )
    for since in ("1h", "30m", "yesterday", "today", "1w"):
        got = json_out(
            phaselog(
                "audit", "timeline", "task:cli:t1", "--since", since, "--until", "now", "--json",
                "--url", filled_url, cwd=tmp_path,
            )
        )  # fmt: skip
        assert got == every, since
    before = json_out(
        phaselog(
            "audit", "timeline", "task:cli:t1", "--until", "1h", "--json", "--url", filled_url, cwd=tmp_path
        )
    )
    assert before == []
    at_now = phaselog(
        "audit", "as-of", "plugin:cam", "--at", "now", "--json", "--url", filled_url, cwd=tmp_path
    )
    latest = phaselog("audit", "as-of", "plugin:cam", "--json", "--url", filled_url, cwd=tmp_path)
    assert json_out(at_now) == json_out(latest)


# -- 2. usage errors exit 2, runtime failures 1 -------------------------------------------------------
def test_usage_errors_exit_2_with_a_clear_message(filled_url: str, tmp_path: Path) -> None:
    """A bad time, option value, option pair, URL or read model name exits 2; a missing stream stays 1."""
    url = ("--url", filled_url)
    bad_time = phaselog("audit", "timeline", "plugin:cam", "--since", "1x", *url, cwd=tmp_path)
    assert "'1x' is not a time" in assert_usage_error(bad_time, "--since", "30m", "yesterday")
    assert_usage_error(phaselog("audit", "as-of", "plugin:cam", "--at", "soon", *url, cwd=tmp_path), "--at")
    both = phaselog("audit", "as-of", "plugin:cam", "--at-version", "1", "--at", "now", *url, cwd=tmp_path)
    assert_usage_error(both, "--at-version", "--at")
    assert_usage_error(
        phaselog("audit", "export", "--format", "csv", *url, cwd=tmp_path), "--format", "jsonl"
    )
    assert_usage_error(
        phaselog("audit", "export", "-o", "/nonexistent/dir/f.jsonl", *url, cwd=tmp_path), "/nonexistent/dir"
    )
    assert_usage_error(
        phaselog("streams", "--url", "foo://x", cwd=tmp_path), "--url", "unsupported store URL"
    )
    assert_usage_error(phaselog("streams", cwd=tmp_path, env={"PHASELOG_URL": "foo://x"}), "PHASELOG_URL")
    for command in (["errors", "nosuchmodel"], ["retry", "nosuchmodel"], ["rebuild", "nosuchmodel"]):
        unknown = phaselog("projections", *command, *url, cwd=tmp_path)
        assert_usage_error(unknown, "nosuchmodel", "plugin_phases", "task_statuses")
    archive = phaselog("audit", "archive", "--before", "1", "--to", "a.gz", *url, cwd=tmp_path)
    assert_usage_error(archive, "--before")
    if filled_url.startswith("sqlite"):
        detach = phaselog("audit", "archive", "--before", "3", "--to", "a.gz", "--detach", *url, cwd=tmp_path)
        assert_usage_error(detach, "--detach", "PostgreSQL")
        assert not (tmp_path / "a.gz").exists()
    alone = phaselog("audit", "verify", "--archive", "a.gz", "--expect-head", "ab", cwd=tmp_path)
    assert_usage_error(alone, "--expect-head", "--url")
    # runtime failures keep exit status 1
    assert "no stream" in assert_one_line_error(phaselog("audit", "as-of", "nope:1", *url, cwd=tmp_path))


# -- 3. an empty timeline ---------------------------------------------------------------------------------
def test_an_empty_timeline_says_no_events_match_its_filter(filled_url: str, tmp_path: Path) -> None:
    """A timeline whose filter matches nothing prints one line naming the stream and the filter."""
    shown = phaselog(
        "audit", "timeline", "plugin:cam", "--until", "2000-01-01", "--url", filled_url, cwd=tmp_path
    )
    assert shown.returncode == 0, shown.stderr
    (line,) = shown.stdout.splitlines()
    assert line.startswith("no events of plugin:cam match --until 2000-01-01")
    assert "timeline of" not in shown.stdout


# -- 5. rebuild validates names before drawing -------------------------------------------------------------
def test_rebuild_of_an_unknown_read_model_draws_no_progress_bar(filled_url: str, tmp_path: Path) -> None:
    """`projections rebuild nosuchmodel` exits 2 listing the known names, with nothing on stdout."""
    result = phaselog("projections", "rebuild", "nosuchmodel", "--url", filled_url, cwd=tmp_path)
    assert result.stdout == ""
    assert "known read models: plugin_phases" in assert_usage_error(result, "nosuchmodel")


# -- 6. a SQLite file that is not a phaselog store ----------------------------------------------------
def test_a_foreign_stored_events_table_is_not_a_phaselog_store(tmp_path: Path) -> None:
    """A SQLite file with an unrelated stored_events table is refused as not a phaselog store, unchanged."""
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE stored_events (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO stored_events (body) VALUES ('not ours')")
    conn.close()
    before = path.read_bytes()
    url = f"sqlite:///{path}"
    for command in (["audit", "verify"], ["migrate"], ["streams"]):
        message = assert_one_line_error(phaselog(*command, "--url", url, cwd=tmp_path))
        assert "not a phaselog store" in message, command
        assert "migrate" not in message, command
    for create in (False, True):
        with pytest.raises(NotAPhaselogStore, match="not a phaselog store"):
            open_store(url, create=create)
    assert path.read_bytes() == before


# -- 8. archive --detach that detaches nothing -------------------------------------------------------------
def test_detach_that_detaches_nothing_says_so_and_why(make_url: Callable[[str], str], tmp_path: Path) -> None:
    """--detach below the first partition boundary says nothing was detached and where the boundary is."""
    url = make_url("postgresql") + "&partition_size=100"
    with open_store(url) as store:
        fill(store)
    made = phaselog(
        "audit", "archive", "--before", "5", "--to", "a.gz", "--detach", "--url", url, cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    assert "nothing detached: no partition lies wholly below position 5" in made.stdout
    assert "--before reaches 100" in made.stdout
