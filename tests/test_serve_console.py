"""The console's searches, pages and actions over HTTP, on SQLite and PostgreSQL (the JSON API and HTML)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from cli_support import assert_usage_error, phaselog
from serve_support import (
    FAILED_PLAN,
    FAILED_TASK,
    PLAN,
    PLUGIN,
    TRANSITIONS,
    fetch,
    poison,
    seeded_url,
    served,
)

from phaselog.adapters import open_store
from phaselog.adapters.serve.app import TOKEN_ENV, create_app
from phaselog.domain.errors import ValidationFailed
from phaselog.domain.plugin import PluginPhase

from conftest import schema_url

BULK = 130


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> str:
    """One seeded store per backend for the whole module (the console only reads it)."""
    return seeded_url(_module_url(tmp_path_factory, request), failures=True, plugins=BULK)


def _module_url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> str:
    kind = request.param
    if kind == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('console')}/console.db"
    return schema_url(request.getfixturevalue("pg_dsn"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test here runs on SQLite and on PostgreSQL."""
    if "url" in metafunc.fixturenames:
        metafunc.parametrize("url", ["sqlite", "postgresql"], indirect=True, scope="module")


def _json(base: str, path: str) -> Any:
    status, _, body = fetch(base + path)
    assert status == 200, (path, body[:300])
    return orjson.loads(body)


