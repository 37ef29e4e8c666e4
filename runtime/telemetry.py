"""OpenTelemetry instrumentation: phaselog's tracer and meter, both named ``"phaselog"``.

phaselog depends on ``opentelemetry-api`` only and configures no SDK: spans and
metrics go nowhere until the application installs a tracer or meter provider
(``opentelemetry.trace.set_tracer_provider``/``metrics.set_meter_provider``), or
calls :func:`bind` with providers of its own (tests, ``phaselog serve``). The extra
``phaselog[otel]`` brings the SDK and the Prometheus exporter.

Spans: ``phaselog.append`` and ``phaselog.load`` (the store), ``phaselog.plugin.transition``,
``phaselog.task.hook``, ``phaselog.plan.hook`` and ``phaselog.projection.batch``.

Metrics (Prometheus names in brackets):

- ``phaselog.events.appended`` counter, by stream kind [``phaselog_events_appended_total``];
- ``phaselog.append.duration`` histogram in seconds [``phaselog_append_duration_seconds``];
- ``phaselog.task.state_changes`` counter, by state; ``phaselog.plan.steps`` counter, by outcome
  (``succeeded``; ``failed``: the step gave up; ``attempt_failed``: one attempt's hook raised;
  ``abandoned``: the plan stopped waiting for a hook), both counted from the appended events;
- ``phaselog.projection.dead_lettered`` counter, by read model;
- ``phaselog.retention.archived`` counter of events the retention policy archived, and
  ``phaselog.retention.runs`` of its runs by outcome (``archived``, ``nothing``, ``held``);
- for every store passed to :func:`observe`, observable gauges read from
  ``store.projections.status()``: ``phaselog.projection.lag`` (events),
  ``phaselog.projection.lag_seconds``, ``phaselog.projection.errors`` (dead letters kept),
  by read model; and ``phaselog.tasks`` (by state), ``phaselog.plans`` (by status),
  ``phaselog.plugins`` (by phase) from the read models' counts;
- for every observed store with a commit horizon (``store.horizon()``), by store:
  ``phaselog.horizon.lag`` [``phaselog_horizon_lag_seconds``], how long the horizon has been
  held (the age of the oldest append in flight; 0 when none), ``phaselog.horizon.blocking_pid``
  [``phaselog_horizon_blocking_pid``], the backend pid of the stall (an append in flight past
  ``stall_warning``; 0 when none), and ``phaselog.horizon.held_back``
  [``phaselog_horizon_held_back``], committed events readers wait for behind it.

This module knows no domain class: event-derived metrics match class names.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ParamSpec, TypeVar

from opentelemetry import context, metrics, trace
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = [
    "NAME",
    "appending",
    "bind",
    "dead_lettered",
    "horizon_facts",
    "in_span",
    "observe",
    "observed",
    "retention_ran",
    "span",
]

log = logging.getLogger("phaselog.telemetry")
P = ParamSpec("P")
R = TypeVar("R")

NAME = "phaselog"
"""The instrumentation scope of the tracer and the meter."""

_STEP_OUTCOMES = {
    "StepSucceeded": "succeeded",
    "StepFailed": "failed",
    "HookFailed": "attempt_failed",
    "HookAbandoned": "abandoned",
}
_STATUS_TTL = 1.0  # seconds one status() read serves the gauges of one collection
_GAUGES = (  # (metric, read model count or status field, attribute, unit, description)
    ("phaselog.projection.lag", "lag", "projection", "{event}", "Events a read model has not folded yet"),
    ("phaselog.projection.lag_seconds", "lag_seconds", "projection", "s", "Age of its oldest unfolded event"),
    ("phaselog.projection.errors", "errors", "projection", "{event}", "Dead-lettered events kept"),
    ("phaselog.plugins", "plugin_phases", "phase", "{plugin}", "Plugins by phase (read model)"),
    ("phaselog.tasks", "task_statuses", "state", "{task}", "Tasks by state (read model)"),
    ("phaselog.plans", "plan_runs", "status", "{plan}", "Plans by status (read model)"),
)
_HORIZON_GAUGES = (  # (metric, fact of horizon_facts(), unit, description)
    ("phaselog.horizon.lag", "lag_seconds", "s", "How long the commit horizon has been held"),
    ("phaselog.horizon.blocking_pid", "blocking_pid", "", "Backend pid of the stalled append (0: none)"),
    ("phaselog.horizon.held_back", "held_back", "{event}", "Committed events held back by an append"),
)


def _version() -> str:
    try:
        from importlib.metadata import version  # noqa: PLC0415 - only at binding time

        return version("phaselog")
    except Exception:  # pragma: no cover - running from a source tree without metadata
        return "0"


class _Observed:
    """A store whose read models the gauges report, with a short-lived cache of its status."""

    def __init__(self, store: Any, projections: Any) -> None:
        self.store = store
        self.projections = projections
        self.label = str(getattr(store, "url", "store"))
        self._lock = threading.Lock()
        self._at = -_STATUS_TTL
        self._rows: list[dict[str, Any]] = []
        self._horizon_at = -_STATUS_TTL
        self._horizon: dict[str, float] | None = None

    def horizon(self) -> dict[str, float] | None:
        """:func:`horizon_facts` of the store's horizon (``None``: it has none, or it cannot be read)."""
        look = getattr(self.store, "horizon", None)
        if not callable(look):
            return None
        with self._lock:
            if time.monotonic() - self._horizon_at >= _STATUS_TTL:
                try:
                    self._horizon = horizon_facts(look())
                except Exception as exc:  # a collection must never fail
                    log.warning("telemetry: horizon of %s unavailable: %s", self.label, exc)
                    self._horizon = None
                self._horizon_at = time.monotonic()
            return self._horizon

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            if time.monotonic() - self._at >= _STATUS_TTL:
                try:
                    views = self.projections if self.projections is not None else self.store.projections
                    self._rows = list(views.status())
                except Exception as exc:  # a collection must never fail: report what can be read
                    log.warning("telemetry: status of %s unavailable: %s", self.label, exc)
                    self._rows = []
                self._at = time.monotonic()
            return self._rows


