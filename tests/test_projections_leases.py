"""Runners sharing read models by lease, and the runner sealing the store every seal_interval."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from projections_support import Ledger, Picky, expected_ledger, open_account

from phaselog.adapters import Store
from phaselog.projections.follow import SEAL_LEASE, Follower
from phaselog.projections.runner import Projections


def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _follower(views: Projections) -> Follower:
    follower = views._follower
    assert follower is not None
    return follower


def _owners(views: Projections) -> dict[str, Any]:
    return {row["name"]: row["owner"] for row in views.status()}


def test_two_runners_split_the_read_models_and_fold_each_event_once(store: Store) -> None:
    """Every read model is claimed by exactly one of two following runners; views equal the fold."""
    runners = [Projections(store, [Ledger(), Picky()], poll_interval=0.02, lease_seconds=2) for _ in range(2)]
    try:
        for runner in runners:
            runner.start()
        for i in range(20):
            open_account(store, f"acct:{i:02d}", deposits=(i, 1))
        runners[0].wait(store.max_position(), timeout=30)
        owners = _owners(runners[0])
        assert set(owners.values()) <= {r.runner_id for r in runners}
        for name in ("ledger", "picky"):
            holders = [r for r in runners if name in _follower(r).held]
            assert len(holders) == 1, name
            assert owners[name] == holders[0].runner_id
        assert runners[0]["ledger"].all() == expected_ledger(store, Ledger())
    finally:
        for runner in runners:
            runner.close()


def test_a_clean_stop_hands_the_leases_over_at_once(store: Store) -> None:
    """stop() releases the leases, so a waiting runner takes over long before they would expire."""
    first = Projections(store, [Ledger()], poll_interval=0.02, lease_seconds=60)
    second = Projections(store, [Ledger()], poll_interval=0.02, lease_seconds=60)
    try:
        first.start()
        _until(lambda: _owners(first)["ledger"] == first.runner_id, 30, "the first runner's lease")
        second.start()
        first.stop()
        _until(lambda: _owners(second)["ledger"] == second.runner_id, 30, "the second runner to take over")
        open_account(store, "late", deposits=(3,))
        second.wait(store.max_position(), timeout=30)
        assert second["ledger"].get("late")["balance"] == 3  # type: ignore[index]
    finally:
        first.close()
        second.close()


def test_the_runner_seals_the_store_every_interval_once_per_store(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With seal_interval set, exactly one of two runners calls store.seal(), repeatedly."""
    calls: list[object] = []
    real = store.seal
    monkeypatch.setattr(store, "seal", lambda: calls.append(real()))
    runners = [
        Projections(store, [Ledger()], poll_interval=0.02, lease_seconds=0.3, seal_interval=0.2)
        for _ in range(2)
    ]
    try:
        open_account(store, "a", deposits=(1,))
        for runner in runners:
            runner.start()
        _until(lambda: len(calls) >= 3, 30, "three seals")
        sealers = [r for r in runners if _follower(r).seals]
        assert len(sealers) == 1
        assert SEAL_LEASE in _follower(sealers[0]).held
        if store.kind != "memory":
            assert all(seal is not None for seal in calls)
    finally:
        for runner in runners:
            runner.close()


def test_seal_interval_zero_never_seals(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """seal_interval=0 disables sealing even after many housekeeping rounds."""
    calls: list[object] = []
    monkeypatch.setattr(store, "seal", lambda: calls.append(None))
    views = Projections(store, [Ledger()], poll_interval=0.02, lease_seconds=0.15, seal_interval=0)
    try:
        views.start()
        _until(lambda: _follower(views).housekeeping_rounds >= 5, 30, "five housekeeping rounds")
        assert calls == []
        assert SEAL_LEASE not in _follower(views).held
    finally:
        views.close()
