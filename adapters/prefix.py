"""What verify knows of history moved to archives: the files given, or the tails recorded with them."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phaselog.adapters.archive import check_archive, read_archive, recorded_tails, records
from phaselog.adapters.chain import GENESIS_DIGEST
from phaselog.adapters.reading import Reader
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
    problems: list[tuple[int, str, str]] = field(default_factory=list)  # (position, kind, detail)


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
        return Prefix(before=last.before, tails=recorded_tails(read, last.id), global_tail=global_tail)
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
            where = f"{contents.start}-{contents.before - 1}"
            detail = f"the archive of positions {where} is not the one this store recorded"
            prefix.problems.append((contents.start, "archive-mismatch", detail))
        prefix.problems.extend((contents.start, "unsealed", f"archive: {p}") for p in check_archive(contents))
        prefix.events.extend(contents.events)
        prefix.chain.extend(contents.chain)
    return prefix
