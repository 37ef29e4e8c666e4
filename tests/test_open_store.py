from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from phaselog.adapters import open_store
from phaselog.adapters.urls import parse_url
from phaselog.domain.errors import PhaselogError, StoreUnavailable, ValidationFailed

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
    if store_url.startswith("memory"):
        return  # a closed memory store has no connections to refuse; its data goes with it
    with pytest.raises(StoreUnavailable, match="closed"):
        store.max_position()
    with pytest.raises(StoreUnavailable, match="closed"):
        store.load("counter:closed", Counter)
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
