"""The read side's fast paths: the lean log reader, the complete row cache, the paused collector."""

from __future__ import annotations

import gc
import threading

import pytest
from projections_support import watch_reads
from test_projections_positions import Tally, _table, _truth

from phaselog.adapters import Store
from phaselog.domain.errors import ValidationFailed
from phaselog.projections import Projections
from phaselog.projections.base import EventData
from phaselog.projections.batch import RowCache
from phaselog.projections.gcpause import paused_gc

from support_events import Added, Counter, Opened, open_counter


def _interleaved(store: Store, counters: int, rounds: int, start: int = 0, *, new: bool = True) -> None:
    """Events of many counters interleaved in the log, so rows are touched again in later batches."""
    streams = [f"counter:{c}" for c in range(start, start + counters)]
    for sid in streams if new else ():
        store.save(open_counter(sid))
    for amount in range(1, rounds + 1):
        for sid in streams:
            counter = store.load(sid, Counter)
            counter.add(amount)
            store.save(counter)


def test_records_are_the_notifications_as_plain_rows(store: Store) -> None:
    """store.records reads the events, order, stop and topic filter of notifications, as tuples."""
    _interleaved(store, 3, 2)
    notes = store.notifications(2, 100)
    records = store.records(2, 100)
    assert [tuple(r) for r in records] == [
        (n.id, str(n.originator_id), n.originator_version, n.topic, n.state) for n in notes
    ]
    assert all(isinstance(r.state, bytes) for r in records)
    last = notes[-1].id
    assert [r.id for r in store.records(1, 4, stop=3)] == [1, 2, 3]
    added = store.records(1, 100, stop=last - 1, topics=[Added.TOPIC])
    assert [r.id for r in added] == [n.id for n in notes if n.topic == Added.TOPIC and n.id < last]
    assert store.records(last + 1, 10) == []


@pytest.mark.parametrize(
    ("start", "limit", "stop", "topics"),
    [
        (1, -1, None, ()),
        ("1", 10, None, ()),
        (True, 10, None, ()),
        (1, 10, 2.5, ()),
        (1, 10, None, "topic"),
        (1, 10, None, [1]),
    ],
)
def test_a_malformed_read_of_the_log_is_refused_alike(
    store: Store, start: object, limit: object, stop: object, topics: object
) -> None:
    """A negative limit, non-int positions or a bare-str topic raise ValidationFailed on every store."""
    _interleaved(store, 1, 1)
    with pytest.raises(ValidationFailed):
        store.records(start, limit, stop=stop, topics=topics)  # type: ignore[arg-type]
    if topics == ():
        with pytest.raises(ValidationFailed):
            store.notifications(start, limit, stop=stop)  # type: ignore[arg-type]
    assert len(store.records(1, 0)) == 0  # a zero limit is an empty page, not an error


def test_an_evicting_cache_still_folds_every_event_once(store: Store, views_made: list[Projections]) -> None:
    """A two-row cache over interleaved streams (rows evicted, then met again) gives the fold's table."""
    _interleaved(store, 6, 4)
    views = Projections(store, [Tally()], batch_size=5, cache_rows=2)
    views_made.append(views)
    views.catch_up()
    assert _table(views, "pos_tally") == _truth(store, Tally())
    _interleaved(store, 2, 3, start=6)
    _interleaved(store, 8, 1, new=False)
    views.catch_up()
    assert _table(views, "pos_tally") == _truth(store, Tally())
    views.rebuild("pos_tally")
    assert _table(views, "pos_tally") == _truth(store, Tally())


def test_two_runners_taking_turns_update_rows_the_other_wrote(
    store: Store, views_made: list[Projections]
) -> None:
    """A runner whose complete cache another runner overtook updates (never re-inserts) the rows."""
    first = Projections(store, [Tally()], batch_size=4)
    second = Projections(store, [Tally()], batch_size=4)
    views_made.extend([first, second])
    _interleaved(store, 3, 2)
    first.catch_up()  # first's cache: complete (the table was empty)
    _interleaved(store, 3, 1, new=False)
    second.catch_up()  # writes rows first has cached: first must notice
    _interleaved(store, 3, 1, new=False)
    first.catch_up()
    assert _table(first, "pos_tally") == _truth(store, Tally())
    assert _table(second, "pos_tally") == _truth(store, Tally())


def test_a_complete_cache_never_calls_an_evicted_key_absent() -> None:
    """After thousands of evictions no evicted key is called absent; new keys mostly are."""
    cache = RowCache(10)
    cache.complete = True
    rows = {f"k{i}": {"id": f"k{i}"} for i in range(5000)}
    for i in range(0, 5000, 100):
        cache.commit({k: rows[k] for k in list(rows)[i : i + 100]}, (i, 0))
    assert len(cache.rows) == 10
    assert not any(cache.known_absent(f"k{i}") for i in range(5000))
    fresh = [f"new{i}" for i in range(1000)]
    assert sum(cache.known_absent(k) for k in fresh) > 950  # a few false "maybe" cost only a query
    cache.clear()
    assert not cache.known_absent("new0")  # an incomplete cache knows nothing


def test_the_collector_is_paused_across_threads_and_restored_once() -> None:
    """Overlapping pauses in two threads keep gc off until the last ends; gc that was off stays off."""
    assert gc.isenabled()
    inside = threading.Event()
    leave = threading.Event()

    def other() -> None:
        with paused_gc():
            inside.set()
            leave.wait(10)

    worker = threading.Thread(target=other)
    with paused_gc():
        worker.start()
        assert inside.wait(10)
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread's batch is still folding
    leave.set()
    worker.join(10)
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # it was off before: the pause does not turn it on
    finally:
        gc.enable()
    with paused_gc(enabled=False):
        assert gc.isenabled()


@pytest.mark.parametrize("pause", [True, False])
def test_pages_of_the_log_are_read_with_the_collector_paused_unless_told_not_to(
    store: Store, *, pause: bool
) -> None:
    """Every page a runner reads is read with gc off (pause_gc=True), and gc is back on afterwards."""
    _interleaved(store, counters=4, rounds=3)
    views = Projections(store, [Tally()], batch_size=5, pause_gc=pause)
    seen: list[bool] = []
    watch_reads(views, lambda *_, **__: seen.append(gc.isenabled()))
    try:
        views.catch_up()
        views.rebuild("pos_tally")
    finally:
        views.close()
    assert len(seen) > 4  # many pages
    assert not any(seen) if pause else all(seen)
    assert gc.isenabled()


def test_event_data_is_immutable() -> None:
    """EventData is a read-only record: a fold cannot rebind its fields."""
    event = EventData(1, Opened.TOPIC, "counter:1", 1, {"label": "c"})
    with pytest.raises(AttributeError):
        event.position = 2  # type: ignore[misc]
    assert event.timestamp is None
