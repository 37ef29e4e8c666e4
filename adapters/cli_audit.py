"""``phaselog audit …`` and ``phaselog projections …``, plus the demo's read-side renderers."""

from __future__ import annotations

import signal
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from phaselog.adapters.audit import as_of, export_jsonl, load_domain_modules, parse_time, timeline, verify
from phaselog.adapters.store import Store, open_store
from phaselog.domain.errors import ValidationFailed

__all__ = ["audit_app", "projections_app", "render_projections", "render_timeline"]

console = Console()
URL_HELP = (
    "Store URL (sqlite:///FILE, postgresql://USER@HOST/DB?schema=S, memory://); "
    "default $PHASELOG_URL, else sqlite:///phaselog.db"
)
UrlOption = Annotated[str | None, typer.Option("--url", help=URL_HELP)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

audit_app = typer.Typer(no_args_is_help=True, help="Replay and verify the stored history.")
projections_app = typer.Typer(no_args_is_help=True, help="Inspect, rebuild and run the read models.")


def _echo_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


def _short(value: Any, width: int = 70) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


# -- renderers (also used by `phaselog demo`) -------------------------------------------------------
def render_timeline(store: Store, stream_id: str, console: Console) -> None:
    """Print one stream's events as a table: position, version, time, event, details."""
    table = Table(title=f"timeline of {stream_id}", title_justify="left")
    for name in ("pos", "ver", "time", "event", "details"):
        table.add_column(name, no_wrap=name != "details")
    for event in timeline(store, stream_id):
        details = {k: v for k, v in event.data.items() if k != "timestamp"}
        table.add_row(
            str(event.position),
            str(event.version),
            (event.timestamp or "")[:23],
            event.topic.removeprefix("phaselog."),
            _short(details),
        )
    console.print(table)


def render_projections(store: Store, console: Console, *, limit: int = 8) -> None:
    """Catch the read models up, then print each one's rows (first ``limit``) and counts."""
    projections = store.projections
    projections.catch_up()
    for model in projections.models.values():
        rows = model.list()
        p = model.projection
        shown = [c for c in p.columns if c not in {"version", "positions"}][:8]
        table = Table(
            title=f"{p.name} ({len(rows)} rows; {_short(model.counts(), 90)})", title_justify="left"
        )
        for column in shown:
            table.add_column(column, overflow="fold")
        for row in rows[:limit]:
            table.add_row(*(_short(row[c], 32) if row[c] is not None else "" for c in shown))
        console.print(table)


# -- audit ---------------------------------------------------------------------------------------------
@audit_app.command("timeline")
def timeline_command(stream: str, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Every event of STREAM (plugin:…, task:…, plan:…, state:…) in order."""
    with open_store(url) as store:
        if as_json:
            _echo_json(
                [
                    {
                        "position": e.position,
                        "version": e.version,
                        "topic": e.topic,
                        "timestamp": e.timestamp,
                        "data": e.data,
                    }
                    for e in timeline(store, stream)
                ]
            )
        else:
            render_timeline(store, stream, console)


@audit_app.command("as-of")
def as_of_command(
    stream: str,
    version: Annotated[int | None, typer.Option("--version", help="Stream version to load.")] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="ISO-8601 time: the last version at or before it.")
    ] = None,
    url: UrlOption = None,
) -> None:
    """The state of STREAM as of a version or a time (the aggregate's snapshot state)."""
    moment = parse_time(at) if at is not None else None
    with open_store(url) as store:
        result = as_of(store, stream, version=version, at=moment)
    _echo_json(
        {
            "stream_id": result.stream_id,
            "version": result.version,
            "timestamp": result.timestamp,
            "aggregate": result.aggregate,
            "state": result.state,
        }
    )


@audit_app.command("verify")
def verify_command(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Recompute the hash chain; exit 1 naming each changed, removed or inserted event."""
    with open_store(url) as store:
        report = verify(store)
    if as_json:
        _echo_json(report.as_dict())
    elif not report.supported:
        console.print("[yellow]verify: the memory store keeps no hash chain; nothing to verify[/]")
    elif report.ok:
        sealed = f"; {report.seals} seal(s) up to {report.sealed_position} match" if report.seals else ""
        console.print(
            f"[green]ok[/]: {report.checked} events match their chains{sealed}; "
            f"head {report.head_position} {report.head_digest}"
        )
    else:
        table = Table(
            title=f"[red]{len(report.problems)} tampered position(s)[/] in {report.checked} events",
            title_justify="left",
        )
        for name in ("position", "kind", "stream", "version", "detail"):
            table.add_column(name)
        for p in report.problems:
            table.add_row(str(p.position), p.kind, p.stream_id, str(p.version), p.detail)
        console.print(table)
        first = report.problems[0]
        where = f"{first.kind} {first.stream_id}@{first.version}"
        console.print(f"[red]first tampered position: {first.position}[/] ({where})")
    if report.supported and not report.ok:
        raise typer.Exit(1)


@audit_app.command("seal")
def seal_command(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Seal everything committed so far; print the seal's digest (HMAC-signed with $PHASELOG_AUDIT_KEY)."""
    with open_store(url) as store:
        sealed = store.seal()
    if sealed is None:
        console.print("[yellow]seal: the memory store keeps no hash chain; nothing to seal[/]")
        return
    if as_json:
        _echo_json(asdict(sealed))
        return
    signed = "signed" if sealed.signed else "unsigned (set PHASELOG_AUDIT_KEY to sign)"
    console.print(f"seal #{sealed.id}: {sealed.events} new events up to {sealed.horizon}; {signed}")
    console.print(sealed.digest)


@audit_app.command("export")
def export_command(
    fmt: Annotated[str, typer.Option("--format", help="Output format (jsonl).")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default stdout).")
    ] = None,
    start: Annotated[int, typer.Option("--from", help="First position to export.")] = 1,
    url: UrlOption = None,
) -> None:
    """Every stored event as one JSON object per line, in global order."""
    if fmt != "jsonl":
        raise ValidationFailed(f"unsupported export format {fmt!r}: use jsonl")
    with open_store(url) as store:
        if output is None:
            count = export_jsonl(store, sys.stdout.buffer, start=start)
            sys.stdout.buffer.flush()
        else:
            with output.open("wb") as out:
                count = export_jsonl(store, out, start=start)
            Console(stderr=True).print(f"exported {count} events to {output}")


# -- projections -----------------------------------------------------------------------------------------
@projections_app.command("status")
def status_command(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Each read model's position, lag behind the log (events, seconds), rows, dead letters, halt."""
    with open_store(url) as store:
        rows = store.projections.status()
    if as_json:
        _echo_json(rows)
        return
    table = Table(title="read models", title_justify="left")
    for name in ("name", "position", "lag", "lag s", "rows", "errors", "state", "counts"):
        table.add_column(name)
    for r in rows:
        state = "[red]halted[/]" if r["halted"] else ("following" if r["owner"] else "idle")
        table.add_row(
            r["name"],
            str(r["position"]),
            str(r["lag"]),
            f"{r['lag_seconds']:.1f}",
            str(r["rows"]),
            str(r["errors"]),
            state,
            _short(r["counts"]),
        )
    console.print(table)
    for r in rows:
        if r["last_error"]:
            console.print(f"[yellow]{r['name']}[/]: {_short(r['last_error'], 200)}")


@projections_app.command("errors")
def errors_command(
    name: Annotated[str | None, typer.Argument(help="Only this read model.")] = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Dead-lettered events (those a read model could not fold or write), oldest first."""
    with open_store(url) as store:
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
    with open_store(url) as store:
        projections = store.projections
        before = len(projections.errors(name))
        done = projections.retry_errors(name)
        left = len(projections.errors(name))
    console.print(f"retried {before} dead-lettered event(s): {done} now folded, {left} still failing")


@projections_app.command("rebuild")
def rebuild_command(name: Annotated[str | None, typer.Argument()] = None, url: UrlOption = None) -> None:
    """Replay the log into shadow tables and swap them in (NAME, or every read model)."""
    load_domain_modules()
    with open_store(url) as store:
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
) -> None:
    """Catch up, then follow new events until interrupted (LISTEN/NOTIFY on PostgreSQL)."""
    load_domain_modules()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with open_store(url) as store:
        projections = store.projections
        projections.poll_interval = poll
        console.print(f"following {store.url} from position {projections.position()} (Ctrl-C stops)")
        try:
            projections.run_forever(until=stop)
        except KeyboardInterrupt:
            stop.set()
        console.print(f"stopped at position {projections.position()}")
