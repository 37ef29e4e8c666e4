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

from phaselog.projections import tables
from phaselog.projections.base import Projection
from phaselog.projections.batch import BatchRows, RowCache, fold_events, read_page
from phaselog.projections.engine import Engine, ProgressCallback, Target
from phaselog.projections.errors import db_errors
from phaselog.runtime.ports import LogRecord

__all__ = ["REBUILD_PAGE", "rebuild", "retry_dead_letters", "set_meta"]

log = logging.getLogger("phaselog.projections")

REBUILD_PAGE = 5000
"""Events read and folded per transaction while replaying into the shadow table."""
_SWAP_ATTEMPTS = 5


def set_meta(engine: Engine, cur: object, p: Projection) -> None:
    """Record ``p``'s fingerprint as the shape of its live table."""
    b = engine.backend
    meta = b.table(tables.VIEW_META_TABLE)
    cur.execute(b.q(f"DELETE FROM {meta} WHERE name = ?"), [p.name])  # type: ignore[attr-defined]
    cur.execute(b.q(f"INSERT INTO {meta} VALUES (?, ?)"), [p.name, p.fingerprint])  # type: ignore[attr-defined]


def rebuild(engine: Engine, p: Projection, progress: ProgressCallback | None = None) -> None:
    """Replay the whole log into ``p``'s shadow table and swap it in atomically."""
    b = engine.backend
    shadow = Target(p, p.shadow, RowCache(min(engine.cache_rows, REBUILD_PAGE)), live=False)
    with db_errors(f"preparing rebuild of {p.name}"), b.write([p.shadow]) as cur:
        cur.execute(f"DROP TABLE IF EXISTS {b.table(p.shadow)}")
        cur.execute(p.create_sql(p.shadow, b.table(p.shadow))[0])
        b.set_position(cur, p.shadow, 0)
        cur.execute(b.q(f"DELETE FROM {b.table(tables.ERRORS_TABLE)} WHERE tbl = ?"), [p.shadow])
    total = engine.store.max_position()
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
        ahead = pool.submit(read_page, engine.store, after, size, topics, total)
        while True:
            events, end = ahead.result()
            if end <= after:
                return
            ahead = pool.submit(read_page, engine.store, end, size, topics, total)
            engine.batch(shadow, until=total, page=(events, end))
            after = end
            if progress:
                progress(min(end, total), total)


def _swap(engine: Engine, p: Projection, *, force: bool) -> bool:
    """Swap the shadow in unless the live table has moved past it (then catch up again)."""
    b = engine.backend
    with db_errors(f"swapping in {p.name}"), b.write([p.table, p.shadow]) as cur:
        positions = b.positions(cur, [p.table, p.shadow])
        at = positions[p.shadow]
        if at < positions[p.table] and not force:
            return False  # the live table is ahead: a swap now would step readers back
        cur.execute(f"DROP TABLE IF EXISTS {b.table(p.table)}")
        cur.execute(f"ALTER TABLE {b.table(p.shadow)} RENAME TO {p.table}")
        for sql in p.create_sql(p.table, b.table(p.table))[1:]:
            cur.execute(sql)
        b.set_position(cur, p.table, at)
        b.set_position(cur, p.shadow, None)
        errors = b.table(tables.ERRORS_TABLE)
        cur.execute(b.q(f"DELETE FROM {errors} WHERE tbl = ?"), [p.table])
        cur.execute(b.q(f"UPDATE {errors} SET tbl = ? WHERE tbl = ?"), [p.table, p.shadow])
        tables.ensure_state(b, cur, [p.name])
        tables.set_state(b, cur, p.name, generation=True, halted=None, last_error=None, last_error_at=None)
        set_meta(engine, cur, p)
    return True


def retry_dead_letters(engine: Engine, p: Projection) -> int:
    """Re-fold ``p``'s dead-lettered events (oldest first) and clear a halt; return how many succeeded."""
    b = engine.backend
    with db_errors(f"retrying dead letters of {p.name}"), b.write([p.table]) as cur:
        tables.ensure_state(b, cur, [p.name])
        tables.set_state(b, cur, p.name, halted=None, generation=True)
        letters = tables.dead_letters(b, cur, [p.table])
        if not letters:
            return 0
        notes: list[LogRecord] = []
        for letter in letters:
            found = engine.store.records(letter["position"], 1, stop=letter["position"])
            notes.extend(n for n in found if n.id == letter["position"])
        events = [(n, engine._decoded(n)) for n in notes]  # noqa: SLF001 - same decoding as a batch
        rows = BatchRows(b, cur, p, p.table, RowCache(0))
        rows.prefetch(engine._key(p, e) for _, e in events)  # noqa: SLF001
        failures = fold_events(p, rows, events, isolate=True)
        failed = {f[0] for f in failures}
        succeeded = [n.id for n in notes if n.id not in failed]
        for position in succeeded:
            tables.drop_dead_letter(b, cur, p.table, position)
        tables.record_dead_letters(b, cur, p.table, failures)
        last = f"position {failures[-1][0]}: {failures[-1][3]}" if failures else None
        tables.set_state(b, cur, p.name, last_error=last)
    log.info("%s: %d of %d dead-lettered events now folded", p.name, len(succeeded), len(letters))
    return len(succeeded)
