"""Tamper evidence: ``verify`` the stored history against its chains and seals, and ``seal`` it.

``verify`` walks every stored event and every chain row in position order and
names each position where an event was **changed** (its stream, version, topic
or state no longer matches its chain row), **removed** (a chain row without its
event), **inserted** (an event without a chain row) or **reordered** (an event
found at another position than the one its chain row records). Chain rows
written by the wave-1 recorder (``link`` NULL) are checked against the global
chain they form; newer ones against the previous digest of their own stream.

A rewrite of events *and* chain rows together passes those checks; seals catch
it: each seal records a digest over every chain digest up to its horizon,
chained to the previous seal, and with ``PHASELOG_AUDIT_KEY`` set it is
HMAC-signed, so a forged seal shows as a bad signature.
"""

from __future__ import annotations

import heapq
import hmac
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from phaselog.adapters.archive import check_archive, read_archive
from phaselog.adapters.chain import GENESIS_DIGEST, audit_key, chain_digest, seal_digest, sign_seal
from phaselog.adapters.errors import translate_errors
from phaselog.adapters.postgres.schema import CHAIN_TABLE, SEALS_TABLE
from phaselog.adapters.prefix import load_prefix
from phaselog.adapters.reading import Reader, snapshot_reader
from phaselog.domain.errors import StoreUnavailable

if TYPE_CHECKING:
    from phaselog.adapters.store import Store

__all__ = ["Problem", "Seal", "VerifyReport", "check_rows", "seal", "verify", "verify_archive"]


@dataclass(frozen=True)
class Problem:
    """One place where the stored history differs from its chain or its seals."""

    position: int
    kind: str  # "changed" | "removed" | "inserted" | "reordered" | "unsealed" | "bad-signature" | "unsigned"
    stream_id: str
    version: int
    detail: str


@dataclass(frozen=True)
class Seal:
    """A sealed checkpoint: every chain digest up to ``horizon``, digested and chained."""

    id: int
    horizon: int
    events: int
    digest: str
    signed: bool


