"""The retention policy: archive the history older than an age or beyond a count, as a runner's chore.

``Projections(store, chores=[Retention(store, RetentionPolicy(directory, max_age=…))])``
(or ``phaselog projections run --archive-dir DIR --retain-days N``) has one following
runner of the store check every ``interval`` seconds which positions the policy no
longer keeps live: those older than ``max_age`` and those beyond the newest
``keep_events``, whichever reaches further. Once at least ``min_events`` of them are
not archived yet, it writes them to a new archive in ``directory``
(:func:`~phaselog.adapters.audit.archive.archive`: sealed, read back and verified,
recorded in the store) and, with ``detach=True`` on a partitioned PostgreSQL store,
drops the partitions wholly archived. A legal hold on any stream of the segment
blocks the run (it is logged and counted as ``held``; nothing is written).

Each run is logged and counted (``phaselog.retention.runs`` by outcome,
``phaselog.retention.archived`` events); :attr:`Retention.last` keeps the last run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from phaselog.adapters.audit.archive import ArchiveReport, archive, records
from phaselog.adapters.audit.history import log_time_of
from phaselog.adapters.audit.ports import AuditedStore, recorder_of
from phaselog.adapters.audit.reading import snapshot_reader
from phaselog.adapters.errors import translate_errors
from phaselog.domain.errors import ValidationFailed
from phaselog.domain.holds import LegalHoldActive
from phaselog.runtime import telemetry
from phaselog.runtime.log_time import position_at

__all__ = ["Retention", "RetentionPolicy", "RetentionRun", "retention_cutoff"]

log = logging.getLogger("phaselog.retention")


@dataclass(frozen=True)
class RetentionPolicy:
    """What stays live: events younger than ``max_age`` and the newest ``keep_events`` (at least one)."""

    directory: Path
    max_age: timedelta | None = None
    keep_events: int | None = None
    min_events: int = 1000
    """The fewest events worth a new archive (smaller segments wait for the next run)."""
    detach: bool = False
    """Drop the partitions wholly archived (a partitioned PostgreSQL store only)."""
    interval: float = 3600.0
    """Seconds between runs."""

    def __post_init__(self) -> None:
        if self.max_age is None and self.keep_events is None:
            raise ValidationFailed("a retention policy needs max_age, keep_events or both")
        if self.max_age is not None and self.max_age <= timedelta(0):
            raise ValidationFailed(f"max_age must be positive, not {self.max_age}")
        if self.keep_events is not None and self.keep_events < 1:
            raise ValidationFailed(f"keep_events must be at least 1, not {self.keep_events}")
        if self.min_events < 1 or self.interval <= 0:
            raise ValidationFailed("min_events must be at least 1 and interval above 0")


def retention_cutoff(
    policy: RetentionPolicy, *, head: int, horizon: int, archived_before: int, first_young: int | None
) -> int | None:
    """The ``before`` of the next archive (``None``: fewer than ``min_events`` to archive yet).

    ``first_young`` is the first position at or after ``now - max_age``; only committed
    positions (up to ``horizon``) are ever archived, and the newest event always stays.
    """
    reach = [head - policy.keep_events + 1] if policy.keep_events is not None else []
    if first_young is not None:
        reach.append(first_young)
    before = min(max(reach), horizon + 1, head)
    return before if before - archived_before >= policy.min_events else None


@dataclass(frozen=True)
class RetentionRun:
    """One run of the policy: what it archived (if anything) or what held it back."""

    at: datetime
    outcome: str
    report: ArchiveReport | None = None
    held: str | None = None


class Retention:
    """The retention policy of one store, as a chore of its following runner (see the module docs)."""

    name = "retention"

    def __init__(self, store: AuditedStore, policy: RetentionPolicy) -> None:
        self.store = store
        self.policy = policy
        self.last: RetentionRun | None = None

    @property
    def interval(self) -> float:
        """Seconds between runs (the policy's)."""
        return self.policy.interval

    def run(self) -> RetentionRun:
        """Archive what the policy no longer keeps live, once there is enough of it."""
        store, policy = self.store, self.policy
        with translate_errors("applying the retention policy"):
            recorder = recorder_of(store)
            head = int(recorder.max_notification_id() or 0)
            horizon = int(recorder.horizon_position())
        with snapshot_reader(store) as read:
            done = records(read)
        start = done[-1].before if done else 1
        first_young = None
        if policy.max_age is not None:
            first_young = position_at(datetime.now(UTC) - policy.max_age, head, log_time_of(store))
        before = retention_cutoff(
            policy, head=head, horizon=horizon, archived_before=start, first_young=first_young
        )
        if before is None:
            return self._ran(RetentionRun(datetime.now(UTC), "nothing"))
        policy.directory.mkdir(parents=True, exist_ok=True)
        path = policy.directory / f"phaselog-{start:012d}-{before - 1:012d}.jsonl.gz"
        try:
            report = archive(store, before, path, detach=policy.detach)
        except LegalHoldActive as exc:
            log.warning("retention: %s", exc)
            return self._ran(RetentionRun(datetime.now(UTC), "held", held=str(exc)))
        log.info(
            "retention: archived positions %d to %d (%d events) in %s", start, before - 1, report.events, path
        )
        return self._ran(RetentionRun(datetime.now(UTC), "archived", report=report))

    def _ran(self, run: RetentionRun) -> RetentionRun:
        self.last = run
        telemetry.retention_ran(run.outcome, run.report.events if run.report else 0)
        return run
