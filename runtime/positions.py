"""Read your own writes: the global position each command committed, kept on the object it ran on.

Every object whose commands append (plugin machines and ``store.plugins``, task
controllers and runs, plans, recoverable states) mixes in :class:`Positioned`:
after each save its ``position`` is the newest global position committed
through it, which ``projections.wait_for(obj.position)`` waits for before the
read models are queried. The position of one save is
:func:`~phaselog.runtime.ports.committed_position` of what the store returned.
"""

from __future__ import annotations

import threading

from phaselog.runtime.ports import committed_position

__all__ = ["Positioned"]

_lock = threading.Lock()  # a position only moves forward, whichever thread saved last


class Positioned:
    """``position``: the newest global position committed by commands through this object (0 before any)."""

    _position: int = 0

    @property
    def position(self) -> int:
        """The newest global position committed by commands through this object (0 before any).

        Pass it to ``projections.wait_for(position)`` to read this object's writes
        back from the read models.
        """
        return self._position

    def _committed(self, saved: object) -> None:
        """Note what a ``save`` returned (a ``Saved``, or anything with a ``position``)."""
        with _lock:
            self._position = committed_position(saved, self._position)
