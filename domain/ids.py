"""The stream-id rule: what a plugin id, task id, plan id, state key or store name may be.

One rule for every store, checked in the domain before any I/O: a non-empty
``str`` of at most :data:`MAX_ID_LENGTH` characters with no control character
(NUL, newline, tab, DEL, C1 controls) and no lone surrogate. Anything else raises
:class:`InvalidStreamId`, a :class:`ValidationFailed`, and nothing is written.
"""

from __future__ import annotations

import unicodedata

from phaselog.domain.errors import ValidationFailed

__all__ = ["MAX_ID_LENGTH", "InvalidStreamId", "check_id"]

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
