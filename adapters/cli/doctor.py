"""``phaselog doctor``: check a store end to end; exit 0 when all is ok, 1 on a warning, 2 on a failure."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from phaselog.adapters.cli.common import JsonOption, UrlOption, console, echo_json
from phaselog.adapters.doctor import DEFAULT_SEAL_AGE, Diagnosis, diagnose

__all__ = ["doctor_command", "register", "render_diagnosis"]

_STYLES = {"ok": "green", "warn": "bold yellow", "fail": "bold red", "n/a": "dim"}


def doctor_command(
    url: UrlOption = None,
    as_json: JsonOption = False,
    seal_age: Annotated[
        float,
        typer.Option(
            "--seal-age",
            min=0,
            metavar="SECONDS",
            help="Warn once an event no seal covers is older than this.",
        ),
    ] = DEFAULT_SEAL_AGE,
) -> None:
    """Check a store end to end (connectivity, schema, horizon, read models, dead letters, seals, 2PC).

    Opens the store read-only and prints one row per check: ok, warn, fail or n/a.
    Exit status: 0 every check ok (or n/a), 1 the worst is a warning, 2 a check failed.
    Stall thresholds come from the URL (``?stall_warning=5&stall_unhealthy=30``).
    """
    diagnosis = diagnose(url, seal_age=seal_age)
    if as_json:
        echo_json(diagnosis.as_dict())
    else:
        render_diagnosis(diagnosis)
    raise typer.Exit(diagnosis.exit_code)


def render_diagnosis(diagnosis: Diagnosis) -> None:
    """The checks as a table, then the overall verdict and the exit status."""
    table = Table(title=f"phaselog doctor: {diagnosis.url}", title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for check in diagnosis.checks:
        table.add_row(check.name, Text(check.status, style=_STYLES[check.status]), Text(check.detail))
    console.print(table)
    verdict = Text(diagnosis.status, style=_STYLES[diagnosis.status])
    console.print(Text("overall: ") + verdict + Text(f" (exit {diagnosis.exit_code})"))


def register(app: typer.Typer) -> None:
    """Mount ``doctor`` on the ``phaselog`` app."""
    app.command("doctor")(doctor_command)
