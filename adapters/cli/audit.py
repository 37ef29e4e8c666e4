"""``phaselog audit …`` and ``phaselog projections …``.

Every command that only reads (timeline, as-of, verify, export, projections
status and errors) opens its store read-only: it creates nothing, writes
nothing, and works for a database role that may only read. Commands that write
(seal, projections retry/rebuild/run) need an existing store (``create=False``).
"""

from __future__ import annotations

import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from phaselog.adapters.audit.history import as_of, export_jsonl, load_domain_modules, parse_time, timeline
from phaselog.adapters.cli.common import JsonOption, UrlOption, console, echo_json, short
from phaselog.adapters.cli.render import (
    decode_state,
    event_row,
    render_horizon,
    render_projections,
    render_timeline,
)
from phaselog.adapters.cli.verify import seal_command, verify_command
from phaselog.adapters.store import open_store
from phaselog.domain.errors import NotFound, ValidationFailed

__all__ = ["audit_app", "projections_app", "register", "render_projections", "render_timeline"]

_echo_json = echo_json  # the names the projections commands below were written with
_short = short

audit_app = typer.Typer(
    no_args_is_help=True, help="Replay and verify the stored history.", rich_markup_mode=None
)
projections_app = typer.Typer(
    no_args_is_help=True, help="Inspect, rebuild and run the read models.", rich_markup_mode=None
)


def register(app: typer.Typer) -> None:
    """Mount ``audit`` and ``projections`` on the ``phaselog`` app."""
    app.add_typer(audit_app, name="audit", help="Replay and verify the stored history.")
    app.add_typer(projections_app, name="projections", help="Inspect, rebuild and run the read models.")


# -- audit ---------------------------------------------------------------------------------------------
def _moment(text: str | None) -> datetime | None:
    return parse_time(text) if text is not None else None


@audit_app.command("timeline")
def timeline_command(  # noqa: PLR0913, PLR0917 - one option per filter (typer passes them by name)
    stream: Annotated[str, typer.Argument(metavar="STREAM", help="plugin:…, task:…, plan:…, state:…")],
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, metavar="N", help="Show the first N events only.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", metavar="ISO", help="Only events at or after this time.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="ISO", help="Only events at or before this time.")
    ] = None,
    wide: Annotated[
        bool, typer.Option("--wide", help="Full times and every detail, never cut (one event per line pair).")
    ] = False,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every event of STREAM in order, with decoded values (plugin state as JSON, task states by name)."""
    low, high = _moment(since), _moment(until)
    with open_store(url, read_only=True) as store:
        events = [
            e
            for e in timeline(store, stream)
            if (low is None or parse_time(e.timestamp or "") >= low)
            and (high is None or parse_time(e.timestamp or "") <= high)
        ]
        shown = events if limit is None else events[:limit]
        if as_json:
            echo_json([event_row(e) for e in shown])
        else:
            render_timeline(store, stream, console, events=shown, wide=wide, more=len(events) - len(shown))


@audit_app.command("as-of")
def as_of_command(
    stream: Annotated[str, typer.Argument(metavar="STREAM")],
    version: Annotated[
        int | None,
        typer.Option(
            "--at-version", min=1, metavar="N", help="Stream version to load (default: the latest)."
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", metavar="ISO", help="ISO-8601 time: the last version at or before it."),
    ] = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """The state of STREAM at a version or a time; without either, its latest state."""
    moment = _moment(at)
    if version is not None and moment is not None:
        raise ValidationFailed("give at most one of --at-version and --at")
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
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help="Output format (jsonl).")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="File to write (default stdout).")
    ] = None,
    start: Annotated[int, typer.Option("--from", metavar="POSITION", help="First position to export.")] = 1,
    url: UrlOption = None,
) -> None:
    """Every stored event as one JSON object per line, in global order."""
    if fmt != "jsonl":
        raise ValidationFailed(f"unsupported export format {fmt!r}: use jsonl")
    if output is not None and not output.parent.is_dir():
        raise ValidationFailed(f"cannot write {output}: folder {output.parent} does not exist")
    with open_store(url, read_only=True) as store:
        if output is None:
            count = export_jsonl(store, sys.stdout.buffer, start=start)
            sys.stdout.buffer.flush()
        else:
            with output.open("wb") as out:
                count = export_jsonl(store, out, start=start)
            sys.stderr.write(f"exported {count} events to {output}\n")


# -- projections -----------------------------------------------------------------------------------------
@projections_app.command("status")
def status_command(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Read models' position, lag (events, seconds), rows, dead letters, runner; the horizon, any stall.

    ``--json`` prints the list of read-model rows; each carries ``horizon``: the
    store's commit horizon, with the stall named (``Horizon.as_dict``).
    """
    with open_store(url, read_only=True) as store:
        horizon = store.horizon()
        rows = store.projections.status()
    if as_json:
        echo_json([{**r, "horizon": horizon.as_dict()} for r in rows])
        return
    table = Table(title="read models", title_justify="left")
    for name in ("name", "position", "lag", "lag s", "rows", "errors", "state", "runner"):
        table.add_column(name, overflow="fold")
    for r in rows:
        # owner: the runner holding a live lease on this read model, in any process (None: no live lease)
        state = "[red]halted[/]" if r["halted"] else ("following" if r["owner"] else "idle")
        table.add_row(
            r["name"],
            str(r["position"]),
            str(r["lag"]),
            f"{r['lag_seconds']:.1f}",
            str(r["rows"]),
            str(r["errors"]),
            state,
            f"{r['owner']} (live lease)" if r["owner"] else "none live",
        )
    console.print(table)
    render_horizon(horizon, console)
    for r in rows:
        if r["last_error"]:
            console.print(f"[yellow]{r['name']}[/]: {short(r['last_error'], 200)}")


