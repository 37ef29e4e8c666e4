# Copyright (c) 2026 the phaselog authors. MIT licensed.
"""Recoverable state: pydantic models persisted under keys and recovered after a restart.

:class:`RecoverableState` follows Crawlee's class of the same name (async API);
:class:`EventManager` emits ``PERSIST_STATE`` every ``persist_state_interval``
and once more when it closes. Each key of each key-value store is one event
stream (``state:<kvs>:<key>``, see :mod:`phaselog.domain.state`); every persist
that changes the value and every reset is one event carrying the whole model.
:class:`SyncRecoverableState` is the same object for code without an event loop.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from phaselog.domain.encoding import jsonable_model, same_json
from phaselog.domain.errors import ConcurrencyConflict, NotFound, StoreUnavailable, ValidationFailed
from phaselog.domain.ids import InvalidStreamId
from phaselog.domain.retry import Backoff
from phaselog.domain.state import (
    KeyedState,
    StateNotInitialized,
    decode_state,
    kvs_label,
    state_stream_id,
)
from phaselog.runtime.lifetimes import sync_store
from phaselog.runtime.positions import Positioned
from phaselog.runtime.recoverable_events import Event, EventManager, EventPersistStateData, Listener
from phaselog.runtime.retry import retry

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from phaselog.runtime.ports import EventStore as Store
    from phaselog.runtime.ports import KeepsSyncStore

__all__ = [
    "Event",
    "EventManager",
    "EventPersistStateData",
    "RecoverableState",
    "SyncRecoverableState",
    "get_default_store",
    "set_default_store",
    "set_default_store_factory",
]

log = logging.getLogger("phaselog.state")

TStateModel = TypeVar("TStateModel", bound=BaseModel)
_SAVE_ATTEMPTS = 10
_SAVE_RETRIES = Backoff(first=0.0, maximum=0.0, attempts=_SAVE_ATTEMPTS)  # at once: the reload is the wait

_default_store: Store | None = None
_default_factory: Callable[[], Store] | None = None
_default_store_lock = threading.Lock()
_NO_DEFAULT_STORE = (
    "no default store for a recoverable state: pass store=... or import phaselog.adapters "
    "(which wires open_store as the default)"
)


def set_default_store(store: Store | None) -> None:
    """Use ``store`` for recoverable states created without one (``None`` forgets it)."""
    global _default_store  # noqa: PLW0603 - the process-wide default, like Crawlee's service locator
    with _default_store_lock:
        _default_store = store


def set_default_store_factory(factory: Callable[[], Store] | None) -> None:
    """How to open the default store on first use: phaselog.adapters wires open_store (None unwires)."""
    global _default_factory  # noqa: PLW0603 - wired once by the composition root
    with _default_store_lock:
        _default_factory = factory


def get_default_store() -> Store:
    """Return the process-wide default store, opened on first use (``$PHASELOG_URL`` or ./phaselog.db).

    :class:`StoreUnavailable` when none was set and no factory was wired.
    """
    global _default_store  # noqa: PLW0603
    with _default_store_lock:
        if _default_store is None:
            if _default_factory is None:
                raise StoreUnavailable(_NO_DEFAULT_STORE)
            # Runtime receives stores; only this fallback opens one, through the wired factory.
            _default_store = _default_factory()
            atexit.register(_default_store.close)
        return _default_store


class RecoverableState(Positioned, Generic[TStateModel]):
    """A pydantic model persisted under ``persist_state_key`` and recovered after a restart.

    ``persistence_enabled``: ``False`` keeps the state in memory only (never
    loads or persists); ``True`` loads on :meth:`initialize`, persists on every
    ``PERSIST_STATE`` of the event manager and on :meth:`teardown`;
    ``"explicit_only"`` loads on :meth:`initialize` and persists only when
    :meth:`persist_state` is called (teardown does not persist, as the original).
    :attr:`position` is the newest global position a persist or reset committed.
    """

    def __init__(  # noqa: PLR0913 - the public keyword-only signature
        self,
        *,
        default_state: TStateModel,
        persist_state_key: str,
        persistence_enabled: bool | Literal["explicit_only"] = False,
        persist_state_kvs_name: str | None = None,
        persist_state_kvs_id: str | None = None,
        logger: logging.Logger,
        store: Store | KeepsSyncStore | None = None,
        event_manager: EventManager | None = None,
    ) -> None:
        if persistence_enabled not in (True, False, "explicit_only"):
            msg = f"persistence_enabled must be True, False or 'explicit_only', got {persistence_enabled!r}"
            raise ValidationFailed(msg)
        self._default = default_state.model_copy(deep=True)
        self._model: type[TStateModel] = type(default_state)
        self._key = persist_state_key
        self._kvs = kvs_label(persist_state_kvs_name, persist_state_kvs_id)
        self._stream_id = state_stream_id(persist_state_key, persist_state_kvs_name, persist_state_kvs_id)
        self._enabled = persistence_enabled
        self._log = logger
        self._store = None if store is None else sync_store(store, "RecoverableState")
        self._event_manager = event_manager
        self._registered_with: EventManager | None = None
        self._listener: Listener = self.persist_state
        self._state: TStateModel | None = None
        self._agg: KeyedState | None = None  # the stream as last read or written by this object
        self._io_lock = threading.Lock()

    # -- properties -----------------------------------------------------------------
    @property
    def current_value(self) -> TStateModel:
        """The live state object; raises :class:`StateNotInitialized` before ``initialize()``."""
        if self._state is None:
            msg = f"recoverable state {self._key!r} has not been initialized (await initialize() first)"
            raise StateNotInitialized(msg)
        return self._state

    @property
    def is_initialized(self) -> bool:
        """True once ``initialize()`` has loaded the state."""
        return self._state is not None

    @property
    def stream_id(self) -> str:
        """The event stream holding this state: ``state:<kvs>:<key>``."""
        return self._stream_id

    @property
    def persistence_enabled(self) -> bool | Literal["explicit_only"]:
        """The persistence mode given at construction."""
        return self._enabled

    # -- async API ------------------------------------------------------------------------
    async def initialize(self) -> TStateModel:
        """Load the persisted state (or a deep copy of the default) and listen for PERSIST_STATE."""
        return await asyncio.to_thread(self._initialize_now)

    async def persist_state(self, event_data: EventPersistStateData | None = None) -> None:
        """Record the current value unless it equals the last recorded one."""
        dump = self._dump_for_persist(event_data)
        if dump is not None and not self._known_unchanged(dump):
            await asyncio.to_thread(self._write, dump)

    async def reset(self) -> None:
        """Go back to a deep copy of the default; with persistence, record the reset."""
        dump = self._reset_in_memory()
        if dump is not None:
            await asyncio.to_thread(self._record_reset, dump)

    async def teardown(self) -> None:
        """Stop listening and persist one last time (only when ``persistence_enabled is True``)."""
        if self._enabled is not True:
            return
        self._unregister()
        await self.persist_state()

    async def has_persisted_state(self) -> bool:
        """Tell whether the key holds a persisted (not reset) value."""
        if not self._enabled:
            return False
        agg = await asyncio.to_thread(self._read)
        return agg is not None and agg.has_value

    # -- blocking steps (shared with SyncRecoverableState) --------------------------------------
    def _get_store(self) -> Store:
        if self._store is None:
            self._store = get_default_store()
        return self._store

    def _initialize_now(self) -> TStateModel:
        if self._enabled is False:
            self._state = self._default.model_copy(deep=True)
            return self._state
        with self._io_lock:
            agg = self._read_unlocked()
            self._agg = agg
        self._state = decode_state(agg, self._model, self._default)
        if self._enabled is True:
            manager = self._event_manager or EventManager.default()
            if not manager.has_listener(event=Event.PERSIST_STATE, listener=self._listener):
                manager.on(event=Event.PERSIST_STATE, listener=self._listener)
            self._registered_with = manager
        return self._state

    def _unregister(self) -> None:
        if self._registered_with is not None:
            self._registered_with.off(event=Event.PERSIST_STATE, listener=self._listener)
            self._registered_with = None

    def _dump_for_persist(self, event_data: EventPersistStateData | None) -> Any:
        """Return the JSON value to record, or ``None`` when persistence is disabled."""
        state = self.current_value
        if not self._enabled:
            self._log.debug("persistence of %r is not enabled - not doing anything", self._key)
            return None
        self._log.debug("persisting state %r (event_data=%s)", self._key, event_data)
        return jsonable_model(state, by_alias=True)

    def _reset_in_memory(self) -> Any:
        if self._enabled and self._state is None:
            msg = f"recoverable state {self._key!r} has not been initialized (await initialize() first)"
            raise StateNotInitialized(msg)
        self._state = self._default.model_copy(deep=True)
        return jsonable_model(self._state, by_alias=True) if self._enabled else None

    def _read(self) -> KeyedState | None:
        with self._io_lock:
            return self._read_unlocked()

    def _read_unlocked(self) -> KeyedState | None:
        try:
            agg = self._get_store().load(self._stream_id, KeyedState)
        except NotFound:
            return None
        if (agg.kvs, agg.key) != (self._kvs, self._key):
            # ``state:<kvs>:<key>`` is ambiguous when names hold ':' (kvs 'a:b' key 'c' and kvs 'a'
            # key 'b:c'): never read or overwrite the other state's value.
            msg = (
                f"recoverable state {self._key!r} in key-value store {self._kvs!r} maps to the stream "
                f"{self._stream_id!r}, which holds key {agg.key!r} of key-value store {agg.kvs!r}"
            )
            raise InvalidStreamId(msg)
        return agg

    def _type_info(self) -> tuple[str, int]:
        model = self._model
        return f"{model.__module__}.{model.__qualname__}", int(getattr(model, "class_version", 1))

    def _known_unchanged(self, dump: Any) -> bool:
        """Tell, without waiting or I/O, whether ``dump`` equals the value this object last recorded."""
        if not self._io_lock.acquire(blocking=False):
            return False  # a write is under way: let _write decide after it
        try:
            agg = self._agg
            return (
                agg is not None
                and agg.version > 0
                and same_json(agg.value, dump)
                and (agg.type_version == self._type_info()[1])
            )
        finally:
            self._io_lock.release()

    def _write(self, dump: Any) -> bool:
        """Record ``dump`` unless unchanged; retry after another writer's append (last write wins)."""
        type_name, type_version = self._type_info()
        return self._change(lambda agg: agg.persist(dump, type_name, type_version, self._model))

    def _record_reset(self, dump: Any) -> None:
        type_name, type_version = self._type_info()

        def reset(agg: KeyedState) -> bool:
            agg.reset(dump, type_name, type_version, self._model)
            return True

        self._change(reset)

    def _change(self, change: Callable[[KeyedState], bool]) -> bool:
        def attempt() -> bool:
            agg = self._agg or KeyedState.new(self._kvs, self._key)
            self._agg = None  # until saved, the cached stream may hold unsaved events
            if changed := change(agg):
                self._committed(self._get_store().save(agg))
            self._agg = agg
            return changed

        def reload(_exc: BaseException, _delay: float) -> None:
            self._log.debug("state %r was written concurrently; reloading and retrying", self._key)
            self._agg = self._read_unlocked()

        with self._io_lock:
            try:  # another writer appended first: reload and apply the change again (last write wins)
                return retry(attempt, policy=_SAVE_RETRIES, retry_on=ConcurrencyConflict, on_retry=reload)
            except ConcurrencyConflict as exc:
                reload(exc, 0.0)
                msg = f"could not record state {self._key!r}: {_SAVE_ATTEMPTS} writers won in a row"
                raise ConcurrencyConflict(msg) from exc


