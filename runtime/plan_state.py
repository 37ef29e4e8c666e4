"""Plan building blocks: the Step protocol, GenericStep, PlanState and the cancellation context."""

from __future__ import annotations

import asyncio
import inspect
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from datetime import timedelta
from typing import Any, Literal, Protocol, runtime_checkable

from phaselog.domain.encoding import dump_json, load_json
from phaselog.domain.errors import ValidationFailed
from phaselog.domain.plan import PlanCancelled, PlanTimeout
from phaselog.runtime.telemetry import in_span

__all__ = [
    "CancelToken",
    "GenericStep",
    "Hook",
    "HookResult",
    "PlanContext",
    "PlanState",
    "StateBackend",
    "Step",
    "check_json",
    "run_hook",
    "set_hook_loop",
    "to_seconds",
]


class PlanContext:
    """A cancellation context: ``cancel()`` from any thread; hooks poll ``cancelled`` or ``wait()``.

    A context may have a parent: cancelling the parent cancels the child (not the
    other way round). ``reason`` is ``"cancelled"`` or ``"timed_out"``.
    """

    def __init__(self, parent: PlanContext | None = None, *, deadline: float | None = None) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.reason: str | None = None
        self.deadline = deadline  # time.monotonic() value, informative for hooks
        if parent is not None:
            parent.on_cancel(lambda: self.cancel(parent.reason or "cancelled"))

    @property
    def cancelled(self) -> bool:
        """True once cancelled."""
        return self._event.is_set()

    def cancel(self, reason: str = "cancelled") -> None:
        """Cancel this context (and its children); the first reason wins; idempotent."""
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once this context is cancelled (at once if it already is)."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds or until cancelled; True when cancelled."""
        return self._event.wait(timeout)

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None when unbounded)."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def expired(self) -> bool:
        """Cancel with reason ``"timed_out"`` once the deadline has passed; True when cancelled."""
        if self.deadline is not None and not self.cancelled and time.monotonic() >= self.deadline:
            self.cancel("timed_out")
        return self.cancelled

    def raise_if_cancelled(self) -> None:
        """Raise :class:`PlanCancelled` (or :class:`PlanTimeout`) when cancelled."""
        if self.reason == "timed_out":
            raise PlanTimeout("plan execution duration limit exceeded")
        if self.cancelled:
            raise PlanCancelled("plan execution cancelled")


CancelToken = PlanContext

Hook = Callable[[PlanContext, "PlanState"], object]


@runtime_checkable
class Step(Protocol):
    """One step of a plan: three hooks run in order, a cleanup hook, and a retry count."""

    @property
    def name(self) -> str:
        """A stable name, unique within its plan (resume matches steps by name)."""
        ...

    def pre_exec(self, ctx: PlanContext, state: PlanState) -> object:
        """Run before ``exec``; raising fails the attempt."""
        ...

    def exec(self, ctx: PlanContext, state: PlanState) -> object:
        """The step's work; raising fails the attempt."""
        ...

    def post_exec(self, ctx: PlanContext, state: PlanState) -> object:
        """Run after ``exec``; raising fails the attempt."""
        ...

    def cleanup(self, ctx: PlanContext, state: PlanState) -> object:
        """Undo the step (called at most once, only if the step fully succeeded)."""
        ...

    def retries(self) -> int:
        """How many times a failed attempt is retried (0: one attempt)."""
        ...


