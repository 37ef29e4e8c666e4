"""The console over 100,000 streams: time per page, beside the bare keyset query, on PostgreSQL and SQLite.

``run(url)`` fills a fresh store with 100,000 plugin streams (10,000 with
``PHASELOG_BENCH_QUICK``; a third of them moved to Running, each a second
apart), catches the read models up and serves the console on 127.0.0.1. Each
page is fetched over HTTP at the first, middle and last page, five times; the
JSON gives min and median milliseconds per page:

* ``streams_page``: ``/streams?kind=plugin&after=ID`` (keyset over the stream index);
* ``api_streams_page``: the same as JSON;
* ``rows_page``: ``/projections/plugin_phases?phase=Running&after=KEY`` (a drill-down);
* ``events_since``: ``/events?since=T`` (a time found by bisecting positions);
* ``stream_page``: one plugin's page (its timeline, SVG and failure header);
* ``floor_heads``: the bare driver running the heads keyset query (``LIMIT 51``),
  and ``streams_vs_floor`` the page's median over it.

The goal: every page in under a second at any depth.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import psycopg
from eventsourcing.persistence import StoredEvent

from phaselog.adapters import Store, open_store
from phaselog.adapters.serve.app import ConsoleServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import main_on_both

START = datetime(2026, 1, 1, tzinfo=UTC)
REPEAT = 5


def _events(streams: int) -> list[StoredEvent]:
    """A PluginCreated per stream, and a move to Running for every third one, a second apart."""
    out = []
    for i in range(streams):
        ts = (START + timedelta(seconds=i)).isoformat()
        pid = f"p{i:06d}"
        created = {"timestamp": ts, "plugin_id": pid, "phase": "Uninstalled", "next_backoff": "PT1S"}
        out.append(StoredEvent(f"plugin:{pid}", 1, "phaselog.plugin.PluginCreated", orjson.dumps(created)))
        if i % 3 == 0:
            moved = {"timestamp": ts, "from_phase": "Uninstalled", "to_phase": "Running", "reason": "up"}
            out.append(StoredEvent(f"plugin:{pid}", 2, "phaselog.plugin.PhaseChanged", orjson.dumps(moved)))
    return out


def _fetch_ms(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - 127.0.0.1 only
        response.read()
        assert response.status == 200, url
    return (time.perf_counter() - started) * 1000


def _timed(fn: Any) -> dict[str, float]:
    samples = [fn() for _ in range(REPEAT)]
    return {"min_ms": round(min(samples), 2), "median_ms": round(statistics.median(samples), 2)}


def _floor_heads(store: Store, after: str) -> float:
    """Milliseconds of the bare driver's keyset query over the stream index."""
    if store.kind == "postgresql":
        schema = store.location.schema
        with psycopg.connect(**store.location.conninfo) as conn:  # type: ignore[arg-type]
            started = time.perf_counter()
            conn.execute(
                f'SELECT stream_id, version, position, open FROM "{schema}".phaselog_streams '
                "WHERE stream_id >= 'plugin:' AND stream_id < 'plugin;' AND stream_id > %s "
                "ORDER BY stream_id LIMIT 51",
                [after],
            ).fetchall()
            return (time.perf_counter() - started) * 1000
    assert store.location.sqlite_path is not None
    conn2 = sqlite3.connect(store.location.sqlite_path)
    try:
        started = time.perf_counter()
        conn2.execute(
            "SELECT stream_id, version, position, open FROM phaselog_streams WHERE stream_id >= 'plugin:' "
            "AND stream_id < 'plugin;' AND stream_id > ? ORDER BY stream_id LIMIT 51",
            [after],
        ).fetchall()
        return (time.perf_counter() - started) * 1000
    finally:
        conn2.close()


def run(url: str) -> dict[str, Any]:
    """Fill ``url`` with the streams, serve the console and time its pages at three depths."""
    streams = 10_000 if os.environ.get("PHASELOG_BENCH_QUICK") else 100_000
    events = _events(streams)
    with open_store(url) as store:
        started = time.perf_counter()
        for i in range(0, len(events), 2000):
            store.app.recorder.insert_events(events[i : i + 2000])
        fill_s = time.perf_counter() - started
        store.projections.catch_up()
        server = ConsoleServer(store, port=0)
        server.start(timeout=30)
        base = f"http://127.0.0.1:{server.port}"
        depths = {"first": None, "middle": f"p{streams // 2:06d}", "last": f"p{streams - 40:06d}"}
        report: dict[str, Any] = {"streams": streams, "events": len(events), "fill_s": round(fill_s, 1)}
        try:
            for depth, key in depths.items():
                after = "" if key is None else f"&after={quote('plugin:' + key)}"
                rows_after = "" if key is None else f"&after={key}"
                since = (START + timedelta(seconds=0 if key is None else int(key[1:]))).isoformat()
                floor = _timed(lambda k=key: _floor_heads(store, "plugin:" + (k or "")))
                page = _timed(lambda a=after: _fetch_ms(f"{base}/streams?kind=plugin{a}"))
                report[depth] = {
                    "streams_page": page,
                    "api_streams_page": _timed(
                        lambda a=after: _fetch_ms(f"{base}/api/streams?kind=plugin{a}")
                    ),
                    "rows_page": _timed(
                        lambda a=rows_after: _fetch_ms(f"{base}/projections/plugin_phases?phase=Running{a}")
                    ),
                    "events_since": _timed(lambda t=since: _fetch_ms(f"{base}/events?since={quote(t)}")),
                    "stream_page": _timed(lambda k=key: _fetch_ms(f"{base}/streams/plugin:{k or 'p000000'}")),
                    "floor_heads": floor,
                    "streams_vs_floor": round(page["median_ms"] / max(floor["median_ms"], 0.001), 1),
                }
        finally:
            server.stop()
    worst = max(v["median_ms"] for d in depths for k, v in report[d].items() if isinstance(v, dict))
    report["slowest_page_ms"] = worst
    report["goal_under_1s"] = worst < 1000
    return report


if __name__ == "__main__":
    main_on_both(run, "console")
