"""The retention policy: which positions it archives, run alone and as a following runner's chore."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cli_support import assert_usage_error, phaselog
from task_helpers import wait_for

from phaselog.adapters import Store, open_store
from phaselog.adapters.audit.history import verify
from phaselog.adapters.retention import Retention, RetentionPolicy, retention_cutoff
from phaselog.domain.errors import ValidationFailed
from phaselog.domain.plugin import PluginPhase
from phaselog.projections import Projections


def _fill(store: Store, plugins: int, first: int = 0) -> None:
    """Two events for each of ``plugins`` new plugins."""
    for n in range(first, first + plugins):
        store.plugins.machine(f"p{n:03d}").transition_to(PluginPhase.INSTALLING, "fetching")


def test_the_cutoff_reaches_the_furthest_rule_and_waits_for_enough() -> None:
    """``before`` is the further of age and count, never past the horizon or the newest event."""
    policy = RetentionPolicy(Path("x"), keep_events=10, min_events=5)
    assert retention_cutoff(policy, head=100, horizon=100, archived_before=1, first_young=None) == 91
    assert retention_cutoff(policy, head=100, horizon=50, archived_before=1, first_young=None) == 51
    assert retention_cutoff(policy, head=100, horizon=100, archived_before=88, first_young=None) is None
    aged = RetentionPolicy(Path("x"), max_age=timedelta(days=1), keep_events=10, min_events=5)
    assert retention_cutoff(aged, head=100, horizon=100, archived_before=1, first_young=40) == 91
    assert retention_cutoff(aged, head=100, horizon=100, archived_before=1, first_young=200) == 100
    only_age = RetentionPolicy(Path("x"), max_age=timedelta(days=1), min_events=1)
    assert retention_cutoff(only_age, head=100, horizon=100, archived_before=1, first_young=30) == 30


def test_a_policy_needs_a_rule() -> None:
    """A policy without any rule, or with a non-positive one, is refused."""
    for bad in (
        {},
        {"keep_events": 0},
        {"max_age": timedelta(0)},
        {"keep_events": 5, "min_events": 0},
    ):
        with pytest.raises(ValidationFailed):
            RetentionPolicy(Path("x"), **bad)


def test_retention_archives_what_it_no_longer_keeps_and_verifies(durable_url: str, tmp_path: Path) -> None:
    """Keeping the newest 10 events, a run archives the rest into a verified file; the next run waits."""
    with open_store(durable_url) as store:
        _fill(store, 15)  # 30 events
        chore = Retention(store, RetentionPolicy(tmp_path / "archives", keep_events=10, min_events=5))
        first = chore.run()
        assert first.outcome == "archived"
        assert first.report is not None
        assert (first.report.start, first.report.before, first.report.events) == (1, 21, 20)
        assert chore.run().outcome == "nothing"
        (path,) = sorted((tmp_path / "archives").iterdir())
        assert path.name == "phaselog-000000000001-000000000020.jsonl.gz"
        assert verify(store, archives=[path]).ok
        _fill(store, 20, first=100)  # 40 more
        assert chore.run().report.before == store.max_position() - 9  # type: ignore[union-attr]


def test_retention_by_age(durable_url: str, tmp_path: Path) -> None:
    """With a tiny max_age every event but the newest is old enough to archive."""
    with open_store(durable_url) as store:
        _fill(store, 5)
        run = Retention(
            store, RetentionPolicy(tmp_path, max_age=timedelta(microseconds=1), min_events=1)
        ).run()
        assert run.report is not None
        assert run.report.before == store.max_position()


def test_a_legal_hold_holds_retention_back(durable_url: str, tmp_path: Path) -> None:
    """A hold on a stream of the segment makes the run ``held``: no file, nothing recorded."""
    with open_store(durable_url) as store:
        _fill(store, 10)
        store.hold("plugin:p003", reason="litigation")
        run = Retention(store, RetentionPolicy(tmp_path / "a", keep_events=2, min_events=1)).run()
        assert run.outcome == "held"
        assert "plugin:p003" in (run.held or "")
        assert not (tmp_path / "a").exists() or not list((tmp_path / "a").iterdir())


def test_a_following_runner_applies_the_policy(durable_url: str, tmp_path: Path) -> None:
    """Given the policy as a chore, a following runner archives on its own (one runner holds its lease)."""
    with open_store(durable_url) as store:
        _fill(store, 10)
        chore = Retention(store, RetentionPolicy(tmp_path / "a", keep_events=5, min_events=5, interval=0.2))
        with Projections(store, chores=[chore]) as views:
            views.start()
            wait_for(
                lambda: chore.last is not None and chore.last.outcome == "archived", what="a retention run"
            )
        assert len(list((tmp_path / "a").iterdir())) == 1


def test_runner_retention_options_are_checked_first(tmp_path: Path) -> None:
    """A retention option without --archive-dir, or --archive-dir without a rule, is a usage error."""
    url = ["--url", f"sqlite:///{tmp_path / 'none.db'}"]
    no_dir = phaselog("projections", "run", "--retain-days", "30", *url, cwd=tmp_path)
    assert "--archive-dir" in assert_usage_error(no_dir, "--archive-dir")
    no_rule = phaselog("projections", "run", "--archive-dir", str(tmp_path / "a"), *url, cwd=tmp_path)
    assert "--retain-events" in assert_usage_error(no_rule, "--archive-dir")
    assert not (tmp_path / "none.db").exists()
