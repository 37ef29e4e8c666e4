"""Driving sans-I/O protocols: the decisions are generators, the shells do the I/O.

A protocol is a generator that yields the I/O it needs (a query, a store call,
a pause), receives the answer (or has the failure thrown into it), and returns
its result: a :data:`Steps` ``[S, T]`` yields steps ``S`` and returns a ``T``.
A step that is a :class:`Request` ``[R]`` is asked with ``answer = yield from
request``, which types ``answer`` as the ``R`` the shell answers with (a
generator's send type is one for all its steps, so a plain ``yield`` could not).

The same protocol is driven by a plain loop in the sync shell and by a loop
that awaits in the async shell (:func:`drive` and :func:`drive_async`), as
psycopg 3 shares its protocol generators between ``Connection`` and
``AsyncConnection``. A failure of a step (any ``BaseException``, cancellation
too) is thrown into the protocol, so its clean-up decisions run in both shells.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterator
from typing import Any, Generic, Self, TypeVar

__all__ = ["Exchange", "Request", "Steps", "drive", "drive_async"]

S = TypeVar("S")
T = TypeVar("T")
R_co = TypeVar("R_co", covariant=True)
Steps = Generator[S, Any, T]
"""A sans-I/O protocol: a generator yielding steps ``S`` and returning a ``T``."""


class Request(Generic[R_co]):
    """A step the shell answers with an ``R_co``; ask it with ``answer = yield from request``.

    Subclasses are the steps (frozen dataclasses); shells dispatch on their class.
    """

    __slots__ = ()

    def __iter__(self) -> Generator[Self, Any, R_co]:
        answer: R_co = yield self
        return answer


class Exchange(Generic[S, T]):
    """One run of a protocol: iterate for its steps, answer or fail each, then read ``result``."""

    def __init__(self, protocol: Generator[S, Any, T]) -> None:
        self._protocol = protocol
        self._failure: BaseException | None = None
        self._answer: Any = None
        self._result: T
        self._done = False

    def __iter__(self) -> Iterator[S]:
        while True:
            failure, answer = self._failure, self._answer
            self._failure = self._answer = None
            try:
                step = self._protocol.send(answer) if failure is None else self._protocol.throw(failure)
            except StopIteration as stop:
                self._result, self._done = stop.value, True
                return
            yield step

    def answer(self, value: object) -> None:
        """What the last step returned; it is sent into the protocol for the next step."""
        self._answer = value

    def fail(self, exc: BaseException) -> None:
        """The last step failed: ``exc`` is raised inside the protocol, which may handle it."""
        self._failure = exc

    @property
    def result(self) -> T:
        """What the protocol returned (after the iteration ended)."""
        if not self._done:  # pragma: no cover - a shell bug
            msg = "the protocol has not finished"
            raise RuntimeError(msg)
        return self._result


def drive(protocol: Generator[S, Any, T], do: Callable[[S], object]) -> T:
    """Run ``protocol`` to its end, doing each step with ``do`` (the sync shell)."""
    exchange = Exchange(protocol)
    for step in exchange:
        try:
            exchange.answer(do(step))
        except BaseException as exc:
            exchange.fail(exc)
    return exchange.result


async def drive_async(protocol: Generator[S, Any, T], do: Callable[[S], Awaitable[object]]) -> T:
    """Run ``protocol`` to its end, awaiting ``do`` for each step (the async shell)."""
    exchange = Exchange(protocol)
    for step in exchange:
        try:
            exchange.answer(await do(step))
        except BaseException as exc:
            exchange.fail(exc)
    return exchange.result
