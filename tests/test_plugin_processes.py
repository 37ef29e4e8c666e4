from __future__ import annotations

import itertools
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

from phaselog.adapters import open_store
from phaselog.domain.plugin import PluginAggregate, PluginPhase

P = PluginPhase
ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 60.0

RACER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from phaselog.adapters import open_store
    from phaselog.domain.errors import ConcurrencyConflict

    url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    with open_store(url) as store:
        machine = store.plugins.machine("shared")
        tmp = ready.with_suffix(".tmp")
        tmp.write_text(str(machine.version))
        os.replace(tmp, ready)  # atomic: the parent sees no file or the whole version, never an empty one
        deadline = time.monotonic() + 60
        while not go.exists():
            if time.monotonic() > deadline:
                sys.exit("never got the go signal")
            time.sleep(0.005)
        try:
            machine.transition_to("Degraded", f"probe from {ready.name}")
            outcome = "won"
        except ConcurrencyConflict:
            outcome = "conflict"
        print(outcome, machine.phase.value, machine.version, flush=True)
    """
)

CRASHER = textwrap.dedent(
    """
    import sys
    from pydantic import BaseModel
    from phaselog.adapters import open_store

    class Cursor(BaseModel):
        offset: int

    CYCLE = ["Degraded", "Recovering", "Validating", "Starting", "Running"]
    with open_store(sys.argv[1], snapshot_interval=7) as store:
        machine = store.plugins.machine("crashy")
        for phase in ["Installing", "Installed", "Validating", "Starting", "Running"]:
            machine.transition_to(phase, "boot")
        i = 0
        while True:
            i += 1
            for phase in CYCLE:
                machine.transition_to(phase, f"cycle {i}")
                print("ack", machine.version, flush=True)
            machine.handle(lambda mgr: mgr.put(i % 256, Cursor(offset=i)))
            print("ack", machine.version, flush=True)
    """
)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "tests")}


def _wait_for(predicate: Any, what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def _read_ready(path: Path) -> str | None:
    """The version a racer announced, or None while it has not announced one (no file, or no text yet)."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


@pytest.mark.slow
def test_processes_racing_on_one_plugin_have_exactly_one_winner(durable_url: str, tmp_path: Path) -> None:
    """Four processes at the same version transition at once: one wins, three get ConcurrencyConflict."""
    with open_store(durable_url) as store:
        machine = store.plugins.machine("shared", initial=P.RUNNING)
        start_version = machine.version
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in range(4)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, durable_url, str(r), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for r in ready
    ]
    try:

        def all_ready() -> bool:
            for proc in procs:
                if proc.poll() is not None and proc.returncode != 0:
                    _, err = proc.communicate(timeout=DEADLINE)
                    pytest.fail(f"a racer died before the race: {err}")
            return all(_read_ready(r) is not None for r in ready)

        _wait_for(all_ready, "all racers to load the plugin")
        assert {_read_ready(r) for r in ready} == {str(start_version)}
        go.touch()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=DEADLINE)
            assert proc.returncode == 0, err
            results.append(out.split())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    assert sorted(r[0] for r in results) == ["conflict", "conflict", "conflict", "won"]
    # every loser reloaded itself and sees the winner's write
    assert {(r[1], r[2]) for r in results} == {("Degraded", str(start_version + 1))}
    with open_store(durable_url) as store:
        assert len(store.stream("plugin:shared")) == start_version + 1
        assert [t.to for t in store.plugins.history("shared")] == [P.DEGRADED]


def _reader(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


@pytest.mark.slow
def test_kill_9_mid_lifecycle_keeps_every_acknowledged_event(durable_url: str) -> None:
    """A plugin host killed with SIGKILL mid-cycle loses no acknowledged event; reload equals full replay."""
    lines: queue.Queue[str] = queue.Queue()
    acked = 0
    with subprocess.Popen(
        [sys.executable, "-c", CRASHER, durable_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(),
    ) as proc:
        assert proc.stdout is not None
        reader = threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True)
        reader.start()
        deadline = time.monotonic() + DEADLINE
        try:
            while acked < 60:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail("the plugin host did not acknowledge 60 events in time")
                try:
                    acked = int(lines.get(timeout=remaining).split()[1])
                except queue.Empty:
                    pytest.fail("the plugin host stopped acknowledging events")
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            reader.join(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    while not lines.empty():  # acknowledgements printed before the kill landed
        acked = max(acked, int(lines.get().split()[1]))
    with open_store(durable_url, snapshot_interval=7) as store:
        machine = store.plugins.machine("crashy")
        assert machine.version >= acked
        history = machine.history()
        assert all(a.to == b.from_ for a, b in itertools.pairwise(history))
        assert machine.phase is history[-1].to
        truth: Any = None
        for event in store.stream("plugin:crashy"):
            truth = event.mutate(truth)
        assert isinstance(truth, PluginAggregate)
        loaded = store.load("plugin:crashy", PluginAggregate)
        assert (loaded.version, loaded.phase, loaded.state, loaded.state_version) == (
            truth.version,
            truth.phase,
            truth.state,
            truth.state_version,
        )
        # the host can carry on where it stopped
        machine.transition_to(P.FAILED, "host crashed")  # every phase of the cycle may fail
        assert store.plugins.get("crashy").phase is P.FAILED


def test_example_plugin_host_runs(durable_url: str) -> None:
    """examples/plugin_host.py runs its lifecycle scenario on a store URL and exits 0."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "plugin_host.py"), durable_url],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr
    for word in ("Installing", "Running", "Degraded", "Recovering", "Stopped", "restart"):
        assert word in result.stdout
