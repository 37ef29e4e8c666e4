# Copyright (c) 2026 the phaselog authors. MIT licensed.
"""The event manager of recoverable states: ``PERSIST_STATE`` every interval and on close.

:class:`EventManager` follows Crawlee's: listeners (sync or async, with or
without the event data) register per :class:`Event`; entering the manager
starts a periodic ``PERSIST_STATE`` and leaving it emits one last
``PERSIST_STATE`` and waits for the listeners. It works as ``async with`` inside
an event loop and as plain ``with`` from sync code (own loop in a daemon thread).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from contextvars import ContextVar
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from phaselog.domain.errors import ValidationFailed
from phaselog.domain.state import EventManagerNotActive

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Event", "EventManager", "EventPersistStateData", "Listener"]

log = logging.getLogger("phaselog.state.events")

Listener = Any  # a sync or async callable taking the event data, or nothing
# The listener task a sync listener's worker thread runs for (asyncio.to_thread copies the context).
_SYNC_LISTENER: ContextVar[asyncio.Task[Any] | None] = ContextVar("phaselog_sync_listener", default=None)


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
    A listener that raises is logged; the others still run. A listener may close
    the manager itself (leave its context, as an actor's exit does): the close
    waits for the other listeners, never for that one, which runs on to its end.
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
        self._waiting: set[asyncio.Task[Any]] = set()  # listener tasks inside a wait
        self._wakers: set[asyncio.Future[None]] = set()
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
                _SYNC_LISTENER.set(asyncio.current_task())  # this task's own context, seen by its thread
                await asyncio.to_thread(listener, *args)
        except Exception:
            log.exception("listener %r of %s failed", listener, event.value)

    async def wait_for_all_listeners_to_complete(
        self,
        *,
        timeout: timedelta | None = None,  # noqa: ASYNC109 - the original's signature
    ) -> None:
        """Wait for running listeners; cancel those still running after ``timeout``.

        Raises :class:`EventManagerNotActive` on a manager that is not entered. A
        listener that waits does not wait for itself nor for other listeners that
        are waiting too, so two listeners waiting for "all the others" finish
        instead of waiting for each other. Cancelling the wait cancels the
        listener tasks it was waiting for, as the original does.
        """
        await self._wait(timeout, asyncio.current_task())

    async def _wait(self, limit: timedelta | None, current: asyncio.Task[Any] | None) -> None:
        """The wait of ``current`` (a listener task, or any other caller)."""
        if not self.active:
            msg = "cannot wait for listeners: the event manager is not active (enter it first)"
            raise EventManagerNotActive(msg)
        loop = asyncio.get_running_loop()
        deadline = None if limit is None else loop.time() + limit.total_seconds()
        is_listener = current in self._tasks
        if is_listener:
            self._enter_waiting(current)
        pending: set[asyncio.Task[None]] = set()
        try:
            while True:
                skip = self._waiting if is_listener else set()
                pending = {t for t in self._tasks if t is not current and t not in skip and not t.done()}
                remaining = None if deadline is None else deadline - loop.time()
                if not pending or (remaining is not None and remaining <= 0):
                    break
                woken: asyncio.Future[None] = loop.create_future()
                self._wakers.add(woken)
                try:  # wake up when a listener ends, or when another one starts waiting
                    await asyncio.wait(
                        {*pending, woken}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    self._wakers.discard(woken)
                    woken.cancel()
        except asyncio.CancelledError:
            for task in pending:
                task.cancel()
            raise
        finally:
            if is_listener:
                self._leave_waiting(current)
        for task in pending:
            log.warning("cancelling listener task %s still running after %s", task.get_name(), limit)
            task.cancel()

    def _enter_waiting(self, task: asyncio.Task[Any] | None) -> None:
        if task is not None:
            self._waiting.add(task)
        self._wake_waiters()

    def _leave_waiting(self, task: asyncio.Task[Any] | None) -> None:
        if task is not None:
            self._waiting.discard(task)
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        """Let every wait recompute whom it waits for (the set of waiting listeners changed)."""
        for woken in list(self._wakers):
            if not woken.done():
                woken.set_result(None)

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
        await self._close(asyncio.current_task())

    async def _close(self, closer: asyncio.Task[Any] | None) -> None:
        """Leave the context on behalf of ``closer``: a listener closing the manager is not waited for."""
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
            await self._wait(self._close_timeout, closer)
        finally:
            with self._lock:
                self._refs -= 1
                if self._refs == 0:
                    # As the original: the last exit removes every listener and pending listener task
                    # (cancelled here), but a listener closing the manager runs on to its end.
                    self._listeners.clear()
                    for task in self._tasks - {closer}:
                        task.cancel()
                    self._tasks.clear()
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
        listener = _SYNC_LISTENER.get()  # set in the thread of a sync listener
        if listener is not None and listener.get_loop() is not loop:
            listener = None  # a listener of another manager: this one's listeners are all waited for
        asyncio.run_coroutine_threadsafe(self._close(listener), loop).result()
        if self._refs == 0:
            loop.call_soon_threadsafe(loop.stop)
            if listener is None:  # a listener's thread cannot wait: the loop ends once it returns
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
