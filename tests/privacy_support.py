"""A customer aggregate with personal fields and a read model of it, for the crypto-shredding tests."""

from __future__ import annotations

import base64
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel

from phaselog.domain.events import Aggregate, CreationEvent, DomainEvent
from phaselog.domain.personal import Personal, Redacted, SubjectId
from phaselog.projections.base import EventData, Projection, Rows

KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = bytes(range(32)).hex()  # hex works too: 64 hex digits
EMAIL = "ann.lee@example.org"
STREET = "12 Rue des Lilas"


class Address(BaseModel):
    """A nested model: its street is personal, its country is not."""

    street: Annotated[str, Personal()]
    country: str


class Signed(CreationEvent):
    """A customer signed up: the subject is ``person``; the email and the street are personal."""

    TOPIC: ClassVar[str] = "tests.privacy.Signed"
    person: Annotated[str, SubjectId()]
    email: Annotated[str, Personal()]
    address: Address
    plan: str

    @classmethod
    def aggregate_class(cls) -> type[Aggregate]:
        return Customer

    def apply(self, aggregate: Any) -> None:
        aggregate.email = self.email
        aggregate.plan = self.plan


class Renamed(DomainEvent):
    """A nickname changed: personal, and the subject is the stream itself (no SubjectId field)."""

    TOPIC: ClassVar[str] = "tests.privacy.Renamed"
    nickname: Annotated[str, Personal()]

    def apply(self, aggregate: Any) -> None:
        aggregate.nickname = self.nickname


class PlanChanged(DomainEvent):
    """The customer moved to another plan: nothing personal."""

    TOPIC: ClassVar[str] = "tests.privacy.PlanChanged"
    plan: str

    def apply(self, aggregate: Any) -> None:
        aggregate.plan = self.plan


class Customer(Aggregate):
    """A customer; snapshotted often, so the tests see that its snapshots are refused."""

    TOPIC: ClassVar[str] = "tests.privacy.Customer"
    SNAPSHOTS: ClassVar[bool] = True
    email: Any
    plan: str
    nickname: Any = None

    def rename(self, nickname: str) -> None:
        self.trigger(Renamed, nickname=nickname)

    def change_plan(self, plan: str) -> None:
        self.trigger(PlanChanged, plan=plan)

    def snapshot_state(self) -> dict[str, Any]:
        return {"email": str(self.email), "plan": self.plan, "nickname": self.nickname}


def sign(person: str, stream: str = "customer:1") -> Customer:
    """A new customer of ``person``."""
    return Customer.start(
        Signed, stream, person=person, email=EMAIL, address={"street": STREET, "country": "FR"}, plan="gold"
    )


class Customers(Projection):
    """One row per customer stream, holding its email (what an erasure must scrub)."""

    name: ClassVar[str] = "customers"
    key: ClassVar[str] = "stream"
    columns: ClassVar[dict[str, str]] = {"stream": "text", "email": "json", "plan": "text"}
    topics: ClassVar[frozenset[str] | None] = frozenset({Signed.TOPIC})

    def apply(self, rows: Rows, event: EventData) -> None:
        rows.put(event.stream_id, {"stream": event.stream_id, "email": event.data["email"], "plan": "gold"})


class Preferences(BaseModel):
    """A recoverable state whose email is personal; its subject is its ``user``."""

    user: Annotated[str, SubjectId()] = "person-7"
    email: Annotated[str | Redacted, Personal()] = "bob@example.org"  # a Redacted once erased
    theme: str = "dark"
