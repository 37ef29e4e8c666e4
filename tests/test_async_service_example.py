"""examples/async_service.py: the complete async service runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from conftest import load_script


def test_async_service_runs_twice_on_one_store(durable_url: str) -> None:
    """Every service runs on the async store, and a second pass recovers the state the first left."""
    example = load_script("examples", "async_service")
    first = asyncio.run(example.main(durable_url))
    assert first == {
        "plugin": "Installing",
        "task": "COMPLETED",
        "plan": "succeeded",
        "reports": 1,
        "events": first["events"],
    }
    second = asyncio.run(example.main(durable_url))
    assert second["reports"] == 2
    assert second["events"] > first["events"]
