"""eventsourcing recorders extended so stored events are append-only in the database.

The application recorder classes are selected through eventsourcing's
``APPLICATION_RECORDER_TOPIC`` setting; each adds, to the table-creation
statements eventsourcing already runs, triggers that reject any UPDATE or
DELETE of a stored event. Immutable events are enforced by the database
itself, not only by the absence of an API that changes them.
"""

from __future__ import annotations

from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore
from psycopg.sql import SQL, Identifier

__all__ = ["AppendOnlyPostgresApplicationRecorder", "AppendOnlySQLiteApplicationRecorder"]

APPEND_ONLY_MESSAGE = "phaselog stored events are append-only"


class AppendOnlySQLiteApplicationRecorder(SQLiteApplicationRecorder):
    """SQLite application recorder whose events table rejects UPDATE and DELETE."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name)

    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        table = self.events_table_name
        for action in ("UPDATE", "DELETE"):
            statements.append(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} "
                f"BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
            )
        return statements


class AppendOnlyPostgresApplicationRecorder(PostgresApplicationRecorder):
    """PostgreSQL application recorder whose events table rejects UPDATE, DELETE, TRUNCATE."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        table = Identifier(self.events_table_name)
        function = Identifier(f"{self.events_table_name}_append_only")
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{function}() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION '{message}' USING ERRCODE = 'insufficient_privilege'; "
                "END $$"
            ).format(schema=schema, function=function, message=SQL(APPEND_ONLY_MESSAGE))
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE TRIGGER {trigger} BEFORE UPDATE OR DELETE ON {schema}.{table} "
                "FOR EACH ROW EXECUTE FUNCTION {schema}.{function}()"
            ).format(
                trigger=Identifier(f"{self.events_table_name}_no_change"),
                schema=schema,
                table=table,
                function=function,
            )
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE TRIGGER {trigger} BEFORE TRUNCATE ON {schema}.{table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{function}()"
            ).format(
                trigger=Identifier(f"{self.events_table_name}_no_truncate"),
                schema=schema,
                table=table,
                function=function,
            )
        )
