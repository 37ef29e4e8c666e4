"""Stalls are named and lag rises during one: status, /healthz, the console, metrics, the log."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import psycopg
import pytest
from cli_support import json_out, phaselog
from serve_support import fetch, metric_sample, served
from stall_support import STALL_UNHEALTHY, prepared_transaction, stall_url, stalled
from task_helpers import wait_for

from phaselog.adapters import Store, open_store
from phaselog.adapters.serve import health, metrics_server

from horizon_support import base_dsn, held_append, idle_transaction, other_database
from support_events import open_counter

pytestmark = pytest.mark.slow


@pytest.fixture
def url(make_url: Callable[[str], str]) -> str:
    """A fresh PostgreSQL store URL with stall thresholds of 0.2 s and 0.5 s."""
    return stall_url(make_url)


def _caught_up(store: Store) -> None:
    """Every read model has applied every committed event; no append is in flight."""
    store.projections.catch_up()
    head = store.max_position()
    assert store.horizon().in_flight == ()
    assert {(r["position"], r["lag"], r["lag_seconds"]) for r in store.projections.status()} == {
        (head, 0, 0.0)
    }


def test_projections_status_names_the_stall_in_its_table_and_json(url: str, tmp_path: Path) -> None:
    """`projections status` names the stalled append (pid, remedy); --json carries it on every row."""
    with open_store(url) as store, stalled(store, url) as conn:
        pid = conn.info.backend_pid
        shown = phaselog("projections", "status", "--url", url, cwd=tmp_path, columns=400)
        assert shown.returncode == 0, shown.stderr
        assert "horizon: readers at position 1 of 4, 2 committed event(s) held back" in shown.stdout
        assert f"DEGRADED: pid {pid} ('held-append')" in shown.stdout
        assert f"end it with SELECT pg_terminate_backend({pid})" in shown.stdout
        rows = json_out(phaselog("projections", "status", "--json", "--url", url, cwd=tmp_path))
        assert {r["name"] for r in rows} == {
            "plugin_phases",
            "task_statuses",
            "plan_runs",
            "recoverable_states",
        }
        for row in rows:
            horizon = row["horizon"]
            assert (horizon["position"], horizon["head"], horizon["held_back"]) == (1, 4, 2)
            assert horizon["stalled"]
            assert horizon["unhealthy"]
            assert horizon["stall"]["pid"] == pid
            assert horizon["stall"]["application_name"] == "held-append"
            assert horizon["stall"]["state"] == "idle in transaction"
            assert horizon["stall"]["remedy"] == f"SELECT pg_terminate_backend({pid})"
            assert (row["position"], row["head"], row["lag"]) == (1, 4, 3)
            assert row["lag_seconds"] > STALL_UNHEALTHY
        conn.commit()
    with open_store(url) as store:
        _caught_up(store)
    rows = json_out(phaselog("projections", "status", "--json", "--url", url, cwd=tmp_path))
    assert {(r["lag"], r["horizon"]["stall"], r["horizon"]["held_back"]) for r in rows} == {(0, None, 0)}


def test_lag_rises_while_the_read_side_is_stalled_and_falls_once_it_ends(url: str) -> None:
    """A read model's lag (events, seconds) is measured from committed events, so it grows during a stall."""
    with open_store(url) as store, stalled(store, url) as conn:
        first = {r["name"]: r for r in store.projections.status()}
        time.sleep(0.3)
        store.save(open_counter("c:later-still"))
        second = {r["name"]: r for r in store.projections.status()}
        horizon = store.horizon()
        for name, row in second.items():
            assert row["head"] == horizon.head == 5
            assert row["lag"] == horizon.head - horizon.position == 4
            assert row["lag"] > first[name]["lag"]
            assert row["lag_seconds"] >= first[name]["lag_seconds"] + 0.3 > STALL_UNHEALTHY
        conn.commit()
    with open_store(url) as store:
        _caught_up(store)


