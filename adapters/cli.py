"""The ``phaselog`` command line: the demo, the audit tools and the projections runner."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.rule import Rule

from phaselog.adapters.store import Store, open_store
from phaselog.domain.errors import PhaselogError

__all__ = ["app", "main"]

console = Console()
app = typer.Typer(
    name="phaselog",
    help="Event-sourced lifecycles for plugins, tasks, plans and recoverable state.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

URL_HELP = (
    "Store URL (sqlite:///FILE, postgresql://USER@HOST/DB?schema=S, memory://); "
    "default $PHASELOG_URL, else sqlite:///phaselog.db"
)
UrlOption = Annotated[str | None, typer.Option("--url", help=URL_HELP)]

DEMO_SECTIONS = (
    ("Plugins", "phaselog.adapters.demo_plugins"),
    ("Tasks", "phaselog.adapters.demo_tasks"),
    ("Plans", "phaselog.adapters.demo_plans"),
    ("Recoverable state", "phaselog.adapters.demo_state"),
)


def _mount_subcommands() -> None:
    try:
        audit = importlib.import_module("phaselog.adapters.cli_audit")
    except ModuleNotFoundError:
        return
    app.add_typer(audit.audit_app, name="audit", help="Replay and verify the stored history.")
    app.add_typer(audit.projections_app, name="projections", help="Inspect, rebuild and run the read models.")


@app.command()
def demo(url: UrlOption = None) -> None:
    """Exercise plugins, tasks, plans and state, then print the projections and an audit timeline."""
    with open_store(url) as store:
        console.print(f"[bold]phaselog demo[/] on [cyan]{store.url}[/]")
        for title, module_name in DEMO_SECTIONS:
            console.print(Rule(title))
            run_demo: Callable[[Store, Console], None] = importlib.import_module(module_name).run_demo
            run_demo(store, console)
        _demo_read_side(store)


def _demo_read_side(store: Store) -> None:
    audit: Any = importlib.import_module("phaselog.adapters.cli_audit")
    console.print(Rule("Projections"))
    audit.render_projections(store, console)
    plugins = store.stream_ids("plugin:")
    if plugins:
        console.print(Rule(f"Audit timeline of {plugins[-1]}"))
        audit.render_timeline(store, plugins[-1], console)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a PhaselogError prints one red line and exits with status 1."""
    _mount_subcommands()
    try:
        app(args=argv, prog_name="phaselog")
    except PhaselogError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 1
    except SystemExit as exc:  # typer's standalone mode ends every run with one
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
