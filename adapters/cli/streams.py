"""``phaselog streams``: every stream with its kind, version, last event time and open flag (read-only).

*Open* is what the stream index says of the stream's head: it is not closed, so
the stream still accepts events and may still need work. Only a task closes its
stream (once its completion is delivered; a relaunch opens it again); plugins,
plans and recoverable states keep theirs open, finished or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.table import Table

from phaselog.adapters.cli.common import JsonOption, UrlOption, console, echo_json
from phaselog.adapters.errors import translate_errors
from phaselog.adapters.store import Store, open_store
from phaselog.projections.base import event_data

__all__ = ["OPEN_CAPTION", "register", "stream_rows"]

OPEN_CAPTION = (
    "open: the stream's head is not closed, so it still accepts events; only a task closes "
    "(once its completion is delivered): plugins, plans and states stay open, finished or not"
)


@dataclass(frozen=True)
class _Stored:
    """A stored event dressed as a notification (``id`` is its global position)."""

    id: int
    stored: Any

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stored, name)


def stream_rows(store: Store, prefix: str = "") -> list[dict[str, Any]]:
    """One row per stream starting with ``prefix``: id, kind, version, position, open, last event time."""
    rows = []
    recorder = store.app.recorder
    for head in store.stream_heads(prefix):
        with translate_errors(f"reading the head of {head.stream_id!r}"):
            last = recorder.select_events(head.stream_id, desc=True, limit=1)
        stamp = event_data(store.app.mapper, _Stored(head.position, last[0])).timestamp if last else None
        kind, sep, _ = head.stream_id.partition(":")
        rows.append(
            {
                "stream_id": head.stream_id,
                "kind": kind if sep else "",
                "version": head.version,
                "position": head.position,
                "open": head.open,
                "last_event_at": stamp,
            }
        )
    return rows


def streams_command(
    prefix: Annotated[
        str,
        typer.Option(
            "--prefix", metavar="PREFIX", help="Only ids starting with PREFIX (e.g. task:billing:)."
        ),
    ] = "",
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the stored streams with their kind, version, last event time and whether they are open.

    open: the stream's head is not closed, so it still accepts events (only a
    task closes, once its completion is delivered; plugins, plans and states stay
    open, finished or not).
    """
    with open_store(url, read_only=True) as store:
        rows = stream_rows(store, prefix)
    if as_json:
        echo_json(rows)
        return
    table = Table(title=f"{len(rows)} stream(s)" + (f" starting with {prefix!r}" if prefix else ""))
    table.title_justify = "left"
    table.add_column("stream", overflow="fold")
    table.add_column("kind", no_wrap=True)
    table.add_column("ver", justify="right", no_wrap=True)
    table.add_column("last event (UTC)", no_wrap=True)
    table.add_column("open", no_wrap=True)
    for r in rows:
        stamp = (r["last_event_at"] or "")[:23].replace("T", " ")
        table.add_row(r["stream_id"], r["kind"], str(r["version"]), stamp, "yes" if r["open"] else "no")
    console.print(table)
    if rows:  # what the last column means, wrapped to the terminal
        console.print(OPEN_CAPTION, soft_wrap=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add ``streams`` to the ``phaselog`` app."""
    app.command("streams")(streams_command)
