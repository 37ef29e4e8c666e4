"""Erasing a customer's personal data without breaking the audit trail (crypto-shredding).

A shop records customers whose email is marked ``Personal()``. The script shows
that the stored event holds only ciphertext, that a legal hold blocks the erasure
until it is lifted, and that after ``store.erase`` the email reads as a redacted
marker everywhere while ``audit verify`` still passes: no event was changed.

Usage: ``python examples/erase_customer.py [STORE_URL]`` (default: a temporary
SQLite file). It uses ``$PHASELOG_MASTER_KEY`` when set, else a fresh random key.
"""

from __future__ import annotations

import base64
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any, ClassVar

from phaselog.adapters import open_store
from phaselog.adapters.audit.history import timeline, verify
from phaselog.adapters.crypto import MasterKey
from phaselog.domain.events import Aggregate, CreationEvent
from phaselog.domain.holds import LegalHoldActive
from phaselog.domain.personal import Personal, Redacted, SubjectId


class CustomerSigned(CreationEvent):
    """A customer signed up; the email is personal data of ``person``."""

    TOPIC: ClassVar[str] = "example.shop.CustomerSigned"
    person: Annotated[str, SubjectId()]
    email: Annotated[str | Redacted, Personal()]
    plan: str

    @classmethod
    def aggregate_class(cls) -> type[Aggregate]:
        """A :class:`Customer`."""
        return Customer

    def apply(self, aggregate: Any) -> None:
        """Record the email and the plan."""
        aggregate.email = self.email
        aggregate.plan = self.plan


class Customer(Aggregate):
    """A customer of the shop."""

    TOPIC: ClassVar[str] = "example.shop.Customer"
    email: str | Redacted
    plan: str


def run(url: str) -> None:
    """Sign a customer up, try to erase under a hold, erase, and verify the history."""
    with open_store(url) as store:
        if store.keys.provider is None:  # no $PHASELOG_MASTER_KEY: a key for this run only
            store.keys.use(MasterKey(base64.b64encode(os.urandom(32)).decode()))
        store.save(
            Customer.start(
                CustomerSigned, "customer:42", person="p-7f3a", email="ann@example.org", plan="gold"
            )
        )
        stored = bytes(store.app.recorder.select_events("customer:42")[0].state)
        print("stored:", stored.decode()[:90], "…")
        print("loaded email:", store.load("customer:42", Customer).email)
        store.hold("customer:", reason="litigation 2026-17", by="legal")
        try:
            store.erase("p-7f3a", reason="GDPR art. 17")
        except LegalHoldActive as exc:
            print("refused:", exc)
        store.lift_hold("customer:", reason="case closed", by="legal")
        done = store.erase("p-7f3a", reason="GDPR art. 17, ticket 4711", requested_by="dpo")
        print(f"erased {done.subject}: streams {done.streams}")
        print("loaded email:", store.load("customer:42", Customer).email)
        print("timeline email:", timeline(store, "customer:42")[0].data["email"])
        report = verify(store)
        print("audit verify:", "ok" if report.ok else report.problems, f"({report.checked} events)")


def main(argv: list[str] | None = None) -> None:
    """Run on the URL given, else on a temporary SQLite file."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        run(args[0])
        return
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{Path(tmp) / 'shop.db'}")


if __name__ == "__main__":
    main()
