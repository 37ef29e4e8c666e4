"""What a store core knows of its store: the settings its decisions depend on.

One :class:`StoreCore` per open store; the sync :class:`~phaselog.adapters.Store`
makes it and the async stores on the same database drive the same one, so both
shells save, snapshot and load by the same rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from eventsourcing.persistence import Mapper

from phaselog.domain.errors import StoreUnavailable
from phaselog.domain.events import Aggregate

__all__ = ["StoreCore", "snapshot_due"]


def snapshot_due(aggregate: Aggregate, before: int, interval: int) -> bool:
    """True when saving moved ``aggregate`` (a class with ``SNAPSHOTS``) past a multiple of ``interval``."""
    crossed = aggregate.version // interval > before // interval
    return crossed and bool(getattr(aggregate, "SNAPSHOTS", False))


def _nothing(_position: int) -> None:
    """No one to tell of a commit."""


@dataclass(frozen=True)
class StoreCore:
    """The settings of one store that its protocols decide by.

    ``url`` names the store in errors; ``mapper`` encodes and decodes events (its
    ``max_event_bytes`` is the event size policy: a larger event raises
    ``PayloadTooLarge`` before any I/O); ``snapshots`` says the store keeps
    snapshots; ``committed`` is told the newest position of every save (the
    store's sealing).
    """

    url: str
    mapper: Mapper[str]
    snapshot_interval: int
    read_only: bool = False
    snapshots: bool = True
    committed: Callable[[int], None] = _nothing

    def check_writable(self, what: str) -> None:
        """Refuse a write on a read-only store before any I/O (the database would refuse it too)."""
        if self.read_only:
            msg = f"{what}: {self.url} is open read-only"
            raise StoreUnavailable(msg)
