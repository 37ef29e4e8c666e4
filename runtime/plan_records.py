"""How a plan records its run: facts applied at once, made durable together with the next commitment.

A plan's aggregate lives in memory and in its stream. Some facts must be durable
*before* the plan acts on them (an attempt before its hooks run, a pause before it
waits, a cleanup before it runs, the run's end); others only say what already
happened (a step's hook outcomes and result, a cleanup's result). The latter are
applied to the aggregate at once but **deferred**: they are written in the same
transaction as the next fact that must be durable, so a step costs one commit
instead of two, and a crash in between loses nothing the plan had relied on (the
step whose result was deferred is the one a resume repeats, as before).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from phaselog.domain.events import DomainEvent
from phaselog.domain.plan import PlanCreated, PlanRun
from phaselog.runtime.positions import Positioned

if TYPE_CHECKING:
    from phaselog.runtime.ports import EventStore as Store

__all__ = ["PlanRecords"]

Fact = tuple[type[DomainEvent], dict[str, Any]]


class PlanRecords(Positioned):
    """The recording half of :class:`~phaselog.runtime.plans.Plan` (mixed into it).

    Every commit goes through :meth:`_record`, which moves ``position`` to what it committed.
    """

    _lock: threading.RLock
    _agg: PlanRun | None
    _store: Store
    _stream: str

    def _refresh(self, *, discard: bool = False) -> None:
        """Reload the aggregate from the store (kept while it holds deferred facts, unless ``discard``)."""
        with self._lock:
            if not discard and self._agg is not None and self._agg.pending_events:
                return  # deferred facts are the newest truth of this process; the store has nothing newer
            self._agg = self._store.load(self._stream, PlanRun) if self._store.exists(self._stream) else None

    def _record(self, *events: Fact, durable: bool = True) -> PlanRun:
        """Apply events; save them with any deferred ones (all or none) unless not ``durable`` yet."""
        with self._lock:
            agg = self._agg if self._agg is not None else PlanRun.start(PlanCreated, self._stream)
            try:
                for cls, fields in events:
                    agg.trigger(cls, **fields)
                if durable:
                    self._committed(self._store.save(agg))
            except BaseException:
                self._refresh(discard=True)
                raise
            self._agg = agg
            return agg

    def _run_event(self, cls: type[DomainEvent], **fields: Any) -> None:
        self._run_events((cls, fields))

    def _run_events(self, *events: Fact, durable: bool = True) -> None:
        """Record events of the current run atomically (facts of the same instant)."""
        run = self._run_no()
        self._record(*((cls, {"run": run, **fields}) for cls, fields in events), durable=durable)

    def _run_no(self) -> int:
        return 0 if self._agg is None else self._agg.last_run
