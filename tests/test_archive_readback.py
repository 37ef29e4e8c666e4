"""An archive whose file does not read back as written is never recorded, and with --detach drops nothing."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from phaselog.adapters import open_store
from phaselog.adapters.audit import archive_file
from phaselog.adapters.audit.archive import archive
from phaselog.adapters.audit.history import verify
from phaselog.adapters.cli.app import main
from phaselog.domain.errors import IntegrityViolation

from conftest import raw_execute
from support_events import Counter, open_counter


def _corrupting_writer(monkeypatch: pytest.MonkeyPatch, position: int) -> None:
    """Make the archive writer flip one event's state in the file after writing it (a bad disk, say)."""
    real = archive_file.write_archive

    def write_then_corrupt(target: Path, contents: archive_file.Archive) -> None:
        real(target, contents)
        lines = gzip.decompress(target.read_bytes()).splitlines()
        for n, raw in enumerate(lines):
            line = orjson.loads(raw)
            if "event" in line and line["event"][0] == position:
                line["event"][4] = "eyJhbW91bnQiOjk5OX0="  # {"amount":999}
                lines[n] = orjson.dumps(line)
        target.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))

    monkeypatch.setattr("phaselog.adapters.audit.archive.write_archive", write_then_corrupt)


def _partitions(url: str) -> list[str]:
    rows = raw_execute(
        url,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() ORDER BY 1",
    )
    return [str(r[0]) for r in rows]


def test_an_archive_failing_its_read_back_with_detach_drops_no_partition(
    make_url: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file corrupted between writing and reading back: archive --detach fails and drops nothing."""
    base = make_url("postgresql")  # raw_execute takes the URL with only its schema
    url = base + "&partition_size=100"
    with open_store(url) as store:
        for n in range(250):
            counter = store.load(f"c-{n % 7}", Counter) if n >= 7 else open_counter(f"c-{n % 7}")
            counter.add(n)
            store.save(counter)
        totals = {f"c-{n}": store.load(f"c-{n}", Counter).total for n in range(7)}
    partitions = _partitions(base)
    assert "phaselog_events_p0" in partitions
    _corrupting_writer(monkeypatch, position=150)
    with open_store(url) as store, pytest.raises(IntegrityViolation, match="read back"):
        archive(store, 201, tmp_path / "api.gz", detach=True)
    assert not (tmp_path / "api.gz").exists()
    command = [
        "audit",
        "archive",
        "--before",
        "201",
        "--to",
        str(tmp_path / "cli.gz"),
        "--detach",
        "--url",
        url,
    ]
    assert main(command) == 1  # the CLI's --detach: the same one-line error
    assert not (tmp_path / "cli.gz").exists()
    assert _partitions(base) == partitions
    assert raw_execute(base, "SELECT count(*) FROM phaselog_archives") == [(0,)]
    assert int(str(raw_execute(base, "SELECT min(notification_id) FROM phaselog_events")[0][0])) == 1
    with open_store(url, read_only=True) as store:
        assert {f"c-{n}": store.load(f"c-{n}", Counter).total for n in range(7)} == totals
        assert verify(store).ok
