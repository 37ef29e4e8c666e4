"""The horizon of a store with one writer at a time (SQLite, memory): always the newest position.

One writer commits in position order, so every committed position is final,
nothing is ever in flight, and nothing can stall.
"""

from __future__ import annotations

from typing import Any

from phaselog.runtime.horizon import InFlightAppend, PreparedTransaction

__all__ = ["SingleWriterHorizon"]


class SingleWriterHorizon:
    """The horizon methods of a recorder whose one writer commits in position order."""

    def horizon_position(self) -> int:
        """The newest position: every committed position is final."""
        recorder: Any = self  # mixed into an eventsourcing application recorder
        return int(recorder.max_notification_id() or 0)

    def positions(self) -> tuple[int, int, int]:
        """``(horizon position, newest position, 0)``: the same, and nothing held back."""
        newest = self.horizon_position()
        return newest, newest, 0

    def in_flight(self) -> list[InFlightAppend]:
        """Appends in flight that hold readers back: never any."""
        return []

    def prepared(self) -> list[PreparedTransaction]:
        """Prepared transactions: none."""
        return []