class _Instruments:
    """Every instrument, created on one meter and one tracer (rebuilt by :func:`bind`)."""

    def __init__(self, tracer: Tracer, meter: Meter, *, on_globals: bool = False) -> None:
        self.tracer = tracer
        self.on_globals = on_globals  # bound to the global providers (which may still be the API's proxies)
        self.silent_until = 0.0  # monotonic time up to which "no provider is installed" was last seen true
        self.appended = meter.create_counter(
            "phaselog.events.appended", unit="{event}", description="Events appended to the store"
        )
        self.append_duration = meter.create_histogram(
            "phaselog.append.duration", unit="s", description="Time to append one atomic batch of events"
        )
        self.task_states = meter.create_counter(
            "phaselog.task.state_changes", unit="{change}", description="Task state changes recorded"
        )
        self.plan_steps = meter.create_counter(
            "phaselog.plan.steps", unit="{step}", description="Plan step attempts ended, by outcome"
        )
        self.dead_lettered = meter.create_counter(
            "phaselog.projection.dead_lettered", unit="{event}", description="Events a read model skipped"
        )
        self.retained = meter.create_counter(
            "phaselog.retention.archived", unit="{event}", description="Events the retention policy archived"
        )
        self.retention_runs = meter.create_counter(
            "phaselog.retention.runs", unit="{run}", description="Retention runs, by outcome"
        )
        for metric, field, attribute, unit, description in _GAUGES:
            meter.create_observable_gauge(
                metric, callbacks=[_gauge(field, attribute)], unit=unit, description=description
            )
        for metric, fact, unit, description in _HORIZON_GAUGES:
            meter.create_observable_gauge(
                metric, callbacks=[_horizon_gauge(fact)], unit=unit, description=description
            )


_observed: dict[int, _Observed] = {}
_observed_lock = threading.Lock()


