"""The services tied to one store (:func:`phaselog.runtime.lifetimes.tie`), closed before it closes."""

from __future__ import annotations

import inspect
import logging
import threading
import weakref
from collections.abc import Callable

__all__ = ["Tied"]

log = logging.getLogger("phaselog.store")


class Tied:
    """Closers of the services started on a store; :meth:`close_all` runs them newest first, once.

    A bound method is held weakly (a service its user dropped is not kept alive);
    a closer that raises is logged and the others still run.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closers: dict[int, Callable[[], Callable[[], object] | None]] = {}
        self._next = 0

    def add(self, close: Callable[[], object]) -> Callable[[], None]:
        """Keep ``close`` until :meth:`close_all` or the returned untie is called."""
        ref: Callable[[], Callable[[], object] | None]
        ref = weakref.WeakMethod(close) if inspect.ismethod(close) else (lambda: close)
        with self._lock:
            key, self._next = self._next, self._next + 1
            self._closers[key] = ref

        def untie() -> None:
            with self._lock:
                self._closers.pop(key, None)

        return untie

    def close_all(self) -> None:
        """Call every closer still tied, newest first (each once)."""
        with self._lock:
            closers = list(reversed(self._closers.values()))
            self._closers.clear()
        for ref in closers:
            close = ref()
            if close is None:
                continue
            try:
                close()
            except Exception:
                log.exception("closing %r with its store failed", close)
