"""The one retry policy of phaselog: how long to wait before each retry, and how many to make.

Pure policy, no I/O: :class:`Backoff` only computes delays. The runner that
sleeps between attempts is :func:`phaselog.runtime.retry.retry`; loops that wait
on an event of their own (a controller closing, a runner stopping) take their
next delay from :meth:`Backoff.after`.

Delays grow geometrically from ``first`` by ``factor`` up to ``maximum``; no
jitter (the retried operations are few and contend on locks that queue
fairly). ``attempts`` counts the first try too; ``None`` retries until the
caller's own stop condition.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from phaselog.domain.errors import ValidationFailed

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Geometric backoff: ``first``, ``first * factor``, … capped at ``maximum``; ``attempts`` in all."""

    first: float = 0.05
    factor: float = 2.0
    maximum: float = 5.0
    attempts: int | None = None

    def __post_init__(self) -> None:
        if self.first < 0 or self.factor < 1 or self.maximum < self.first:
            msg = f"invalid backoff {self}: need 0 <= first <= maximum and factor >= 1"
            raise ValidationFailed(msg)
        if self.attempts is not None and self.attempts < 1:
            msg = f"invalid backoff {self}: attempts must be at least 1"
            raise ValidationFailed(msg)

    def delay(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1 = the wait after the first failure)."""
        return min(self.maximum, self.first * self.factor ** max(0, retry - 1))

    def after(self, previous: float) -> float:
        """The wait that follows a wait of ``previous`` seconds (for loops that keep their own count)."""
        return min(self.maximum, max(self.first, previous * self.factor))

    def delays(self) -> Iterator[float]:
        """The wait before each retry, in order: ``attempts - 1`` of them (endless when unbounded)."""
        retry = 1
        while self.attempts is None or retry < self.attempts:
            yield self.delay(retry)
            retry += 1