def _gauge(field: str, attribute: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def callback(_options: CallbackOptions) -> Iterable[Observation]:
        with _observed_lock:
            stores = list(_observed.values())
        for obs in stores:
            for row in obs.rows():
                if attribute == "projection":
                    value = row.get(field) or 0
                    yield Observation(value, {"store": obs.label, "projection": str(row["name"])})
                elif row.get("name") == field:
                    for key, count in (row.get("counts") or {}).items():
                        yield Observation(count, {"store": obs.label, attribute: str(key)})

    return callback


def _horizon_gauge(fact: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def callback(_options: CallbackOptions) -> Iterable[Observation]:
        with _observed_lock:
            stores = list(_observed.values())
        for obs in stores:
            facts = obs.horizon()
            if facts is not None:
                yield Observation(facts[fact], {"store": obs.label})

    return callback


def horizon_facts(horizon: Any) -> dict[str, float]:
    """What the horizon gauges report of one :class:`~phaselog.runtime.horizon.Horizon`.

    ``lag_seconds``: the holder's age (any append in flight); ``blocking_pid``: the
    pid of the stall (in flight past ``stall_warning``), 0 when there is none or
    it is a prepared transaction; ``held_back``: committed events past the horizon.
    """
    stall = horizon.stall
    return {
        "lag_seconds": float(horizon.lag_seconds),
        "blocking_pid": float(stall.pid or 0) if stall is not None else 0.0,
        "held_back": float(horizon.held_back),
    }


_instruments: _Instruments | None = None
_bind_lock = threading.Lock()


def bind(tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None) -> None:
    """Send phaselog's spans and metrics to these providers (``None``: the global ones, the default).

    The global providers are proxies until the application sets real ones, so the
    default binding works whenever the application configures OpenTelemetry.
    """
    global _instruments  # noqa: PLW0603 - one process-wide set of instruments
    tp = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    mp = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    on_globals = tracer_provider is None and meter_provider is None
    with _bind_lock:
        _instruments = _Instruments(
            tp.get_tracer(NAME, _version()), mp.get_meter(NAME, _version()), on_globals=on_globals
        )


_SILENCE_RECHECK = 0.5  # seconds: how soon an append notices providers installed after it


def _silent(ins: _Instruments) -> bool:
    """True while spans and metrics go nowhere: bound to the global providers and none is installed yet.

    Looked up at most every half second (the API reads the environment on each
    lookup), so an application that installs its providers later is traced from
    then on; until then an append skips the span and the counters.
    """
    if not ins.on_globals:
        return False
    now = time.monotonic()
    if now < ins.silent_until:
        return True
    silent = isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider) and (
        type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider"
    )
    ins.silent_until = now + _SILENCE_RECHECK if silent else 0.0
    return silent


def _get() -> _Instruments:
    if _instruments is None:
        bind()
    assert _instruments is not None  # noqa: S101 - bound just above
    return _instruments


def span(name: str, **attributes: str | float | bool) -> contextlib.AbstractContextManager[Span]:
    """A span named ``name`` (made current); attributes are prefixed ``phaselog.``."""
    attrs = {f"phaselog.{key}": value for key, value in attributes.items()}
    return _get().tracer.start_as_current_span(name, attributes=attrs)


def in_span(fn: Callable[P, R], name: str, **attributes: str | float | bool) -> Callable[P, R]:
    """``fn`` run inside a span ``name`` whose parent is the span current NOW (for other threads)."""
    parent = context.get_current()
    attrs = {f"phaselog.{key}": value for key, value in attributes.items()}

    @functools.wraps(fn)
    def traced(*args: P.args, **kwargs: P.kwargs) -> R:
        with _get().tracer.start_as_current_span(name, context=parent, attributes=attrs):
            return fn(*args, **kwargs)

    return traced


@contextlib.contextmanager
def appending(aggregates: Iterable[Any]) -> Iterator[None]:
    """Around one atomic append: a ``phaselog.append`` span; metrics once it succeeded."""
    ins = _get()
    if _silent(ins):  # nothing listens: the span and counters would cost ~4% of an append for nobody
        yield
        return
    pending = [e for agg in aggregates for e in getattr(agg, "pending_events", ())]
    streams = sorted({str(e.originator_id) for e in pending})
    attrs: dict[str, str | int] = {"phaselog.events": len(pending), "phaselog.streams": len(streams)}
    if len(streams) == 1:
        attrs["phaselog.stream_id"] = streams[0]
    with ins.tracer.start_as_current_span("phaselog.append", attributes=attrs):
        started = time.perf_counter()
        yield
        ins.append_duration.record(time.perf_counter() - started)
    for event in pending:
        ins.appended.add(1, {"kind": str(event.originator_id).split(":", 1)[0]})
        cls = type(event).__name__
        if cls == "TaskStateChanged":
            state = getattr(event, "state", None)
            ins.task_states.add(1, {"state": str(getattr(state, "name", state)).lower()})
        elif cls in _STEP_OUTCOMES:
            ins.plan_steps.add(1, {"outcome": _STEP_OUTCOMES[cls]})


def dead_lettered(projection: str, count: int) -> None:
    """Count ``count`` events that read model ``projection`` dead-lettered."""
    if count:
        _get().dead_lettered.add(count, {"projection": projection})


def retention_ran(outcome: str, archived: int) -> None:
    """Count one retention run (``archived``, ``nothing`` or ``held``) and the events it archived."""
    ins = _get()
    ins.retention_runs.add(1, {"outcome": outcome})
    if archived:
        ins.retained.add(archived)


def observe(store: Any, projections: Any = None) -> Callable[[], None]:
    """Report ``store``'s read-model lag, errors, counts and horizon in the gauges; returns the undo.

    ``projections`` is the :class:`~phaselog.projections.Projections` to read
    (default ``store.projections``).
    """
    key = id(store)
    with _observed_lock:
        _observed[key] = _Observed(store, projections)
    _get()  # the gauges exist from now on

    def forget() -> None:
        with _observed_lock:
            _observed.pop(key, None)

    return forget


def observed() -> list[Any]:
    """The stores :func:`observe` reports on."""
    with _observed_lock:
        return [obs.store for obs in _observed.values()]
