"""Waiting for read models: read your own writes, with a timeout that names what holds them back.

Mixed into :class:`~phaselog.projections.runner.Projections`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from phaselog.domain.errors import PhaselogError, ValidationFailed
from phaselog.projections.base import ProjectionHalted, ProjectionTimeout

if TYPE_CHECKING:
    import threading
    from collections.abc import Iterable, Sequence

    from phaselog.projections.base import Projection
    from phaselog.projections.engine import Target
    from phaselog.projections.ports import LogReader, ViewStore
    from phaselog.projections.readmodel import ReadModel

__all__ = ["Waiting"]

log = logging.getLogger("phaselog.projections")


class Waiting:
    """``wait`` and ``wait_for`` over the read models of a runner (see the module docstring)."""

    reader: LogReader
    views: ViewStore
    _projections: list[Projection]
    _targets: dict[str, Target]
    _progress: threading.Condition
    _closed: bool

    @property
    def running(self) -> bool:
        """True while this object's follower threads run."""
        raise NotImplementedError

    def _model(self, name: str) -> ReadModel:
        raise NotImplementedError

    def _catch_up(self, targets: list[Target], *, until: int | None) -> int:
        raise NotImplementedError

    def _positions(self, names: Sequence[str]) -> dict[str, int]:
        with self.views.translate_errors("reading read-model positions"), self.views.read() as session:
            return session.positions(names)

    def position(self) -> int:
        """The position every read model has reached (the slowest one's)."""
        return min(self._positions([p.table for p in self._projections]).values(), default=0)

    def _halted(self) -> dict[str, dict[str, Any]]:
        with self.views.translate_errors("reading read-model state"), self.views.read() as session:
            state = session.read_state([p.name for p in self._projections])
        return {name: s for name, s in state.items() if s["halted"] is not None}

    def wait(self, position: int, timeout: float = 5.0) -> None:
        """Block until every read model has folded ``position``: :meth:`wait_for` on them all."""
        self.wait_for(position, timeout)

    def wait_for(self, position: int, timeout: float = 5.0, models: Sequence[str] | None = None) -> None:
        """Block until the read models (all, or those named in ``models``) have folded ``position``.

        Read your own writes: ``position`` is what a command committed (the
        ``position`` of the machine, task, plan or state it ran on, or of what
        ``save`` returned). Progress comes from the runner threads of this object,
        from a runner in another process, or, when neither runs, from this call
        catching the chosen read models up itself. Raises :class:`ProjectionTimeout`
        after ``timeout`` seconds, naming each read model behind, its position and
        the append in flight holding the store's readers back, if one does; and
        :class:`ProjectionHalted` at once when a chosen read model that has not
        reached ``position`` is halted (``on_error="stop"``).
        """
        chosen = self._waited_for(position, models)
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            behind = self._behind(chosen, position)
            if not behind:
                return
            halted = self._halted_among(behind)
            if halted:
                raise ProjectionHalted("; ".join(str(s["last_error"]) for s in halted.values()))
            if not self.running and not self._closed:
                self._catch_up([self._targets[p.name] for p in chosen], until=position)
                behind = self._behind(chosen, position)
                if not behind:
                    return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timeout(position, behind, timeout)
            with self._progress:
                self._progress.wait(min(delay, remaining))
            delay = min(delay * 2, 0.2)

    def _waited_for(self, position: object, models: Sequence[str] | None) -> list[Projection]:
        if isinstance(position, bool) or not isinstance(position, int) or position < 0:
            raise ValidationFailed(f"position must be a non-negative integer, got {position!r}")
        if models is None:
            return list(self._projections)
        if isinstance(models, str) or not models:
            msg = f"models must be a non-empty sequence of read-model names (None for all), got {models!r}"
            raise ValidationFailed(msg)
        return [self._model(name).projection for name in models]

    def _behind(self, chosen: list[Projection], position: int) -> dict[str, int]:
        positions = self._positions([p.table for p in chosen])
        return {p.name: positions[p.table] for p in chosen if positions[p.table] < position}

    def _halted_among(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        halted = self._halted()
        return {n: halted[n] for n in names if n in halted}

    def _timeout(self, position: int, behind: dict[str, int], timeout: float) -> ProjectionTimeout:
        """The timeout error, naming the append in flight that holds the horizon below ``position``."""
        look = self.reader.horizon
        try:
            horizon = look() if look is not None else None
        except PhaselogError as exc:  # the error names the models behind even when the store is down
            log.debug("no horizon for the timeout of wait_for(%d): %s", position, exc)
            horizon = None
        if horizon is None:
            return ProjectionTimeout.waiting_for(position, behind, timeout)
        holder = horizon.holder if horizon.position < position else None
        return ProjectionTimeout.waiting_for(position, behind, timeout, holder=holder, head=horizon.head)
