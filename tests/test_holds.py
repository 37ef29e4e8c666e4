"""Legal holds on every store: recorded when placed and lifted; while placed, no erasing and no archiving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import assert_usage_error, json_out, phaselog
from privacy_support import EMAIL, KEY_A, Customer, sign

from phaselog.adapters import Store, open_store
from phaselog.adapters.audit.archive import archive
from phaselog.adapters.audit.history import timeline
from phaselog.adapters.crypto import MASTER_KEY_ENV
from phaselog.domain.errors import InvalidTransition, ValidationFailed
from phaselog.domain.holds import LegalHoldActive


@pytest.fixture
def keyed(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A store of each kind with master key A and one customer of person-1."""
    monkeypatch.setenv(MASTER_KEY_ENV, KEY_A)
    with open_store(store_url) as store:
        store.save(sign("person-1"))
        yield store


def test_a_hold_blocks_erasure_until_lifted(keyed: Store) -> None:
    """Erasing a subject whose stream is held raises LegalHoldActive, destroys nothing, writes nothing."""
    keyed.hold("customer:", reason="litigation 2026-17", by="legal@corp")
    head = keyed.max_position()
    with pytest.raises(LegalHoldActive, match=r"customer:1 \(hold on 'customer:'\)"):
        keyed.erase("person-1", reason="request")
    assert keyed.max_position() == head
    assert keyed.load("customer:1", Customer).email == EMAIL  # the key is alive
    keyed.lift_hold("customer:", reason="case closed", by="legal@corp")
    assert keyed.erase("person-1", reason="request").recorded


def test_holds_are_recorded_and_listed(keyed: Store) -> None:
    """Placing and lifting are events of the hold's stream; holds() lists the placed ones only."""
    keyed.hold("customer:", reason="litigation", by="legal")
    keyed.hold("task:billing:", reason="audit", by="cfo")
    assert keyed.holds() == ["customer:", "task:billing:"]
    keyed.lift_hold("customer:", reason="done", by="legal")
    keyed.hold("customer:", reason="again", by="legal")
    keyed.lift_hold("task:billing:", reason="done", by="cfo")
    assert keyed.holds() == ["customer:"]
    events = timeline(keyed, "hold:customer:")
    assert [(e.topic.rsplit(".", 1)[-1], e.data["reason"], e.data["by"]) for e in events] == [
        ("Placed", "litigation", "legal"),
        ("Lifted", "done", "legal"),
        ("Placed", "again", "legal"),
    ]


def test_bad_hold_requests_are_refused(keyed: Store) -> None:
    """Placing twice, lifting what is not placed, an empty prefix or no reason are typed errors."""
    keyed.hold("customer:", reason="x")
    with pytest.raises(InvalidTransition, match="placed already"):
        keyed.hold("customer:", reason="y")
    keyed.lift_hold("customer:", reason="z")
    with pytest.raises(InvalidTransition, match="not placed"):
        keyed.lift_hold("customer:", reason="z")
    with pytest.raises(ValidationFailed, match="prefix"):
        keyed.hold("", reason="x")
    with pytest.raises(ValidationFailed, match="reason"):
        keyed.hold("plugin:", reason=" ")


def test_a_hold_blocks_archiving(durable_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Archiving a segment that holds a held stream raises LegalHoldActive and writes no file."""
    monkeypatch.setenv(MASTER_KEY_ENV, KEY_A)
    with open_store(durable_url) as store:
        store.save(sign("person-1"))
        store.save(sign("person-2", "customer:2"))
        store.hold("customer:2", reason="litigation")
        before = store.max_position() + 1
        with pytest.raises(LegalHoldActive, match="not archiving"):
            archive(store, before, tmp_path / "old.jsonl.gz")
        assert not (tmp_path / "old.jsonl.gz").exists()
        store.lift_hold("customer:2", reason="done")
        assert archive(store, 2, tmp_path / "first.jsonl.gz").events == 1


def test_holds_from_the_command_line(durable_url: str, tmp_path: Path) -> None:
    """``hold place``, ``hold list`` and ``hold lift`` record and show holds; no reason is a usage error."""
    url = ["--url", durable_url]
    assert_usage_error(
        phaselog("hold", "place", "customer:", "--reason", " ", *url, cwd=tmp_path), "--reason"
    )
    placed = phaselog(
        "hold", "place", "customer:", "--reason", "litigation", "--by", "legal", *url, cwd=tmp_path
    )
    assert placed.returncode == 0, placed.stderr
    assert json_out(phaselog("hold", "list", "--json", *url, cwd=tmp_path)) == ["customer:"]
    lifted = phaselog("hold", "lift", "customer:", "--reason", "closed", *url, cwd=tmp_path)
    assert lifted.returncode == 0, lifted.stderr
    assert json_out(phaselog("hold", "list", "--json", *url, cwd=tmp_path)) == []
