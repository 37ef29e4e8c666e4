"""A FastAPI service on phaselog.aio: plugin transitions over HTTP and a live stream of them.

Endpoints (all JSON except the stream):

* ``POST /plugins/{id}/transitions`` ``{"to": "Installing", "reason": "..."}``: a validated
  transition (409 when the lifecycle forbids it or another writer got there first,
  422 for an unknown phase); ``?force=true`` records it without validation;
* ``POST /plugins/{id}/retry`` ``{"action": "advance" | "reset"}``: the retry counters;
* ``GET /plugins/{id}``: phase, version and retry counters; ``GET /plugins/{id}/history``;
* ``GET /plugins/{id}/events?start=1``: server-sent events, one ``transition`` event per
  recorded phase change of the plugin, from ``store.subscribe`` (catch-up, then live;
  ``id:`` is the global position, so a client resumes with ``start=<last id + 1>``;
  ``limit`` ends the stream after that many events).

Tasks (an :class:`~phaselog.aio.AsyncTaskController` named ``jobs`` with an async runner):

* ``POST /tasks/{id}`` ``{"steps": 3}``: launch a run (409 while the id's run is active);
* ``GET /tasks/{id}``: its state, progress and logs.

Read models (followed in background threads; they may lag the commands a little):

* ``GET /plugins?phase=Installing`` lists the ``plugin_phases`` read model,
  ``GET /tasks`` the ``task_statuses`` of the jobs.

Read your own writes: every command answers with ``position``, the global
position it committed (a launch: the controller's newest, which covers it), and
both read-model endpoints take ``?after=<position>``: they answer once their read
model has applied it (``projections.wait_for``), so a client that just issued a
command and passes its ``position`` on sees its own result, never a stale list.
We chose the token on the read over making every command wait for the read
models: commands answer as soon as they are durable, clients that do not need
their write back pay nothing, and a read waits only for the one read model it
serves. A read model that cannot catch up within ``read_timeout`` (5 s) answers
503 with ``Retry-After``; the detail names the read model behind and, on
PostgreSQL, the writer holding it back (pid, application, how to end it).

Run::

    pip install '.[examples]'  # from the checkout: fastapi, uvicorn and httpx
    python examples/fastapi_service.py [STORE_URL] [PORT]
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at runtime.
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from phaselog.aio import AsyncPluginStateMachine, AsyncStore, AsyncTaskController, open_async_store
from phaselog.domain.encoding import load_json
from phaselog.domain.errors import ConcurrencyConflict, InvalidTransition, NotFound, ValidationFailed
from phaselog.domain.plugin import PhaseChanged, plugin_stream_id
from phaselog.domain.task import TaskAlreadyRunning, TaskState
from phaselog.projections import ProjectionTimeout
from phaselog.runtime.task_models import CancelContext
from phaselog.runtime.task_runner import ActiveTask


class TransitionRequest(BaseModel):
    """The body of a transition: the phase to move to and why."""

    to: str
    reason: str = ""


class JobRequest(BaseModel):
    """The metadata of a job: how many steps it counts."""

    steps: int = 3


class JobRunner:
    """The jobs' runner: async hooks on the service's event loop, progress per step."""

    async def on_task_pending(self, ctx: CancelContext, task: ActiveTask) -> None:  # noqa: ARG002 - TaskRunner
        """Note the job in its log."""
        task.add_log_entry(20, "queued")

    async def on_task_running(self, ctx: CancelContext, task: ActiveTask) -> None:
        """Count the steps of the job's metadata, one progress write each."""
        job = task.load_task_metadata(JobRequest) or JobRequest()
        for step in range(job.steps):
            ctx.raise_if_cancelled()
            await asyncio.sleep(0)  # real work would await I/O here
            task.set_progress(step + 1, job.steps)

    def on_task_completed(
        self,
        ctx: CancelContext,  # noqa: ARG002 - the TaskRunner signature
        task: ActiveTask,
        state: TaskState,
        *args: Any,  # noqa: ARG002 - the TaskRunner signature (the error of a failed run)
    ) -> None:
        """Log the outcome."""
        task.add_log_entry(20, f"ended {state.name}")


class RetryRequest(BaseModel):
    """The body of a retry change."""

    action: Literal["advance", "reset"]


def _status(machine: AsyncPluginStateMachine) -> dict[str, Any]:
    retry = machine.retry.status
    return {
        "plugin_id": machine.plugin_id,
        "phase": machine.phase.value,
        "version": machine.version,
        "retry": {
            "attempts": retry.attempts,
            "next_backoff_s": retry.next_backoff.total_seconds(),
            "can_retry": machine.retry.can_retry(),
        },
    }


router = APIRouter()
After = Annotated[int | None, Query(ge=0, description="a position a command answered with")]


def store_of(request: Request) -> AsyncStore:
    """The app's async store (opened by its lifespan)."""
    store: AsyncStore = request.app.state.store
    return store


async def machine_of(request: Request, plugin_id: str) -> AsyncPluginStateMachine:
    """The machine of ``plugin_id`` (422 for an id phaselog refuses)."""
    try:
        return await store_of(request).plugins.machine(plugin_id)
    except ValidationFailed as exc:
        raise HTTPException(422, str(exc)) from exc


@router.post("/plugins/{plugin_id}/transitions")
async def transition(
    request: Request, plugin_id: str, body: TransitionRequest, *, force: bool = False
) -> dict[str, Any]:
    """Record a transition (validated unless ``force``)."""
    machine = await machine_of(request, plugin_id)
    try:
        if force:
            done = await machine.force_phase(body.to, body.reason)
        else:
            done = await machine.transition_to(body.to, body.reason)
    except (InvalidTransition, ConcurrencyConflict) as exc:
        raise HTTPException(409, str(exc)) from exc
    except ValidationFailed as exc:
        raise HTTPException(422, str(exc)) from exc
    return {"transition": done.model_dump(mode="json"), **_status(machine), "position": machine.position}


