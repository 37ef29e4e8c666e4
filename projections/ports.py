"""The ports the read side owns: where it reads the event log, and where it keeps its read models.

:class:`LogReader` is the event log as the read side sees it: pages of
:class:`~phaselog.runtime.ports.LogRecord` after a position, the newest
position, the store's codec for decoding event state, and (when the store has
them) its commit horizon, its sealing and a way to wait for new events.

:class:`ViewStore` is the database the read models live in. It hands out
:class:`ViewSession` transactions, which speak in read-model terms (positions,
state rows and leases, dead letters, rows of a :class:`TableSpec`), never in
SQL: rendering them for a dialect, and translating its driver's errors into
phaselog's, is the adapter's job (``phaselog.adapters.views`` composes them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from phaselog.domain.errors import StoreUnavailable

if TYPE_CHECKING:
    from phaselog.runtime.horizon import InFlightAppend
    from phaselog.runtime.ports import LogRecord

__all__ = [
    "ColumnKind",
    "DeadLetter",
    "HorizonView",
    "LogReader",
    "StateCodec",
    "TableSpec",
    "ViewPorts",
    "ViewSession",
    "ViewSource",
    "ViewStore",
    "open_view_ports",
]

ColumnKind = str
"""A column's kind: ``"text"``, ``"int"``, ``"bool"`` or ``"json"`` (JSON text)."""

DeadLetter = tuple[int, str, str, str]
"""``(position, stream, topic, error)`` of one event a read model could not fold or write."""


@dataclass(frozen=True)
class TableSpec:
    """One read-model table, described rather than written in SQL (the view store renders it)."""

    name: str
    """The table's own name (unqualified: the view store places it in its schema)."""
    columns: Mapping[str, ColumnKind]
    """Column name -> kind, in declared order (row values come in this order)."""
    key: str
    """The primary-key column."""
    model: str
    """The read model's short name (names the scratch objects of its bulk writes)."""
    indexes: tuple[tuple[str, str], ...] = ()
    """Secondary indexes as ``(index name, column)``."""
    checks: tuple[str, ...] = ()
    """Row conditions the database enforces (boolean SQL over the columns; for special tables)."""


class StateCodec(Protocol):
    """How the store encoded event state: its cipher and compressor (``None`` when unused)."""

    @property
    def cipher(self) -> Any:
        """Decrypts stored state (``decrypt(bytes) -> bytes``), or ``None``."""
        ...

    @property
    def compressor(self) -> Any:
        """Decompresses stored state (``decompress(bytes) -> bytes``), or ``None``."""
        ...

    def reveal(self, state: Any, stream_id: str) -> Any:
        """Stored JSON of ``stream_id`` with its sealed personal values opened (or redacted once erased)."""
        ...


class HorizonView(Protocol):
    """What the read side looks at in the store's commit horizon."""

    @property
    def position(self) -> int:
        """Where readers of the global order stop now."""
        ...

    @property
    def head(self) -> int:
        """The newest committed position."""
        ...

    @property
    def holder(self) -> InFlightAppend | None:
        """The append in flight holding readers below ``head``, if any."""
        ...


class LogReader(Protocol):
    """The event log, read in global order (see the module docstring)."""

    @property
    def kind(self) -> str:
        """The store's kind: ``"memory"``, ``"sqlite"`` or ``"postgresql"``."""
        ...

    @property
    def read_only(self) -> bool:
        """True when the store was opened read-only (the read side then creates nothing)."""
        ...

    @property
    def seal_interval(self) -> float:
        """The store's sealing interval in seconds (0: no sealing)."""
        ...

    @property
    def codec(self) -> StateCodec:
        """The store's codec, for decoding event state."""
        ...

    @property
    def horizon(self) -> Callable[[], HorizonView] | None:
        """A look at the commit horizon, or ``None`` when the store has none."""
        ...

    @property
    def seal(self) -> Callable[[], object] | None:
        """Seal the log now, or ``None`` when the store cannot."""
        ...

    def records(
        self,
        start: int,
        limit: int,
        *,
        stop: int | None = None,
        topics: Sequence[str] = (),
        final: bool = True,
    ) -> list[LogRecord]:
        """Up to ``limit`` records from ``start`` (to ``stop``, only ``topics`` when given).

        ``final=False`` also returns records committed beyond the commit horizon.
        """
        ...

    def max_position(self) -> int:
        """The newest committed position (0 for an empty log)."""
        ...

    def wait_for_events(self, timeout: float, stop: threading.Event) -> None:
        """Block until new events may exist, ``timeout`` passes, or ``stop`` is set."""
        ...

    def close(self) -> None:
        """Release what this reader opened itself (a listener)."""
        ...


