"""What every ``phaselog`` command shares: options, the consoles, JSON output and one-line errors."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import typer
import typer.core
from rich.console import Console

__all__ = [
    "URL_HELP",
    "JsonOption",
    "UrlOption",
    "console",
    "echo_json",
    "fail",
    "short",
]

# An argument's help names it (STREAM, NAME); typer would add a type label such as <str> after it.
setattr(typer.core.TyperArgument, "display_type_rich", lambda _self, ctx: None)  # noqa: ARG005, B010

console = Console(highlight=False, soft_wrap=True)
"""Standard output for tables and messages (data goes out as JSON through :func:`echo_json`)."""

URL_HELP = (
    "Store URL (sqlite:///FILE, postgresql://USER@HOST/DB?schema=S, memory://); "
    "default $PHASELOG_URL, else sqlite:///phaselog.db"
)
UrlOption = Annotated[str | None, typer.Option("--url", metavar="URL", help=URL_HELP)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout (no colours, no wrapping)."""
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
    sys.stdout.flush()


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
