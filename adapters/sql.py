"""Direct queries over eventsourcing's own tables, for what its recorder API lacks."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier

from phaselog.runtime.ports import StreamHead

__all__ = ["stream_heads", "stream_ids"]


def stream_ids(recorder: ApplicationRecorder, prefix: str) -> list[str]:
    """Ids of every stream whose id starts with ``prefix``, sorted."""
    if isinstance(recorder, POPOApplicationRecorder):
        index: dict[str, dict[int, int]] = recorder._stored_events_index  # noqa: SLF001 - popo has no query API
        return sorted(k for k, v in list(index.items()) if v and k.startswith(prefix))
    if isinstance(recorder, SQLiteApplicationRecorder):
        with recorder.datastore.transaction(commit=False) as curs:
            curs.execute(
                f"SELECT DISTINCT originator_id FROM {recorder.events_table_name} "
                "WHERE substr(originator_id, 1, ?) = ? ORDER BY originator_id",
                (len(prefix), prefix),
            )
            return [str(row[0]) for row in curs.fetchall()]
    if isinstance(recorder, PostgresApplicationRecorder):
        query = SQL(
            "SELECT DISTINCT originator_id FROM {schema}.{table} "
            "WHERE starts_with(originator_id::text, %s) ORDER BY originator_id"
        ).format(schema=Identifier(recorder.datastore.schema), table=Identifier(recorder.events_table_name))
        with recorder.datastore.transaction(commit=False) as pg_curs:
            pg_curs.execute(query, (prefix,))
            rows: list[dict[str, Any]] = pg_curs.fetchall()
            return [str(row["originator_id"]) for row in rows]
    msg = f"unsupported recorder {type(recorder).__name__}"
    raise TypeError(msg)


def stream_heads(recorder: ApplicationRecorder, prefix: str, *, open_only: bool = False) -> list[StreamHead]:
    """The head of every stream starting with ``prefix``, sorted by stream id.

    Recorders that keep a stream index (``select_stream_heads``) answer from it;
    others fall back to scanning their events, with every stream counted as open.
    """
    select = getattr(recorder, "select_stream_heads", None)
    if select is not None:
        heads: list[StreamHead] = select(prefix, open_only=open_only)
        return heads
    found: list[StreamHead] = []
    for sid in stream_ids(recorder, prefix):
        last = recorder.select_events(sid, desc=True, limit=1)
        if last:
            found.append(StreamHead(sid, last[0].originator_version, 0, open=True))
    return found
