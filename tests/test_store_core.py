"""One store core for both shells: sync and async stores and plugin machines answer and trace alike."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from phaselog.adapters import Store, open_store
from phaselog.aio import open_async_store
from phaselog.aio.postgres import PostgresAsyncStore
from phaselog.domain.errors import ConcurrencyConflict, NotFound, PhaselogError, StoreUnavailable
from phaselog.domain.plugin import PluginAggregate
from phaselog.domain.plugin import PluginPhase as P
from phaselog.domain.task import TaskAggregate
from phaselog.runtime import telemetry
from phaselog.runtime.recoverable import (
    RecoverableState,
    get_default_store,
    set_default_store,
    set_default_store_factory,
)

from conftest import raw_execute

Trace = list[tuple[str, dict[str, Any], str | None, bool]]  # (name, attributes, parent's name, ok)
Metrics = dict[str, Any]


@dataclass
class Recorded:
    """What phaselog's instruments reported while one workload ran."""

    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def trace(self) -> Trace:
        """Every finished span (name, attributes, its parent's name, ok), in the order they ended."""
        finished = self.spans.get_finished_spans()
        names = {s.context.span_id: s.name for s in finished}
        return [
            (
                s.name,
                dict(s.attributes or {}),
                names.get(s.parent.span_id) if s.parent else None,
                s.status.is_ok,
            )
            for s in finished
        ]

    def metrics(self) -> Metrics:
        """Counter sums by attributes and histogram counts, per metric name."""
        data = self.reader.get_metrics_data()
        out: Metrics = {}
        for rm in data.resource_metrics if data is not None else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in metric.data.data_points:
                        key = (metric.name, tuple(sorted((point.attributes or {}).items())))
                        out[str(key)] = getattr(point, "value", None) or getattr(point, "count", None)
        return out


@contextmanager
def recording() -> Iterator[Recorded]:
    """Bind phaselog's instruments to a fresh in-memory exporter and reader for one workload."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry.bind(tracer_provider, meter_provider)
    try:
        yield Recorded(exporter, reader)
    finally:
        telemetry.bind()
        meter_provider.shutdown()
        tracer_provider.shutdown()


def _sync_workload(url: str) -> tuple[Trace, Metrics]:
    with open_store(url) as store, recording() as seen:
        machine = store.plugins.machine("cam")
        machine.transition_to(P.INSTALLING, "go")
        machine.force_phase(P.FAILED, "stop")
        store.load("plugin:cam", PluginAggregate)
        return seen.trace(), seen.metrics()


async def _async_workload(url: str) -> tuple[Trace, Metrics]:
    async with open_async_store(url) as store:
        assert isinstance(store, PostgresAsyncStore)  # real async I/O, not a sync store on a thread
        with recording() as seen:
            machine = await store.plugins.machine("cam")
            await machine.transition_to(P.INSTALLING, "go")
            await machine.force_phase(P.FAILED, "stop")
            await store.load("plugin:cam", PluginAggregate)
            return seen.trace(), seen.metrics()


def test_async_postgres_appends_are_traced_and_counted_as_sync_ones(make_url: Callable[[str], str]) -> None:
    """Async PostgreSQL appends, loads and transitions give the sync store's spans and metrics one for one."""
    sync_trace, sync_metrics = _sync_workload(make_url("postgresql"))
    async_trace, async_metrics = asyncio.run(_async_workload(make_url("postgresql")))
    appends = [span for span in sync_trace if span[0] == "phaselog.append"]
    assert [(attrs["phaselog.events"], parent) for _, attrs, parent, _ in appends] == [
        (1, None),
        (1, "phaselog.plugin.transition"),
        (1, "phaselog.plugin.transition"),
    ]
    assert sync_metrics["('phaselog.events.appended', (('kind', 'plugin'),))"] == 3
    assert sync_metrics["('phaselog.append.duration', ())"] == 3
    assert async_trace == sync_trace
    assert async_metrics == sync_metrics


