"""No event lost or folded twice: concurrent writer processes, competing runners, and kill -9 mid-batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from projections_support import Ledger, expected_ledger, open_account

from phaselog.adapters import Store, open_store
from phaselog.projections.base import event_data
from phaselog.projections.runner import Projections

TESTS = str(Path(__file__).parent)
pytestmark = pytest.mark.slow

WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from projections_support import open_account
    from phaselog.adapters import open_store
    with open_store({url!r}) as store:
        for i in range({count}):
            open_account(store, f"w{{sys.argv[1]}}:{{i}}", owner=sys.argv[1], deposits=(i, 1))
    """
)

RUNNER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from projections_support import Ledger
    from phaselog.adapters import open_store
    from phaselog.projections.runner import Projections

    class Stalling(Ledger):
        def apply(self, rows, event):
            super().apply(rows, event)
            if event.position == {stall_at}:
                Path({marker!r}).write_text("stalled mid-batch")
                time.sleep(600)

    with open_store({url!r}) as store:
        runner = Projections(
            store, [Stalling()], batch_size={batch}, poll_interval=0.05, lease_seconds={lease}
        )
        Path({marker!r} + ".id").write_text(runner.runner_id)
        runner.run_forever()
    """
)


def _spawn(script: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", script, *args])


def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _positions(store: Store) -> list[int]:
    return [n.id for n in store.iter_notifications()]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_concurrent_writers_and_two_runners_fold_exactly_once(durable_url: str, tmp_path: Path) -> None:
    """Writer processes append while a runner process and an in-process runner compete; view == fold."""
    with open_store(durable_url) as store:  # creates the tables before anyone races
        inproc = Projections(store, [Ledger()], batch_size=10, poll_interval=0.02)
        runner = _spawn(
            RUNNER.format(
                tests=TESTS,
                url=durable_url,
                stall_at=-1,
                marker=str(tmp_path / "unused"),
                batch=16,
                lease=10.0,
            )
        )
        try:
            inproc.start()
            writers = [
                _spawn(WRITER.format(tests=TESTS, url=durable_url, count=40), str(n)) for n in range(3)
            ]
            assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
            assert len(_positions(store)) == 3 * 40 * 3
            inproc.wait(store.max_position(), timeout=60)
            assert runner.poll() is None, "the runner process died"
        finally:
            inproc.close()
            _stop(runner)
        rows = Projections(store, [Ledger()])["ledger"].all()
        assert rows == expected_ledger(store, Ledger())
        assert len(rows) == 120
        assert all(r["events"] == r["last_version"] == 3 for r in rows.values())
        positions = sorted(p for r in rows.values() for p in r["positions"])
        assert positions == _positions(store)  # every stored event once (positions may have gaps)


def test_runner_killed_mid_batch_loses_nothing_and_repeats_nothing(durable_url: str, tmp_path: Path) -> None:
    """Kill -9 during an open batch rolls it back; a restarted runner completes the view exactly once."""
    with open_store(durable_url) as store:
        for i in range(34):
            open_account(store, f"acct:{i:02d}", deposits=(i, 2))  # 102 events
        Projections(store, [Ledger()]).close()  # tables exist before the runner starts
        marker = tmp_path / "stalled"
        runner = _spawn(
            RUNNER.format(tests=TESTS, url=durable_url, stall_at=70, marker=str(marker), batch=50, lease=10.0)
        )
        try:
            _until(marker.exists, 60, "the runner to stall inside its second batch")
        finally:
            _stop(runner)
        assert runner.returncode == -signal.SIGKILL
        restarted = Projections(store, [Ledger()], batch_size=50)
        try:
            assert restarted.position() == 50  # batch 1 committed, batch 2 rolled back
            first_batch = Ledger().fold(event_data(store.app.mapper, n) for n in store.notifications(1, 50))
            assert restarted["ledger"].all() == first_batch
            assert restarted.catch_up() == store.max_position() - 50
            assert restarted["ledger"].all() == expected_ledger(store, Ledger())
        finally:
            restarted.close()


def _owner(projections: Projections) -> str | None:
    (row,) = projections.status()
    return row["owner"]  # type: ignore[no-any-return]


def test_killed_runner_lease_is_taken_over_once_within_the_lease(durable_url: str, tmp_path: Path) -> None:
    """Kill -9 of the runner holding a read model's lease: one waiting runner takes over, exactly once."""
    lease = 2.0
    with open_store(durable_url) as store:
        for i in range(34):
            open_account(store, f"acct:{i:02d}", deposits=(i, 2))  # 102 events
        Projections(store, [Ledger()]).close()
        marker = tmp_path / "stalled"
        victim = _spawn(
            RUNNER.format(
                tests=TESTS, url=durable_url, stall_at=70, marker=str(marker), batch=50, lease=lease
            )
        )
        waiting = [Projections(store, [Ledger()], batch_size=50, lease_seconds=lease) for _ in range(2)]
        try:
            _until(marker.exists, 60, "the first runner to stall inside its second batch")
            victim_id = Path(str(marker) + ".id").read_text()
            for runner in waiting:
                runner.start()
            if store.kind == "postgresql":  # its housekeeper renews the lease while the batch stalls
                assert _owner(waiting[0]) == victim_id
            # (SQLite: the stalled batch holds the file's write lock, so nobody can renew or take over)
            assert waiting[0].position() == 50
            os.kill(victim.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            victim.wait(timeout=30)
            ids = {runner.runner_id for runner in waiting}
            _until(lambda: _owner(waiting[0]) in ids, 30, "a waiting runner to take the lease over")
            took_over = time.monotonic() - killed_at
            waiting[0].wait(store.max_position(), timeout=30)
            owners = {row["owner"] for runner in waiting for row in runner.status()}
            assert len(owners) == 1
            assert owners <= ids
            holders = [r for r in waiting if r._follower is not None and "ledger" in r._follower.held]
            assert len(holders) == 1
        finally:
            for runner in waiting:
                runner.close()
            _stop(victim)
        assert took_over < lease + 10  # expiry plus the time the database needs to notice the kill
        rows = Projections(store, [Ledger()])["ledger"].all()
        assert rows == expected_ledger(store, Ledger())
        positions = sorted(p for r in rows.values() for p in r["positions"])
        assert positions == _positions(store)  # every stored event once (positions may have gaps)


def test_store_close_stops_its_runner(durable_url: str) -> None:
    """store.projections is the default runner; closing the store stops its thread."""
    store: Store = open_store(durable_url)
    projections = store.projections
    projections.start()
    assert projections.running
    store.close()
    assert not _running(projections)


def _running(projections: Projections) -> bool:
    return bool(projections.running)
