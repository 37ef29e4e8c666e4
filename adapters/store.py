"""``open_store`` and the :class:`Store`: one eventsourcing application per database.

The store's decisions (opening, saving, snapshotting, loading, stream heads) are
the store core's (:mod:`phaselog.adapters.core`); this sync shell answers its
steps on the application's recorders, as the async PostgreSQL store does on async
connections.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from eventsourcing.persistence import Notification, Recording

from phaselog.adapters import core
from phaselog.adapters.application import PhaselogApplication, is_concurrent_ddl, on_recorders, snapshot_due
from phaselog.adapters.audit.autoseal import AutoSealer
from phaselog.adapters.audit.seals import Seal, seal
from phaselog.adapters.core.opening import decide_opening
from phaselog.adapters.crypto.keys import master_key_from_env
from phaselog.adapters.errors import translate_errors
from phaselog.adapters.lifecycle import Lifecycle, attach_keys
from phaselog.adapters.migrate import SCHEMA_VERSION, check_version, probe, record_upgrade
from phaselog.adapters.tied import Tied
from phaselog.adapters.urls import StoreURL
from phaselog.domain.errors import PhaselogError, StoreClosed, StoreUnavailable, ValidationFailed
from phaselog.domain.events import Aggregate, DomainEvent
from phaselog.domain.ids import check_log_read
from phaselog.domain.retry import Backoff
from phaselog.runtime.horizon import Horizon
from phaselog.runtime.plugins import PluginService
from phaselog.runtime.ports import LogRecord, Saved, StreamHead
from phaselog.runtime.retry import retry
from phaselog.runtime.sansio import Steps, drive

if TYPE_CHECKING:
    from types import TracebackType

    from phaselog.projections.ports import ViewPorts

__all__ = [
    "DEFAULT_SNAPSHOT_INTERVAL",
    "PhaselogApplication",
    "Store",
    "open_store",
    "snapshot_due",
]

log = logging.getLogger("phaselog.store")

DEFAULT_SNAPSHOT_INTERVAL = 100
_OPEN_RETRIES = Backoff(first=0.05, factor=1.5, maximum=1.0, attempts=12)
AggT = TypeVar("AggT", bound=Aggregate)
T = TypeVar("T")


class Store(Lifecycle):
    """A phaselog event store: a context manager owning one eventsourcing application.

    Aggregates of every kind share the application's single notification log,
    so the global event order covers plugins, tasks, plans and states alike.
    """

    def __init__(  # noqa: PLR0913 - every option of open_store
        self,
        url: str | None = None,
        *,
        create: bool = True,
        read_only: bool = False,
        snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL,
        stall_warning: float | None = None,
        stall_unhealthy: float | None = None,
        seal_interval: float | None = None,
    ) -> None:
        opening = decide_opening(
            url,
            create=create,
            read_only=read_only,
            snapshot_interval=snapshot_interval,
            stall_warning=stall_warning,
            stall_unhealthy=stall_unhealthy,
            seal_interval=seal_interval,
        )
        self.location: StoreURL = opening.location
        self.stalls = opening.stalls
        self.snapshot_interval = opening.snapshot_interval
        self.read_only = opening.read_only
        self.create = opening.create
        self.seal_interval = opening.seal_interval
        # Before anything is opened (so a refused store is left untouched): its schema version.
        self.schema_version = probe(self.location, create=self.create)
        check_version(self.location, self.schema_version, create=self.create)
        master_key = master_key_from_env()  # a malformed key is refused before anything is opened
        self.app = self._open_application(opening.application_env())
        attach_keys(self.app, master_key)  # personal values sealed with their subject's key (adapters.crypto)
        if self.location.archive_dir:
            self.use_archives(self.location.archive_dir)
        self._closed = False
        self._tied = Tied()
        self._sealer = AutoSealer(lambda: seal(self), self.seal_interval) if opening.sealing else None
        self.core = core.StoreCore(
            self.url,
            self.app.mapper,
            self.snapshot_interval,
            read_only=self.read_only,
            snapshots=self.app.snapshots is not None,
            committed=self.committed,
        )
        self._snapshots = self.app.snapshots.recorder if self.app.snapshots is not None else None
        self.closed_on_upgrade = 0
        if self.create and self.schema_version is not None and self.schema_version < SCHEMA_VERSION:
            try:
                self.closed_on_upgrade = record_upgrade(self, self.schema_version)
            except BaseException:
                self.close()
                raise
            log.info(
                "upgraded %s from schema version %d to %d", self.url, self.schema_version, SCHEMA_VERSION
            )
        self.schema_version = SCHEMA_VERSION
        log.debug("opened %s (create=%s, read_only=%s)", self.url, self.create, self.read_only)

    # -- opening ------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The store's URL without its password."""
        return self.location.display

    @property
    def kind(self) -> str:
        """``"memory"``, ``"sqlite"`` or ``"postgresql"``."""
        return self.location.kind

    @property
    def env(self) -> dict[str, str]:
        """Eventsourcing settings for this store (for runners in other processes)."""
        return dict(self.location.env)

    def _open_application(self, env: dict[str, str]) -> PhaselogApplication:
        if self.location.sqlite_path is not None:
            parent = self.location.sqlite_path.parent
            if not parent.is_dir():
                msg = f"cannot open {self.url}: folder {parent} does not exist"
                raise StoreUnavailable(msg)

        def attempt() -> PhaselogApplication:
            with translate_errors(f"opening {self.url}"):
                return PhaselogApplication(env)

        try:  # another process creating the same tables at the same moment: retry
            return retry(
                attempt, policy=_OPEN_RETRIES, retry_on=(PhaselogError, OSError), when=is_concurrent_ddl
            )
        except (StoreUnavailable, ValidationFailed):
            raise
        except (PhaselogError, OSError) as exc:
            msg = f"cannot open {self.url}: {exc}"
            raise StoreUnavailable(msg) from exc

    # -- writing and reading aggregates (the store core's protocols) -------------------------------
    def drive(self, protocol: Steps[core.CoreStep, T]) -> T:
        """Drive one store core protocol on this store's recorders (the sync shell)."""
        if self._closed:
            raise StoreClosed(f"{self.url}: the store is closed")
        recorder, snapshots = self.app.recorder, self._snapshots
        return drive(protocol, lambda step: on_recorders(recorder, snapshots, step, self.archives))

    def save(self, *aggregates: Aggregate) -> Saved[Recording[str]]:
        """Append the pending events of ``aggregates`` atomically; return their recordings.

        The result's ``position`` is the newest position this save committed (for
        ``projections.wait_for``: read your own writes). Raises
        :class:`ConcurrencyConflict` (and records nothing) when another writer
        appended to one of the streams from the same version first.
        """
        return self.drive(core.save(self.core, aggregates))

    def committed(self, position: int) -> None:
        """Note that a save of this store (through this shell or the async one) committed ``position``.

        The store seals it in the background, within ``seal_interval``: never slows or fails the save.
        """
        if self._sealer is not None:
            self._sealer.saved(position)

    def snapshot(self, aggregate: Aggregate) -> None:
        """Store a snapshot of ``aggregate`` as just saved (it must have no pending events).

        Aggregates whose class sets ``SNAPSHOTS = True`` are snapshotted
        automatically each time their version crosses a multiple of the store's
        ``snapshot_interval``. A failure is logged, never raised: the events are
        already durable and a snapshot is only an optimisation.
        """
        self.drive(core.snapshot(self.core, aggregate))

    def load(self, aggregate_id: str, aggregate_type: type[AggT], *, version: int | None = None) -> AggT:
        """Load an aggregate (from its latest readable snapshot plus later events)."""
        return self.drive(core.load(self.core, aggregate_id, aggregate_type, version))

    def exists(self, aggregate_id: str) -> bool:
        """True when the stream has at least one event."""
        return self.drive(core.exists(aggregate_id))

    def stream_ids(self, prefix: str = "") -> list[str]:
        """Ids of all streams starting with ``prefix`` (e.g. ``"task:billing:"``), sorted (from the index)."""
        return [head.stream_id for head in self.stream_heads(prefix)]

    def stream_heads(
        self, prefix: str = "", *, open_only: bool = False, after: str | None = None, limit: int | None = None
    ) -> list[StreamHead]:
        """The head (version, position, open flag) of every stream starting with ``prefix``, by id.

        ``after`` and ``limit`` page through them by id: the next page starts after the last id shown
        (a keyset page, as fast at the millionth stream as at the first).
        """
        return self.drive(core.stream_heads(prefix, open_only=open_only, after=after, limit=limit))

    def stream(
        self, aggregate_id: str, *, gt: int | None = None, lte: int | None = None
    ) -> list[DomainEvent]:
        """All events of one stream, oldest first."""
        return self.drive(core.stream(self.core, aggregate_id, gt, lte))

    # -- tamper evidence ---------------------------------------------------------------------
    def seal(self) -> Seal | None:
        """Seal everything committed so far (:mod:`.audit.seals`); None on memory or when empty."""
        self._check_writable("sealing the history")
        sealed = seal(self)
        if sealed is not None and self._sealer is not None:
            self._sealer.covered(sealed.horizon)
        return sealed

    def _check_writable(self, what: str) -> None:
        """Refuse a write on a read-only store before any I/O (the store core's check)."""
        self.core.check_writable(what)

    # -- the global order -------------------------------------------------------------
    def max_position(self) -> int:
        """Position (notification id) of the newest event, 0 when empty."""
        with translate_errors("reading the event log"):
            return self.app.recorder.max_notification_id() or 0

    def notifications(
        self, start: int = 1, limit: int = 1000, *, stop: int | None = None
    ) -> list[Notification]:
        """Stored events in global order from position ``start`` (inclusive)."""
        check_log_read(start, limit, stop)
        with translate_errors("reading the event log"):
            found = list(self.app.recorder.select_notifications(start=start, limit=limit, stop=stop))
        return self._through_archives(found, start, limit, stop)

    def records(
        self,
        start: int = 1,
        limit: int = 1000,
        *,
        stop: int | None = None,
        topics: Sequence[str] = (),
        final: bool = True,
    ) -> list[LogRecord]:
        """Like :meth:`notifications` (only ``topics`` when given), as lean :class:`LogRecord` rows.

        ``final=False`` also returns events committed beyond the horizon (behind an
        append still in flight): never advance a cursor past those; they serve to
        measure lag.
        """
        check_log_read(start, limit, stop, topics)
        with translate_errors("reading the event log"):
            recorder: Any = self.app.recorder
            found: list[LogRecord] = recorder.select_records(start, limit, stop, topics, final=final)
        return self._through_archives(found, start, limit, stop, topics)

    def horizon(self) -> Horizon:
        """Where readers of the global order stop, and the appends in flight holding them there.

        An append in flight for longer than ``stall_warning`` is a stall: it is
        logged once, as a warning naming it. See :mod:`phaselog.runtime.horizon`.
        """
        recorder: Any = self.app.recorder
        with translate_errors("reading the commit horizon"):
            in_flight = recorder.in_flight()
            position, head, held_back = recorder.positions()
            prepared = recorder.prepared()
        return self.stalls.observe(position, head, held_back, in_flight, prepared)

    def iter_notifications(self, start: int = 1, batch: int = 1000) -> Iterator[Notification]:
        """Every stored event in global order, read in batches."""
        while True:
            page = self.notifications(start, batch)
            yield from page
            if len(page) < batch:
                return
            start = page[-1].id + 1

    def decode(self, notification: Notification) -> DomainEvent:
        """Turn a stored notification back into its domain event."""
        return cast("DomainEvent", self.app.mapper.to_domain_event(notification))

    # -- lifecycle -------------------------------------------------------------------------
    @cached_property
    def plugins(self) -> PluginService:
        """Plugin lifecycles and versioned plugin state (:mod:`phaselog.runtime`)."""
        return PluginService(self)

    def view_ports(self) -> ViewPorts:
        """The log reader and view store of this store's read models (``Projections(store)`` asks)."""
        from phaselog.adapters.views import view_ports  # noqa: PLC0415 - loads the read side only when used

        return view_ports(self)

    @cached_property
    def projections(self) -> Any:
        """The read models kept in this store's database (:mod:`phaselog.projections`)."""
        from phaselog.adapters.views import open_projections  # noqa: PLC0415 - loads the read side

        return open_projections(self)

    def on_close(self, close: Callable[[], object]) -> Callable[[], None]:
        """Call ``close`` as this store closes, before its connections go; return the untie.

        The runtime services tie themselves here (:func:`phaselog.runtime.lifetimes.tie`).
        """
        return self._tied.add(close)

    def close(self) -> None:
        """Close the services tied to this store, then release its connections; safe to call twice."""
        if self._closed:
            return
        self._tied.close_all()  # they may still record their way out (released claims, cleanups)
        self._closed = True
        if self._sealer is not None:
            self._sealer.close()  # seals what this store saved and no seal covers yet (failures logged)
        closers = [getattr(self.__dict__.get("projections"), "close", None)]
        for closer in closers:
            if closer is not None:
                closer()
        with translate_errors(f"closing {self.url}"):
            self.app.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"


