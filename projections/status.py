"""``Projections.status()``: what an operator needs to see per read model."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from phaselog.domain.errors import PhaselogError
from phaselog.projections.engine import Engine
from phaselog.projections.readmodel import ReadModel

__all__ = ["lag_seconds", "status_rows"]


def status_rows(
    engine: Engine, models: Mapping[str, ReadModel], notes: Mapping[str, str], *, running: bool
) -> list[dict[str, Any]]:
    """One row per read model.

    ``position``/``head``/``lag`` in events (``head``: the newest committed
    position, past the commit horizon, so the lag grows while an append in flight
    holds readers back); ``lag_seconds`` the age of the oldest committed event not
    folded yet; ``errors`` the dead letters; ``last_error`` this runner's
    latest failure of that model, else the latest recorded (dead letter or halt);
    ``halted`` for a model stopped by ``on_error="stop"``; ``owner`` the runner
    holding its lease (``None`` when no lease is live).
    """
    views = engine.views
    head = engine.reader.max_position()
    names = list(models)
    tables_ = [models[n].projection.table for n in names]
    with views.translate_errors("reading read-model status"), views.read() as session:
        positions = session.positions(tables_)
        state = session.read_state(names)
        errors = session.dead_letter_counts()
    out = []
    for name in names:
        p = models[name].projection
        at, s = positions[p.table], state.get(name, {})
        note = notes.get(name) or s.get("last_error")
        try:
            counts = models[name].counts()
        except PhaselogError as exc:  # a broken read model still gets its status row
            counts, note = {}, note or str(exc)
        out.append(
            {
                "name": name,
                "table": p.table,
                "position": at,
                "head": head,
                "lag": max(0, head - at),
                "lag_seconds": lag_seconds(engine, at, head),
                "rows": sum(counts.values()),
                "counts": counts,
                "errors": errors.get(p.table, 0),
                "last_error": note,
                "halted": s.get("halted") is not None,
                "owner": s.get("owner") if (s.get("remaining") or 0) > 0 else None,
                "running": running,
            }
        )
    return out


def lag_seconds(engine: Engine, at: int, head: int) -> float:
    """Age in seconds of the oldest committed event a read model has not folded yet (0.0 when caught up).

    Read past the commit horizon (``records(..., final=False)``): while an append
    in flight holds readers back, the events committed behind it still count, so
    the figure grows for as long as the read side is frozen.
    """
    if at >= head:
        return 0.0
    page = engine.reader.records(at + 1, 1, final=False)
    if not page:
        return 0.0
    try:
        when = datetime.fromisoformat(str(engine.decode(page[0]).timestamp))
    except (PhaselogError, ValueError, TypeError):
        return 0.0
    return max(0.0, round(time.time() - when.timestamp(), 3))