@projections_app.command("errors")
def errors_command(
    name: Annotated[str | None, typer.Argument(help="Only this read model.")] = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Dead-lettered events (those a read model could not fold or write), oldest first."""
    with open_store(url, read_only=True) as store:
        letters = store.projections.errors(name)
    if as_json:
        _echo_json(letters)
        return
    if not letters:
        console.print("no dead-lettered events")
        return
    table = Table(title=f"{len(letters)} dead-lettered event(s)", title_justify="left")
    for column in ("projection", "position", "stream", "topic", "error", "at"):
        table.add_column(column, overflow="fold")
    for d in letters:
        table.add_row(
            d["projection"], str(d["position"]), d["stream"], d["topic"], _short(d["error"], 80), d["at"][:19]
        )
    console.print(table)


@projections_app.command("retry")
def retry_command(
    name: Annotated[str | None, typer.Argument(help="Only this read model.")] = None,
    url: UrlOption = None,
) -> None:
    """Re-fold dead-lettered events (and resume halted read models); print how many now succeeded."""
    load_domain_modules()
    with open_store(url, create=False) as store:
        projections = store.projections
        before = len(projections.errors(name))
        done = projections.retry_errors(name)
        left = len(projections.errors(name))
    console.print(f"retried {before} dead-lettered event(s): {done} now folded, {left} still failing")


@projections_app.command("rebuild")
def rebuild_command(name: Annotated[str | None, typer.Argument()] = None, url: UrlOption = None) -> None:
    """Replay the log into shadow tables and swap them in (NAME, or every read model)."""
    load_domain_modules()
    with open_store(url, create=False) as store:
        projections = store.projections
        names = [name] if name else list(projections.models)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            for each in names:
                task = bar.add_task(f"rebuild {each}", total=None)
                counts = projections.rebuild(
                    each, progress=lambda done, total, t=task: bar.update(t, completed=done, total=total)
                )
                bar.update(task, description=f"rebuilt {each}: {counts[each]} rows")


@projections_app.command("run")
def run_command(
    url: UrlOption = None,
    poll: Annotated[float, typer.Option("--poll", help="Polling interval in seconds (SQLite).")] = 0.2,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="Serve /healthz and /metrics on 127.0.0.1:N.")
    ] = None,
) -> None:
    """Catch up, then follow new events until interrupted (LISTEN/NOTIFY on PostgreSQL)."""
    from phaselog.adapters.serve.health import metrics_server  # noqa: PLC0415 - only with --metrics-port

    load_domain_modules()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with open_store(url, create=False) as store, metrics_server(store, metrics_port):
        projections = store.projections
        projections.poll_interval = poll
        console.print(f"following {store.url} from position {projections.position()} (Ctrl-C stops)")
        try:
            projections.run_forever(until=stop)
        except KeyboardInterrupt:
            stop.set()
        console.print(f"stopped at position {projections.position()}")
