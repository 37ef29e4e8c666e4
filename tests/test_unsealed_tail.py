"""No silent unsealed tail: verify reports it, stores seal on their own, a published head catches rewrites."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest
from projections_support import open_account
from tamper_support import reseal_everything, rewrite_event_and_chain

from phaselog.adapters import Store, open_store
from phaselog.adapters import store as store_module
from phaselog.adapters.audit.autoseal import AutoSealer
from phaselog.adapters.audit.history import seal, verify
from phaselog.domain.errors import StoreUnavailable, ValidationFailed
from phaselog.runtime.sealing import DEFAULT_SEAL_INTERVAL

from horizon_support import held_append
from support_events import open_counter


def _until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_verify_reports_the_sealed_range_and_the_unsealed_tail(durable_url: str) -> None:
    """Verify says up to which position seals vouch, and how many (and how old) events follow."""
    with open_store(durable_url, seal_interval=0) as store:
        open_account(store, "acct:a", deposits=(1, 2))
        before = verify(store)
        assert (before.seals, before.sealed_position, before.unsealed_events) == (0, 0, 3)
        assert before.unsealed_age_seconds is not None
        assert 0 <= before.unsealed_age_seconds < 600
        assert before.unsealed_since is not None
        assert any("never sealed" in line for line in before.as_dict()["summary"])
        sealed = seal(store)
        assert sealed is not None
        open_account(store, "acct:b", deposits=(3,))
        report = verify(store)
        assert report.ok
        assert (report.seals, report.sealed_position, report.unsealed_events) == (1, sealed.horizon, 2)
        assert f"unsealed tail: 2 event(s) after position {sealed.horizon}" in " ".join(
            report.as_dict()["summary"]
        )
        assert report.as_dict()["signatures_checked"] is False


def test_a_rewrite_after_the_last_seal_is_reported_as_tail_and_caught_by_the_published_head(
    durable_url: str,
) -> None:
    """An event rewritten after the last seal with its chain row: reported as tail, caught by the head."""
    with open_store(durable_url, seal_interval=0) as store:
        open_account(store, "acct:a", deposits=(1, 2))
        assert seal(store) is not None
        open_account(store, "acct:b", deposits=(3, 4))
        published = verify(store).head_digest  # what an auditor kept outside the database
        rewrite_event_and_chain(durable_url, store, ("acct:b", 3), b'"amount":4', b'"amount":400')
        report = verify(store)
        assert report.ok  # the chains alone cannot tell...
        assert report.unsealed_events == 3  # ...and verify says so: only their chain vouches for them
        caught = verify(store, expect_head=published)
        assert [(p.position, p.kind) for p in caught.problems] == [(None, "head-mismatch")]
        assert verify(store, expect_head=report.head_digest).ok  # the rewritten history is what it now is


def test_a_rewrite_of_events_chain_and_seals_is_caught_by_the_digest_kept_elsewhere(durable_url: str) -> None:
    """Rewriting sealed events, chain rows and every seal passes verify, not a head digest kept outside."""
    with open_store(durable_url, seal_interval=0) as store:
        open_account(store, "acct:a", deposits=(1, 2))
        sealed = seal(store)
        assert sealed is not None
        rewrite_event_and_chain(durable_url, store, ("acct:a", 3), b'"amount":2', b'"amount":200')
        reseal_everything(durable_url)
        assert verify(store).ok  # no key: the forged seal is as good as the original
        assert verify(store, expect_head=sealed.digest).problems[0].kind == "head-mismatch"


def test_a_writing_store_seals_its_own_appends_within_its_interval(durable_url: str) -> None:
    """Without any runner, a store seals what it saved once seal_interval has passed: the tail stays small."""
    assert DEFAULT_SEAL_INTERVAL <= 10
    with open_store(durable_url + ("&" if "?" in durable_url else "?") + "seal_interval=0.2") as store:
        assert store.seal_interval == 0.2
        for n in range(5):
            store.save(open_counter(f"c:{n}"))
        _until(lambda: verify(store).unsealed_events == 0, 30, "the store to seal its appends")
        assert verify(store).sealed_position == store.max_position()


def test_closing_a_writing_store_seals_what_it_saved(durable_url: str) -> None:
    """Close seals the store's own appends at once, whatever its interval; a read-only store never seals."""
    with open_store(durable_url, seal_interval=3600) as store:
        open_account(store, "acct:a", deposits=(1,))
        assert verify(store).unsealed_events == 2
    with open_store(durable_url, read_only=True) as store:
        report = verify(store)
        assert (report.seals, report.unsealed_events) == (1, 0)
    with open_store(durable_url, seal_interval=0) as store:
        open_account(store, "acct:b")
    with open_store(durable_url, read_only=True) as store:
        assert verify(store).unsealed_events == 1  # seal_interval=0: nothing sealed on close
    with open_store(durable_url, read_only=True, seal_interval=0.05) as store:
        time.sleep(0.2)
    with open_store(durable_url, read_only=True) as store:
        assert verify(store).unsealed_events == 1  # a read-only store never seals


