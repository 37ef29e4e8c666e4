"""A deployment as a durable plan: it fails once, cleans up, and succeeds on the next run.

Run: ``python examples/deploy_plan.py [STORE_URL]`` (default: a temporary SQLite file).

The plan has four steps -- provision a VM, configure it, a pause while the service
warms up, a smoke test with retries, and a DNS switch. Run 1 ships a broken
config: every smoke-test attempt fails, the plan stops before the DNS switch and
cleans up backwards (the config, then the VM). With the config fixed, run 2 of the
same plan succeeds; its smoke test still needs a retry while the service warms up.
The cleanup phase always runs (success, failure or cancel): the cleanup hooks roll back only what is not live.
Every attempt, hook outcome, pause, state write and cleanup is an event in the
plan's stream, which the example prints at the end.
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

from phaselog.adapters import Store, open_store
from phaselog.domain.plan import PlanFailed
from phaselog.runtime.plan_state import GenericStep, PlanContext, PlanState
from phaselog.runtime.plans import Plan


class FakeCloud:
    """Stands in for a cloud API: it remembers what exists."""

    def __init__(self) -> None:
        self.vms: set[str] = set()
        self.configs: dict[str, int] = {}
        self.dns: str | None = None
        self.smoke_calls = 0


class Deployment:
    """The hooks of the deployment; ``port`` is what the configure step writes into the config."""

    def __init__(self, cloud: FakeCloud, plan_id: str, port: int) -> None:
        self.cloud, self.plan_id, self.port = cloud, plan_id, port

    def provision(self, _ctx: PlanContext, state: PlanState) -> None:
        """Create the VM."""
        vm = f"vm-{self.plan_id[-4:]}"
        self.cloud.vms.add(vm)
        state["vm"] = vm
        print(f"  provision: created {vm}")

    def deprovision(self, _ctx: PlanContext, state: PlanState) -> None:
        """Delete the VM unless it went live."""
        if state.get("live") == state["vm"]:
            print(f"  cleanup:   {state['vm']} is live, kept")
            return
        self.cloud.vms.discard(state["vm"])
        print(f"  cleanup:   deleted {state['vm']}")

    def configure(self, _ctx: PlanContext, state: PlanState) -> None:
        """Write the service config."""
        self.cloud.configs[state["vm"]] = self.port
        state["port"] = self.port
        print(f"  configure: {state['vm']} listens on port {self.port}")

    def unconfigure(self, _ctx: PlanContext, state: PlanState) -> None:
        """Remove the config unless the VM went live."""
        if state.get("live") == state["vm"]:
            return
        self.cloud.configs.pop(state["vm"], None)
        print(f"  cleanup:   removed the config of {state['vm']}")

    def smoke_test(self, _ctx: PlanContext, state: PlanState) -> None:
        """Probe the service on port 443."""
        self.cloud.smoke_calls += 1
        if self.cloud.configs.get(state["vm"]) != 443:
            print(f"  smoke:     attempt {self.cloud.smoke_calls}: connection refused on port 443")
            raise ConnectionError("nothing listens on port 443")
        if self.cloud.smoke_calls % 2 == 1:
            print(f"  smoke:     attempt {self.cloud.smoke_calls}: 503, still warming up")
            raise ConnectionError("503 Service Unavailable")
        print(f"  smoke:     attempt {self.cloud.smoke_calls}: 200 OK")

    def switch_dns(self, _ctx: PlanContext, state: PlanState) -> None:
        """Point www at the new VM."""
        self.cloud.dns = state["vm"]
        state["live"] = state["vm"]  # from now on the cleanup phase keeps what it would roll back
        print(f"  dns:       www -> {state['vm']}")


def build_plan(store: Store, plan_id: str, cloud: FakeCloud, port: int) -> Plan:
    """The deployment plan: provision, configure, a pause, smoke-test (2 retries), switch DNS."""
    d = Deployment(cloud, plan_id, port)
    plan = Plan(store, plan_id, limit_duration=timedelta(minutes=1))
    plan.add_step(GenericStep("provision", exec=d.provision, cleanup=d.deprovision))
    plan.add_step(GenericStep("configure", exec=d.configure, cleanup=d.unconfigure))
    plan.add_pause(timedelta(milliseconds=200))  # let the service warm up
    plan.add_step(GenericStep("smoke-test", exec=d.smoke_test).with_retries(2))
    plan.add_step(GenericStep("switch-dns", exec=d.switch_dns))
    return plan


def deploy(store: Store, plan_id: str, port: int) -> bool:
    """Run the plan once; True on success."""
    cloud = FakeCloud()
    plan = build_plan(store, plan_id, cloud, port)
    try:
        plan.execute()
    except PlanFailed as exc:
        for step, error in exc.errors:
            print(f"  => run {exc.run} FAILED at {step}: {type(error).__name__}: {error}")
        print(f"  => left behind: vms={sorted(cloud.vms)} configs={cloud.configs} dns={cloud.dns}")
        return False
    print(f"  => run {plan.runs()[-1].run} succeeded; dns={cloud.dns} vms={sorted(cloud.vms)}")
    return True


def main(argv: list[str] | None = None) -> int:
    """Deploy with a broken config, then with the fix; print the audit trail."""
    args = sys.argv[1:] if argv is None else argv
    with tempfile.TemporaryDirectory() as tmp:
        url = args[0] if args else f"sqlite:///{Path(tmp) / 'deploy.db'}"
        with open_store(url) as store:
            plan_id = f"deploy-web-{uuid.uuid4().hex[:6]}"
            print(f"plan {plan_id} on {store.url}")
            print("run 1: config says port 8443")
            first = deploy(store, plan_id, port=8443)
            print("run 2: config fixed to port 443")
            second = deploy(store, plan_id, port=443)
            events = store.stream(f"plan:{plan_id}")
            counts = Counter(type(e).__name__ for e in events)
            print(f"audit: {len(events)} events: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
            statuses = [r.status for r in Plan(store, plan_id).runs()]
            print(f"runs: {statuses}")
    return 0 if (not first and second and statuses == ["failed", "succeeded"]) else 1


if __name__ == "__main__":
    sys.exit(main())
