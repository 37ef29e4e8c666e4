"""Legal holds: a stream-id prefix whose history may be neither archived, dropped nor erased.

A hold on ``customer:`` is one stream, ``hold:customer:``, whose events record each
time it was placed and lifted, by whom and why. While it is placed the stream is
open, so the active holds are the open ``hold:`` streams of the stream index.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from phaselog.domain.errors import InvalidTransition, PhaselogError, ValidationFailed
from phaselog.domain.events import Aggregate, DomainEvent, utcnow
from phaselog.domain.ids import check_id

__all__ = [
    "HOLD_PREFIX",
    "HoldLifted",
    "HoldPlaced",
    "LegalHold",
    "LegalHoldActive",
    "held_by",
    "hold_stream",
]

HOLD_PREFIX = "hold:"


class LegalHoldActive(PhaselogError):
    """A legal hold covers the streams an archive, a drop or an erasure would touch: nothing was done."""


def hold_stream(prefix: str) -> str:
    """The stream that records the hold on ``prefix`` (``ValidationFailed`` for an empty prefix)."""
    if not prefix:
        raise ValidationFailed("a legal hold needs a stream-id prefix (e.g. customer:)")
    return check_id(f"{HOLD_PREFIX}{prefix}", "hold prefix")


def held_by(stream_id: str, prefixes: list[str]) -> str | None:
    """The first of the held ``prefixes`` that covers ``stream_id``, if any."""
    return next((p for p in prefixes if stream_id.startswith(p)), None)


class _HoldEvent(DomainEvent):
    prefix: str
    reason: str
    by: str

    def mutate(self, aggregate: Any) -> Any:
        if aggregate is None:
            if self.originator_version != 1 or not isinstance(self, HoldPlaced):
                raise ValidationFailed(f"{type(self).__name__} cannot start {self.originator_id!r}")
            aggregate = LegalHold.__new__(LegalHold)
            Aggregate.__init__(aggregate, self.originator_id)
            aggregate.prefix, aggregate.active, aggregate.history = self.prefix, False, []
            aggregate.created_on = self.timestamp
        return super().mutate(aggregate)


class HoldPlaced(_HoldEvent):
    """The hold was placed (again)."""

    TOPIC: ClassVar[str] = "phaselog.hold.Placed"

    def apply(self, aggregate: Any) -> None:
        """Mark the hold active."""
        aggregate.active = True
        aggregate.history.append(("placed", self.by, self.reason, self.timestamp))


class HoldLifted(_HoldEvent):
    """The hold was lifted."""

    TOPIC: ClassVar[str] = "phaselog.hold.Lifted"

    def apply(self, aggregate: Any) -> None:
        """Mark the hold inactive."""
        aggregate.active = False
        aggregate.history.append(("lifted", self.by, self.reason, self.timestamp))


class LegalHold(Aggregate):
    """The hold on one prefix: whether it is placed, and when it was placed and lifted."""

    TOPIC: ClassVar[str] = "phaselog.hold.LegalHold"

    prefix: str
    active: bool
    history: list[tuple[str, str, str, datetime]]

    @property
    def stream_open(self) -> bool:
        """Open while placed: the stream index lists the active holds."""
        return self.active

    def place(self, reason: str, by: str) -> None:
        """Place the hold (``InvalidTransition`` when it is placed already)."""
        if self.active:
            raise InvalidTransition(f"the hold on {self.prefix!r} is placed already")
        self.trigger(HoldPlaced, prefix=self.prefix, reason=reason, by=by)

    def lift(self, reason: str, by: str) -> None:
        """Lift the hold (``InvalidTransition`` when it is not placed)."""
        if not self.active:
            raise InvalidTransition(f"the hold on {self.prefix!r} is not placed")
        self.trigger(HoldLifted, prefix=self.prefix, reason=reason, by=by)

    @classmethod
    def placed(cls, prefix: str, reason: str, by: str) -> LegalHold:
        """A new hold on ``prefix``, placed."""
        event = HoldPlaced(
            originator_id=hold_stream(prefix),
            originator_version=1,
            timestamp=utcnow(),
            prefix=prefix,
            reason=reason,
            by=by,
        )
        hold: LegalHold = event.mutate(None)
        hold._pending.append(event)
        return hold
