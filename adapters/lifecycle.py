"""The history's lifecycle on a store: keys and erasure, legal holds, archives read through (a mixin)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from phaselog.adapters.audit.tiers import ArchiveLocation, ArchiveTier, DirectoryLocation
from phaselog.adapters.crypto.erasure import ErasingStore, Erasure, erase
from phaselog.adapters.crypto.keyring import KeyRing
from phaselog.adapters.crypto.keys import KeyProvider
from phaselog.adapters.crypto.tables import key_table
from phaselog.adapters.holds import active_holds, lift_hold, place_hold
from phaselog.domain.holds import LegalHold

if TYPE_CHECKING:
    from phaselog.adapters.application import PhaselogApplication

__all__ = ["Lifecycle", "attach_keys"]


def attach_keys(app: Any, provider: KeyProvider | None) -> KeyRing:
    """Give ``app``'s mapper the key ring of its store, its keys wrapped by ``provider`` (if any yet)."""
    ring = KeyRing(key_table(app.recorder), provider)
    app.mapper.keyring = ring
    return ring


class Lifecycle:
    """``store.keys``/``erase``, legal holds (``hold``, ``lift_hold``, ``holds``) and ``archives``."""

    app: PhaselogApplication
    archives: ArchiveTier | None = None
    """The archived tier read through below the database's first position (``use_archives``)."""

    def use_archives(self, location: ArchiveLocation | str | Path) -> ArchiveTier:
        """Read archived history through from ``location`` (a directory, or an fsspec-like location)."""
        where = DirectoryLocation(location) if isinstance(location, str | Path) else location
        self.archives = ArchiveTier(self, where)
        return self.archives

    def _through_archives(
        self, found: list[Any], start: int, limit: int, stop: int | None, topics: Sequence[str] = ()
    ) -> list[Any]:
        """``found`` (a page of the live log from ``start``) preceded by the archived positions it lacks."""
        tier = self.archives
        if tier is None or start >= tier.live_start():
            return found
        return [*tier.log_records(start, limit, stop, topics), *found][:limit]

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

    def hold(self, prefix: str, *, reason: str, by: str | None = None) -> LegalHold:
        """Place a legal hold on the streams whose ids start with ``prefix`` (no archiving, no erasing)."""
        return place_hold(self, prefix, reason=reason, by=by)

    def lift_hold(self, prefix: str, *, reason: str, by: str | None = None) -> LegalHold:
        """Lift the legal hold on ``prefix`` (recorded)."""
        return lift_hold(self, prefix, reason=reason, by=by)

    def holds(self) -> list[str]:
        """The prefixes under a legal hold now."""
        held: list[str] = active_holds(self)
        return held
