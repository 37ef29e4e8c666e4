"""What a service is started on ends with it, and a service takes a store of either shell.

A task controller, a plan, a projections runner or a recoverable state works on
a store it is given; its lifetime is bounded by the store's:

* :func:`tie` registers the service's ``close`` with the store: closing the store,
  or leaving its ``with`` block (by an exception too), closes every service
  tied to it first, newest first, while the store can still record what they
  write on the way out (released claims, a cancelled run and its cleanup).
  The store holds a bound method weakly, so a service its user dropped is not
  kept alive by the store.
* :func:`sync_store` gives a service the sync store it runs on: the store itself,
  or the sync store an async store keeps open on the same database
  (``AsyncStore.sync``). So ``Plan(async_store, …).execute_async()``,
  ``RecoverableState(…, store=async_store)`` and ``TaskController(async_store, …)``
  work as they do with a sync store; anything else with a coroutine ``save`` is
  refused at construction with a typed error naming what to pass.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, cast

from phaselog.domain.errors import ValidationFailed
from phaselog.runtime.ports import ClosesTied, EventStore, KeepsSyncStore

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["sync_store", "tie"]


def sync_store(store: EventStore | KeepsSyncStore | Any, service: str) -> EventStore:
    """The sync store ``service`` runs on: ``store``, or the sync store of an (open) async store."""
    if _is_async(store) and hasattr(type(store), "sync"):
        store = cast("KeepsSyncStore", store).sync  # StoreUnavailable when the async store is not open
    if _is_async(store):
        msg = (
            f"{service} runs on a sync store, and {store!r} is an async one without a sync store: "
            "pass `async_store.sync` (open with `async with open_async_store(url) as async_store:`) "
            "or a store from `open_store(url)`"
        )
        raise ValidationFailed(msg)
    return cast("EventStore", store)


def tie(store: object, close: Callable[[], object]) -> Callable[[], None]:
    """Have ``store`` call ``close`` before it closes; return the function that unties them."""
    if isinstance(store, ClosesTied):
        return store.on_close(close)
    return _untied


def _untied() -> None:
    """Nothing to untie: the store does not close what is tied to it."""


def _is_async(store: object) -> bool:
    return inspect.iscoroutinefunction(getattr(type(store), "save", None))
