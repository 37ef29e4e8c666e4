"""Task sweeps read only open task streams: the open flag of a task, and what a sweep loads."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sweep_helpers import DEAD_OWNER, LIVE_OWNER, CountingStore, finished_task, held, orphan, save_finished
from task_helpers import ScriptedRunner, block_until_cancelled, wait_for

from phaselog.adapters import Store
from phaselog.domain.events import utcnow
from phaselog.domain.task import TaskAggregate, TaskClaimed, TaskState
from phaselog.runtime.tasks import TaskController

# -- the open flag, for every combination of the state a sweep looks at -------------------------
# Whether a task still needs a controller once its completion was delivered: only an active run does.
OPEN_WHEN_DELIVERED = {
    TaskState.UNKNOWN: False,
    TaskState.PENDING: True,
    TaskState.RUNNING: True,
    TaskState.COMPLETED: False,
    TaskState.FAILED: False,
    TaskState.CANCELED: False,
}
CLAIMS = {"unclaimed": None, "claimed": timedelta(hours=1), "expired": timedelta(seconds=-1)}


def _restored(state: TaskState, *, delivered: bool, claim: str, cancel_requested: bool) -> TaskAggregate:
    now = utcnow()
    lease = CLAIMS[claim]
    agg = TaskAggregate("task:svc:t")
    agg.restore_state(
        {
            "controller": "svc",
            "task_id": "t",
            "metadata": "",
            "run": 2,
            "state": int(state),
            "progress": [1, 2],
            "logs": [],
            "transitions": [[int(state), now.isoformat()]],
            "owner": None if lease is None else DEAD_OWNER,
            "lease_expires": None if lease is None else (now + lease).isoformat(),
            "cancel_requested": cancel_requested,
            "delivered": delivered,
        }
    )
    return agg


@pytest.mark.parametrize(
    ("state", "delivered", "claim", "cancel_requested"),
    list(itertools.product(TaskState, [False, True], CLAIMS, [False, True])),
)
def test_a_task_stream_is_open_exactly_while_its_run_is_active_or_undelivered(
    state: TaskState, delivered: bool, claim: str, cancel_requested: bool
) -> None:
    """Undelivered: open; delivered: open only while Pending/Running; claims and cancel flags do not count."""
    agg = _restored(state, delivered=delivered, claim=claim, cancel_requested=cancel_requested)
    expected = (not delivered) or OPEN_WHEN_DELIVERED[state]
    assert agg.stream_open is expected
    assert agg.needs_work is expected  # the predicate the sweep acts on says the same


def test_the_flag_follows_a_run_from_launch_to_delivery_and_a_relaunch_reopens_it() -> None:
    """Launch, Running, Completed-undelivered are open; the delivery closes; each kind of relaunch reopens."""
    agg = TaskAggregate.launch("svc", "t", "", DEAD_OWNER, utcnow() + timedelta(seconds=10))
    seen = [agg.stream_open]
    agg.change_state(1, DEAD_OWNER, TaskState.RUNNING)
    seen.append(agg.stream_open)
    agg.change_state(1, DEAD_OWNER, TaskState.COMPLETED)
    seen.append(agg.stream_open)
    agg.mark_delivered(1, DEAD_OWNER)
    seen.append(agg.stream_open)
    assert seen == [True, True, True, False]
    for end in (TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELED):
        closed = finished_task("svc", f"t-{end.name}", end)
        was_open = closed.stream_open
        closed.relaunch("", LIVE_OWNER, utcnow() + timedelta(seconds=10))
        assert (was_open, closed.stream_open) == (False, True), end
        assert (closed.state, closed.delivered) == (TaskState.PENDING, False)


def test_cancel_requests_orphans_and_snapshots_keep_the_flag() -> None:
    """An orphaned or cancel-requested run stays open, and a snapshot restores the same flag."""
    for agg in (
        orphan("svc", "p", TaskState.PENDING, cancel=True),
        orphan("svc", "r", TaskState.RUNNING),
        orphan("svc", "u", TaskState.COMPLETED),
        held("svc", "h"),
    ):
        assert agg.stream_open, agg.id
    for agg in (orphan("svc", "u", TaskState.COMPLETED), finished_task("svc", "d")):
        copy = TaskAggregate(agg.id)
        copy.restore_state(agg.snapshot_state())
        assert copy.stream_open is agg.stream_open


# -- the flag reaches the store's index --------------------------------------------------------
def test_the_store_index_lists_exactly_the_tasks_a_controller_still_owes_work(store: Store) -> None:
    """After real runs, stream_heads(open_only=True) lists only undelivered tasks; a relaunch relists one."""
    runner = ScriptedRunner(running={"blocked": block_until_cancelled})
    prefix = "task:svc:"
    with TaskController(store, "svc", runner, lease=timedelta(seconds=5)) as ctl:
        for tid in ("a", "b", "blocked"):
            ctl.launch_task(tid)
        wait_for(lambda: runner.completions_of("a") and runner.completions_of("b"), what="a and b to finish")
        wait_for(lambda: store.load(f"{prefix}b", TaskAggregate).delivered, what="b's delivery")
        wait_for(lambda: store.load(f"{prefix}a", TaskAggregate).delivered, what="a's delivery")
        open_ids = [h.stream_id for h in store.stream_heads(prefix, open_only=True)]
        assert open_ids == [f"{prefix}blocked"]
        heads = {h.stream_id: h for h in store.stream_heads(prefix)}
        assert sorted(heads) == [f"{prefix}a", f"{prefix}b", f"{prefix}blocked"]
        assert heads[f"{prefix}a"].version == store.load(f"{prefix}a", TaskAggregate).version
        again = store.load(f"{prefix}a", TaskAggregate)
        again.relaunch("", LIVE_OWNER, utcnow() + timedelta(hours=1))  # a new run, held elsewhere
        store.save(again)
        open_ids = [h.stream_id for h in store.stream_heads(prefix, open_only=True)]
        assert open_ids == [f"{prefix}a", f"{prefix}blocked"]


# -- what a sweep loads -------------------------------------------------------------------------
def _seed_open(store: Store) -> dict[str, str]:
    """Save one open task of each kind a sweep must find; return task id -> what it is."""
    kinds = {
        "orphan-pending": orphan("svc", "orphan-pending", TaskState.PENDING),
        "orphan-running": orphan("svc", "orphan-running", TaskState.RUNNING),
        "undelivered": orphan("svc", "undelivered", TaskState.COMPLETED),
        "cancel": orphan("svc", "cancel", TaskState.PENDING, cancel=True),
        "held": held("svc", "held"),
    }
    store.save(*kinds.values())
    return {tid: agg.id for tid, agg in kinds.items()}


def test_a_sweep_loads_only_open_tasks_among_many_finished_ones(store: Store) -> None:
    """With 300 delivered tasks and 5 open ones, sweeps load only the open ones and resume the orphans."""
    finished = {f"task:svc:{tid}" for tid in save_finished(store, "svc", 300)}
    open_ids = _seed_open(store)
    counting = CountingStore(store)
    runner = ScriptedRunner()
    with TaskController(
        counting, "svc", runner, lease=timedelta(seconds=2), sweep_interval=timedelta(milliseconds=50)
    ) as ctl:
        wait_for(
            lambda: all(
                store.load(open_ids[t], TaskAggregate).delivered
                for t in ("orphan-pending", "orphan-running", "undelivered", "cancel")
            ),
            timeout=30,
            what="the orphans to be resumed and delivered",
        )
        before = counting.sweeps()
        wait_for(lambda: counting.sweeps() >= before + 3, what="three more sweeps")
        assert ctl.active_tasks() == []
    assert counting.loaded() & finished == set()
    assert set(open_ids.values()) <= counting.loaded()
    assert counting.stream_id_calls == 0
    assert all(call == ("task:svc:", True) for call in counting.heads_calls)
    assert runner.hooks_of("orphan-pending") == ["pending", "running"]
    assert runner.hooks_of("orphan-running") == ["running"]
    assert runner.hooks_of("undelivered") == runner.hooks_of("cancel") == runner.hooks_of("held") == []
    assert runner.completions_of("undelivered") == [TaskState.COMPLETED]
    assert runner.completions_of("cancel") == [TaskState.CANCELED]
    assert store.load(open_ids["held"], TaskAggregate).owner == LIVE_OWNER
    assert counting.loads[open_ids["held"]] == 1  # claimed by a live controller: not reloaded each sweep


def test_a_stream_listed_open_but_found_closed_is_not_loaded_again_until_it_changes(store: Store) -> None:
    """An index listing closed tasks as open costs one load each; a new event makes the sweep look again."""
    finished = [f"task:svc:{tid}" for tid in save_finished(store, "svc", 40)]
    lagging = CountingStore(store, all_open=True)
    runner = ScriptedRunner()
    with TaskController(
        lagging, "svc", runner, lease=timedelta(seconds=2), sweep_interval=timedelta(milliseconds=50)
    ):
        assert all(lagging.loads[sid] == 1 for sid in finished)  # the first sweep looked at each once
        before = lagging.sweeps()
        wait_for(lambda: lagging.sweeps() >= before + 3, what="three more sweeps")
        assert all(lagging.loads[sid] == 1 for sid in finished)
        relaunched = store.load(finished[7], TaskAggregate)
        relaunched.relaunch("", LIVE_OWNER, utcnow() + timedelta(hours=1))  # its version moves
        store.save(relaunched)
        before = lagging.sweeps()
        wait_for(lambda: lagging.sweeps() >= before + 2, what="two more sweeps")
        assert lagging.loads[finished[7]] == 2
        assert all(lagging.loads[sid] == 1 for sid in finished if sid != finished[7])
    assert runner.hooks_of("done-00007") == []  # held by the live controller that relaunched it


def test_a_long_sweep_keeps_renewing_the_leases_of_running_tasks(store: Store) -> None:
    """A sweep that takes several leases to finish renews the claims it holds between adoptions."""
    lease = timedelta(milliseconds=1500)
    counting = CountingStore(store)
    runner = ScriptedRunner(running={"a": block_until_cancelled})
    sweep_often = timedelta(milliseconds=50)
    with TaskController(counting, "svc", runner, lease=lease, sweep_interval=sweep_often) as ctl:
        ctl.launch_task("a")
        assert runner.started.wait(15)
        counting.load_latency = 0.1  # 40 loads: about 4 s, close to three leases
        counting.slow_loads = lambda sid: sid.startswith("task:svc:c")
        store.save(*(held("svc", f"c{i:02d}") for i in range(40)))  # open, but held by a live controller
        wait_for(lambda: len(counting.slow_load_times) >= 40, timeout=60, what="the slow sweep")
        sweep_seconds = counting.slow_load_times[-1] - counting.slow_load_times[0]
        assert sweep_seconds > 2 * lease.total_seconds()  # the sweep really outlasted the lease
        assert ctl.active_tasks() == ["a"]
    claims = [e for e in store.stream("task:svc:a") if isinstance(e, TaskClaimed)]
    assert len(claims) >= 4
    for previous, renewal in itertools.pairwise(claims):
        assert renewal.timestamp < previous.expires_at, "the claim lapsed during the sweep"
    assert store.load("task:svc:a", TaskAggregate).state is TaskState.RUNNING  # never taken over
