"""The pydantic + orjson codec, plugged into eventsourcing's Mapper and Transcoder.

:data:`MAX_EVENT_BYTES` bounds the encoded payload of one event or snapshot
(both go through :class:`PydanticMapper`): a larger one raises
:class:`PayloadTooLarge` before any I/O, so nothing is written.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Cipher, Compressor, Mapper, StoredEvent, Transcoder
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from phaselog.domain.encoding import dump_json, load_json
from phaselog.domain.errors import PayloadTooLarge, ValidationFailed
from phaselog.domain.events import DomainEvent, resolve_topic, topic_of, upcast

__all__ = ["MAX_EVENT_BYTES", "OrjsonTranscoder", "PydanticMapper"]

MAX_EVENT_BYTES = 4 * 1024 * 1024
"""The default bound on one event's or snapshot's encoded payload (JSON bytes, before compression)."""

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


class PydanticMapper(Mapper[str]):
    """Map pydantic domain events to stored events under their stable topics.

    The stored state is the model's JSON dump without the envelope fields
    (id and version live in their own columns), plus ``class_version`` when
    it is above 1, so upcasters can evolve old records on the way back in.
    An event whose encoded state (the JSON bytes, before compression and
    encryption) is larger than ``max_event_bytes`` raises
    :class:`PayloadTooLarge`.
    """

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
        except ValidationFailed:
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
            msg = (
                f"stored event {stored_event.topic} "
                f"{stored_event.originator_id}@{stored_event.originator_version} "
                f"does not validate: {exc}"
            )
            raise ValidationFailed(msg) from exc
