"""The console in a real browser: Debian's headless Chromium driven by Playwright (no browser download).

Without Chromium or Playwright these tests are skipped on a developer's machine
and FAIL in CI (``CI=true``), as a missing PostgreSQL does (``.ci/run`` installs
``chromium`` from Debian's packages when it is missing).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from serve_support import PLAN, PLUGIN, TASK, seeded_url, served

from phaselog.adapters import open_store

from conftest import IN_CI, raw_execute

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


@pytest.fixture
def url(durable_url: str) -> str:
    return seeded_url(durable_url)


def test_every_page_loads_without_console_errors(url: str, page: Any) -> None:
    """Overview, stream list and one stream page of each kind load (200) with no console or page error."""
    with served(url) as s:
        paths = ["/", "/streams", "/streams?prefix=plugin:", f"/streams/plugin:{PLUGIN}", f"/streams/{TASK}"]
        paths.append(f"/streams/{PLAN}")
        for path in paths:
            response = page.goto(s.base + path)
            assert response is not None
            assert response.status == 200, path
            assert page.locator("main h1").count() == 1, path
        page.goto(s.base + "/")
        page.click("#verify")
        page.wait_for_selector("#verify-result.ok")
        page.goto(s.base + "/streams")
        page.click(f"a[href='/streams/plugin%3A{PLUGIN}']")
        page.wait_for_selector("svg.timeline")
        assert page.errors == []


def test_plugin_timeline_has_one_mark_per_transition(url: str, page: Any) -> None:
    """The plugin's SVG timeline draws exactly one mark per recorded transition, forced ones included."""
    with open_store(url) as store:
        transitions = store.plugins.history(PLUGIN)
    assert len(transitions) == 7
    with served(url) as s:
        page.goto(s.base + f"/streams/plugin:{PLUGIN}")
        marks = page.locator("svg.timeline .mark.transition")
        assert marks.count() == len(transitions)
        assert page.locator("svg.timeline .mark.transition.forced").count() == 1
        box = page.locator("svg.timeline").bounding_box()
        assert box is not None
        assert box["width"] > 400
        assert box["height"] > 100
        titles = [marks.nth(i).locator("title").text_content() or "" for i in range(marks.count())]
        assert [t.split(": ", 1)[1].split(" → ")[1].split(":")[0] for t in titles] == [
            t.to.value for t in transitions
        ]
        assert page.errors == []


def _tamper(url: str, stream_id: str, version: int) -> int:
    """Rewrite one stored event's reason behind phaselog's back; return its position."""
    table, column = (
        ("stored_events", "rowid") if url.startswith("sqlite") else ("phaselog_events", "notification_id")
    )
    mark = "?" if url.startswith("sqlite") else "%s"
    where = f"WHERE originator_id = {mark} AND originator_version = {mark}"
    ((position, state),) = raw_execute(
        url, f"SELECT {column}, state FROM {table} {where}", (stream_id, version)
    )
    changed = orjson.loads(state)  # type: ignore[arg-type]
    changed["reason"] = "rewritten"
    update = f"UPDATE {table} SET state = {mark} {where}"
    if url.startswith("sqlite"):
        raw_execute(url, "DROP TRIGGER IF EXISTS stored_events_no_update")
        raw_execute(url, update, (orjson.dumps(changed), stream_id, version))
    else:
        raw_execute(url, f"ALTER TABLE {table} DISABLE TRIGGER USER")
        raw_execute(url, update, (orjson.dumps(changed), stream_id, version))
        raw_execute(url, f"ALTER TABLE {table} ENABLE TRIGGER USER")
    return int(str(position))


def test_verify_button_reports_a_tampered_store(url: str, page: Any) -> None:
    """The verify button says the history verifies, then names the position rewritten behind its back."""
    with served(url) as s:
        page.goto(s.base + "/")
        assert "not verified" in (page.text_content("#verify-result") or "")
        page.click("#verify")
        assert "verified" in (page.locator("#verify-result.ok").text_content() or "")
        position = _tamper(url, f"plugin:{PLUGIN}", 3)
        page.click("#verify")
        result = page.locator("#verify-result.bad")
        assert "TAMPERED" in (result.text_content() or "")
        rows = page.locator("#problems tr").all_inner_texts()[1:]
        assert len(rows) == 1
        assert rows[0].split("\t")[:4] == [str(position), "changed", f"plugin:{PLUGIN}", "3"]
        assert page.errors == []
