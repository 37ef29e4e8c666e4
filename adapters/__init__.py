"""Adapters: the stores, the codec and the CLI."""

from phaselog.adapters.store import Store, open_store

__all__ = ["Store", "open_store"]
