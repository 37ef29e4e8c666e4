"""``phaselog projections …``: the read models' status and dead letters, rebuilding and running them.

``status`` and ``errors`` open the store read-only; ``retry``, ``rebuild`` and
``run`` need an existing store (``create=False``). A read-model NAME that is not
one of the store's read models is a usage error (exit status 2) naming the
known ones, raised before anything is drawn or changed.
"""

from __future__ import annotations

import importlib
import signal
import threading
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from phaselog.adapters.audit.history import load_domain_modules
from phaselog.adapters.cli.common import (
    JsonOption,
    UrlOption,
    console,
    echo_json,
    install_hint,
    short,
    usage_error,
)
from phaselog.adapters.cli.render import render_horizon
from phaselog.adapters.retention import Retention, RetentionPolicy
from phaselog.adapters.store import Store, open_store
from phaselog.domain.errors import PhaselogError, ValidationFailed

__all__ = ["model_names", "projections_app"]

projections_app = typer.Typer(
    no_args_is_help=True, help="Inspect, rebuild and run the read models.", rich_markup_mode=None
)

NameArgument = Annotated[
    str | None,
    typer.Argument(metavar="NAME", help="Only this read model (e.g. plugin_phases); default: every one."),
]
_METRICS_MODULES = ("opentelemetry.exporter.prometheus", "opentelemetry.sdk.metrics", "prometheus_client")


def model_names(ctx: typer.Context, store: Store, name: str | None) -> list[str]:
    """The read models NAME picks (every one without NAME); an unknown NAME is a usage error."""
    known = list(store.projections.models)
    if name is None:
        return known
    if name not in known:
        msg = f"no read model {name!r}; known read models: {', '.join(known)}"
        raise usage_error(ctx, msg, param_hint="NAME")
    return [name]


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
    ctx: typer.Context, name: NameArgument = None, url: UrlOption = None, as_json: JsonOption = False
) -> None:
    """Dead-lettered events (those a read model could not fold or write), oldest first."""
    with open_store(url, read_only=True) as store:
        model_names(ctx, store, name)
        letters = store.projections.errors(name)
    if as_json:
        echo_json(letters)
        return
    if not letters:
        console.print("no dead-lettered events" + (f" of {name}" if name else ""))
        return
    table = Table(title=f"{len(letters)} dead-lettered event(s)", title_justify="left")
    for column in ("projection", "position", "stream", "topic", "error", "at"):
        table.add_column(column, overflow="fold")
    for d in letters:
        table.add_row(
            d["projection"], str(d["position"]), d["stream"], d["topic"], short(d["error"], 80), d["at"][:19]
        )
    console.print(table)


@projections_app.command("retry")
def retry_command(ctx: typer.Context, name: NameArgument = None, url: UrlOption = None) -> None:
    """Re-fold dead-lettered events (and resume halted read models); print how many now succeeded."""
    load_domain_modules()
    with open_store(url, create=False) as store:
        model_names(ctx, store, name)
        projections = store.projections
        before = len(projections.errors(name))
        done = projections.retry_errors(name)
        left = len(projections.errors(name))
    console.print(f"retried {before} dead-lettered event(s): {done} now folded, {left} still failing")


@projections_app.command("rebuild")
def rebuild_command(ctx: typer.Context, name: NameArgument = None, url: UrlOption = None) -> None:
    """Replay the log into shadow tables and swap them in (NAME, or every read model)."""
    load_domain_modules()
    with open_store(url, create=False) as store:
        names = model_names(ctx, store, name)  # before the bar: an unknown name draws nothing
        projections = store.projections
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


def _check_metrics_extra() -> None:
    """Fail with the install hint, before opening anything, when --metrics-port lacks its extra."""
    for module in _METRICS_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            msg = f"--metrics-port needs the OpenTelemetry SDK: {install_hint('otel')} ({exc})"
            raise PhaselogError(msg) from exc


@projections_app.command("run")
def run_command(  # noqa: PLR0913, PLR0917 - one option per setting (typer passes them by name)
    url: UrlOption = None,
    poll: Annotated[
        float,
        typer.Option("--poll", min=0.01, metavar="SECONDS", help="Polling interval in seconds (SQLite)."),
    ] = 0.2,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            metavar="PORT",
            help="Serve /healthz and /metrics on 127.0.0.1:PORT (0: a free port; needs phaselog[otel]).",
        ),
    ] = None,
    archive_dir: Annotated[
        Path | None,
        typer.Option("--archive-dir", metavar="DIR", help="Apply a retention policy: archive into DIR."),
    ] = None,
    retain_days: Annotated[
        float | None,
        typer.Option("--retain-days", min=0.0, metavar="DAYS", help="Keep events younger than DAYS live."),
    ] = None,
    retain_events: Annotated[
        int | None,
        typer.Option("--retain-events", min=1, metavar="N", help="Keep the newest N events live."),
    ] = None,
    detach_archived: Annotated[
        bool,
        typer.Option("--detach-archived", help="Drop partitions wholly archived (partitioned PostgreSQL)."),
    ] = False,
) -> None:
    """Catch up, then follow new events until interrupted (LISTEN/NOTIFY on PostgreSQL).

    With --archive-dir and --retain-days and/or --retain-events, one runner of the store
    also archives, every hour, the history the policy no longer keeps live (legal holds
    block it).
    """
    policy = _retention(archive_dir, retain_days, retain_events, detach=detach_archived)
    from phaselog.adapters.serve.health import metrics_server  # noqa: PLC0415 - only with --metrics-port

    if metrics_port is not None:
        _check_metrics_extra()
    load_domain_modules()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with open_store(url, create=False) as store, metrics_server(store, metrics_port):
        projections = store.projections
        projections.poll_interval = poll
        if policy is not None:
            projections.chores = [Retention(store, policy)]
        console.print(f"following {store.url} from position {projections.position()} (Ctrl-C stops)")
        try:
            projections.run_forever(until=stop)
        except KeyboardInterrupt:
            stop.set()
        console.print(f"stopped at position {projections.position()}")


def _retention(
    directory: Path | None, days: float | None, events: int | None, *, detach: bool
) -> RetentionPolicy | None:
    """The policy the retention options ask for (``None`` without --archive-dir); usage errors exit 2."""
    if directory is None:
        if days is not None or events is not None or detach:
            raise typer.BadParameter("the retention options need --archive-dir", param_hint="--archive-dir")
        return None
    if days is None and events is None:
        raise typer.BadParameter("give --retain-days, --retain-events or both", param_hint="--archive-dir")
    age = None if days is None else timedelta(days=days)
    try:
        return RetentionPolicy(directory, max_age=age, keep_events=events, detach=detach)
    except ValidationFailed as exc:
        raise typer.BadParameter(str(exc), param_hint="--retain-days") from None
