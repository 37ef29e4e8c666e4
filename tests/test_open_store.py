from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_support import pg_schema_exists

from phaselog.adapters import open_store
from phaselog.adapters.errors import translate_errors
from phaselog.adapters.migrate import SCHEMA_VERSION, SchemaOutdated
from phaselog.adapters.urls import parse_url
from phaselog.domain.errors import NotFound, PhaselogError, StoreUnavailable, ValidationFailed

from conftest import raw_execute
from support_events import Counter, open_counter


@pytest.mark.parametrize(
    "url",
    [
        "mysql://db",
        "sqlite://host/file.db",
        "sqlite:///",
        "postgresql://u@h/",
        "postgresql://u@h/db?schema=Bad-Name",
        "postgresql://u@h/db?schema=1abc",  # an unquoted SQL identifier cannot start with a digit
        "postgresql://u@h/db?schema=9",
    ],
)
def test_malformed_urls_are_rejected(url: str) -> None:
    """A URL phaselog cannot use raises ValidationFailed before anything is opened."""
    with pytest.raises(ValidationFailed):
        open_store(url)


def test_url_forms() -> None:
    """sqlite:/// is relative, sqlite://// absolute; PostgreSQL URLs keep schema and drop the password."""
    assert parse_url("sqlite:///data/x.db").sqlite_path == Path("data/x.db")
    assert parse_url("sqlite:////srv/x.db").sqlite_path == Path("/srv/x.db")
    pg = parse_url("postgresql://me:secret@db.local:6543/ops?schema=audit")
    assert pg.env["POSTGRES_PORT"] == "6543"
    assert pg.env["POSTGRES_SCHEMA"] == "audit"
    assert "secret" not in pg.display
    assert parse_url("memory://").kind == "memory"


def test_default_url_comes_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With no URL, PHASELOG_URL is used, else sqlite:///phaselog.db in the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PHASELOG_URL", raising=False)
    with open_store() as store:
        assert store.url == "sqlite:///phaselog.db"
    assert (tmp_path / "phaselog.db").exists()
    monkeypatch.setenv("PHASELOG_URL", "memory://")
    with open_store() as store:
        assert store.kind == "memory"


def test_unreachable_postgres_is_one_clear_error() -> None:
    """A server that refuses connections gives StoreUnavailable with a one-line reason."""
    with pytest.raises(StoreUnavailable) as caught:
        open_store("postgresql://postgres@127.0.0.1:1/postgres")
    assert "\n" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)
    assert isinstance(caught.value, PhaselogError)
    assert caught.value.__cause__ is not None


def test_sqlite_in_missing_folder_is_unavailable(tmp_path: Path) -> None:
    """A SQLite file in a folder that does not exist is reported, not created somewhere else."""
    with pytest.raises(StoreUnavailable, match="does not exist"):
        open_store(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")


def test_invalid_snapshot_interval_is_rejected() -> None:
    """A snapshot interval below 1 is a ValidationFailed."""
    with pytest.raises(ValidationFailed):
        open_store("memory://", snapshot_interval=0)


def test_close_is_idempotent(store_url: str) -> None:
    """Closing a store twice raises nothing, leaves it closed, and loses nothing that was saved."""
    store = open_store(store_url)
    store.save(open_counter("counter:closed"))
    store.close()
    store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        store.max_position()
    with pytest.raises(StoreUnavailable, match="closed"):
        store.load("counter:closed", Counter)
    if store_url.startswith("memory"):
        return  # a memory store's data goes with it
    with open_store(store_url) as again:
        assert again.load("counter:closed", Counter).version == 1


def test_many_processes_open_a_new_postgres_schema_at_once(make_url: Callable[[str], str]) -> None:
    """Processes racing to create the same tables all open the store successfully."""
    url = make_url("postgresql")
    script = "import sys; from phaselog.adapters import open_store; open_store(sys.argv[1]).close()"
    procs = [subprocess.Popen([sys.executable, "-c", script, url]) for _ in range(6)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 6


def test_using_a_closed_store_is_a_phaselog_error(durable_url: str) -> None:
    """Reading from a store after close() raises StoreUnavailable, not a driver error."""
    store = open_store(durable_url)
    store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        store.max_position()


def test_many_processes_create_one_sqlite_file_at_once(
    make_url: Callable[[str], str], tmp_path: Path
) -> None:
    """Processes racing to create the same new SQLite store all open it successfully."""
    url, go = make_url("sqlite"), tmp_path / "go"
    script = (
        "import os, sys, time, pathlib\n"
        "from phaselog.adapters import open_store\n"
        "go, ready = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])\n"
        "tmp = ready.with_suffix('.tmp')\n"
        "tmp.write_text('ready')\n"
        "os.replace(tmp, ready)\n"  # atomic: the parent never sees a half-written file
        "deadline = time.monotonic() + 120\n"
        "while not go.exists():\n"
        "    if time.monotonic() > deadline: sys.exit('never got the go signal')\n"
        "    time.sleep(0.001)\n"
        "open_store(sys.argv[1]).close()\n"
    )
    ready = [tmp_path / f"ready-{n}" for n in range(10)]
    procs = [subprocess.Popen([sys.executable, "-c", script, url, str(go), str(r)]) for r in ready]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready):  # every process imported phaselog and reached the start line
        assert time.monotonic() < deadline, "the racers never reached the start line"
        assert all(p.poll() in {None, 0} for p in procs), "a racer died before the start"
        time.sleep(0.01)
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0] * 10


