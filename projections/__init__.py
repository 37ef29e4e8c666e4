"""Read models rebuilt from the event log, and the runner that keeps them current."""

from phaselog.projections.base import (
    DictRows,
    EventData,
    Projection,
    ProjectionHalted,
    ProjectionTimeout,
    Rows,
    event_data,
)
from phaselog.projections.models import (
    PlanRuns,
    PluginPhases,
    RecoverableStates,
    TaskStatuses,
)
from phaselog.projections.readmodel import ReadModel
from phaselog.projections.runner import (
    Projections,
    default_projections,
)

__all__ = [
    "DictRows",
    "EventData",
    "PlanRuns",
    "PluginPhases",
    "Projection",
    "ProjectionHalted",
    "ProjectionTimeout",
    "Projections",
    "ReadModel",
    "RecoverableStates",
    "Rows",
    "TaskStatuses",
    "default_projections",
    "event_data",
]
