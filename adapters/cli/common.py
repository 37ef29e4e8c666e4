"""What every ``phaselog`` command shares: options, the consoles, JSON output and one-line errors.

Exit statuses: a usage error (an unknown option, a value that cannot be right
whatever the store holds: a bad time, URL, format or read-model name, options
that exclude each other) is refused by the command line parser's rules with
status 2 and an ``Error:`` line (:func:`usage_error`); a failure while running
(the store unavailable, a verification that fails, a missing stream) is one
``error:`` line with status 1 (:func:`fail`).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import orjson
import typer
import typer.core
from rich.console import Console

from phaselog.adapters.urls import parse_url
from phaselog.domain.errors import ValidationFailed

__all__ = [
    "URL_HELP",
    "JsonOption",
    "UrlOption",
    "checked_url",
    "console",
    "echo_json",
    "fail",
    "install_hint",
    "short",
    "usage_error",
]

# An argument's help names it (STREAM, NAME); typer would add a type label such as <str> after it.
setattr(typer.core.TyperArgument, "display_type_rich", lambda _self, ctx: None)  # noqa: ARG005, B010


def _usage_pieces(self: typer.core.TyperArgument, ctx: Any) -> list[str]:  # noqa: ARG001 - click's signature
    """An argument on the usage line as its metavar: ``STREAM`` when required, ``[NAME]`` when not."""
    name = self.metavar or (self.name or "").upper()
    if self.nargs != 1:
        name += "..."
    return [name] if self.required else [f"[{name}]"]


# typer writes {STREAM} for a required argument and [name] for an optional one; click writes these.
setattr(typer.core.TyperArgument, "get_usage_pieces", _usage_pieces)  # noqa: B010

console = Console(highlight=False, soft_wrap=True)
"""Standard output for tables and messages (data goes out as JSON through :func:`echo_json`)."""

URL_HELP = (
    "Store URL (sqlite:///FILE, postgresql://USER@HOST/DB?schema=S, memory://); "
    "default $PHASELOG_URL, else sqlite:///phaselog.db"
)


def checked_url(value: str | None) -> str | None:
    """``--url`` as given, once it parses (also ``$PHASELOG_URL`` when it is what counts); else exit 2."""
    try:
        parse_url(value)
    except ValidationFailed as exc:
        from_env = value is None and os.environ.get("PHASELOG_URL")
        raise typer.BadParameter(f"$PHASELOG_URL: {exc}" if from_env else str(exc)) from None
    return value


UrlOption = Annotated[str | None, typer.Option("--url", metavar="URL", help=URL_HELP, callback=checked_url)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout (no colours, no wrapping)."""
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
    sys.stdout.flush()


def usage_error(ctx: typer.Context, message: str, *, param_hint: str | None = None) -> typer.BadParameter:
    """The usage error (exit status 2) to raise for a value the command refuses before doing anything."""
    return typer.BadParameter(message, ctx=ctx, param_hint=param_hint)


def install_hint(extra: str) -> str:
    """How to install the optional dependencies ``extra``: from the package index or from a checkout."""
    return f"pip install 'phaselog[{extra}]', or in a checkout of phaselog: pip install '.[{extra}]'"


def fail(message: str, *, status: int = 1) -> int:
    """Write ``error: message`` as one plain line on stderr; return ``status`` for the caller to exit with."""
    line = " ".join(message.split())  # one line, whatever the message held
    sys.stderr.write(f"error: {line}\n")
    sys.stderr.flush()
    return status


def short(value: Any, width: int | None = 70) -> str:
    """``value`` as text (JSON unless already text), cut to ``width`` characters with an ellipsis."""
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    if width is None or len(text) <= width:
        return text
    return text[: width - 1] + "…"
