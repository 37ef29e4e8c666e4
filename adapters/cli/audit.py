"""``phaselog audit …``, and the mounting of ``phaselog projections …`` (:mod:`.projections`).

Every command that only reads (timeline, as-of, verify, export, projections
status and errors) opens its store read-only: it creates nothing, writes
nothing, and works for a database role that may only read. Commands that write
(seal, projections retry/rebuild/run) need an existing store (``create=False``).
Times (``--since``, ``--until``, ``--at``) are read by :mod:`.times`.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from phaselog.adapters.audit.history import as_of, export_jsonl, parse_time, timeline
from phaselog.adapters.cli.common import JsonOption, UrlOption, console, echo_json, usage_error
from phaselog.adapters.cli.projections import projections_app
from phaselog.adapters.cli.render import decode_state, event_row, render_projections, render_timeline
from phaselog.adapters.cli.times import time_option
from phaselog.adapters.cli.verify import seal_command, verify_command
from phaselog.adapters.store import open_store
from phaselog.domain.errors import NotFound

__all__ = ["audit_app", "projections_app", "register", "render_projections", "render_timeline"]

audit_app = typer.Typer(
    no_args_is_help=True, help="Replay and verify the stored history.", rich_markup_mode=None
)
StreamArgument = Annotated[
    str, typer.Argument(metavar="STREAM", help="A stream id: plugin:…, task:…, plan:…, state:…")
]


def register(app: typer.Typer) -> None:
    """Mount ``audit`` and ``projections`` on the ``phaselog`` app."""
    app.add_typer(audit_app, name="audit", help="Replay and verify the stored history.")
    app.add_typer(projections_app, name="projections", help="Inspect, rebuild and run the read models.")


# -- audit ---------------------------------------------------------------------------------------------
def _window(since: datetime | None, until: datetime | None) -> str:
    """The time filter of a timeline, as options with the moments they named (for messages)."""
    parts = [
        f"{name} {moment.isoformat()}" for name, moment in (("--since", since), ("--until", until)) if moment
    ]
    return " ".join(parts)


@audit_app.command("timeline")
def timeline_command(  # noqa: PLR0913, PLR0917 - one option per filter (typer passes them by name)
    stream: StreamArgument,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, metavar="N", help="Show the first N events only.")
    ] = None,
    since: Annotated[datetime | None, time_option("--since", help="Only events at or after TIME.")] = None,
    until: Annotated[datetime | None, time_option("--until", help="Only events at or before TIME.")] = None,
    wide: Annotated[
        bool, typer.Option("--wide", help="Full times and every detail, never cut (one event per line pair).")
    ] = False,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every event of STREAM in order, with decoded values (plugin state as JSON, task states by name)."""
    with open_store(url, read_only=True) as store:
        events = [
            e
            for e in timeline(store, stream)
            if (since is None or parse_time(e.timestamp or "") >= since)
            and (until is None or parse_time(e.timestamp or "") <= until)
        ]
        shown = events if limit is None else events[:limit]
        if as_json:
            echo_json([event_row(e) for e in shown])
        elif not events:  # an empty table says nothing: say which filter matched nothing
            console.print(f"no events of {stream} match {_window(since, until)}", soft_wrap=True)
        else:
            render_timeline(store, stream, console, events=shown, wide=wide, more=len(events) - len(shown))


@audit_app.command("as-of")
def as_of_command(  # noqa: PLR0913, PLR0917 - one option per selector (typer passes them by name)
    ctx: typer.Context,
    stream: StreamArgument,
    version: Annotated[
        int | None,
        typer.Option(
            "--at-version", min=1, metavar="N", help="Stream version to load (default: the latest)."
        ),
    ] = None,
    at: Annotated[datetime | None, time_option("--at", help="The last version at or before TIME.")] = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """The state of STREAM at a version or a time; without either, its latest state."""
    moment = at
    if version is not None and moment is not None:
        raise usage_error(ctx, "give at most one of them", param_hint="'--at-version' / '--at'")
    with open_store(url, read_only=True) as store:
        if version is None and moment is None:
            heads = [h for h in store.stream_heads(stream) if h.stream_id == stream]
            if not heads:
                raise NotFound(f"no stream {stream!r}")
            version = heads[0].version
        result = as_of(store, stream, version=version, at=moment)
    state = decode_state(result.aggregate, result.state)
    report = {
        "stream_id": result.stream_id,
        "version": result.version,
        "timestamp": result.timestamp,
        "aggregate": result.aggregate,
        "state": state,
    }
    if as_json:
        echo_json(report)
        return
    console.print(f"[bold]{result.stream_id}[/] ({result.aggregate})", soft_wrap=True)
    console.print(f"version {result.version} of {result.timestamp}", soft_wrap=True)
    echo_json(state)


audit_app.command("verify")(verify_command)
audit_app.command("seal")(seal_command)


@audit_app.command("export")
def export_command(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help="Output format (jsonl).")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="File to write (default stdout).")
    ] = None,
    start: Annotated[
        int, typer.Option("--from", min=1, metavar="POSITION", help="First position to export.")
    ] = 1,
    url: UrlOption = None,
) -> None:
    """Every stored event as one JSON object per line, in global order."""
    if fmt != "jsonl":
        raise usage_error(ctx, f"unsupported export format {fmt!r}: use jsonl", param_hint="'--format'")
    if output is not None and not output.parent.is_dir():
        msg = f"cannot write {output}: folder {output.parent} does not exist"
        raise usage_error(ctx, msg, param_hint="'--output'")
    with open_store(url, read_only=True) as store:
        if output is None:
            count = export_jsonl(store, sys.stdout.buffer, start=start)
            sys.stdout.buffer.flush()
        else:
            with output.open("wb") as out:
                count = export_jsonl(store, out, start=start)
            sys.stderr.write(f"exported {count} events to {output}\n")
