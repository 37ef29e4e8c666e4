"""Adapters: opening stores, the codec, the recorders, the audit tools and the CLI."""

from phaselog.adapters.audit.history import (
    as_of,
    export_jsonl,
    timeline,
    verify,
)
from phaselog.adapters.codec import (
    MAX_EVENT_BYTES,
)
from phaselog.adapters.store import (
    Store,
    open_store,
)
from phaselog.runtime.recoverable import set_default_store_factory

# The composition root wires the default store of recoverable states (the runtime looks nothing up).
set_default_store_factory(open_store)

__all__ = [
    "MAX_EVENT_BYTES",
    "Store",
    "as_of",
    "export_jsonl",
    "open_store",
    "timeline",
    "verify",
]
