"""phaselog's recorder contract: what every recorder adds to eventsourcing's, on memory, SQLite, PostgreSQL.

In the style of eventsourcing's own ``*RecorderTestCase`` suites (which
``test_recorder_contract.py`` runs against the same recorders): one base class
of test methods, :class:`PhaselogRecorderContract`, and one subclass per kind of
store that says how to open it. Each recorder is reached through ``open_store``
(what users get) and used only through
:class:`~phaselog.adapters.recorder_protocol.PhaselogRecorder`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from eventsourcing.persistence import RecordConflictError, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder

from phaselog.adapters import Store, open_store
from phaselog.adapters.audit.chain import GENESIS_DIGEST, STREAM_LINK, chain_digest
from phaselog.adapters.errors import translate_errors
from phaselog.adapters.recorders import ChainRow, PhaselogRecorder, phaselog_recorder
from phaselog.domain.errors import ConcurrencyConflict
from phaselog.runtime.horizon import PreparedTransaction
from phaselog.runtime.ports import LogRecord, StreamHead

TOPIC_A = "contract:Opened"
TOPIC_B = "contract:Noted"


def _event(stream_id: str, version: int, topic: str = TOPIC_A) -> StoredEvent:
    return StoredEvent(
        originator_id=stream_id,
        originator_version=version,
        topic=topic,
        state=f'{{"at":"{stream_id}@{version}"}}'.encode(),
    )


class PhaselogRecorderContract:
    """The test methods every phaselog recorder passes; subclasses say which store to open."""

    __test__ = False

    url = ""
    keeps_chain = True  # the memory store keeps no hash chain

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        """A fresh, empty store of this kind."""
        with open_store(self.url) as opened:
            yield opened

    @staticmethod
    def recorder(store: Store) -> PhaselogRecorder:
        return phaselog_recorder(store.app.recorder)

    @staticmethod
    def append(
        store: Store, events: Sequence[StoredEvent], opens: Mapping[str, bool] | None = None
    ) -> list[int]:
        """Append ``events`` in one call of the recorder, as a store's save does; their positions."""
        positions = store.app.recorder.insert_events(list(events), stream_open=dict(opens or {}))
        return list(positions or ())

    def fill(self, store: Store) -> list[int]:
        """Three streams over three appends: positions of a:1, b:1, a:2, c:1, a:3, b:2 (topics A and B)."""
        first = self.append(store, [_event("a", 1), _event("b", 1, TOPIC_B)])
        second = self.append(store, [_event("a", 2, TOPIC_B), _event("c", 1)], {"c": False})
        third = self.append(store, [_event("a", 3), _event("b", 2, TOPIC_B)], {"a": False})
        return first + second + third

    # -- the lean read of the global order ----------------------------------------------------------
    def test_records_come_in_global_order_with_what_was_appended(self, store: Store) -> None:
        """select_records returns every appended event once, by ascending position, fields as appended."""
        positions = self.fill(store)
        found = self.recorder(store).select_records(1, 100)
        assert [r.id for r in found] == positions == sorted(positions)
        assert all(isinstance(r, LogRecord) for r in found)
        expected = ["a", "b", "a", "c", "a", "b"], [1, 1, 2, 1, 3, 2]
        assert ([r.originator_id for r in found], [r.originator_version for r in found]) == expected
        assert found[0].topic == TOPIC_A
        assert bytes(found[0].state) == b'{"at":"a@1"}'

    def test_records_are_bounded_by_start_stop_limit_and_topics(self, store: Store) -> None:
        """The start and stop are inclusive, limit caps the page, topics filter it; the order stays global."""
        p = self.fill(store)
        recorder = self.recorder(store)
        assert [r.id for r in recorder.select_records(p[2], 100)] == p[2:]
        assert [r.id for r in recorder.select_records(p[1], 100, stop=p[3])] == p[1:4]
        assert [r.id for r in recorder.select_records(p[1], 2)] == p[1:3]
        assert [r.id for r in recorder.select_records(1, 100, topics=[TOPIC_B])] == [p[1], p[2], p[5]]
        assert [r.id for r in recorder.select_records(p[2], 1, topics=[TOPIC_A])] == [p[3]]
        assert recorder.select_records(p[5] + 1, 100) == []

    def test_final_flag_changes_nothing_on_a_quiet_store(self, store: Store) -> None:
        """With no append in flight every committed position is final: final=False reads the same rows."""
        self.fill(store)
        recorder = self.recorder(store)
        assert recorder.select_records(1, 100, final=False) == recorder.select_records(1, 100, final=True)

    # -- the stream index ---------------------------------------------------------------------------
    def test_stream_heads_follow_every_append(self, store: Store) -> None:
        """Each stream's head is its newest version and position, with the open flag its last save gave."""
        p = self.fill(store)
        heads = self.recorder(store).select_stream_heads("")
        assert heads == [
            StreamHead("a", 3, p[4], open=False),
            StreamHead("b", 2, p[5], open=True),
            StreamHead("c", 1, p[3], open=False),
        ]

    def test_stream_heads_by_prefix_and_open_only(self, store: Store) -> None:
        """Only ids starting with the prefix (not the ids next to it), and only open streams when asked."""
        ids = ["task:x", "task:y", "task;z", "tas", "taskz", "plan:q"]
        self.append(store, [_event(sid, 1) for sid in ids], {"task:y": False})
        recorder = self.recorder(store)
        assert [h.stream_id for h in recorder.select_stream_heads("task:")] == ["task:x", "task:y"]
        assert [h.stream_id for h in recorder.select_stream_heads("task:", open_only=True)] == ["task:x"]
        assert [h.stream_id for h in recorder.select_stream_heads("task")] == [
            "task:x",
            "task:y",
            "task;z",
            "taskz",
        ]
        assert [h.stream_id for h in recorder.select_stream_heads("")] == sorted(ids)
        assert recorder.select_stream_heads("nothing:") == []

    # -- positions and the horizon ------------------------------------------------------------------
    def test_max_position_is_the_newest_position(self, store: Store) -> None:
        """The newest position is 0 (or None) when empty, then the position of the last append."""
        recorder = self.recorder(store)
        assert not recorder.max_notification_id()
        p = self.fill(store)
        assert recorder.max_notification_id() == p[-1]

    def test_horizon_of_a_quiet_store_is_its_newest_position(self, store: Store) -> None:
        """No append in flight: the horizon is the newest position, nothing is held back or in flight."""
        recorder = self.recorder(store)
        assert recorder.positions() == (0, 0, 0)
        assert recorder.horizon_position() == 0
        p = self.fill(store)
        assert recorder.horizon_position() == p[-1]
        assert recorder.positions() == (p[-1], p[-1], 0)
        assert recorder.in_flight() == []
        assert all(isinstance(t, PreparedTransaction) for t in recorder.prepared())
        horizon = store.horizon()
        assert (horizon.position, horizon.head, horizon.held_back) == (p[-1], p[-1], 0)
        assert (horizon.in_flight, horizon.holder, horizon.stall, horizon.lag_seconds) == (
            (),
            None,
            None,
            0.0,
        )

    # -- the hash chain -----------------------------------------------------------------------------
    def test_chain_rows_link_each_event_to_the_previous_of_its_stream(self, store: Store) -> None:
        """Each event has one chain row, whose digest covers it and its stream's previous digest."""
        p = self.fill(store)
        rows = self.recorder(store).select_chain(1, 100)
        if not self.keeps_chain:
            assert rows == []
            return
        assert [r.position for r in rows] == p
        assert all(isinstance(r, ChainRow) and r.link == STREAM_LINK for r in rows)
        previous: dict[str, str] = {}
        for row, record in zip(rows, self.recorder(store).select_records(1, 100), strict=True):
            assert (row.stream_id, row.version) == (record.originator_id, record.originator_version)
            expected = chain_digest(
                previous.get(row.stream_id, GENESIS_DIGEST),
                row.position,
                row.stream_id,
                row.version,
                record.topic,
                bytes(record.state),
            )
            assert row.digest == expected
            previous[row.stream_id] = row.digest

    def test_chain_rows_are_bounded_by_start_stop_and_limit(self, store: Store) -> None:
        """The start and stop are inclusive and limit caps the page of chain rows, as for records."""
        p = self.fill(store)
        recorder = self.recorder(store)
        expect = (lambda got: got) if self.keeps_chain else (lambda _got: [])
        assert [r.position for r in recorder.select_chain(p[2], 100)] == expect(p[2:])
        assert [r.position for r in recorder.select_chain(p[1], 100, stop=p[3])] == expect(p[1:4])
        assert [r.position for r in recorder.select_chain(p[1], 2)] == expect(p[1:3])

    # -- refusals -----------------------------------------------------------------------------------
    def test_a_conflicting_append_is_refused_and_writes_nothing(self, store: Store) -> None:
        """An append reusing a stream version is a ConcurrencyConflict and writes none of its events."""
        self.fill(store)
        recorder = self.recorder(store)
        before = (
            recorder.select_records(1, 100),
            recorder.select_stream_heads(""),
            recorder.select_chain(1, 100),
            recorder.max_notification_id(),
        )
        batch = [_event("d", 1), _event("a", 4), _event("b", 2)]  # b@2 exists: the whole batch is refused
        with pytest.raises(RecordConflictError):
            self.append(store, batch, {"d": True})
        with pytest.raises(ConcurrencyConflict), translate_errors("appending"):
            self.append(store, batch)
        after = (
            recorder.select_records(1, 100),
            recorder.select_stream_heads(""),
            recorder.select_chain(1, 100),
            recorder.max_notification_id(),
        )
        assert after == before
        assert recorder.select_stream_heads("d") == []

    def test_a_conflict_within_one_append_is_refused_and_writes_nothing(self, store: Store) -> None:
        """Two events of one append with the same stream version: refused, nothing of the append written."""
        recorder = self.recorder(store)
        with pytest.raises(ConcurrencyConflict), translate_errors("appending"):
            self.append(store, [_event("e", 1), _event("f", 1), _event("f", 1, TOPIC_B)])
        assert recorder.select_records(1, 100) == []
        assert recorder.select_stream_heads("") == []
        assert recorder.select_chain(1, 100) == []
        assert not recorder.max_notification_id()


class TestMemoryRecorder(PhaselogRecorderContract):
    """The contract on the memory store's recorder (no hash chain)."""

    __test__ = True

    url = "memory://"
    keeps_chain = False


class TestSQLiteRecorder(PhaselogRecorderContract):
    """The contract on phaselog's SQLite recorder."""

    __test__ = True

    @pytest.fixture(autouse=True)
    def _fresh_file(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / (uuid.uuid4().hex + '.db')}"


class TestPostgresRecorder(PhaselogRecorderContract):
    """The contract on phaselog's PostgreSQL recorder."""

    __test__ = True

    @pytest.fixture(autouse=True)
    def _fresh_schema(self, pg_dsn: str) -> None:
        self.url = f"{pg_dsn}?schema=rc_{uuid.uuid4().hex[:12]}"


def test_a_recorder_phaselog_did_not_make_is_refused_as_one() -> None:
    """phaselog_recorder refuses eventsourcing's plain recorder (no stream index, horizon or chain)."""
    with pytest.raises(TypeError, match="not a phaselog recorder"):
        phaselog_recorder(POPOApplicationRecorder())
