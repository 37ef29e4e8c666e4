"""Task states read as their names where a person reads them, and stay integers where stored."""

from __future__ import annotations

import orjson

from phaselog.domain.task import TaskState


def test_a_task_state_prints_as_its_name() -> None:
    """``print(state)`` and ``f"{state}"`` show ``COMPLETED``, not ``3``."""
    state = TaskState.COMPLETED
    assert str(state) == "COMPLETED"
    assert f"{state}" == "COMPLETED"
    assert f"{state:>10}" == " COMPLETED"
    assert "%s" % state == "COMPLETED"  # noqa: UP031 - the logging style


def test_a_task_state_is_still_its_number_where_stored() -> None:
    """The state compares, converts, formats numerically and encodes as its integer."""
    state = TaskState.CANCELED
    assert state == 6
    assert int(state) == 6
    assert f"{state:d}" == "6"
    assert orjson.loads(orjson.dumps({"state": state})) == {"state": 6}
    assert TaskState(6) is state
