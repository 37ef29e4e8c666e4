"""``phaselog serve``: the web console (needs the ``serve`` extra, imported only when run)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from phaselog.adapters.cli.common import checked_url, install_hint
from phaselog.adapters.store import open_store
from phaselog.domain.errors import PhaselogError

__all__ = ["register", "serve_command"]

_URL_HELP = "Store URL (sqlite:///FILE, postgresql://USER@HOST/DB?schema=S); default $PHASELOG_URL"


def serve_command(
    url: Annotated[
        str | None, typer.Option("--url", metavar="URL", help=_URL_HELP, callback=checked_url)
    ] = None,
    host: Annotated[
        str, typer.Option("--host", metavar="HOST", help="Address to bind (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, metavar="PORT", help="TCP port.")] = 8765,
    allow_actions: Annotated[
        bool,
        typer.Option(
            "--allow-actions",
            help="Let the console retry dead letters (the store opens for writing; needs a token).",
        ),
    ] = False,
) -> None:
    """Serve a web console and JSON API, read-only unless --allow-actions (token: $PHASELOG_SERVE_TOKEN)."""
    try:
        from phaselog.adapters.serve import app as console  # noqa: PLC0415 - the extra is optional
    except ImportError as exc:
        msg = f"phaselog serve needs its extra: {install_hint('serve')} ({exc})"
        raise PhaselogError(msg) from exc
    token = os.environ.get(console.TOKEN_ENV) or None
    if allow_actions and token is None:
        msg = f"--allow-actions needs a token: set ${console.TOKEN_ENV} (every request must then carry it)"
        raise typer.BadParameter(msg, param_hint="--allow-actions")
    with open_store(url) if allow_actions else console.open_read_only(url) as store:
        server = console.ConsoleServer(store, host=host, port=port, token=token, allow_actions=allow_actions)
        mode = "actions allowed" if allow_actions else "read-only"
        typer.echo(f"phaselog console for {store.url} on http://{host}:{port}/ ({mode}; Ctrl-C stops)")
        try:
            server.run()
        except KeyboardInterrupt:  # uvicorn shut down gracefully, then re-raised the Ctrl-C
            typer.echo("stopped")


def register(app: typer.Typer) -> None:
    """Mount ``serve`` on the ``phaselog`` app."""
    app.command("serve")(serve_command)
