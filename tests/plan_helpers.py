"""What the plan tests share: their wait bounds and a look at a plan's recorded events."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from phaselog.adapters import Store

# Upper bound of every wait here, never reached when the code is right (tools/mutation.sh
# shortens it so that a mutant which makes a hook wait fails fast).
WAIT = float(os.environ.get("PHASELOG_TEST_WAIT", "30"))
# Plan deadlines must cover the store writes made before the timed part (several PostgreSQL commits
# on a loaded 2-core machine); the tests only wait for them where a timeout is the point.
# tools/mutation.sh, which runs only the in-memory store, shortens them through the environment.
LIMIT = timedelta(seconds=float(os.environ.get("PHASELOG_TEST_PLAN_LIMIT", "2")))


def events_of(store: Store, plan_id: str, cls: type[Any]) -> list[Any]:
    """The events of class ``cls`` recorded in the plan's stream."""
    return [e for e in store.stream(f"plan:{plan_id}") if isinstance(e, cls)]
