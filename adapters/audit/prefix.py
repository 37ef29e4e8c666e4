"""What verify knows of history moved to archives: the files given, or the tails recorded with them."""

from __future__ import annotations

import hmac
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phaselog.adapters.audit.archive import (
    ArchiveRecord,
    archive_policy,
    read_archive,
    recorded_tails,
    records,
)
from phaselog.adapters.audit.chain import AUDIT_KEY_ENV, GENESIS_DIGEST, audit_key, sign_seal
from phaselog.adapters.audit.reading import Reader
from phaselog.domain.errors import ValidationFailed

__all__ = ["Prefix", "load_prefix"]


@dataclass
class Prefix:
    """Archived history as verify sees it.

    Positions below ``before`` are archived and not checked here; ``tails`` and
    ``global_tail`` are the digests the first live (or first given) events link
    to; ``events`` and ``chain`` are the rows of the archive files given.
    """

    before: int = 0
    tails: dict[str, tuple[int, str]] = field(default_factory=dict)
    global_tail: str = GENESIS_DIGEST
    events: list[tuple[Any, ...]] = field(default_factory=list)
    chain: list[tuple[Any, ...]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (kind, detail): archives, not events
    notes: list[str] = field(default_factory=list)


def load_prefix(read: Reader, paths: Sequence[str | Path]) -> Prefix:
    """The archived prefix of a store: from the archive files given, else from what it recorded."""
    recorded = records(read)
    if not recorded:
        if paths:
            msg = "this store records no archive; verify an archive alone with --archive and no --url"
            raise ValidationFailed(msg)
        return Prefix()
    if not paths:
        last = recorded[-1]
        global_rows = list(
            read(
                f"SELECT value FROM {read.table('phaselog_meta')} WHERE key = {read.param}",
                (f"archive_{last.id}",),
            )
        )
        global_tail = str(global_rows[0][0]) if global_rows else GENESIS_DIGEST
        prefix = Prefix(before=last.before, tails=recorded_tails(read, last.id), global_tail=global_tail)
        _recorded_policy(recorded, prefix)
        return prefix
    files = sorted((read_archive(p) for p in paths), key=lambda a: a.start)
    by_range = {(r.start, r.before): r for r in recorded}
    expected_end = recorded[-1].before
    for earlier, later in itertools.pairwise(files):
        if earlier.before != later.start:
            msg = f"the archives given leave a gap: positions {earlier.before} to {later.start - 1}"
            raise ValidationFailed(msg)
    if files[-1].before != expected_end:
        msg = f"give the archives up to the newest one, which ends before position {expected_end}"
        raise ValidationFailed(msg)
    prefix = Prefix(before=files[0].start, tails=dict(files[0].tails_in), global_tail=files[0].global_in)
    for contents in files:
        record = by_range.get((contents.start, contents.before))
        if record is None or record.digest != contents.digest:
            detail = f"the archive of positions {contents.positions} is not the one this store recorded"
            prefix.problems.append(("archive-mismatch", detail))
        after_signed = any(r.signature is not None for r in recorded if r.before <= contents.start)
        problems, notes = archive_policy(contents, after_signed=after_signed)
        prefix.problems.extend(problems)
        prefix.notes.extend(notes)
        prefix.events.extend(contents.events)
        prefix.chain.extend(contents.chain)
    return prefix


def _recorded_policy(recorded: Sequence[ArchiveRecord], prefix: Prefix) -> None:
    """The key policy over the archives the store recorded (their files not given): signatures only."""
    key = audit_key()
    signed_before = False
    for record in recorded:
        where = f"the archive of positions {record.start}-{record.before - 1}"
        if record.signature is None:
            if signed_before:
                detail = f"{where} is recorded unsigned although an earlier archive is signed"
                prefix.problems.append(("unsigned", detail))
            else:
                prefix.notes.append(f"{where} is unsigned, made before a key was set")
            continue
        signed_before = True
        if key is None:
            prefix.notes.append(
                f"{where} is signed; its signature was NOT checked ({AUDIT_KEY_ENV} is not set)"
            )
        elif not hmac.compare_digest(str(record.signature), sign_seal(record.digest, key)):
            detail = f"{where}: its recorded seal does not match the key: wrong key, or rewritten"
            prefix.problems.append(("bad-signature", detail))
