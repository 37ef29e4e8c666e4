"""The server-side functions of phaselog's PostgreSQL recorder: the append, and partition upkeep.

``<events>_append_batch(commands, ids, versions, topics, states, open_flags)``
is the only statement an append sends; one call writes every command that
gathered while the previous commit was in flight (group commit: one
transaction, one WAL flush). In that one implicit transaction it

1. refuses to run in a transaction that already has a transaction id (the
   append must be what assigns it), runs ``UNLISTEN`` so that PostgreSQL refuses
   to ``PREPARE`` it, marks itself in flight with a shared transaction-level
   advisory lock (the *append lock*, held until the transaction ends), then
   draws the events' positions together with the transaction id under the
   *positions lock*, held for microseconds (released before any insert):
   position order is transaction-id order between appends, and readers that
   stop below the oldest append still in flight (see ``docs/store.md``) never
   pass a position that commits later;
2. makes sure the partitions ahead exist (new stores are partitioned by position);
3. locks the batch's stream heads in ``phaselog_streams`` in one order (no
   deadlock between batches), then checks each command's expected versions
   against them, so two writers appending the same version conflict even where
   the events table is partitioned and cannot hold a unique (stream, version)
   index across partitions; a command that conflicts gets its reason in
   ``conflicts[command]`` and writes nothing, the others go on;
4. inserts the written events, their per-stream chain rows and the new stream
   heads. It sends no NOTIFY: the notifier wakes followers after the commit, so
   concurrent commits do not queue on the notification queue's global lock.

``<events>_append(ids, versions, topics, states, open_flags)`` is the
one-command append of schema version 3, kept for processes not yet upgraded.

``<events>_ensure_partitions(upto)`` creates partitions of the events and chain
tables (``CREATE TABLE ... LIKE`` then ``ATTACH PARTITION``, which does not block
concurrent inserts) so that positions up to ``upto`` plus one partition fit.
"""

from __future__ import annotations

from psycopg.sql import SQL

__all__ = ["APPEND_BATCH_FUNCTION", "APPEND_FUNCTION", "ENSURE_PARTITIONS_FUNCTION"]

ENSURE_PARTITIONS_FUNCTION = SQL(
    """
CREATE OR REPLACE FUNCTION {schema}.{ensure}(upto bigint) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    size bigint;
    upper bigint;
    part text;
    guarded text;
BEGIN
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = {events_regclass}::regclass) <> 'p' THEN
        RETURN 9223372036854775807;  -- a store created before partitioning: nothing to keep up
    END IF;
    size := (SELECT m.value::bigint FROM {schema}.{meta} m WHERE m.key = 'partition_size');
    upper := coalesce((SELECT m.value::bigint FROM {schema}.{meta} m
        WHERE m.key = 'partition_upper'), 0);
    IF upper >= upto + size / 2 THEN
        RETURN upper - size / 2;  -- enough ahead: no lock, nothing to create
    END IF;
    PERFORM pg_advisory_xact_lock({partition_lock});  -- creators queue; appenders do not
    upper := coalesce((SELECT m.value::bigint FROM {schema}.{meta} m
        WHERE m.key = 'partition_upper'), 0);
    WHILE upper < upto + size LOOP
        FOREACH guarded IN ARRAY ARRAY[{events_name}, {chain_name}] LOOP
            part := guarded || '_p' || (upper / size);
            EXECUTE format('CREATE TABLE IF NOT EXISTS %I.%I (LIKE %I.%I INCLUDING DEFAULTS)',
                {schema_name}, part, {schema_name}, guarded);
            EXECUTE format('ALTER TABLE %I.%I ATTACH PARTITION %I.%I FOR VALUES FROM (%s) TO (%s)',
                {schema_name}, guarded, {schema_name}, part, upper, upper + size);
            EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE TRUNCATE ON %I.%I '
                'FOR EACH STATEMENT EXECUTE FUNCTION %I.%I()',
                part || '_no_truncate', {schema_name}, part, {schema_name}, {guard_name});
        END LOOP;
        upper := upper + size;
    END LOOP;
    INSERT INTO {schema}.{meta} (key, value) VALUES ('partition_upper', upper::text)
        ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
    RETURN upper - size / 2;  -- the next append past this position makes sure of the next partition
END
$fn$
"""
)

