"""Per-stream chains, seals and their HMAC signatures: what verify detects beyond single-row edits."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from projections_support import open_account
from tamper_support import sql, unguarded

from phaselog.adapters import Store, open_store
from phaselog.adapters.audit.chain import AUDIT_KEY_ENV, GENESIS_DIGEST, chain_digest, seal_digest, sign_seal
from phaselog.adapters.audit.history import seal, verify
from phaselog.adapters.recorders import CHAIN_TABLE

from conftest import raw_execute


@pytest.fixture
def seeded(durable_url: str) -> Iterator[tuple[str, Store]]:
    with open_store(durable_url, seal_interval=0) as store:  # these tests take every seal themselves
        open_account(store, "acct:a", deposits=(1, 2))
        open_account(store, "acct:b", deposits=(3, 4))
        yield durable_url, store


def test_chain_digest_is_pinned() -> None:
    """The digest formula is fixed: stores written today must verify with tomorrow's code."""
    digest = chain_digest(GENESIS_DIGEST, 1, "plugin:a", 1, "phaselog.plugin.PhaseChanged", b"{}")
    assert digest == "3a8ac9e58e83fe50d178e4fa3489218885fd2b9c86676d85ef65dd1d1c649326"
    assert seal_digest(GENESIS_DIGEST, 2, ["a" * 64, "b" * 64]) == (
        "5e40388619ea81d6f9c33e0fb7ade9bb2046f925580576bd7cfa64b0e79392c2",
        2,
    )


def test_each_event_links_to_the_previous_event_of_its_own_stream(seeded: tuple[str, Store]) -> None:
    """A chain row's digest covers the previous digest of the same stream, not the previous position."""
    url, store = seeded
    rows = raw_execute(
        url, sql(url, "SELECT position, originator_id, originator_version, digest FROM phaselog_audit_chain")
    )
    chain = {(str(r[1]), int(str(r[2]))): (int(str(r[0])), str(r[3])) for r in rows}
    notes = {n.id: n for n in store.notifications(1)}
    for (sid, version), (position, digest) in chain.items():
        previous = GENESIS_DIGEST if version == 1 else chain[sid, version - 1][1]
        note = notes[position]
        assert digest == chain_digest(previous, position, sid, version, note.topic, note.state)
    a2, b1 = chain["acct:a", 2][0], chain["acct:b", 1][0]
    assert b1 > a2  # interleaving streams: b's first event does not chain to a's events


def test_reordered_events_are_named(seeded: tuple[str, Store]) -> None:
    """Swapping the positions of two stored events is reported as reordered at both positions."""
    url, store = seeded
    first, second = 2, 5
    unguarded(
        url,
        ("UPDATE EVENTS SET POS = %s WHERE POS = %s", (1_000_000, first)),
        ("UPDATE EVENTS SET POS = %s WHERE POS = %s", (first, second)),
        ("UPDATE EVENTS SET POS = %s WHERE POS = %s", (second, 1_000_000)),
    )
    kinds = {(p.position, p.kind) for p in verify(store).problems}
    assert kinds == {(first, "reordered"), (second, "reordered")}


def test_an_event_moved_to_a_position_without_a_chain_row_is_reordered_not_removed(
    seeded: tuple[str, Store],
) -> None:
    """An event moved past every chain row is named reordered where it now sits and where it was."""
    url, store = seeded
    moved_from = 3
    moved_to = store.max_position() + 5  # no chain row records anything there
    unguarded(url, ("UPDATE EVENTS SET POS = %s WHERE POS = %s", (moved_to, moved_from)))
    problems = verify(store).problems
    assert [(p.position, p.kind, p.stream_id, p.version) for p in problems] == [
        (moved_from, "reordered", "acct:a", 3),
        (moved_to, "reordered", "acct:a", 3),
    ]
    assert f"now sits at {moved_to}" in problems[0].detail
    assert f"the chain records this event at {moved_from}" in problems[1].detail


def test_seal_records_a_checkpoint_once(seeded: tuple[str, Store]) -> None:
    """A seal covers every event so far; sealing again with nothing new returns the same seal."""
    _, store = seeded
    sealed = seal(store)
    assert sealed is not None
    assert (sealed.id, sealed.horizon, sealed.events) == (1, store.max_position(), store.max_position())
    assert sealed.new
    again = seal(store)
    assert again == sealed
    assert again is not None
    assert not again.new
    open_account(store, "acct:c", deposits=(5,))
    second = seal(store)
    assert second is not None
    assert (second.id, second.events, second.new) == (2, 2, True)
    report = verify(store)
    assert report.ok
    assert (report.seals, report.sealed_position) == (2, store.max_position())


