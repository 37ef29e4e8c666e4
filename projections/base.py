"""Read-model definitions: a projection is a table plus a pure fold over stored events.

A :class:`Projection` declares its columns, its key and which topics it folds;
:meth:`Projection.apply` evolves rows through a :class:`Rows` view. The same fold
runs against a database table (``batch.BatchRows``, one transaction per batch) or
a plain dict (:class:`DictRows`, used to check a table against a fold of the full
log). Events reach a projection as :class:`EventData`: the stored JSON state
(upcast when the event class is known, raw otherwise), so a projection never
breaks on a field it does not know and never needs the event class imported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, NamedTuple

from typing_extensions import override

from phaselog.domain.encoding import dump_json, load_json, parse_json_bytes
from phaselog.domain.errors import UnknownEventType
from phaselog.domain.events import resolve_topic, upcast
from phaselog.projections.errors import ProjectionHalted, ProjectionTimeout
from phaselog.projections.ports import StateCodec, TableSpec

__all__ = [
    "DictRows",
    "EventData",
    "EventDecoder",
    "Projection",
    "ProjectionHalted",
    "ProjectionTimeout",
    "Rows",
    "event_data",
    "load_text",
    "store_text",
]


class EventData(NamedTuple):
    """One stored event as a projection sees it (immutable; a tuple, cheap to make by the million)."""

    position: int
    topic: str
    stream_id: str
    version: int
    data: dict[str, Any]

    @property
    def timestamp(self) -> str | None:
        """The event's ISO timestamp (as stored)."""
        value = self.data.get("timestamp")
        return None if value is None else str(value)


class EventDecoder:
    """Stored events (``Notification`` or :class:`~phaselog.runtime.ports.LogRecord`) to :class:`EventData`.

    The JSON state, decrypted and decompressed as the store's mapper would, upcast
    when its class is known. Whether a class is versioned is looked up once per class.
    """

    def __init__(self, codec: StateCodec) -> None:
        self._cipher = codec.cipher
        self._compressor = codec.compressor
        self._reveal = codec.reveal
        self._versioned: dict[type[Any], bool] = {}
        self._simple: set[str] = set()

    def __call__(self, record: Any) -> EventData:
        """One stored event as a projection sees it."""
        raw = record.state
        if self._cipher:
            raw = self._cipher.decrypt(raw)
        if self._compressor:
            raw = self._compressor.decompress(raw)
        if _SEALED in raw:  # personal values: opened, or redacted once their subject was erased
            return self._event(record, self._reveal(load_json(raw), str(record.originator_id)))
        return self._event(record, load_json(raw))

    def _event(self, record: Any, data: Any) -> EventData:
        if not isinstance(data, dict):
            data = {"value": data}
        topic = record.topic
        try:
            cls = resolve_topic(topic)
        except UnknownEventType:
            data.pop("class_version", None)
        else:
            versioned = self._versioned.get(cls)
            if versioned is None:
                versioned = self._versioned[cls] = getattr(cls, "class_version", 1) != 1
            if versioned or "class_version" in data:  # else nothing to upcast
                data = upcast(cls, data)
        event = (record.id, topic, str(record.originator_id), record.originator_version, data)
        return _new_event(EventData, event)

    def page(
        self, records: Iterable[Any], after: int, folds: Callable[[str], bool], memo: dict[str, bool]
    ) -> list[tuple[Any, EventData | Exception]]:
        """The records past ``after`` whose topic ``folds``, each with its event or its decoding error.

        ``memo`` keeps ``folds``' answer per topic (it must depend on the topic alone). Plain
        JSON of a class that is not versioned (the usual case) is decoded inline, with no
        per-event lookup of its class; anything else goes through :meth:`__call__`.
        """
        plain = not self._cipher and not self._compressor
        out: list[tuple[Any, EventData | Exception]] = []
        append, decode, simple = out.append, self.__call__, self._simple
        for record in records:
            topic = record.topic
            wanted = memo.get(topic)
            if wanted is None:
                wanted = memo[topic] = folds(topic)
            if wanted and record.id > after:
                try:
                    state = record.state
                    if plain and (topic in simple or self._is_simple(topic)) and _SEALED not in state:
                        try:
                            data = parse_json_bytes(state) if state.__class__ is bytes else None
                        except ValueError:  # not JSON: decoded below, for its typed error
                            data = None
                        if data.__class__ is dict and "class_version" not in data:
                            event = (
                                record.id,
                                topic,
                                str(record.originator_id),
                                record.originator_version,
                                data,
                            )
                            append((record, _new_event(EventData, event)))
                            continue
                    append((record, decode(record)))
                except Exception as exc:  # an undecodable event is poison for the read models that fold it
                    append((record, exc))
        return out

    def _is_simple(self, topic: str) -> bool:
        """True when events of ``topic`` need no upcasting (a known class at version 1; remembered)."""
        try:
            cls = resolve_topic(topic)
        except UnknownEventType:
            return False
        if getattr(cls, "class_version", 1) != 1:
            return False
        self._simple.add(topic)
        return True


_SEALED = b'"$pii"'  # how a sealed personal value shows in stored bytes (phaselog.adapters.crypto)
_new_event = tuple.__new__  # EventData's own __new__ without its Python-level frame (a hot path)


def event_data(mapper: StateCodec, notification: Any) -> EventData:
    """A stored notification as :class:`EventData`: its JSON state, upcast when its class is known."""
    return EventDecoder(mapper)(notification)


class Rows:
    """The rows of one projection, as seen by its fold."""

    def get(self, key: str) -> dict[str, Any] | None:
        """A copy of the row with ``key``, or ``None``."""
        raise NotImplementedError

    def put(self, key: str, row: Mapping[str, Any]) -> None:
        """Insert or replace the row with ``key``."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove the row with ``key`` (no error when absent)."""
        raise NotImplementedError


