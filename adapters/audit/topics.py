"""Importing phaselog's domain modules, so that every stored topic resolves to its class.

Shared by the audit (timelines, state as of a version) and the schema upgrade
(:mod:`phaselog.adapters.migrate`, which loads every open stream): it imports
nothing of the store or of the rest of the audit code.
"""

from __future__ import annotations

import importlib
import logging

__all__ = ["DOMAIN_MODULES", "load_domain_modules"]

log = logging.getLogger("phaselog.audit")

DOMAIN_MODULES = (
    "phaselog.domain.plugin",
    "phaselog.domain.task",
    "phaselog.domain.plan",
    "phaselog.domain.state",
)


def load_domain_modules() -> None:
    """Import phaselog's domain modules so every stored topic resolves to its class."""
    for name in DOMAIN_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # pragma: no cover - a partial installation
            log.debug("domain module %s not available: %s", name, exc)
