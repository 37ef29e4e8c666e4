"""``phaselog serve`` over HTTP on 127.0.0.1: health, metrics, the JSON API, the token, read-only."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import orjson
import pytest
from serve_support import PLAN, PLUGIN, TASK, TRANSITIONS, fetch, metric_sample, seeded_url, served

from phaselog.adapters import open_store
from phaselog.adapters.serve import health, metrics_server

from conftest import ROOT


@pytest.fixture
def url(durable_url: str) -> str:
    return seeded_url(durable_url)


def test_health_and_metrics(url: str) -> None:
    """/healthz is 200 with the head position and horizon; /metrics has read-model lag and counts."""
    with served(url) as s:
        status, _, body = fetch(s.base + "/healthz")
        assert status == 200
        assert orjson.loads(body) == {
            "status": "ok",
            "store": s.store.url,
            "position": s.store.max_position(),
            "horizon": s.store.horizon().as_dict(),
        }
        status, headers, body = fetch(s.base + "/metrics")
        assert status == 200
        assert headers["content-type"].startswith("text/plain")
        text = body.decode()
        assert metric_sample(text, "phaselog_projection_lag", projection="plugin_phases") == 0
        assert metric_sample(text, "phaselog_plugins", phase="Stopped") == 1
        assert metric_sample(text, "phaselog_tasks", state="Completed") == 1
        assert metric_sample(text, "phaselog_plans", status="succeeded") == 1


def test_api_streams_timeline_and_projection(url: str) -> None:
    """The JSON API lists stream heads, gives a decoded timeline and a read model's status and rows."""
    with served(url) as s:
        status, _, body = fetch(s.base + "/api/streams?prefix=plugin:")
        assert status == 200
        (head,) = orjson.loads(body)
        assert head["stream_id"] == f"plugin:{PLUGIN}"
        assert head["kind"] == "plugin"
        assert head["version"] == len(s.store.stream(f"plugin:{PLUGIN}"))
        everything = {h["stream_id"] for h in orjson.loads(fetch(s.base + "/api/streams")[2])}
        assert {f"plugin:{PLUGIN}", TASK, PLAN} <= everything
        status, _, body = fetch(s.base + f"/api/streams/plugin:{PLUGIN}")
        assert status == 200
        timeline = orjson.loads(body)
        changed = [e for e in timeline["events"] if e["topic"].endswith("PhaseChanged")]
        assert [e["data"]["to_phase"] for e in changed] == [p.value for p, _ in TRANSITIONS]
        assert [e["data"]["reason"] for e in changed] == [r for _, r in TRANSITIONS]
        task = orjson.loads(fetch(s.base + f"/api/streams/{TASK}")[2])
        states = [e["data"]["state"] for e in task["events"] if e["topic"].endswith("TaskStateChanged")]
        assert states == ["running", "completed"]  # task states by name
        levels = [e["data"]["level"] for e in task["events"] if e["topic"].endswith("TaskLogged")]
        assert levels == ["INFO"]
        status, _, body = fetch(s.base + "/api/projections/plugin_phases")
        assert status == 200
        model = orjson.loads(body)
        assert model["status"]["lag"] == 0
        assert model["counts"] == {"Stopped": 1}
        assert [r["plugin_id"] for r in model["rows"]] == [PLUGIN]


def test_unknown_stream_and_projection_are_404(url: str) -> None:
    """An unknown stream or read model is a 404, as JSON under /api and as a page elsewhere."""
    with served(url) as s:
        status, _, body = fetch(s.base + "/api/streams/plugin:nobody")
        assert status == 404
        assert "nobody" in orjson.loads(body)["error"]
        status, _, body = fetch(s.base + "/api/projections/nothing")
        assert status == 404
        assert "plugin_phases" in orjson.loads(body)["error"]  # names the known read models
        status, headers, _ = fetch(s.base + "/streams/plugin:nobody")
        assert status == 404
        assert headers["content-type"].startswith("text/html")


def test_pages_render_the_counts_and_the_timeline(url: str) -> None:
    """The overview shows the counts by phase, state and status; a stream page inlines its SVG timeline."""
    with served(url) as s:
        status, _, body = fetch(s.base + "/")
        page = body.decode()
        assert status == 200
        for text in (
            "Plugins by phase",
            "Stopped",
            "Tasks by state",
            "Completed",
            "Plans by status",
            "succeeded",
        ):
            assert text in page
        status, _, body = fetch(s.base + f"/streams/{PLAN}")
        assert status == 200
        assert '<svg class="timeline"' in body.decode()
        assert body.decode().count('class="mark attempt failed"') == 1  # the first try of "build"


