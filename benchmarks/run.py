"""Run every phaselog benchmark and print one JSON document.

Usage: ``python benchmarks/run.py [--quick]``. PostgreSQL comes from
``$PHASELOG_BENCH_DSN`` or a throwaway server started here (as for the tests);
SQLite files go to a temporary folder. ``--quick`` shrinks the workloads.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import bench_scale  # noqa: E402
import bench_store  # noqa: E402
from bench_common import calibration_loop_s  # noqa: E402
from pgserver import PostgresServer  # noqa: E402

AREA_BENCHMARKS = (
    "bench_plugins",
    "bench_tasks",
    "bench_plans",
    "bench_state",
    "bench_projections",
    "bench_console",
)


def _postgres_only(name: str, dsn: str) -> dict[str, Any]:
    """Run ``name``'s PostgreSQL-only benchmark, timed; its traceback instead if it fails."""
    started = time.perf_counter()
    try:
        return {**importlib.import_module(name).run(dsn), "seconds": round(time.perf_counter() - started, 1)}
    except Exception:  # one broken benchmark must not hide the others' figures
        return {"error": traceback.format_exc(limit=3)}


def main() -> int:
    """Run the benchmarks and print their JSON; exit 1 if any of them failed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small workloads (a smoke run)")
    args = parser.parse_args()
    os.environ["PHASELOG_BENCH_QUICK"] = "1" if args.quick else ""
    server = None
    dsn = os.environ.get("PHASELOG_BENCH_DSN")
    if not dsn:
        server = PostgresServer.start()
        dsn = server.dsn
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "calibration_loop_s": calibration_loop_s(),  # how fast the shared VM was at the start
        }
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            report["store"] = bench_store.run(
                dsn,
                f"sqlite:///{tmp}/store.db",
                per_writer=100 if args.quick else 400,
                load_events=1000 if args.quick else 5000,
            )
            report["store"]["seconds"] = round(time.perf_counter() - started, 1)
            for name in AREA_BENCHMARKS:
                if not (HERE / f"{name}.py").exists():
                    continue
                started = time.perf_counter()
                try:
                    module = importlib.import_module(name)
                    report[name.removeprefix("bench_")] = {
                        "postgresql": module.run(f"{dsn}?schema={name}_{os.getpid()}"),
                        "sqlite": module.run(f"sqlite:///{tmp}/{name}.db"),
                        "seconds": round(time.perf_counter() - started, 1),
                    }
                except Exception:  # one broken benchmark must not hide the others' figures
                    report[name.removeprefix("bench_")] = {"error": traceback.format_exc(limit=3)}
            started = time.perf_counter()
            try:  # PostgreSQL only: appends from 1, 4 and 8 threads and processes beside the raw floor
                bench_write_path = importlib.import_module("bench_write_path")
                write_path = bench_write_path.run(dsn, per_writer=50 if args.quick else 300)
                report["write_path"] = {**write_path, "seconds": round(time.perf_counter() - started, 1)}
            except Exception:  # one broken benchmark must not hide the others' figures
                report["write_path"] = {"error": traceback.format_exc(limit=3)}
            report["commit"] = _postgres_only("bench_commit", dsn)  # group commit beside both floors
            report["aio"] = _postgres_only("bench_aio", dsn)  # 1,000 coroutines on one loop vs threads
            report["horizon"] = _postgres_only("bench_horizon", dsn)  # catch-ups beside the former horizon
            started = time.perf_counter()
            try:  # PostgreSQL only: sweeps with 0 and with many finished tasks
                sweep = importlib.import_module("bench_sweep").run(dsn)
                report["sweep"] = {**sweep, "seconds": round(time.perf_counter() - started, 1)}
            except Exception:  # one broken benchmark must not hide the others' figures
                report["sweep"] = {"error": traceback.format_exc(limit=3)}
            started = time.perf_counter()
            try:  # PostgreSQL only: several service processes sharing one server
                report["scale"] = {**bench_scale.run(dsn), "seconds": round(time.perf_counter() - started, 1)}
            except Exception:  # one broken benchmark must not hide the others' figures
                report["scale"] = {"error": traceback.format_exc(limit=3)}
    finally:
        if server is not None:
            server.stop()
    print(json.dumps(report, indent=2))
    return 0 if all("error" not in v for v in report.values() if isinstance(v, dict)) else 1


if __name__ == "__main__":
    sys.exit(main())
