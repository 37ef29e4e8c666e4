"""Working in the console with a real browser: search and pages, drill-down, live tail, states, actions."""

from __future__ import annotations

from typing import Any

import pytest
from browser_support import browser, page
from serve_support import FAILED_PLAN, FAILED_TASK, PLUGIN, poison, seeded_url, served

from phaselog.adapters import open_store
from phaselog.domain.plugin import PluginPhase

__all__ = ["browser", "page"]  # the fixtures this module uses, imported from browser_support

BAD_RGB = "rgb(196, 50, 10)"  # --bad
OK_RGB = "rgb(26, 127, 55)"  # --ok


@pytest.fixture
def url(durable_url: str) -> str:
    return seeded_url(durable_url, failures=True, plugins=45)


def _color(page: Any, selector: str) -> str:
    return str(page.eval_on_selector(selector, "e => getComputedStyle(e).color"))


def test_search_then_page_through_by_clicking(url: str, page: Any) -> None:
    """Searching plugins whose id starts with "bulk" and clicking next until the end lists each once."""
    with served(url) as s:
        page.goto(s.base + "/streams?limit=20")
        page.select_option("#kind", "plugin")
        page.fill("#q", "bulk")
        page.click("#stream-search button")
        seen: list[str] = []
        while True:
            page.wait_for_selector("#streams")
            seen += page.locator("#streams tr td:first-child a").all_text_contents()
            if page.locator("#next-page").count() == 0:
                break
            page.click("#next-page")
        assert seen == [f"plugin:bulk{i:03d}" for i in range(45)]
        page.click("#first-page")
        assert page.locator("#streams tr td:first-child a").first.text_content() == "plugin:bulk000"
        assert page.errors == []


def test_drill_down_from_a_count_to_a_failed_task(url: str, page: Any) -> None:
    """Overview → the Failed count → its one row → the task's page, led by its failure in the bad colour."""
    with served(url) as s:
        page.goto(s.base + "/")
        page.click("#counts-task_statuses a.drill:text('Failed')")
        page.wait_for_url("**/projections/task_statuses?state_name=Failed")
        assert page.locator("#rows tr").count() == 2  # the header and the failed task
        page.click(f"#rows a:text('{FAILED_TASK.removeprefix('task:')}')")
        page.wait_for_selector("#failure")
        assert page.locator("#failure-error").text_content() == "OSError: no space left on device"
        assert _color(page, "#failure h2") == BAD_RGB
        assert page.errors == []


def test_a_failed_plan_shows_its_steps_in_distinct_colours(url: str, page: Any) -> None:
    """The failed step is red, the succeeded one green, the step never run is listed as such."""
    with served(url) as s:
        page.goto(s.base + f"/streams/{FAILED_PLAN}")
        cells = page.locator("#steps tr td:nth-child(2)")
        assert cells.all_text_contents() == ["succeeded", "failed", "never run"]
        assert _color(page, "#steps tr:nth-child(2) td:nth-child(2)") == OK_RGB
        assert _color(page, "#steps tr:nth-child(3) td:nth-child(2)") == BAD_RGB
        assert page.locator("svg.timeline .attempt.failed").count() == 1
        assert page.errors == []


def test_the_live_tail_shows_an_event_written_while_watching(url: str, page: Any) -> None:
    """A transition recorded while a plugin's page is open appears in its table within seconds."""
    with served(url) as s:
        page.goto(s.base + f"/streams/plugin:{PLUGIN}")
        before = page.locator("#events tbody tr").count()
        with open_store(url) as writer:
            writer.plugins.machine(PLUGIN).transition_to(PluginPhase.STARTING, "tail me")
        page.wait_for_selector("#events tbody tr.new", timeout=15_000)
        assert page.locator("#events tbody tr").count() == before + 1
        assert "tail me" in (page.locator("#events tbody tr.new").text_content() or "")
        page.wait_for_selector("#tail-status:has-text('live: version')")
        page.click("#events tbody tr.new a:text('state')")
        page.wait_for_selector("#diff")
        assert "Starting" in (page.locator("#diff").text_content() or "")
        assert page.errors == []


def test_state_pages_step_through_versions_with_their_changes(url: str, page: Any) -> None:
    """From an event's state link, previous and next walk the versions; each shows what its event changed."""
    with served(url) as s:
        page.goto(s.base + f"/streams/plugin:{PLUGIN}")
        page.click("#events tbody tr:nth-child(3) a:text('state')")
        page.wait_for_selector("#diff")
        assert page.locator("h1").text_content() == f"plugin:{PLUGIN} at version 3"
        page.click("#previous")
        page.wait_for_url("**/at/2")
        assert "Installing" in (page.locator("#diff").text_content() or "")
        page.click("#next")
        page.wait_for_url("**/at/3")
        assert page.errors == []


def test_auto_refresh_reloads_the_page_once_switched_on(url: str, page: Any) -> None:
    """Ticking auto-refresh reloads the overview (a mark left on the old page is gone) and stays on."""
    with served(url) as s:
        page.goto(s.base + "/")
        page.evaluate("window.mark = 1")
        page.check("#auto-refresh")
        page.wait_for_function("window.mark === undefined", timeout=15_000)
        assert page.is_checked("#auto-refresh")
        page.uncheck("#auto-refresh")
        assert page.errors == []


def test_retry_button_only_with_token_and_actions(url: str, page: Any) -> None:
    """Read-only, /errors says how to allow retries; with a token and actions its button retries."""
    poison(url)
    with served(url) as s:
        page.goto(s.base + "/errors")
        assert page.locator("#no-actions").count() == 1
        assert page.locator("#retry").count() == 0
        assert page.locator("#dead-letters a:text('plugin:poison')").count() == 1
    with served(url, token="s3cret", allow_actions=True) as s:  # noqa: S106 - a test token
        page.goto(s.base + "/errors?token=s3cret")
        page.click("#filters a:text('plugin_phases')")
        page.click("#retry")
        page.wait_for_selector("#retried")
        assert page.locator("#retried").text_content() == "0 event(s) folded on retry"
        assert page.errors == []