class SyncRecoverableState(Generic[TStateModel]):
    """:class:`RecoverableState` for synchronous code: the same arguments, blocking methods.

    Methods run in the calling thread and block it; called inside a running
    event loop they still work but stall that loop for the store round trip
    (use the async :class:`RecoverableState` there). With
    ``persistence_enabled=True`` the state persists on the event manager's
    ``PERSIST_STATE`` (enter it with plain ``with manager:``); that persist runs
    in a worker thread while holding :attr:`lock` - hold the same lock while
    mutating the state from other threads to never persist a half-made change.
    :attr:`position` is the newest global position a persist or reset committed.
    """

    def __init__(  # noqa: PLR0913 - the same keyword-only signature as RecoverableState
        self,
        *,
        default_state: TStateModel,
        persist_state_key: str,
        persistence_enabled: bool | Literal["explicit_only"] = False,
        persist_state_kvs_name: str | None = None,
        persist_state_kvs_id: str | None = None,
        logger: logging.Logger,
        store: Store | KeepsSyncStore | None = None,
        event_manager: EventManager | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.inner: RecoverableState[TStateModel] = RecoverableState(
            default_state=default_state,
            persist_state_key=persist_state_key,
            persistence_enabled=persistence_enabled,
            persist_state_kvs_name=persist_state_kvs_name,
            persist_state_kvs_id=persist_state_kvs_id,
            logger=logger,
            store=store,
            event_manager=event_manager,
        )
        self.inner._listener = self.persist_state  # noqa: SLF001 - the facade listens instead

    @property
    def current_value(self) -> TStateModel:
        """The live state object; raises :class:`StateNotInitialized` before ``initialize()``."""
        return self.inner.current_value

    @property
    def is_initialized(self) -> bool:
        """True once ``initialize()`` has loaded the state."""
        return self.inner.is_initialized

    @property
    def position(self) -> int:
        """The newest global position this state's persists and resets committed (0 before any)."""
        return self.inner.position

    def initialize(self) -> TStateModel:
        """Load the persisted state (or the default) and listen for PERSIST_STATE."""
        with self.lock:
            return self.inner._initialize_now()  # noqa: SLF001

    def persist_state(self, event_data: EventPersistStateData | None = None) -> None:
        """Record the current value unless it equals the last recorded one."""
        with self.lock:
            dump = self.inner._dump_for_persist(event_data)  # noqa: SLF001
            if dump is not None:
                self.inner._write(dump)  # noqa: SLF001

    def reset(self) -> None:
        """Go back to a deep copy of the default; with persistence, record the reset."""
        with self.lock:
            dump = self.inner._reset_in_memory()  # noqa: SLF001
            if dump is not None:
                self.inner._record_reset(dump)  # noqa: SLF001

    def teardown(self) -> None:
        """Stop listening and persist one last time (only when ``persistence_enabled is True``)."""
        if self.inner.persistence_enabled is not True:
            return
        self.inner._unregister()  # noqa: SLF001
        self.persist_state()

    def __enter__(self) -> TStateModel:
        return self.initialize()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.teardown()
