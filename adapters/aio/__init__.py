"""phaselog.aio: the asyncio API — stores, subscriptions, plugins and read models as coroutines."""

from phaselog.aio.factory import (
    open_async_store,
)
from phaselog.aio.plugins import (
    AsyncObserver,
    AsyncPluginService,
    AsyncPluginStateMachine,
    AsyncRetryState,
)
from phaselog.aio.projections import (
    AsyncProjections,
    AsyncReadModel,
)
from phaselog.aio.store import (
    AsyncStore,
)
from phaselog.aio.tasks import (
    AsyncTaskController,
    AsyncTaskRunner,
)

__all__ = [
    "AsyncObserver",
    "AsyncPluginService",
    "AsyncPluginStateMachine",
    "AsyncProjections",
    "AsyncReadModel",
    "AsyncRetryState",
    "AsyncStore",
    "AsyncTaskController",
    "AsyncTaskRunner",
    "open_async_store",
]
