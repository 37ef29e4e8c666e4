"""Which task streams a sweep loads: the store's index of open streams, minus those known idle.

A sweep asks the store for the heads of the *open* task streams of its
controller name (``EventStore.stream_heads(prefix, open_only=True)``), so its
cost follows the tasks that may still need work, not every task ever run.
:class:`SweepMemo` trims that list further: a stream's state is a function of
its events, so a stream whose head version has not moved since a sweep loaded
it is still in the state that sweep saw. Two such states are remembered:

* closed although the index lists it as open (the index lags the load, or the
  stream was written before the index kept open flags): skipped while its
  version stays the same;
* claimed by another controller until a known lease expiry: skipped until then
  (a renewal, release, cancel request or end of the run moves the version).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from phaselog.runtime.ports import StreamHead

__all__ = ["SweepMemo"]


class SweepMemo:
    """What past sweeps learned about open streams they loaded and did not adopt.

    Used by one sweeping thread at a time (the controller's constructor, then
    its housekeeping thread).
    """

    def __init__(self) -> None:
        # stream id -> (version seen, skip until: None = closed at that version)
        self._idle: dict[str, tuple[int, datetime | None]] = {}

    def candidates(self, heads: Iterable[StreamHead], now: datetime) -> list[str]:
        """The ids among ``heads`` a sweep must load at ``now``; forget what no longer holds."""
        load: list[str] = []
        still: dict[str, tuple[int, datetime | None]] = {}
        for head in heads:
            seen = self._idle.get(head.stream_id)
            if seen is not None and seen[0] == head.version and (seen[1] is None or now < seen[1]):
                still[head.stream_id] = seen
            else:
                load.append(head.stream_id)
        self._idle = still  # streams gone from the open index, moved on or whose lease ran out drop out
        return load

    def closed(self, stream_id: str, version: int) -> None:
        """Remember that ``stream_id`` at ``version`` needs no work."""
        self._idle[stream_id] = (version, None)

    def claimed(self, stream_id: str, version: int, until: datetime) -> None:
        """Remember that ``stream_id`` at ``version`` is claimed by someone else until ``until``."""
        self._idle[stream_id] = (version, until)

    def __len__(self) -> int:
        """How many streams are remembered as idle."""
        return len(self._idle)
