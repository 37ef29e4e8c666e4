from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from conftest import load_script

service = load_script("examples", "fastapi_service")


def _events(body: str) -> list[dict[str, Any]]:
    """Parse a text/event-stream body into its events."""
    found = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        found.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
    return found


def test_service_transitions_plugins_and_streams_them(durable_url: str) -> None:
    """The FastAPI example records transitions, refuses invalid ones and streams them (server-sent events)."""
    app = service.create_app(durable_url)

    async def main() -> None:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://phaselog") as client,
        ):
            stream = asyncio.create_task(client.get("/plugins/cam/events", params={"limit": 3}))
            ok = await client.post("/plugins/cam/transitions", json={"to": "Installing", "reason": "api"})
            assert ok.status_code == 200
            assert ok.json()["phase"] == "Installing"
            assert ok.json()["transition"]["from"] == "Uninstalled"
            bad = await client.post("/plugins/cam/transitions", json={"to": "Running", "reason": "skip"})
            assert bad.status_code == 409
            assert "Installing -> Running" in bad.json()["detail"]
            unknown = await client.post("/plugins/cam/transitions", json={"to": "Flying"})
            assert unknown.status_code == 422
            forced = await client.post(
                "/plugins/cam/transitions", params={"force": "true"}, json={"to": "Running", "reason": "op"}
            )
            assert forced.json()["transition"]["reason"] == "force: op"
            retry = await client.post("/plugins/cam/retry", json={"action": "advance"})
            assert retry.json()["retry"]["attempts"] == 1
            await client.post("/plugins/mic/transitions", json={"to": "Installing"})  # another plugin
            await client.post("/plugins/cam/transitions", json={"to": "Degraded", "reason": "slow"})
            response = await asyncio.wait_for(stream, 60)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            sent = _events(response.text)
            assert [e["data"]["to"] for e in sent] == ["Installing", "Running", "Degraded"]
            assert {e["event"] for e in sent} == {"transition"}
            positions = [e["id"] for e in sent]
            assert positions == sorted(positions)
            resumed = await client.get("/plugins/cam/events", params={"start": positions[0] + 1, "limit": 2})
            assert [e["id"] for e in _events(resumed.text)] == positions[1:]
            status = await client.get("/plugins/cam")
            assert status.json()["phase"] == "Degraded"
            assert status.json()["version"] == 5
            history = await client.get("/plugins/cam/history", params={"limit": 2})
            assert [t["to"] for t in history.json()] == ["Running", "Degraded"]
            assert (await client.get("/plugins/nobody")).status_code == 404
            assert (await client.get("/plugins/nobody/history")).status_code == 404

    asyncio.run(main())


def test_service_launches_jobs_and_reports_their_status(durable_url: str) -> None:
    """The example's job endpoints launch a run on the async task controller and report its progress."""
    app = service.create_app(durable_url)

    async def main() -> None:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://phaselog") as client,
        ):
            launched = await client.post("/tasks/report-1", json={"steps": 4})
            assert launched.status_code == 200
            assert (await client.post("/tasks/report-1", json={"x": 1})).status_code in {200, 409}
            deadline = asyncio.get_running_loop().time() + 30
            status: dict[str, Any] = {}
            while asyncio.get_running_loop().time() < deadline:  # bounded wait for the run to end
                status = (await client.get("/tasks/report-1")).json()
                if status["state"] not in {"PENDING", "RUNNING"}:
                    break
                await asyncio.sleep(0.02)
            assert status["state"] == "COMPLETED"
            assert status["metadata"] == {"steps": 4}  # an object, not a JSON string inside the JSON
            assert status["progress"]["current"] == status["progress"]["total"] == 4
            assert [entry["msg"] for entry in status["logs"]][:1] == ["queued"]
            assert (await client.get("/tasks/nobody")).status_code == 404

    asyncio.run(main())


def test_service_reads_its_own_writes_from_the_read_models(durable_url: str) -> None:
    """A read-model endpoint given ?after=<a command's position> shows its result, else 503 names the lag."""
    app = service.create_app(durable_url, read_timeout=0.5)

    async def main() -> None:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://phaselog") as client,
        ):
            for phase in ("Installing", "Installed", "Validating"):
                done = await client.post("/plugins/cam/transitions", json={"to": phase, "reason": "rw"})
                position = done.json()["position"]
                assert position > 0
                rows = (await client.get("/plugins", params={"after": position})).json()
                assert [(r["plugin_id"], r["phase"]) for r in rows] == [("cam", phase)]
            retried = await client.post("/plugins/cam/retry", json={"action": "advance"})
            assert retried.json()["position"] > position
            rows = (await client.get("/plugins", params={"after": retried.json()["position"]})).json()
            assert rows[0]["retry_attempts"] == 1
            mic = await client.post("/plugins/mic/transitions", json={"to": "Installing"})
            after = {"after": mic.json()["position"], "phase": "Installing"}
            assert [r["plugin_id"] for r in (await client.get("/plugins", params=after)).json()] == ["mic"]
            launched = await client.post("/tasks/report-2", json={"steps": 1})
            tasks = (await client.get("/tasks", params={"after": launched.json()["position"]})).json()
            assert [t["task_id"] for t in tasks] == ["report-2"]
            assert (await client.get("/plugins", params={"after": -1})).status_code == 422
            late = await client.get("/plugins", params={"after": mic.json()["position"] + 1000})
            assert late.status_code == 503
            assert late.headers["retry-after"] == "1"
            assert "plugin_phases at" in late.json()["detail"]

    asyncio.run(main())
