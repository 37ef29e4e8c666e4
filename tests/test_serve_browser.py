"""The console's pictures and audit in a real browser (fixtures: :mod:`browser_support`)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from browser_support import browser, page
from serve_support import PLAN, PLUGIN, TASK, seeded_url, served

from phaselog.adapters import open_store

from conftest import raw_execute

__all__ = ["browser", "page"]  # the fixtures this module uses, imported from browser_support


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
