"""The read side's own errors: a wait that gave up, a halted read model, a busy lock; what is poison.

:class:`ProjectionTimeout` and :class:`ProjectionHalted` are what waiting for a
position raises (re-exported by :mod:`phaselog.projections.base`).

Errors caused by the data of one row (a value the column cannot hold, a
constraint) are *poison* and dead-letter the event; anything else (the
database is unreachable, a lock is busy) is *transient* and the batch is
retried later. :func:`is_poison` judges phaselog's and eventsourcing's errors
and plain Python ones; the view store (``ViewStore.poison``) judges its
driver's, and translates them (``ViewStore.translate_errors``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from eventsourcing import persistence as es

from phaselog.domain.errors import PhaselogError, StoreUnavailable, ValidationFailed

if TYPE_CHECKING:
    from phaselog.runtime.horizon import InFlightAppend

__all__ = ["ProjectionBusy", "ProjectionHalted", "ProjectionTimeout", "is_poison"]

_POISON_DB = (es.DataError, es.IntegrityError)
_POISON_VALUES = (OverflowError, ValueError, TypeError)


class ProjectionTimeout(PhaselogError, TimeoutError):
    """``wait_for(position, timeout)`` gave up before the read models reached the position.

    ``position`` is what was waited for, ``behind`` maps each read model short of
    it to the position it had reached, and ``holder`` is the append in flight that
    held the store's readers below ``position`` when the wait gave up (``None``
    when none did); the message names them all.
    """

    def __init__(
        self,
        message: str,
        *,
        position: int = 0,
        behind: Mapping[str, int] | None = None,
        holder: InFlightAppend | None = None,
    ) -> None:
        super().__init__(message)
        self.position = position
        self.behind = dict(behind or {})
        self.holder = holder

    @classmethod
    def waiting_for(
        cls,
        position: int,
        behind: Mapping[str, int],
        timeout: float,
        *,
        holder: InFlightAppend | None = None,
        head: int | None = None,
    ) -> ProjectionTimeout:
        """The error of a wait for ``position`` that gave up after ``timeout`` seconds.

        ``head``, the store's newest committed position, is named when it is below ``position``.
        """
        models = ", ".join(f"{name} at {reached}" for name, reached in behind.items())
        msg = f"read models behind position {position} after {timeout}s: {models}"
        if holder is not None:
            msg += f"; the store's readers are held back by an append in flight: {holder.describe()}"
        elif head is not None and head < position:
            msg += f"; the store's newest committed position is {head}"
        return cls(msg, position=position, behind=behind, holder=holder)


class ProjectionHalted(PhaselogError):
    """A read model with ``on_error="stop"`` met an event it cannot fold and stopped before it."""


class ProjectionBusy(StoreUnavailable):
    """Another runner holds this read model's lock right now (a lock timeout, not a failure)."""


def is_poison(exc: BaseException) -> bool:
    """True when writing a row failed because of the row's own values (never for an outage)."""
    if isinstance(exc, (ValidationFailed, *_POISON_DB)):
        return True
    if isinstance(exc, PhaselogError):
        return False
    return isinstance(exc, _POISON_VALUES)
