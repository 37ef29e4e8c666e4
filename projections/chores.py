"""The port of a following runner's chores: work done now and then by one runner of a store."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Chore"]


class Chore(Protocol):
    """Work the following runner's housekeeping does now and then, on one runner of the store at a time.

    ``run`` is called every ``interval`` seconds by the runner holding the lease
    ``__chore:<name>__``; a :class:`~phaselog.domain.errors.PhaselogError` it raises is
    logged and the chore runs again at its next turn.
    """

    @property
    def name(self) -> str:
        """A short name, unique among the runner's chores (its lease is named after it)."""
        ...

    @property
    def interval(self) -> float:
        """Seconds between runs."""
        ...

    def run(self) -> object:
        """Do the work once."""
        ...
