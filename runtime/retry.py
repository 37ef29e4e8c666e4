"""The one retry loop: call, and on a retryable error wait as :class:`~phaselog.domain.retry.Backoff` says.

Every retry in phaselog (opening a store while another process creates its
tables, creating read-model tables, releasing a task claim, recording a
recoverable state after a concurrent writer) goes through :func:`retry`;
loops that wait on an event of their own use the same policy's
:meth:`~phaselog.domain.retry.Backoff.after`. The policy is documented in
docs/store.md ("Retries").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from phaselog.domain.retry import Backoff

__all__ = ["Backoff", "retry"]

T = TypeVar("T")


def _sleep(delay: float) -> bool:
    time.sleep(delay)
    return False


def retry(  # noqa: PLR0913 - each knob is one a caller needs
    call: Callable[[], T],
    *,
    policy: Backoff,
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    when: Callable[[BaseException], bool] | None = None,
    wait: Callable[[float], bool] = _sleep,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Return ``call()``, retrying it after errors of ``retry_on`` (for which ``when`` holds).

    Between attempts ``wait(delay)`` runs (``time.sleep`` by default; pass e.g.
    ``stop_event.wait`` to be interruptible: a true result stops retrying) after
    ``on_retry(error, delay)``. When the policy's attempts are used up, or
    ``wait`` says stop, the last error is raised unchanged.
    """
    delays = policy.delays()
    while True:
        try:
            return call()
        except retry_on as exc:
            if when is not None and not when(exc):
                raise
            delay = next(delays, None)
            if delay is None:
                raise
            if on_retry is not None:
                on_retry(exc, delay)
            if wait(delay):
                raise