class ViewSession(Protocol):
    """One transaction on the read models' database (read-only for :meth:`ViewStore.read`)."""

    # -- positions ------------------------------------------------------------------------
    def positions(self, names: Sequence[str]) -> dict[str, int]:
        """Tracked positions of ``names`` (0 when absent)."""
        ...

    def advance(self, name: str, position: int) -> None:
        """Record ``position`` for ``name``; it must move forward."""
        ...

    def set_position(self, name: str, position: int | None) -> None:
        """Overwrite (or with ``None`` remove) a tracked position, for resets and swaps."""
        ...

    def position_and_state(self, table: str, name: str | None) -> tuple[int, dict[str, Any] | None]:
        """The position of ``table`` and (unless ``name`` is None) the state row of ``name``."""
        ...

    # -- state rows and leases ---------------------------------------------------------------
    def ensure_state(self, names: Sequence[str]) -> None:
        """Insert the state rows of ``names`` when missing."""
        ...

    def read_state(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The state rows of ``names``: owner, remaining, generation, halted, last_error, last_error_at."""
        ...

    def set_state(self, name: str, **values: Any) -> None:
        """Update columns of one state row (``generation=True`` bumps the generation)."""
        ...

    def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Take (or keep) the lease on ``name`` when it is free, expired or already ``owner``'s."""
        ...

    def renew_leases(self, names: Sequence[str], owner: str, seconds: float) -> set[str]:
        """Extend the leases on ``names`` still held by ``owner``; return the names still held."""
        ...

    def release_leases(self, owner: str) -> None:
        """Give up every lease ``owner`` holds."""
        ...

    # -- dead letters ----------------------------------------------------------------------------
    def record_dead_letters(self, table: str, letters: Sequence[DeadLetter]) -> None:
        """Write (or refresh the error and time of) dead letters of ``table``."""
        ...

    def dead_letters(self, tables: Sequence[str]) -> list[dict[str, Any]]:
        """Dead letters of ``tables`` by table and position: tbl, position, stream, topic, error, at."""
        ...

    def dead_letter_counts(self) -> dict[str, int]:
        """Number of dead letters per table."""
        ...

    def drop_dead_letter(self, table: str, position: int) -> None:
        """Forget one dead letter."""
        ...

    def clear_dead_letters(self, table: str) -> None:
        """Forget every dead letter of ``table``."""
        ...

    def move_dead_letters(self, source: str, target: str) -> None:
        """Give ``source``'s dead letters to ``target``."""
        ...

    # -- shapes -----------------------------------------------------------------------------------
    def create_bookkeeping(self) -> None:
        """Create the tables of positions' state, shapes and dead letters when missing."""
        ...

    def fingerprints(self) -> dict[str, str]:
        """Each read model's recorded shape fingerprint."""
        ...

    def set_fingerprint(self, name: str, fingerprint: str) -> None:
        """Record ``fingerprint`` as the shape of read model ``name``."""
        ...

    def table_exists(self, table: str) -> bool:
        """True when ``table`` exists."""
        ...

    def create_table(self, spec: TableSpec, *, indexes: bool = True) -> None:
        """Create ``spec``'s table when missing (and its indexes, unless ``indexes`` is False)."""
        ...

    def create_indexes(self, spec: TableSpec) -> None:
        """Create ``spec``'s indexes when missing."""
        ...

    def drop_table(self, table: str) -> None:
        """Drop ``table`` if it exists."""
        ...

    def rename_table(self, table: str, new_name: str) -> None:
        """Rename ``table`` to ``new_name``."""
        ...

    # -- rows -------------------------------------------------------------------------------------
    def is_empty(self, table: str) -> bool:
        """True when ``table`` has no row."""
        ...

    def fetch_rows(self, table: str, column: str, values: Sequence[Any]) -> list[Mapping[str, Any]]:
        """The rows of ``table`` whose ``column`` is one of ``values`` (at most 500 values)."""
        ...

    def select_rows(
        self,
        table: str,
        where: Mapping[str, Any],
        *,
        order_by: str | None = None,
        after: Any = None,
        limit: int | None = None,
    ) -> list[Mapping[str, Any]]:
        """The rows of ``table`` whose columns equal ``where`` (ordered by ``order_by``).

        With ``order_by``, ``after`` keeps the rows whose ``order_by`` value is greater and ``limit``
        the first ones: a keyset page.
        """
        ...

    def count_by(self, table: str, column: str) -> list[tuple[Any, int]]:
        """``(value, rows)`` per value of ``column``, ordered by value."""
        ...

    def insert_rows(self, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` (values in ``spec``'s column order) known to be new."""
        ...

    def upsert_rows(self, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        """Insert or replace ``rows`` (values in ``spec``'s column order) by key."""
        ...

    def delete_rows(self, table: str, column: str, values: Sequence[Any]) -> None:
        """Delete the rows of ``table`` whose ``column`` equals one of ``values``."""
        ...

    def savepoint(self) -> AbstractContextManager[None]:
        """A savepoint: what the block wrote is rolled back when it raises (the error propagates)."""
        ...


class ViewStore(Protocol):
    """The database the read models live in (see the module docstring)."""

    @property
    def kind(self) -> str:
        """The database's kind: ``"sqlite"`` or ``"postgresql"``."""
        ...

    @property
    def concurrent(self) -> bool:
        """True when transactions on different read models run in parallel (catch-up then uses threads)."""
        ...

    def write(
        self, names: Sequence[str], *, lock_timeout: float | None = None
    ) -> AbstractContextManager[ViewSession]:
        """A write transaction holding the lock on the tracking rows ``names`` (created when missing).

        A lock held by another runner past ``lock_timeout`` raises ``ProjectionBusy``.
        """
        ...

    def read(self) -> AbstractContextManager[ViewSession]:
        """A read-only transaction (one consistent snapshot)."""
        ...

    def translate_errors(self, what: str) -> AbstractContextManager[None]:
        """Re-raise driver errors met while doing ``what`` as phaselog errors.

        A busy lock as ``ProjectionBusy``, data the database cannot hold as
        ``ValidationFailed``, anything else as ``StoreUnavailable``.
        """
        ...

    def poison(self, exc: BaseException) -> bool | None:
        """Whether the database error ``exc`` was caused by the row's own values; ``None``: not its error."""
        ...

    def close(self) -> None:
        """Release what this view store opened itself."""
        ...


class ViewPorts(NamedTuple):
    """The two ports of one store's read side."""

    reader: LogReader
    views: ViewStore


class ViewSource(Protocol):
    """A store that composes its own read side: ``Projections(store)`` asks it for its ports."""

    def view_ports(self) -> ViewPorts:
        """The log reader and the view store of this store."""
        ...


def open_view_ports(store: object) -> ViewPorts:
    """The ports ``store`` composes for its read side (a typed error when it composes none)."""
    view_ports = getattr(store, "view_ports", None)
    if not callable(view_ports):
        msg = f"{type(store).__name__} has no read side: pass ports=ViewPorts(reader, views)"
        raise StoreUnavailable(msg)
    ports = view_ports()
    if not isinstance(ports, ViewPorts):
        msg = f"{type(store).__name__}.view_ports() returned {type(ports).__name__}, not ViewPorts"
        raise StoreUnavailable(msg)
    return ports
