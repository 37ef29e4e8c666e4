"""Seals: recording them (``seal``), and checking them against the chain and the audit key.

A seal records a digest over every chain digest up to its horizon (the commit
horizon when it was taken), chained to the previous seal, and with
``PHASELOG_AUDIT_KEY`` set an HMAC signature of that digest.

The key policy, for seals as for archives: items made **before the first
signed one** may be unsigned. They are reported as "unsigned, made before a key
was set", not as tampering, and they are still vouched for, through the seal
chain, by the first signed seal after them (its digest covers theirs). Every
seal **after the first signed one must be signed**: an unsigned one is a
problem (``unsigned``), and phaselog itself refuses to record one (a sealer
without the key raises :class:`ValidationFailed` instead). A signature that
does not verify is ``bad-signature``: "does not match the key: wrong key, or
rewritten", told apart as far as the data allows (when no signed seal matches
the key the key is most likely wrong; when others match, this one was
rewritten).
"""

from __future__ import annotations

import bisect
import hmac
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import psycopg

from phaselog.adapters.audit.chain import (
    AUDIT_KEY_ENV,
    GENESIS_DIGEST,
    audit_key,
    head_digests,
    seal_digest,
    sign_seal,
)
from phaselog.adapters.audit.findings import Problem, VerifyReport
from phaselog.adapters.audit.ports import recorder_of
from phaselog.adapters.audit.reading import Reader, snapshot_reader
from phaselog.adapters.errors import translate_errors
from phaselog.adapters.postgres.schema import CHAIN_TABLE, SEALS_TABLE
from phaselog.domain.errors import StoreUnavailable, ValidationFailed

if TYPE_CHECKING:
    from phaselog.adapters.audit.ports import AuditedStore

__all__ = ["Seal", "check_seals", "read_seals", "seal"]


@dataclass(frozen=True)
class Seal:
    """A sealed checkpoint: every chain digest up to ``horizon``, digested and chained.

    ``new`` says whether this call recorded it (False: nothing new was committed
    since, and this is the newest seal already recorded); it takes no part in equality.
    """

    id: int
    horizon: int
    events: int
    digest: str
    signed: bool
    new: bool = field(default=False, compare=False)


def read_seals(read: Reader) -> list[tuple[Seal, str | None]]:
    """Every seal of the store with its signature, oldest first."""
    rows = read(f"SELECT id, horizon, events, digest, signature FROM {read.table(SEALS_TABLE)} ORDER BY id")
    return [
        (
            Seal(int(r[0]), int(r[1]), int(r[2]), str(r[3]), signed=r[4] is not None),
            None if r[4] is None else str(r[4]),
        )
        for r in rows
    ]


# -- sealing ----------------------------------------------------------------------------------------
def seal(store: AuditedStore) -> Seal | None:
    """Record a seal over everything committed up to the commit horizon.

    Returns the new seal (``new`` True); when nothing was committed since the
    last seal, that seal (``new`` False); None on a memory store, or when no
    event is committed yet. Of two sealers racing for the same checkpoint one
    records it; the other returns it. Refuses (:class:`ValidationFailed`) to
    record an unsigned seal after a signed one: set the audit key.
    """
    if store.kind == "memory":
        return None
    recorder = recorder_of(store)
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


def _seal_up_to(store: AuditedStore, horizon: int) -> Seal | None:
    with snapshot_reader(store, write=True) as read:
        seals = read_seals(read)
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
        if count == 0:  # nothing committed since the last seal (only positions that never committed)
            return last
        key = audit_key()
        if key is None and last is not None and last.signed:
            msg = (
                f"not sealing: seal #{last.id} is signed and {AUDIT_KEY_ENV} is not set here "
                "(an unsigned seal after a signed one fails verify): set the audit key"
            )
            raise ValidationFailed(msg)
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
        return replace(Seal(new_id, horizon, count, digest, signed=signature is not None), new=True)


