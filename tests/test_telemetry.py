"""OpenTelemetry spans and metrics, read back with the SDK's in-memory span exporter and metric reader."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from projections_support import Picky, open_account
from task_helpers import ScriptedRunner, wait_for

from phaselog.adapters import Store
from phaselog.domain.errors import ConcurrencyConflict, InvalidTransition
from phaselog.domain.plan import PlanFailed
from phaselog.domain.plugin import PluginPhase
from phaselog.projections.runner import Projections
from phaselog.runtime import telemetry
from phaselog.runtime.plan_state import GenericStep, PlanContext, PlanState
from phaselog.runtime.plans import Plan
from phaselog.runtime.tasks import TaskController

from conftest import ROOT


@dataclass
class Otel:
    """The in-memory exporter and reader phaselog's instruments are bound to during a test."""

    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def finished(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name == name]

    def points(self, metric: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, data point) of every point of ``metric`` in one collection."""
        data = self.reader.get_metrics_data()
        out: list[tuple[dict[str, Any], Any]] = []
        for rm in data.resource_metrics if data is not None else []:
            for sm in rm.scope_metrics:
                if sm.scope.name != telemetry.NAME:
                    continue
                for m in sm.metrics:
                    if m.name == metric:
                        out.extend((dict(p.attributes or {}), p) for p in m.data.data_points)
        return out

    def sums(self, metric: str, key: str) -> dict[str, Any]:
        """Point values of ``metric`` keyed by the attribute ``key``."""
        return {str(a.get(key)): p.value for a, p in self.points(metric)}


@pytest.fixture
def otel() -> Iterator[Otel]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry.bind(tracer_provider, meter_provider)
    try:
        yield Otel(exporter, reader)
    finally:
        telemetry.bind()
        meter_provider.shutdown()
        tracer_provider.shutdown()


def test_transitions_append_and_load_are_spans_and_counted(store: Store, otel: Otel) -> None:
    """A transition is a span holding its append; appends are counted, timed and loads traced."""
    machine = store.plugins.machine("cam")
    machine.transition_to(PluginPhase.INSTALLING, "go")
    with pytest.raises(InvalidTransition):
        machine.transition_to(PluginPhase.UNINSTALLED, "no")
    store.plugins.get("cam")
    (ok, refused) = otel.finished("phaselog.plugin.transition")
    assert ok.attributes is not None
    assert ok.attributes["phaselog.plugin_id"] == "cam"
    assert ok.attributes["phaselog.to"] == PluginPhase.INSTALLING.value
    assert ok.status.is_ok
    assert not refused.status.is_ok  # the refused transition is an error span, and appended nothing
    appends = otel.finished("phaselog.append")
    assert len(appends) == 2  # the creation, then the transition
    inside = appends[-1]
    assert inside.parent is not None
    assert inside.parent.span_id == ok.context.span_id
    assert inside.attributes is not None
    assert inside.attributes["phaselog.stream_id"] == "plugin:cam"
    loads = otel.finished("phaselog.load")
    assert loads
    assert loads[-1].attributes == {"phaselog.stream_id": "plugin:cam"}
    assert otel.sums("phaselog.events.appended", "kind") == {"plugin": store.max_position()}
    ((_, duration),) = otel.points("phaselog.append.duration")
    assert duration.count == 2
    assert duration.sum > 0


def test_a_conflicting_append_is_an_error_span_and_not_counted(store: Store, otel: Otel) -> None:
    """An append refused for a concurrency conflict ends its span in error and adds no event to the count."""
    first = store.plugins.machine("cam")
    second = store.plugins.machine("cam")
    first.transition_to(PluginPhase.INSTALLING, "one")
    counted = otel.sums("phaselog.events.appended", "kind")["plugin"]
    with pytest.raises(ConcurrencyConflict):
        second.transition_to(PluginPhase.INSTALLING, "two")
    assert not otel.finished("phaselog.append")[-1].status.is_ok
    assert otel.sums("phaselog.events.appended", "kind")["plugin"] == counted == store.max_position()


class _Failing(ScriptedRunner):
    def on_task_running(self, ctx: Any, task: Any) -> None:
        """Fail every run."""
        super().on_task_running(ctx, task)
        raise RuntimeError("boom")


def test_task_hooks_are_spans_and_state_changes_counted(store: Store, otel: Otel) -> None:
    """Each task hook runs in a span named after it; state changes are counted by state."""
    with TaskController(store, "ctl", _Failing(), lease=timedelta(seconds=2)) as controller:
        controller.launch_task("t1")
        wait_for(lambda: controller.task_status("t1").state.is_finished, what="t1 finished")
        wait_for(lambda: len(otel.finished("phaselog.task.hook")) == 3, what="three hook spans")
    hooks = {str((s.attributes or {})["phaselog.hook"]): s for s in otel.finished("phaselog.task.hook")}
    assert set(hooks) == {"on_task_pending", "on_task_running", "on_task_completed"}
    assert all((s.attributes or {})["phaselog.task_id"] == "t1" for s in hooks.values())
    assert hooks["on_task_pending"].status.is_ok
    assert not hooks["on_task_running"].status.is_ok
    assert otel.sums("phaselog.task.state_changes", "state") == {"running": 1, "failed": 1}


def test_plan_hooks_are_spans_and_steps_counted_by_outcome(store: Store, otel: Otel) -> None:
    """Every plan hook is a span; step outcomes (succeeded, failed, failed attempts) are counted."""

    def ok(ctx: PlanContext, state: PlanState) -> None:
        """Succeed."""

    def bad(ctx: PlanContext, state: PlanState) -> None:
        raise ValueError("no")

    plan = Plan(store, "p").add_step(GenericStep("a", exec=ok, cleanup=ok))
    plan.add_step(GenericStep("b", exec=bad).with_retries(1))
    with pytest.raises(PlanFailed):
        plan.execute()
    names = sorted(str((s.attributes or {})["phaselog.hook"]) for s in otel.finished("phaselog.plan.hook"))
    assert "plan:p:a.exec" in names
    assert names.count("plan:p:b.exec") == 2  # the attempt and its retry
    assert "plan:p:a.cleanup" in names
    failed = [s for s in otel.finished("phaselog.plan.hook") if not s.status.is_ok]
    assert [str((s.attributes or {})["phaselog.hook"]) for s in failed] == ["plan:p:b.exec"] * 2
    assert otel.sums("phaselog.plan.steps", "outcome") == {"succeeded": 1, "attempt_failed": 2, "failed": 1}


def test_projection_batches_dead_letters_and_lag_gauges(store: Store, otel: Otel) -> None:
    """Batches are spans, dead letters are counted, and an observed store reports each read model's lag."""
    open_account(store, "a", deposits=(1, 13, 2))
    store.plugins.machine("cam").transition_to(PluginPhase.INSTALLING, "go")
    views = Projections(store, [Picky()], batch_size=2)
    forget = telemetry.observe(store, views)
    try:
        assert telemetry.observed() == [store]
        lag = otel.sums("phaselog.projection.lag", "projection")
        assert lag == {"picky": store.max_position()}
        views.catch_up()
        batches = otel.finished("phaselog.projection.batch")
        assert batches
        assert {(s.attributes or {})["phaselog.projection"] for s in batches} == {"picky"}
        assert otel.sums("phaselog.projection.dead_lettered", "projection") == {"picky": 1}
    finally:
        forget()
        views.close()
    assert telemetry.observed() == []


