"""Placing and lifting legal holds, and the check that archiving, dropping and erasing ask first.

A hold is placed on a stream-id prefix (``customer:``, or one stream's whole id) with
a reason and who asked; it stays until lifted, and both are recorded as events
(:mod:`phaselog.domain.holds`). While a hold covers a stream, :func:`check_not_held`
refuses to archive, detach or erase it with :class:`~phaselog.domain.holds.LegalHoldActive`,
and nothing is written.
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from typing import Any

from phaselog.domain.errors import ValidationFailed
from phaselog.domain.holds import HOLD_PREFIX, LegalHold, LegalHoldActive, held_by, hold_stream

__all__ = ["active_holds", "check_not_held", "lift_hold", "place_hold", "requester"]


def requester(by: str | None) -> str:
    """Who asked: ``by`` when given, else this process's login name (``unknown`` when it has none)."""
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry
        return "unknown"


def _checked(reason: str, by: str | None) -> str:
    if not reason.strip():
        raise ValidationFailed("a legal hold is placed and lifted with a reason (it is recorded)")
    return requester(by)


def place_hold(store: Any, prefix: str, *, reason: str, by: str | None = None) -> LegalHold:
    """Place a hold on ``prefix`` (``InvalidTransition`` when it is placed already)."""
    who = _checked(reason, by)
    stream = hold_stream(prefix)
    if store.exists(stream):
        hold: LegalHold = store.load(stream, LegalHold)
        hold.place(reason, who)
    else:
        hold = LegalHold.placed(prefix, reason, who)
    store.save(hold)
    return hold


def lift_hold(store: Any, prefix: str, *, reason: str, by: str | None = None) -> LegalHold:
    """Lift the hold on ``prefix`` (``InvalidTransition`` when it is not placed)."""
    who = _checked(reason, by)
    hold: LegalHold = store.load(hold_stream(prefix), LegalHold)
    hold.lift(reason, who)
    store.save(hold)
    return hold


def active_holds(store: Any) -> list[str]:
    """The prefixes held now (the open ``hold:`` streams of the stream index)."""
    heads = store.stream_heads(HOLD_PREFIX, open_only=True)
    return [h.stream_id.removeprefix(HOLD_PREFIX) for h in heads]


def check_not_held(store: Any, streams: Sequence[str], action: str) -> None:
    """Refuse ``action`` (``LegalHoldActive``) when a legal hold covers one of ``streams``."""
    prefixes = active_holds(store)
    if not prefixes:
        return
    held = [(s, p) for s in streams if (p := held_by(s, prefixes)) is not None]
    if held:
        shown = ", ".join(f"{s} (hold on {p!r})" for s, p in held[:5]) + (" …" if len(held) > 5 else "")
        raise LegalHoldActive(f"not {action}: a legal hold covers {shown}; lift it first")
