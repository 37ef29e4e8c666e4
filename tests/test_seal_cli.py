"""``phaselog audit seal``: records a checkpoint, prints its digest, and verify checks it."""

from __future__ import annotations

import orjson
import pytest
from projections_support import open_account
from typer.testing import CliRunner

from phaselog.adapters import open_store
from phaselog.adapters.audit.chain import AUDIT_KEY_ENV
from phaselog.adapters.cli.audit import audit_app

runner = CliRunner()


def test_seal_prints_a_digest_that_verify_then_checks(durable_url: str) -> None:
    """Sealing twice with nothing new returns the same seal, saying so; verify reports the seals checked."""
    with open_store(durable_url, seal_interval=0) as store:  # this store does not seal on its own
        open_account(store, "acct:a", deposits=(1, 2))
    first = runner.invoke(audit_app, ["seal", "--json", "--url", durable_url])
    assert first.exit_code == 0, first.output
    sealed = orjson.loads(first.stdout)
    assert (sealed["id"], sealed["horizon"], sealed["events"], sealed["signed"]) == (1, 3, 3, False)
    assert sealed["new"] is True
    again = runner.invoke(audit_app, ["seal", "--json", "--url", durable_url])
    assert orjson.loads(again.stdout) == {**sealed, "new": False}
    report = runner.invoke(audit_app, ["verify", "--json", "--url", durable_url])
    assert report.exit_code == 0, report.output
    assert orjson.loads(report.stdout)["seals"] == 1


def test_seal_is_signed_with_the_audit_key(durable_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With PHASELOG_AUDIT_KEY set the seal is signed, and verify with another key reports it."""
    with open_store(durable_url, seal_interval=0) as store:
        open_account(store, "acct:a", deposits=(1,))
    monkeypatch.setenv(AUDIT_KEY_ENV, "k1")
    result = runner.invoke(audit_app, ["seal", "--url", durable_url])
    assert result.exit_code == 0, result.output
    assert "seal #1" in result.stdout
    assert "unsigned" not in result.stdout
    monkeypatch.setenv(AUDIT_KEY_ENV, "another key")
    report = runner.invoke(audit_app, ["verify", "--json", "--url", durable_url])
    assert report.exit_code == 1
    problems = orjson.loads(report.stdout)["problems"]
    assert [(p["kind"], p["position"], p["seal"]) for p in problems] == [("bad-signature", None, 1)]
    assert "does not match the key: wrong key, or rewritten" in problems[0]["detail"]
