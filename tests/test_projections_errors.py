"""Poison events on every store: dead letters, retries, on_error="stop", and isolation of read models."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import pytest
from projections_support import CheckedLedger, Deposited, Ledger, Picky, expected_ledger, open_account

from phaselog.adapters import Store
from phaselog.domain.errors import StoreUnavailable, ValidationFailed
from phaselog.domain.plugin import PluginPhase
from phaselog.projections import ProjectionHalted
from phaselog.projections.base import event_data
from phaselog.projections.runner import Projections, default_projections

TEXT = "nul\x00 inside, astral 🦄 and the escape marker \ufdd0json: too"


def _fold_without(store: Store, positions: Iterable[int]) -> dict[str, dict[str, Any]]:
    skip = set(positions)
    return Ledger().fold(
        event_data(store.app.mapper, n) for n in store.iter_notifications() if n.id not in skip
    )


def _deposit_positions(store: Store, amount: int) -> list[int]:
    return [
        n.id
        for n in store.iter_notifications()
        if n.topic == Deposited.TOPIC and event_data(store.app.mapper, n).data["amount"] == amount
    ]


def _row(views: Projections, name: str) -> dict[str, Any]:
    (row,) = [r for r in views.status() if r["name"] == name]
    return row


def test_nul_in_a_reason_is_no_poison_and_reads_back_identical(store: Store) -> None:
    """A transition reason holding NUL reaches every read model intact; nothing is dead-lettered."""
    machine = store.plugins.machine("cam")
    machine.transition_to(PluginPhase.INSTALLING, TEXT)
    machine.force_phase(PluginPhase.FAILED, TEXT)
    views = Projections(store)
    try:
        views.catch_up()
        assert views.position() == store.max_position()
        row = views.plugin_phases.get("cam")
        assert row is not None
        assert row["reason"] == "force: " + TEXT
        assert views.errors() == []
        assert all(r["errors"] == 0 and r["lag"] == 0 and r["lag_seconds"] == 0.0 for r in views.status())
    finally:
        views.close()


def test_a_fold_that_raises_is_dead_lettered_and_its_model_moves_on(store: Store) -> None:
    """The failing event lands in the dead letters with its facts; the model and its neighbour go on."""
    open_account(store, "a", deposits=(1, 13, 2))
    open_account(store, "b", deposits=(5,))
    (bad,) = _deposit_positions(store, 13)
    picky = Picky()
    views = Projections(store, [picky, Ledger()], batch_size=3)
    try:
        views.catch_up()
        assert views.position() == store.max_position()
        (letter,) = views.errors()
        assert (letter["projection"], letter["position"], letter["stream"]) == ("picky", bad, "a")
        assert letter["topic"] == Deposited.TOPIC
        assert "RuntimeError: unlucky amount" in letter["error"]
        assert datetime.fromisoformat(letter["at"]).tzinfo is not None
        assert views.errors("ledger") == []
        assert views["picky"].all() == _fold_without(store, [bad])
        assert views["ledger"].all() == expected_ledger(store, Ledger())
        status = _row(views, "picky")
        assert status["errors"] == 1
        assert "unlucky amount" in status["last_error"]
        assert _row(views, "ledger")["errors"] == 0
        assert views.retry_errors("picky") == 0  # still failing: kept, nothing changed
        assert len(views.errors()) == 1
        picky.fixed = True
        assert views.retry_errors() == 1
        assert views.errors() == []
        assert views["picky"].get("a")["balance"] == 16  # type: ignore[index]
        assert _row(views, "picky")["errors"] == 0
    finally:
        views.close()


def test_a_row_the_database_refuses_fails_only_its_event(store: Store) -> None:
    """A CHECK violation dead-letters that event; the rest of the same batch is written."""
    open_account(store, "a", deposits=(3,))
    open_account(store, "b", deposits=(-5,))  # the row would hold a negative balance
    open_account(store, "c", deposits=(7,))
    (bad,) = _deposit_positions(store, -5)
    views = Projections(store, [CheckedLedger()], batch_size=100)  # one batch holds every event
    try:
        views.catch_up()
        assert views.position() == store.max_position()
        (letter,) = views.errors()
        assert (letter["projection"], letter["position"], letter["stream"]) == ("checked", bad, "b")
        assert "IntegrityError" in letter["error"] or "constraint" in letter["error"].lower()
        assert views["checked"].all() == _fold_without(store, [bad])
        assert views.retry_errors() == 0
        (again,) = views.errors()
        assert again["position"] == bad
        assert again["at"] >= letter["at"]
    finally:
        views.close()


def test_on_error_stop_halts_only_that_model_visibly(store: Store) -> None:
    """With on_error="stop" the failing model stops before the event; the other reaches the head."""
    open_account(store, "a", deposits=(1, 13, 2))
    (bad,) = _deposit_positions(store, 13)
    picky = Picky()
    views = Projections(store, [picky, Ledger()], on_error="stop", batch_size=1)
    try:
        views.catch_up()
        positions = {r["name"]: r["position"] for r in views.status()}
        assert positions == {"picky": bad - 1, "ledger": store.max_position()}
        status = _row(views, "picky")
        assert status["halted"] is True
        assert f"before event {bad}" in status["last_error"]
        assert "unlucky amount" in status["last_error"]
        assert not _row(views, "ledger")["halted"]
        assert views.errors() == []
        with pytest.raises(ProjectionHalted, match="unlucky amount"):
            views.wait(store.max_position(), timeout=5)
        views.catch_up()  # still halted: no retry until asked
        assert _row(views, "picky")["position"] == bad - 1
        picky.fixed = True
        assert views.retry_errors("picky") == 0  # nothing was dead-lettered; the halt is cleared
        views.wait(store.max_position(), timeout=10)
        assert views["picky"].all() == expected_ledger(store, Ledger())
        assert not _row(views, "picky")["halted"]
    finally:
        views.close()


def test_a_broken_model_never_holds_the_others_back(store: Store) -> None:
    """A model whose table is gone fails without dead letters; the other is folded; catch_up then raises."""
    views = Projections(store, [Picky(), Ledger()])
    try:
        open_account(store, "a", deposits=(1, 2))
        with views.views.write([]) as session:
            session.drop_table(Picky().table)
        with pytest.raises(StoreUnavailable):
            views.catch_up()
        assert _row(views, "ledger")["position"] == store.max_position()
        broken = {r["name"]: r for r in views.status()}["picky"]
        assert broken["position"] == 0
        assert broken["last_error"]
        assert views.errors() == []
        views.rebuild("picky")  # the operator's repair
        assert views.position() == store.max_position()
    finally:
        views.close()


def test_following_runner_dead_letters_and_keeps_following(store: Store) -> None:
    """The background runner dead-letters a poison event and still folds what comes after it."""
    views = Projections(store, [Picky(), *default_projections()], poll_interval=0.05, lease_seconds=2)
    views.start()
    try:
        open_account(store, "a", deposits=(13,))
        store.plugins.machine("cam").transition_to(PluginPhase.INSTALLING, TEXT)
        open_account(store, "b", deposits=(4,))
        views.wait(store.max_position(), timeout=30)
        assert [e["position"] for e in views.errors()] == _deposit_positions(store, 13)
        assert views["picky"].get("b")["balance"] == 4  # type: ignore[index]
        assert views.plugin_phases.get("cam")["reason"] == TEXT  # type: ignore[index]
    finally:
        views.close()


def test_on_error_must_be_skip_or_stop(store: Store) -> None:
    """An unknown error policy is rejected."""
    with pytest.raises(ValidationFailed, match="on_error"):
        Projections(store, [Ledger()], on_error="ignore")  # type: ignore[arg-type]