APPEND_FUNCTION = SQL(
    """
CREATE OR REPLACE FUNCTION {schema}.{append}(
    p_ids text[], p_versions bigint[], p_topics text[], p_states bytea[], p_open boolean[]
) RETURNS SETOF bigint LANGUAGE plpgsql AS $fn$
DECLARE
    n integer := cardinality(p_ids);
    tx xid8;
    positions bigint[];
    digests text[] := '{{}}';
    prev text;
    threshold bigint;
    head_version bigint;
    i integer;
BEGIN
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'an append must be the first write of its transaction (this one is already %)',
            pg_current_xact_id_if_assigned() USING ERRCODE = 'invalid_transaction_state',
            HINT = 'append in a transaction of its own, before anything else writes in it';
    END IF;
    PERFORM pg_advisory_xact_lock_shared({append_lock});  -- marks this append in flight until it ends
    PERFORM pg_advisory_lock({position_lock});
    tx := pg_current_xact_id();
    positions := ARRAY(SELECT nextval({seq}::regclass) FROM generate_series(1, n));
    PERFORM pg_advisory_unlock({position_lock});
    threshold := coalesce(nullif(current_setting({threshold_setting}, true), ''), '0')::bigint;
    IF positions[n] >= threshold THEN
        threshold := {schema}.{ensure}(positions[n]);
        PERFORM set_config({threshold_setting}, threshold::text, false);
    END IF;
    FOR i IN 1..n LOOP
        prev := NULL;
        IF i > 1 AND p_ids[i] = p_ids[i - 1] THEN
            IF p_versions[i] <> p_versions[i - 1] + 1 THEN
                RAISE EXCEPTION 'stream % skips from version % to %',
                    p_ids[i], p_versions[i - 1], p_versions[i] USING ERRCODE = 'unique_violation';
            END IF;
            prev := digests[i - 1];
        ELSE
            SELECT h.version, h.digest INTO head_version, prev FROM {schema}.{heads} h
                WHERE h.stream_id = p_ids[i] FOR UPDATE;
            IF NOT FOUND THEN  -- a new stream; of two creators racing, the second finds the first's row
                INSERT INTO {schema}.{heads} (stream_id, version, position, open, digest)
                    VALUES (p_ids[i], p_versions[i] - 1, 0, true, {genesis})
                    ON CONFLICT (stream_id) DO NOTHING;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'stream % was created concurrently', p_ids[i]
                        USING ERRCODE = 'unique_violation';
                END IF;
                prev := {genesis};
            ELSIF head_version <> p_versions[i] - 1 THEN
                RAISE EXCEPTION 'stream % is at version %, not %', p_ids[i], head_version, p_versions[i] - 1
                    USING ERRCODE = 'unique_violation';
            END IF;
        END IF;
        digests[i] := encode(sha256(convert_to(prev || E'\\n' || positions[i] || E'\\n' || p_ids[i]
            || E'\\n' || p_versions[i] || E'\\n' || p_topics[i] || E'\\n', 'UTF8')
            || sha256(p_states[i])), 'hex');
    END LOOP;
    INSERT INTO {schema}.{events} (originator_id, originator_version, topic, state, notification_id, tx_id)
        SELECT u.i, u.v, u.t, u.s, u.p, tx FROM unnest(p_ids, p_versions, p_topics, p_states, positions)
        AS u(i, v, t, s, p);
    INSERT INTO {schema}.{chain} (position, originator_id, originator_version, digest, link)
        SELECT u.p, u.i, u.v, u.d, {link} FROM unnest(positions, p_ids, p_versions, digests) AS u(p, i, v, d);
    UPDATE {schema}.{heads} AS h
        SET version = u.v, position = u.p, open = u.o, digest = u.d, updated_at = now()
        FROM (SELECT DISTINCT ON (x.i) x.i, x.v, x.p, x.o, x.d
              FROM unnest(p_ids, p_versions, positions, p_open, digests) AS x(i, v, p, o, d)
              ORDER BY x.i, x.v DESC) AS u
        WHERE h.stream_id = u.i;
    PERFORM pg_notify({channel}, '');
    RETURN QUERY SELECT unnest(positions);
END
$fn$
"""
)

