"""Catching every read model up: each page of the log read once, folded into each model separately.

Each page is split once by topic, so each read model walks only the events it
folds, and each folds its share in its own transaction: one that fails (a
database error), is halted, or is busy in another runner is left behind while
the others go on. Where the view store runs transactions in parallel
(PostgreSQL), a long catch-up overlaps the work: each read model folds the
pages in order in a thread of its own, at its own pace, while the calling thread
reads ahead (at most :data:`AHEAD` pages beyond the slowest). The folds hold the
GIL, but the database's share of the work runs meanwhile, and no read model
waits for the others at the end of a page.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from phaselog.domain.errors import StoreUnavailable
from phaselog.projections.base import ProjectionHalted
from phaselog.projections.batch import read_page
from phaselog.projections.engine import Engine, Target
from phaselog.projections.errors import ProjectionBusy
from phaselog.runtime.ports import LogRecord

__all__ = ["CatchUp"]

Page = tuple[list[LogRecord], int]
AHEAD = 2
"""Pages the parallel catch-up reads beyond the slowest read model still folding."""


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
        self.notify = notify
        self._routes: dict[str, tuple[str, ...]] = {}  # topic -> the read models that fold it

    def run(self, *, until: int | None, lock_timeout: float) -> int:
        """Fold the log (up to ``until``); return the positions the furthest read model moved.

        Raises the first :class:`StoreUnavailable` met, after the other read models went on.
        """
        engine = self.engine
        for target in self.active:
            if target.known < 0:
                target.known = engine.position(target.table)
        start = min((t.known for t in self.active), default=0)
        page = read_page(engine.reader, start, engine.batch_size, [], until)
        if engine.views.concurrent and len(page[0]) >= engine.batch_size and len(self.active) > 1:
            _Pipeline(self, until, lock_timeout).run(page, start)
        else:
            while self.active and page[1] > start:
                todo = [t for t in self.active if t.known < page[1]]
                shares = self.split(page, todo)
                for target in todo:
                    self.fold_share(target, shares[target.projection.name], until, lock_timeout)
                self.notify()
                start = page[1]
                page = self._next(start, until)
        if self.errors:
            raise self.errors[0]
        return max(self.moved.values(), default=0)

    def split(self, page: Page, targets: Sequence[Target]) -> dict[str, Page]:
        """Each read model's share of ``page``: the events of the topics it folds, and the page's end.

        One pass over the page, so that no read model walks the events of the others.
        """
        records, end = page
        if len(targets) == 1:  # one read model: its share is the page
            return {t.projection.name: page for t in targets}
        shares: dict[str, list[LogRecord]] = {t.projection.name: [] for t in targets}
        routes = self._routes
        for record in records:
            names = routes.get(record.topic)
            if names is None:
                names = routes[record.topic] = tuple(
                    t.projection.name for t in self.active if t.projection.handles(record.topic)
                )
            for name in names:
                share = shares.get(name)
                if share is not None:
                    share.append(record)
        return {name: (share, end) for name, share in shares.items()}

    def _next(self, start: int, until: int | None) -> Page:
        after = min((t.known for t in self.active), default=start)
        return read_page(self.engine.reader, after, self.engine.batch_size, [], until)

    def fold_share(self, target: Target, page: Page, until: int | None, lock_timeout: float) -> None:
        """Fold ``target``'s share of a page; a read model that cannot go on leaves :attr:`active`."""
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


class _Pipeline:
    """The parallel catch-up: each read model folds the pages in order, in a thread of its own.

    The calling thread reads the log, at most :data:`AHEAD` pages beyond the slowest
    read model still folding, and splits each page once. No read model waits for the
    others to finish a page (a page barrier left the interpreter idle while the
    slowest model's commit ran), and a read model that stops (busy, halted,
    failing) leaves the others to go on.
    """

    def __init__(self, run: CatchUp, until: int | None, lock_timeout: float) -> None:
        self.run_of = run
        self.until, self.lock_timeout = until, lock_timeout
        self.changed = threading.Condition()
        self.pages: dict[int, tuple[int, dict[str, Page]]] = {}  # index -> (end, each model's share)
        self.next_of = {t.projection.name: 0 for t in run.active}  # the page each model folds next
        self.last: int | None = None  # how many pages there are, once the log is read to its end
        self.failures: list[BaseException] = []

    def run(self, page: Page, start: int) -> None:
        """Read and share out pages from ``page`` on, until the log (or every read model) ends."""
        catch_up, engine = self.run_of, self.run_of.engine
        workers = [
            threading.Thread(target=self._fold, args=(t,), name=f"phaselog-catch-up-{t.projection.name}")
            for t in catch_up.active
        ]
        for worker in workers:
            worker.start()
        index = 0
        try:
            while page[1] > start:
                with self.changed:
                    while self.next_of and min(self.next_of.values()) + AHEAD <= index:
                        self.changed.wait()
                    if not self.next_of:
                        break  # every read model stopped
                    self.pages[index] = (page[1], catch_up.split(page, catch_up.active))
                    self.changed.notify_all()
                start, index = page[1], index + 1
                page = read_page(engine.reader, start, engine.batch_size, [], self.until)
        finally:
            with self.changed:
                self.last = index
                self.changed.notify_all()
            for worker in workers:
                worker.join()
        if self.failures:
            raise self.failures[0]

    def _fold(self, target: Target) -> None:
        """Fold every page into ``target`` in order (its thread), until the log ends or it stops."""
        catch_up, name, index = self.run_of, target.projection.name, 0
        try:
            while True:
                with self.changed:
                    while index not in self.pages and (self.last is None or index < self.last):
                        self.changed.wait()
                    if index not in self.pages:
                        return
                    end, shares = self.pages[index]
                if target.known < end:
                    catch_up.fold_share(target, shares[name], self.until, self.lock_timeout)
                    if target not in catch_up.active:
                        return
                index += 1
                with self.changed:
                    self.next_of[name] = index
                    floor = min(self.next_of.values())
                    for done in [i for i in self.pages if i < floor]:
                        del self.pages[done]
                    self.changed.notify_all()
                catch_up.notify()
        except BaseException as exc:  # raised again by the reading thread
            self.failures.append(exc)
        finally:
            with self.changed:
                self.next_of.pop(name, None)
                self.changed.notify_all()
