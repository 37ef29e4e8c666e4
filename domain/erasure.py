"""The record of an erasure: who asked, when, why and which streams, and no personal data at all.

Each erased subject has one stream, ``erasure:<subject>``, whose single event says
that the subject's key was destroyed. The events it names stay in the log (and
their hash chain stays intact); only their personal values became unreadable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from phaselog.domain.events import Aggregate, CreationEvent

__all__ = ["ERASURE_PREFIX", "ErasureRecord", "SubjectErasure", "erasure_stream"]

ERASURE_PREFIX = "erasure:"


def erasure_stream(subject: str) -> str:
    """The stream that records the erasure of ``subject``."""
    return f"{ERASURE_PREFIX}{subject}"


class SubjectErasure(CreationEvent):
    """The subject's key was destroyed: its personal values in ``streams`` read as redacted from now on."""

    TOPIC: ClassVar[str] = "phaselog.erasure.SubjectErased"

    subject: str
    reason: str
    requested_by: str
    erased_at: datetime
    streams: list[str]

    @classmethod
    def aggregate_class(cls) -> type[Aggregate]:
        """An :class:`ErasureRecord`."""
        return ErasureRecord

    def apply(self, aggregate: Any) -> None:
        """Record the facts of the erasure."""
        aggregate.subject = self.subject
        aggregate.reason = self.reason
        aggregate.requested_by = self.requested_by
        aggregate.erased_at = self.erased_at
        aggregate.streams = list(self.streams)


class ErasureRecord(Aggregate):
    """One subject's erasure, as recorded."""

    TOPIC: ClassVar[str] = "phaselog.erasure.ErasureRecord"

    subject: str
    reason: str
    requested_by: str
    erased_at: datetime
    streams: list[str]

    @property
    def stream_open(self) -> bool:
        """An erasure needs no more work."""
        return False

    def snapshot_state(self) -> dict[str, Any]:
        """The facts of the erasure."""
        return {
            "subject": self.subject,
            "reason": self.reason,
            "requested_by": self.requested_by,
            "erased_at": self.erased_at.isoformat(),
            "streams": list(self.streams),
        }
