"""Application services: plugin machines, task controllers, plans and recoverable state."""

from phaselog.domain.plan import (
    PlanCancelled,
    PlanFailed,
    PlanTimeout,
)
from phaselog.domain.plugin import (
    PluginPhase,
    Transition,
    is_valid_transition,
)
from phaselog.domain.plugin_state import (
    PluginStateManager,
)
from phaselog.domain.task import (
    TaskCanceled,
    TaskState,
)
from phaselog.runtime.plan_state import (
    CancelToken,
    GenericStep,
    PlanContext,
    PlanState,
    Step,
)
from phaselog.runtime.plans import (
    Plan,
)
from phaselog.runtime.plugins import (
    Observer,
    PluginService,
    PluginStateMachine,
    RetryState,
)
from phaselog.runtime.recoverable import (
    Event,
    EventManager,
    EventPersistStateData,
    RecoverableState,
    SyncRecoverableState,
    get_default_store,
    set_default_store,
    set_default_store_factory,
)
from phaselog.runtime.task_models import (
    CancelContext,
    LogEntry,
    Progress,
    StateTransition,
    TaskStatus,
)
from phaselog.runtime.task_runner import (
    ActiveTask,
    TaskRunner,
)
from phaselog.runtime.tasks import (
    TaskController,
)

__all__ = [
    "ActiveTask",
    "CancelContext",
    "CancelToken",
    "Event",
    "EventManager",
    "EventPersistStateData",
    "GenericStep",
    "LogEntry",
    "Observer",
    "Plan",
    "PlanCancelled",
    "PlanContext",
    "PlanFailed",
    "PlanState",
    "PlanTimeout",
    "PluginPhase",
    "PluginService",
    "PluginStateMachine",
    "PluginStateManager",
    "Progress",
    "RecoverableState",
    "RetryState",
    "StateTransition",
    "Step",
    "SyncRecoverableState",
    "TaskCanceled",
    "TaskController",
    "TaskRunner",
    "TaskState",
    "TaskStatus",
    "Transition",
    "get_default_store",
    "is_valid_transition",
    "set_default_store",
    "set_default_store_factory",
]
