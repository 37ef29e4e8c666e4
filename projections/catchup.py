"""Catching every read model up: each page of the log read once, folded into each model separately.

Each read model folds the page in its own transaction, so one that fails (a
database error), is halted, or is busy in another runner is left behind while
the others go on. Where the view store runs transactions in parallel
(PostgreSQL), a long catch-up overlaps the work: the next page is read while
the read models fold the current one, each in its own thread (the folds hold
the GIL, but the database's share of the work runs meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from phaselog.domain.errors import StoreUnavailable
from phaselog.projections.base import ProjectionHalted
from phaselog.projections.engine import Engine, Target
from phaselog.projections.errors import ProjectionBusy
from phaselog.runtime.ports import LogRecord

__all__ = ["CatchUp"]

Page = tuple[list[LogRecord], int]


class CatchUp:
    """One catch-up of several read models (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        targets: Sequence[Target],
        note: Callable[[str, str | None], None],
        notify: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.active = list(targets)
        self.moved = {t.projection.name: 0 for t in targets}
        self.errors: list[StoreUnavailable] = []
        self._note = note
        self._notify = notify

    def run(self, *, until: int | None, lock_timeout: float) -> int:
        """Fold the log (up to ``until``); return the positions the furthest read model moved.

        Raises the first :class:`StoreUnavailable` met, after the other read models went on.
        """
        engine = self.engine
        for target in self.active:
            if target.known < 0:
                target.known = engine.position(target.table)
        start = min((t.known for t in self.active), default=0)
        page = engine.read(start, until=until)
        threads = engine.views.concurrent and len(page[0]) >= engine.batch_size
        pool = ThreadPoolExecutor(len(self.active) + 1, "phaselog-catch-up") if threads else None
        try:
            while self.active and page[1] > start:
                ahead: Future[Page] | None = None
                if pool is not None:  # read the next page while this one is folded
                    ahead = pool.submit(engine.read, page[1], until=until)
                todo = [t for t in self.active if t.known < page[1]]
                if pool is None:
                    for target in todo:
                        self._one(target, page, until, lock_timeout)
                else:
                    jobs = [pool.submit(self._one, t, page, until, lock_timeout) for t in todo]
                    for job in jobs:
                        job.result()
                self._notify()
                start = page[1]
                page = ahead.result() if ahead is not None else self._next(start, until)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        if self.errors:
            raise self.errors[0]
        return max(self.moved.values(), default=0)

    def _next(self, start: int, until: int | None) -> Page:
        after = min((t.known for t in self.active), default=start)
        return self.engine.read(after, until=until)

    def _one(self, target: Target, page: Page, until: int | None, lock_timeout: float) -> None:
        name = target.projection.name
        try:
            step = self.engine.batch(target, until=until, lock_timeout=lock_timeout, page=page)
        except (ProjectionBusy, ProjectionHalted):
            step = 0
        except StoreUnavailable as exc:
            self._note(name, str(exc))
            self.errors.append(exc)
            step = 0
        if step:
            self.moved[name] += step
            self._note(name, None)
        elif target.known < page[1]:
            self.active.remove(target)  # busy elsewhere, halted or failing: the others go on
