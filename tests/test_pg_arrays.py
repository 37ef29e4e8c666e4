"""The batch append's typed array parameters reach PostgreSQL exactly as psycopg's own lists would."""

from __future__ import annotations

import psycopg
import pytest

from phaselog.adapters.postgres.arrays import BigintArray, BoolArray, ByteaArray, IntArray, TextArray

CASES = [
    (IntArray([1, 1, 2, -3, 2**31 - 1]), "integer[]"),
    (BigintArray([1, 2**40, -(2**63), 2**63 - 1]), "bigint[]"),
    (TextArray(["plugin:a", "", "ünïcødé ✓ 𝄞", 'quote " and \\ backslash', "{braces}, commas"]), "text[]"),
    (ByteaArray([b"", b"\x00\x01\xff", b'{"json": true}', bytes(range(256)) * 64]), "bytea[]"),
    (BoolArray([True, False, True]), "boolean[]"),
]


@pytest.mark.parametrize(("value", "kind"), CASES, ids=[kind for _, kind in CASES])
def test_a_typed_array_round_trips_like_a_plain_list(pg_dsn: str, value: list[object], kind: str) -> None:
    """Each element comes back unchanged, and the server sees the same array as from a plain list."""
    with psycopg.connect(pg_dsn) as conn:
        typed, plain = conn.execute(f"SELECT %s::{kind}, %s::{kind}", (value, list(value))).fetchone() or ()
    assert typed == list(value)
    assert typed == plain


def test_a_single_element_and_many_elements_round_trip(pg_dsn: str) -> None:
    """The one-event append and a large batch both keep their order and length."""
    with psycopg.connect(pg_dsn) as conn:
        (one,) = conn.execute("SELECT %s::bigint[]", (BigintArray([7]),)).fetchone() or ()
        ids = TextArray([f"s{n}" for n in range(5000)])
        (many,) = conn.execute("SELECT %s::text[]", (ids,)).fetchone() or ()
    assert one == [7]
    assert many == [f"s{n}" for n in range(5000)]


def test_text_holding_nul_is_refused_by_the_server(pg_dsn: str) -> None:
    """PostgreSQL text cannot hold NUL: the server refuses the parameter, nothing is stored."""
    with psycopg.connect(pg_dsn) as conn, pytest.raises(psycopg.DataError):
        conn.execute("SELECT %s::text[]", (TextArray(["a\x00b"]),))
