"""The audit key policy for seals and archives made before and after a key was set, and honest messages."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from projections_support import open_account
from tamper_support import unguarded
from typer.testing import CliRunner

from phaselog.adapters import open_store
from phaselog.adapters.audit.archive import archive
from phaselog.adapters.audit.chain import AUDIT_KEY_ENV, sign_seal
from phaselog.adapters.audit.findings import describe
from phaselog.adapters.audit.history import seal, verify
from phaselog.adapters.audit.integrity import verify_archive
from phaselog.adapters.cli.audit import audit_app
from phaselog.domain.errors import ValidationFailed

runner = CliRunner()


def _seal_twice_with_the_key(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seal #1 unsigned (no key yet), then seals #2 and #3 signed with key k1."""
    with open_store(url, seal_interval=0) as store:
        open_account(store, "acct:a", deposits=(1,))
        assert seal(store) is not None
        monkeypatch.setenv(AUDIT_KEY_ENV, "k1")
        for name in ("acct:b", "acct:c"):
            open_account(store, name)
            assert seal(store) is not None


def test_unsigned_seals_made_before_a_key_are_reported_not_as_tampering(
    durable_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seals from before the key verify as 'unsigned, made before a key was set'; signed ones match."""
    _seal_twice_with_the_key(durable_url, monkeypatch)
    with open_store(durable_url, read_only=True) as store:
        report = verify(store)
    assert report.ok, report.problems
    assert (report.signatures_checked, report.signed_seals, report.unsigned_before_key) == (True, 2, 1)
    assert any("1 unsigned seal(s) made before a key was set" in line for line in report.as_dict()["summary"])


def test_a_seal_after_a_signed_one_must_be_signed(durable_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sealer without the key refuses to seal after a signed seal; a forged unsigned seal is a problem."""
    _seal_twice_with_the_key(durable_url, monkeypatch)
    monkeypatch.delenv(AUDIT_KEY_ENV)
    with open_store(durable_url, seal_interval=0) as store:
        open_account(store, "acct:d")
        with pytest.raises(ValidationFailed, match="seal #3 is signed"):
            store.seal()
        horizon = store.max_position()
    unguarded(
        durable_url,
        (
            "INSERT INTO phaselog_seals (id, horizon, events, digest) VALUES (%s, %s, %s, %s)",
            (4, horizon, 1, "0" * 64),
        ),
    )
    monkeypatch.setenv(AUDIT_KEY_ENV, "k1")
    with open_store(durable_url, read_only=True) as store:
        kinds = [(p.position, p.seal, p.kind) for p in verify(store).problems]
    assert (None, 4, "unsigned") in kinds


def test_a_wrong_key_and_a_rewritten_seal_are_told_apart(
    durable_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No seal matching the key points at the key; one failing among matching ones points at a rewrite."""
    _seal_twice_with_the_key(durable_url, monkeypatch)
    monkeypatch.setenv(AUDIT_KEY_ENV, "not k1")
    with open_store(durable_url, read_only=True) as store:
        wrong = verify(store).problems
    assert [(p.position, p.seal, p.kind) for p in wrong] == [
        (None, 2, "bad-signature"),
        (None, 3, "bad-signature"),
    ]
    assert all("does not match the key: wrong key, or rewritten" in p.detail for p in wrong)
    assert all("most likely it is not the key" in p.detail for p in wrong)
    monkeypatch.setenv(AUDIT_KEY_ENV, "k1")
    unguarded(
        durable_url, ("UPDATE phaselog_seals SET signature = %s WHERE id = 3", (sign_seal("f" * 64, b"k1"),))
    )
    with open_store(durable_url, read_only=True) as store:
        (rewritten,) = verify(store).problems
    assert (rewritten.position, rewritten.seal, rewritten.kind) == (None, 3, "bad-signature")
    assert "1 other signed seal(s) match this key, so this one was most likely rewritten" in rewritten.detail


def test_verify_text_says_unchecked_signatures_and_names_no_event_for_a_seal_problem(
    durable_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the key the CLI says signatures were not checked; a seal problem is never 'position 1'."""
    _seal_twice_with_the_key(durable_url, monkeypatch)
    monkeypatch.delenv(AUDIT_KEY_ENV)
    unchecked = runner.invoke(audit_app, ["verify", "--url", durable_url], terminal_width=200)
    assert unchecked.exit_code == 0, unchecked.output
    assert "signatures NOT checked: PHASELOG_AUDIT_KEY is not set" in unchecked.stdout
    monkeypatch.setenv(AUDIT_KEY_ENV, "another key")
    wrong = runner.invoke(audit_app, ["verify", "--url", durable_url], terminal_width=200)
    assert wrong.exit_code == 1
    assert "first tampered position" not in wrong.stdout
    assert "no event position is named" in wrong.stdout
    report = orjson.loads(runner.invoke(audit_app, ["verify", "--json", "--url", durable_url]).stdout)
    assert report["first_tampered_position"] is None
    assert {p["position"] for p in report["problems"]} == {None}


def test_seal_says_when_nothing_new_was_sealed(durable_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """After an unsigned seal, sealing with a key set and nothing new says so (text and --json)."""
    with open_store(durable_url, seal_interval=0) as store:
        open_account(store, "acct:a")
    assert (
        orjson.loads(runner.invoke(audit_app, ["seal", "--json", "--url", durable_url]).stdout)["new"] is True
    )
    monkeypatch.setenv(AUDIT_KEY_ENV, "k1")
    again = orjson.loads(runner.invoke(audit_app, ["seal", "--json", "--url", durable_url]).stdout)
    assert (again["id"], again["new"], again["signed"]) == (1, False, False)
    text = runner.invoke(audit_app, ["seal", "--url", durable_url], terminal_width=200)
    assert "nothing new to seal: seal #1" in text.stdout


def test_seal_print_and_verify_expect_head(durable_url: str) -> None:
    """`seal --print` prints only the head digest; `verify --expect-head` passes with it, not another."""
    with open_store(durable_url, seal_interval=0) as store:
        open_account(store, "acct:a", deposits=(1,))
    printed = runner.invoke(audit_app, ["seal", "--print", "--url", durable_url])
    assert printed.exit_code == 0, printed.output
    head = printed.stdout.strip()
    assert len(head) == 64
    assert printed.stdout == head + "\n"
    good = runner.invoke(audit_app, ["verify", "--json", "--url", durable_url, "--expect-head", head])
    assert good.exit_code == 0, good.output
    assert orjson.loads(good.stdout)["expected_head_position"] == 2
    bad = runner.invoke(audit_app, ["verify", "--json", "--url", durable_url, "--expect-head", "ab" * 32])
    assert bad.exit_code == 1
    assert [p["kind"] for p in orjson.loads(bad.stdout)["problems"]] == ["head-mismatch"]


def test_archives_made_before_a_key_verify_and_later_ones_must_be_signed(
    durable_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unsigned archive from before the key verifies with a note; after a signed one it is refused."""
    first, second = tmp_path / "a1.gz", tmp_path / "a2.gz"
    with open_store(durable_url, seal_interval=0) as store:
        for name in ("acct:a", "acct:b", "acct:c"):
            open_account(store, name, deposits=(1, 2))
        archive(store, 4, first)
        monkeypatch.setenv(AUDIT_KEY_ENV, "k1")
        alone = verify_archive(first)
        assert alone.ok, alone.problems
        assert any("unsigned, made before a key was set" in note for note in alone.notes)
        assert verify(store).ok
        assert verify(store, archives=[first]).ok
        assert archive(store, 7, second).signed
        both = verify(store, archives=[first, second])
        assert both.ok, both.problems
        monkeypatch.delenv(AUDIT_KEY_ENV)
        with pytest.raises(ValidationFailed, match="an earlier archive is signed"):
            archive(store, 10, tmp_path / "a3.gz")
        assert not (tmp_path / "a3.gz").exists()
        monkeypatch.setenv(AUDIT_KEY_ENV, "another key")
        lines = gzip.decompress(second.read_bytes()).splitlines()
        assert b"signature" in lines[-1]
        (problem,) = verify_archive(second).problems
        assert (problem.position, problem.kind) == (None, "bad-signature")
        assert "does not match the key: wrong key, or rewritten" in problem.detail


def test_seals_over_a_kept_archive_are_recomputed_and_over_dropped_ones_said_unchecked(
    make_url: Callable[[str], str], tmp_path: Path
) -> None:
    """Archived chain rows still stored let verify recompute every seal; detached ones are named unchecked."""
    kept_url = make_url("sqlite")
    with open_store(kept_url, seal_interval=0) as store:
        for n in range(8):
            open_account(store, f"acct:{n}", deposits=(1, 2))
        assert seal(store) is not None
        open_account(store, "acct:late", deposits=(3,))
        archive(store, 20, tmp_path / "kept.gz")  # seals first: seal #2 spans the archive's end
        report = verify(store)
    assert report.ok, report.problems
    assert (report.seals, report.seals_unchecked) == (2, 0)
    dropped_url = make_url("postgresql") + "&partition_size=100"
    with open_store(dropped_url, seal_interval=0) as store:
        for n in range(84):
            open_account(store, f"acct:{n}", deposits=(1, 2))
        archive(store, 201, tmp_path / "dropped.gz", detach=True)
        open_account(store, "acct:late")
        assert seal(store) is not None
        report = verify(store)
    assert report.ok, report.problems
    assert (report.seals, report.seals_unchecked) == (1, 1)
    assert any("1 seal(s) over archived positions not recomputed" in line for line in describe(report))
    with open_store(dropped_url, read_only=True) as store:
        assert verify(store, archives=[tmp_path / "dropped.gz"]).seals == 2
