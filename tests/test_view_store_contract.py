"""The view store contract: what every ViewStore (memory, SQLite, PostgreSQL) does, through the port only."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from phaselog.adapters import Store
from phaselog.adapters.views import view_ports
from phaselog.domain.errors import StoreUnavailable
from phaselog.projections.errors import ProjectionBusy
from phaselog.projections.ports import TableSpec, ViewStore

SPEC = TableSpec(
    name="phaselog_view_contract",
    columns={"id": "text", "kind": "text", "n": "int", "doc": "json"},
    key="id",
    model="contract",
    indexes=(("ix_contract_kind", "kind"),),
)


@pytest.fixture
def views(store: Store) -> Iterator[ViewStore]:
    """The view store of a fresh store, with its bookkeeping and the contract table created."""
    views = view_ports(store).views
    with views.write([]) as session:
        session.create_bookkeeping()
        session.create_table(SPEC)
    try:
        yield views
    finally:
        views.close()


class TestViewStoreContract:
    """One contract, run on each kind of store's view store."""

    # -- transactions and positions ------------------------------------------------------------
    def test_a_write_commits_and_one_that_raises_rolls_back(self, views: ViewStore) -> None:
        """What a write transaction did is visible after it; a block that raises leaves nothing behind."""
        with views.write(["t"]) as session:
            session.advance("t", 3)
            session.upsert_rows(SPEC, [["a", "x", 1, "{}"]])

        def failing() -> None:
            with views.write(["t"]) as session:
                session.advance("t", 9)
                session.upsert_rows(SPEC, [["b", "x", 2, "{}"]])
                raise RuntimeError

        with pytest.raises(RuntimeError):
            failing()
        with views.read() as session:
            assert session.positions(["t"]) == {"t": 3}
            assert [r["id"] for r in session.select_rows(SPEC.name, {})] == ["a"]

    def test_write_creates_the_tracking_rows_it_locks_at_position_zero(self, views: ViewStore) -> None:
        """``write(names)`` creates missing tracking rows at 0; a name never tracked also reads as 0."""
        with views.write(["one", "two"]) as session:
            assert session.positions(["one", "two"]) == {"one": 0, "two": 0}
            assert session.position_and_state("one", None) == (0, None)
        with views.read() as session:
            assert session.positions(["never"]) == {"never": 0}
            assert session.positions([]) == {}

    def test_advance_moves_forward_only(self, views: ViewStore) -> None:
        """``advance`` records a later position; moving a position back fails and changes nothing."""
        with views.write(["t"]) as session:
            session.advance("t", 5)
        with pytest.raises(Exception), views.write(["t"]) as session:  # noqa: B017, PT011 - each driver's own error
            session.advance("t", 4)
        with views.read() as session:
            assert session.positions(["t"]) == {"t": 5}

    def test_set_position_overwrites_or_removes(self, views: ViewStore) -> None:
        """``set_position`` moves a position anywhere (back too); ``None`` removes it (then it reads 0)."""
        with views.write(["t"]) as session:
            session.advance("t", 7)
            session.set_position("t", 2)
            assert session.positions(["t"]) == {"t": 2}
            session.set_position("t", None)
            assert session.positions(["t"]) == {"t": 0}

    def test_a_second_writer_past_its_lock_timeout_is_busy(self, views: ViewStore) -> None:
        """While one write holds a lock, another with a lock timeout fails (ProjectionBusy on PostgreSQL)."""
        # SQLite's one writer connection is busy in-process: StoreUnavailable (ProjectionBusy is one too).
        held, done = threading.Event(), threading.Event()

        def hold() -> None:
            with views.write(["t"]) as session:
                session.advance("t", 1)
                held.set()
                done.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert held.wait(10)

            def second() -> None:
                with views.translate_errors("contract"), views.write(["t"], lock_timeout=0.2) as session:
                    session.advance("t", 2)

            with pytest.raises(StoreUnavailable) as caught:
                second()
            assert views.kind != "postgresql" or isinstance(caught.value, ProjectionBusy)
        finally:
            done.set()
            holder.join(10)
        with views.read() as session:
            assert session.positions(["t"]) == {"t": 1}

    # -- rows ------------------------------------------------------------------------------------
    def test_upsert_inserts_then_replaces_by_key(self, views: ViewStore) -> None:
        """``upsert_rows`` adds new keys and replaces every column of existing ones."""
        with views.write([]) as session:
            assert session.is_empty(SPEC.name)
            session.upsert_rows(SPEC, [["a", "x", 1, "[1]"], ["b", "y", 2, None]])
            session.upsert_rows(SPEC, [["a", "z", 10, "[2]"]])
            assert not session.is_empty(SPEC.name)
        with views.read() as session:
            rows = {r["id"]: dict(r) for r in session.fetch_rows(SPEC.name, "id", ["a", "b", "c"])}
        assert rows == {
            "a": {"id": "a", "kind": "z", "n": 10, "doc": "[2]"},
            "b": {"id": "b", "kind": "y", "n": 2, "doc": None},
        }

    def test_many_rows_upsert_and_insert_like_few(self, views: ViewStore) -> None:
        """A bulk of 200 rows (COPY on PostgreSQL) inserts and upserts exactly as single rows do."""
        with views.write([]) as session:
            session.insert_rows(SPEC, [[f"k{i:03}", "x", i, None] for i in range(200)])
            session.upsert_rows(SPEC, [[f"k{i:03}", "y", -i, None] for i in range(100, 300)])
        with views.read() as session:
            assert session.count_by(SPEC.name, "kind") == [("x", 100), ("y", 200)]
            assert [dict(r) for r in session.select_rows(SPEC.name, {"n": -150})] == [
                {"id": "k150", "kind": "y", "n": -150, "doc": None}
            ]

    def test_inserting_an_existing_key_is_poison(self, views: ViewStore) -> None:
        """``insert_rows`` of a key already present fails with an error the view store calls poison."""
        with views.write([]) as session:
            session.insert_rows(SPEC, [["a", "x", 1, None]])
        with pytest.raises(Exception) as caught, views.write([]) as session:  # noqa: PT011 - the driver's own error
            session.insert_rows(SPEC, [["a", "x", 2, None]])
        assert views.poison(caught.value) is True
        assert views.poison(ValueError("raised by a fold")) is None

    def test_select_filters_and_orders_and_delete_removes(self, views: ViewStore) -> None:
        """``select_rows`` filters by equal columns and orders by a column; ``delete_rows`` removes by key."""
        with views.write([]) as session:
            session.upsert_rows(SPEC, [["c", "x", 1, None], ["a", "x", 2, None], ["b", "y", 3, None]])
            session.delete_rows(SPEC.name, "id", ["b", "missing"])
        with views.read() as session:
            assert [r["id"] for r in session.select_rows(SPEC.name, {"kind": "x"}, order_by="id")] == [
                "a",
                "c",
            ]
            assert [r["id"] for r in session.select_rows(SPEC.name, {}, order_by="n")] == ["c", "a"]

    def test_a_savepoint_undoes_only_its_block(self, views: ViewStore) -> None:
        """A block that raises inside ``savepoint()`` is undone; the transaction's other writes commit."""
        with views.write([]) as session:
            session.upsert_rows(SPEC, [["kept", "x", 1, None]])

            def undone() -> None:
                with session.savepoint():
                    session.upsert_rows(SPEC, [["undone", "x", 2, None]])
                    raise RuntimeError

            with pytest.raises(RuntimeError):
                undone()
        with views.read() as session:
            assert [r["id"] for r in session.select_rows(SPEC.name, {})] == ["kept"]

    def test_tables_are_created_renamed_and_dropped(self, views: ViewStore) -> None:
        """``create_table``/``rename_table``/``drop_table`` as ``table_exists`` sees them; all idempotent."""
        shadow = TableSpec(
            name="phaselog_view_contract__shadow", columns=SPEC.columns, key="id", model="contract"
        )
        with views.write([]) as session:
            session.create_table(shadow, indexes=False)
            session.create_table(shadow)  # again: nothing happens
            assert session.table_exists(shadow.name)
            session.drop_table(SPEC.name)
            session.rename_table(shadow.name, SPEC.name)
            session.create_indexes(SPEC)
            assert not session.table_exists(shadow.name)
            assert session.table_exists(SPEC.name)
            session.drop_table(shadow.name)  # missing: no error
            session.set_fingerprint("contract", "abc")
            session.set_fingerprint("contract", "def")
        with views.read() as session:
            assert session.fingerprints() == {"contract": "def"}

    # -- state rows and leases ------------------------------------------------------------------
    def test_state_rows_keep_generation_halt_and_errors(self, views: ViewStore) -> None:
        """``set_state`` updates columns, ``generation=True`` bumps the generation; error text keeps NUL."""
        with views.write(["t"]) as session:
            session.ensure_state(["m"])
            session.ensure_state(["m"])  # again: no error, no reset
            session.set_state("m", generation=True, halted=4, last_error="bad\x00byte")
            session.set_state("m", generation=True)
            position, state = session.position_and_state("t", "m")
        assert position == 0
        assert state is not None
        assert (state["generation"], state["halted"], state["last_error"]) == (2, 4, "bad\x00byte")
        with views.read() as session:
            assert session.read_state(["m", "absent"])["m"]["generation"] == 2
            assert set(session.read_state(["m", "absent"])) == {"m"}

    def test_a_lease_is_held_by_one_owner_until_it_expires_or_is_released(self, views: ViewStore) -> None:
        """A live lease refuses other owners and is kept by its own; expired or released, another takes it."""
        with views.write([]) as session:
            session.ensure_state(["m"])
            assert session.acquire_lease("m", "a", 60)
            assert not session.acquire_lease("m", "b", 60)
            assert session.acquire_lease("m", "a", 60)  # the holder keeps it
            remaining = session.read_state(["m"])["m"]["remaining"]
            assert 50 < remaining <= 60
            assert session.read_state(["m"])["m"]["owner"] == "a"
            session.set_state("m", expires=0)  # the holder stalled past its expiry
            assert session.acquire_lease("m", "b", 60)
            session.release_leases("b")
            assert session.read_state(["m"])["m"]["owner"] is None
            assert session.acquire_lease("m", "a", 60)

    def test_a_lease_expires_by_the_database_clock(self, views: ViewStore) -> None:
        """A lease taken for a fraction of a second is free for another owner once that time has passed."""
        with views.write([]) as session:
            session.ensure_state(["m"])
            assert session.acquire_lease("m", "a", 0.3)
            assert not session.acquire_lease("m", "b", 60)
        time.sleep(0.6)
        with views.write([]) as session:
            assert session.read_state(["m"])["m"]["remaining"] < 0
            assert session.acquire_lease("m", "b", 60)

    def test_renew_keeps_only_the_leases_still_held(self, views: ViewStore) -> None:
        """``renew_leases`` extends and returns the owner's leases, never one another owner took."""
        with views.write([]) as session:
            session.ensure_state(["m", "n"])
            assert session.acquire_lease("m", "a", 60)
            assert session.acquire_lease("n", "b", 60)
            assert session.renew_leases(["m", "n"], "a", 120) == {"m"}
            assert session.read_state(["m"])["m"]["remaining"] > 100
            assert session.renew_leases([], "a", 120) == set()

    # -- dead letters ----------------------------------------------------------------------------
    def test_dead_letters_are_recorded_refreshed_moved_and_dropped(self, views: ViewStore) -> None:
        """Dead letters keep one row per (table, position), list in order, count per table, move and clear."""
        with views.write([]) as session:
            session.record_dead_letters("t", [(5, "s:1", "topic", "first"), (2, "s:\x00", "topic", "e")])
            session.record_dead_letters("t", [(5, "s:1", "topic", "second")])  # refreshes the error
            session.record_dead_letters("u", [(1, "s", "topic", "u's")])
            letters = session.dead_letters(["t", "u"])
            assert [(d["tbl"], d["position"], d["error"]) for d in letters] == [
                ("t", 2, "e"),
                ("t", 5, "second"),
                ("u", 1, "u's"),
            ]
            assert letters[0]["stream"] == "s:\x00"
            assert session.dead_letter_counts() == {"t": 2, "u": 1}
            session.drop_dead_letter("t", 2)
            session.move_dead_letters("t", "v")
            assert session.dead_letter_counts() == {"u": 1, "v": 1}
            session.clear_dead_letters("u")
            assert session.dead_letters(["u", "v"])[0]["position"] == 5
            assert session.dead_letters([]) == []

    # -- errors -----------------------------------------------------------------------------------
    def test_driver_errors_become_store_unavailable(self, views: ViewStore) -> None:
        """A driver error met under ``translate_errors`` is raised as StoreUnavailable, naming the work."""

        def missing() -> None:
            with views.translate_errors("reading a missing table"), views.read() as session:
                session.is_empty("phaselog_view_no_such_table")

        with pytest.raises(StoreUnavailable, match="reading a missing table"):
            missing()
