"""The stall watch: what looks at the appends in flight mean, decided once for every shell."""

from __future__ import annotations

import logging
import sys
import threading

import pytest

from phaselog.runtime.horizon import InFlightAppend, StallWatch


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _append(pid: int, xid: int, age: float = 0.0) -> InFlightAppend:
    return InFlightAppend(pid=pid, transaction_id=xid, age_seconds=age, state="idle in transaction")


def test_an_append_ages_while_watched_even_when_the_server_hides_its_start() -> None:
    """An append the server reports with no age still becomes a stall once watched past stall_warning."""
    clock = Clock()
    watch = StallWatch(stall_warning=5.0, stall_unhealthy=30.0, clock=clock)
    assert watch.observe(1, 2, 1, [_append(7, 70)]).stall is None
    clock.now += 6
    horizon = watch.observe(1, 2, 1, [_append(7, 70)])
    assert horizon.stall is not None
    assert horizon.stall.age_seconds == pytest.approx(6.0)
    assert not horizon.unhealthy
    clock.now += 25
    assert watch.observe(1, 2, 1, [_append(7, 70)]).unhealthy


def test_the_holder_is_the_lowest_transaction_id_and_a_stall_is_warned_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Readers wait for the lowest transaction id; each stall is one warning, a new one another."""
    watch = StallWatch(stall_warning=1.0, stall_unhealthy=2.0, clock=Clock())
    with caplog.at_level(logging.WARNING, logger="phaselog.horizon"):
        for _ in range(3):
            horizon = watch.observe(1, 5, 3, [_append(8, 90, age=3.0), _append(7, 80, age=1.5)])
        assert horizon.holder is not None
        assert horizon.holder.pid == 7
        assert horizon.lag_seconds == 1.5
        assert len(caplog.records) == 1
        assert "pid 7" in caplog.records[0].getMessage()
        watch.observe(5, 5, 0, [])  # both ended
        assert watch.observe(5, 6, 0, []).stall is None
        watch.observe(5, 6, 1, [_append(7, 80, age=1.5)])  # the same pid and id again: a new stall
        assert len(caplog.records) == 2


def test_a_watch_is_safe_to_share_between_threads() -> None:
    """Looks from several threads at once never break the watch's bookkeeping."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    watch = StallWatch(stall_warning=100.0, stall_unhealthy=200.0)
    errors: list[BaseException] = []
    many = [_append(n, n) for n in range(50)]

    def look(n: int) -> None:
        try:
            for i in range(300):
                watch.observe(1, 2, 1, many if (i + n) % 2 else [])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=look, args=(n,)) for n in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(before)
    assert errors == []
