"""``phaselog doctor``: check one store end to end, one verdict per check.

Checks, in order: ``connectivity`` (the store opens read-only), ``schema version``,
``horizon`` (a stall named; ``fail`` once it passes ``stall_unhealthy``), one
``read model NAME`` per read model (lag from ``Projections.status()``), ``dead
letters``, ``last seal`` (the newest seal, and a warning once an event no seal
covers is older than ``seal_age``; ``n/a`` on memory) and
``prepared transactions`` (named: they cannot hold the horizon but hold back
VACUUM). Each check is ``ok``, ``warn``, ``fail`` or ``n/a`` (does not apply, or
not checked because an earlier check failed), and nothing a check meets is
raised: a failing look is a ``fail`` row. The exit status is the worst verdict
(:data:`EXIT_CODES`: 0 ok, 1 warn, 2 fail), so a script can tell them apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from phaselog.adapters.audit.integrity import Seal
from phaselog.adapters.audit.reading import snapshot_reader
from phaselog.adapters.migrate import SCHEMA_VERSION, phaselog_version, probe
from phaselog.adapters.postgres.schema import SEALS_TABLE
from phaselog.adapters.store import Store, open_store
from phaselog.adapters.urls import parse_url
from phaselog.projections.base import EventDecoder
from phaselog.runtime.horizon import Horizon

__all__ = ["DEFAULT_SEAL_AGE", "EXIT_CODES", "Check", "Diagnosis", "check_store", "diagnose", "last_seal"]

Verdict = Literal["ok", "warn", "fail", "n/a"]
EXIT_CODES: dict[str, int] = {"ok": 0, "n/a": 0, "warn": 1, "fail": 2}
"""The exit status of ``phaselog doctor`` for its worst verdict."""
DEFAULT_SEAL_AGE = 3600.0  # seconds an event may stay unsealed (writing stores seal every seal_interval)
_LATER = ("horizon", "read models", "dead letters", "last seal", "prepared transactions")


@dataclass(frozen=True)
class Check:
    """One row of the doctor's report."""

    name: str
    status: Verdict
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The fields, for JSON."""
        return {"check": self.name, "status": self.status, "detail": self.detail, "data": self.data}


@dataclass(frozen=True)
class Diagnosis:
    """Every check of one store, and what they add up to."""

    url: str
    checks: tuple[Check, ...]

    @property
    def status(self) -> Verdict:
        """The worst verdict (``n/a`` counts as ``ok``)."""
        worst = max((EXIT_CODES[c.status] for c in self.checks), default=0)
        return "fail" if worst == 2 else "warn" if worst == 1 else "ok"

    @property
    def exit_code(self) -> int:
        """0 when every check is ok (or n/a), 1 when the worst is a warning, 2 when any check failed."""
        return EXIT_CODES[self.status]

    def as_dict(self) -> dict[str, Any]:
        """The report, for ``--json``."""
        return {
            "url": self.url,
            "status": self.status,
            "exit_code": self.exit_code,
            "checks": [c.as_dict() for c in self.checks],
        }


def diagnose(url: str | None, *, seal_age: float = DEFAULT_SEAL_AGE) -> Diagnosis:
    """Open the store at ``url`` read-only and run every check (a store that does not open fails)."""
    try:
        location = parse_url(url)
        version = probe(location, create=False)
    except Exception as exc:  # the doctor reports what it meets, it never raises
        return Diagnosis(str(url), (Check("connectivity", "fail", str(exc)), *_not_checked("schema version")))
    shown = location.display
    if version is None:
        note = " (a memory:// store lives only inside its process)" if location.kind == "memory" else ""
        found = Check("connectivity", "fail", f"no phaselog store at {shown}{note}")
        return Diagnosis(shown, (found, *_not_checked("schema version")))
    schema = _schema_check(version)
    if schema.status == "fail":
        reached = Check("connectivity", "ok", f"reached {shown} ({location.kind})")
        return Diagnosis(shown, (reached, schema, *_not_checked()))
    try:
        store = open_store(url, read_only=True)
    except Exception as exc:  # the doctor reports what it meets, it never raises
        return Diagnosis(shown, (Check("connectivity", "fail", str(exc)), schema, *_not_checked()))
    with store:
        return Diagnosis(shown, tuple(check_store(store, seal_age=seal_age)))


def _not_checked(*first: str) -> list[Check]:
    return [Check(name, "n/a", "not checked (see the failure above)") for name in (*first, *_LATER)]


def _schema_check(version: int) -> Check:
    data = {"found": version, "expected": SCHEMA_VERSION}
    if version == SCHEMA_VERSION:
        return Check("schema version", "ok", f"schema version {version} (current)", data)
    if version < SCHEMA_VERSION:
        need = f"this phaselog needs {SCHEMA_VERSION}"
        detail = f"schema version {version}, {need}: run `phaselog migrate --url URL`"
    else:
        detail = (
            f"schema version {version} is newer than phaselog {phaselog_version()} knows: upgrade phaselog"
        )
    return Check("schema version", "fail", detail, data)


def check_store(store: Store, *, seal_age: float = DEFAULT_SEAL_AGE) -> list[Check]:
    """Every check of an open store (the connectivity check asks it for its head position)."""
    out: list[Check] = []
    head = _guarded(out, "connectivity", lambda: _connectivity(store))
    if head is None:
        return [*out, *_not_checked("schema version")]
    out.append(_schema_check(store.schema_version or SCHEMA_VERSION))
    horizon = _guarded(out, "horizon", lambda: _horizon(store))
    rows = _guarded(out, "read models", lambda: _read_models(store, horizon))
    if rows is None:
        out.append(Check("dead letters", "n/a", "not checked (the read models' status is unavailable)"))
    else:
        out.append(_dead_letters(rows))
    _guarded(out, "last seal", lambda: _last_seal(store, seal_age))
    out.append(_prepared(store, horizon))
    return out


def _guarded(out: list[Check], name: str, run: Callable[[], tuple[Iterable[Check], Any]]) -> Any:
    """Run one check; its rows go to ``out`` and its value back, a failure becomes a ``fail`` row."""
    try:
        checks, value = run()
    except Exception as exc:  # a failing look is a fail row
        out.append(Check(name, "fail", f"{type(exc).__name__}: {exc}"))
        return None
    out.extend(checks)
    return value


def _connectivity(store: Store) -> tuple[list[Check], int]:
    head = store.max_position()
    mode = "read-only" if store.read_only else "read-write"
    detail = f"{store.url} answers ({store.kind}, {mode}, newest position {head})"
    return [Check("connectivity", "ok", detail, {"kind": store.kind, "position": head})], head


def _horizon(store: Store) -> tuple[list[Check], Horizon]:
    horizon = store.horizon()
    data = horizon.as_dict()
    if horizon.unhealthy:
        limit = f"stalled past stall_unhealthy ({horizon.stall_unhealthy:g} s; /healthz answers 503)"
        return [Check("horizon", "fail", f"{limit}: {horizon.describe()}", data)], horizon
    if horizon.stall is not None:
        limit = f"stalled past stall_warning ({horizon.stall_warning:g} s)"
        return [Check("horizon", "warn", f"{limit}: {horizon.describe()}", data)], horizon
    line = f"readers at position {horizon.position} of {horizon.head}"
    if horizon.in_flight:
        line += f", {len(horizon.in_flight)} append(s) in flight, none for {horizon.stall_warning:g} s yet"
    return [Check("horizon", "ok", line, data)], horizon


def _read_models(store: Store, horizon: Horizon | None) -> tuple[list[Check], list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = list(store.projections.status())
    warning = horizon.stall_warning if horizon is not None else store.stalls.stall_warning
    stalled = horizon is not None and horizon.stall is not None
    out = []
    for r in rows:
        name, at, head = r["name"], r["position"], r["head"]
        behind = f"{r['lag']} event(s), {r['lag_seconds']:.1f} s behind (position {at} of {head})"
        data = {k: r[k] for k in ("position", "head", "lag", "lag_seconds", "halted", "owner", "errors")}
        if r["halted"]:
            why = f": {r['last_error']}" if r["last_error"] else ""
            detail = (
                f"halted (on_error='stop'), {behind}{why}; fix it, then `phaselog projections retry {name}`"
            )
            out.append(Check(f"read model {name}", "fail", detail, data))
        elif r["lag"] and r["lag_seconds"] >= warning:
            if stalled and horizon is not None and at >= horizon.position:
                cause = "waiting for the stalled append named under horizon"
            elif r["owner"]:
                cause = f"followed by {r['owner']}"
            else:
                cause = "no runner holds its lease: is `phaselog projections run` running?"
            out.append(Check(f"read model {name}", "warn", f"{behind}; {cause}", data))
        else:
            out.append(Check(f"read model {name}", "ok", f"at position {at} of {head}, lag {r['lag']}", data))
    return out, rows


def _dead_letters(rows: list[dict[str, Any]]) -> Check:
    counts = {str(r["name"]): int(r["errors"]) for r in rows if r["errors"]}
    if not counts:
        return Check("dead letters", "ok", "none", {"total": 0})
    total = sum(counts.values())
    each = ", ".join(f"{name}: {n}" for name, n in counts.items())
    detail = (
        f"{total} dead-lettered event(s) ({each}); read them with `phaselog projections errors`, "
        "fix the cause, then `phaselog projections retry`"
    )
    return Check("dead letters", "warn", detail, {"total": total, "by_read_model": counts})


def last_seal(store: Store) -> tuple[Seal, datetime] | None:
    """The newest seal of a durable store and when it was recorded (``None``: never sealed)."""
    with snapshot_reader(store) as read:
        rows = list(
            read(
                "SELECT id, horizon, events, digest, signature, sealed_at "
                f"FROM {read.table(SEALS_TABLE)} ORDER BY id DESC LIMIT 1"
            )
        )
    if not rows:
        return None
    r = rows[0]
    at = r[5] if isinstance(r[5], datetime) else datetime.fromisoformat(str(r[5]))
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return Seal(int(r[0]), int(r[1]), int(r[2]), str(r[3]), signed=r[4] is not None), at


def _last_seal(store: Store, seal_age: float) -> tuple[list[Check], None]:
    """Warn when an event not covered by any seal is older than ``seal_age`` (sealing has stopped)."""
    if store.kind == "memory":
        return [Check("last seal", "n/a", "the memory store keeps no hash chain")], None
    found = last_seal(store)
    after = found[0].horizon if found is not None else 0
    data: dict[str, Any] = {"seal": None, "unsealed_since": None}
    if found is None:
        line = "never sealed"
    else:
        seal, at = found
        age = max(0.0, time.time() - at.timestamp())
        signed = "signed" if seal.signed else "unsigned"
        line = f"seal #{seal.id} ({signed}) up to position {seal.horizon}, {age:.0f} s old"
        data["seal"] = {"id": seal.id, "horizon": seal.horizon, "signed": seal.signed, "age_seconds": age}
    oldest = _age_of(store, after + 1)
    if oldest is None:
        return [Check("last seal", "ok", f"{line}; nothing newer to seal", data)], None
    data["unsealed_since"] = {"position": oldest[0], "age_seconds": oldest[1]}
    line += f"; unsealed from position {oldest[0]}, {oldest[1]:.0f} s old"
    if oldest[1] <= seal_age:
        return [Check("last seal", "ok", line, data)], None
    detail = (
        f"{line} (more than {seal_age:g} s): run `phaselog audit seal`; writing stores seal their own "
        "appends every seal_interval (unless it is 0), and so does `phaselog projections run`"
    )
    return [Check("last seal", "warn", detail, data)], None


def _age_of(store: Store, start: int) -> tuple[int, float] | None:
    """The position and age in seconds of the first event at or after ``start`` (``None``: there is none)."""
    page = store.records(start, 1)
    if not page:
        return None
    stamp = EventDecoder(store.app.mapper)(page[0]).timestamp
    try:
        when = datetime.fromisoformat(str(stamp))
    except ValueError:
        return page[0].id, 0.0  # an event without a readable time: counted as new
    when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return page[0].id, max(0.0, time.time() - when.timestamp())


def _prepared(store: Store, horizon: Horizon | None) -> Check:
    if store.kind != "postgresql":
        return Check("prepared transactions", "n/a", f"{store.kind} has no two-phase commit")
    if horizon is None:
        return Check("prepared transactions", "n/a", "not checked (the horizon is unavailable)")
    data = {"prepared": [p.as_dict() for p in horizon.prepared]}
    if not horizon.prepared:
        return Check("prepared transactions", "ok", "none", data)
    named = "; ".join(
        f"{p.gid!r} (owner {p.owner}, database {p.database}, {p.age_seconds:.0f} s old): "
        f"COMMIT PREPARED '{p.gid}' or ROLLBACK PREPARED '{p.gid}'"
        for p in horizon.prepared
    )
    detail = f"{len(horizon.prepared)} prepared transaction(s), holding back VACUUM (not readers): {named}"
    return Check("prepared transactions", "warn", detail, data)