class DictRows(Rows):
    """Rows kept in a dict: the reference fold used by tests and ``verify``-style checks."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    @override
    def get(self, key: str) -> dict[str, Any] | None:
        row = self.rows.get(key)
        return None if row is None else dict(row)

    @override
    def put(self, key: str, row: Mapping[str, Any]) -> None:
        self.rows[key] = dict(row)

    @override
    def delete(self, key: str) -> None:
        self.rows.pop(key, None)


class Projection:
    """A read model: subclasses set the class attributes and implement :meth:`apply`."""

    name: ClassVar[str] = ""
    """Short name (``plugin_phases``); the table is ``phaselog_view_<name>``."""
    key: ClassVar[str] = "id"
    columns: ClassVar[Mapping[str, str]] = {}
    """Column name -> ``"text"``, ``"int"``, ``"bool"`` or ``"json"`` (the key included)."""
    alt_key: ClassVar[str | None] = None
    """A second column ``get`` tries when no row has the key (e.g. a bare ``task_id``)."""
    count_by: ClassVar[str | None] = None
    """Column that :meth:`ReadModel.counts` groups by."""
    topics: ClassVar[frozenset[str] | None] = None
    """Topics folded; ``None`` means every topic (then ``apply`` filters)."""
    version: ClassVar[int] = 1
    """Bump to make existing tables rebuild when the fold changes."""
    stream_prefix: ClassVar[str | None] = None
    """The prefix that makes a row's key its stream's id (``plugin:``), when each row follows one stream."""

    @property
    def table(self) -> str:
        """The live table name."""
        return f"phaselog_view_{self.name}"

    @property
    def shadow(self) -> str:
        """The table a rebuild fills before swapping it in."""
        return f"{self.table}__shadow"

    @property
    def fingerprint(self) -> str:
        """Changes whenever the columns or the fold version change."""
        text = f"{self.version}:{self.key}:" + ",".join(f"{k}={v}" for k, v in self.columns.items())
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def handles(self, topic: str) -> bool:
        """True when events of ``topic`` reach :meth:`apply` (a function of the topic: asked once each)."""
        return self.topics is None or topic in self.topics

    def apply(self, rows: Rows, event: EventData) -> None:
        """Fold one event into ``rows``."""
        raise NotImplementedError

    def key_for(self, event: EventData) -> str | None:
        """The key of the row ``event`` will read, when known up front (rows are then prefetched).

        Optional: ``None`` (the default) makes the first ``rows.get`` of a key query it alone.
        """
        del event
        return None

    def fold(self, events: Iterable[EventData]) -> dict[str, dict[str, Any]]:
        """The rows a fold of ``events`` gives, computed in memory."""
        rows = DictRows()
        for event in events:
            if self.handles(event.topic):
                self.apply(rows, event)
        return {k: self.normalise(v) for k, v in rows.rows.items()}

    def normalise(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A row with exactly the declared columns, as a table read returns it."""
        return {name: _roundtrip(kind, row.get(name)) for name, kind in self.columns.items()}

    # -- tables -------------------------------------------------------------------------
    def table_spec(self, table: str) -> TableSpec:
        """The description of ``table`` (the live table or the shadow) that a view store creates."""
        indexes: tuple[tuple[str, str], ...] = ()
        if self.count_by is not None:
            token = hashlib.sha256(table.encode()).hexdigest()[:6]
            indexes = ((f"ix_{self.name}_{self.count_by}_{token}", self.count_by),)
        return TableSpec(name=table, columns=self.columns, key=self.key, model=self.name, indexes=indexes)


def _roundtrip(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    if kind == "json":
        return load_json(dump_json(value))
    return str(value)


# Text that holds NUL (which PostgreSQL's text type cannot store) is stored as this marker plus the
# text's JSON form, on every backend alike; so is text that happens to start with the marker, which
# keeps the escape reversible. The marker is a Unicode noncharacter, which no real text starts with.
_ESCAPED_TEXT = "\ufdd0json:"


def store_text(value: str) -> str:
    """A text column value as stored: itself, or escaped when it holds NUL (reversible)."""
    if "\x00" in value or value.startswith(_ESCAPED_TEXT):
        return _ESCAPED_TEXT + dump_json(value).decode()
    return value


def load_text(value: str) -> str:
    """The text column value :func:`store_text` stored."""
    return str(load_json(value[len(_ESCAPED_TEXT) :])) if value.startswith(_ESCAPED_TEXT) else value


def encode_row(projection: Projection, row: Mapping[str, Any]) -> list[Any]:
    """Column values of ``row`` in declared order, JSON columns encoded."""
    values: list[Any] = []
    append, get = values.append, row.get
    for name, kind in projection.columns.items():
        value = get(name)
        if value is None:
            append(None)
        elif kind == "text":
            if value.__class__ is not str or "\x00" in value or value.startswith(_ESCAPED_TEXT):
                value = store_text(str(value))
            append(value)
        elif kind == "int":
            append(value if value.__class__ is int else int(value))
        elif kind == "bool":
            append(bool(value))
        else:
            append(dump_json(value).decode())
    return values


def decode_row(projection: Projection, row: Mapping[str, Any]) -> dict[str, Any]:
    """A database row as a dict, JSON columns decoded."""
    out: dict[str, Any] = {}
    for name, kind in projection.columns.items():
        value = row[name]
        if value is not None and kind == "json":
            value = load_json(value)
        elif value is not None and kind == "int":
            value = int(value)
        elif value is not None and kind == "bool":
            value = bool(value)
        elif isinstance(value, str):
            value = load_text(value)
        out[name] = value
    return out
