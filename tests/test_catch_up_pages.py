"""Catch-up over many pages on every store: every page once into each model, halts and escapes."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from projections_support import Deposited, Ledger, Picky, expected_ledger, open_account, watch_reads

from phaselog.adapters import Store
from phaselog.projections.base import EventData, Rows
from phaselog.projections.runner import Projections


class OtherLedger(Ledger):
    """The ledger again, under another name (a second read model over the same events)."""

    name: ClassVar[str] = "other_ledger"


class OtherPicky(Picky):
    """A second picky ledger: it fails on the same deposit as :class:`Picky`."""

    name: ClassVar[str] = "other_picky"


class Stop(BaseException):
    """Not an error a fold may dead-letter: it must reach the caller of the catch-up."""


class Stopping(Ledger):
    """A ledger whose fold raises :class:`Stop` on a deposit of 13."""

    name: ClassVar[str] = "stopping"

    def apply(self, rows: Rows, event: EventData) -> None:
        if event.topic == Deposited.TOPIC and event.data["amount"] == 13:
            raise Stop
        super().apply(rows, event)


def _accounts(store: Store, count: int, deposits: tuple[int, ...] = (1, 2), prefix: str = "acct") -> None:
    for i in range(count):
        open_account(store, f"{prefix}-{i:03d}", deposits=deposits)


def test_every_read_model_folds_every_page_once_over_many_pages(store: Store) -> None:
    """Many small pages, two read models over the same events: each equals a fold of the whole log."""
    _accounts(store, 40)
    views = Projections(store, [Ledger(), OtherLedger()], batch_size=3)
    try:
        views.catch_up()
        assert views.position() == store.max_position()
        assert views["ledger"].all() == expected_ledger(store, Ledger())
        assert views["other_ledger"].all() == expected_ledger(store, OtherLedger())
    finally:
        views.close()


def test_when_every_read_model_halts_the_log_is_read_no_further(store: Store) -> None:
    """Both read models halt on the same poison event: each stops before it and reading stops soon after."""
    _accounts(store, 2)
    open_account(store, "poison", deposits=(13,))
    _accounts(store, 30, deposits=(4, 5), prefix="late")  # some thirty more pages of three events
    views = Projections(store, [Picky(), OtherPicky()], batch_size=3, on_error="stop")
    reads = _count_reads(views)
    try:
        views.catch_up()
        read = len(reads)
        poison = min(n.id for n in store.iter_notifications() if n.originator_id == "poison")
        assert [row["halted"] for row in views.status()] == [True, True]
        assert all(row["position"] < poison for row in views.status())
        assert read <= 3 + 2  # the pages up to the poison, and the next ones read ahead
    finally:
        views.close()


def test_an_exception_no_fold_may_swallow_reaches_the_caller(store: Store) -> None:
    """A BaseException from one read model's thread is raised by catch_up; the other model went on."""
    _accounts(store, 5)
    open_account(store, "poison", deposits=(13,))
    _accounts(store, 5, deposits=(4,), prefix="late")
    views = Projections(store, [Stopping(), Ledger()], batch_size=3)
    try:
        with pytest.raises(Stop):
            views.catch_up()
        views.close()
        views = Projections(store, [Ledger()], batch_size=3)
        views.catch_up()
        assert views["ledger"].all() == expected_ledger(store, Ledger())
    finally:
        views.close()


def _count_reads(views: Projections) -> list[Any]:
    """Record each read of the log by ``views`` (where each page read starts)."""
    reads: list[Any] = []
    watch_reads(views, lambda *args, **kwargs: reads.append(args[0] if args else kwargs.get("start")))
    return reads