@router.post("/plugins/{plugin_id}/retry")
async def retry(request: Request, plugin_id: str, body: RetryRequest) -> dict[str, Any]:
    """Advance or reset the plugin's retry counters."""
    machine = await machine_of(request, plugin_id)
    await (machine.retry.advance() if body.action == "advance" else machine.retry.reset())
    return {**_status(machine), "position": machine.position}


async def read_after(request: Request, model: str, after: int | None) -> None:
    """Wait until read model ``model`` has applied position ``after`` (503 naming what holds it back)."""
    if after is None:
        return
    try:
        timeout: float = request.app.state.read_timeout
        await store_of(request).projections.wait_for(after, timeout, models=[model])
    except ProjectionTimeout as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from exc


@router.get("/plugins")
async def plugin_phases(
    request: Request, phase: str | None = None, after: After = None
) -> list[dict[str, Any]]:
    """The ``plugin_phases`` read model (only ``phase`` if given), once it has applied ``after``."""
    await read_after(request, "plugin_phases", after)
    filters = {} if phase is None else {"phase": phase}
    return await store_of(request).projections.plugin_phases.list(**filters)


@router.get("/tasks")
async def task_statuses(request: Request, after: After = None) -> list[dict[str, Any]]:
    """The jobs' rows of the ``task_statuses`` read model, once it has applied ``after``."""
    await read_after(request, "task_statuses", after)
    return await store_of(request).projections.task_statuses.list(controller="jobs")


@router.get("/plugins/{plugin_id}")
async def status(request: Request, plugin_id: str) -> dict[str, Any]:
    """Phase, version and retry counters of a known plugin."""
    if not await store_of(request).plugins.exists(plugin_id):
        raise HTTPException(404, f"no plugin {plugin_id!r}")
    return _status(await machine_of(request, plugin_id))


@router.get("/plugins/{plugin_id}/history")
async def history(
    request: Request, plugin_id: str, limit: Annotated[int | None, Query(ge=0)] = None
) -> list[dict[str, Any]]:
    """The plugin's recorded transitions, oldest first."""
    try:
        found = await store_of(request).plugins.history(plugin_id, limit)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    return [t.model_dump(mode="json") for t in found]


@router.get("/plugins/{plugin_id}/events")
async def events(
    request: Request,
    plugin_id: str,
    start: Annotated[int, Query(ge=1)] = 1,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> StreamingResponse:
    """Server-sent events of the plugin's transitions from global position ``start``, then live."""
    try:
        stream_id = plugin_stream_id(plugin_id)
    except ValidationFailed as exc:
        raise HTTPException(422, str(exc)) from exc
    return StreamingResponse(
        _transitions(store_of(request), stream_id, start, limit), media_type="text/event-stream"
    )


@router.post("/tasks/{task_id}")
async def launch(request: Request, task_id: str, body: JobRequest) -> dict[str, Any]:
    """Launch a run of job ``task_id``."""
    jobs: AsyncTaskController = request.app.state.jobs
    try:
        await jobs.launch_task(task_id, metadata=body)
    except TaskAlreadyRunning as exc:
        raise HTTPException(409, str(exc)) from exc
    except ValidationFailed as exc:
        raise HTTPException(422, str(exc)) from exc
    return {"task_id": task_id, "launched": True, "position": jobs.position}


@router.get("/tasks/{task_id}")
async def task_status(request: Request, task_id: str) -> dict[str, Any]:
    """State, progress and logs of job ``task_id``."""
    jobs: AsyncTaskController = request.app.state.jobs
    try:
        found = await jobs.task_status(task_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    shown = found.model_dump(mode="json")
    metadata = load_json(found.metadata) if found.metadata else None  # stored as JSON text: one object here
    return {"task_id": task_id, **shown, "state": found.state.name, "metadata": metadata}


def follow_read_models(store: AsyncStore) -> None:
    """Open the read models (creating their tables) and follow the log in background threads.

    Blocking: run it on a thread. The threads stop when the store closes.
    """
    store.projections.sync.start()


def create_app(url: str | None = None, *, read_timeout: float = 5.0) -> FastAPI:
    """The service on the store at ``url`` (opened for the app's lifespan, with its job controller).

    ``read_timeout``: how long a read given ``?after=<position>`` waits for its read model.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            open_async_store(url) as store,
            AsyncTaskController(store, "jobs", JobRunner(), max_workers=4) as jobs,
        ):
            app.state.store = store
            app.state.jobs = jobs
            await asyncio.to_thread(follow_read_models, store)
            yield

    app = FastAPI(title="phaselog plugins", lifespan=lifespan)
    app.state.read_timeout = read_timeout
    app.include_router(router)
    return app


async def _transitions(
    store: AsyncStore, stream_id: str, start: int, limit: int | None
) -> AsyncIterator[str]:
    """Server-sent events of one plugin's phase changes, from the store's global order."""
    sent = 0
    async for position, event in store.subscribe(start):
        if event.originator_id != stream_id or not isinstance(event, PhaseChanged):
            continue
        yield f"id: {position}\nevent: transition\ndata: {event.transition().model_dump_json()}\n\n"
        sent += 1
        if limit is not None and sent >= limit:
            return


def main() -> None:
    import uvicorn  # noqa: PLC0415 - only to serve from the command line

    url = sys.argv[1] if len(sys.argv) > 1 else None
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
    uvicorn.run(create_app(url), host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
