"""Helpers of the task sweep tests: a counting store wrapper and ready-made task aggregates."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TypeVar

from phaselog.domain.events import Aggregate, DomainEvent, utcnow
from phaselog.domain.task import TaskAggregate, TaskState
from phaselog.runtime.ports import EventStore, StreamHead

AggT = TypeVar("AggT", bound=Aggregate)

DEAD_OWNER = "svc/dead-controller"
LIVE_OWNER = "svc/live-controller"


class CountingStore:
    """An :class:`EventStore` that delegates to a real store and counts what a controller reads.

    ``slow_loads`` names streams whose loads take ``load_latency`` seconds longer
    (a simulated slow database, to stretch a sweep); ``all_open`` makes
    ``stream_heads(open_only=True)`` list every stream as open, like an index
    that lags behind (or predates) the open flags.
    """

    def __init__(self, inner: EventStore, *, all_open: bool = False) -> None:
        self.inner = inner
        self.all_open = all_open
        self.loads: Counter[str] = Counter()
        self.heads_calls: list[tuple[str, bool]] = []
        self.stream_id_calls = 0
        self.slow_loads: Callable[[str], bool] = lambda _sid: False
        self.load_latency = 0.0
        self.slow_load_times: list[float] = []
        self._lock = threading.Lock()

    @property
    def kind(self) -> str:
        """The wrapped store's kind."""
        return self.inner.kind

    def save(self, *aggregates: Aggregate) -> Sequence[object]:
        """Delegate."""
        return self.inner.save(*aggregates)

    def load(self, aggregate_id: str, aggregate_type: type[AggT], *, version: int | None = None) -> AggT:
        """Count the load (and stretch it when asked), then delegate."""
        with self._lock:
            self.loads[aggregate_id] += 1
        if self.slow_loads(aggregate_id):
            time.sleep(self.load_latency)  # simulated database latency, not synchronisation
            with self._lock:
                self.slow_load_times.append(time.monotonic())
        return self.inner.load(aggregate_id, aggregate_type, version=version)

    def exists(self, aggregate_id: str) -> bool:
        """Delegate."""
        return self.inner.exists(aggregate_id)

    def stream_ids(self, prefix: str = "") -> list[str]:
        """Count the call, then delegate."""
        with self._lock:
            self.stream_id_calls += 1
        return self.inner.stream_ids(prefix)

    def stream_heads(self, prefix: str = "", *, open_only: bool = False) -> list[StreamHead]:
        """Record the call, then delegate (listing every stream as open with ``all_open``)."""
        with self._lock:
            self.heads_calls.append((prefix, open_only))
        if self.all_open:
            return [head._replace(open=True) for head in self.inner.stream_heads(prefix)]
        return self.inner.stream_heads(prefix, open_only=open_only)

    def stream(
        self, aggregate_id: str, *, gt: int | None = None, lte: int | None = None
    ) -> list[DomainEvent]:
        """Delegate."""
        return self.inner.stream(aggregate_id, gt=gt, lte=lte)

    def close(self) -> None:
        """Leave the wrapped store open: the test owns it."""

    def loaded(self) -> set[str]:
        """Ids of every stream loaded so far."""
        with self._lock:
            return {sid for sid, n in self.loads.items() if n}

    def sweeps(self) -> int:
        """How many times a sweep asked for the open task streams."""
        with self._lock:
            return sum(open_only for _prefix, open_only in self.heads_calls)


def finished_task(controller: str, task_id: str, end: TaskState = TaskState.COMPLETED) -> TaskAggregate:
    """A task whose run ended in ``end`` and whose completion was delivered (a closed stream)."""
    agg = TaskAggregate.launch(controller, task_id, "", DEAD_OWNER, utcnow() + timedelta(seconds=30))
    if end is not TaskState.FAILED:
        agg.change_state(1, DEAD_OWNER, TaskState.RUNNING)
    agg.change_state(1, DEAD_OWNER, end)
    agg.mark_delivered(1, DEAD_OWNER)
    return agg


def save_finished(store: EventStore, controller: str, count: int, *, batch: int = 100) -> list[str]:
    """Save ``count`` finished, delivered tasks (``done-00000``...), many per append; return their ids."""
    ends = (TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELED)
    ids = [f"done-{i:05d}" for i in range(count)]
    for start in range(0, count, batch):
        store.save(
            *(
                finished_task(controller, tid, ends[i % 3])
                for i, tid in enumerate(ids[start : start + batch], start)
            )
        )
    return ids


def orphan(controller: str, task_id: str, state: TaskState, *, cancel: bool = False) -> TaskAggregate:
    """A task left in ``state`` (undelivered) by a controller whose lease has expired."""
    agg = TaskAggregate.launch(controller, task_id, "", DEAD_OWNER, utcnow() - timedelta(seconds=1))
    if state in {TaskState.RUNNING, TaskState.COMPLETED}:
        agg.change_state(1, DEAD_OWNER, TaskState.RUNNING)
    if state.is_finished:
        agg.change_state(1, DEAD_OWNER, state)
    if cancel:
        assert agg.request_cancel()
    return agg


def held(controller: str, task_id: str, *, until: timedelta = timedelta(hours=1)) -> TaskAggregate:
    """A Pending task claimed by a live controller (its lease runs for ``until``)."""
    return TaskAggregate.launch(controller, task_id, "", LIVE_OWNER, utcnow() + until)
