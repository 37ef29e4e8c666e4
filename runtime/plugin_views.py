"""What both plugin shells' machines read from their core (``plugin_core.MachineCore``).

Reads do no I/O: they answer from the core's :attr:`~phaselog.runtime.plugin_core.MachineCore.known`
aggregate, so a sync and an async machine answer a read alike, stale ones too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phaselog.domain.plugin import PluginAggregate, PluginPhase, RetryPolicy, RetryStatus
    from phaselog.runtime.plugin_core import MachineCore

__all__ = ["MachineView", "RetryView"]


class MachineView:
    """What both shells' machines read from their core (the shells add the I/O)."""

    _core: MachineCore

    def _known(self) -> PluginAggregate:
        """The core's :attr:`~MachineCore.known` aggregate (a threaded shell reads it under its lock)."""
        return self._core.known

    @property
    def phase(self) -> PluginPhase:
        """The phase as of this machine's last write or reload (StoreUnavailable while it must reload)."""
        return self._known().phase

    @property
    def version(self) -> int:
        """The version of the plugin's stream this machine is at."""
        return self._known().version

    @property
    def state(self) -> tuple[bytes | None, int]:
        """The plugin's versioned state: ``(bytes or None, version)``."""
        agg = self._known()
        return agg.state, agg.state_version

    @property
    def plugin_id(self) -> str:
        """The plugin this machine drives."""
        return self._core.plugin_id

    @property
    def stream_id(self) -> str:
        """The plugin's stream id (``plugin:<plugin_id>``)."""
        return self._core.stream_id

    @property
    def policy(self) -> RetryPolicy:
        """The retry limits of this machine (they shape the values it records)."""
        return self._core.policy

    @property
    def position(self) -> int:
        """The newest global position this machine's writes committed, its creation included (0 before any).

        ``projections.wait_for(machine.position)`` returns once the read models show them.
        """
        return self._core.position

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.plugin_id!r}, phase={self._core.known.phase.value})"


class RetryView:
    """The retry counters of one machine, read-only (the shells add ``advance`` and ``reset``)."""

    def __init__(self, machine: MachineView) -> None:
        self._machine = machine

    def _status(self) -> RetryStatus:
        return self._machine._known().retry  # noqa: SLF001 - the machine's own read

    @property
    def status(self) -> RetryStatus:
        """The current counters as an immutable value."""
        return self._status()

    @property
    def attempts(self) -> int:
        """Recovery attempts since the last reset."""
        return self.status.attempts

    @property
    def next_backoff(self) -> timedelta:
        """How long to wait before the next attempt."""
        return self.status.next_backoff

    @property
    def last_attempt(self) -> datetime | None:
        """When the last attempt was made (UTC), ``None`` after a reset."""
        return self.status.last_attempt

    @property
    def policy(self) -> RetryPolicy:
        """The retry limits of the machine."""
        return self._machine.policy

    def can_retry(self) -> bool:
        """Tell whether attempts are below the machine's ``max_attempts``."""
        return self.policy.can_retry(self.status)

    def __repr__(self) -> str:
        s, name = self.status, type(self).__name__
        return f"{name}(attempts={s.attempts}, next_backoff={s.next_backoff}, last={s.last_attempt})"