# -- checking ---------------------------------------------------------------------------------------
@dataclass
class _Signatures:
    """The signature verdicts of one pass over the seals."""

    key: bytes | None
    first_signed: int | None = None
    matching: int = 0
    failing: list[tuple[Seal, int]] = field(default_factory=list)  # (seal, first position it covers)

    def check(self, sealed: Seal, signature: str | None, first: int, report: VerifyReport) -> None:
        if signature is None:
            if self.first_signed is None:
                report.unsigned_before_key += 1  # made before a key was set: the policy allows it
                return
            detail = (
                f"seal #{sealed.id} (positions {first}-{sealed.horizon}) has no signature although seal "
                f"#{self.first_signed} before it is signed: sealed without the key, or its signature stripped"
            )
            report.problems.append(Problem(None, "unsigned", "", 0, detail, seal=sealed.id))
            return
        report.signed_seals += 1
        if self.first_signed is None:
            self.first_signed = sealed.id
        if self.key is None:
            return
        if hmac.compare_digest(signature, sign_seal(sealed.digest, self.key)):
            self.matching += 1
        else:
            self.failing.append((sealed, first))

    def report(self, report: VerifyReport) -> None:
        why = (
            "no signed seal matches this key, so most likely it is not the key that signed them"
            if not self.matching
            else f"{self.matching} other signed seal(s) match this key, so this one was most likely rewritten"
        )
        for sealed, first in self.failing:
            detail = (
                f"seal #{sealed.id} (positions {first}-{sealed.horizon}) does not match the key: "
                f"wrong key, or rewritten ({why})"
            )
            report.problems.append(Problem(None, "bad-signature", "", 0, detail, seal=sealed.id))


def check_seals(  # noqa: PLR0913 - the seals, the chain (live and stored), the report, the head
    seals: Sequence[tuple[Seal, str | None]],
    digests: Sequence[tuple[int, str]],
    report: VerifyReport,
    *,
    unchecked_before: int,
    stored: Sequence[tuple[int, str]] = (),
    expect_head: str | None = None,
) -> None:
    """Check the seals against the chain ``digests`` (position, digest; by position) and the key.

    Fills the report's seal fields, its head digest and, given ``expect_head``,
    where that digest is found: at any seal, or at any position (the head
    digest there). A seal over positions below ``unchecked_before`` (archived,
    their files not given) is recomputed from the chain rows the store still
    holds (``stored``: an archive not detached) when they are as many as it
    covered; otherwise it is not recomputed. Every signature is checked.
    """
    key = audit_key()
    report.signatures_checked = key is not None
    signatures = _Signatures(key)
    want = expect_head.strip().lower() if expect_head else None
    report.expected_head = want
    stored_previous = true_previous = GENESIS_DIGEST
    after = index = 0
    kept = [position for position, _ in stored]
    for sealed, signature in seals:
        start = index
        while index < len(digests) and digests[index][0] <= sealed.horizon:
            index += 1
        first = after + 1
        covered = digests[start:index]
        if first < unchecked_before:  # it covers archived positions whose file was not given
            covered = stored[bisect.bisect_right(kept, after) : bisect.bisect_right(kept, sealed.horizon)]
        if first < unchecked_before and len(covered) != sealed.events:  # their chain rows are gone
            report.seals_unchecked += 1
            true_digest = sealed.digest
        else:
            _look_for(want, true_previous, covered, report)
            digest, count = seal_digest(stored_previous, sealed.horizon, (d for _, d in covered))
            if (digest, count) != (sealed.digest, sealed.events):
                detail = (
                    f"seal #{sealed.id} covered {sealed.events} events up to position {sealed.horizon}; "
                    f"the chain now holds {count} there with other digests: rewritten behind phaselog's back"
                )
                report.problems.append(Problem(None, "seal-mismatch", "", 0, detail, seal=sealed.id))
            true_digest = seal_digest(true_previous, sealed.horizon, (d for _, d in covered))[0]
            report.seals += 1
        signatures.check(sealed, signature, first, report)
        if want is not None and want == true_digest:
            report.expected_head_position = sealed.horizon
        stored_previous, true_previous, after = sealed.digest, true_digest, sealed.horizon
        report.sealed_position = sealed.horizon
    signatures.report(report)
    rest = digests[index:]
    _look_for(want, true_previous, rest, report)
    if rest or report.head_position > after:
        report.head_digest = seal_digest(true_previous, report.head_position, (d for _, d in rest))[0]
    else:  # nothing after the newest seal: the head is that seal
        report.head_digest = true_previous
    if want is not None and want == report.head_digest:
        report.expected_head_position = max(report.head_position, after)
    if want is not None and report.expected_head_position is None:
        detail = (
            f"no seal and no position of this history has the expected head digest {want}: what it vouched "
            "for was rewritten (events, chain rows or seals), or the digest comes from another store"
        )
        report.problems.append(Problem(None, "head-mismatch", "", 0, detail))


def _look_for(want: str | None, previous: str, rows: Sequence[tuple[int, str]], report: VerifyReport) -> None:
    """Note where the head digest at a position of ``rows`` equals ``want``."""
    if want is None or report.expected_head_position is not None:
        return
    for position, digest in head_digests(previous, rows):
        if digest == want:
            report.expected_head_position = position
            return
