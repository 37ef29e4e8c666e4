"""``phaselog audit archive``: move the history below a position into a sealed, verified archive file."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from phaselog.adapters.audit.archive import archive
from phaselog.adapters.cli.audit import audit_app
from phaselog.adapters.cli.common import JsonOption, UrlOption, console, echo_json
from phaselog.adapters.store import open_store

__all__ = ["archive_command", "register"]


def archive_command(
    before: Annotated[int, typer.Option("--before", help="Archive every event below this position.")],
    to: Annotated[Path, typer.Option("--to", help="The archive file to write (gzip JSON lines).")],
    url: UrlOption = None,
    detach: Annotated[
        bool,
        typer.Option("--detach", help="Then drop the partitions wholly below --before (PostgreSQL)."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Snapshot, write, read back and verify an archive of the events below --before; record it."""
    with open_store(url, create=False) as store:
        report = archive(store, before, to, detach=detach)
    if as_json:
        echo_json(asdict(report))
        return
    signed = "signed" if report.signed else "unsigned (set PHASELOG_AUDIT_KEY to sign)"
    console.print(
        f"archived {report.events} events (positions {report.start}-{report.before - 1}) to {report.path}; "
        f"{signed}; {report.snapshotted} stream(s) snapshotted first"
    )
    if report.detached:
        console.print(f"detached and dropped: {', '.join(report.detached)}")
    console.print(report.digest)


def register(app: typer.Typer) -> None:
    """Mount ``audit archive`` on the ``audit`` group."""
    del app  # the command belongs to the audit group, already mounted on it
    audit_app.command("archive")(archive_command)
