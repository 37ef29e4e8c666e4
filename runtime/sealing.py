"""The one sealing policy: how often a store's history is sealed, and what a failing seal does.

A seal (``phaselog audit seal``) vouches for every event committed up to the
commit horizon. Two sealers follow the same :class:`SealSchedule`: every
writing store seals its own appends (``Store``, background thread and
``close()``), and a projections runner seals the whole store while it holds the
``__seal__`` lease. Both seal every ``seal_interval`` seconds
(:data:`DEFAULT_SEAL_INTERVAL` unless configured; ``0`` disables), and a
failing seal is logged as a warning, never raised: the events are already
durable, and ``verify`` reports whatever is left unsealed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from phaselog.domain.errors import PhaselogError, ValidationFailed

__all__ = ["DEFAULT_SEAL_INTERVAL", "SealSchedule", "check_seal_interval"]

log = logging.getLogger("phaselog.seal")

DEFAULT_SEAL_INTERVAL = 5.0
"""Seconds between two seals of a writing store (and of a projections runner) unless configured."""


def check_seal_interval(value: float) -> float:
    """``value`` as a seal interval in seconds: finite and at least 0 (0: never seal on a schedule)."""
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        msg = f"seal_interval must be a number of seconds, at least 0 (0: no automatic seals), got {value!r}"
        raise ValidationFailed(msg)
    return float(value)


class SealSchedule:
    """When the next seal is due (``interval`` seconds after the last attempt), and how a seal runs."""

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = check_seal_interval(interval)
        self._clock = clock
        self.last: float | None = None
        """When the last seal was attempted (or the first interval started); None: not yet."""
        self._failing = ""  # the failure last logged as a warning (a repeat is logged at debug level)

    @property
    def enabled(self) -> bool:
        """False when the interval is 0: nothing is sealed on a schedule."""
        return self.interval > 0

    def start(self) -> None:
        """Start the first interval now (a seal is due ``interval`` seconds from here)."""
        self.last = self._clock()

    def remaining(self) -> float:
        """Seconds until the next seal is due (0 when due now, or never attempted)."""
        if self.last is None:
            return 0.0
        return max(0.0, self.last + self.interval - self._clock())

    def due(self) -> bool:
        """True when a seal is due now."""
        return self.enabled and self.remaining() <= 0

    def attempt(self, seal: Callable[[], object]) -> bool:
        """Run ``seal`` now and restart the interval; a failure is logged (a warning once): False."""
        self.last = self._clock()
        try:
            seal()
        except Exception as exc:  # a seal never fails its caller: every failure is logged
            why = str(exc) if isinstance(exc, PhaselogError) else f"{type(exc).__name__}: {exc}"
            level = logging.DEBUG if why == self._failing else logging.WARNING
            self._failing = why
            log.log(level, "sealing the store failed (verify reports what stays unsealed): %s", why)
            return False
        self._failing = ""
        return True
