from __future__ import annotations

import asyncio
import io
import logging
import math
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import eventsourcing.persistence as es_persistence
import orjson
import psycopg
import pytest
from eventsourcing.persistence import StoredEvent
from pydantic import BaseModel
from task_helpers import ScriptedRunner

from phaselog.adapters import Store, export_jsonl, open_store
from phaselog.adapters.codec import OrjsonTranscoder, PydanticMapper
from phaselog.adapters.errors import translate_errors
from phaselog.domain import (
    MAX_ID_LENGTH,
    InvalidStreamId,
    PluginPhase,
    PluginStateUnreadable,
    StoreUnavailable,
    ValidationFailed,
)
from phaselog.domain.encoding import load_json
from phaselog.domain.plan import StateWritten
from phaselog.domain.plugin_state import encode_b64
from phaselog.runtime import Plan, RecoverableState, TaskController

BAD_IDS = ["", "a\x00b", "x" * (MAX_ID_LENGTH + 1), "tab\tid", "new\nline", "del\x7f", "c1\x85", "lone\ud800"]
GOOD_IDS = ["x" * MAX_ID_LENGTH, "q'uote\";--", "🦄 astral id", "spaces are fine", "ünïcode/ok:1"]
TEXT = "nul\x00 tab\t newline\n astral 🦄 quote' backslash\\ \ufdd0json:marker"


class Reading(BaseModel):
    """A state holding the floats JSON alone cannot."""

    values: list[float]
    extra: dict[str, Any] = {}
    big: int = 0
    label: str = ""


def _writes_nothing(store: Store, action: Any) -> None:
    before = store.max_position()
    with pytest.raises(InvalidStreamId):
        action()
    assert store.max_position() == before


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_bad_ids_are_refused_everywhere_before_any_write(store: Store, bad: str) -> None:
    """Every entry point refuses an empty, too long or control-character id, writing nothing."""
    _writes_nothing(store, lambda: store.plugins.machine(bad))
    _writes_nothing(store, lambda: store.plugins.handle(bad, lambda mgr: mgr.put(1, Reading(values=[]))))
    _writes_nothing(store, lambda: Plan(store, bad))
    _writes_nothing(
        store,
        lambda: RecoverableState(
            default_state=Reading(values=[]),
            persist_state_key=bad,
            persistence_enabled=True,
            logger=logging.getLogger("t"),
            store=store,
        ),
    )
    with TaskController(store, "ctl", ScriptedRunner(), lease=timedelta(seconds=5)) as ctl:
        _writes_nothing(store, lambda: ctl.launch_task(bad))
        _writes_nothing(store, lambda: ctl.task_status(bad))
        _writes_nothing(store, lambda: ctl.cancel_task(bad))
    _writes_nothing(store, lambda: TaskController(store, bad, ScriptedRunner()).close())


def test_a_non_string_id_is_refused(store: Store) -> None:
    """An id that is not a str raises InvalidStreamId, not a TypeError or a driver error."""
    _writes_nothing(store, lambda: store.plugins.machine(42))  # type: ignore[arg-type]


@pytest.mark.parametrize("good", GOOD_IDS, ids=repr)
def test_ids_within_the_rule_are_stored_and_listed_identically(store: Store, good: str) -> None:
    """Ids up to 200 characters with quotes, astral characters and spaces round-trip through the store."""
    store.plugins.machine(good).transition_to(PluginPhase.INSTALLING, "ok")
    assert good in store.plugins.plugin_ids()
    assert store.plugins.machine(good).phase is PluginPhase.INSTALLING


def test_text_with_nul_reads_back_identical_from_events_snapshots_projections_and_export(
    store_url: str,
) -> None:
    """A reason holding NUL, astral characters and the escape marker is identical everywhere it is read."""
    with open_store(store_url, snapshot_interval=2) as store:
        machine = store.plugins.machine("p")
        machine.transition_to(PluginPhase.INSTALLING, TEXT)
        machine.transition_to(PluginPhase.INSTALLED, TEXT)  # crosses the snapshot interval
        assert [t.reason for t in machine.history()] == [TEXT, TEXT]
        assert store.plugins.machine("p").history()[-1].reason == TEXT  # loaded from the snapshot
        store.projections.wait(store.max_position(), timeout=30)
        assert store.projections.plugin_phases.get("p")["reason"] == TEXT
        assert [row["plugin_id"] for row in store.projections.plugin_phases.list(reason=TEXT)] == ["p"]
        out = io.BytesIO()
        export_jsonl(store, out)
        lines = [load_json(line) for line in out.getvalue().splitlines()]
        assert [line["data"]["reason"] for line in lines if "reason" in line["data"]][-2:] == [TEXT, TEXT]


