"""The archive file: its format (gzip JSON lines), writing it, reading it back, and its key policy.

A file holds a header (the segment's range, the previous archive's seal, the
digests the segment's first events link to), one line per event and per chain
row, and a footer with the **archive seal** (a digest over the segment's chain
digests, chained to the previous archive's seal) and, with
``PHASELOG_AUDIT_KEY`` set, its HMAC signature.

The key policy is the seals' (:mod:`phaselog.adapters.audit.seals`): an archive made
before the first signed archive may be unsigned ("unsigned, made before a key
was set": a note, not a problem); every archive after a signed one must be
signed; a signature that does not verify "does not match the key: wrong key,
or rewritten".
"""

from __future__ import annotations

import base64
import gzip
import hmac
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from phaselog.adapters.audit.chain import AUDIT_KEY_ENV, audit_key, seal_digest, sign_seal
from phaselog.domain.encoding import dump_json, load_json
from phaselog.domain.errors import PhaselogError, ValidationFailed

__all__ = ["ARCHIVE_FORMAT", "Archive", "archive_policy", "read_archive", "read_back", "write_archive"]

ARCHIVE_FORMAT = "phaselog-archive/1"


@dataclass
class Archive:
    """An archive file's contents: events and chain rows of positions ``start`` to ``before - 1``."""

    start: int
    before: int
    previous: str  # the previous archive's seal digest (genesis for the first)
    tails_in: dict[str, tuple[int, str]]  # streams' last chain digest before ``start``
    global_in: str  # the global chain's digest before ``start`` (chain rows of schema version 1)
    events: list[tuple[Any, ...]] = field(default_factory=list)  # (position, stream, version, topic, state)
    chain: list[tuple[Any, ...]] = field(default_factory=list)  # (position, stream, version, digest, link)
    digest: str = ""
    signature: str | None = None

    def seal(self) -> str:
        """Recompute the archive seal from the chain rows."""
        return seal_digest(self.previous, self.before - 1, (str(row[3]) for row in self.chain))[0]

    def tails_out(self) -> tuple[dict[str, tuple[int, str]], str]:
        """Streams' last chain digest below ``before``, and the global chain's, after this archive."""
        tails = dict(self.tails_in)
        global_out = self.global_in
        for _, sid, version, digest, link in self.chain:
            tails[str(sid)] = (int(version), str(digest))
            if link is None:
                global_out = str(digest)
        return tails, global_out

    @property
    def positions(self) -> str:
        """The positions it holds, for messages: ``start-end``."""
        return f"{self.start}-{self.before - 1}"


def write_archive(target: Path, contents: Archive) -> None:
    """Write ``contents`` to ``target`` as a gzip JSON-lines archive file."""
    header = {
        "format": ARCHIVE_FORMAT,
        "start": contents.start,
        "before": contents.before,
        "previous": contents.previous,
        "global_in": contents.global_in,
        "tails_in": {sid: list(tail) for sid, tail in contents.tails_in.items()},
        "created": datetime.now(UTC).isoformat(),
    }
    with gzip.open(target, "wb") as out:
        out.write(dump_json({"header": header}) + b"\n")
        for position, sid, version, topic, state in contents.events:
            line = {"event": [position, sid, version, topic, base64.b64encode(state).decode()]}
            out.write(dump_json(line) + b"\n")
        for row in contents.chain:
            out.write(dump_json({"chain": list(row)}) + b"\n")
        footer = {"events": len(contents.events), "digest": contents.digest, "signature": contents.signature}
        out.write(dump_json({"footer": footer}) + b"\n")


def read_archive(path: str | Path, data: bytes | None = None) -> Archive:
    """Read an archive file (``data``: its bytes, when read already); ValidationFailed when it is not one."""
    try:
        with (
            gzip.open(Path(path), "rb") if data is None else gzip.GzipFile(fileobj=io.BytesIO(data)) as handle
        ):
            lines: Iterator[Any] = (load_json(line) for line in handle if line.strip())
            first = next(lines, None)
            if not isinstance(first, dict) or first.get("header", {}).get("format") != ARCHIVE_FORMAT:
                msg = f"{path} is not a phaselog archive"
                raise ValidationFailed(msg)
            head = first["header"]
            tails = {str(k): (int(v[0]), str(v[1])) for k, v in head["tails_in"].items()}
            found = Archive(
                int(head["start"]), int(head["before"]), str(head["previous"]), tails, head["global_in"]
            )
            for line in lines:
                if "event" in line:
                    p, sid, version, topic, state = line["event"]
                    found.events.append((int(p), str(sid), int(version), str(topic), base64.b64decode(state)))
                elif "chain" in line:
                    found.chain.append(tuple(line["chain"]))
                elif "footer" in line:
                    found.digest, found.signature = str(line["footer"]["digest"]), line["footer"]["signature"]
    except (OSError, EOFError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, PhaselogError):
            raise
        msg = f"cannot read the archive {path}: {exc}"
        raise ValidationFailed(msg) from exc
    return found


def read_back(target: Path, written: Archive) -> list[str]:
    """What differs between the file at ``target`` and the ``written`` contents (empty: identical)."""
    try:
        found = read_archive(target)
    except ValidationFailed as exc:
        return [str(exc)]
    differences = [problem for _, problem in archive_policy(found, after_signed=False)[0]]
    differences.extend(
        f"its {name} reads back differently"
        for name in ("start", "before", "previous", "tails_in", "global_in", "digest", "signature")
        if getattr(found, name) != getattr(written, name)
    )
    for name in ("events", "chain"):
        ours, theirs = getattr(written, name), getattr(found, name)
        if ours != theirs:
            at = next((a[0] for a, b in zip(ours, theirs, strict=False) if a != b), None)
            where = f" (first at position {at})" if at is not None else f" ({len(theirs)} of {len(ours)})"
            differences.append(f"its {name} read back differently{where}")
    return differences


def archive_policy(contents: Archive, *, after_signed: bool) -> tuple[list[tuple[str, str]], list[str]]:
    """The problems ``(kind, detail)`` of an archive's own seal and signature, and the notes on it.

    ``after_signed``: an earlier archive of the same store is signed, so this one must be too.
    """
    problems: list[tuple[str, str]] = []
    notes: list[str] = []
    where = f"the archive of positions {contents.positions}"
    if contents.seal() != contents.digest:
        problems.append(("seal-mismatch", f"{where}: its chain rows do not match its seal"))
    key = audit_key()
    if contents.signature is None:
        if after_signed:
            detail = (
                f"{where} is not signed although an earlier archive is: archived without the key, or stripped"
            )
            problems.append(("unsigned", detail))
        else:
            notes.append(f"{where} is unsigned, made before a key was set: nothing vouches for who wrote it")
    elif key is None:
        notes.append(f"{where} is signed; its signature was NOT checked ({AUDIT_KEY_ENV} is not set)")
    elif not hmac.compare_digest(str(contents.signature), sign_seal(contents.digest, key)):
        problems.append(
            ("bad-signature", f"{where}: its seal does not match the key: wrong key, or rewritten")
        )
    return problems, notes
