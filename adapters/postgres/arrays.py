"""The batch append's array parameters, sent in PostgreSQL's binary array format.

psycopg adapts a plain ``list`` by looking at its elements on every call (which
type, which dimension, whether any is ``None``) before it picks a dumper: for
the six arrays of each append that was about a quarter of the client's time
per batch. The append knows its element types, so it wraps each list in one of
the marker types below, whose dumper writes the array directly (``array_send``'s
layout: one dimension, no NULLs, then each element's length and bytes).

The dumpers are registered on psycopg's global adapters, which every new
connection copies: importing this module before the pools connect is enough.
They apply only to these private types, never to a user's lists.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, ClassVar

import psycopg
from psycopg.abc import AdaptContext
from psycopg.adapt import Dumper
from psycopg.pq import Format

__all__ = ["BigintArray", "BoolArray", "ByteaArray", "IntArray", "TextArray"]

_HEADER = struct.Struct("!iiIii")  # dimensions, has NULLs, element type, length, lower bound
_LENGTH = struct.Struct("!i")
_TRUE, _FALSE = b"\x00\x00\x00\x01\x01", b"\x00\x00\x00\x01\x00"


class IntArray(list[int]):
    """An ``integer[]`` parameter."""


class BigintArray(list[int]):
    """A ``bigint[]`` parameter."""


class TextArray(list[str]):
    """A ``text[]`` parameter."""


class ByteaArray(list[bytes]):
    """A ``bytea[]`` parameter."""


class BoolArray(list[bool]):
    """A ``boolean[]`` parameter."""


class _ArrayDumper(Dumper):
    format = Format.BINARY
    element_oid: ClassVar[int] = 0

    def _header(self, length: int) -> bytes:
        return _HEADER.pack(1, 0, self.element_oid, length, 1)

    def _framed(self, elements: Sequence[bytes]) -> bytes:
        """The array of variable-length ``elements``: the header, then each one's length and bytes."""
        parts = [self._header(len(elements))]
        for element in elements:
            parts += (_LENGTH.pack(len(element)), element)
        return b"".join(parts)


class _IntArrayDumper(_ArrayDumper):
    oid = 1007
    element_oid = 23

    def dump(self, obj: Any) -> bytes:
        return self._header(len(obj)) + struct.pack(f"!{len(obj) * 'ii'}", *[x for v in obj for x in (4, v)])


class _BigintArrayDumper(_ArrayDumper):
    oid = 1016
    element_oid = 20

    def dump(self, obj: Any) -> bytes:
        return self._header(len(obj)) + struct.pack(f"!{len(obj) * 'iq'}", *[x for v in obj for x in (8, v)])


class _BoolArrayDumper(_ArrayDumper):
    oid = 1000
    element_oid = 16

    def dump(self, obj: Any) -> bytes:
        return self._header(len(obj)) + b"".join(_TRUE if v else _FALSE for v in obj)


class _ByteaArrayDumper(_ArrayDumper):
    oid = 1001
    element_oid = 17

    def dump(self, obj: Any) -> bytes:
        return self._framed(obj)


class _TextArrayDumper(_ArrayDumper):
    oid = 1009
    element_oid = 25

    def __init__(self, cls: type, context: AdaptContext | None = None) -> None:
        super().__init__(cls, context)
        self._encoding = self.connection.info.encoding if self.connection is not None else "utf-8"

    def dump(self, obj: Any) -> bytes:
        encoding = self._encoding
        return self._framed([value.encode(encoding) for value in obj])


for _type, _dumper in (
    (IntArray, _IntArrayDumper),
    (BigintArray, _BigintArrayDumper),
    (BoolArray, _BoolArrayDumper),
    (ByteaArray, _ByteaArrayDumper),
    (TextArray, _TextArrayDumper),
):
    psycopg.adapters.register_dumper(_type, _dumper)