def test_token_is_required_when_set(url: str) -> None:
    """With a token every route but /healthz needs it: as a bearer header, or once as ?token= (a cookie)."""
    with served(url, token="s3cret") as s:  # noqa: S106 - a test token
        assert fetch(s.base + "/healthz")[0] == 200
        assert fetch(s.base + "/api/streams")[0] == 401
        assert fetch(s.base + "/", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert fetch(s.base + "/api/streams", headers={"Authorization": "Bearer s3cret"})[0] == 200
        conn = socket.create_connection(("127.0.0.1", s.server.port), timeout=10)
        try:
            conn.sendall(b"GET /?token=s3cret HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        finally:
            conn.close()
        head = reply.split(b"\r\n\r\n", 1)[0].decode()
        assert head.startswith("HTTP/1.1 303")
        assert "set-cookie: phaselog_token=s3cret" in head.lower()
        assert fetch(s.base + "/", headers={"Cookie": "phaselog_token=s3cret"})[0] == 200


def test_the_console_writes_nothing(url: str) -> None:
    """Browsing every page and running verify leaves the store exactly as it was."""
    with open_store(url) as before:
        head, streams = before.max_position(), before.stream_heads()
    with served(url) as s:
        for path in ("/", "/streams", f"/streams/plugin:{PLUGIN}", f"/streams/{TASK}", f"/streams/{PLAN}"):
            assert fetch(s.base + path)[0] == 200
        assert fetch(s.base + "/verify", method="POST")[0] == 200  # redirected to the overview
        assert getattr(s.store, "read_only", True)
    with open_store(url) as after:
        assert (after.max_position(), after.stream_heads()) == (head, streams)


def test_health_reports_an_unreachable_store(url: str) -> None:
    """health() is 503 with the reason once the store cannot answer."""
    store = open_store(url)
    assert health(store)[0] == 200
    store.close()
    code, body = health(store)
    assert code == 503
    assert body["status"] == "unavailable"


def test_runner_metrics_server(url: str) -> None:
    """metrics_server serves /healthz and /metrics (lag of each read model) for a projections runner."""
    with open_store(url) as store, metrics_server(store, 0) as server:
        assert server is not None
        base = f"http://127.0.0.1:{server.port}"
        assert orjson.loads(fetch(base + "/healthz")[2])["status"] == "ok"
        text = fetch(base + "/metrics")[2].decode()
        assert metric_sample(text, "phaselog_projection_lag", projection="task_statuses") == 0
        assert fetch(base + "/nothing")[0] == 404
        assert "otel_scope_" not in text  # each sample carries its own labels only
        assert 'service_name="phaselog"' in text
        assert "unknown_service" not in text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _until_healthy(proc: subprocess.Popen[bytes], port: int) -> None:
    """Wait (at most 60 s) until ``proc`` answers /healthz on ``port``; fail at once if it exits."""
    deadline = time.monotonic() + 60
    status = 0
    while status != 200:
        assert time.monotonic() < deadline, "no answer on /healthz within 60 s"
        try:
            status = fetch(f"http://127.0.0.1:{port}/healthz")[0]
        except OSError:  # not listening yet: wait a little for it (or for its exit)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.1)
            assert proc.poll() is None, proc.communicate(timeout=30)


def _run(args: list[str], port: int, stop: signal.Signals) -> str:
    """Start ``python -m phaselog ARGS``, wait until it is healthy, send ``stop``; return /metrics text."""
    env = {**os.environ, "PHASELOG_SERVE_TOKEN": ""}
    cmd = [sys.executable, "-m", "phaselog", *args]
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            _until_healthy(proc, port)
            metrics = fetch(f"http://127.0.0.1:{port}/metrics")
            proc.send_signal(stop)
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            assert metrics[0] == 200
            return metrics[2].decode()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=30)


@pytest.mark.slow
def test_serve_command_runs_until_interrupted(url: str) -> None:
    """``phaselog serve`` binds 127.0.0.1, answers /healthz and /metrics, and exits 0 on Ctrl-C (SIGINT)."""
    port = _free_port()
    text = _run(["serve", "--url", url, "--port", str(port)], port, signal.SIGINT)
    assert metric_sample(text, "phaselog_plugins", phase="Stopped") == 1


@pytest.mark.slow
def test_projections_run_serves_health_and_metrics(url: str) -> None:
    """``phaselog projections run --metrics-port N`` serves /healthz and /metrics until SIGTERM stops it."""
    port = _free_port()
    text = _run(["projections", "run", "--url", url, "--metrics-port", str(port)], port, signal.SIGTERM)
    assert metric_sample(text, "phaselog_projection_lag", projection="plan_runs") == 0