def test_non_finite_floats_and_big_ints_round_trip_through_plugin_state_and_snapshots(store_url: str) -> None:
    """Plugin state with nan, inf, -inf and a 90-bit integer reads back equal, also from a snapshot."""
    state = Reading(values=[math.inf, -math.inf, 0.1], extra={"n": [math.nan]}, big=2**90, label=TEXT)
    with open_store(store_url, snapshot_interval=1) as store:
        store.plugins.handle("p", lambda mgr: mgr.put(3, state))
        version, got = store.plugins.handle("p", lambda mgr: mgr.get(Reading))
    assert version == 3
    assert got is not None
    assert got.values == [math.inf, -math.inf, 0.1]
    assert math.isnan(got.extra["n"][0])
    assert (got.big, got.label) == (2**90, TEXT)


def test_recoverable_state_with_non_finite_floats_recovers_after_a_restart(durable_url: str) -> None:
    """A RecoverableState holding nan and infinities initializes again, equal, in a new store instance."""

    async def run(url: str, value: Reading | None) -> Reading:
        with open_store(url) as store:
            state = RecoverableState(
                default_state=Reading(values=[]),
                persist_state_key="readings",
                persistence_enabled=True,
                logger=logging.getLogger("t"),
                store=store,
            )
            current = await state.initialize()
            if value is not None:
                current.values, current.extra = value.values, value.extra
                await state.persist_state()
            await state.teardown()
            return current.model_copy(deep=True)

    asyncio.run(run(durable_url, Reading(values=[math.nan, math.inf], extra={"x": -math.inf})))
    recovered = asyncio.run(run(durable_url, None))
    assert math.isnan(recovered.values[0])
    assert recovered.values[1] == math.inf
    assert recovered.extra == {"x": -math.inf}


def test_a_lone_surrogate_in_text_is_refused_and_writes_nothing(store: Store) -> None:
    """A reason holding a lone surrogate raises ValidationFailed and records nothing."""
    machine = store.plugins.machine("p")
    before = store.max_position()
    with pytest.raises(ValidationFailed):
        machine.transition_to(PluginPhase.INSTALLING, "lone \ud800")
    assert store.max_position() == before
    assert machine.phase is PluginPhase.UNINSTALLED


def test_a_driver_data_error_is_a_validation_failure(pg_dsn: str) -> None:
    """A psycopg DataError (NUL in a text parameter, on a real server) becomes ValidationFailed."""
    with (
        psycopg.connect(pg_dsn) as conn,
        pytest.raises(ValidationFailed) as caught,
        translate_errors("writing text"),
    ):
        conn.execute("SELECT %s::text", ("a\x00b",))
    assert isinstance(caught.value.__cause__, psycopg.DataError)


def test_sqlite_data_errors_are_validation_failures() -> None:
    """SQLite DataError (a value over its length limit) and OverflowError (int over 64 bits) are bad input."""
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 10)
        with pytest.raises(ValidationFailed) as too_long, translate_errors("writing text"):
            conn.execute("SELECT ?", ("x" * 100,))
    assert isinstance(too_long.value.__cause__, sqlite3.DataError)
    with (
        closing(sqlite3.connect(":memory:")) as conn,
        pytest.raises(ValidationFailed) as too_big,
        translate_errors("writing an int"),
    ):
        conn.execute("SELECT ?", (2**70,))
    assert isinstance(too_big.value.__cause__, OverflowError)


def _as_eventsourcing_does(conn: psycopg.Connection[Any], sql: str, params: tuple[object, ...]) -> None:
    """Run ``sql``, wrapping a psycopg OperationalError the way eventsourcing's PostgresDatastore does."""
    try:
        conn.execute(sql.encode(), params)
    except psycopg.OperationalError as exc:
        raise es_persistence.OperationalError(str(exc)) from exc


def test_a_program_limit_wrapped_by_eventsourcing_is_a_validation_failure(pg_dsn: str) -> None:
    """A value too large for a btree index (ProgramLimitExceeded), wrapped by eventsourcing, is bad input."""
    big = "".join(f"{i:x}" for i in range(4000))  # incompressible enough to break the 2704-byte index limit
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TEMP TABLE limited (value text PRIMARY KEY)")
        with pytest.raises(ValidationFailed) as caught, translate_errors("writing a key"):
            _as_eventsourcing_does(conn, "INSERT INTO limited VALUES (%s)", (big,))
    assert isinstance(caught.value.__cause__, es_persistence.OperationalError)
    assert isinstance(caught.value.__cause__.__cause__, psycopg.errors.ProgramLimitExceeded)


def _connect_wrapped(conninfo: str) -> None:
    try:
        psycopg.connect(conninfo).close()
    except psycopg.OperationalError as exc:
        raise es_persistence.OperationalError(str(exc)) from exc


def test_an_unreachable_database_is_still_store_unavailable() -> None:
    """A connection failure (no data involved), wrapped as eventsourcing does, stays StoreUnavailable."""
    with pytest.raises(StoreUnavailable), translate_errors("connecting"):
        _connect_wrapped("host=127.0.0.1 port=9 connect_timeout=2")


