"""The commit horizon of a store's global order: how far readers may read, and who holds them there.

Readers of the global order (read models, subscriptions, the audit) read only
*final* positions: every position up to the horizon has committed or never
will. On PostgreSQL only an append still in flight can hold the horizon (see
``docs/store.md``); on SQLite and in memory one writer commits in position
order, so the horizon is always the newest position and nothing is in flight.

An append in flight for longer than ``stall_warning`` seconds is a *stall*: it
is named (pid, transaction, application, client, state, age, last query) by
``projections status``, ``doctor``, ``/healthz``, the metrics and one log
warning per stall, and nothing is ever skipped to heal it. :class:`StallWatch`
decides what an observation means, once for the sync and the async stores.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "DEFAULT_STALL_UNHEALTHY",
    "DEFAULT_STALL_WARNING",
    "Horizon",
    "InFlightAppend",
    "PreparedTransaction",
    "StallWatch",
]

log = logging.getLogger("phaselog.horizon")

DEFAULT_STALL_WARNING = 5.0  # seconds an append may stay in flight before it is named
DEFAULT_STALL_UNHEALTHY = 30.0  # seconds after which /healthz answers 503 "degraded"


@dataclass(frozen=True)
class PreparedTransaction:
    """A prepared (two-phase) transaction, as ``pg_prepared_xacts`` shows it."""

    gid: str
    owner: str
    database: str
    age_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The fields, for JSON."""
        return {
            "gid": self.gid,
            "owner": self.owner,
            "database": self.database,
            "age_seconds": self.age_seconds,
        }


@dataclass(frozen=True)
class InFlightAppend:
    """An append to this store that has not committed or rolled back yet.

    ``age_seconds`` is how long its transaction has been open (at least how long
    this process has seen it in flight, where the server hides the start time
    from a role without ``pg_read_all_stats``). The session fields are ``None``
    where the server does not show them to this role.
    """

    pid: int | None
    transaction_id: int | None
    age_seconds: float
    application_name: str | None = None
    client_addr: str | None = None
    state: str | None = None
    last_query: str | None = None
    prepared: PreparedTransaction | None = None

    @property
    def key(self) -> tuple[int | None, int | None]:
        """What identifies this append across observations."""
        return (self.pid, self.transaction_id)

    @property
    def remedy(self) -> str:
        """The statement that ends it (nothing is ever skipped to heal a stall)."""
        if self.prepared is not None:
            return f"ROLLBACK PREPARED '{self.prepared.gid}' (or COMMIT PREPARED)"
        if self.pid is not None:
            return f"SELECT pg_terminate_backend({self.pid})"
        return "end the transaction that appended"  # pragma: no cover - a pid or a prepared gid is known

    def describe(self) -> str:
        """One line an on-call engineer can act on."""
        if self.prepared is not None:
            p = self.prepared
            who = f"prepared transaction {p.gid!r} (owner {p.owner}, database {p.database})"
        else:
            who = f"pid {self.pid}"
            if self.application_name:
                who += f" ({self.application_name!r})"
            if self.client_addr:
                who += f" from {self.client_addr}"
            if self.state:
                who += f", {self.state}"
        xid = f" transaction {self.transaction_id}," if self.transaction_id is not None else ""
        line = f"{who},{xid} in flight for {self.age_seconds:.1f} s"
        if self.last_query and self.prepared is None:
            query = " ".join(self.last_query.split())
            line += f", last query: {query[:120]}{'…' if len(query) > 120 else ''}"
        return f"{line}; end it with {self.remedy}"

    def as_dict(self) -> dict[str, Any]:
        """The fields, for JSON."""
        return {
            "pid": self.pid,
            "transaction_id": self.transaction_id,
            "age_seconds": round(self.age_seconds, 3),
            "application_name": self.application_name,
            "client_addr": self.client_addr,
            "state": self.state,
            "last_query": self.last_query,
            "prepared": self.prepared.as_dict() if self.prepared is not None else None,
            "remedy": self.remedy,
        }