@dataclass
class VerifyReport:
    """The outcome of :func:`verify`."""

    supported: bool
    checked: int = 0
    head_position: int = 0
    head_digest: str = GENESIS_DIGEST
    seals: int = 0
    seals_unchecked: int = 0
    sealed_position: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every stored event matches its chain row and every seal matches."""
        return self.supported and not self.problems

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {**asdict(self), "ok": self.ok}


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


def _seals(read: Reader) -> list[tuple[Seal, str | None]]:
    rows = read(f"SELECT id, horizon, events, digest, signature FROM {read.table(SEALS_TABLE)} ORDER BY id")
    return [
        (
            Seal(int(r[0]), int(r[1]), int(r[2]), str(r[3]), signed=r[4] is not None),
            None if r[4] is None else str(r[4]),
        )
        for r in rows
    ]


# -- sealing ----------------------------------------------------------------------------------------
def seal(store: Store) -> Seal | None:
    """Record a seal over everything committed up to the commit horizon; None on a memory store.

    Sealing with nothing new since the last seal returns the last seal. Of two
    sealers racing for the same checkpoint one records it; the other returns it.
    """
    if store.kind == "memory":
        return None
    recorder: Any = store.app.recorder
    for _ in range(5):
        with translate_errors("sealing the history"):
            horizon = int(recorder.horizon_position())
            try:
                return _seal_up_to(store, horizon)
            except _LostRace:
                continue
    msg = "sealing kept racing with other sealers"  # pragma: no cover - five lost races in a row
    raise StoreUnavailable(msg)


class _LostRace(Exception):
    """Another sealer recorded the same checkpoint first."""


def _seal_up_to(store: Store, horizon: int) -> Seal:
    with snapshot_reader(store, write=True) as read:
        seals = _seals(read)
        last = seals[-1][0] if seals else None
        if last is not None and last.horizon >= horizon:
            return last
        after = last.horizon if last is not None else 0
        rows = read(
            f"SELECT digest FROM {read.table(CHAIN_TABLE)} "
            f"WHERE position > {read.param} AND position <= {read.param} "
            "ORDER BY position",
            (after, horizon),
        )
        digest, count = seal_digest(
            last.digest if last else GENESIS_DIGEST, horizon, (str(r[0]) for r in rows)
        )
        key = audit_key()
        signature = sign_seal(digest, key) if key is not None else None
        new_id = (last.id if last is not None else 0) + 1
        p = read.param
        try:
            read.write(
                f"INSERT INTO {read.table(SEALS_TABLE)} (id, horizon, events, digest, signature) "
                f"VALUES ({p}, {p}, {p}, {p}, {p})",
                (new_id, horizon, count, digest, signature),
            )
        except (psycopg.errors.UniqueViolation, sqlite3.IntegrityError) as exc:
            raise _LostRace from exc
        return Seal(new_id, horizon, count, digest, signed=signature is not None)


# -- verifying --------------------------------------------------------------------------------------
def verify(store: Store, *, archives: Sequence[str | Path] = ()) -> VerifyReport:
    """Check every stored event against its chain row, and the chain against the seals.

    Events, chain rows and seals are read in ONE read-only snapshot, so appends
    running meanwhile can never look like removed or inserted events. History
    moved to archives is checked when their files are given (``archives``, the
    consecutive files up to the newest archive); otherwise the live chain is
    checked against the per-stream tails recorded with the newest archive.
    """
    if store.kind == "memory":
        return VerifyReport(supported=False)
    with translate_errors("verifying the history"), snapshot_reader(store) as read:
        chain = _chain(read)
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
        report.problems.extend(Problem(p, kind, "", 0, detail) for p, kind, detail in prefix.problems)
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
        _check_seals(_seals(read), chain, report, unchecked_before=prefix.before)
    report.problems.sort(key=lambda p: p.position)
    return report


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


def _check_seals(
    seals: list[tuple[Seal, str | None]],
    chain: dict[int, _Link],
    report: VerifyReport,
    *,
    unchecked_before: int,
) -> None:
    key = audit_key()
    positions = sorted(chain)
    previous, after, index = GENESIS_DIGEST, 0, 0
    for sealed, signature in seals:
        covered: list[str] = []
        while index < len(positions) and positions[index] <= sealed.horizon:
            covered.append(chain[positions[index]].digest)
            index += 1
        if after + 1 < unchecked_before:  # it covers archived positions whose file was not given
            previous, after = sealed.digest, sealed.horizon
            report.seals_unchecked += 1
            continue
        digest, count = seal_digest(previous, sealed.horizon, covered)
        first = after + 1
        if (digest, count) != (sealed.digest, sealed.events):
            detail = (
                f"seal #{sealed.id} covered {sealed.events} events up to {sealed.horizon}; "
                f"the chain now holds {count} there with other digests: rewritten behind phaselog's back"
            )
            report.problems.append(Problem(first, "unsealed", "", 0, detail))
        if key is not None:
            if signature is None:
                report.problems.append(
                    Problem(
                        first,
                        "unsigned",
                        "",
                        0,
                        f"seal #{sealed.id} has no signature but an audit key is set",
                    )
                )
            elif not hmac.compare_digest(signature, sign_seal(sealed.digest, key)):
                detail = f"seal #{sealed.id} is not signed by the audit key: the seals were rewritten"
                report.problems.append(Problem(first, "bad-signature", "", 0, detail))
        previous, after = sealed.digest, sealed.horizon
        report.seals += 1
        report.sealed_position = sealed.horizon
    rest = [chain[p].digest for p in positions[index:]]
    report.head_digest = seal_digest(previous, report.head_position, rest)[0]


def verify_archive(path: str | Path) -> VerifyReport:
    """Check one archive file alone: its events against its chain rows, and its seal."""
    contents = read_archive(path)
    chain = {int(r[0]): _Link(str(r[1]), int(r[2]), str(r[3]), r[4]) for r in contents.chain}
    found_at = {(str(r[1]), int(r[2])): int(r[0]) for r in contents.events}
    report = VerifyReport(supported=True, checked=len(found_at), head_position=contents.before - 1)
    report.problems.extend(
        Problem(contents.start, "unsealed", "", 0, f"archive: {p}") for p in check_archive(contents)
    )
    report.problems.extend(
        check_rows(chain, found_at, iter(contents.events), contents.tails_in, contents.global_in)
    )
    report.head_digest = contents.digest
    report.problems.sort(key=lambda p: p.position)
    return report
