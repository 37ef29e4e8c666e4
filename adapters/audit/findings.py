"""What ``verify`` found: its problems, its report, and the sentences the CLI and the console print.

A :class:`Problem` names an **event position** only when it is about an event
(``changed``, ``removed``, ``inserted``, ``reordered``); a problem of a seal
(``seal-mismatch``, ``bad-signature``, ``unsigned``, with its ``seal`` number),
of an archive (``archive-mismatch`` and the same seal kinds, the archive named
in ``detail``) or of the expected head (``head-mismatch``) has ``position``
None. The report says, beside the problems, what an auditor needs to sign it:
how far seals vouch (``sealed_position``), what only its own chain vouches for
(the unsealed tail: ``unsealed_events``, ``unsealed_since``), and whether seal
signatures were checked at all (``signatures_checked``: the audit key was set).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from phaselog.adapters.audit.chain import AUDIT_KEY_ENV, GENESIS_DIGEST

__all__ = ["EVENT_KINDS", "Problem", "VerifyReport", "describe", "seconds"]

EVENT_KINDS = frozenset({"changed", "removed", "inserted", "reordered"})
"""The kinds of problem that name an event position."""


@dataclass(frozen=True)
class Problem:
    """One place where the stored history differs from its chain, its seals or the expected head."""

    position: int | None  # the event's position; None for a problem of a seal, an archive or the head
    kind: str  # an event kind (EVENT_KINDS), or a seal, archive or head kind (see the module docs)
    stream_id: str
    version: int
    detail: str
    seal: int | None = None  # the number of the seal a seal problem is about

    def sort_key(self) -> tuple[int, int, int]:
        """Event problems by position first, then seal problems by seal number, then the rest."""
        if self.position is not None:
            return (0, self.position, 0)
        return (1, self.seal, 0) if self.seal is not None else (2, 0, 0)


@dataclass
class VerifyReport:
    """The outcome of :func:`~phaselog.adapters.audit.integrity.verify`."""

    supported: bool
    checked: int = 0
    head_position: int = 0
    head_digest: str = GENESIS_DIGEST
    seals: int = 0
    """Seals whose digest was recomputed from the chain."""
    seals_unchecked: int = 0
    """Seals over archived positions whose archive files were not given: not recomputed."""
    sealed_position: int = 0
    """The newest seal's horizon: seals vouch for every position up to it."""
    unsealed_events: int = 0
    """Events after ``sealed_position``: only their own chain vouches for them."""
    unsealed_since: str | None = None
    """The time of the oldest unsealed event (ISO 8601)."""
    unsealed_age_seconds: float | None = None
    signatures_checked: bool = False
    """True when the audit key was set, so every seal signature was checked against it."""
    signed_seals: int = 0
    unsigned_before_key: int = 0
    """Unsigned seals made before the first signed one: not tampering, but vouched for by no key."""
    expected_head: str | None = None
    expected_head_position: int | None = None
    """Where the expected head digest was found (None: not asked, or not found)."""
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What is not a problem but limits what the report vouches for (unsigned archives, ...)."""

    @property
    def ok(self) -> bool:
        """True when every stored event matches its chain row and every seal matches."""
        return self.supported and not self.problems

    @property
    def first_tampered_position(self) -> int | None:
        """The lowest event position a problem names (None when only seals, archives or the head are)."""
        return min((p.position for p in self.problems if p.position is not None), default=None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            **asdict(self),
            "ok": self.ok,
            "first_tampered_position": self.first_tampered_position,
            "summary": describe(self),
        }


def seconds(value: float) -> str:
    """A duration for people: ``4.2 s``, ``3 min``, ``5.1 h``, ``2.0 days``."""
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{value / 60:.0f} min"
    if value < 86400:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} days"


def describe(report: VerifyReport) -> list[str]:
    """What the report vouches for, in sentences: sealed range, unsealed tail, signatures, head."""
    if not report.supported:
        return ["the memory store keeps no hash chain: nothing was verified"]
    lines: list[str] = []
    sealed = report.seals + report.seals_unchecked
    if sealed:
        lines.append(f"sealed up to position {report.sealed_position} by {sealed} seal(s)")
    else:
        lines.append("never sealed: run `phaselog audit seal`, or let a writing store seal on its own")
    if report.seals_unchecked:
        lines.append(
            f"{report.seals_unchecked} seal(s) over archived positions not recomputed "
            "(give the archive files with --archive to check them)"
        )
    if report.unsealed_events:
        age = (
            ""
            if report.unsealed_age_seconds is None
            else f", the oldest {seconds(report.unsealed_age_seconds)} old"
        )
        lines.append(
            f"unsealed tail: {report.unsealed_events} event(s) after position {report.sealed_position}{age}; "
            "only their own chain vouches for them"
        )
    else:
        lines.append("no unsealed tail")
    lines.append(_signatures(report))
    if report.expected_head is not None and report.expected_head_position is not None:
        lines.append(
            f"the expected head {report.expected_head} matches the history up to position "
            f"{report.expected_head_position}"
        )
    lines.extend(report.notes)
    return lines


def _signatures(report: VerifyReport) -> str:
    before = (
        f"; {report.unsigned_before_key} unsigned seal(s) made before a key was set"
        if report.unsigned_before_key and report.signed_seals
        else ""
    )
    if not report.signatures_checked:
        if report.signed_seals:
            return (
                f"signatures NOT checked: {AUDIT_KEY_ENV} is not set, so {report.signed_seals} signed "
                f"seal(s) were checked as digests only{before}"
            )
        return f"no seal is signed (set {AUDIT_KEY_ENV} where the store seals to sign them)"
    if not report.signed_seals:
        if report.unsigned_before_key:
            return (
                f"signatures checked, but no seal is signed: {report.unsigned_before_key} unsigned seal(s), "
                "made before a key was set"
            )
        return "signatures checked: no seal to check"
    bad = sum(1 for p in report.problems if p.kind == "bad-signature" and p.seal is not None)
    matching = f"{report.signed_seals - bad} of {report.signed_seals} signed seal(s) match the key"
    return f"signatures checked with {AUDIT_KEY_ENV}: {matching}{before}"
