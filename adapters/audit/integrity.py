"""Tamper evidence: ``verify`` the stored history against its chains and seals.

``verify`` walks every stored event and every chain row in position order and
names each position where an event was **changed** (its stream, version, topic
or state no longer matches its chain row), **removed** (a chain row without its
event), **inserted** (an event without a chain row) or **reordered** (an event
found at another position than the one its chain row records: named where it
now sits and where the chain records it). Chain rows of schema version 1
(``link`` NULL) are checked against the global chain they form; newer ones
against the previous digest of their own stream.

A rewrite of events *and* chain rows together passes those checks; seals catch
it (:mod:`phaselog.adapters.audit.seals`), up to the newest seal. What was committed
after it is the **unsealed tail**: the report says how many events and how old
the oldest is, and a head digest published outside the database
(``expect_head``) catches a rewrite of the tail, or of the seals, too.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phaselog.adapters.audit.archive import archive_policy, read_archive
from phaselog.adapters.audit.chain import GENESIS_DIGEST, audit_key, chain_digest
from phaselog.adapters.audit.findings import Problem, VerifyReport
from phaselog.adapters.audit.prefix import load_prefix
from phaselog.adapters.audit.reading import Reader, snapshot_reader
from phaselog.adapters.audit.seals import Seal, check_seals, read_seals, seal
from phaselog.adapters.errors import translate_errors
from phaselog.adapters.postgres.schema import CHAIN_TABLE
from phaselog.projections.base import EventDecoder
from phaselog.runtime.ports import LogRecord

if TYPE_CHECKING:
    from phaselog.adapters.audit.ports import AuditedStore

__all__ = ["Problem", "Seal", "VerifyReport", "check_rows", "seal", "verify", "verify_archive"]


@dataclass(frozen=True)
class _Link:
    stream_id: str
    version: int
    digest: str
    link: int | None


# -- reading the integrity tables ---------------------------------------------------------------
def _chain(read: Reader) -> dict[int, _Link]:
    rows = read(
        "SELECT position, originator_id, originator_version, digest, link "
        f"FROM {read.table(CHAIN_TABLE)} ORDER BY position"
    )
    return {
        int(r[0]): _Link(str(r[1]), int(r[2]), str(r[3]), None if r[4] is None else int(r[4])) for r in rows
    }


# -- verifying --------------------------------------------------------------------------------------
def verify(
    store: AuditedStore, *, archives: Sequence[str | Path] = (), expect_head: str | None = None
) -> VerifyReport:
    """Check every stored event against its chain row, and the chain against the seals.

    Events, chain rows and seals are read in ONE read-only snapshot, so appends
    running meanwhile can never look like removed or inserted events. History
    moved to archives is checked when their files are given (``archives``, the
    consecutive files up to the newest archive); otherwise the live chain is
    checked against the per-stream tails recorded with the newest archive.
    ``expect_head``, a head digest published earlier (``audit seal --print``),
    must be the digest of some seal or position of this history.
    """
    if store.kind == "memory":
        return VerifyReport(supported=False)
    tier = getattr(store, "archives", None)
    if (
        not archives and tier is not None and tier.live_start() > 1
    ):  # detached history: check it from its files
        archives = tier.paths()
    with translate_errors("verifying the history"), snapshot_reader(store) as read:
        chain = _chain(read)
        stored_chain = [(p, link.digest) for p, link in sorted(chain.items())]
        found_at = {(sid, version): int(p) for p, sid, version in read(_events_sql(read, states=False))}
        prefix = load_prefix(read, archives)
        live = set(found_at.values())
        given = bool(prefix.chain)
        for position in [p for p in chain if p < prefix.before and (not given or p not in live)]:
            del chain[position]  # archived: checked only with the archive file
        if not given:  # events still stored below the archive's end are checked with its file only
            found_at = {key: p for key, p in found_at.items() if p >= prefix.before}
        for row in prefix.chain:
            chain.setdefault(int(row[0]), _Link(str(row[1]), int(row[2]), str(row[3]), row[4]))
        extra = [row for row in prefix.events if int(row[0]) not in live]
        found_at.update({(str(r[1]), int(r[2])): int(r[0]) for r in extra})
        report = VerifyReport(
            supported=True, checked=len(found_at), head_position=max(found_at.values(), default=0)
        )
        report.problems.extend(Problem(None, kind, "", 0, detail) for kind, detail in prefix.problems)
        report.notes.extend(prefix.notes)
        if given:  # the archive files' own rows, also where the store still holds them
            own = {int(r[0]): _Link(str(r[1]), int(r[2]), str(r[3]), r[4]) for r in prefix.chain}
            own_found = {(str(r[1]), int(r[2])): int(r[0]) for r in prefix.events}
            rows = check_rows(own, own_found, iter(prefix.events), prefix.tails, prefix.global_tail)
            report.problems.extend(p for p in rows if p.position in live)
        stored = (
            row for row in read(_events_sql(read, states=True)) if given or int(row[0]) >= prefix.before
        )
        notes = heapq.merge(extra, stored, key=lambda row: int(row[0]))
        report.problems.extend(check_rows(chain, found_at, notes, prefix.tails, prefix.global_tail))
        digests = [(p, chain[p].digest) for p in sorted(chain)]
        check_seals(
            read_seals(read),
            digests,
            report,
            unchecked_before=prefix.before,
            stored=stored_chain,
            expect_head=expect_head,
        )
        _unsealed_tail(store, read, report, found_at.values())
    report.problems.sort(key=Problem.sort_key)
    return report


def _unsealed_tail(store: AuditedStore, read: Reader, report: VerifyReport, positions: Any) -> None:
    """How many events follow the newest seal, and how old the oldest of them is."""
    after = report.sealed_position
    report.unsealed_events = sum(1 for p in positions if p > after)
    if not report.unsealed_events:
        return
    rows = list(
        read(
            f"SELECT {read.position}, originator_id, originator_version, topic, state "
            f"FROM {read.table(read.events)} WHERE {read.position} > {read.param} "
            f"ORDER BY {read.position} LIMIT 1",
            (after,),
        )
    )
    if not rows:  # the oldest unsealed event is in an archive file
        return
    r = rows[0]
    try:
        stamp = EventDecoder(store.app.mapper)(LogRecord(int(r[0]), str(r[1]), int(r[2]), str(r[3]), r[4]))
        when = datetime.fromisoformat(str(stamp.timestamp))
    except Exception:  # an event whose time cannot be read (verify reports it changed): no age
        return
    when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    report.unsealed_since = when.isoformat()
    report.unsealed_age_seconds = max(0.0, time.time() - when.timestamp())


def check_rows(
    chain: dict[int, _Link],
    found_at: dict[tuple[str, int], int],
    notes: Iterator[tuple[Any, ...]],
    tails: dict[str, tuple[int, str]],
    global_tail: str,
) -> list[Problem]:
    """Every problem of the chain rows and events, given the digests that precede them."""
    problems: list[Problem] = []
    where = {(c.stream_id, c.version): p for p, c in chain.items()}
    previous_global = global_tail
    note = next(notes, None)
    for position in sorted(set(chain) | set(found_at.values())):
        link = chain.get(position)
        here = note if note is not None and int(note[0]) == position else None
        if here is not None:
            note = next(notes, None)
        expected_previous = ""
        if link is not None and link.link is None:
            expected_previous, previous_global = previous_global, link.digest
        elif link is not None:
            before = where.get((link.stream_id, link.version - 1))
            tail = tails.get(link.stream_id)
            if before is not None:
                expected_previous = chain[before].digest
            elif tail is not None and tail[0] == link.version - 1:
                expected_previous = tail[1]  # its previous event is archived
            else:
                expected_previous = GENESIS_DIGEST
        problem = _check(position, link, here, expected_previous, where, found_at)
        if problem is not None:
            problems.append(problem)
    return problems


def _events_sql(read: Reader, *, states: bool) -> str:
    extra = ", topic, state" if states else ""
    return (
        f"SELECT {read.position}, originator_id, originator_version{extra} "
        f"FROM {read.table(read.events)} ORDER BY {read.position}"
    )


def _retyped(position: int, link: _Link | None, note: tuple[Any, ...] | None) -> Problem | None:
    """A stored value of another type than phaselog wrote (SQLite columns take anything): changed."""
    if note is None:
        return None
    version = link.version if link is not None else 0
    if not isinstance(note[2], int):
        detail = f"stored version is {type(note[2]).__name__} {note[2]!r}, not an integer"
        return Problem(position, "changed", str(note[1]), version, detail)
    if len(note) > 4 and not isinstance(note[4], bytes | bytearray | memoryview):
        detail = f"stored state is {type(note[4]).__name__}, not the bytes phaselog wrote"
        return Problem(position, "changed", str(note[1]), version, detail)
    return None


def _check(  # noqa: PLR0911, PLR0913, PLR0917 - one verdict per kind of difference, from one row pair
    position: int,
    link: _Link | None,
    note: tuple[Any, ...] | None,
    expected_previous: str,
    where: dict[tuple[str, int], int],
    found_at: dict[tuple[str, int], int],
) -> Problem | None:
    retyped = _retyped(position, link, note)
    if retyped is not None:
        return retyped
    if link is None:
        if note is None:  # pragma: no cover - a position comes from a chain row or an event
            return None
        sid, version = str(note[1]), int(note[2])
        if (sid, version) in where:
            return Problem(
                position, "reordered", sid, version, f"the chain records this event at {where[sid, version]}"
            )
        return Problem(
            position, "inserted", sid, version, "stored event has no chain record: written outside phaselog"
        )
    if note is None:
        moved = found_at.get((link.stream_id, link.version))
        if moved is not None:
            return Problem(
                position, "reordered", link.stream_id, link.version, f"this event now sits at {moved}"
            )
        return Problem(
            position, "removed", link.stream_id, link.version, "the chain records an event here; it is gone"
        )
    sid, version = str(note[1]), int(note[2])
    if (sid, version) != (link.stream_id, link.version):
        if (sid, version) in where:
            return Problem(
                position, "reordered", sid, version, f"the chain records this event at {where[sid, version]}"
            )
        detail = f"the chain records {link.stream_id}@{link.version} at this position"
        return Problem(position, "changed", sid, version, detail)
    actual = chain_digest(expected_previous, position, sid, version, str(note[3]), bytes(note[4]))
    if actual != link.digest:
        return Problem(position, "changed", sid, version, "topic or state differs from what was recorded")
    return None


def verify_archive(path: str | Path) -> VerifyReport:
    """Check one archive file alone: its events against its chain rows, and its seal.

    The file alone cannot tell whether an earlier archive was signed: an unsigned
    one is a note ("made before a key was set"), its origin vouched for by nothing.
    """
    contents = read_archive(path)
    chain = {int(r[0]): _Link(str(r[1]), int(r[2]), str(r[3]), r[4]) for r in contents.chain}
    found_at = {(str(r[1]), int(r[2])): int(r[0]) for r in contents.events}
    report = VerifyReport(supported=True, checked=len(found_at), head_position=contents.before - 1)
    report.seals, report.sealed_position = 1, contents.before - 1
    report.signatures_checked = audit_key() is not None
    report.signed_seals = int(contents.signature is not None)
    report.unsigned_before_key = int(contents.signature is None)
    problems, notes = archive_policy(contents, after_signed=False)
    report.problems.extend(Problem(None, kind, "", 0, detail) for kind, detail in problems)
    report.notes.extend(notes)
    report.problems.extend(
        check_rows(chain, found_at, iter(contents.events), contents.tails_in, contents.global_in)
    )
    report.head_digest = contents.digest
    report.problems.sort(key=Problem.sort_key)
    return report
