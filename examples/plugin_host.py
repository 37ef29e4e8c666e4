"""A tiny plugin host: install, start, degrade, recover with backoff, stop, restart.

Every phase change, retry step and state write is an event in the store, so
the plugin's state (a request counter) and its lifecycle survive a restart of
the host. Run::

    python examples/plugin_host.py [STORE_URL]

STORE_URL defaults to a fresh SQLite file in a temporary folder, removed when the host exits.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from pathlib import Path

from pydantic import BaseModel

from phaselog.adapters import open_store
from phaselog.domain.plugin import PluginPhase, Transition
from phaselog.domain.plugin_state import PluginStateManager
from phaselog.runtime.plugins import PluginStateMachine

P = PluginPhase
BACKOFF_SCALE = 0.01  # the demo waits 1/100 of the real backoff
STATE_VERSION = 1


class EchoState(BaseModel):
    """The plugin's own state, versioned with STATE_VERSION."""

    requests: int = 0
    last_message: str = ""


def announce(plugin_id: str, t: Transition) -> None:
    print(f"  [{plugin_id}] {t.from_.value:>12} -> {t.to.value:<12} ({t.reason})")


def serve(machine: PluginStateMachine, message: str) -> int:
    """One unit of work: read the previous state, write the next one (recorded as one event)."""

    def work(mgr: PluginStateManager) -> int:
        _, state = mgr.get(EchoState)
        state = state or EchoState()
        new = EchoState(requests=state.requests + 1, last_message=message)
        mgr.put(STATE_VERSION, new)
        return new.requests

    return machine.handle(work)


def recover(machine: PluginStateMachine, failing_probes: int) -> None:
    """Degraded -> Recovering; probe with exponential backoff until healthy, then start again."""
    machine.transition_to(P.RECOVERING, "health check failed")
    probes = 0
    while machine.retry.can_retry():
        wait = machine.retry.next_backoff.total_seconds()
        time.sleep(wait * BACKOFF_SCALE)
        machine.retry.advance()  # recorded: attempts+1, backoff doubles
        print(f"  attempt {machine.retry.attempts} after waiting {wait:.0f}s (scaled down)")
        probes += 1
        if probes > failing_probes:
            break
        print("  probe failed")
    else:
        machine.transition_to(P.FAILED, "retries exhausted")
        return
    machine.transition_to(P.VALIDATING, f"probe {probes} healthy")
    machine.transition_to(P.STARTING, "restarting process")
    machine.transition_to(P.RUNNING, "recovered")
    machine.retry.reset()


def first_run(url: str, plugin_id: str) -> None:
    print(f"== host starts, store {url}")
    with open_store(url) as store:
        machine: PluginStateMachine = store.plugins.machine(plugin_id)
        machine.add_observer(announce)
        for phase, reason in [
            (P.INSTALLING, "downloading"),
            (P.INSTALLED, "unpacked"),
            (P.VALIDATING, "checking manifest"),
            (P.STARTING, "spawning process"),
            (P.RUNNING, "ready"),
        ]:
            machine.transition_to(phase, reason)
        for msg in ["hello", "world"]:
            print(f"  served {msg!r}: request #{serve(machine, msg)}")
        machine.transition_to(P.DEGRADED, "latency above 2s")
        recover(machine, failing_probes=2)
        print(f"  served 'again': request #{serve(machine, 'again')}")
        machine.transition_to(P.STOPPING, "host shutting down")
        machine.transition_to(P.STOPPED, "process exited")


def second_run(url: str, plugin_id: str) -> None:
    print("== host restart: everything comes back from the store")
    with open_store(url) as store:
        machine: PluginStateMachine = store.plugins.machine(plugin_id)
        machine.add_observer(announce)
        version, state = machine.handle(lambda mgr: mgr.get(EchoState))
        assert state is not None
        print(f"  phase after restart: {machine.phase.value}; state v{version}: {state.model_dump()}")
        machine.transition_to(P.STARTING, "host restarted")
        machine.transition_to(P.RUNNING, "ready")
        print(f"  served 'after restart': request #{serve(machine, 'after restart')}")
        machine.transition_to(P.STOPPING, "done")
        machine.transition_to(P.STOPPED, "process exited")
        history = machine.history()
        print(f"  {len(history)} transitions recorded, {machine.version} events in {machine.stream_id}")


def main() -> None:
    plugin_id = f"echo-{uuid.uuid4().hex[:6]}"
    if len(sys.argv) > 1:
        first_run(sys.argv[1], plugin_id)
        second_run(sys.argv[1], plugin_id)
        return
    with tempfile.TemporaryDirectory(prefix="phaselog-") as folder:  # removed again on the way out
        url = f"sqlite:///{Path(folder) / 'plugins.db'}"
        first_run(url, plugin_id)
        second_run(url, plugin_id)


if __name__ == "__main__":
    main()
