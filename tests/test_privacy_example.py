"""examples/erase_customer.py on SQLite and PostgreSQL: sealed at rest, held, erased, still verified."""

from __future__ import annotations

import pytest

from conftest import load_script


def test_the_erasure_example_runs_on_a_durable_store(
    durable_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example stores ciphertext, is refused under a hold, erases, and audit verify passes."""
    load_script("examples", "erase_customer").main([durable_url])
    out = capsys.readouterr().out
    assert "ann@example.org" not in out.split("loaded email:")[0]  # the stored bytes hold no email
    assert "refused: not erasing subject 'p-7f3a': a legal hold covers customer:42" in out
    assert "loaded email: [redacted: p-7f3a]" in out
    assert "timeline email: {'$redacted': 'p-7f3a'}" in out
    assert "audit verify: ok" in out
