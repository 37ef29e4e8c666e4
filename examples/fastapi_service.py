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

The task endpoints wait for ``AsyncTaskController`` (not in phaselog.aio yet). Run::

    pip install fastapi uvicorn
    python examples/fastapi_service.py [STORE_URL] [PORT]
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at runtime.
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from phaselog.aio import AsyncPluginStateMachine, AsyncStore, open_async_store
from phaselog.domain.errors import ConcurrencyConflict, InvalidTransition, NotFound, ValidationFailed
from phaselog.domain.plugin import PhaseChanged, plugin_stream_id


class TransitionRequest(BaseModel):
    """The body of a transition: the phase to move to and why."""

    to: str
    reason: str = ""


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
    return {"transition": done.model_dump(mode="json"), **_status(machine)}


@router.post("/plugins/{plugin_id}/retry")
async def retry(request: Request, plugin_id: str, body: RetryRequest) -> dict[str, Any]:
    """Advance or reset the plugin's retry counters."""
    machine = await machine_of(request, plugin_id)
    await (machine.retry.advance() if body.action == "advance" else machine.retry.reset())
    return _status(machine)


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


def create_app(url: str | None = None) -> FastAPI:
    """The service on the store at ``url`` (opened for the app's lifespan)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_async_store(url) as store:
            app.state.store = store
            yield

    app = FastAPI(title="phaselog plugins", lifespan=lifespan)
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