# -- create=False and read_only=True -------------------------------------------------------------------------
def test_create_false_on_a_missing_store_is_not_found_and_creates_nothing(
    make_url: Callable[[str], str], tmp_path: Path
) -> None:
    """open_store(create=False) or read_only=True on no store raises NotFound; no file, schema or table."""
    for kind in ("memory", "sqlite", "postgresql"):
        url = make_url(kind)
        for options in ({"create": False}, {"read_only": True}):
            with pytest.raises(NotFound, match="no phaselog store"):
                open_store(url, **options)
        if kind == "sqlite":
            assert list(tmp_path.glob("store-*")) == []
        if kind == "postgresql":
            assert not pg_schema_exists(url)


def test_a_read_only_store_reads_and_never_writes(durable_url: str) -> None:
    """read_only=True reads what exists; any write fails (StoreUnavailable) and records nothing."""
    with open_store(durable_url) as store:
        store.save(open_counter("counter:ro"))
    with open_store(durable_url, read_only=True) as store:
        assert (store.read_only, store.create) == (True, False)
        assert store.load("counter:ro", Counter).version == 1
        before = store.max_position()
        with pytest.raises(StoreUnavailable, match="read-only"):
            store.save(open_counter("counter:written"))
        with pytest.raises(StoreUnavailable, match="read-only"):
            store.seal()
        assert store.max_position() == before
        assert not store.exists("counter:written")
        # and past the store's own check, the database itself refuses (read-only connections / file)
        with pytest.raises(StoreUnavailable), translate_errors("writing behind the store's back"):
            store.app.save(open_counter("counter:behind"))
        assert store.max_position() == before


def test_an_older_schema_is_refused_unless_creating(durable_url: str) -> None:
    """create=False refuses a store whose schema version is older, naming `phaselog migrate`."""
    with open_store(durable_url) as store:
        store.save(open_counter("counter:old"))
    raw_execute(durable_url, "DROP TABLE phaselog_meta")  # as a store of schema version 1
    for options in ({"create": False}, {"read_only": True}):
        with pytest.raises(SchemaOutdated, match="phaselog migrate"):
            open_store(durable_url, **options)
    with open_store(durable_url) as store:  # create=True upgrades (and records it) as before
        assert store.load("counter:old", Counter).version == 1
    with open_store(durable_url, read_only=True) as store:
        assert store.schema_version == SCHEMA_VERSION


def test_a_newer_schema_is_refused_in_every_mode(durable_url: str) -> None:
    """A store written by a newer phaselog is never opened (this one's DDL would replace its functions)."""
    with open_store(durable_url) as store:
        store.save(open_counter("counter:new"))
    raw_execute(durable_url, "UPDATE phaselog_meta SET value = '99' WHERE key = 'schema_version'")
    for options in ({}, {"create": False}, {"read_only": True}):
        with pytest.raises(StoreUnavailable, match="newer than this phaselog"):
            open_store(durable_url, **options)
    assert raw_execute(durable_url, "SELECT value FROM phaselog_meta WHERE key = 'schema_version'") == [
        ("99",)
    ]
