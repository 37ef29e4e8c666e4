"""The ``phaselog`` command line: the demo, streams, migrate, doctor, and the audit and projections groups.

Commands live in modules that register themselves on :data:`app` through a
``register(app)`` function (see :data:`COMMAND_MODULES`); a module that is not
installed is skipped. A failure while running is one ``error:`` line on stderr
with exit status 1, never a traceback; a usage error (a bad option value such as
a time, a URL or a read-model name, see :mod:`.common`) exits 2 with the usage
and an ``Error:`` line. ``-v``/``--log-level`` send phaselog's logs (stdlib
:mod:`logging`) to stderr, as text or JSON lines (``--log-format json``).
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.rule import Rule

from phaselog.adapters.cli.common import JsonOption, UrlOption, console, echo_json, fail
from phaselog.adapters.migrate import migrate, phaselog_version
from phaselog.adapters.store import Store, open_store
from phaselog.domain.errors import PhaselogError

__all__ = ["COMMAND_MODULES", "app", "main"]

app = typer.Typer(
    name="phaselog",
    help="Event-sourced lifecycles for plugins, tasks, plans and recoverable state.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

COMMAND_MODULES = (
    "phaselog.adapters.cli.audit",  # audit …, projections … (commands in cli.projections)
    "phaselog.adapters.cli.streams",  # streams, audit timeline
    "phaselog.adapters.cli.serve",  # serve
    "phaselog.adapters.cli.archive",  # audit archive
    "phaselog.adapters.cli.doctor",  # doctor
    "phaselog.adapters.cli.privacy",  # erase, keys list|rotate
)
"""Modules whose ``register(app)`` adds their commands; missing ones are skipped."""

DEMO_SECTIONS = (
    ("Plugins", "phaselog.adapters.demo.plugins"),
    ("Tasks", "phaselog.adapters.demo.tasks"),
    ("Plans", "phaselog.adapters.demo.plans"),
    ("Recoverable state", "phaselog.adapters.demo.state"),
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


# -- global options -----------------------------------------------------------------------------------
class JsonLogFormatter(logging.Formatter):
    """One JSON object per log record: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line."""
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to whatever ``sys.stderr`` is at the time of each record."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        """The current standard error."""
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


_installed: list[tuple[logging.Handler, int]] = []


def configure_logging(level: str, fmt: str) -> None:
    """Send phaselog's log records of ``level`` and above to stderr, as ``text`` or ``json`` lines.

    The handler goes on the root logger (so libraries' warnings show too) for
    the run of :func:`main` only; :func:`reset_logging` takes it off again.
    """
    reset_logging()
    handler = _StderrHandler()
    if fmt == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    _installed.append((handler, root.level))
    root.addHandler(handler)
    root.setLevel(level)


def reset_logging() -> None:
    """Remove the handler :func:`configure_logging` installed and restore the root level."""
    root = logging.getLogger()
    while _installed:
        handler, level = _installed.pop()
        root.removeHandler(handler)
        root.setLevel(level)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"phaselog {phaselog_version()}\n")
        raise typer.Exit


@app.callback()
def global_options(
    _version_flag: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the installed version and exit."
        ),
    ] = False,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose", "-v", count=True, show_default=False, help="More log output: -v info, -vv debug."
        ),
    ] = 0,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            metavar="LEVEL",
            help="Log level (DEBUG, INFO, WARNING, ERROR, CRITICAL); default WARNING.",
        ),
    ] = None,
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format", metavar="FORMAT", show_default=False, help="Log lines as text (default) or json."
        ),
    ] = "text",
) -> None:
    """Event-sourced lifecycles for plugins, tasks, plans and recoverable state."""
    level = (log_level or ("DEBUG" if verbose > 1 else "INFO" if verbose else "WARNING")).upper()
    if level not in LOG_LEVELS:
        raise typer.BadParameter(
            f"{log_level!r} is not one of {', '.join(LOG_LEVELS)}", param_hint="--log-level"
        )
    if log_format not in {"text", "json"}:
        raise typer.BadParameter(f"{log_format!r} is not text or json", param_hint="--log-format")
    configure_logging(level, log_format)


# -- commands ---------------------------------------------------------------------------------------------
@app.command()
def demo(url: UrlOption = None) -> None:
    """Exercise plugins, tasks, plans and state, then show this run's read-model rows and a timeline."""
    screen = Console(highlight=False)  # the demo's prose wraps to the terminal
    with open_store(url) as store:
        screen.print(f"[bold]phaselog demo[/] on [cyan]{store.url}[/]")
        start = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # the format of event timestamps
        created: dict[str, str] = {}
        for title, module_name in DEMO_SECTIONS:
            screen.print(Rule(title))
            run_demo: Callable[[Store, Console], Any] = importlib.import_module(module_name).run_demo
            made = run_demo(store, screen)
            if isinstance(made, str):
                created[title] = made
        _demo_read_side(store, screen, start, created.get("Plugins"))


def _demo_read_side(store: Store, screen: Console, start: str, plugin_stream: str | None) -> None:
    render: Any = importlib.import_module("phaselog.adapters.cli.render")
    screen.print(Rule("Projections"))
    render.render_projections(store, screen, since=start)
    if plugin_stream is None:  # a demo section that did not say what it made: the newest plugin stream
        newest = max(store.stream_heads("plugin:"), key=lambda h: h.position, default=None)
        plugin_stream = newest.stream_id if newest else None
    if plugin_stream is not None:
        screen.print(Rule(f"Audit timeline of {plugin_stream}"))
        render.render_timeline(store, plugin_stream, screen)


@app.command("migrate")
def migrate_command(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Upgrade phaselog's own tables of an existing store to this version, and record that it did."""
    done = migrate(url, open_store)
    if as_json:
        echo_json(
            {
                "url": done.url,
                "from_version": done.from_version,
                "to_version": done.to_version,
                "changed": done.changed,
                "closed_streams": done.closed_streams,
            }
        )
    elif done.changed:
        console.print(
            f"migrated {done.url} from schema version {done.from_version} to {done.to_version} "
            f"({done.closed_streams} finished stream(s) marked closed in the stream index)"
        )
    else:
        console.print(f"{done.url} is already at schema version {done.to_version}; nothing to do")


def _mount_subcommands() -> None:
    if getattr(app, "_phaselog_mounted", False):
        return
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(app)
    app._phaselog_mounted = True  # type: ignore[attr-defined]  # noqa: SLF001 - a flag on our own app


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status: failures are one line on stderr (1), usage errors 2."""
    _mount_subcommands()
    try:
        app(args=argv, prog_name="phaselog")
    except PhaselogError as exc:
        return fail(str(exc))
    except OSError as exc:  # a path the user gave (export -o), a closed pipe, ...
        return fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
    except KeyboardInterrupt:
        return fail("interrupted", status=130)
    except Exception as exc:  # a bug: still one line (the traceback is logged at debug level, -vv)
        logging.getLogger("phaselog.cli").debug("unexpected error", exc_info=True)
        return fail(f"unexpected {type(exc).__name__}: {exc} (a bug in phaselog; -vv shows the traceback)")
    except SystemExit as exc:  # typer's standalone mode ends every run with one
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        reset_logging()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