def test_healthz_is_degraded_with_the_stall_then_ok_once_it_ends(url: str) -> None:
    """health() and the runner's /healthz answer 503 "degraded" naming the stall, then 200 "ok" after it."""
    with open_store(url) as store, metrics_server(store, 0) as server:
        assert server is not None
        base = f"http://127.0.0.1:{server.port}"
        code, body = health(store)
        assert (code, body["status"], body["horizon"]["stalled"]) == (200, "ok", False)
        with stalled(store, url) as conn:
            pid = conn.info.backend_pid
            code, body = health(store)
            assert (code, body["status"]) == (503, "degraded")
            assert body["stall"]["pid"] == pid
            assert body["stall"]["remedy"] == f"SELECT pg_terminate_backend({pid})"
            assert f"pid {pid}" in body["reason"]
            assert (body["position"], body["horizon"]["position"], body["horizon"]["held_back"]) == (4, 1, 2)
            status, _, raw = fetch(base + "/healthz")
            served_body = orjson.loads(raw)
            assert (status, served_body["status"], served_body["stall"]["pid"]) == (503, "degraded", pid)
            conn.commit()
        code, body = health(store)
        assert (code, body["status"], body["horizon"]["in_flight"], body["horizon"]["stall"]) == (
            200,
            "ok",
            [],
            None,
        )
        assert fetch(base + "/healthz")[0] == 200
        _caught_up(store)


def test_the_console_names_the_stall_on_its_overview_and_healthz(url: str) -> None:
    """The console's overview shows the stall (pid, remedy) first; its /healthz answers 503 "degraded"."""
    with open_store(url) as store, stalled(store, url) as conn, served(url) as console:
        pid = conn.info.backend_pid
        status, _, page = fetch(console.base + "/")
        html = page.decode()
        assert status == 200
        assert html.index('id="stall"') < html.index('id="read-models"')
        assert f'<code id="stall-pid">{pid}</code>' in html
        assert f'<code id="stall-remedy">SELECT pg_terminate_backend({pid})</code>' in html
        assert "Degraded: readers stalled" in html
        assert '<td class="num warn" id="horizon-held">2</td>' in html
        status, _, body = fetch(console.base + "/healthz")
        assert (status, orjson.loads(body)["stall"]["pid"]) == (503, pid)
        conn.commit()
        wait_for(lambda: fetch(console.base + "/healthz")[0] == 200, 30, "the console healthy again")
        html = fetch(console.base + "/")[2].decode()
        assert 'id="stall"' not in html
        assert '<p class="ok" id="horizon-state">moving</p>' in html


def test_metrics_show_the_blocking_pid_the_horizon_lag_and_held_back_events(url: str) -> None:
    """/metrics reports the stalled append's pid, how long the horizon is held and the events behind it."""
    with open_store(url) as store, metrics_server(store, 0) as server:
        assert server is not None
        base = f"http://127.0.0.1:{server.port}/metrics"
        with stalled(store, url) as conn:
            text = fetch(base)[2].decode()
            assert metric_sample(text, "phaselog_horizon_blocking_pid") == conn.info.backend_pid
            assert metric_sample(text, "phaselog_horizon_lag_seconds") > STALL_UNHEALTHY
            assert metric_sample(text, "phaselog_horizon_held_back") == 2
            assert metric_sample(text, "phaselog_projection_lag", projection="plugin_phases") == 3
            assert (
                metric_sample(text, "phaselog_projection_lag_seconds", projection="plugin_phases")
                > STALL_UNHEALTHY
            )
            conn.commit()
        _caught_up(store)

        def released() -> bool:
            text = fetch(base)[2].decode()
            return (
                metric_sample(text, "phaselog_horizon_blocking_pid")
                == 0
                == metric_sample(text, "phaselog_horizon_held_back")
                and metric_sample(text, "phaselog_projection_lag", projection="plugin_phases") == 0
            )

        wait_for(released, 30, "the metrics to show the stall ended")
        assert metric_sample(fetch(base)[2].decode(), "phaselog_horizon_lag_seconds") == 0


