"""Where a timed block's core time went: this process, everything else, or nowhere (idle).

``with CpuSplit() as split:`` reads this process's CPU time (``getrusage``) and the
machine's busy and total time (``/proc/stat``, all cores) before and after the
block. :meth:`CpuSplit.per_command` divides each share by the commands the block
ran: ``client`` (this process: the writers), ``rest`` (every other process, on a
machine given to the benchmark mostly the database's backends and WAL writer)
and ``idle`` (core time nobody used). On a machine with the database on the same
cores, ``idle`` is what serialisation costs: the client waiting for the server
while the server waits for the client. Off Linux the machine's shares are None.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["CpuSplit", "own_cpu"]

_STAT = Path("/proc/stat")


def _machine() -> tuple[float, float] | None:
    """Seconds of core time since boot: (busy, total), every core summed; None without /proc.

    Time a hypervisor gave to other guests (``steal``) is neither: it was nobody's here.
    """
    try:
        fields = _STAT.read_text().split("\n", 1)[0].split()[1:8]  # user .. softirq, not steal
    except OSError:
        return None
    ticks = [int(f) for f in fields]
    hz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + ticks[4]  # idle and iowait
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def own_cpu() -> float:
    """Seconds of CPU this process has used (user and system, microsecond resolution)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuSplit:
    """A timed block's core time: this process's, the rest's and the idle share (see the module).

    Where the writers are other processes (each measuring :func:`own_cpu` around its
    work), set :attr:`client` to their sum after the block: ``rest`` is then the
    database and whatever else ran.
    """

    def __enter__(self) -> Self:
        self._machine, self._own = _machine(), own_cpu()
        self._started = time.perf_counter()
        self.wall = self.client = 0.0
        self.busy: float | None = None
        self.idle: float | None = None
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.wall = time.perf_counter() - self._started
        self.client = own_cpu() - self._own
        after = _machine()
        if self._machine is not None and after is not None:
            self.busy = after[0] - self._machine[0]
            self.idle = max(0.0, after[1] - self._machine[1] - self.busy)

    @property
    def rest(self) -> float | None:
        """Busy core time not the client's (None off Linux)."""
        return None if self.busy is None else max(0.0, self.busy - self.client)

    def per_command(self, commands: int) -> dict[str, float | None]:
        """Microseconds of core time per command: ``client``, ``rest`` and ``idle``."""

        def us(seconds: float | None) -> float | None:
            return None if seconds is None else round(seconds / commands * 1e6, 1)

        return {"client": us(self.client), "rest": us(self.rest), "idle": us(self.idle)}