def test_observed_store_reports_default_read_models(store: Store, otel: Otel) -> None:
    """Gauges of an observed store give plugins by phase, tasks by state and each read model's lag."""
    store.plugins.machine("cam").transition_to(PluginPhase.INSTALLING, "go")
    store.plugins.machine("mic")
    store.projections.catch_up()
    forget = telemetry.observe(store)
    try:
        assert otel.sums("phaselog.plugins", "phase") == {
            PluginPhase.INSTALLING.value: 1,
            PluginPhase.UNINSTALLED.value: 1,
        }
        lag = otel.sums("phaselog.projection.lag", "projection")
        assert set(lag) == {"plugin_phases", "task_statuses", "plan_runs", "recoverable_states"}
        assert set(lag.values()) == {0}
        assert set(otel.sums("phaselog.projection.lag_seconds", "projection").values()) == {0.0}
        assert set(otel.sums("phaselog.projection.errors", "projection").values()) == {0}
    finally:
        forget()


def _in_a_fresh_process(code: str) -> str:
    """What ``code`` prints, run by a new interpreter (OpenTelemetry's global providers are set once)."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120, cwd=ROOT
    )
    return done.stdout


def test_the_library_configures_no_sdk() -> None:
    """Using phaselog leaves OpenTelemetry's global providers as the API's proxies (no SDK is set up)."""
    code = (
        "from opentelemetry import metrics, trace\n"
        "from phaselog.adapters import open_store\n"
        "from phaselog.domain.plugin import PluginPhase\n"
        "with open_store('memory://') as s:\n"
        "    s.plugins.machine('x').transition_to(PluginPhase.INSTALLING, 'go')\n"
        "print(type(trace.get_tracer_provider()).__name__, type(metrics.get_meter_provider()).__name__)\n"
    )
    assert _in_a_fresh_process(code).split() == ["ProxyTracerProvider", "_ProxyMeterProvider"]


def test_providers_installed_after_the_first_appends_trace_the_next_ones() -> None:
    """Appends skip telemetry while nothing listens; installed providers trace the next appends."""
    code = (
        "import json, time\n"
        "from opentelemetry import metrics, trace\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "from opentelemetry.sdk.metrics.export import InMemoryMetricReader\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "from phaselog.adapters import open_store\n"
        "from phaselog.domain.plugin import PluginPhase\n"
        "with open_store('memory://') as s:\n"
        "    s.plugins.machine('early').transition_to(PluginPhase.INSTALLING, 'go')\n"
        "    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()\n"
        "    provider = TracerProvider()\n"
        "    provider.add_span_processor(SimpleSpanProcessor(spans))\n"
        "    trace.set_tracer_provider(provider)\n"
        "    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))\n"
        "    time.sleep(0.6)  # an append looks for installed providers every half second\n"
        "    s.plugins.machine('late').transition_to(PluginPhase.INSTALLING, 'go')\n"
        "appends = [x for x in spans.get_finished_spans() if x.name == 'phaselog.append']\n"
        "data = reader.get_metrics_data()\n"
        "counted = [p.value for r in data.resource_metrics for m in r.scope_metrics for x in m.metrics\n"
        "           if x.name == 'phaselog.events.appended' for p in x.data.data_points]\n"
        "print(json.dumps([sorted({a.attributes['phaselog.stream_id'] for a in appends}), sum(counted)]))\n"
    )
    streams, counted = json.loads(_in_a_fresh_process(code))
    assert streams == ["plugin:late"]  # the early append went untraced; the late one is traced
    assert counted >= 1
