"""Times in the global log, found by position (sans-I/O).

Positions follow the commit order and an event's time is taken when it is created,
so over the log times rise with positions (to within one commit's latency): a
time is found by bisecting positions, about log2(head) reads whatever the log's
length. The console's time searches and the retention policy use it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

__all__ = ["TimeOf", "position_at"]

TimeOf = Callable[[int], "tuple[int, datetime] | None"]
"""The position and time of the first event at or after a position (``None`` past the head)."""


def position_at(moment: datetime, head: int, time_of: TimeOf, *, after: bool = False) -> int:
    """The first position whose event is at or after ``moment`` (strictly after with ``after``).

    ``head + 1`` when there is none; reads ``time_of`` about log2(head) times.
    """
    low, high = 1, head + 1
    while low < high:
        middle = (low + high) // 2
        found = time_of(middle)
        if found is None:
            high = middle
            continue
        position, at = found
        if at < moment or (after and at == moment):
            low = position + 1
        else:
            high = middle
    return low
