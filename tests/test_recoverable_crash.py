from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from phaselog.adapters import Store
from phaselog.domain.state import StatePersisted

from conftest import raw_execute

CHILD = textwrap.dedent(
    """
    import asyncio, json, logging, sys, time
    from datetime import timedelta
    from pydantic import BaseModel, Field
    from phaselog.adapters import open_store
    from phaselog.runtime.recoverable import EventManager, RecoverableState, SyncRecoverableState

    class Stats(BaseModel):
        requests: int = 0
        recent: list[str] = Field(default_factory=list)

    url, mode = sys.argv[1], sys.argv[2]
    store = open_store(url)
    kwargs = dict(default_state=Stats(), persist_state_key="crawl", persist_state_kvs_name="crash",
                  persistence_enabled=True, logger=logging.getLogger("child"), store=store)

    def bump(value):
        value.requests += 1
        value.recent = (value.recent + [f"https://site.example/{value.requests}"])[-3:]

    async def run_async():
        async with EventManager(timedelta(milliseconds=20)) as manager:
            state = RecoverableState(event_manager=manager, **kwargs)
            value = await state.initialize()
            print("loaded", json.dumps(value.model_dump()), flush=True)
            while True:
                bump(value)
                await asyncio.sleep(0.002)

    def run_sync():
        manager = EventManager(timedelta(milliseconds=20))
        state = SyncRecoverableState(event_manager=manager, **kwargs)
        with manager:
            value = state.initialize()
            print("loaded", json.dumps(value.model_dump()), flush=True)
            while True:
                with state.lock:
                    bump(value)
                time.sleep(0.002)

    if mode == "read":
        state = SyncRecoverableState(**{**kwargs, "persistence_enabled": "explicit_only"})
        print("loaded", json.dumps(state.initialize().model_dump()), flush=True)
    elif mode == "async":
        asyncio.run(run_async())
    else:
        run_sync()
    """
)


def _spawn(script: Path, url: str, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script), url, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_dead_sessions(url: str) -> None:
    """On PostgreSQL, wait (bounded) until no other session of the database is running a statement.

    A client killed with -9 leaves its last statement running on the server; it commits (it was
    never acknowledged, so nothing acknowledged is lost) and only then does the session end.
    """
    if not url.startswith("postgresql"):
        return  # SQLite: the killed writer's transaction either committed or is rolled back
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        busy = raw_execute(
            url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND state <> 'idle'",
        )
        if int(str(busy[0][0])) == 0:
            return
        time.sleep(0.05)
    pytest.fail("the killed child's server session is still running a statement after 30 s")


def _persisted(store: Store) -> list[StatePersisted]:
    return [e for e in store.stream("state:crash:crawl") if isinstance(e, StatePersisted)]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["async", "sync"])
def test_state_survives_kill_9_and_is_recovered_by_a_new_process(
    durable_store: Store, durable_url: str, tmp_path: Path, mode: str
) -> None:
    """A process killed with -9 while persisting; a new process initializes to the last persisted value."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    store = durable_store  # opened first: the tables exist before any child starts
    child = _spawn(script, durable_url, mode)
    try:
        deadline = time.monotonic() + 60
        while len(_persisted(store)) < 3:
            assert child.poll() is None, child.communicate(timeout=10)
            assert time.monotonic() < deadline, "the child never persisted three times"
            time.sleep(0.02)
    finally:
        child.kill()  # SIGKILL: no teardown, no final PERSIST_STATE
        child.communicate(timeout=30)
    assert child.returncode == -9
    _wait_for_dead_sessions(durable_url)  # a statement the child had sent may still commit server-side

    last = _persisted(store)[-1].value
    assert last["requests"] > 0
    reader = subprocess.run(
        [sys.executable, str(script), durable_url, "read"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = json.loads(reader.stdout.removeprefix("loaded "))
    assert loaded == last

    restarted = _spawn(script, durable_url, mode)
    try:
        line = restarted.stdout.readline() if restarted.stdout else ""
    finally:
        restarted.kill()
        restarted.communicate(timeout=30)
    assert json.loads(line.removeprefix("loaded ")) == last
