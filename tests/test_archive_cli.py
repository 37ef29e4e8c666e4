"""``phaselog audit archive`` and ``phaselog audit verify --archive``, run as the real command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
from cli_support import phaselog

from phaselog.adapters import open_store
from phaselog.domain import PluginPhase


def _plugins(url: str, count: int) -> None:
    with open_store(url) as store:
        for n in range(count):
            machine = store.plugins.machine(f"p{n}")
            machine.transition_to(PluginPhase.INSTALLING, "install")
            machine.transition_to(PluginPhase.INSTALLED, "installed")


def test_archive_then_verify_the_file_alone_and_with_the_store(durable_url: str, tmp_path: Path) -> None:
    """The archive command writes a file that verifies alone, and the store verifies with and without it."""
    _plugins(durable_url, 6)
    made = phaselog(
        "audit", "archive", "--before", "12", "--to", "a.gz", "--url", durable_url, "--json", cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    report = orjson.loads(made.stdout)
    assert (report["start"], report["before"], report["events"]) == (1, 12, 11)
    alone = phaselog("audit", "verify", "--archive", "a.gz", "--json", cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr
    assert orjson.loads(alone.stdout)["checked"] == 11
    for extra in ([], ["--archive", "a.gz"]):
        both = phaselog("audit", "verify", "--url", durable_url, *extra, cwd=tmp_path)
        assert both.returncode == 0, both.stderr
        assert both.stdout.startswith("ok ")


def test_detach_drops_archived_partitions_on_postgresql(
    make_url: Callable[[str], str], tmp_path: Path
) -> None:
    """--detach drops the partitions wholly below --before; the store still verifies and loads."""
    url = make_url("postgresql") + "&partition_size=100"
    _plugins(url, 80)  # 240 events
    made = phaselog(
        "audit",
        "archive",
        "--before",
        "201",
        "--to",
        "old.gz",
        "--detach",
        "--url",
        url,
        "--json",
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    assert len(orjson.loads(made.stdout)["detached"]) == 4  # events and chain, partitions 0 and 1
    check = phaselog("audit", "verify", "--url", url, "--archive", "old.gz", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    with open_store(url) as store:
        assert store.plugins.machine("p0").phase is PluginPhase.INSTALLED


def test_archive_errors_are_one_line(durable_url: str, tmp_path: Path) -> None:
    """Archiving past the committed positions is a one-line error with exit status 1, writing nothing."""
    _plugins(durable_url, 2)
    late = phaselog("audit", "archive", "--before", "999", "--to", "x.gz", "--url", durable_url, cwd=tmp_path)
    assert late.returncode == 1
    assert len(late.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.gz").exists()
