"""The pydantic + orjson codec, plugged into eventsourcing's Mapper and Transcoder.

:data:`MAX_EVENT_BYTES` bounds the encoded payload of one event or snapshot
(both go through :class:`PydanticMapper`): a larger one raises
:class:`PayloadTooLarge` before any I/O, so nothing is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import Cipher, Compressor, Mapper, StoredEvent, Transcoder
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from phaselog.adapters.crypto.envelope import MARK_BYTES, reveal, seal_paths
from phaselog.domain.encoding import dump_json, load_json
from phaselog.domain.errors import KeyUnavailable, PayloadTooLarge, PhaselogError, ValidationFailed
from phaselog.domain.events import DomainEvent, Snapshot, resolve_topic, topic_of, upcast
from phaselog.domain.personal import personal_paths, subject_path
from phaselog.runtime.keyfilter import BoundedKeySet, KeyFilter

if TYPE_CHECKING:
    from phaselog.adapters.crypto.keyring import KeyRing

__all__ = [
    "MAX_EVENT_BYTES",
    "PERSONAL_STREAMS_FILTER_BITS",
    "PERSONAL_STREAMS_HELD",
    "OrjsonTranscoder",
    "PydanticMapper",
    "SnapshotRefused",
]

MAX_EVENT_BYTES = 4 * 1024 * 1024
"""The default bound on one event's or snapshot's encoded payload (JSON bytes, before compression)."""

PERSONAL_STREAMS_HELD = 100_000
"""The streams with personal data a mapper remembers exactly (it never snapshots them).

Older ones are folded into a Bloom filter of :data:`PERSONAL_STREAMS_FILTER_BITS`
bits, so a long-running writer or read-model runner that meets millions of such
streams keeps a bounded memory and still never snapshots one of them; the price
is that a few streams without personal data (about 3 % of streams once a million
have been evicted) are not snapshotted in that process either: their loads replay
their events.
"""
PERSONAL_STREAMS_FILTER_BITS = 1 << 23
"""The size of the filter of older streams with personal data (1 MiB)."""

_ENVELOPE = {"originator_id", "originator_version"}


class OrjsonTranscoder(Transcoder):
    """Encode JSON-able Python values to bytes by phaselog's encoding policy (and back).

    The name is kept for stored settings and imports; the policy
    (:mod:`phaselog.domain.encoding`) keeps non-finite floats and big integers,
    which orjson cannot.
    """

    def encode(self, obj: Any) -> bytes:
        """Serialise ``obj``; ValidationFailed when JSON cannot represent it."""
        return dump_json(obj)

    def decode(self, data: bytes) -> Any:
        """Parse stored bytes; ValidationFailed when they are not JSON."""
        return load_json(data)


class SnapshotRefused(ValidationFailed):
    """A stream holding personal data is never snapshotted (its state would hold the values in the clear)."""


def _at(state: dict[str, Any], path: str) -> Any:
    value: Any = state
    for name in path.split("."):
        value = value.get(name) if isinstance(value, dict) else None
    return value


def _without_values(exc: ValidationError) -> str:
    """A validation error's fields and messages without the input values (which may be personal)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
        for e in exc.errors(include_input=False, include_url=False)
    )


