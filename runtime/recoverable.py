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
import inspect
import logging
import threading
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from phaselog.domain.errors import ConcurrencyConflict, NotFound, ValidationFailed
from phaselog.domain.state import (
    EventManagerNotActive,
    KeyedState,
    StateNotInitialized,
    StateValidationFailed,
    kvs_label,
    state_stream_id,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from phaselog.adapters.store import Store

__all__ = [
    "Event",
    "EventManager",
    "EventPersistStateData",
    "RecoverableState",
    "SyncRecoverableState",
    "get_default_store",
    "set_default_store",
]

log = logging.getLogger("phaselog.state")

TStateModel = TypeVar("TStateModel", bound=BaseModel)
Listener = Any  # a sync or async callable taking the event data, or nothing
_SAVE_ATTEMPTS = 10

_default_store: Store | None = None
_default_store_lock = threading.Lock()


def set_default_store(store: Store | None) -> None:
    """Use ``store`` for recoverable states created without one (``None`` forgets it)."""
    global _default_store  # noqa: PLW0603 - the process-wide default, like Crawlee's service locator
    with _default_store_lock:
        _default_store = store


def get_default_store() -> Store:
    """Return the process-wide default store, opened on first use (``$PHASELOG_URL`` or ./phaselog.db)."""
    global _default_store  # noqa: PLW0603
    with _default_store_lock:
        if _default_store is None:
            # Late binding: runtime receives stores; only this fallback opens one itself.
            from phaselog.adapters.store import open_store  # noqa: PLC0415

            _default_store = open_store()
            atexit.register(_default_store.close)
        return _default_store


class Event(StrEnum):
    """Events an :class:`EventManager` dispatches (names as in the original)."""

    PERSIST_STATE = "persistState"
    MIGRATING = "migrating"
    ABORTING = "aborting"
    EXIT = "exit"


class EventPersistStateData(BaseModel):
    """Data of a ``PERSIST_STATE`` event."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    is_migrating: bool = Field(default=False, alias="isMigrating")


def _takes_event_data(listener: Listener) -> bool:
    try:
        inspect.signature(listener).bind(None)
    except (TypeError, ValueError):
        return False
    return True


def _is_async(listener: Listener) -> bool:
    return inspect.iscoroutinefunction(listener) or inspect.iscoroutinefunction(
        getattr(listener, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


class EventManager:
    """Dispatch events to listeners; emit ``PERSIST_STATE`` periodically and once on close.

    Use it as ``async with manager:`` inside an event loop, or as ``with manager:``
    from sync code (it then runs its own loop in a daemon thread). Async
    listeners run as tasks in the manager's loop; sync ones in worker threads.
    A listener that raises is logged; the others still run.
    """

    _default: ClassVar[EventManager | None] = None
    _default_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        persist_state_interval: timedelta | float = timedelta(minutes=1),
        *,
        close_timeout: timedelta | None = None,
    ) -> None:
        interval = (
            persist_state_interval
            if isinstance(persist_state_interval, timedelta)
            else timedelta(seconds=persist_state_interval)
        )
        if interval <= timedelta(0):
            msg = f"persist_state_interval must be positive, got {interval}"
            raise ValidationFailed(msg)
        self._interval = interval
        self._close_timeout = close_timeout
        self._listeners: dict[Event, dict[Listener, int]] = {}
        self._lock = threading.RLock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._refs = 0
        self._thread: threading.Thread | None = None

    @classmethod
    def default(cls) -> EventManager:
        """Return the process-wide manager used by states created without ``event_manager=``."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls()
            return cls._default

    @classmethod
    def set_default(cls, manager: EventManager | None) -> None:
        """Replace the process-wide manager (``None``: a fresh one is made on next use)."""
        with cls._default_lock:
            cls._default = manager

    @property
    def persist_state_interval(self) -> timedelta:
        """Time between two periodic ``PERSIST_STATE`` events."""
        return self._interval

    @property
    def active(self) -> bool:
        """True while entered (periodic events are being emitted)."""
        return self._refs > 0

    # -- listeners ------------------------------------------------------------------
    def on(self, *, event: Event, listener: Listener) -> None:
        """Register ``listener`` for ``event`` (registering twice calls it twice, as the original)."""
        with self._lock:
            listeners = self._listeners.setdefault(event, {})
            listeners[listener] = listeners.get(listener, 0) + 1

    def off(self, *, event: Event, listener: Listener | None = None) -> None:
        """Remove ``listener`` (every registration of it), or all listeners of ``event``."""
        with self._lock:
            if listener is None:
                self._listeners.pop(event, None)
            else:
                self._listeners.get(event, {}).pop(listener, None)

    def has_listener(self, *, event: Event, listener: Listener) -> bool:
        """Tell whether ``listener`` is registered for ``event``."""
        with self._lock:
            return listener in self._listeners.get(event, {})

    # -- emitting -------------------------------------------------------------------
    def emit(self, *, event: Event, event_data: Any = None) -> None:
        """Start every listener of ``event`` (from any thread); does not wait for them."""
        loop = self._loop
        if loop is None:
            msg = f"cannot emit {event.value}: the event manager is not active (enter it first)"
            raise EventManagerNotActive(msg)
        if _running_loop() is loop:
            self._spawn(event, event_data)
        else:
            loop.call_soon_threadsafe(self._spawn, event, event_data)

    def _spawn(self, event: Event, event_data: Any) -> None:
        with self._lock:
            calls = [(fn, n) for fn, n in self._listeners.get(event, {}).items()]
        for fn, count in calls:
            for _ in range(count):
                task = asyncio.get_running_loop().create_task(self._invoke(event, fn, event_data))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _invoke(event: Event, listener: Listener, event_data: Any) -> None:
        args = (event_data,) if _takes_event_data(listener) else ()
        try:
            if _is_async(listener):
                await listener(*args)
            else:
                await asyncio.to_thread(listener, *args)
        except Exception:
            log.exception("listener %r of %s failed", listener, event.value)

    async def wait_for_all_listeners_to_complete(
        self,
        *,
        timeout: timedelta | None = None,  # noqa: ASYNC109 - the original's signature
    ) -> None:
        """Wait for running listeners; cancel those still running after ``timeout``."""
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=None if timeout is None else timeout.total_seconds())
        for task in pending:
            log.warning("cancelling listener task %s still running after %s", task.get_name(), timeout)
            task.cancel()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._interval.total_seconds())
            self._spawn(Event.PERSIST_STATE, EventPersistStateData(is_migrating=False))

    # -- async lifecycle ---------------------------------------------------------------
    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._loop is not None and self._loop is not loop:
                msg = "this event manager is already active in another event loop"
                raise EventManagerNotActive(msg)
            self._refs += 1
            if self._refs == 1:
                self._loop = loop
                self._ticker = loop.create_task(self._tick(), name="phaselog-persist-state-ticker")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._refs == 0 or self._loop is not asyncio.get_running_loop():
            msg = "this event manager is not active in this event loop"
            raise EventManagerNotActive(msg)
        last = self._refs == 1
        try:
            if last and self._ticker is not None:
                self._ticker.cancel()
                await asyncio.gather(self._ticker, return_exceptions=True)
                self._ticker = None
            self._spawn(Event.PERSIST_STATE, EventPersistStateData(is_migrating=False))
            await self.wait_for_all_listeners_to_complete(timeout=self._close_timeout)
        finally:
            with self._lock:
                self._refs -= 1
                if self._refs == 0:
                    self._loop = None

    # -- sync lifecycle (own loop in a daemon thread) -----------------------------------
    def __enter__(self) -> Self:
        with self._lock:
            if self._loop is not None and self._thread is None:
                msg = "this event manager is active in an event loop: use `async with` there"
                raise EventManagerNotActive(msg)
            if self._thread is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=_run_loop, args=(loop,), name="phaselog-event-manager", daemon=True
                )
                self._thread.start()
                self._thread_loop = loop
            loop = self._thread_loop
        asyncio.run_coroutine_threadsafe(self.__aenter__(), loop).result(timeout=30)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        thread = self._thread
        if thread is None:
            msg = "this event manager was not entered with `with`"
            raise EventManagerNotActive(msg)
        loop = self._thread_loop
        asyncio.run_coroutine_threadsafe(self.__aexit__(None, None, None), loop).result()
        if self._refs == 0:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            self._thread = None


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class RecoverableState(Generic[TStateModel]):
    """A pydantic model persisted under ``persist_state_key`` and recovered after a restart.

    ``persistence_enabled``: ``False`` keeps the state in memory only (never
    loads or persists); ``True`` loads on :meth:`initialize`, persists on every
    ``PERSIST_STATE`` of the event manager and on :meth:`teardown`;
    ``"explicit_only"`` loads on :meth:`initialize` and persists only when
    :meth:`persist_state` is called (teardown does not persist, as the original).
    """

    def __init__(  # noqa: PLR0913 - the SPEC's keyword-only signature
        self,
        *,
        default_state: TStateModel,
        persist_state_key: str,
        persistence_enabled: bool | Literal["explicit_only"] = False,
        persist_state_kvs_name: str | None = None,
        persist_state_kvs_id: str | None = None,
        logger: logging.Logger,
        store: Store | None = None,
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
        self._store = store
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
        if dump is not None:
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
        self._state = self._decode(agg)
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
        return state.model_dump(mode="json", by_alias=True)

    def _reset_in_memory(self) -> Any:
        if self._enabled and self._state is None:
            msg = f"recoverable state {self._key!r} has not been initialized (await initialize() first)"
            raise StateNotInitialized(msg)
        self._state = self._default.model_copy(deep=True)
        return self._state.model_dump(mode="json", by_alias=True) if self._enabled else None

    def _read(self) -> KeyedState | None:
        with self._io_lock:
            return self._read_unlocked()

    def _read_unlocked(self) -> KeyedState | None:
        try:
            return self._get_store().load(self._stream_id, KeyedState)
        except NotFound:
            return None

    def _type_info(self) -> tuple[str, int]:
        model = self._model
        return f"{model.__module__}.{model.__qualname__}", int(getattr(model, "class_version", 1))

    def _write(self, dump: Any) -> bool:
        """Record ``dump`` unless unchanged; retry after another writer's append (last write wins)."""
        type_name, type_version = self._type_info()
        return self._change(lambda agg: agg.persist(dump, type_name, type_version))

    def _record_reset(self, dump: Any) -> None:
        type_name, type_version = self._type_info()

        def reset(agg: KeyedState) -> bool:
            agg.reset(dump, type_name, type_version)
            return True

        self._change(reset)

    def _change(self, change: Callable[[KeyedState], bool]) -> bool:
        with self._io_lock:
            for _ in range(_SAVE_ATTEMPTS):
                agg = self._agg or KeyedState.new(self._kvs, self._key)
                self._agg = None  # until saved, the cached stream may hold unsaved events
                if not change(agg):
                    self._agg = agg
                    return False
                try:
                    self._get_store().save(agg)
                except ConcurrencyConflict:
                    self._log.debug("state %r was written concurrently; reloading and retrying", self._key)
                    self._agg = self._read_unlocked()
                    continue
                self._agg = agg
                return True
        msg = f"could not record state {self._key!r}: {_SAVE_ATTEMPTS} concurrent writers won in a row"
        raise ConcurrencyConflict(msg)

    def _decode(self, agg: KeyedState | None) -> TStateModel:
        """Validate the stored value as the model (upcasting old versions); default when none."""
        if agg is None or not agg.has_value:
            return self._default.model_copy(deep=True)
        data = agg.stored_value()
        where = f"recoverable state {self._key!r} in key-value store {self._kvs!r}"
        target = int(getattr(self._model, "class_version", 1))
        version = agg.type_version
        if version > target:
            msg = (
                f"{where} was written by {agg.type_name} version {version}, "
                f"newer than {self._model.__name__} version {target}"
            )
            raise StateValidationFailed(msg, kvs=self._kvs, key=self._key)
        while version < target:
            hook = getattr(self._model, f"upcast_v{version}_v{version + 1}", None)
            if hook is None:
                hook_name = f"upcast_v{version}_v{version + 1}"
                msg = f"{where}: {self._model.__name__} has no {hook_name} for the stored value"
                raise StateValidationFailed(msg, kvs=self._kvs, key=self._key)
            upcasted = hook(data)
            data = data if upcasted is None else upcasted
            version += 1
        try:
            return self._model.model_validate(data)
        except ValidationError as exc:
            errors = exc.errors()
            fields = tuple(".".join(str(p) for p in err["loc"]) or "<root>" for err in errors)
            detail = "; ".join(f"field {f!r}: {err['msg']}" for f, err in zip(fields, errors, strict=True))
            msg = f"{where} does not validate as {self._model.__name__}: {detail}"
            raise StateValidationFailed(msg, kvs=self._kvs, key=self._key, fields=fields) from exc


class SyncRecoverableState(Generic[TStateModel]):
    """:class:`RecoverableState` for synchronous code: the same arguments, blocking methods.

    Methods run in the calling thread and block it; called inside a running
    event loop they still work but stall that loop for the store round trip
    (use the async :class:`RecoverableState` there). With
    ``persistence_enabled=True`` the state persists on the event manager's
    ``PERSIST_STATE`` (enter it with plain ``with manager:``); that persist runs
    in a worker thread while holding :attr:`lock` - hold the same lock while
    mutating the state from other threads to never persist a half-made change.
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
        store: Store | None = None,
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
