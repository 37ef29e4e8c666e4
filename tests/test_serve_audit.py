"""The console's verify card says what the report vouches for: sealed range, tail, unchecked signatures."""

from __future__ import annotations

import pytest
from serve_support import fetch, seeded_url, served

from phaselog.adapters.audit.chain import AUDIT_KEY_ENV


def test_the_verify_card_says_signatures_were_not_checked(
    durable_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed seals verified without the key: the console says signatures were NOT checked, and the tail."""
    monkeypatch.setenv(AUDIT_KEY_ENV, "k1")
    url = seeded_url(durable_url)  # closing the seeding store sealed (and signed) its appends
    monkeypatch.delenv(AUDIT_KEY_ENV)
    with served(url) as s:
        assert fetch(s.base + "/verify", method="POST")[0] == 200
        page = fetch(s.base + "/")[2].decode()
    assert 'id="verify-summary"' in page
    assert "signatures NOT checked: PHASELOG_AUDIT_KEY is not set" in page
    assert "no unsealed tail" in page
    assert "sealed up to position" in page
