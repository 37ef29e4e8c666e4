"""The one exception tree of phaselog.

Every error phaselog raises on purpose derives from :class:`PhaselogError`
(classes defined beside the model they belong to are marked with their module)::

    PhaselogError
    ├── InvalidTransition            a phase or state change the model forbids
    │   └── TaskAlreadyRunning       (task) relaunching an id whose run is still live
    ├── ConcurrencyConflict          another writer recorded first; reload and retry
    │   ├── TaskClaimHeld            (task) another controller holds a live lease
    │   └── StaleRun                 (task) a write from a run that was replaced
    ├── NotFound                     no stream, task, plan or key with that id (also LookupError)
    ├── StateVersionMismatch         stored state cannot be read as the asked version
    │   └── PluginStateUnreadable    (plugin_state) also a ValidationFailed
    ├── ValidationFailed             malformed input or stored data (also ValueError)
    │   ├── InvalidStreamId          (ids) an id breaking the stream-id rule (empty, > 200, controls)
    │   ├── PayloadTooLarge          an event or snapshot encodes to more than max_event_bytes
    │   ├── UnknownEventType         a stored topic no registered class answers to
    │   ├── UnknownPhase             (plugin) a phase name that does not exist
    │   ├── StateValidationFailed    (state) stored state no longer fits its model
    │   └── PluginStateUnreadable    (plugin_state)
    ├── StoreUnavailable             the database cannot be reached, opened or used
    │   ├── StoreClosed              the store was closed: retrying cannot help
    │   ├── SchemaOutdated           (adapters.migrate) tables older than the code: phaselog migrate
    │   ├── NotAPhaselogStore        (adapters.migrate) a database whose tables are not phaselog's
    │   └── ProjectionBusy           (projections) another runner holds the read model's lease
    ├── IntegrityViolation           the stored history was changed behind our back
    ├── KeyUnavailable               personal data without the master key that wraps its subject keys
    ├── SubjectErased                writing personal data of a subject whose key was destroyed
    ├── LegalHoldActive              (holds) archiving, dropping or erasing streams under a legal hold
    ├── TaskCanceled                 (task) raised inside a task runner to cancel it
    ├── ControllerClosed             (task) launching on a closed controller
    ├── PlanError                    (plan) carries .errors and .cleanup_errors
    │   ├── PlanCancelled            a plan was cancelled
    │   ├── PlanTimeout              a plan exceeded its duration limit
    │   └── PlanFailed               one or more steps failed
    ├── RecordedError                (plan) an error known only from the log after a crash
    ├── StateNotInitialized          (state) used before initialize() (also RuntimeError)
    ├── EventManagerNotActive        (state) emitting on a closed manager (also RuntimeError)
    ├── ProjectionHalted             (projections.errors) a read model stopped on an event (on_error="stop")
    ├── LeaseLost                    (projections.engine) a runner lost its read model's lease
    └── ProjectionTimeout            (projections.errors) wait_for() gave up (also TimeoutError)

Errors from drivers (sqlite3, psycopg) and from eventsourcing are wrapped in one
of these with ``raise ... from exc`` so callers never need to import a driver.
"""

from __future__ import annotations

__all__ = [
    "ConcurrencyConflict",
    "IntegrityViolation",
    "InvalidTransition",
    "KeyUnavailable",
    "NotFound",
    "PayloadTooLarge",
    "PhaselogError",
    "StateVersionMismatch",
    "StoreClosed",
    "StoreUnavailable",
    "SubjectErased",
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


class PayloadTooLarge(ValidationFailed):
    """An event or snapshot whose encoded payload exceeds the store's ``max_event_bytes``.

    ``size`` is the encoded size in bytes and ``limit`` the bound it broke.
    """

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class UnknownEventType(ValidationFailed):
    """A stored event's topic is not registered with any event class."""


class StoreUnavailable(PhaselogError):
    """The store cannot be opened or reached."""


class StoreClosed(StoreUnavailable):
    """The store was closed (by its owner, or its ``with`` block ended): nothing more goes through it.

    Unlike other :class:`StoreUnavailable` errors this one is final: loops that
    retry while the database is down stop on it.
    """


class IntegrityViolation(PhaselogError):
    """Stored events were changed, removed or inserted outside phaselog."""


class KeyUnavailable(PhaselogError):
    """Personal data cannot be written or read: no master key, or not the one that wrapped its keys.

    Nothing is written when it is raised; set ``PHASELOG_MASTER_KEY`` (or give the store a key
    provider) with the key the subject keys were wrapped with.
    """


class SubjectErased(PhaselogError):
    """The subject was erased: its key is destroyed and no new personal data of it can be written."""