class GenericStep:
    """A step made of optional functions ``fn(ctx, state)``; missing hooks do nothing."""

    def __init__(
        self,
        name: str,
        pre_exec: Hook | None = None,
        exec: Hook | None = None,  # noqa: A002 - the public keyword of Step
        post_exec: Hook | None = None,
        cleanup: Hook | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValidationFailed(f"a step needs a non-empty string name, got {name!r}")
        self._name = name
        self._hooks = {"pre_exec": pre_exec, "exec": exec, "post_exec": post_exec, "cleanup": cleanup}
        self._retries = 0

    @property
    def name(self) -> str:
        """The step's name."""
        return self._name

    def _call(self, hook: str, ctx: PlanContext, state: PlanState) -> object:
        fn = self._hooks[hook]
        return None if fn is None else fn(ctx, state)

    def pre_exec(self, ctx: PlanContext, state: PlanState) -> object:
        """Call the pre_exec function, if any."""
        return self._call("pre_exec", ctx, state)

    def exec(self, ctx: PlanContext, state: PlanState) -> object:
        """Call the exec function, if any."""
        return self._call("exec", ctx, state)

    def post_exec(self, ctx: PlanContext, state: PlanState) -> object:
        """Call the post_exec function, if any."""
        return self._call("post_exec", ctx, state)

    def cleanup(self, ctx: PlanContext, state: PlanState) -> object:
        """Call the cleanup function, if any."""
        return self._call("cleanup", ctx, state)

    @property
    def has_cleanup(self) -> bool:
        """False when no cleanup function was given: the plan then records no cleanup for the step."""
        return self._hooks["cleanup"] is not None

    def retries(self) -> int:
        """The retry count (0 unless :meth:`with_retries` set it)."""
        return self._retries

    def with_retries(self, n: int) -> GenericStep:
        """Set the retry count (as the original, on this step) and return the step."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValidationFailed(f"step {self._name!r}: retries must be an integer >= 0, got {n!r}")
        self._retries = n
        return self

    def __repr__(self) -> str:
        return f"GenericStep({self._name!r}, retries={self._retries})"


def check_json(value: object, where: str = "value") -> object:
    """Return a private copy of ``value`` if it is plain JSON, else raise :class:`ValidationFailed`.

    Plain JSON: None, bool, int, float (``nan`` and the infinities included: the
    encoding policy keeps them), str, lists/tuples of those and dicts with
    string keys. Tuples come back as lists.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [check_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationFailed(f"{where}: key {key!r} is not a string")
            out[key] = check_json(item, f"{where}[{key!r}]")
        return out
    raise ValidationFailed(f"{where}: {type(value).__name__} is not a JSON value")


class StateBackend(Protocol):
    """Where a :class:`PlanState` reads and records its values (the plan)."""

    def state_lock(self) -> threading.RLock:
        """The lock serialising reads and writes."""
        ...

    def state_values(self) -> dict[str, Any]:
        """The current values (do not mutate)."""
        ...

    def record_state(self, values: dict[str, Any], deleted: list[str]) -> None:
        """Durably record a write (values) or a deletion (keys)."""
        ...


POLL_SECONDS = 0.02  # how often a waiting plan looks at cancellation and its deadline
HookResult = tuple[Literal["ok", "error", "abandoned"], BaseException | None, str]


def to_seconds(value: float | timedelta, what: str) -> float:
    """``value`` (seconds or a timedelta) as a finite float >= 0, else :class:`ValidationFailed`."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
        raise ValidationFailed(f"{what} must be a finite number of seconds or a timedelta, got {value!r}")
    if seconds < 0:
        raise ValidationFailed(f"{what} must not be negative, got {value!r}")
    return float(seconds)


_hook_loop = threading.local()


def set_hook_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    """Run the ``async def`` hooks of plans this thread executes on ``loop`` (None: a loop of their own)."""
    _hook_loop.value = loop


def _await(awaited: Awaitable[Any], ctx: PlanContext, loop: asyncio.AbstractEventLoop | None) -> None:
    """Wait for what an ``async def`` hook returned, on ``loop`` (or a loop of its own).

    Cancelling the plan's context cancels the coroutine; that surfaces as
    PlanCancelled (or PlanTimeout), as a sync hook's ``raise_if_cancelled`` would.
    """

    async def guarded() -> None:
        task = asyncio.ensure_future(awaited)
        running = asyncio.get_running_loop()

        def cancel_task() -> None:
            running.call_soon_threadsafe(task.cancel)

        ctx.on_cancel(cancel_task)
        try:
            await task
        except asyncio.CancelledError:
            ctx.raise_if_cancelled()
            raise

    if loop is None:
        asyncio.run(guarded())
    else:
        asyncio.run_coroutine_threadsafe(guarded(), loop).result()


def run_hook(fn: Hook, ctx: PlanContext, state: PlanState, *, grace: float, name: str) -> HookResult:
    """Run ``fn(ctx, state)`` in a daemon thread and wait for it, its deadline or cancellation.

    Once ``ctx`` is cancelled (or its deadline passes, which cancels it with reason
    ``"timed_out"``) the hook gets ``grace`` seconds to return; after that the caller
    stops waiting and gets ``("abandoned", None, reason)`` -- Python cannot kill a
    thread, so a hook that ignores ``ctx`` keeps running in the background.
    """
    loop: asyncio.AbstractEventLoop | None = getattr(_hook_loop, "value", None)
    fn = in_span(fn, "phaselog.plan.hook", hook=name)  # parented by the caller's span, run in its thread
    box: list[BaseException] = []
    done = threading.Event()

    def target() -> None:
        try:
            result = fn(ctx, state)
            if inspect.isawaitable(result):  # an async def hook: awaited on the plan's hook loop
                _await(result, ctx, loop)
        except BaseException as exc:  # a hook's failure is data, handed to the plan
            box.append(exc)
        finally:
            done.set()

    threading.Thread(target=target, name=name, daemon=True).start()
    while not done.is_set():
        left = POLL_SECONDS
        if ctx.deadline is not None:
            left = min(left, ctx.deadline - time.monotonic())
        if done.wait(max(left, 0.0)):
            break
        if ctx.expired():
            done.wait(grace)
            break
    if not done.is_set():
        return "abandoned", None, ctx.reason or "cancelled"
    return ("error", box[0], "") if box else ("ok", None, "")


class PlanState(MutableMapping[str, Any]):
    """The plan's thread-safe key/value state; every write is a recorded event.

    Reads return copies (mutating a returned list does not change the state: write it back).
    """

    def __init__(self, backend: StateBackend) -> None:
        self._backend = backend

    def __getitem__(self, key: str) -> Any:
        with self._backend.state_lock():
            value = self._backend.state_values()[key]
        if value is None or isinstance(value, bool | int | float | str):
            return value
        return load_json(dump_json(value))

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        with self._backend.state_lock():
            if key not in self._backend.state_values():
                raise KeyError(key)
            self._backend.record_state({}, [key])

    def __iter__(self) -> Iterator[str]:
        with self._backend.state_lock():
            return iter(list(self._backend.state_values()))

    def __len__(self) -> int:
        with self._backend.state_lock():
            return len(self._backend.state_values())

    def __contains__(self, key: object) -> bool:
        with self._backend.state_lock():
            return key in self._backend.state_values()

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Write several values as one recorded event (all validated before anything is written)."""
        pairs = dict(other.items() if isinstance(other, Mapping) else other)
        pairs.update(kwargs)
        values: dict[str, Any] = {}
        for key, value in pairs.items():
            if not isinstance(key, str) or not key:
                raise ValidationFailed(f"plan state keys are non-empty strings, got {key!r}")
            values[key] = check_json(value, f"plan state {key!r}")
        if values:
            with self._backend.state_lock():
                self._backend.record_state(values, [])

    def set(self, key: str, value: Any) -> None:
        """Write one value (same as ``state[key] = value``)."""
        self.update({key: value})

    def snapshot(self) -> dict[str, Any]:
        """A copy of all values."""
        with self._backend.state_lock():
            return dict(load_json(dump_json(self._backend.state_values())))

    def __repr__(self) -> str:
        return f"PlanState({self.snapshot()!r})"
