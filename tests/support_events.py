"""Small event-sourced model used by the foundation tests (not part of phaselog)."""

from __future__ import annotations

from typing import Any, ClassVar

from phaselog.domain.events import Aggregate, CreationEvent, DomainEvent


class Opened(CreationEvent):
    """A counter stream was opened."""

    TOPIC = "tests.counter.Opened"
    label: str

    @classmethod
    def aggregate_class(cls) -> type[Aggregate]:
        return Counter

    def apply(self, aggregate: Any) -> None:
        aggregate.label = self.label
        aggregate.total = 0


class Added(DomainEvent):
    """An amount was added (class_version 2: ``amount`` was called ``n`` in version 1)."""

    TOPIC = "tests.counter.Added"
    class_version: ClassVar[int] = 2
    amount: int

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["amount"] = state.pop("n")

    def apply(self, aggregate: Any) -> None:
        aggregate.total += self.amount


class Counter(Aggregate):
    """A labelled running total, snapshotted by the store."""

    TOPIC = "tests.counter.Counter"
    SNAPSHOTS: ClassVar[bool] = True
    class_version: ClassVar[int] = 2

    label: str
    total: int

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["label"] = state.pop("name")

    def add(self, amount: int) -> None:
        self.trigger(Added, amount=amount)

    def snapshot_state(self) -> dict[str, Any]:
        return {"label": self.label, "total": self.total}

    def restore_state(self, state: dict[str, Any]) -> None:
        self.label = state["label"]
        self.total = state["total"]


def open_counter(stream_id: str, label: str = "c") -> Counter:
    """A new counter with its creation event pending."""
    return Counter.start(Opened, stream_id, label=label)
