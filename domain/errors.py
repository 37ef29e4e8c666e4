"""The one exception tree of phaselog.

Every error phaselog raises on purpose derives from :class:`PhaselogError`::

    PhaselogError
    ├── InvalidTransition        a phase or state change the model forbids
    ├── ConcurrencyConflict      another writer recorded first; reload and retry
    ├── NotFound                 no stream, task, plan or key with that id
    ├── StateVersionMismatch     stored state cannot be read as the asked version
    ├── ValidationFailed         malformed input or stored data (also a ValueError)
    │   └── UnknownEventType     a stored topic no registered class answers to
    ├── StoreUnavailable         the database cannot be reached or opened
    ├── IntegrityViolation       the stored history was changed behind our back
    ├── TaskCanceled             raised inside a task runner to cancel the task
    ├── PlanCancelled            a plan was cancelled
    ├── PlanTimeout              a plan exceeded its duration limit
    └── PlanFailed               one or more plan steps failed (see ``.errors``)

Errors from drivers (sqlite3, psycopg) and from eventsourcing are wrapped in one
of these with ``raise ... from exc`` so callers never need to import a driver.
"""

from __future__ import annotations

__all__ = [
    "ConcurrencyConflict",
    "IntegrityViolation",
    "InvalidTransition",
    "NotFound",
    "PhaselogError",
    "StateVersionMismatch",
    "StoreUnavailable",
    "UnknownEventType",
    "ValidationFailed",
]


class PhaselogError(Exception):
    """Root of every error phaselog raises on purpose."""


class InvalidTransition(PhaselogError):
    """A transition that the state machine does not allow."""


class ConcurrencyConflict(PhaselogError):
    """Another writer appended to the same stream from the same version first."""


class NotFound(PhaselogError, LookupError):
    """No stream, task, plan or key exists with the given id."""


class StateVersionMismatch(PhaselogError):
    """Stored state cannot be decoded as the requested version or model."""


class ValidationFailed(PhaselogError, ValueError):
    """Input or stored data failed validation."""


class UnknownEventType(ValidationFailed):
    """A stored event's topic is not registered with any event class."""


class StoreUnavailable(PhaselogError):
    """The store cannot be opened or reached."""


class IntegrityViolation(PhaselogError):
    """Stored events were changed, removed or inserted outside phaselog."""
