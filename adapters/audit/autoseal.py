"""A writing store seals its own appends: in the background, every ``seal_interval``, and on close.

The first seal is due one interval after the store's first save; from then on a
seal is due an interval after the previous attempt, as long as something this
store saved is not yet covered (an append of another writer still in flight
holds the commit horizon, and with it the seal, below it: the next attempt
covers it). The seal runs on a thread of its own, so a save never waits for it,
and it follows :class:`~phaselog.runtime.sealing.SealSchedule`: a failure is
logged, never raised. ``close()`` waits for a running seal, then seals what is
left. Read-only and memory stores get no sealer, and ``seal_interval=0`` none either.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from phaselog.runtime.sealing import SealSchedule

if TYPE_CHECKING:
    from phaselog.adapters.audit.seals import Seal

__all__ = ["AutoSealer"]

log = logging.getLogger("phaselog.seal")


class AutoSealer:
    """Seals what one store saved, ``interval`` seconds after it was saved at the latest, and on close."""

    def __init__(
        self, seal: Callable[[], Seal | None], interval: float, *, close_timeout: float = 30.0
    ) -> None:
        self.schedule = SealSchedule(interval)
        self._seal = seal
        self._close_timeout = close_timeout
        self._cond = threading.Condition()
        self._pending = 0  # the newest position this store saved that no seal covers yet (0: none)
        self._thread: threading.Thread | None = None
        self._closed = False
        self.seals = 0
        """Seals this sealer recorded."""
        self.wakes = 0
        """Times its thread woke up (a save wakes it only when nothing was pending)."""

    @property
    def pending(self) -> int:
        """The newest position saved here that no seal covers yet (0: none)."""
        return self._pending

    def saved(self, position: int) -> None:
        """Note a committed save up to ``position``; never blocks on a seal, never raises."""
        if position <= 0 or not self.schedule.enabled:
            return
        with self._cond:
            if self._closed:
                return
            woken = not self._pending  # a thread that waits for a due seal needs no wake for a later save
            self._pending = max(self._pending, position)
            if self._thread is None:
                self.schedule.start()  # the first seal is due one interval after the first save
                thread = threading.Thread(target=self._loop, name="phaselog-seal", daemon=True)
                try:
                    thread.start()
                except RuntimeError as exc:  # no thread to be had: close() still seals
                    log.warning("cannot start the sealing thread (the store seals on close): %s", exc)
                    return
                self._thread = thread
            if woken:
                self._cond.notify_all()

    def covered(self, horizon: int) -> None:
        """A seal up to ``horizon`` was recorded (here or by an explicit ``store.seal()``)."""
        with self._cond:
            if horizon >= self._pending:
                self._pending = 0

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._pending or self.schedule.remaining() > 0):
                    self._cond.wait(self.schedule.remaining() if self._pending else None)
                    self.wakes += 1
                if self._closed:
                    return
            self.seal_now()

    def seal_now(self) -> None:
        """Seal now, on this thread (a failure is logged)."""
        made: list[Seal | None] = []
        if self.schedule.attempt(lambda: made.append(self._seal())) and made and made[0] is not None:
            if made[0].new:
                self.seals += 1
            self.covered(made[0].horizon)

    def close(self) -> None:
        """Stop the background thread (after a running seal), then seal what this store left unsealed."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(self._close_timeout)
        if self._pending:
            self.seal_now()
