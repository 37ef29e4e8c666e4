"""Read-model errors follow the store's one translation policy, plus what only read models meet."""

from __future__ import annotations

import sqlite3

import psycopg
import psycopg_pool
import pytest
from eventsourcing import persistence as es

from phaselog.adapters.errors import translate_errors, translate_view_errors
from phaselog.domain.errors import PhaselogError, StoreClosed, StoreUnavailable, ValidationFailed
from phaselog.projections.errors import ProjectionBusy

CASES: list[tuple[BaseException, type[PhaselogError]]] = [
    (psycopg.errors.ProgramLimitExceeded("index row size exceeds maximum"), ValidationFailed),
    (psycopg.DataError("invalid byte sequence"), ValidationFailed),
    (sqlite3.DataError("string or blob too big"), ValidationFailed),
    (psycopg.OperationalError("server closed the connection"), StoreUnavailable),
    (sqlite3.OperationalError("database is locked"), StoreUnavailable),
    (psycopg_pool.PoolClosed("the pool is closed"), StoreClosed),
    (es.ConnectionPoolClosedError("closed"), StoreClosed),
]


@pytest.mark.parametrize(("raised", "expected"), CASES, ids=[type(r).__name__ for r, _ in CASES])
def test_read_model_errors_are_translated_as_the_store_translates_them(
    raised: BaseException, expected: type[PhaselogError]
) -> None:
    """translate_view_errors gives a driver error the same phaselog error as translate_errors, chained."""
    for translate in (translate_errors, translate_view_errors):
        with pytest.raises(expected) as caught, translate("folding"):
            raise raised
        assert caught.value.__cause__ is raised
        assert str(caught.value).startswith("folding: ")


@pytest.mark.parametrize(
    "raised", [psycopg.errors.LockNotAvailable("lock timeout"), psycopg.errors.QueryCanceled("canceled")]
)
def test_a_lock_another_runner_holds_is_busy_not_a_failure(raised: BaseException) -> None:
    """A lock timeout or a cancelled statement in read-model work is ProjectionBusy (a StoreUnavailable)."""
    with (
        pytest.raises(ProjectionBusy, match="another runner holds the lock"),
        translate_view_errors("folding"),
    ):
        raise raised


def test_an_os_error_in_read_model_work_is_store_unavailable_and_phaselog_errors_pass_through() -> None:
    """A read-model file that cannot be opened is StoreUnavailable; a phaselog error is left as raised."""
    with (
        pytest.raises(StoreUnavailable, match="folding: no such file") as caught,
        translate_view_errors("folding"),
    ):
        raise FileNotFoundError("no such file")
    assert not isinstance(caught.value, ProjectionBusy)
    own = ValidationFailed("bad row")
    with pytest.raises(ValidationFailed) as passed, translate_view_errors("folding"):
        raise own
    assert passed.value is own