def test_a_lone_surrogate_in_a_dict_key_is_refused_not_replaced() -> None:
    """Regression (found by the property tests): pydantic's JSON mode made a surrogate key U+FFFD."""
    event = StateWritten(
        originator_id="plan:p",
        originator_version=2,
        timestamp=datetime.now(UTC),
        run=0,
        values={"k\udc00": 1},
    )
    with pytest.raises(ValidationFailed, match="cannot be encoded"):
        PydanticMapper(transcoder=OrjsonTranscoder()).to_stored_event(event)


def test_events_written_before_the_policy_still_read(store: Store) -> None:
    """Plain JSON written by orjson (nan already lost as null) decodes; nothing in it is refused."""
    store.plugins.machine("old").transition_to(PluginPhase.INSTALLING, "new")
    lost = orjson.dumps({"values": [math.nan, 1.5], "label": "x"})  # orjson wrote nan as null
    old = StoredEvent(
        originator_id="plugin:old",
        originator_version=3,
        topic="phaselog.plugin.StateWritten",
        state=orjson.dumps(
            {"timestamp": "2025-01-01T00:00:00Z", "data": encode_b64(lost), "state_version": 1}
        ),
    )
    store.app.recorder.insert_events([old])

    class OldReading(BaseModel):
        """The model the old data fits: a lost nan reads as None."""

        values: list[float | None]
        label: str

    version, got = store.plugins.handle("old", lambda mgr: mgr.get(OldReading))
    assert (version, got) == (1, OldReading(values=[None, 1.5], label="x"))
    with pytest.raises(PluginStateUnreadable):  # the nan was lost when written; it cannot come back
        store.plugins.handle("old", lambda mgr: mgr.get(Reading))


def test_old_snapshots_and_values_without_non_finite_literals_decode() -> None:
    """load_json reads orjson's output byte for byte the same as before (ints, floats, text, null)."""
    value = {"i": 2**62, "f": 0.1, "t": "é\x00🦄", "n": None, "l": [1, 2.5, True]}
    assert load_json(orjson.dumps(value)) == value


def _state(store: Store, key: str, kvs: str) -> RecoverableState[Reading]:
    return RecoverableState(
        default_state=Reading(values=[]),
        persist_state_key=key,
        persistence_enabled="explicit_only",
        persist_state_kvs_name=kvs,
        logger=logging.getLogger("t"),
        store=store,
    )


def test_states_whose_names_share_a_stream_id_never_read_each_other(store: Store) -> None:
    """Key 'c' of store 'a:b' and key 'b:c' of store 'a' share a stream: the second is refused, not mixed."""

    async def run() -> None:
        first = _state(store, "c", "a:b")
        (await first.initialize()).label = "first"
        await first.persist_state()
        second = _state(store, "b:c", "a")
        assert second.stream_id == first.stream_id
        before = store.max_position()
        with pytest.raises(InvalidStreamId, match="holds key 'c' of key-value store 'a:b'"):
            await second.initialize()
        assert store.max_position() == before
        assert (await _state(store, "c", "a:b").initialize()).label == "first"

    asyncio.run(run())


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_bad_key_value_store_names_and_ids_are_refused_before_any_write(store: Store, bad: str) -> None:
    """persist_state_kvs_name and persist_state_kvs_id follow the stream-id rule too."""

    def make(kvs_name: str | None, kvs_id: str | None) -> RecoverableState[Reading]:
        return RecoverableState(
            default_state=Reading(values=[]),
            persist_state_key="k",
            persistence_enabled=True,
            persist_state_kvs_name=kvs_name,
            persist_state_kvs_id=kvs_id,
            logger=logging.getLogger("t"),
            store=store,
        )

    _writes_nothing(store, lambda: make(bad, None))
    _writes_nothing(store, lambda: make(None, bad))


def test_nul_is_escaped_inside_the_binary_json_payload(store: Store) -> None:
    """A NUL in a reason is stored as a JSON escape in the event's bytes, never as a raw NUL byte."""
    store.plugins.machine("nul").transition_to(PluginPhase.INSTALLING, "a\x00b")
    (created, changed) = store.notifications()
    assert created.originator_id == changed.originator_id == "plugin:nul"
    assert b"a\\u0000b" in changed.state
    assert b"\x00" not in changed.state


@pytest.mark.parametrize("metadata", [{"k": "lone \ud800"}, {"lone \udc00": 1}, '"lone \ud800"'], ids=repr)
def test_task_metadata_with_a_lone_surrogate_is_refused_at_launch(store: Store, metadata: object) -> None:
    """launch_task refuses metadata with a lone surrogate (dict value, key or JSON text), writing nothing."""
    with TaskController(store, "ctl", ScriptedRunner(), lease=timedelta(seconds=5)) as ctl:
        before = store.max_position()
        with pytest.raises(ValidationFailed):
            ctl.launch_task("t", metadata=metadata)
        assert store.max_position() == before
        assert ctl.list_tasks() == []
