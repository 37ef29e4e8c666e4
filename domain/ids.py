"""The stream-id rule: what a plugin id, task id, plan id, state key or store name may be.

One rule for every store, checked in the domain before any I/O: a non-empty
``str`` of at most :data:`MAX_ID_LENGTH` characters with no control character
(NUL, newline, tab, DEL, C1 controls) and no lone surrogate. Anything else raises
:class:`InvalidStreamId`, a :class:`ValidationFailed`, and nothing is written.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from phaselog.domain.errors import ValidationFailed

__all__ = ["MAX_ID_LENGTH", "InvalidStreamId", "check_id", "check_log_read"]

MAX_ID_LENGTH = 200
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs"})  # control characters, lone surrogates


class InvalidStreamId(ValidationFailed):
    """An id that breaks the stream-id rule (empty, too long, control characters, not a str)."""


def check_id(value: object, what: str = "id") -> str:
    """Return ``value`` if it is a valid id, else raise :class:`InvalidStreamId` naming ``what``."""
    if not isinstance(value, str):
        msg = f"{what} must be a str, got {type(value).__name__}"
        raise InvalidStreamId(msg)
    if not value:
        msg = f"{what} must not be empty"
        raise InvalidStreamId(msg)
    if len(value) > MAX_ID_LENGTH:
        msg = f"{what} is {len(value)} characters long; at most {MAX_ID_LENGTH} are allowed"
        raise InvalidStreamId(msg)
    if not value.isprintable():  # fast path: printable text has no control character
        for index, char in enumerate(value):
            if unicodedata.category(char) in _REFUSED_CATEGORIES:
                msg = f"{what} {value!r} holds the control character U+{ord(char):04X} at {index}"
                raise InvalidStreamId(msg)
    return value


def check_log_read(start: object, limit: object, stop: object = None, topics: object = ()) -> None:
    """Refuse a read of the global order that no store can answer the same way (before any I/O).

    Positions and the limit must be ``int`` (not ``bool``), the limit not negative,
    and ``topics`` a sequence of topic strings (a bare ``str`` is not one).
    """
    for name, value in (("start", start), ("limit", limit), ("stop", stop)):
        if (value is not None or name != "stop") and (not isinstance(value, int) or isinstance(value, bool)):
            msg = f"{name} must be an int, got {type(value).__name__}"
            raise ValidationFailed(msg)
    if isinstance(limit, int) and limit < 0:
        msg = f"limit must not be negative, got {limit}"
        raise ValidationFailed(msg)
    if isinstance(topics, str) or not isinstance(topics, Sequence):
        msg = f"topics must be a list or tuple of topic strings, got {type(topics).__name__}"
        raise ValidationFailed(msg)
    if any(not isinstance(topic, str) for topic in topics):
        msg = "topics must be a sequence of topic strings"
        raise ValidationFailed(msg)
