"""The commit horizon's SQL: the appends in flight to one events table, and the stall report's rows.

Only a phaselog append still in flight can hold readers of the global order
back (see ``docs/store.md``, "The commit horizon"): an append holds a shared
transaction-level advisory lock (the *append lock*) until it ends, and
``pg_locks`` shows its holders, with their transaction ids, to every role.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from phaselog.runtime.horizon import InFlightAppend, PreparedTransaction

__all__ = [
    "HORIZON",
    "IN_FLIGHT",
    "IN_FLIGHT_DETAILS",
    "PREPARED",
    "in_flight_append",
    "prepared_transaction",
]

# The appends in flight to one events table: holders of its append lock (a shared, transaction-level
# advisory lock with a bigint key, so classid 0 and objsubid 1), joined to their transaction ids. One
# read of pg_locks (materialized), which every role may read.
IN_FLIGHT = """
locks AS MATERIALIZED (
    SELECT locktype, database, classid, objid, objsubid, virtualtransaction, transactionid, pid
    FROM pg_catalog.pg_locks WHERE locktype IN ('advisory', 'transactionid')
),
appends AS (
    SELECT a.pid, a.virtualtransaction, t.transactionid FROM locks a
    LEFT JOIN locks t ON t.virtualtransaction = a.virtualtransaction AND t.locktype = 'transactionid'
    WHERE a.locktype = 'advisory' AND a.classid = 0 AND a.objid = {append_lock}::oid AND a.objsubid = 1
      AND a.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = current_database())
)"""
# The horizon: no append still in flight has a transaction id below it, and every append that will
# start has one at or above it. Run as a statement of its own, BEFORE the read that uses it (the read's
# snapshot must be taken after this look; docs/store.md gives the argument).
HORIZON = (
    "WITH s AS (SELECT pg_current_snapshot() AS snap),"
    + IN_FLIGHT
    + """
SELECT least(pg_snapshot_xmax(s.snap), (
    SELECT x FROM pg_snapshot_xip(s.snap) AS x
    WHERE (x::text::bigint & 4294967295) IN (SELECT transactionid::text::bigint FROM appends)
    ORDER BY x LIMIT 1))::text AS h FROM s"""
)
# Each append in flight with its session (pg_stat_activity) or its prepared transaction.
IN_FLIGHT_DETAILS = """
SELECT w.pid, w.transactionid::text AS xid, s.application_name, host(s.client_addr) AS client_addr,
    s.state, s.query, extract(epoch FROM clock_timestamp() - coalesce(s.xact_start, p.prepared)) AS age,
    p.gid, p.owner, p.database
FROM appends w
LEFT JOIN pg_catalog.pg_stat_activity s ON s.pid = w.pid
LEFT JOIN pg_catalog.pg_prepared_xacts p ON w.pid IS NULL AND p.transaction = w.transactionid"""

# The prepared transactions of this database: they cannot hold the horizon, but they hold VACUUM.
PREPARED = """
SELECT gid, owner, database, extract(epoch FROM clock_timestamp() - prepared) AS age
FROM pg_catalog.pg_prepared_xacts WHERE database = current_database() ORDER BY prepared"""


def prepared_transaction(row: Mapping[str, Any]) -> PreparedTransaction:
    """A row of :data:`PREPARED` (or the prepared columns of :data:`IN_FLIGHT_DETAILS`)."""
    return PreparedTransaction(
        str(row["gid"]), str(row["owner"]), str(row["database"]), float(row["age"] or 0.0)
    )


def in_flight_append(row: Mapping[str, Any]) -> InFlightAppend:
    """A row of :data:`IN_FLIGHT_DETAILS`; session fields the server hides from this role are None."""
    prepared = prepared_transaction(row) if row["gid"] is not None else None
    query = row["query"]
    return InFlightAppend(
        pid=int(row["pid"]) if row["pid"] is not None else None,
        transaction_id=int(row["xid"]) if row["xid"] is not None else None,
        age_seconds=float(row["age"] or 0.0),
        application_name=row["application_name"] or None,
        client_addr=row["client_addr"],
        state=row["state"],
        last_query=query if query and query != "<insufficient privilege>" else None,
        prepared=prepared,
    )