APPEND_BATCH_FUNCTION = SQL(
    """
CREATE OR REPLACE FUNCTION {schema}.{append_batch}(
    p_commands integer[], p_ids text[], p_versions bigint[], p_topics text[], p_states bytea[],
    p_open boolean[], OUT positions bigint[], OUT conflicts text[]
) LANGUAGE plpgsql AS $fn$
DECLARE
    n integer := cardinality(p_ids);
    tx xid8;
    drawn bigint[];
    digests text[];
    threshold bigint;
    s_ids text[];  -- the distinct streams of the batch, in lock order, and their heads as it goes
    s_versions bigint[];  -- NULL: a new stream (any first version)
    s_digests text[];
    s_positions bigint[];
    s_opens boolean[];
    s_created boolean[];
    s_written boolean[];
    sid text;
    found_version bigint;
    found_digest text;
    head integer;
    first integer := 1;
    last integer;
    i integer;
    reason text;
    prev text;
    conflicted boolean := false;
BEGIN
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'an append must be the first write of its transaction (this one is already %)',
            pg_current_xact_id_if_assigned() USING ERRCODE = 'invalid_transaction_state',
            HINT = 'append in a transaction of its own, before anything else writes in it';
    END IF;
    -- PostgreSQL refuses to PREPARE a transaction that ran UNLISTEN, so no prepared append can hold
    -- readers. UNLISTEN is a no-op until the session has listened once (LISTEN and UNLISTEN together,
    -- once per session); neither takes the notification queue's global lock that a NOTIFY does.
    IF current_setting({unprepared_setting}, true) IS DISTINCT FROM 'on' THEN
        LISTEN phaselog_append_guard;
        PERFORM set_config({unprepared_setting}, 'on', false);
    END IF;
    UNLISTEN phaselog_append_guard;
    PERFORM pg_advisory_xact_lock_shared({append_lock});  -- marks this append in flight until it ends
    PERFORM pg_advisory_lock({position_lock});
    tx := pg_current_xact_id();
    IF n = 1 THEN  -- the usual lone event: plain expressions, no query
        drawn := ARRAY[nextval({seq}::regclass)];
    ELSE
        drawn := ARRAY(SELECT nextval({seq}::regclass) FROM generate_series(1, n));
    END IF;
    PERFORM pg_advisory_unlock({position_lock});
    threshold := coalesce(nullif(current_setting({threshold_setting}, true), ''), '0')::bigint;
    IF drawn[n] >= threshold THEN
        threshold := {schema}.{ensure}(drawn[n]);
        PERFORM set_config({threshold_setting}, threshold::text, false);
    END IF;
    -- Lock every stream head of the batch in one order (no deadlock between batches), creating new ones.
    IF n = 1 THEN
        s_ids := p_ids;
    ELSE
        s_ids := ARRAY(SELECT DISTINCT x COLLATE "C" FROM unnest(p_ids) AS x ORDER BY 1);
    END IF;
    FOREACH sid IN ARRAY s_ids LOOP
        SELECT h.version, h.digest INTO found_version, found_digest FROM {schema}.{heads} h
            WHERE h.stream_id = sid FOR UPDATE;
        IF FOUND THEN
            s_versions := s_versions || found_version;
            s_digests := s_digests || found_digest;
            s_created := s_created || false;
        ELSE
            INSERT INTO {schema}.{heads} (stream_id, version, position, open, digest)
                VALUES (sid, 0, 0, true, {genesis}) ON CONFLICT (stream_id) DO NOTHING;
            s_created := s_created || FOUND;  -- not found: another append created it meanwhile
            s_versions := s_versions || (CASE WHEN FOUND THEN NULL ELSE -1 END)::bigint;
            s_digests := s_digests || {genesis}::text;
        END IF;
        s_positions := s_positions || 0::bigint;
        s_opens := s_opens || true;
        s_written := s_written || false;
    END LOOP;
    positions := array_fill(NULL::bigint, ARRAY[n]);
    digests := array_fill(NULL::text, ARRAY[n]);
    conflicts := array_fill(NULL::text, ARRAY[p_commands[n]]);
    -- Each command in turn: all of its events follow their streams' heads, or none is written.
    WHILE first <= n LOOP
        last := first;
        WHILE last < n AND p_commands[last + 1] = p_commands[first] LOOP
            last := last + 1;
        END LOOP;
        reason := NULL;
        FOR i IN first..last LOOP
            IF i > first AND p_ids[i] = p_ids[i - 1] THEN
                IF p_versions[i] <> p_versions[i - 1] + 1 THEN
                    reason := format('stream %s skips from version %s to %s',
                        p_ids[i], p_versions[i - 1], p_versions[i]);
                END IF;
            ELSE
                head := array_position(s_ids, p_ids[i]);
                IF s_versions[head] = -1 THEN
                    reason := format('stream %s was created concurrently', p_ids[i]);
                ELSIF s_versions[head] <> p_versions[i] - 1 THEN
                    reason := format('stream %s is at version %s, not %s',
                        p_ids[i], s_versions[head], p_versions[i] - 1);
                END IF;
            END IF;
            EXIT WHEN reason IS NOT NULL;
        END LOOP;
        IF reason IS NOT NULL THEN
            conflicts[p_commands[first]] := reason;
            conflicted := true;
        ELSE
            FOR i IN first..last LOOP
                head := array_position(s_ids, p_ids[i]);
                prev := CASE WHEN i > first AND p_ids[i] = p_ids[i - 1] THEN digests[i - 1]
                    ELSE s_digests[head] END;
                digests[i] := encode(sha256(convert_to(prev || E'\\n' || drawn[i] || E'\\n' || p_ids[i]
                    || E'\\n' || p_versions[i] || E'\\n' || p_topics[i] || E'\\n', 'UTF8')
                    || sha256(p_states[i])), 'hex');
                positions[i] := drawn[i];
                s_versions[head] := p_versions[i];
                s_digests[head] := digests[i];
                s_positions[head] := drawn[i];
                s_opens[head] := p_open[i];
                s_written[head] := true;
            END LOOP;
        END IF;
        first := last + 1;
    END LOOP;
    INSERT INTO {schema}.{events} (originator_id, originator_version, topic, state, notification_id, tx_id)
        SELECT u.i, u.v, u.t, u.s, u.p, tx FROM unnest(p_ids, p_versions, p_topics, p_states, positions)
        AS u(i, v, t, s, p) WHERE u.p IS NOT NULL;
    INSERT INTO {schema}.{chain} (position, originator_id, originator_version, digest, link)
        SELECT u.p, u.i, u.v, u.d, {link} FROM unnest(positions, p_ids, p_versions, digests) AS u(p, i, v, d)
        WHERE u.p IS NOT NULL;
    -- One indexed UPDATE per written stream: cheaper than one UPDATE ... FROM unnest(...) join.
    FOR head IN 1..cardinality(s_ids) LOOP
        IF s_written[head] THEN
            UPDATE {schema}.{heads} SET version = s_versions[head], position = s_positions[head],
                open = s_opens[head], digest = s_digests[head], updated_at = now()
                WHERE stream_id = s_ids[head];
        END IF;
    END LOOP;
    IF conflicted THEN  -- a new stream that only failed commands wrote to is not a stream
        DELETE FROM {schema}.{heads} h USING unnest(s_ids, s_created, s_written) AS u(i, c, w)
            WHERE u.c AND NOT u.w AND h.stream_id = u.i;
    END IF;
END
$fn$
"""
)
