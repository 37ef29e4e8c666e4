"""``phaselog audit archive``: move the history below a position into a sealed, verified archive file."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from phaselog.adapters.audit.archive import archive
from phaselog.adapters.audit.reading import snapshot_reader
from phaselog.adapters.cli.audit import audit_app
from phaselog.adapters.cli.common import JsonOption, UrlOption, console, echo_json, usage_error
from phaselog.adapters.postgres.schema import SCHEMA_META_TABLE
from phaselog.adapters.store import Store, open_store
from phaselog.adapters.urls import parse_url

__all__ = ["archive_command", "register"]


def archive_command(  # noqa: PLR0913, PLR0917 - one option each (typer passes them by name)
    ctx: typer.Context,
    before: Annotated[
        int,
        typer.Option("--before", min=2, metavar="POSITION", help="Archive every event below this position."),
    ],
    to: Annotated[
        Path, typer.Option("--to", metavar="FILE", help="The archive file to write (gzip JSON lines).")
    ],
    url: UrlOption = None,
    detach: Annotated[
        bool,
        typer.Option("--detach", help="Then drop the partitions wholly below --before (PostgreSQL)."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Snapshot, write, read back and verify an archive of the events below --before; record it."""
    kind = parse_url(url).kind
    if kind == "memory":
        raise usage_error(ctx, "a memory:// store cannot be archived", param_hint="'--url'")
    if detach and kind != "postgresql":
        msg = f"only a partitioned PostgreSQL store can detach archived history, not a {kind} one"
        raise usage_error(ctx, msg, param_hint="'--detach'")
    if not to.parent.is_dir():
        raise usage_error(ctx, f"cannot write {to}: folder {to.parent} does not exist", param_hint="'--to'")
    with open_store(url, create=False) as store:
        report = archive(store, before, to, detach=detach)
        kept = _why_nothing_detached(store, before) if detach and not report.detached else None
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
    if kept is not None:
        console.print(kept)
    console.print(report.digest)


def _why_nothing_detached(store: Store, before: int) -> str:
    """Why --detach dropped no partition: none lies wholly below ``before`` (any more)."""
    with snapshot_reader(store) as read:
        rows = list(read(f"SELECT value FROM {read.table(SCHEMA_META_TABLE)} WHERE key = 'partition_size'"))
    size = int(rows[0][0])
    boundary = (before // size + 1) * size  # the next --before that would drop one more partition
    if before < size:
        reason = f"no partition lies wholly below position {before}"
    else:
        reason = f"the partitions wholly below position {before} were detached already"
    return (
        f"nothing detached: {reason} (each partition holds {size} positions, counted from 0); "
        f"the next one is dropped once --before reaches {boundary}; the archived events stay in the store"
    )


def register(app: typer.Typer) -> None:
    """Mount ``audit archive`` on the ``audit`` group."""
    del app  # the command belongs to the audit group, already mounted on it
    audit_app.command("archive")(archive_command)