def open_store(  # noqa: PLR0913 - the store's options, all keyword-only
    url: str | None = None,
    *,
    create: bool = True,
    read_only: bool = False,
    snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL,
    stall_warning: float | None = None,
    stall_unhealthy: float | None = None,
    seal_interval: float | None = None,
) -> Store:
    """Open the store at ``url``: by default creating (or upgrading) its tables on first use.

    ``url`` defaults to ``$PHASELOG_URL``, else ``sqlite:///phaselog.db``. With
    ``create=False`` a store that does not exist raises :class:`NotFound` and
    nothing is created (no file, schema or table), and a store whose schema is
    older than this phaselog is refused (:class:`SchemaOutdated`: run ``phaselog
    migrate``). ``read_only=True`` implies ``create=False`` and never writes: it
    works for a PostgreSQL role with only ``USAGE`` on the schema and ``SELECT``
    on its tables, and for a SQLite file the process may only read.

    ``stall_warning`` and ``stall_unhealthy`` (seconds; URL parameters of the same
    names, defaults 5 and 30) say when an append in flight is named as a stall
    and when ``/healthz`` turns ``degraded`` (see :meth:`Store.horizon`).
    ``seal_interval`` (seconds; URL parameter too, default 5, 0 disables): a
    writing store seals its own appends that long after them at the latest, and
    on close (:mod:`phaselog.adapters.audit.autoseal`).
    """
    return Store(
        url,
        create=create,
        read_only=read_only,
        snapshot_interval=snapshot_interval,
        stall_warning=stall_warning,
        stall_unhealthy=stall_unhealthy,
        seal_interval=seal_interval,
    )
