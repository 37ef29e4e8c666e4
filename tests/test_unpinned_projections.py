"""Read-model behaviours that must hold at their edges: a lost lease, escaped text, the row cache."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from projections_support import Deposited, Ledger, expected_ledger, open_account

from phaselog.adapters import Store
from phaselog.projections import Projections
from phaselog.projections.base import EventData, Rows, load_text, store_text
from phaselog.projections.batch import RowCache
from phaselog.projections.engine import LeaseLost, Target
from phaselog.projections.follow import Follower
from phaselog.projections.ports import ViewStore

MARK = "\ufdd0json:"  # the escape marker of read-model text


class ClosingLedger(Ledger):
    """A ledger that deletes an account's row on a deposit of 0."""

    name = "closing"

    def apply(self, rows: Rows, event: EventData) -> None:
        if event.topic == Deposited.TOPIC and event.data["amount"] == 0:
            rows.delete(event.stream_id)
            return
        super().apply(rows, event)


class OwnedLedger(Ledger):
    """A ledger whose rows are also found by their owner (``get`` falls back to it)."""

    name = "owned"
    alt_key = "owner"


def _until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _target(views: Projections, name: str) -> Target:
    return views._targets[name]  # the runner's own batch target


def _take_lease(views: ViewStore, name: str, owner: str, *, over: bool = False) -> None:
    """``owner`` takes the lease on ``name`` (``over``: after the holder's lease ran out)."""
    with views.write([]) as session:
        session.ensure_state([name])
        if over:  # the holder stalled past its expiry, in the same transaction as the takeover
            session.set_state(name, expires=0)
        assert session.acquire_lease(name, owner, 60)


# -- a lost lease ---------------------------------------------------------------------------------
def test_a_batch_whose_lease_was_taken_over_raises_lease_lost_and_commits_nothing(
    durable_store: Store, views_made: list[Projections]
) -> None:
    """After another runner took the lease, a batch raises LeaseLost and moves neither rows nor position."""
    views = Projections(durable_store, [Ledger()], lease_seconds=60)
    views_made.append(views)
    target = _target(views, "ledger")
    _take_lease(views.views, "ledger", "runner-a")
    open_account(durable_store, "acct:1", deposits=(1,))
    assert views.engine.batch(target, owner="runner-a") == 2
    rows, position = views["ledger"].all(), views.engine.position(target.table)
    _take_lease(views.views, "ledger", "runner-b", over=True)
    open_account(durable_store, "acct:2", deposits=(2,))
    with pytest.raises(LeaseLost):
        views.engine.batch(target, owner="runner-a")
    assert views.engine.position(target.table) == position
    assert views["ledger"].all() == rows
    assert views.engine.batch(target, owner="runner-b") == 2  # the new holder folds them, once
    assert views["ledger"].all() == expected_ledger(durable_store, Ledger())