def test_one_warning_is_logged_per_stall_not_per_look(url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Many looks at one stall log one warning naming it; a second stall logs a second warning."""
    caplog.set_level(logging.WARNING, logger="phaselog.horizon")
    with open_store(url) as store:
        with stalled(store, url) as conn:
            for _ in range(5):
                store.horizon()
                store.projections.status()
                time.sleep(0.05)
            pid = conn.info.backend_pid
        warnings = [r for r in caplog.records if r.name == "phaselog.horizon"]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert warnings[0].levelno == logging.WARNING
        assert f"pid {pid}" in warnings[0].getMessage()
        with held_append(store, url, "c:second") as second:
            time.sleep(0.3)
            for _ in range(3):
                store.horizon()
            second_pid = second.info.backend_pid
        warnings = [r for r in caplog.records if r.name == "phaselog.horizon"]
        assert len(warnings) == 2, [r.getMessage() for r in warnings]
        assert f"pid {second_pid}" in warnings[1].getMessage()


def _no_stall_while(store: Store) -> None:
    """Appends land and are read, nothing is named, health stays ok, for longer than stall_unhealthy."""
    for n in range(3):
        store.save(open_counter(f"c:meanwhile-{n}"))
    time.sleep(STALL_UNHEALTHY + 0.1)
    horizon = store.horizon()
    assert (horizon.position, horizon.held_back, horizon.in_flight, horizon.stall) == (3, 0, (), None)
    code, body = health(store)
    assert (code, body["status"], body["horizon"]["lag_seconds"]) == (200, "ok", 0.0)
    _caught_up(store)


def test_an_idle_transaction_in_another_database_is_no_stall(url: str, pg_dsn: str) -> None:
    """An idle transaction in another database holds nothing: no stall, health ok, read models catch up."""
    with open_store(url) as store, idle_transaction(other_database(pg_dsn, "phaselog_elsewhere")):
        _no_stall_while(store)


def test_an_idle_transaction_on_another_table_is_no_stall(url: str) -> None:
    """An idle transaction in this database that wrote another table holds nothing: no stall, health ok."""
    table = "stall_scratch_" + uuid.uuid4().hex[:8]
    with psycopg.connect(base_dsn(url), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (x int)".encode())
    try:
        with open_store(url) as store, idle_transaction(base_dsn(url), f"INSERT INTO {table} VALUES (1)"):
            _no_stall_while(store)
    finally:
        with psycopg.connect(base_dsn(url), autocommit=True) as conn:
            conn.execute(f"DROP TABLE {table}".encode())


def test_a_prepared_transaction_is_no_stall_and_the_doctor_names_it(url: str, tmp_path: Path) -> None:
    """A prepared transaction holds no reader (health ok); the doctor warns, naming its gid, exit 1."""
    with open_store(url) as store, prepared_transaction(url) as gid:
        _no_stall_while(store)
        assert gid in [p.gid for p in store.horizon().prepared]
        done = phaselog("doctor", "--json", "--url", url, cwd=tmp_path)
        report = orjson.loads(done.stdout)
        assert (done.returncode, report["status"], report["exit_code"]) == (1, "warn", 1), done.stdout
        checks = {c["check"]: c for c in report["checks"]}
        assert {n for n, c in checks.items() if c["status"] != "ok"} == {"prepared transactions"}
        assert f"'{gid}'" in checks["prepared transactions"]["detail"]
        assert f"ROLLBACK PREPARED '{gid}'" in checks["prepared transactions"]["detail"]
        assert gid in [p["gid"] for p in checks["prepared transactions"]["data"]["prepared"]]
        assert checks["horizon"]["data"]["stall"] is None


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_memory_and_sqlite_never_stall(kind: str, make_url: Callable[[str], str], tmp_path: Path) -> None:
    """One writer, no horizon to hold: no append in flight, health ok, status shows no stall."""
    store_url = make_url(kind)
    with open_store(store_url) as store:
        for n in range(3):
            store.save(open_counter(f"c:{n}"))
        _caught_up(store)
        horizon = store.horizon()
        assert (horizon.position, horizon.head, horizon.held_back, horizon.prepared) == (3, 3, 0, ())
        assert (horizon.stall, horizon.lag_seconds, horizon.unhealthy) == (None, 0.0, False)
        assert health(store)[1]["horizon"] == horizon.as_dict()
    if kind == "sqlite":
        shown = phaselog("projections", "status", "--url", store_url, cwd=tmp_path, columns=400)
        assert shown.returncode == 0, shown.stderr
        assert "horizon: readers at position 3 of 3, 0 committed event(s) held back" in shown.stdout
        assert "STALLED" not in shown.stdout
        assert "DEGRADED" not in shown.stdout
        rows = json_out(phaselog("projections", "status", "--json", "--url", store_url, cwd=tmp_path))
        assert {(r["horizon"]["stall"], r["horizon"]["stalled"]) for r in rows} == {(None, False)}
