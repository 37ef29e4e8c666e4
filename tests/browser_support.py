"""The console in a real browser: Debian's headless Chromium driven by Playwright (no browser download).

Without Chromium or Playwright the browser tests are skipped on a developer's machine
and FAIL in CI (``CI=true``), as a missing PostgreSQL does (``.ci/run`` installs
``chromium`` from Debian's packages when it is missing). Test modules import the
``browser`` and ``page`` fixtures from here.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import IN_CI

CHROMIUM_ENV = "PHASELOG_CHROMIUM"
"""Path of the Chromium binary to drive (default: ``chromium`` on PATH)."""


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"the browser tests need {what} in CI")
    pytest.skip(f"no {what} on this machine")


def chromium_path() -> str | None:
    """The system Chromium: $PHASELOG_CHROMIUM, else ``chromium`` (Debian) or ``chromium-browser`` on PATH."""
    return os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415 - optional in a bare install
    except ImportError:
        _missing("Playwright for Python (pip install playwright)")
    path = chromium_path()
    if path is None:
        _missing("Chromium (apt-get install chromium)")
    with sync_playwright() as pw:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = pw.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page that records console errors and uncaught page errors in ``page.errors``."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    errors: list[str] = []
    opened.on(
        "console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None
    )
    opened.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    opened.errors = errors
    try:
        yield opened
    finally:
        context.close()
