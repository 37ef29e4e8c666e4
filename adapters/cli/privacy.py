"""``phaselog erase``, ``phaselog keys`` and ``phaselog hold``: the history's lifecycle from the command line.

``erase SUBJECT --reason TEXT`` destroys the subject's key (for good), records the
erasure and scrubs the read models. ``keys list`` shows each subject's key state
(never a key); ``keys rotate`` re-wraps every live key with the master key in
``$PHASELOG_NEW_MASTER_KEY`` (events are not touched), after which that key goes
into ``$PHASELOG_MASTER_KEY``. ``hold place|lift PREFIX --reason TEXT`` places or lifts
a legal hold (recorded), which blocks archiving and erasing the streams it covers;
``hold list`` shows the holds in place.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.table import Table

from phaselog.adapters.cli.common import JsonOption, UrlOption, console, echo_json
from phaselog.adapters.crypto.keys import MASTER_KEY_ENV, MasterKey
from phaselog.adapters.store import open_store

__all__ = [
    "NEW_MASTER_KEY_ENV",
    "erase_command",
    "hold_lift_command",
    "hold_list_command",
    "hold_place_command",
    "keys_list_command",
    "keys_rotate_command",
    "register",
]

NEW_MASTER_KEY_ENV = "PHASELOG_NEW_MASTER_KEY"
"""The master key ``phaselog keys rotate`` re-wraps the subjects' keys with."""


def erase_command(
    subject: Annotated[str, typer.Argument(metavar="SUBJECT", help="The data subject's id.")],
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why (recorded with the erasure; required).")
    ],
    requested_by: Annotated[
        str | None,
        typer.Option("--by", metavar="WHO", help="Who asked (recorded; default: this user's login name)."),
    ] = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Erase a data subject: destroy its key for good, record the erasure, scrub the read models.

    Every reader then shows a redacted marker in place of the subject's values; the
    events and their hash chain stay as they were, so audit verify still passes.
    """
    if not reason.strip():
        raise typer.BadParameter("an erasure needs a reason", param_hint="--reason")
    with open_store(url) as store:
        done = store.erase(subject, reason=reason, requested_by=requested_by)
    if as_json:
        echo_json(done.as_dict())
        return
    verb = "erased" if done.recorded else "was already erased"
    console.print(f"subject {done.subject} {verb} at {done.erased_at.isoformat()} by {done.requested_by}")
    console.print(f"reason: {done.reason}")
    console.print(f"streams: {', '.join(done.streams) or '(none)'}")
    scrubbed = ", ".join(f"{name} ({rows} rows)" for name, rows in done.scrubbed.items())
    console.print(f"read models scrubbed: {scrubbed or '(none)'}")


def keys_list_command(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """List the data subjects' keys: live or erased, the master key that wraps them (never a key)."""
    with open_store(url, read_only=True) as store:
        rows = store.keys.table.rows()
    found = [
        {
            "subject": r.subject,
            "state": "erased" if r.wrapped is None else "live",
            "wrapped_by": r.key_id,
            "created_at": r.created_at,
            "erased_at": r.erased_at,
            "reason": r.reason,
        }
        for r in rows
    ]
    if as_json:
        echo_json(found)
        return
    if not found:
        console.print("no subject keys: nothing personal is stored")
        return
    table = Table(title="subject keys", title_justify="left")
    for column in ("subject", "state", "wrapped_by", "created_at", "erased_at", "reason"):
        table.add_column(column, overflow="fold")
    for row in found:
        table.add_row(
            *(
                str(row[c] or "")
                for c in ("subject", "state", "wrapped_by", "created_at", "erased_at", "reason")
            )
        )
    console.print(table)


def keys_rotate_command(url: UrlOption = None) -> None:
    """Re-wrap every live subject key with $PHASELOG_NEW_MASTER_KEY (the old one in $PHASELOG_MASTER_KEY)."""
    text = os.environ.get(NEW_MASTER_KEY_ENV, "")
    if not text.strip():
        raise typer.BadParameter(f"set ${NEW_MASTER_KEY_ENV} to the new master key", param_hint="keys rotate")
    new = MasterKey(text)
    with open_store(url) as store:
        done = store.keys.rotate(new)
    console.print(f"re-wrapped {done} key(s) with {new.key_id}: set ${MASTER_KEY_ENV} to the new key now")


PrefixArgument = Annotated[
    str, typer.Argument(metavar="PREFIX", help="The stream-id prefix (e.g. customer:).")
]
ReasonOption = Annotated[str, typer.Option("--reason", metavar="TEXT", help="Why (recorded; required).")]
ByOption = Annotated[
    str | None,
    typer.Option("--by", metavar="WHO", help="Who asked (recorded; default: this user's login name)."),
]


def _reason(reason: str) -> str:
    if not reason.strip():
        raise typer.BadParameter("a legal hold needs a reason", param_hint="--reason")
    return reason


def hold_place_command(
    prefix: PrefixArgument, reason: ReasonOption, by: ByOption = None, url: UrlOption = None
) -> None:
    """Place a legal hold on the streams whose ids start with PREFIX: no archiving or erasing until lifted."""
    with open_store(url) as store:
        store.hold(prefix, reason=_reason(reason), by=by)
    console.print(f"legal hold placed on {prefix!r}")


def hold_lift_command(
    prefix: PrefixArgument, reason: ReasonOption, by: ByOption = None, url: UrlOption = None
) -> None:
    """Lift the legal hold on PREFIX (recorded with its reason)."""
    with open_store(url) as store:
        store.lift_hold(prefix, reason=_reason(reason), by=by)
    console.print(f"legal hold on {prefix!r} lifted")


def hold_list_command(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """List the prefixes under a legal hold."""
    with open_store(url, read_only=True) as store:
        held = store.holds()
    if as_json:
        echo_json(held)
    elif held:
        for prefix in held:
            console.print(prefix)
    else:
        console.print("no legal hold is placed")


def register(app: typer.Typer) -> None:
    """Mount ``erase``, ``keys list|rotate`` and ``hold place|lift|list`` on the ``phaselog`` app."""
    app.command("erase")(erase_command)
    hold = typer.Typer(name="hold", help="Legal holds on stream-id prefixes.", no_args_is_help=True)
    hold.command("place")(hold_place_command)
    hold.command("lift")(hold_lift_command)
    hold.command("list")(hold_list_command)
    app.add_typer(hold)
    keys = typer.Typer(name="keys", help="The data subjects' keys (crypto-shredding).", no_args_is_help=True)
    keys.command("list")(keys_list_command)
    keys.command("rotate")(keys_rotate_command)
    app.add_typer(keys)
