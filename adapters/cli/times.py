"""The one parser of the times ``phaselog`` options take (``--since``, ``--until``, ``--at``).

A time is ISO-8601 (``2026-01-31``, ``2026-01-31T12:00:00+02:00``; without a zone
it is UTC), a span back from now (``45s``, ``30m``, ``2h``, ``3d``, ``1w``, also
written ``2h ago``), or ``now``, ``today`` or ``yesterday`` (midnight UTC, the zone
of every stored event time). Every time option is made by :func:`time_option`,
so each command reads times the same way and refuses a bad one as a usage error
(exit status 2) naming the forms it takes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from pydantic_core import PydanticCustomError

__all__ = ["TIME_FORMS", "parse_moment", "time_option", "time_value"]

TIME_FORMS = "ISO-8601 (naive: UTC), 45s, 30m, 1h, 2d or 1w ago, now, today or yesterday (UTC midnight)"
"""The forms a time may take, for help texts and error messages."""

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_SPAN = re.compile(r"(\d+)\s*([smhdw])(?:\s+ago)?", re.IGNORECASE)


def parse_moment(text: str, *, now: datetime | None = None) -> datetime:
    """The moment ``text`` names, aware (UTC unless it says otherwise); ``ValueError`` if none.

    ``now`` is the moment relative times count back from (default: the current time).
    """
    word = text.strip().lower()
    current = now or datetime.now(UTC)
    midnight = current.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    named = {"now": current, "today": midnight, "yesterday": midnight - timedelta(days=1)}
    if word in named:
        return named[word]
    span = _SPAN.fullmatch(word)
    if span is not None:
        return current - timedelta(**{_UNITS[span[2]]: int(span[1])})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        msg = f"{text!r} is not a time: use {TIME_FORMS}"
        raise ValueError(msg) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def time_value(text: str) -> datetime:
    """:func:`parse_moment` as an option's parser: a bad time is the option's usage error."""
    try:
        return parse_moment(text)
    except ValueError as exc:  # typer reports the message as is: "Invalid value for '--since': ..."
        raise PydanticCustomError("phaselog_time", "{reason}", {"reason": str(exc)}) from None


def time_option(*names: str, help: str) -> Any:  # noqa: A002 - typer's own keyword
    """A ``TIME`` option parsed by :func:`time_value`; the forms a time takes end its help."""
    return typer.Option(*names, metavar="TIME", parser=time_value, help=f"{help} TIME: {TIME_FORMS}.")