def test_a_following_runner_whose_lease_was_taken_over_stops_committing(
    durable_store: Store, views_made: list[Projections], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live runner meets LeaseLost, drops the read model and commits no more; the new holder folds."""
    # Leases far longer than the test: no housekeeping round (every third of them) runs meanwhile,
    # so only the batch itself can find out that the lease is gone.
    first = Projections(durable_store, [Ledger()], poll_interval=0.02, lease_seconds=600, seal_interval=0)
    second = Projections(durable_store, [Ledger()], poll_interval=0.02, lease_seconds=600, seal_interval=0)
    views_made.extend([first, second])
    lost = threading.Event()
    batch = first.engine.batch

    def watched(*args: Any, **kwargs: Any) -> int:
        try:
            return batch(*args, **kwargs)
        except LeaseLost:
            lost.set()
            raise

    monkeypatch.setattr(first.engine, "batch", watched)
    open_account(durable_store, "acct:1", deposits=(1,))
    first.start()
    first.wait(durable_store.max_position(), timeout=30)
    follower = first._follower  # the runner's threads
    assert isinstance(follower, Follower)
    assert "ledger" in follower.held
    position = first.position()
    _take_lease(first.views, "ledger", second.runner_id, over=True)
    open_account(durable_store, "acct:2", deposits=(2, 3))
    follower.wake()
    assert lost.wait(30), "the runner never met LeaseLost"
    _until(lambda: "ledger" not in follower.held, "the runner to drop the read model", timeout=5)
    time.sleep(0.3)  # many poll intervals: a runner still folding would have committed by now
    assert first.position() == position
    second.start()
    second.wait(durable_store.max_position(), timeout=30)
    assert first.position() == durable_store.max_position()  # the new holder's commits, read back
    assert second["ledger"].all() == expected_ledger(durable_store, Ledger())
    assert "ledger" not in follower.held


# -- text starting with the escape marker -------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [MARK, MARK + '"hidden"', MARK + "plain", MARK + "\x00", MARK + MARK + '"x"', MARK + "[1, 2]"],
)
def test_text_starting_with_the_escape_marker_is_escaped_and_reads_back_unchanged(value: str) -> None:
    """store_text escapes text that starts with the marker (even if the rest is JSON); load_text undoes it."""
    stored = store_text(value)
    assert stored != value
    assert load_text(stored) == value
    assert load_text(store_text(stored)) == stored  # escaping the escaped form is reversible too


def test_plain_text_is_stored_as_itself() -> None:
    """Text without NUL not starting with the marker is stored unchanged (the marker inside is fine)."""
    for value in ("plain", "", "a" + MARK + '"x"', " " + MARK):
        assert store_text(value) == value
        assert load_text(value) == value


def test_read_model_text_starting_with_the_marker_reads_back_unchanged(
    durable_store: Store, views_made: list[Projections]
) -> None:
    """A key and a value that start with the marker come back as written: get, list, counts, later batches."""
    key, owner = MARK + '"acct"', MARK + '"ann"'
    account = open_account(durable_store, key, owner=owner, deposits=(1,))
    views = Projections(durable_store, [Ledger()])
    views_made.append(views)
    views.catch_up()
    ledger = views["ledger"]
    row = ledger.get(key)
    assert row is not None
    assert (row["account"], row["owner"], row["events"]) == (key, owner, 2)
    assert [r["account"] for r in ledger.list(owner=owner)] == [key]
    assert ledger.counts() == {owner: 1}
    assert list(ledger.all()) == [key]
    account.deposit(5)
    durable_store.save(account)
    fresh = Projections(durable_store, [Ledger()])  # a cold cache: the row is read from the table
    views_made.append(fresh)
    fresh.catch_up()
    assert fresh.errors() == []
    assert fresh["ledger"].all() == expected_ledger(durable_store, Ledger())
    assert fresh["ledger"].get(key)["events"] == 3  # type: ignore[index]


def test_a_row_whose_key_starts_with_the_marker_can_be_deleted(
    durable_store: Store, views_made: list[Projections]
) -> None:
    """A fold deleting a row keyed by marker-prefixed text removes it from the table."""
    key = MARK + '"gone"'
    account = open_account(durable_store, key, deposits=(4,))
    open_account(durable_store, "kept", deposits=(1,))
    views = Projections(durable_store, [ClosingLedger()])
    views_made.append(views)
    views.catch_up()
    assert views["closing"].get(key) is not None
    account.deposit(0)
    durable_store.save(account)
    views.catch_up()
    assert views["closing"].get(key) is None
    assert list(views["closing"].all()) == ["kept"]


# -- the row cache's "known absent" answer ------------------------------------------------------------
def test_a_commit_evicting_nothing_keeps_earlier_evicted_keys_maybe_present() -> None:
    """After a commit that evicts keys and one that evicts none, the evicted keys are still not 'absent'."""
    cache = RowCache(2)
    cache.complete = True  # the table started empty: every row is held here or was evicted
    cache.commit({k: {"id": k} for k in ("a", "b", "c")}, (3, 0))  # evicts "a"
    assert "a" not in cache.rows
    assert not cache.known_absent("a")
    cache.commit({"c": {"id": "c", "n": 2}}, (4, 0))  # a row already held: nothing evicted
    cache.commit({}, (5, 0))  # a batch that changed no row
    assert set(cache.rows) == {"b", "c"}
    assert not cache.known_absent("a")
    assert not cache.known_absent("b")
    assert cache.known_absent("never-seen")


def test_rows_evicted_then_left_alone_are_updated_not_reinserted(
    durable_store: Store, views_made: list[Projections], caplog: pytest.LogCaptureFixture
) -> None:
    """A one-row cache: a row evicted, a batch evicting nothing, then the evicted row's event folded."""
    views = Projections(durable_store, [Ledger()], cache_rows=1)
    views_made.append(views)
    first = open_account(durable_store, "acct:a")
    second = open_account(durable_store, "acct:b")
    views.catch_up()  # acct:a evicted by acct:b
    second.deposit(2)
    durable_store.save(second)
    views.catch_up()  # acct:b again: nothing evicted
    first.deposit(3)
    durable_store.save(first)
    with caplog.at_level(logging.INFO, logger="phaselog.projections"):
        views.catch_up()
    assert views["ledger"].all() == expected_ledger(durable_store, Ledger())
    assert views.errors() == []
    assert not [r for r in caplog.records if "bulk write failed" in r.getMessage()]  # no insert refused


def test_a_second_key_starting_with_the_marker_finds_its_row(
    durable_store: Store, views_made: list[Projections]
) -> None:
    """get() falls back to the second key column with the value escaped as that column stores it."""
    owner = MARK + '"sole"'
    open_account(durable_store, "acct:owned", owner=owner)
    views = Projections(durable_store, [OwnedLedger()])
    views_made.append(views)
    views.catch_up()
    row = views["owned"].get(owner)
    assert row is not None
    assert (row["account"], row["owner"]) == ("acct:owned", owner)