def _answers(read: Callable[[], object]) -> tuple[str, str]:
    """What a read answers: ``("ok", value)`` or ``(error class, message)``."""
    try:
        return "ok", repr(read())
    except PhaselogError as exc:
        return type(exc).__name__, str(exc)


def _sync_machine_story(url: str) -> list[tuple[str, str]]:
    told: list[tuple[str, str]] = []
    store = open_store(url)
    machine = store.plugins.machine("p")
    with open_store(url) as other:
        other.plugins.machine("p").transition_to(P.INSTALLING, "the other writer")
    told.append(_answers(lambda: machine.phase))
    told.append(_answers(lambda: machine.transition_to(P.INSTALLING, "stale")))
    told.append(_answers(lambda: (machine.phase, machine.version, machine.retry.attempts)))
    told.append(_answers(lambda: machine.transition_to(P.UNINSTALLED, "not allowed")))
    store.close()  # the write fails and so does its reload: the machine is stale
    told.append((_answers(lambda: machine.transition_to(P.INSTALLED, "too late"))[0], ""))
    told.append(_answers(lambda: machine.phase))
    told.append(_answers(lambda: machine.retry.attempts))
    return told


async def _async_machine_story(url: str) -> list[tuple[str, str]]:
    told: list[tuple[str, str]] = []
    store = await open_async_store(url)
    machine = await store.plugins.machine("p")
    with open_store(url) as other:
        other.plugins.machine("p").transition_to(P.INSTALLING, "the other writer")
    told.append(_answers(lambda: machine.phase))
    told.append(await _answers_async(lambda: machine.transition_to(P.INSTALLING, "stale")))
    told.append(_answers(lambda: (machine.phase, machine.version, machine.retry.attempts)))
    told.append(await _answers_async(lambda: machine.transition_to(P.UNINSTALLED, "not allowed")))
    await store.aclose()
    late = await _answers_async(lambda: machine.transition_to(P.INSTALLED, "too late"))
    told.append((late[0], ""))
    told.append(_answers(lambda: machine.phase))
    told.append(_answers(lambda: machine.retry.attempts))
    return told


async def _answers_async(call: Callable[[], Awaitable[object]]) -> tuple[str, str]:
    try:
        return "ok", repr(await call())
    except PhaselogError as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_sync_and_async_machines_answer_alike_after_another_writer(
    make_url: Callable[[str], str], kind: str
) -> None:
    """After another writer moved the stream, both machines give the same phases, errors and messages."""
    sync_told = _sync_machine_story(make_url(kind))
    async_told = asyncio.run(_async_machine_story(make_url(kind)))
    assert sync_told[0] == ("ok", repr(P.UNINSTALLED))  # reads do no I/O: the other write is not seen
    assert sync_told[1][0] == "ConcurrencyConflict"
    assert sync_told[2] == ("ok", repr((P.INSTALLING, 2, 0)))  # reloaded by the failed write
    assert sync_told[3][0] == "InvalidTransition"
    assert (
        sync_told[4:]
        == [("StoreClosed", "")]  # final: a closed store does not come back
        + [("StoreUnavailable", "plugin 'p': a failed write left this machine to reload; refresh it")] * 2
    )
    assert async_told == sync_told


