"""``phaselog doctor``: one verdict per check, and an exit status a script acts on (0 ok, 1 warn, 2 fail)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from cli_support import phaselog, schema_v1_url
from stall_support import stall_url, stalled

from phaselog.adapters import open_store
from phaselog.adapters.doctor import EXIT_CODES, Check, Diagnosis, check_store
from phaselog.adapters.migrate import SCHEMA_VERSION

from support_events import open_counter

pytestmark = pytest.mark.slow

CHECKS = ["connectivity", "schema version", "horizon"]
READ_MODELS = [
    f"read model {n}" for n in ("plugin_phases", "task_statuses", "plan_runs", "recoverable_states")
]
LATER = ["dead letters", "last seal", "prepared transactions"]


def _doctor(url: str, cwd: Path, *options: str) -> tuple[int, dict[str, Any]]:
    """``phaselog doctor --json``: its exit status and report (whose exit_code must agree)."""
    done = phaselog("doctor", "--json", "--url", url, *options, cwd=cwd)
    report = orjson.loads(done.stdout)
    assert report["exit_code"] == done.returncode, (done.stdout, done.stderr)
    return done.returncode, report


def _verdicts(report: dict[str, Any]) -> dict[str, str]:
    return {c["check"]: c["status"] for c in report["checks"]}


def test_exit_status_is_the_worst_verdict() -> None:
    """0 when every check is ok or n/a, 1 when the worst is a warning, 2 as soon as one check failed."""
    ok, na = Check("a", "ok", ""), Check("b", "n/a", "")
    warn, fail = Check("c", "warn", ""), Check("d", "fail", "")
    assert EXIT_CODES == {"ok": 0, "n/a": 0, "warn": 1, "fail": 2}
    assert Diagnosis("u", (ok, na)).exit_code == 0
    assert Diagnosis("u", (ok, warn, na)).exit_code == 1
    assert Diagnosis("u", (warn, fail, ok)).exit_code == 2
    assert Diagnosis("u", (fail, warn)).as_dict()["status"] == "fail"


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_healthy_memory_or_sqlite_store_is_all_ok(kind: str, make_url: Callable[[str], str]) -> None:
    """Every check of a caught-up memory or SQLite store is ok; memory has no seal, neither has 2PC (n/a)."""
    with open_store(make_url(kind)) as store:
        store.save(open_counter("c:1"))
        store.projections.catch_up()
        checks = check_store(store)
    assert [c.name for c in checks] == [*CHECKS, *READ_MODELS, *LATER]
    na = {"prepared transactions"} | ({"last seal"} if kind == "memory" else set())
    assert {c.name for c in checks if c.status == "n/a"} == na
    assert {c.status for c in checks if c.name not in na} == {"ok"}, checks
    assert Diagnosis(store.url, tuple(checks)).exit_code == 0


def test_the_cli_on_a_sqlite_store_is_ok_then_warns_on_an_old_unsealed_event(
    make_url: Callable[[str], str], tmp_path: Path
) -> None:
    """`phaselog doctor` prints its table, exits 0; with an event unsealed past --seal-age it exits 1."""
    url = make_url("sqlite")
    with open_store(url, seal_interval=0) as store:  # a store that does not seal on its own
        store.save(open_counter("c:1"))
        store.projections.catch_up()
    shown = phaselog("doctor", "--url", url, cwd=tmp_path, columns=200)
    assert shown.returncode == 0, shown.stdout
    assert "overall: ok (exit 0)" in shown.stdout
    assert f"schema version {SCHEMA_VERSION} (current)" in shown.stdout
    code, report = _doctor(url, tmp_path, "--seal-age", "0")
    assert code == 1
    assert {k for k, v in _verdicts(report).items() if v != "ok"} == {"last seal", "prepared transactions"}
    (seal,) = [c for c in report["checks"] if c["check"] == "last seal"]
    assert "never sealed; unsealed from position 1" in seal["detail"]
    assert "phaselog audit seal" in seal["detail"]
    assert phaselog("audit", "seal", "--url", url, cwd=tmp_path).returncode == 0
    code, report = _doctor(url, tmp_path, "--seal-age", "0")
    assert code == 0
    (seal,) = [c for c in report["checks"] if c["check"] == "last seal"]
    assert seal["detail"].startswith("seal #1 (unsigned) up to position 1")
    assert seal["data"]["seal"]["horizon"] == 1


def test_the_doctor_names_a_stall_and_fails_then_passes_once_it_ends(
    make_url: Callable[[str], str], tmp_path: Path
) -> None:
    """A stall past stall_unhealthy fails the horizon check naming the append (exit 2); after it, exit 0."""
    url = stall_url(make_url)
    with open_store(url) as store, stalled(store, url) as conn:
        pid = conn.info.backend_pid
        code, report = _doctor(url, tmp_path)
        assert code == 2
        verdicts = _verdicts(report)
        assert verdicts["horizon"] == "fail"
        assert {verdicts[n] for n in READ_MODELS} == {"warn"}
        (horizon,) = [c for c in report["checks"] if c["check"] == "horizon"]
        assert f"pid {pid} ('held-append')" in horizon["detail"]
        assert f"SELECT pg_terminate_backend({pid})" in horizon["detail"]
        assert horizon["data"]["stall"]["pid"] == pid
        (model,) = [c for c in report["checks"] if c["check"] == "read model plugin_phases"]
        assert "waiting for the stalled append" in model["detail"]
        shown = phaselog("doctor", "--url", url, cwd=tmp_path, columns=400)
        assert shown.returncode == 2
        assert f"pid {pid}" in shown.stdout
        assert "overall: fail (exit 2)" in shown.stdout
        conn.commit()
    with open_store(url) as store:
        store.projections.catch_up()
    code, report = _doctor(url, tmp_path)
    assert (code, set(_verdicts(report).values())) == (0, {"ok"})


def test_a_store_that_does_not_open_fails_connectivity(tmp_path: Path) -> None:
    """A missing store fails connectivity (exit 2) and every later check is n/a, not ok."""
    code, report = _doctor(f"sqlite:///{tmp_path / 'missing.db'}", tmp_path)
    assert code == 2
    verdicts = _verdicts(report)
    assert verdicts.pop("connectivity") == "fail"
    assert set(verdicts.values()) == {"n/a"}
    assert "no phaselog store" in report["checks"][0]["detail"]
    assert not (tmp_path / "missing.db").exists()


def test_an_outdated_schema_fails_naming_the_migration(tmp_path: Path, pg_dsn: str) -> None:
    """A store of an older schema is reached but fails the schema check, naming `phaselog migrate`."""
    url = schema_v1_url("postgresql", tmp_path, pg_dsn)
    code, report = _doctor(url, tmp_path)
    assert code == 2
    verdicts = _verdicts(report)
    assert (verdicts["connectivity"], verdicts["schema version"]) == ("ok", "fail")
    (schema,) = [c for c in report["checks"] if c["check"] == "schema version"]
    assert "schema version 1" in schema["detail"]
    assert "phaselog migrate" in schema["detail"]
    assert schema["data"] == {"found": 1, "expected": SCHEMA_VERSION}
