"""Crypto-shredding on every store: values sealed at rest, erased by destroying a key, chains intact."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import orjson
import pytest
from cli_support import assert_usage_error, json_out, phaselog
from eventsourcing.persistence import StoredEvent
from privacy_support import EMAIL, KEY_A, KEY_B, STREET, Customer, Customers, Preferences, sign
from pydantic import BaseModel
from serve_support import fetch, served

from phaselog.adapters import Store, open_store
from phaselog.adapters.audit.archive import archive
from phaselog.adapters.audit.archive_file import read_archive
from phaselog.adapters.audit.history import export_jsonl, timeline, verify
from phaselog.adapters.crypto import MASTER_KEY_ENV, MasterKey
from phaselog.aio import open_async_store
from phaselog.domain.errors import KeyUnavailable, NotFound, SubjectErased, ValidationFailed
from phaselog.domain.personal import Redacted
from phaselog.projections import Projections
from phaselog.projections.base import EventDecoder
from phaselog.runtime.ports import LogRecord
from phaselog.runtime.recoverable import SyncRecoverableState

from conftest import raw_execute


@pytest.fixture
def keyed(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A store of each kind opened with master key A."""
    monkeypatch.setenv(MASTER_KEY_ENV, KEY_A)
    with open_store(store_url, snapshot_interval=1) as store:
        yield store


def _raw(store: Store, stream: str) -> list[bytes]:
    return [bytes(e.state) for e in store.app.recorder.select_events(stream)]


def test_personal_values_are_sealed_at_rest_and_read_back(keyed: Store) -> None:
    """The stored bytes hold no personal value; load, timeline and export give them back."""
    customer = sign("person-1")
    customer.rename("annie")
    keyed.save(customer)
    stored = b"".join(_raw(keyed, "customer:1"))
    for secret in (EMAIL, STREET, "annie"):
        assert secret.encode() not in stored
    assert b'"country":"FR"' in stored  # what is not marked stays in the clear
    loaded = keyed.load("customer:1", Customer)
    assert (loaded.email, loaded.nickname) == (EMAIL, "annie")
    first = timeline(keyed, "customer:1")[0].data
    assert (first["email"], first["address"]["street"]) == (EMAIL, STREET)
    out = BytesIO()
    export_jsonl(keyed, out)
    assert EMAIL.encode() in out.getvalue()
    assert keyed.app.snapshots is None or keyed.app.snapshots.recorder.select_events("customer:1") == []


def test_erasure_redacts_every_reader_and_records_no_personal_data(keyed: Store) -> None:
    """Erased: load, timeline, export and read models show a redacted marker; the record names streams."""
    keyed.save(sign("person-1"))
    keyed.save(sign("person-2", "customer:2"))
    views = Projections(keyed, [Customers()])
    views.catch_up()
    assert views["customers"].get("customer:1")["email"] == EMAIL  # type: ignore[index]
    done = keyed.erase(
        "person-1", reason="GDPR art. 17, ticket 42", requested_by="dpo@corp", projections=views
    )
    assert (done.recorded, done.streams, done.requested_by) == (True, ["customer:1"], "dpo@corp")
    assert done.scrubbed == {"customers": 2}
    assert keyed.load("customer:1", Customer).email == Redacted("person-1")
    assert keyed.load("customer:2", Customer).email == EMAIL  # another subject is untouched
    assert timeline(keyed, "customer:1")[0].data["email"] == {"$redacted": "person-1"}
    assert timeline(keyed, "customer:1")[0].data["address"] == {
        "street": {"$redacted": "person-1"},
        "country": "FR",
    }
    out = BytesIO()
    export_jsonl(keyed, out)
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    erased = [x for x in lines if x["stream_id"] == "customer:1"]
    assert erased
    assert EMAIL not in orjson.dumps(erased).decode()
    assert EMAIL in orjson.dumps([x for x in lines if x["stream_id"] == "customer:2"]).decode()
    assert views["customers"].get("customer:1")["email"] == {"$redacted": "person-1"}  # type: ignore[index]
    record = [x for x in lines if x["stream_id"] == "erasure:person-1"]
    assert [r["data"]["reason"] for r in record] == ["GDPR art. 17, ticket 42"]
    assert EMAIL not in orjson.dumps(record).decode()
    views.close()


