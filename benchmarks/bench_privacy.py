"""The cost of crypto-shredding: appends and loads of events with personal fields beside plain ones.

``run(url)`` appends ``n`` customer streams (2,000; 300 with ``PHASELOG_BENCH_QUICK``)
three times in one store, interleaved: with an event whose email and street are
marked personal for a new subject each time (a key is made, wrapped and stored),
for one subject already keyed (the key comes from the cache; the new stream is
noted in the subject's stream index), and unmarked. Then ``n`` more events to one
existing stream, marked and unmarked (the steady state: only the sealing is paid).
It reports median and p95 microseconds per append and per load, and the ratios to
the plain appends of the same run.
"""

from __future__ import annotations

import base64
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Annotated, Any, ClassVar

from phaselog.adapters import open_store
from phaselog.domain.events import Aggregate, CreationEvent, DomainEvent
from phaselog.domain.personal import Personal, SubjectId

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import main_on_both


class _Opened(CreationEvent):
    TOPIC: ClassVar[str] = "bench.privacy.PlainOpened"
    person: str
    email: str
    street: str

    @classmethod
    def aggregate_class(cls) -> type[Aggregate]:
        return _Customer

    def apply(self, aggregate: Any) -> None:
        aggregate.email = self.email


class _SealedOpened(CreationEvent):
    TOPIC: ClassVar[str] = "bench.privacy.SealedOpened"
    person: Annotated[str, SubjectId()]
    email: Annotated[str, Personal()]
    street: Annotated[str, Personal()]

    @classmethod
    def aggregate_class(cls) -> type[Aggregate]:
        return _Customer

    def apply(self, aggregate: Any) -> None:
        aggregate.email = self.email


class _Noted(DomainEvent):
    TOPIC: ClassVar[str] = "bench.privacy.PlainNoted"
    note: str


class _SealedNoted(DomainEvent):
    TOPIC: ClassVar[str] = "bench.privacy.SealedNoted"
    note: Annotated[str, Personal()]


class _Customer(Aggregate):
    TOPIC: ClassVar[str] = "bench.privacy.Customer"


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_us": round(statistics.median(ordered) * 1e6, 1),
        "p95_us": round(ordered[int(len(ordered) * 0.95)] * 1e6, 1),
    }


def run(url: str) -> dict[str, Any]:
    """Append and load plain, sealed (new subject) and sealed (known subject) events, interleaved."""
    n = 300 if os.environ.get("PHASELOG_BENCH_QUICK") else 2000
    kinds = ("plain", "sealed_new", "sealed_known", "plain_same_stream", "sealed_same_stream")
    times: dict[str, list[float]] = {k: [] for k in kinds}
    loads: dict[str, list[float]] = {"plain": [], "sealed": []}
    with open_store(url) as store:
        store.keys.use(_key())
        for i in range(n):
            for kind, cls, person in (
                ("plain", _Opened, f"p{i}"),
                ("sealed_new", _SealedOpened, f"s{i}"),
                ("sealed_known", _SealedOpened, "s0"),
            ):
                agg = _Customer.start(
                    cls, f"c:{kind}:{i}", person=person, email="ann@example.org", street="12 Rue"
                )
                started = time.perf_counter()
                store.save(agg)
                times[kind].append(time.perf_counter() - started)
        steady: tuple[tuple[str, type[DomainEvent]], ...] = (
            ("plain_same_stream", _Noted),
            ("sealed_same_stream", _SealedNoted),
        )
        for kind, noted in steady:
            agg = _Customer.start(_Opened, f"c:{kind}", person="x", email="e", street="s")
            store.save(agg)
            for i in range(n):
                agg.trigger(noted, note=f"note {i}")
                started = time.perf_counter()
                store.save(agg)
                times[kind].append(time.perf_counter() - started)
        for i in range(0, n, 4):
            for kind, stream in (("plain", f"c:plain:{i}"), ("sealed", f"c:sealed_known:{i}")):
                started = time.perf_counter()
                store.load(stream, _Customer)
                loads[kind].append(time.perf_counter() - started)
    report: dict[str, Any] = {"appends": {k: _summary(v) for k, v in times.items()}}
    report["loads"] = {k: _summary(v) for k, v in loads.items()}
    plain = report["appends"]["plain"]["median_us"]
    report["sealed_new_vs_plain"] = round(report["appends"]["sealed_new"]["median_us"] / plain, 2)
    report["sealed_known_vs_plain"] = round(report["appends"]["sealed_known"]["median_us"] / plain, 2)
    same = report["appends"]["plain_same_stream"]["median_us"]
    report["sealed_same_stream_vs_plain"] = round(
        report["appends"]["sealed_same_stream"]["median_us"] / same, 2
    )
    report["load_sealed_vs_plain"] = round(
        report["loads"]["sealed"]["median_us"] / report["loads"]["plain"]["median_us"], 2
    )
    return report


def _key() -> Any:
    from phaselog.adapters.crypto import MasterKey  # noqa: PLC0415 - beside the store it keys

    return MasterKey(base64.b64encode(os.urandom(32)).decode())


if __name__ == "__main__":
    main_on_both(run, "privacy")
