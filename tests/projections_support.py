"""Small events and a ledger projection for the projection and audit tests (not part of phaselog)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, ClassVar

from phaselog.adapters import Store
from phaselog.domain.events import Aggregate, CreationEvent, DomainEvent
from phaselog.projections.base import EventData, Projection, Rows, event_data
from phaselog.projections.ports import TableSpec
from phaselog.projections.runner import Projections


class AccountOpened(CreationEvent):
    """An account stream starts."""

    TOPIC: ClassVar[str] = "tests.proj.AccountOpened"
    owner: str

    @classmethod
    def aggregate_class(cls) -> type[Aggregate]:
        return Account

    def apply(self, aggregate: Any) -> None:
        aggregate.owner = self.owner
        aggregate.balance = 0


class Deposited(DomainEvent):
    """Money was deposited."""

    TOPIC: ClassVar[str] = "tests.proj.Deposited"
    amount: int

    def apply(self, aggregate: Any) -> None:
        aggregate.balance += self.amount


class Account(Aggregate):
    """An owner and a balance."""

    TOPIC: ClassVar[str] = "tests.proj.Account"
    owner: str
    balance: int

    def deposit(self, amount: int) -> None:
        self.trigger(Deposited, amount=amount)

    def snapshot_state(self) -> dict[str, Any]:
        return {"owner": self.owner, "balance": self.balance}

    def restore_state(self, state: dict[str, Any]) -> None:
        self.owner = state["owner"]
        self.balance = state["balance"]


class Ledger(Projection):
    """Per account: events folded, last version seen, balance; applying twice breaks count == version."""

    name: ClassVar[str] = "ledger"
    key: ClassVar[str] = "account"
    columns: ClassVar[Mapping[str, str]] = {
        "account": "text",
        "owner": "text",
        "events": "int",
        "last_version": "int",
        "balance": "int",
        "positions": "json",
    }
    count_by: ClassVar[str | None] = "owner"
    topics: ClassVar[frozenset[str] | None] = frozenset({AccountOpened.TOPIC, Deposited.TOPIC})

    def apply(self, rows: Rows, event: EventData) -> None:
        row = rows.get(event.stream_id) or {
            "account": event.stream_id,
            "events": 0,
            "balance": 0,
            "positions": [],
        }
        if event.topic == AccountOpened.TOPIC:
            row["owner"] = event.data["owner"]
        else:
            row["balance"] += event.data["amount"]
        row["events"] += 1
        row["last_version"] = event.version
        row["positions"] = [*row["positions"], event.position]
        rows.put(event.stream_id, row)


def open_account(
    store: Store, account_id: str, owner: str = "ann", deposits: tuple[int, ...] = ()
) -> Account:
    """Create and save an account with some deposits."""
    account = Account.start(AccountOpened, account_id, owner=owner)
    for amount in deposits:
        account.deposit(amount)
    store.save(account)
    return account


def expected_ledger(store: Store, projection: Ledger) -> dict[str, dict[str, Any]]:
    """The ledger a fold of the full event log gives."""
    return projection.fold(event_data(store.app.mapper, n) for n in store.iter_notifications())


class Picky(Ledger):
    """A ledger whose fold raises on a deposit of 13 until ``fixed`` is set."""

    name: ClassVar[str] = "picky"

    def __init__(self) -> None:
        self.fixed = False

    def apply(self, rows: Rows, event: EventData) -> None:
        if event.topic == Deposited.TOPIC and event.data["amount"] == 13 and not self.fixed:
            msg = "unlucky amount"
            raise RuntimeError(msg)
        super().apply(rows, event)


class CheckedLedger(Ledger):
    """A ledger whose table refuses a negative balance (a CHECK constraint of the database)."""

    name: ClassVar[str] = "checked"

    def table_spec(self, table: str) -> TableSpec:
        return replace(super().table_spec(table), checks=("balance >= 0",))


def watch_reads(views: Projections, note: Callable[..., None]) -> None:
    """Call ``note`` with the arguments of each read of the log by ``views``, just before it reads."""
    reader = views.engine.reader
    original = reader.records

    def watched(*args: Any, **kwargs: Any) -> Any:
        note(*args, **kwargs)
        return original(*args, **kwargs)

    reader.records = watched  # type: ignore[method-assign]