def test_stream_search_pages_through_every_stream_by_id(url: str) -> None:
    """Following each page's next link lists every plugin stream once, in id order, 40 at a time."""
    with served(url) as s:
        expected = [h.stream_id for h in s.store.stream_heads("plugin:")]
        seen: list[str] = []
        path: str | None = "/api/streams?kind=plugin&limit=40"
        pages = 0
        while path is not None:
            status, headers, body = fetch(s.base + path)
            assert status == 200
            rows = orjson.loads(body)
            assert len(rows) <= 40
            seen += [r["stream_id"] for r in rows]
            link = headers.get("link")
            path = None if link is None else re.fullmatch(r'<([^>]+)>; rel="next"', link)[1]  # type: ignore[index]
            pages += 1
        assert seen == expected
        assert pages == -(-len(expected) // 40)
        page = fetch(s.base + "/streams?kind=plugin&q=bulk1&limit=20")[2].decode()
        listed = re.findall(r'<a href="/streams/plugin%3Abulk(\d+)">', page)
        assert listed == [f"{i}" for i in range(100, 120)]
        assert (
            'id="next-page" href="?kind=plugin&amp;q=bulk1&amp;limit=20&amp;after=plugin%3Abulk119"' in page
        )
        nothing = fetch(s.base + "/streams?kind=task&q=nobody")[2].decode()
        assert "no stream starts with <code>task:nobody</code>" in nothing


def test_events_search_by_type_and_time(url: str) -> None:
    """The log page finds events by type and between two times (bisected by position), both bounds kept."""
    with served(url) as s:
        changed = _json(s.base, "/api/events?type=PhaseChanged&limit=500")["events"]
        assert [e["data"]["reason"] for e in changed] == [r for _, r in TRANSITIONS]
        third = datetime.fromisoformat(changed[2]["timestamp"])
        fifth = datetime.fromisoformat(changed[4]["timestamp"])
        window = f"since={quote(third.isoformat())}&until={quote(fifth.isoformat())}&type=PhaseChanged"
        found = _json(s.base, f"/api/events?{window}")
        assert [e["position"] for e in found["events"]] == [e["position"] for e in changed[2:5]]
        every = _json(s.base, f"/api/events?since={quote(third.isoformat())}&limit=500")
        assert every["events"][0]["position"] == changed[2]["position"]
        future = (datetime.now(third.tzinfo) + timedelta(days=1)).isoformat()
        assert _json(s.base, f"/api/events?since={quote(future)}")["events"] == []
        first = _json(s.base, "/api/events?limit=7")
        rest = _json(s.base, f"/api/events?limit=7&after={first['next']}")
        assert [e["position"] for e in first["events"] + rest["events"]] == list(range(1, 15))
        html = fetch(s.base + "/events?since=1d&type=PhaseChanged")[2].decode()
        assert html.count(f'<a href="/streams/plugin%3A{PLUGIN}">') == len(TRANSITIONS)


def test_overview_counts_drill_down_to_their_rows(url: str) -> None:
    """Each count on the overview links to the read model's rows filtered by it; the rows page by key."""
    with served(url) as s:
        overview = fetch(s.base + "/")[2].decode()
        assert 'href="/projections/task_statuses?state_name=Failed"' in overview
        assert 'href="/projections/plan_runs?status=failed"' in overview
        failed = _json(s.base, "/api/projections/task_statuses?state_name=Failed")
        assert [r["task"] for r in failed["rows"]] == [FAILED_TASK.removeprefix("task:")]
        page = fetch(s.base + "/projections/plan_runs?status=failed")[2].decode()
        assert f'href="/streams/{quote(FAILED_PLAN, safe="")}"' in page
        assert 'class="tone-bad">failed</td>' in page
        first = _json(s.base, "/api/projections/plugin_phases?phase=Uninstalled&limit=50")
        second = _json(
            s.base, f"/api/projections/plugin_phases?phase=Uninstalled&limit=50&after={first['next']}"
        )
        third = _json(
            s.base, f"/api/projections/plugin_phases?phase=Uninstalled&limit=50&after={second['next']}"
        )
        ids = [r["plugin_id"] for r in first["rows"] + second["rows"] + third["rows"]]
        assert ids == [f"bulk{i:03d}" for i in range(BULK)]
        assert third["next"] is None


def test_failed_plan_and_task_lead_with_their_failure(url: str) -> None:
    """A failed plan names its failed step, hook and error and lists a step never run; a task its error."""
    with served(url) as s:
        plan = _json(s.base, f"/api/streams/{FAILED_PLAN}")
        assert plan["failure"]["error"] == "migrate: ValueError: column exists"
        assert plan["failure"]["causes"] == ["migrate exec hook, attempt 1: ValueError: column exists"]
        steps = [(st["name"], st["status"], st["cleanup"]) for st in plan["steps"]]
        assert steps == [
            ("backup", "succeeded", "cleaned up"),
            ("migrate", "failed", None),
            ("restart", "never run", None),
        ]
        html = fetch(s.base + f"/streams/{FAILED_PLAN}")[2].decode()
        assert '<div class="failure tone-bad" id="failure">' in html
        assert '<tr class="step-never"><td>restart</td>' in html
        task = _json(s.base, f"/api/streams/{FAILED_TASK}")["failure"]
        assert task["title"] == "Task failed (run 1)"
        assert task["error"] == "OSError: no space left on device"
        assert "WARNING: disk almost full" in task["causes"]
        assert _json(s.base, f"/api/streams/{PLAN}")["failure"] is None  # it succeeded on retry


def test_state_at_each_event_and_what_it_changed(url: str) -> None:
    """The state after version N is the aggregate loaded at N; the diff names what that event changed."""
    stream = f"plugin:{PLUGIN}"
    with served(url) as s:
        third = _json(s.base, f"/api/streams/{stream}/at/3")
        assert third["state"]["phase"] == PluginPhase.INSTALLED.value
        assert [(c["path"], c["kind"], c["before"], c["after"]) for c in third["changes"]] == [
            ("phase", "changed", "Installing", "Installed")
        ]
        assert third["event"]["data"]["reason"] == "verified"
        first = _json(s.base, f"/api/streams/{stream}/at/1")
        assert {c["kind"] for c in first["changes"]} == {"added"}
        assert fetch(s.base + f"/api/streams/{stream}/at/99")[0] == 404
        html = fetch(s.base + f"/streams/{stream}/at/3")[2].decode()
        assert '<a id="previous" href="2">' in html
        assert 'id="diff"' in html


def test_a_stream_answers_only_newer_events_for_the_live_tail(url: str) -> None:
    """``?after=V`` answers the events after version V only (what the live tail polls)."""
    stream = f"plugin:{PLUGIN}"
    with served(url) as s:
        every = _json(s.base, f"/api/streams/{stream}")["events"]
        newer = _json(s.base, f"/api/streams/{stream}?after=5")["events"]
        assert newer == every[5:]
        assert _json(s.base, f"/api/streams/{stream}?after={len(every)}")["events"] == []


def test_bad_search_parameters_are_a_400_naming_the_problem(url: str) -> None:
    """A bad limit, kind, time, type, position or filter is refused with 400 and says what is wrong."""
    with served(url) as s:
        for path, says in [
            ("/api/streams?limit=0", "limit must be between 1 and 500"),
            ("/api/streams?limit=ten", "limit must be a whole number"),
            ("/api/streams?kind=robot", "no stream kind 'robot'"),
            ("/api/events?since=soonish", "'soonish' is not a time"),
            ("/api/events?type=Exploded", "no event type 'Exploded'"),
            ("/api/events?after=x", "after must be a position"),
            ("/api/projections/plugin_phases?transitions=many", "transitions is a number"),
            ("/api/streams/plugin:camera?after=last", "after must be a version"),
        ]:
            status, _, body = fetch(s.base + path)
            assert status == 400, path
            assert says in orjson.loads(body)["error"], path
        assert fetch(s.base + "/streams?limit=0")[0] == 400


def test_dead_letters_are_listed_and_retried_only_with_token_and_actions(url: str) -> None:
    """Dead letters show on /errors; retrying needs a token and allow_actions, else 400 and nothing runs."""
    position = poison(url)
    with served(url) as s:
        (letter,) = _json(s.base, "/api/errors")
        assert (letter["projection"], letter["position"], letter["stream"]) == (
            "plugin_phases",
            position,
            "plugin:poison",
        )
        page = fetch(s.base + "/errors")[2].decode()
        assert 'id="no-actions"' in page
        assert "ValueError" in page
        status, _, body = fetch(s.base + "/errors/retry?model=plugin_phases", method="POST")
        assert status == 400
        assert b"allows no actions" in body
    with served(url, token="s3cret", allow_actions=True) as s:  # noqa: S106 - a test token
        auth = {"Authorization": "Bearer s3cret"}
        assert fetch(s.base + "/errors/retry", method="POST")[0] == 401
        status, headers, _ = fetch(s.base + "/errors/retry?model=plugin_phases", method="POST", headers=auth)
        assert (status, headers.get("location")) == (200, None)  # urllib followed the 303 to /errors
        page = fetch(s.base + "/errors?model=plugin_phases&retried=0", headers=auth)[2].decode()
        assert 'id="retry"' in page
        assert 'id="retried">0 event(s) folded on retry' in page  # still poison: it stays a dead letter
    with open_store(url) as store, pytest.raises(ValidationFailed, match="actions need a token"):
        create_app(store, allow_actions=True)


def test_serve_refuses_actions_without_a_token(tmp_path: Path) -> None:
    """``serve --allow-actions`` without $PHASELOG_SERVE_TOKEN is a usage error (exit 2); nothing served."""
    url = f"sqlite:///{tmp_path / 'none.db'}"
    result = phaselog(
        "serve", "--url", url, "--allow-actions", "--port", "1", cwd=tmp_path, env={TOKEN_ENV: ""}
    )
    assert "needs a token" in assert_usage_error(result, "--allow-actions")
    assert not (tmp_path / "none.db").exists()