def test_removing_the_newest_event_with_its_chain_row_breaks_the_seal(seeded: tuple[str, Store]) -> None:
    """Deleting an event and its chain row together passes the row checks, not the seal."""
    url, store = seeded
    assert seal(store) is not None
    last = store.max_position()
    unguarded(
        url,
        ("DELETE FROM EVENTS WHERE POS = %s", (last,)),
        ("DELETE FROM phaselog_audit_chain WHERE position = %s", (last,)),
    )
    problems = verify(store).problems
    assert [(p.position, p.seal, p.kind) for p in problems] == [(None, 1, "seal-mismatch")]


def _rewrite_event_and_chain(url: str, store: Store) -> None:
    """Change acct:b's last deposit and recompute its chain digest, as a careful attacker would."""
    notes = {(n.originator_id, n.originator_version): n for n in store.notifications(1)}
    target = notes["acct:b", 3]
    state = target.state.replace(b'"amount":4', b'"amount":400')
    assert state != target.state
    previous = raw_execute(
        url,
        sql(
            url,
            "SELECT digest FROM phaselog_audit_chain WHERE originator_id = %s AND originator_version = %s",
        ),
        ("acct:b", 2),
    )[0][0]
    digest = chain_digest(str(previous), target.id, "acct:b", 3, target.topic, state)
    unguarded(
        url,
        ("UPDATE EVENTS SET state = %s WHERE POS = %s", (state, target.id)),
        ("UPDATE phaselog_audit_chain SET digest = %s WHERE position = %s", (digest, target.id)),
    )


def test_rewriting_events_and_chain_together_is_caught_by_the_seal(seeded: tuple[str, Store]) -> None:
    """A consistent rewrite of an event and its chain row still fails the seal taken before it."""
    url, store = seeded
    assert seal(store) is not None
    _rewrite_event_and_chain(url, store)
    assert [(p.position, p.seal, p.kind) for p in verify(store).problems] == [(None, 1, "seal-mismatch")]


def test_resealing_after_a_rewrite_shows_as_a_bad_signature_with_the_audit_key(
    seeded: tuple[str, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With PHASELOG_AUDIT_KEY set, an attacker without the key cannot forge the seals of a rewrite."""
    url, store = seeded
    monkeypatch.setenv(AUDIT_KEY_ENV, "the auditor's secret")
    sealed = seal(store)
    assert sealed is not None
    assert sealed.signed
    assert verify(store).ok
    _rewrite_event_and_chain(url, store)
    rows = raw_execute(url, sql(url, "SELECT digest FROM phaselog_audit_chain ORDER BY position"))
    forged, _ = seal_digest(GENESIS_DIGEST, sealed.horizon, [str(r[0]) for r in rows])
    unguarded(
        url,
        (
            "UPDATE phaselog_seals SET digest = %s, signature = %s WHERE id = 1",
            (forged, sign_seal(forged, b"a guessed key")),
        ),
    )
    (problem,) = verify(store).problems
    assert (problem.position, problem.seal, problem.kind) == (None, 1, "bad-signature")
    assert "does not match the key: wrong key, or rewritten" in problem.detail
    monkeypatch.delenv(AUDIT_KEY_ENV)
    assert verify(store).ok  # without the key the forgery is undetectable: keep the key elsewhere


def test_integrity_tables_reject_changes(seeded: tuple[str, Store]) -> None:
    """Chain rows and seals reject UPDATE and DELETE (and TRUNCATE on PostgreSQL) like events do."""
    url, store = seeded
    assert seal(store) is not None
    statements = [
        f"UPDATE {CHAIN_TABLE} SET digest = 'x'",
        f"DELETE FROM {CHAIN_TABLE}",
        "UPDATE phaselog_seals SET digest = 'x'",
        "DELETE FROM phaselog_seals",
    ]
    if not url.startswith("sqlite"):
        statements += [
            f"TRUNCATE {CHAIN_TABLE}",
            "TRUNCATE phaselog_seals",
            "TRUNCATE phaselog_events",
        ]
    for statement in statements:
        with pytest.raises(Exception, match="append-only"):
            raw_execute(url, statement)
    assert verify(store).ok


def test_a_state_blob_rewritten_as_text_is_reported_changed(make_url: Callable[[str], str]) -> None:
    """On SQLite (whose columns take any type) a blob edited into TEXT is a changed event, not a crash."""
    url = make_url("sqlite")
    with open_store(url) as store:
        open_account(store, "acct:a", deposits=(1, 2))
        unguarded(url, ("UPDATE EVENTS SET state = CAST(state AS TEXT) WHERE POS = %s", (3,)))
        assert [(p.position, p.kind) for p in verify(store).problems] == [(3, "changed")]
