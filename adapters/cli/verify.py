"""``phaselog audit verify`` and ``phaselog audit seal``: what the history vouches for, and sealing it.

``verify`` prints, beside any problem, what an auditor needs to sign its
report: the sealed range, the unsealed tail (events, age of the oldest), whether
seal signatures were checked, and (``--expect-head``) whether a head digest
published earlier still names this history. ``seal --print`` prints only the
head digest, for publishing outside the database.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from phaselog.adapters.audit.chain import AUDIT_KEY_ENV
from phaselog.adapters.audit.findings import VerifyReport, describe
from phaselog.adapters.audit.history import verify
from phaselog.adapters.audit.integrity import verify_archive
from phaselog.adapters.cli.common import JsonOption, UrlOption, console, echo_json, usage_error
from phaselog.adapters.store import open_store
from phaselog.domain.errors import NotFound

__all__ = ["render_report", "seal_command", "verify_command"]

ArchiveOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--archive",
        metavar="FILE",
        help="An archive file (repeatable): alone, without --url, it is verified by itself; with a store, "
        "the consecutive archives up to the newest are verified as its prefix.",
    ),
]
ExpectHeadOption = Annotated[
    str | None,
    typer.Option(
        "--expect-head",
        metavar="DIGEST",
        help="A head digest published earlier (audit seal --print): exit 1 unless it names this history.",
    ),
]


def verify_command(
    ctx: typer.Context,
    url: UrlOption = None,
    as_json: JsonOption = False,
    archive: ArchiveOption = None,
    expect_head: ExpectHeadOption = None,
) -> None:
    """Recompute the chains and seals; exit 1 naming each changed, removed, inserted or reordered event."""
    files = list(archive or [])
    if files and url is None and not os.environ.get("PHASELOG_URL"):
        if expect_head is not None:
            msg = "it checks a store's history: give --url (or $PHASELOG_URL) too"
            raise usage_error(ctx, msg, param_hint="'--expect-head'")
        failed = False
        for path in files:
            report = verify_archive(path)
            render_report(report, as_json=as_json, what=str(path))
            failed = failed or not report.ok
        if failed:
            raise typer.Exit(1)
        return
    with open_store(url, read_only=True) as store:
        report = verify(store, archives=files, expect_head=expect_head)
    render_report(report, as_json=as_json, what=store.url)
    if report.supported and not report.ok:
        raise typer.Exit(1)


def render_report(report: VerifyReport, *, as_json: bool, what: str) -> None:
    """Print a verify report: JSON, or the verdict, the problems and what the report vouches for."""
    if as_json:
        echo_json(report.as_dict())
        return
    if not report.supported:
        console.print("[yellow]verify: the memory store keeps no hash chain; nothing to verify[/]")
        return
    if report.ok:
        console.print(
            f"[green]ok[/] {escape(what)}: {report.checked} events match their chains; "
            f"head {report.head_position} {report.head_digest}"
        )
    else:
        table = Table(
            title=f"[red]{len(report.problems)} problem(s)[/] in {report.checked} events",
            title_justify="left",
        )
        for name in ("position", "kind", "stream", "version", "seal", "detail"):
            table.add_column(name)
        for p in report.problems:
            event = p.position is not None
            table.add_row(
                str(p.position) if event else "-",
                p.kind,
                p.stream_id,
                str(p.version) if event else "",
                f"#{p.seal}" if p.seal is not None else "",
                escape(p.detail),
            )
        console.print(table)
        first = report.first_tampered_position
        if first is not None:
            named = next(p for p in report.problems if p.position == first)
            console.print(
                f"[red]first tampered position: {first}[/] ({named.kind} {named.stream_id}@{named.version})"
            )
        else:
            console.print(
                "[red]no event position is named[/]: the problems are in seals, archives or the head"
            )
    for line in describe(report):
        console.print(f"  {escape(line)}")


def seal_command(
    url: UrlOption = None,
    as_json: JsonOption = False,
    print_head: Annotated[
        bool,
        typer.Option("--print", help="Print only the head digest (the newest seal's), to publish elsewhere."),
    ] = False,
) -> None:
    """Seal everything committed so far; print the seal's digest (HMAC-signed with $PHASELOG_AUDIT_KEY)."""
    with open_store(url, create=False) as store:
        sealed = store.seal()
        kind = store.kind
    if sealed is None and kind == "memory":
        console.print("[yellow]seal: the memory store keeps no hash chain; nothing to seal[/]")
        return
    if print_head:
        if sealed is None:
            msg = "nothing sealed yet: the store holds no committed event"
            raise NotFound(msg)
        console.print(sealed.digest)
        return
    if as_json:
        echo_json(asdict(sealed) if sealed is not None else {"id": None, "new": False})
        return
    if sealed is None:
        console.print("nothing to seal yet: the store holds no committed event")
        return
    signed = "signed" if sealed.signed else f"unsigned (set {AUDIT_KEY_ENV} to sign)"
    if sealed.new:
        console.print(f"seal #{sealed.id}: {sealed.events} new events up to {sealed.horizon}; {signed}")
    else:
        console.print(
            f"nothing new to seal: seal #{sealed.id} ({signed}) already covers everything committed "
            f"up to position {sealed.horizon}"
        )
    console.print(sealed.digest)
