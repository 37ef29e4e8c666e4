"""Waking followers after commits, never from inside them.

A NOTIFY inside an append's transaction would take PostgreSQL's global
notification-queue lock at pre-commit and hold it through the WAL flush, so no
two commits could share a flush. Instead each store has one :class:`Notifier`:
an append that committed *pokes* it (no I/O, never waits) and its thread sends
one NOTIFY on the events channel, from a connection of its own with
``synchronous_commit = off`` (a notification needs no durability). Pokes that
arrive while it sends, or within :data:`MIN_INTERVAL` after it sent, are
coalesced into one more NOTIFY, so the last commit is always followed by a
notification, a store sends at most one per interval however fast it commits
(each NOTIFY is a commit of its own that takes the notification queue's global
lock), and a follower is woken at most that much later. Followers read below the commit horizon
whatever woke them, and poll as a fallback (a lost NOTIFY only delays them).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.sql import SQL, Identifier

__all__ = ["MIN_INTERVAL", "Notifier"]

MIN_INTERVAL = 0.02
"""Seconds between two notifications of one store: commits within it share one NOTIFY.

A lone commit is notified at once; only a burst waits, at most this long. Each
NOTIFY costs a small transaction on both sides and takes the queue's global lock,
and a fleet sends one per interval per store: at 5 ms, 8 writer processes spent
about 15 % of their throughput on notifications (``docs/scale.md``).
"""

log = logging.getLogger("phaselog.store")


class Notifier:
    """One NOTIFY on ``channel`` after each burst of commits, sent by a thread of its own."""

    def __init__(
        self, connect: Callable[[], psycopg.Connection[Any]], channel: str, *, interval: float = MIN_INTERVAL
    ) -> None:
        self._connect = connect
        self._interval = interval
        self._statement = SQL("NOTIFY {}").format(Identifier(channel))
        self._poked = threading.Event()
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._due = False
        self.sent = 0  # notifications sent (for tests and telemetry)

    def poke(self) -> None:
        """Ask for a NOTIFY after a commit: returns at once, whatever the server does."""
        if self._closed:
            return
        if self._thread is None:
            with self._start:
                if self._thread is None and not self._closed:
                    self._thread = threading.Thread(target=self._run, name="phaselog-notifier", daemon=True)
                    self._thread.start()
        self._due = True
        if not self._poked.is_set():  # setting a set event still takes its lock and wakes nobody
            self._poked.set()

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while True:
            self._poked.wait()
            self._poked.clear()
            if self._due:
                self._due = False
                conn = self._send(conn)
            if self._closed:
                break
            time.sleep(self._interval)  # pokes meanwhile set the event: one NOTIFY after the pause
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _send(self, conn: psycopg.Connection[Any] | None) -> psycopg.Connection[Any] | None:
        """One NOTIFY; answer the connection to send the next one on (None: it broke)."""
        try:
            if conn is None or conn.closed or conn.broken:
                conn = self._connect()
                conn.execute("SET synchronous_commit = off")
            conn.execute(self._statement)
            self.sent += 1
        except Exception as exc:  # never kill the thread: followers poll meanwhile
            log.debug("could not notify followers: %s", exc)
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
            return None
        return conn

    def close(self) -> None:
        """Stop the thread (a poke already taken is sent first) and close its connection."""
        self._closed = True
        self._poked.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
