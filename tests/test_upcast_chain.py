from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from eventsourcing.persistence import StoredEvent
from pydantic import BaseModel

from phaselog.adapters import Store
from phaselog.domain.events import DomainEvent, upcast
from phaselog.runtime.recoverable import RecoverableState
from phaselog.runtime.recoverable_events import EventManager

from support_events import Counter, open_counter

LOG = logging.getLogger("tests.upcast")


class Renamed(DomainEvent):
    """Version 3 of an event: v1 had ``n``, v2 renamed it ``amount``, v3 added ``unit``."""

    TOPIC = "tests.upcast.Renamed"
    class_version: ClassVar[int] = 3
    amount: int
    unit: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["amount"] = state.pop("n")

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state["unit"] = "pcs" if state["amount"] < 100 else "kg"

    def apply(self, aggregate: Any) -> None:
        aggregate.total += self.amount


class Totals(BaseModel):
    """Version 3 of a recoverable state model: v1 ``count``, v2 ``ok``/``failed``, v3 adds ``total``."""

    class_version: ClassVar[int] = 3
    ok: int = 0
    failed: int = 0
    total: int = 0

    @staticmethod
    def upcast_v1_v2(data: dict[str, Any]) -> None:
        data["ok"] = data.pop("count")
        data["failed"] = 0

    @staticmethod
    def upcast_v2_v3(data: dict[str, Any]) -> None:
        data["total"] = data["ok"] + data["failed"]


class TotalsV1(BaseModel):
    """Version 1 of :class:`Totals` (implicit class_version 1)."""

    count: int = 0


def test_upcast_applies_every_step_from_the_stored_version_in_order() -> None:
    """Data stored by v1 goes through v1->v2 then v2->v3; data stored by v2 only through v2->v3."""
    assert upcast(Renamed, {"n": 5}) == {"amount": 5, "unit": "pcs"}
    assert upcast(Renamed, {"class_version": 1, "n": 500}) == {"amount": 500, "unit": "kg"}
    assert upcast(Renamed, {"class_version": 2, "amount": 7}) == {"amount": 7, "unit": "pcs"}
    assert upcast(Renamed, {"class_version": 3, "amount": 7, "unit": "l"}) == {"amount": 7, "unit": "l"}


def test_a_version_one_event_in_the_store_reads_as_version_three(store: Store) -> None:
    """An event written by class version 1 long ago is upcast twice on the way out of every store."""
    store.save(open_counter("counter:v3"))
    old = [
        StoredEvent(
            originator_id="counter:v3",
            originator_version=2,
            topic="tests.upcast.Renamed",
            state=b'{"timestamp":"2025-01-01T00:00:00Z","n":41}',
        ),
        StoredEvent(
            originator_id="counter:v3",
            originator_version=3,
            topic="tests.upcast.Renamed",
            state=b'{"timestamp":"2025-06-01T00:00:00Z","class_version":2,"amount":200}',
        ),
    ]
    store.app.recorder.insert_events(old)
    events = store.stream("counter:v3", gt=1)
    assert [(type(e), e.amount, e.unit) for e in events if isinstance(e, Renamed)] == [
        (Renamed, 41, "pcs"),
        (Renamed, 200, "kg"),
    ]
    assert store.load("counter:v3", Counter).total == 241


def test_a_recoverable_state_reads_data_two_model_versions_old(store: Store) -> None:
    """A value persisted by model version 1 initializes a version-3 model through both upcasters."""

    async def scenario() -> Totals:
        def state(default: BaseModel) -> RecoverableState[Any]:
            return RecoverableState(
                default_state=default,
                persist_state_key="totals",
                persistence_enabled=True,
                logger=LOG,
                store=store,
                event_manager=EventManager(3600),
            )

        old = state(TotalsV1())
        (await old.initialize()).count = 9
        await old.persist_state()
        value: Totals = await state(Totals()).initialize()
        return value

    assert asyncio.run(scenario()) == Totals(ok=9, failed=0, total=9)