def test_a_stale_async_append_and_a_load_fallback_behave_as_sync_ones(
    make_url: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    """On one database, a stale append conflicts and a bad snapshot is skipped (a lost table is not) alike."""
    url = make_url("postgresql")

    async def main() -> None:
        async with open_async_store(url, snapshot_interval=3) as astore:
            store = astore.sync
            machine = store.plugins.machine("s")
            for phase in (P.INSTALLING, P.INSTALLED, P.VALIDATING):
                machine.transition_to(phase, "boot")
            stale_sync = store.load("plugin:s", PluginAggregate)
            stale_async = await astore.load("plugin:s", PluginAggregate)
            machine.transition_to(P.STARTING, "the winner")
            before = store.max_position()
            told = []
            for stale, save in ((stale_sync, _saver(store)), (stale_async, astore.save)):
                stale.change_phase(P.FAILED, "stale")
                with pytest.raises(ConcurrencyConflict) as conflict:
                    await save(stale)
                told.append((str(conflict.value), len(stale.pending_events), stale.version))
            assert told[0] == told[1]
            assert store.max_position() == before  # neither recorded anything
            await _load_fallback(url, store, astore.load, caplog)

    asyncio.run(main())


def _saver(store: Store) -> Callable[[PluginAggregate], Awaitable[object]]:
    async def save(aggregate: PluginAggregate) -> object:
        return store.save(aggregate)

    return save


async def _load_fallback(
    url: str, store: Store, aload: Callable[..., Awaitable[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    assert store.app.snapshots is not None
    table: str = getattr(store.app.snapshots.recorder, "events_table_name", "")
    raw_execute(url, f"UPDATE {table} SET topic = 'nobody.Knows' WHERE originator_id = 'plugin:s'")
    with caplog.at_level(logging.WARNING, logger="phaselog.store"):
        synced = store.load("plugin:s", PluginAggregate)
        warned = [r.getMessage() for r in caplog.records]
        caplog.clear()
        loaded = await aload("plugin:s", PluginAggregate)
        assert [r.getMessage() for r in caplog.records] == warned
    assert "ignoring unreadable snapshot of plugin:s" in warned[0]
    assert (loaded.version, loaded.phase) == (synced.version, synced.phase) == (5, P.STARTING)
    for stream_id, kind in (("plugin:none", PluginAggregate), ("plugin:s", TaskAggregate)):
        with pytest.raises(NotFound) as sync_missing:
            store.load(stream_id, kind)
        with pytest.raises(NotFound) as async_missing:
            await aload(stream_id, kind)
        assert str(async_missing.value) == str(sync_missing.value)
    raw_execute(url, f"DROP TABLE {table}")  # a failing database is not skipped as a bad snapshot is
    with pytest.raises(StoreUnavailable) as sync_lost:
        store.load("plugin:s", PluginAggregate)
    with pytest.raises(StoreUnavailable) as async_lost:
        await aload("plugin:s", PluginAggregate)
    assert str(async_lost.value) == str(sync_lost.value)


def test_the_runtime_opens_no_default_store_unless_the_composition_root_wired_one() -> None:
    """With nothing wired, a recoverable state without store= raises StoreUnavailable naming both remedies."""
    set_default_store(None)
    set_default_store_factory(None)
    try:
        with pytest.raises(StoreUnavailable, match=r"pass store=.*import phaselog\.adapters"):
            get_default_store()
        state = RecoverableState(
            default_state=_Model(),
            persist_state_key="k",
            persistence_enabled=True,
            logger=logging.getLogger("test"),
        )
        with pytest.raises(StoreUnavailable, match="pass store="):
            asyncio.run(state.initialize())
    finally:
        set_default_store_factory(open_store)
        set_default_store(None)


def test_importing_the_adapters_wires_open_store_as_the_default() -> None:
    """The runtime alone has no default store; importing phaselog.adapters wires open_store, explicitly."""
    script = (
        "import sys\n"
        "from phaselog.domain.errors import StoreUnavailable\n"
        "from phaselog.runtime import recoverable\n"
        "assert 'phaselog.adapters' not in sys.modules\n"
        "try:\n"
        "    recoverable.get_default_store()\n"
        "except StoreUnavailable:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('a default store without any wiring')\n"
        "import phaselog.adapters\n"
        "store = recoverable.get_default_store()\n"
        "assert type(store).__name__ == 'Store' and store.kind == 'memory', store\n"
    )
    env = {**os.environ, "PHASELOG_URL": "memory://"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=120)


class _Model(BaseModel):
    count: int = 0
