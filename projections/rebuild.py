"""Rebuild a read model by shadow swap, and re-fold its dead letters.

A rebuild replays the log (only the topics the read model folds, in large
pages, rows cached in a bounded cache and written once per page) into
``<table>__shadow``, which has no secondary index until it is swapped in.
It then catches the shadow up to the head and, in one transaction holding the
live table's lock, drops the live table, renames the shadow into place, builds
its indexes, moves the tracked position and the dead letters, and bumps the
read model's generation (runners drop their row caches). Readers see the old
complete table until that commit and the new complete table after it; memory
stays bounded by the page and cache sizes, whatever the length of the log.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from phaselog.projections.base import Projection
from phaselog.projections.batch import BatchRows, RowCache, fold_events
from phaselog.projections.engine import Engine, ProgressCallback, Target
from phaselog.projections.ports import ViewSession
from phaselog.runtime.ports import LogRecord

__all__ = ["REBUILD_PAGE", "rebuild", "retry_dead_letters", "set_meta"]

log = logging.getLogger("phaselog.projections")

REBUILD_PAGE = 5000
"""Events read and folded per transaction while replaying into the shadow table."""
_SWAP_ATTEMPTS = 5


def set_meta(session: ViewSession, p: Projection) -> None:
    """Record ``p``'s fingerprint as the shape of its live table."""
    session.set_fingerprint(p.name, p.fingerprint)


def rebuild(engine: Engine, p: Projection, progress: ProgressCallback | None = None) -> None:
    """Replay the whole log into ``p``'s shadow table and swap it in atomically."""
    views = engine.views
    shadow = Target(p, p.shadow, RowCache(min(engine.cache_rows, REBUILD_PAGE)), live=False)
    with views.translate_errors(f"preparing rebuild of {p.name}"), views.write([p.shadow]) as session:
        session.drop_table(p.shadow)
        session.create_table(p.table_spec(p.shadow), indexes=False)
        session.set_position(p.shadow, 0)
        session.clear_dead_letters(p.shadow)
    total = engine.reader.max_position()
    if progress:
        progress(0, total)
    page = max(engine.batch_size, REBUILD_PAGE)
    _replay(engine, shadow, total, page, progress)
    for attempt in range(_SWAP_ATTEMPTS):
        while engine.batch(shadow, limit=page):  # events written since the replay started
            pass
        if _swap(engine, p, force=attempt == _SWAP_ATTEMPTS - 1):
            break
    if progress:
        done = max(shadow.known, total)
        progress(done, done)


def _replay(engine: Engine, shadow: Target, total: int, size: int, progress: ProgressCallback | None) -> None:
    """Fold the log up to ``total`` into the shadow, reading each next page while this one is folded."""
    p = shadow.projection
    topics = sorted(p.topics) if p.topics is not None else []
    after = 0
    with ThreadPoolExecutor(1, "phaselog-rebuild-read") as pool:
        ahead = pool.submit(engine.read, after, size, topics, total)
        while True:
            events, end = ahead.result()
            if end <= after:
                return
            ahead = pool.submit(engine.read, end, size, topics, total)
            engine.batch(shadow, until=total, page=(events, end))
            after = end
            if progress:
                progress(min(end, total), total)


def _swap(engine: Engine, p: Projection, *, force: bool) -> bool:
    """Swap the shadow in unless the live table has moved past it (then catch up again)."""
    views = engine.views
    with views.translate_errors(f"swapping in {p.name}"), views.write([p.table, p.shadow]) as session:
        positions = session.positions([p.table, p.shadow])
        at = positions[p.shadow]
        if at < positions[p.table] and not force:
            return False  # the live table is ahead: a swap now would step readers back
        session.drop_table(p.table)
        session.rename_table(p.shadow, p.table)
        session.create_indexes(p.table_spec(p.table))
        session.set_position(p.table, at)
        session.set_position(p.shadow, None)
        session.clear_dead_letters(p.table)
        session.move_dead_letters(p.shadow, p.table)
        session.ensure_state([p.name])
        session.set_state(p.name, generation=True, halted=None, last_error=None, last_error_at=None)
        set_meta(session, p)
    return True


def retry_dead_letters(engine: Engine, p: Projection) -> int:
    """Re-fold ``p``'s dead-lettered events (oldest first) and clear a halt; return how many succeeded."""
    views = engine.views
    with views.translate_errors(f"retrying dead letters of {p.name}"), views.write([p.table]) as session:
        session.ensure_state([p.name])
        session.set_state(p.name, halted=None, generation=True)
        letters = session.dead_letters([p.table])
        if not letters:
            return 0
        notes: list[LogRecord] = []
        for letter in letters:
            found = engine.reader.records(letter["position"], 1, stop=letter["position"])
            notes.extend(n for n in found if n.id == letter["position"])
        events = [(n, engine._decoded(n)) for n in notes]  # noqa: SLF001 - same decoding as a batch
        rows = BatchRows(views, session, p, p.table, RowCache(0))
        rows.prefetch(engine._key(p, e) for _, e in events)  # noqa: SLF001
        failures = fold_events(p, rows, events, isolate=True)
        failed = {f[0] for f in failures}
        succeeded = [n.id for n in notes if n.id not in failed]
        for position in succeeded:
            session.drop_dead_letter(p.table, position)
        session.record_dead_letters(p.table, failures)
        last = f"position {failures[-1][0]}: {failures[-1][3]}" if failures else None
        session.set_state(p.name, last_error=last)
    log.info("%s: %d of %d dead-lettered events now folded", p.name, len(succeeded), len(letters))
    return len(succeeded)