def test_erasing_twice_records_once_and_unknown_subjects_are_not_found(keyed: Store) -> None:
    """A second erase answers the first record, writing nothing; unknown subjects or no reason are refused."""
    keyed.save(sign("person-1"))
    first = keyed.erase("person-1", reason="request")
    head = keyed.max_position()
    again = keyed.erase("person-1", reason="again")
    assert (again.recorded, again.reason, again.erased_at) == (False, "request", first.erased_at)
    assert keyed.max_position() == head
    with pytest.raises(NotFound, match="nobody"):
        keyed.erase("nobody", reason="request")
    with pytest.raises(ValidationFailed, match="reason"):
        keyed.erase("person-1", reason=" ")


def test_an_erased_subject_takes_no_new_personal_data(keyed: Store) -> None:
    """Writing personal data of an erased subject raises SubjectErased and writes nothing."""
    keyed.save(sign("person-1"))
    keyed.erase("person-1", reason="request")
    head = keyed.max_position()
    with pytest.raises(SubjectErased, match="person-1"):
        keyed.save(sign("person-1", "customer:9"))
    assert keyed.max_position() == head


def test_without_the_master_key_nothing_personal_is_written_or_read(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No master key: a personal write raises KeyUnavailable, writing nothing; a sealed read raises it too."""
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
    with open_store(store_url) as store:
        head = store.max_position()
        with pytest.raises(KeyUnavailable, match=MASTER_KEY_ENV):
            store.save(sign("person-1"))
        assert store.max_position() == head
        store.keys.use(MasterKey(KEY_A))
        store.save(sign("person-1"))
        store.keys.use(None)  # the key is lost
        with pytest.raises(KeyUnavailable, match=MASTER_KEY_ENV):
            store.load("customer:1", Customer)
        with pytest.raises(KeyUnavailable):
            timeline(store, "customer:1")


def test_a_wrong_master_key_is_told_apart(durable_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opened with another master key, a sealed read raises KeyUnavailable naming both keys."""
    monkeypatch.setenv(MASTER_KEY_ENV, KEY_A)
    with open_store(durable_url) as store:
        store.save(sign("person-1"))
    monkeypatch.setenv(MASTER_KEY_ENV, KEY_B)
    with open_store(durable_url) as store, pytest.raises(KeyUnavailable, match="wrapped by master:"):
        store.load("customer:1", Customer)


def test_rotation_rewraps_keys_and_leaves_events_alone(
    durable_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After rotating to key B the values read with B only, and no stored event changed."""
    monkeypatch.setenv(MASTER_KEY_ENV, KEY_A)
    with open_store(durable_url) as store:
        store.save(sign("person-1"))
        before = _raw(store, "customer:1")
        assert store.keys.rotate(MasterKey(KEY_B)) == 1
        assert store.keys.rotate(MasterKey(KEY_B)) == 0  # already wrapped by B
        assert _raw(store, "customer:1") == before
    monkeypatch.setenv(MASTER_KEY_ENV, KEY_B)
    with open_store(durable_url) as store:
        assert store.load("customer:1", Customer).email == EMAIL
        assert verify(store).ok
    monkeypatch.setenv(MASTER_KEY_ENV, KEY_A)
    with open_store(durable_url) as store, pytest.raises(KeyUnavailable):
        store.load("customer:1", Customer)


def _tamper(url: str, stream_id: str) -> int:
    """Rewrite the plan of a stored event behind phaselog's back; return its position."""
    lite = url.startswith("sqlite")
    table, column, mark = (
        ("stored_events", "rowid", "?") if lite else ("phaselog_events", "notification_id", "%s")
    )
    where = f"WHERE originator_id = {mark} AND originator_version = 1"
    ((position, state),) = raw_execute(url, f"SELECT {column}, state FROM {table} {where}", (stream_id,))
    changed = bytes(state).replace(b'"plan":"gold"', b'"plan":"free"')  # type: ignore[call-overload]
    update = f"UPDATE {table} SET state = {mark} {where}"
    if lite:
        raw_execute(url, "DROP TRIGGER IF EXISTS stored_events_no_update")
        raw_execute(url, update, (changed, stream_id))
    else:
        raw_execute(url, f"ALTER TABLE {table} DISABLE TRIGGER USER")
        raw_execute(url, update, (changed, stream_id))
        raw_execute(url, f"ALTER TABLE {table} ENABLE TRIGGER USER")
    return int(str(position))


def test_verify_passes_before_and_after_erasure_and_still_names_an_edit(
    durable_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chains cover the ciphertext: erasure changes no event, so verify passes; a rewritten event is named."""
    monkeypatch.setenv(MASTER_KEY_ENV, KEY_A)
    with open_store(durable_url) as store:
        store.save(sign("person-1"))
        assert verify(store).ok
        store.erase("person-1", reason="request")
        assert verify(store).ok
    position = _tamper(durable_url, "customer:1")
    with open_store(durable_url) as store:
        report = verify(store)
    assert not report.ok
    assert [p.position for p in report.problems] == [position]


def test_the_key_table_only_grows(durable_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DELETE of a key, or bringing an erased key back, is refused by the database itself."""
    monkeypatch.setenv(MASTER_KEY_ENV, KEY_A)
    with open_store(durable_url) as store:
        store.save(sign("person-1"))
        store.save(sign("person-2", "customer:2"))
        store.erase("person-1", reason="request")
    with pytest.raises(Exception, match="only grows"):
        raw_execute(durable_url, "DELETE FROM phaselog_subject_keys WHERE subject = 'person-2'")
    with pytest.raises(Exception, match="never comes back"):
        raw_execute(durable_url, "UPDATE phaselog_subject_keys SET wrapped = 'x' WHERE subject = 'person-1'")
    with open_store(durable_url) as store:
        assert [r.wrapped is None for r in store.keys.table.rows()] == [True, False]


def _state(store: Store, default: BaseModel, key: str) -> SyncRecoverableState[Any]:
    """A persisted recoverable state of ``default``'s model under ``key``."""
    return SyncRecoverableState(
        default_state=default,
        persist_state_key=key,
        persistence_enabled=True,
        logger=logging.getLogger("tests.privacy"),
        store=store,
    )


def test_a_recoverable_state_seals_its_personal_fields_and_reads_redacted_once_erased(keyed: Store) -> None:
    """A state model's personal field is sealed in its events and read model, then redacted after erasure."""
    state = _state(keyed, Preferences(), "prefs")
    with state as prefs:
        prefs.theme = "light"
        state.persist_state()
    (stream,) = keyed.stream_ids("state:")
    assert b"bob@example.org" not in b"".join(_raw(keyed, stream))
    keyed.projections.catch_up()
    (row,) = keyed.projections.recoverable_states.list()
    assert row["value"]["email"] == "bob@example.org"
    done = keyed.erase("person-7", reason="request")
    assert done.streams == [stream]
    assert done.scrubbed["recoverable_states"] == 1
    (row,) = keyed.projections.recoverable_states.list()
    assert row["value"] == {"user": "person-7", "email": {"$redacted": "person-7"}, "theme": "light"}
    again = _state(keyed, Preferences(), "prefs")
    with again as loaded:
        assert (loaded.email, loaded.theme) == (Redacted("person-7"), "light")


class Plain(BaseModel):
    """A state with nothing personal."""

    count: int = 0


def test_a_state_without_personal_fields_is_stored_as_before(keyed: Store) -> None:
    """A model with no personal field records no marks (its events read as they always did)."""
    keyed.save(sign("person-1"))  # the store has keys in use
    state = _state(keyed, Plain(), "plain")
    with state:
        state.persist_state()
    (stream,) = keyed.stream_ids("state:")
    assert all(b'"personal"' not in raw and b"$pii" not in raw for raw in _raw(keyed, stream))


def test_erase_and_keys_from_the_command_line(durable_url: str, tmp_path: Path) -> None:
    """``erase`` records the erasure, ``keys list`` shows it, ``keys rotate`` re-wraps; no reason exits 2."""
    env = {MASTER_KEY_ENV: KEY_A}
    with open_store(durable_url) as store:
        store.keys.use(MasterKey(KEY_A))
        store.save(sign("person-1"))
    no_reason = phaselog("erase", "person-1", "--reason", " ", "--url", durable_url, cwd=tmp_path, env=env)
    assert_usage_error(no_reason, "--reason")
    done = phaselog(
        "erase",
        "person-1",
        "--reason",
        "ticket 42",
        "--by",
        "dpo",
        "--url",
        durable_url,
        "--json",
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert json_out(done)["streams"] == ["customer:1"]
    listed = json_out(phaselog("keys", "list", "--url", durable_url, "--json", cwd=tmp_path, env=env))
    assert [(k["subject"], k["state"], k["reason"]) for k in listed] == [("person-1", "erased", "ticket 42")]
    rotated = phaselog(
        "keys", "rotate", "--url", durable_url, cwd=tmp_path, env={**env, "PHASELOG_NEW_MASTER_KEY": KEY_B}
    )
    assert rotated.returncode == 0, rotated.stderr
    assert "re-wrapped 0 key(s)" in rotated.stdout  # the only key was erased


def test_an_async_store_erases_as_the_sync_one_does(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``await store.erase(...)`` on an async store destroys the key and records the erasure."""
    monkeypatch.setenv(MASTER_KEY_ENV, KEY_A)

    async def main() -> tuple[bool, object]:
        async with open_async_store(store_url) as store:
            await store.save(sign("person-1"))
            done = await store.erase("person-1", reason="request")
            loaded = await store.load("customer:1", Customer)
            return done.recorded, loaded.email

    assert asyncio.run(main()) == (True, Redacted("person-1"))


def test_history_holding_personal_data_is_archived_but_not_detached(
    make_url: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streams with personal data are never snapshotted, so detaching their archived events is refused."""
    monkeypatch.setenv(MASTER_KEY_ENV, KEY_A)
    with open_store(make_url("postgresql") + "&partition_size=100") as store:
        for n in range(120):
            store.save(sign(f"person-{n}", f"customer:{n}"))
        head = store.max_position()
        with pytest.raises(ValidationFailed, match="hold personal data"):
            archive(store, 101, tmp_path / "old.jsonl.gz", detach=True)
        assert not (tmp_path / "old.jsonl.gz").exists()
        report = archive(store, 101, tmp_path / "old.jsonl.gz")
        assert (report.detached, store.max_position()) == ([], head)
        assert store.load("customer:0", Customer).email == EMAIL


def test_an_unreadable_event_names_no_personal_value(keyed: Store) -> None:
    """A sealed event that no longer validates raises ValidationFailed naming fields, never opened values."""
    (event,) = sign("person-1").collect_events()
    stored = keyed.app.mapper.to_stored_event(event)
    state = orjson.loads(stored.state)
    del state["plan"]
    broken = StoredEvent(stored.originator_id, stored.originator_version, stored.topic, orjson.dumps(state))
    keyed.app.recorder.insert_events([broken])
    with pytest.raises(ValidationFailed, match="plan") as caught:
        keyed.load("customer:1", Customer)
    assert EMAIL not in str(caught.value)
    assert STREET not in str(caught.value)
    assert caught.value.__cause__ is None


def test_the_console_and_an_archive_show_an_erased_value_redacted(
    durable_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After erasure the console's stream page and an archive file's events read redacted, never the email."""
    monkeypatch.setenv(MASTER_KEY_ENV, KEY_A)
    with open_store(durable_url) as store:
        store.save(sign("person-1"))
        store.save(sign("person-2", "customer:2"))
        archive(store, store.max_position(), tmp_path / "a.jsonl.gz")
        store.erase("person-1", reason="request")
        contents = read_archive(tmp_path / "a.jsonl.gz")
        decoder = EventDecoder(store.app.mapper)
        first = [r for r in contents.events if r[1] == "customer:1"]
        assert first
        data = decoder(LogRecord(*first[0]))
        assert data.data["email"] == {"$redacted": "person-1"}
    with served(durable_url) as s:
        status, _, body = fetch(f"{s.base}/streams/customer:1")
        assert status == 200
        assert EMAIL not in body.decode()
        assert "$redacted" in body.decode()
        assert EMAIL.encode() not in fetch(f"{s.base}/api/streams/customer:1")[2]


def test_a_malformed_master_key_is_refused_before_anything_is_opened(
    durable_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A master key that is not 32 bytes (base64 or hex) fails open_store: ValidationFailed, nothing made."""
    monkeypatch.setenv(MASTER_KEY_ENV, "not-a-key")
    url = f"sqlite:///{tmp_path / 'never.db'}" if durable_url.startswith("sqlite") else durable_url
    with pytest.raises(ValidationFailed, match=MASTER_KEY_ENV):
        open_store(url)
    if url.startswith("sqlite"):
        assert not (tmp_path / "never.db").exists()
    else:
        assert raw_execute(url, "SELECT to_regclass('phaselog_events')") == [(None,)]
