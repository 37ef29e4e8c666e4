"""The audit side of a store: hash chains, seals, integrity checks, archives, timelines and exports.

The modules here read a store through what it hands them; none of them opens one.
"""

__all__: list[str] = []
