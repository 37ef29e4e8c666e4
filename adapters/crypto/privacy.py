"""The store's side of crypto-shredding: its key ring and ``erase`` (mixed into the ``Store``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from phaselog.adapters.crypto.erasure import ErasingStore, Erasure, erase
from phaselog.adapters.crypto.keyring import KeyRing
from phaselog.adapters.crypto.tables import key_table

if TYPE_CHECKING:
    from phaselog.adapters.application import PhaselogApplication

__all__ = ["Privacy", "attach_keys"]


def attach_keys(app: Any) -> KeyRing:
    """Give ``app``'s mapper the key ring of its store (``$PHASELOG_MASTER_KEY`` wraps the keys)."""
    ring = KeyRing(key_table(app.recorder))
    app.mapper.keyring = ring
    return ring


class Privacy:
    """``store.keys`` and ``store.erase``."""

    app: PhaselogApplication

    @property
    def keys(self) -> KeyRing:
        """The key ring of this store's data subjects (``keys.use(provider)`` plugs in a key service)."""
        ring = self.app.mapper.keyring
        assert ring is not None  # noqa: S101 - the store attaches it as it opens
        return ring

    def erase(
        self, subject: str, *, reason: str, requested_by: str | None = None, projections: Any = None
    ) -> Erasure:
        """Erase ``subject`` (:func:`phaselog.adapters.crypto.erasure.erase`): its key destroyed, for good."""
        store = cast("ErasingStore", self)  # the Store this is mixed into
        return erase(store, subject, reason=reason, requested_by=requested_by, projections=projections)
