"""Pausing Python's cyclic garbage collector while a batch is folded.

Folding a batch allocates a few container objects per event (the decoded JSON,
the event, row copies) that plain reference counting frees again; none of them
form cycles. Left on, the cyclic collector still runs every few hundred of
those allocations and now and then walks the whole heap of the host process,
which cost 20-35% of a catch-up's CPU in the benchmark. So the engine pauses
it for the length of one batch (bounded by ``batch_size``), and turns it back
on afterwards: nothing is leaked, collections only come later.

The pause is process-wide (``gc.disable``), so it is counted across threads:
the collector is turned back on when the last batch in flight ends, and only
if it was on when the first began. ``Projections(pause_gc=False)`` keeps the
collector running throughout.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused_gc"]

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def paused_gc(*, enabled: bool = True) -> Iterator[None]:
    """Run the block with the cyclic garbage collector paused (a no-op unless ``enabled``)."""
    global _depth, _was_enabled  # noqa: PLW0603 - one process-wide count, as gc itself is process-wide
    if not enabled:
        yield
        return
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
