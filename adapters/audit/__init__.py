"""The audit side of a store: hash chains, seals, integrity checks, archives, timelines and exports.

The modules here read a store through :class:`~phaselog.adapters.audit.ports.AuditedStore`,
the protocol they own (the store answers it and calls them); none of them opens
a store or imports :mod:`phaselog.adapters.store`.
"""

__all__: list[str] = []
