"""Projection machinery on every store: exactly-once folding, catch-up, rebuild, wait."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from projections_support import Ledger, expected_ledger, open_account

from phaselog.adapters import Store
from phaselog.domain.errors import ValidationFailed
from phaselog.projections.base import ProjectionTimeout
from phaselog.projections.runner import Projections


@pytest.fixture
def ledger(store: Store) -> Iterator[Projections]:
    projections = Projections(store, [Ledger()], batch_size=7)
    yield projections
    projections.close()


def test_catch_up_folds_every_event_once(store: Store, ledger: Projections) -> None:
    """catch_up folds the whole log into the table, equal to a fold of the log."""
    for i in range(5):
        open_account(store, f"acct:{i}", owner="ann" if i % 2 else "bob", deposits=(1, 2, i))
    assert ledger.catch_up() == store.max_position()
    rows = ledger["ledger"].all()
    assert rows == expected_ledger(store, Ledger())
    assert rows["acct:4"]["balance"] == 7
    assert all(r["events"] == r["last_version"] for r in rows.values())
    assert ledger.catch_up() == 0  # nothing new: nothing folded again


def test_queries_get_list_counts(store: Store, ledger: Projections) -> None:
    """get, list with filters and counts read the live table."""
    open_account(store, "a", owner="ann", deposits=(5,))
    open_account(store, "b", owner="bob")
    open_account(store, "c", owner="bob", deposits=(1, 1))
    ledger.catch_up()
    model = ledger["ledger"]
    assert model.get("a") == {
        "account": "a",
        "owner": "ann",
        "events": 2,
        "last_version": 2,
        "balance": 5,
        "positions": [1, 2],
    }
    assert model.get("zzz") is None
    assert [r["account"] for r in model.list(owner="bob")] == ["b", "c"]
    assert model.counts() == {"ann": 1, "bob": 2}
    with pytest.raises(ValidationFailed, match="no column colour"):
        model.list(colour="red")


def test_position_is_recorded_with_rows(store: Store, ledger: Projections) -> None:
    """A second runner on the same store resumes from the recorded position, folding nothing twice."""
    open_account(store, "a", deposits=(1, 2, 3))
    ledger.catch_up()
    second = Projections(store, [Ledger()])
    try:
        assert second.position() == store.max_position()
        assert second.catch_up() == 0
        open_account(store, "b", deposits=(4,))
        assert second.catch_up() == 2
        assert ledger.catch_up() == 0
        assert ledger["ledger"].all() == expected_ledger(store, Ledger())
    finally:
        second.close()


def test_wait_catches_up_for_read_your_writes(store: Store, ledger: Projections) -> None:
    """wait(position) returns once the read models include that position."""
    open_account(store, "a", deposits=(9,))
    ledger.wait(store.max_position(), timeout=5)
    assert ledger["ledger"].get("a")["balance"] == 9  # type: ignore[index]


def test_wait_times_out_for_a_position_never_written(store: Store, ledger: Projections) -> None:
    """Wait raises ProjectionTimeout (a TimeoutError) when the position never comes."""
    open_account(store, "a")
    with pytest.raises(ProjectionTimeout):
        ledger.wait(store.max_position() + 100, timeout=0.2)
    with pytest.raises(TimeoutError):
        ledger.wait(store.max_position() + 100, timeout=0.05)


def test_live_following_thread(store: Store, ledger: Projections) -> None:
    """start() follows new events in the background; wait sees them; stop() ends the thread."""
    ledger.start()
    try:
        assert ledger.running
        for i in range(3):
            open_account(store, f"live:{i}", deposits=(i,))
            ledger.wait(store.max_position(), timeout=10)
            assert ledger["ledger"].get(f"live:{i}") is not None
    finally:
        ledger.stop()
    assert not _running(ledger)
    assert ledger["ledger"].all() == expected_ledger(store, Ledger())


def test_rebuild_replays_into_shadow_and_swaps(store: Store, ledger: Projections) -> None:
    """rebuild() gives the same rows as the fold, reports progress, and keeps the position."""
    for i in range(4):
        open_account(store, f"acct:{i}", deposits=(1,) * 5)
    ledger.catch_up()
    seen: list[tuple[int, int]] = []
    counts = ledger.rebuild("ledger", progress=lambda done, total: seen.append((done, total)))
    assert counts == {"ledger": 4}
    assert seen[0] == (0, store.max_position())
    assert seen[-1] == (store.max_position(), store.max_position())
    assert ledger["ledger"].all() == expected_ledger(store, Ledger())
    assert ledger.position() == store.max_position()
    open_account(store, "after", deposits=(2,))
    assert ledger.catch_up() == 2
    assert ledger["ledger"].all() == expected_ledger(store, Ledger())


def test_rebuild_is_never_seen_half_built(store: Store, ledger: Projections) -> None:
    """While a rebuild replays, readers see either the complete old table or the complete new one."""
    for i in range(30):
        open_account(store, f"acct:{i:02d}", deposits=(1, 1))
    ledger.catch_up()
    full = len(ledger["ledger"].list())
    sizes: list[int] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            sizes.append(len(ledger["ledger"].list()))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        ledger.rebuild("ledger")
    finally:
        done.set()
        reader.join(30)
    assert sizes
    assert set(sizes) == {full}


def test_unknown_projection_name(store: Store, ledger: Projections) -> None:
    """Rebuild and lookup of an unknown projection name raise ValidationFailed."""
    with pytest.raises(ValidationFailed, match="no projection"):
        ledger.rebuild("nope")


def test_status_reports_lag(store: Store, ledger: Projections) -> None:
    """status() shows position, head and lag per read model."""
    open_account(store, "a", deposits=(1,))
    (before,) = ledger.status()
    assert (before["name"], before["position"], before["lag"]) == ("ledger", 0, 2)
    ledger.catch_up()
    (after,) = ledger.status()
    assert (after["position"], after["lag"], after["rows"]) == (2, 0, 1)


def _running(projections: Projections) -> bool:
    return projections.running
