"""The pure domain model of phaselog: events, aggregates and rules; no I/O."""

from phaselog.domain.errors import (
    ConcurrencyConflict,
    IntegrityViolation,
    InvalidTransition,
    NotFound,
    PhaselogError,
    StateVersionMismatch,
    StoreUnavailable,
    UnknownEventType,
    ValidationFailed,
)
from phaselog.domain.events import Aggregate, DomainEvent, Snapshot

__all__ = [
    "Aggregate",
    "ConcurrencyConflict",
    "DomainEvent",
    "IntegrityViolation",
    "InvalidTransition",
    "NotFound",
    "PhaselogError",
    "Snapshot",
    "StateVersionMismatch",
    "StoreUnavailable",
    "UnknownEventType",
    "ValidationFailed",
]
