"""Keyset pages: stream heads and read-model rows, on every store (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import pytest

from phaselog.adapters import Store
from phaselog.domain.errors import ValidationFailed
from phaselog.domain.plugin import PluginPhase

NAMES = [f"p{i:02d}" for i in range(23)]


@pytest.fixture
def plugins(store: Store) -> Store:
    """23 plugins (every odd one installing), a task-less store otherwise; read models caught up."""
    for i, name in enumerate(NAMES):
        machine = store.plugins.machine(name)
        if i % 2:
            machine.transition_to(PluginPhase.INSTALLING, "fetching")
    store.projections.catch_up()
    return store


def test_stream_heads_page_by_id(plugins: Store) -> None:
    """Pages of stream heads follow each other by id, without overlap or gap, the last one short."""
    seen: list[str] = []
    after: str | None = None
    while True:
        page = plugins.stream_heads("plugin:", after=after, limit=5)
        assert len(page) <= 5
        seen += [h.stream_id for h in page]
        if len(page) < 5:
            break
        after = page[-1].stream_id
    assert seen == [f"plugin:{n}" for n in NAMES]
    assert plugins.stream_heads("plugin:", after="plugin:p21") == [plugins.stream_heads("plugin:")[-1]]
    assert plugins.stream_heads("plugin:", after="plugin:p22", limit=5) == []


def test_stream_heads_page_refuses_an_empty_page(plugins: Store) -> None:
    """A page of fewer than one stream is a typed error."""
    with pytest.raises(ValidationFailed, match="at least one"):
        plugins.stream_heads("", limit=0)


def test_read_model_pages_by_key_with_filters(plugins: Store) -> None:
    """A read model's page is keyed like its list, filtered by column, and continues after a key."""
    model = plugins.projections.plugin_phases
    assert [r["plugin_id"] for r in model.page(limit=4)] == NAMES[:4]
    assert [r["plugin_id"] for r in model.page(after="p03", limit=4)] == NAMES[4:8]
    installing = model.page(phase=PluginPhase.INSTALLING, limit=3)
    assert [r["plugin_id"] for r in installing] == ["p01", "p03", "p05"]
    rest = model.page(phase="Installing", after="p05", limit=50)
    assert [r["plugin_id"] for r in installing + rest] == NAMES[1::2]
    assert model.page(after="p22") == []


def test_read_model_page_refuses_bad_arguments(plugins: Store) -> None:
    """An unknown column or an empty page is a typed error naming what is wrong."""
    model = plugins.projections.plugin_phases
    with pytest.raises(ValidationFailed, match="no column colour"):
        model.page(colour="red")
    with pytest.raises(ValidationFailed, match="at least one"):
        model.page(limit=0)