def test_a_failing_seal_never_fails_a_save_and_is_logged(
    durable_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A seal that fails (in the background and on close) is logged once as a warning; every save succeeds."""

    def broken(_store: Store) -> None:
        raise StoreUnavailable("sealing the history: the seals table is gone")

    monkeypatch.setattr(store_module, "seal", broken)
    with (
        caplog.at_level(logging.WARNING, logger="phaselog.seal"),
        open_store(durable_url, seal_interval=0.05) as store,
    ):
        for n in range(3):
            store.save(open_counter(f"c:{n}"))
            time.sleep(0.1)
    warnings = [r for r in caplog.records if r.name == "phaselog.seal" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "the seals table is gone" in warnings[0].getMessage()


def test_saves_between_two_seals_do_not_wake_the_sealing_thread() -> None:
    """Only the save that makes a seal due wakes the sealer: later saves before it seals leave it asleep."""
    sealed = threading.Event()
    sealer = AutoSealer(sealed.set, 60)
    sealer.saved(1)  # starts the thread, which waits for the interval
    time.sleep(0.2)
    for position in range(2, 22):
        sealer.saved(position)
        time.sleep(0.005)  # time for a woken thread to wait again, so each wake would count
    assert sealer.wakes == 0
    assert sealer.pending == 21
    assert not sealed.is_set()
    sealer.close()  # seals what is left
    assert sealed.is_set()


def test_a_seal_never_slows_a_save() -> None:
    """The store's sealer runs on its own thread: noting a save returns while a seal is still running."""
    release, running = threading.Event(), threading.Event()

    def slow_seal() -> None:
        running.set()
        release.wait(30)

    sealer = AutoSealer(slow_seal, 0.01)
    sealer.saved(1)
    assert running.wait(30)
    started = time.monotonic()
    sealer.saved(2)
    assert time.monotonic() - started < 0.5
    release.set()
    sealer.close()
    with pytest.raises(ValidationFailed):
        AutoSealer(slow_seal, -1)


def test_a_seal_taken_while_another_append_is_uncommitted_stops_below_it(
    make_url: Callable[[str], str],
) -> None:
    """A seal taken while an append is still in flight covers only what precedes it, so it stays true."""
    url = make_url("postgresql")
    with open_store(url, seal_interval=0) as store:
        base = store.save(open_counter("c:first")).position  # partitions and the stream index exist
        with held_append(store, url, "c:held") as conn:
            after = store.save(open_counter("c:after")).position
            sealed = store.seal()
            assert sealed is not None
            assert sealed.new
            assert sealed.horizon == base < after
            report = verify(store)
            assert (report.sealed_position, report.unsealed_events) == (base, 1)
            conn.commit()
        report = verify(store)
        assert report.ok, report.problems  # the held append landed inside no seal's range
        assert report.unsealed_events == 2
        second = store.seal()
        assert second is not None
        assert (second.id, second.horizon, second.events) == (2, after, 2)
        assert verify(store).ok
