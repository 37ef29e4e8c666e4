"""Read models at different positions, rebuilds with concurrent writes, shape changes (public API only)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pytest

from phaselog.adapters import Store
from phaselog.projections import Projections
from phaselog.projections.base import EventData, Projection, Rows

from support_events import Added, Counter, Opened, open_counter


class Tally(Projection):
    """Per counter: events folded, last version folded, total; a double fold breaks events == last_version."""

    name: ClassVar[str] = "pos_tally"
    key: ClassVar[str] = "counter"
    columns: ClassVar[Mapping[str, str]] = {
        "counter": "text",
        "events": "int",
        "last_version": "int",
        "total": "int",
    }
    topics: ClassVar[frozenset[str] | None] = frozenset({Opened.TOPIC, Added.TOPIC})

    def apply(self, rows: Rows, event: EventData) -> None:
        row = rows.get(event.stream_id) or {"counter": event.stream_id, "events": 0, "total": 0}
        row["events"] += 1
        row["last_version"] = event.version
        row["total"] += int(event.data.get("amount", 0))
        self.extend(row, event)
        rows.put(event.stream_id, row)

    def extend(self, row: dict[str, Any], event: EventData) -> None:
        """Hook for the changed-shape variant below."""


class OtherTally(Tally):
    """The same fold under another name: a second read model added later."""

    name: ClassVar[str] = "pos_other"


class TallyV2(Tally):
    """Tally after a shape change: one more column, filled from every event."""

    columns: ClassVar[Mapping[str, str]] = {**Tally.columns, "biggest": "int"}

    def extend(self, row: dict[str, Any], event: EventData) -> None:
        row["biggest"] = max(int(row.get("biggest") or 0), int(event.data.get("amount", 0)))


def _fill(store: Store, counters: int, adds: int, start: int = 0) -> None:
    for c in range(start, start + counters):
        counter = open_counter(f"counter:{c}")
        for amount in range(1, adds + 1):
            counter.add(amount)
        store.save(counter)


def _add(store: Store, stream_id: str, *amounts: int) -> None:
    counter = store.load(stream_id, Counter)
    for amount in amounts:
        counter.add(amount)
    store.save(counter)


def _truth(store: Store, projection: Projection) -> dict[str, dict[str, Any]]:
    """The rows a fold of the whole log gives, in memory."""
    views = Projections(store, [])
    try:
        events = [views.event_data(n) for n in store.notifications(limit=100_000)]
    finally:
        views.close()
    return projection.fold(events)


def _table(views: Projections, name: str) -> dict[str, dict[str, Any]]:
    projection = views[name].projection
    return {row[projection.key]: projection.normalise(row) for row in views[name].list()}


@pytest.fixture
def opened() -> Iterator[list[Projections]]:
    """Projections objects opened by a test, closed at its end."""
    made: list[Projections] = []
    yield made
    for views in made:
        views.close()


def _open(opened: list[Projections], store: Store, *projections: Projection) -> Projections:
    views = Projections(store, list(projections), batch_size=7)
    opened.append(views)
    return views


def test_a_read_model_added_to_a_populated_store_folds_the_whole_log_once(
    store: Store, opened: list[Projections]
) -> None:
    """A new read model starts at 0 beside one far ahead: each ends with every event folded exactly once."""
    _fill(store, 4, 5)
    first = _open(opened, store, Tally())
    first.catch_up()
    assert first.position() == store.max_position()
    ahead_at = store.max_position()
    _fill(store, 2, 3, start=4)
    _add(store, "counter:0", 100)
    both = _open(opened, store, Tally(), OtherTally())
    assert both.position() == 0  # the slowest read model (the new one) has folded nothing yet
    both.wait(ahead_at, timeout=30)  # only the new one was behind ahead_at
    both.catch_up()
    assert both.position() == store.max_position()
    truth = _truth(store, Tally())
    assert truth["counter:0"] == {"counter": "counter:0", "events": 7, "last_version": 7, "total": 115}
    assert _table(both, "pos_tally") == truth
    assert _table(both, "pos_other") == truth
    assert both.catch_up() == 0  # nothing left: neither read model folds anything again


def test_events_written_during_a_rebuild_are_folded_exactly_once(
    store: Store, opened: list[Projections]
) -> None:
    """Events appended while a rebuild replays the log end up in the swapped-in table once, not twice."""
    _fill(store, 3, 4)
    views = _open(opened, store, Tally())
    views.catch_up()
    calls: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        if not calls:  # the replay has started: write more, as a live service would
            _add(store, "counter:1", 50, 60)
            _fill(store, 1, 2, start=3)
        calls.append((done, total))

    views.rebuild("pos_tally", progress=progress)
    truth = _truth(store, Tally())
    assert truth["counter:1"]["events"] == 7
    assert _table(views, "pos_tally") == truth
    views.catch_up()
    assert _table(views, "pos_tally") == truth
    assert views.position() == store.max_position()
    assert calls[-1][0] == calls[-1][1]  # the last report is "all done"


def test_a_changed_read_model_shape_is_rebuilt_when_projections_open(
    store: Store, opened: list[Projections]
) -> None:
    """Opening Projections with a changed column set rebuilds that read model from the whole log."""
    _fill(store, 3, 4)
    old = _open(opened, store, Tally())
    old.catch_up()
    assert "biggest" not in next(iter(_table(old, "pos_tally").values()))
    old.close()
    new = _open(opened, store, TallyV2())
    new.catch_up()
    assert _table(new, "pos_tally") == _truth(store, TallyV2())
    assert {row["biggest"] for row in _table(new, "pos_tally").values()} == {4}