@dataclass(frozen=True)
class Horizon:
    """One look at the horizon of a store's global order.

    ``position``: readers read up to here (every position up to it is final).
    ``head``: the newest committed position; ``held_back``: how many committed
    events past ``position`` wait for the appends ``in_flight`` (by transaction id) to end. ``prepared`` lists
    prepared transactions in the store's database: they cannot hold this horizon
    (an append sends a NOTIFY, and PostgreSQL refuses to prepare a transaction
    that did) but they hold back VACUUM, so ``doctor`` names them.
    """

    position: int
    head: int
    held_back: int = 0
    in_flight: tuple[InFlightAppend, ...] = ()
    prepared: tuple[PreparedTransaction, ...] = ()
    stall_warning: float = DEFAULT_STALL_WARNING
    stall_unhealthy: float = DEFAULT_STALL_UNHEALTHY

    @property
    def holder(self) -> InFlightAppend | None:
        """The append in flight with the lowest transaction id (the one every reader waits for), if any."""
        return self.in_flight[0] if self.in_flight else None

    @property
    def stall(self) -> InFlightAppend | None:
        """The first append (by transaction id) in flight for longer than ``stall_warning``, if any."""
        return next((a for a in self.in_flight if a.age_seconds >= self.stall_warning), None)

    @property
    def unhealthy(self) -> bool:
        """True once a stall has lasted ``stall_unhealthy`` seconds (``/healthz`` answers 503)."""
        stall = self.stall
        return stall is not None and stall.age_seconds >= self.stall_unhealthy

    @property
    def lag_seconds(self) -> float:
        """How long the horizon has been held: the holder's age in seconds (0.0 when nothing is in flight)."""
        holder = self.holder
        return round(holder.age_seconds, 3) if holder is not None else 0.0

    def describe(self) -> str:
        """One line: the horizon, and the stall if there is one."""
        line = f"horizon at position {self.position} of {self.head}"
        stall = self.stall
        if stall is None:
            return line + (f", {len(self.in_flight)} append(s) in flight" if self.in_flight else "")
        return f"{line}: {self.held_back} committed event(s) held back by {stall.describe()}"

    def as_dict(self) -> dict[str, Any]:
        """The fields, for JSON (``--json``, ``/healthz``)."""
        stall = self.stall
        return {
            "position": self.position,
            "head": self.head,
            "held_back": self.held_back,
            "lag_seconds": self.lag_seconds,
            "stalled": stall is not None,
            "unhealthy": self.unhealthy,
            "stall": stall.as_dict() if stall is not None else None,
            "in_flight": [a.as_dict() for a in self.in_flight],
            "prepared": [p.as_dict() for p in self.prepared],
            "stall_warning": self.stall_warning,
            "stall_unhealthy": self.stall_unhealthy,
        }


@dataclass
class StallWatch:
    """What one store's looks at its in-flight appends mean: ages, stalls, one warning per stall.

    Sans-I/O and shared by the sync and async stores: the shells fetch the rows,
    this decides. An append's age is the larger of what the server reports and
    how long this watch has seen it (a role that may not read other sessions'
    start times still sees a stall grow), and a stall is logged once, when it
    passes ``stall_warning``, not once per look.
    """

    stall_warning: float = DEFAULT_STALL_WARNING
    stall_unhealthy: float = DEFAULT_STALL_UNHEALTHY
    clock: Callable[[], float] = time.monotonic
    _first_seen: dict[tuple[int | None, int | None], float] = field(default_factory=dict)
    _warned: set[tuple[int | None, int | None]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def observe(
        self,
        position: int,
        head: int,
        held_back: int = 0,
        in_flight: Iterable[InFlightAppend] = (),
        prepared: Iterable[PreparedTransaction] = (),
    ) -> Horizon:
        """The :class:`Horizon` these rows describe; logs a warning the first time a stall is seen.

        Thread-safe: the console, ``/healthz``, the metrics and a runner may look at once.
        """
        with self._lock:
            return self._observe(position, head, held_back, in_flight, prepared)

    def _observe(
        self,
        position: int,
        head: int,
        held_back: int,
        in_flight: Iterable[InFlightAppend],
        prepared: Iterable[PreparedTransaction],
    ) -> Horizon:
        now = self.clock()
        seen: list[InFlightAppend] = []
        for append in in_flight:
            first = self._first_seen.setdefault(append.key, now)
            seen.append(replace(append, age_seconds=max(append.age_seconds, now - first)))
        keys = {a.key for a in seen}
        for gone in set(self._first_seen) - keys:
            del self._first_seen[gone]
        self._warned &= keys
        seen.sort(key=lambda a: (a.transaction_id is None, a.transaction_id or 0))
        horizon = Horizon(
            position,
            head,
            held_back,
            tuple(seen),
            tuple(prepared),
            stall_warning=self.stall_warning,
            stall_unhealthy=self.stall_unhealthy,
        )
        stall = horizon.stall
        if stall is not None and stall.key not in self._warned:
            self._warned.add(stall.key)
            log.warning(
                "readers of the global order are held at position %d (%d committed event(s) wait): %s",
                horizon.position,
                horizon.held_back,
                stall.describe(),
            )
        return horizon