class PydanticMapper(Mapper[str]):
    """Map pydantic domain events to stored events under their stable topics.

    The stored state is the model's JSON dump without the envelope fields
    (id and version live in their own columns), plus ``class_version`` when
    it is above 1, so upcasters can evolve old records on the way back in.
    An event whose encoded state (the JSON bytes, before compression and
    encryption) is larger than ``max_event_bytes`` raises
    :class:`PayloadTooLarge`.

    Fields marked :class:`~phaselog.domain.personal.Personal` are sealed with their
    subject's key from ``keyring`` (the store sets it) before the state is encoded,
    and revealed (or redacted, once erased) when it is decoded.
    """

    keyring: KeyRing | None = None

    def __init__(
        self,
        transcoder: Transcoder,
        compressor: Compressor | None = None,
        cipher: Cipher | None = None,
        *,
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        super().__init__(transcoder, compressor=compressor, cipher=cipher)
        if isinstance(max_event_bytes, bool) or not isinstance(max_event_bytes, int) or max_event_bytes < 1:
            msg = f"max_event_bytes must be a positive integer, got {max_event_bytes!r}"
            raise ValidationFailed(msg)
        self.max_event_bytes = max_event_bytes
        self._personal_streams = BoundedKeySet(PERSONAL_STREAMS_HELD, KeyFilter(PERSONAL_STREAMS_FILTER_BITS))
        self._plain: set[type[Any]] = set()  # event classes with no personal fields (nothing to seal)

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        """Encode one domain event under its stable topic."""
        if not isinstance(domain_event, DomainEvent):
            msg = f"not a phaselog domain event: {domain_event!r}"
            raise ValidationFailed(msg)
        cls = type(domain_event)
        where = f"{domain_event.originator_id}@{domain_event.originator_version}"
        try:
            # Python mode, then the policy's encoder: pydantic's JSON mode replaces a lone surrogate
            # in a dict key with U+FFFD (silently changing the data) where the encoder refuses it.
            state = domain_event.model_dump(mode="python", exclude=_ENVELOPE)
            if cls.class_version > 1:
                state["class_version"] = cls.class_version
            self._seal(domain_event, state)
            data = self.transcoder.encode(state)
        except (PydanticSerializationError, ValidationFailed) as exc:
            msg = f"{cls.__name__} {where} cannot be encoded: {exc}"
            raise ValidationFailed(msg) from exc
        if len(data) > self.max_event_bytes:
            msg = (
                f"{cls.__name__} {where} encodes to {len(data)} bytes, "
                f"more than the limit of {self.max_event_bytes} bytes (max_event_bytes)"
            )
            raise PayloadTooLarge(msg, size=len(data), limit=self.max_event_bytes)
        if self.compressor:
            data = self.compressor.compress(data)
        if self.cipher:
            data = self.cipher.encrypt(data)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=topic_of(cls),
            state=data,
        )

    def _seal(self, event: DomainEvent, state: dict[str, Any]) -> None:
        """Seal ``state``'s personal values; refuse a snapshot of a stream holding personal data."""
        cls = type(event)
        if isinstance(event, Snapshot) and str(event.originator_id) in self._personal_streams:
            raise SnapshotRefused(f"{str(event.originator_id)!r} holds personal data: it is not snapshotted")
        if cls in self._plain:
            return
        marks = getattr(cls, "personal_marks", None)  # an event whose personal fields vary (a state's)
        if marks is None:
            paths, where = personal_paths(cls), subject_path(cls)
            if not paths:  # a class without personal fields: remembered, never looked at again
                self._plain.add(cls)
                return
        else:
            paths, where = marks(event)
            if not paths:
                return
        stream = str(event.originator_id)
        subject = stream if where is None else str(_at(state, where) or "")
        key = self._keys(subject).key_for_writing(subject, stream)
        self._personal_streams.add(stream)
        seal_paths(state, paths, stream, subject, key)

    def _keys(self, subject: str) -> KeyRing:
        if self.keyring is None:
            msg = f"personal data of subject {subject!r} needs a store with a key ring"
            raise KeyUnavailable(msg)
        return self.keyring

    def reveal(self, state: Any, stream_id: str) -> Any:
        """``state`` (stored JSON) with its sealed values opened, or redacted where the subject was erased."""
        self._personal_streams.add(stream_id)
        return reveal(state, stream_id, lambda subject: self._keys(subject).key_for_reading(subject))

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        """Decode one stored event (UnknownEventType for an unregistered topic)."""
        cls = resolve_topic(stored_event.topic)
        return self.decode_state(cls, stored_event)

    def decode_state(self, cls: type[BaseModel], stored_event: StoredEvent) -> Any:
        """Decode, upcast and validate one stored event as ``cls``."""
        data = stored_event.state
        try:
            if self.cipher:
                data = self.cipher.decrypt(data)
            if self.compressor:
                data = self.compressor.decompress(data)
            state = self.transcoder.decode(data)
            if MARK_BYTES in data:
                state = self.reveal(state, str(stored_event.originator_id))
        except PhaselogError:
            raise
        except Exception as exc:  # a cipher or compressor failure: data is unreadable
            msg = f"cannot decode event {stored_event.originator_id}@{stored_event.originator_version}"
            raise ValidationFailed(msg) from exc
        if not isinstance(state, dict):
            msg = f"event {stored_event.originator_id}@{stored_event.originator_version} is not an object"
            raise ValidationFailed(msg)
        state = upcast(cls, state)
        state["originator_id"] = str(stored_event.originator_id)
        state["originator_version"] = stored_event.originator_version
        try:
            return cls.model_validate(state)
        except ValidationError as exc:
            # with personal values opened, the message names fields and errors, never the values
            detail = _without_values(exc) if MARK_BYTES in data else str(exc)
            msg = (
                f"stored event {stored_event.topic} "
                f"{stored_event.originator_id}@{stored_event.originator_version} "
                f"does not validate: {detail}"
            )
            raise ValidationFailed(msg) from None if MARK_BYTES in data else exc
