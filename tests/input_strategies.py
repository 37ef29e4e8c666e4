"""Hypothesis strategies and oracles of the input-policy property tests.

The oracles are written from the documented input policy, independently of
``phaselog.domain.ids``: an id is valid when it is a non-empty ``str`` of at most
200 characters holding no control character (Unicode category ``Cc``) and no
lone surrogate (``Cs``); text is valid when it holds no lone surrogate.
"""

from __future__ import annotations

import io
import itertools
import math
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from phaselog.adapters import Store, export_jsonl
from phaselog.domain.encoding import load_json

# One fixed budget for every property test of the input policy: derandomized (the same examples on
# every run, so CI is stable), no deadline (PostgreSQL round trips vary with load), no example
# database (the working tree is shared), and store fixtures reused across the examples of a test.
settings.register_profile(
    "phaselog-input-policy",
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
INPUT_POLICY = settings.get_profile("phaselog-input-policy")

MAX_ID = 200
_unique = itertools.count()

# Characters a naive store gets wrong: NUL, other controls, astral, quotes, backslash, the projections'
# text-escape marker, a noncharacter, a combining mark, a right-to-left mark, the BOM.
TRICKY = [
    "\x00",
    "\x01",
    "\t",
    "\n",
    "\x7f",
    "\x85",
    "🦄",
    "𝄞",
    "'",
    '"',
    "\\",
    ";",
    "\ufdd0json:",
    "\ufffe",
    "\u0301",
    "\u200f",
    "\ufeff",
    "%s",
    "{}",
    "$1",
]
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)

#: Any Unicode scalar value (surrogates excluded), weighted towards the tricky ones.
scalar_text = st.lists(
    st.one_of(st.characters(exclude_categories=["Cs"]), st.sampled_from(TRICKY)), max_size=30
).map("".join)
#: Text that may also hold a lone surrogate (which the policy refuses).
any_text = st.one_of(
    scalar_text,
    st.builds(lambda a, s, b: a + s + b, scalar_text, SURROGATES, scalar_text),
)
#: Id candidates: mostly valid, some empty, too long, with controls or surrogates.
id_candidates = st.one_of(
    st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=MAX_ID),
    st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=MAX_ID - 2, max_size=MAX_ID + 2),
    any_text,
    st.sampled_from(
        ["", " ", "x" * MAX_ID, "x" * (MAX_ID + 1), "a\x00b", "semi;colon'quote\"", "🦄" * MAX_ID]
    ),
)
floats = st.one_of(
    st.floats(),  # nan, inf, -inf, -0.0, subnormals included
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]),
)
big_ints = st.one_of(st.integers(), st.integers(min_value=-(2**200), max_value=2**200))
datetimes = st.datetimes(timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=45))]))
json_values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(st.none(), st.booleans(), big_ints, floats, scalar_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(scalar_text, inner, max_size=4),
    ),
    max_leaves=12,
)


class Inner(BaseModel):
    """A nested model: floats, text, a datetime."""

    x: float
    tags: list[str]
    when: datetime | None = None


class Rich(BaseModel):
    """A state holding everything the policy promises to keep."""

    label: str
    number: float
    big: int
    when: datetime
    inner: Inner
    items: list[Inner]
    mapping: dict[str, float]
    extra: dict[str, Any]


inners = st.builds(Inner, x=floats, tags=st.lists(scalar_text, max_size=3), when=st.none() | datetimes)
rich_states = st.builds(
    Rich,
    label=scalar_text,
    number=floats,
    big=big_ints,
    when=datetimes,
    inner=inners,
    items=st.lists(inners, max_size=3),
    mapping=st.dictionaries(scalar_text, floats, max_size=4),
    extra=st.dictionaries(scalar_text, json_values, max_size=4),
)


def id_is_valid(value: str) -> bool:
    """The documented stream-id rule, as an oracle."""
    return 0 < len(value) <= MAX_ID and all(unicodedata.category(c) not in {"Cc", "Cs"} for c in value)


def text_is_valid(value: str) -> bool:
    """Text the policy accepts: every Unicode scalar value (no lone surrogate)."""
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def unique(prefix: str) -> str:
    """A fresh, valid id for tests whose subject is not the id."""
    return f"{prefix}-{next(_unique)}"


def same(a: Any, b: Any) -> bool:
    """Identical values: equal types, ``nan`` equals ``nan``, ``-0.0`` is not ``0.0``; models by fields."""
    if isinstance(a, BaseModel) and isinstance(b, BaseModel):
        return type(a) is type(b) and same(dict(a), dict(b))
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    offset_equal = not isinstance(a, datetime) or a.utcoffset() == b.utcoffset()
    return bool(a == b) and offset_equal


def exported(store: Store, start: int) -> list[dict[str, Any]]:
    """The ``audit export`` lines (parsed) of every event from position ``start``."""
    out = io.BytesIO()
    export_jsonl(store, out, start=start)
    return [load_json(line) for line in out.getvalue().splitlines()]


def latest_snapshot(store: Store, stream_id: str) -> Any:
    """The aggregate rebuilt from the newest stored snapshot of ``stream_id`` alone (one must exist)."""
    assert store.app.snapshots is not None
    snapshots: list[Any] = list(store.app.snapshots.get(stream_id, desc=True, limit=1))
    assert snapshots, f"no snapshot of {stream_id!r}"
    return snapshots[0].mutate(None)


def from_events(store: Store, stream_id: str) -> Any:
    """The aggregate folded from the stream's events alone (no snapshot)."""
    aggregate: Any = None
    for event in store.stream(stream_id):
        aggregate = event.mutate(aggregate)
    return aggregate
