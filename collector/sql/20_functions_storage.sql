-- Repeatable: the functions that keep the stored data in shape: daily partitions, retention,
-- hourly rollups, and the display of stream epochs. Re-applied by the migrator after the
-- versioned migrations whenever a file of collector/sql changes (ww_migrate.h): edit a
-- function here, in place; no migration redefines it. Every statement is idempotent.
--
-- SECURITY DEFINER functions run as their owner, the schema owner that runs the migrations
-- (CREATE OR REPLACE keeps the owner and the grants), with a fixed search_path so that a
-- caller cannot substitute objects of its own (pg_temp last); EXECUTE is revoked from
-- PUBLIC and granted by ww_grant_roles() (90_grants.sql) to waferwatch_writer only.

-- Partitions of every time-partitioned table for the days [from_day, from_day + days): daily
-- ones TABLE_pYYYYMMDD of node_samples, latency_windows, the per-node tiers
-- node_rollup_1m and latency_node_1h (0018), node_samples_compact (0019) and
-- latency_windows_compact (0021), monthly ones TABLE_pYYYYMM of node_rollup_1h
-- (~780k rows a day, kept a year: twelve partitions, not 365). A bucket whose rows already
-- sit in the default partition is left there (NOTICE). Callable by the writer without any
-- DDL right: the function runs as its owner (the schema owner, who owns the partitioned
-- tables), with a fixed search_path so that a caller cannot substitute objects of its own
-- (pg_temp last). Only the owner and waferwatch_writer may execute it.
CREATE OR REPLACE FUNCTION ww_ensure_partitions(from_day date, days integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    d date;
    lo date;
    hi date;
    t record;
    name text;
    made integer := 0;
BEGIN
    FOR t IN SELECT * FROM (VALUES ('node_samples', false), ('latency_windows', false),
                                   ('node_rollup_1m', false), ('latency_node_1h', false),
                                   ('node_samples_compact', false),
                                   ('latency_windows_compact', false),
                                   ('node_rollup_1h', true)) AS v(tab, monthly) LOOP
        FOR i IN 0 .. days - 1 LOOP
            d := from_day + i;
            IF t.monthly THEN
                lo := date_trunc('month', d)::date;
                hi := (lo + interval '1 month')::date;
                name := format('%s_p%s', t.tab, to_char(lo, 'YYYYMM'));
            ELSE
                lo := d;
                hi := d + 1;
                name := format('%s_p%s', t.tab, to_char(lo, 'YYYYMMDD'));
            END IF;
            -- A day of latency windows that retention dropped is not made again (nor its
            -- blocks'): its late windows wait in the default partition to be merged
            -- (ww_tier_latency_merge).
            IF t.tab IN ('latency_windows', 'latency_windows_compact') AND hi::timestamp AT TIME ZONE 'UTC' <=
                    (SELECT windows_dropped_through FROM ww_tier_state) THEN
                CONTINUE;
            END IF;
            IF to_regclass(name) IS NULL THEN
                -- Bounds on UTC midnights, whatever the session's time zone: the name says
                -- a UTC day, and compaction empties a UTC day's partition (0019).
                BEGIN
                    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                                   name, t.tab, lo::timestamp AT TIME ZONE 'UTC',
                                   hi::timestamp AT TIME ZONE 'UTC');
                    made := made + 1;
                EXCEPTION WHEN check_violation THEN
                    RAISE NOTICE 'partition % not created: its rows are in %_default', name, t.tab;
                WHEN invalid_object_definition THEN
                    -- A partition made in another time zone before schema 19 overlaps it.
                    RAISE NOTICE 'partition % not created (%): its rows go to %_default', name,
                                 SQLERRM, t.tab;
                END;
            END IF;
        END LOOP;
    END LOOP;
    RETURN made;
END $$;
REVOKE EXECUTE ON FUNCTION ww_ensure_partitions(date, integer) FROM PUBLIC;
COMMENT ON FUNCTION ww_ensure_partitions(date, integer) IS
    'Creates the partitions of node_samples, latency_windows, node_rollup_1m, '
    'latency_node_1h, node_samples_compact, latency_windows_compact (daily) and node_rollup_1h '
    '(monthly) for the days '
    '[from_day, from_day + days); runs as the schema owner (SECURITY DEFINER) so that '
    'waferwatch_writer needs no DDL right. Returns the number created.';

-- The end (exclusive) of the range of a partition named by ww_ensure_partitions: the day
-- after TABLE_pYYYYMMDD, the first day of the month after TABLE_pYYYYMM; NULL for any other
-- name (the default partitions).
CREATE OR REPLACE FUNCTION ww_partition_end(relname text) RETURNS date
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE
        WHEN relname ~ '_p[0-9]{8}$' THEN to_date(right(relname, 8), 'YYYYMMDD') + 1
        WHEN relname ~ '_p[0-9]{6}$' THEN
            (to_date(right(relname, 6), 'YYYYMM') + interval '1 month')::date
    END
$$;

-- Drops one partition by name: 1, or 0 with a NOTICE when it is locked by a reader (left
-- for the next maintenance). The retention functions' one way to drop (owner's right:
-- called from SECURITY DEFINER functions only).
CREATE OR REPLACE FUNCTION ww_drop_partition(relname text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    EXECUTE format('DROP TABLE IF EXISTS %I', relname);
    RETURN 1;
EXCEPTION WHEN lock_not_available OR deadlock_detected OR object_in_use THEN
    RAISE NOTICE 'partition % not dropped now (%): retried at the next maintenance', relname,
                 SQLERRM;
    RETURN 0;
END $$;
REVOKE EXECUTE ON FUNCTION ww_drop_partition(text) FROM PUBLIC;

-- Retention of one table partitioned by ww_ensure_partitions: drops its partitions whose
-- every row is older than days (0 or NULL: none) and deletes such rows of its default
-- partition. Returns the partitions dropped (a locked one is left: ww_drop_partition).
CREATE OR REPLACE FUNCTION ww_drop_partitions_before(tab text, days integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    r record;
    dropped integer := 0;
BEGIN
    IF coalesce(days, 0) <= 0 THEN
        RETURN 0;
    END IF;
    FOR r IN SELECT c.relname
             FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent
             WHERE p.relname = tab AND ww_partition_end(c.relname) <= current_date - days
             ORDER BY 1 LOOP
        dropped := dropped + ww_drop_partition(r.relname);
    END LOOP;
    EXECUTE format('DELETE FROM %I WHERE time < $1', tab || '_default')
        USING (current_date - days)::timestamptz;
    RETURN dropped;
END $$;
REVOKE EXECUTE ON FUNCTION ww_drop_partitions_before(text, integer) FROM PUBLIC;

-- Retention: drops the daily partitions of node_samples and latency_windows older than
-- raw_days and deletes rollups (latency per phase, sites: minute and hour), evaluations, transitions and
-- refused-message records older than rollup_days. The collector calls it on its
-- maintenance schedule (retention.raw_days, retention.rollup_days); it runs as the schema
-- owner (SECURITY DEFINER), so waferwatch_writer still has no DROP or DELETE right of its
-- own. A partition locked by a reader is left for the next maintenance (NOTICE).
CREATE OR REPLACE FUNCTION ww_drop_old_data(raw_days integer, rollup_days integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    r record;
    dropped integer := 0;
BEGIN
    IF coalesce(raw_days, 0) > 0 THEN
        FOR r IN SELECT c.relname
                 FROM pg_inherits i
                 JOIN pg_class c ON c.oid = i.inhrelid
                 JOIN pg_class p ON p.oid = i.inhparent
                 WHERE p.relname IN ('node_samples', 'latency_windows')
                   AND c.relname ~ '_p[0-9]{8}$'
                   AND to_date(right(c.relname, 8), 'YYYYMMDD') < current_date - raw_days
                 ORDER BY 1 LOOP
            dropped := dropped + ww_drop_partition(r.relname);
        END LOOP;
    END IF;
    IF coalesce(rollup_days, 0) > 0 THEN
        DELETE FROM latency_rollup_1m WHERE time < current_date - rollup_days;
        DELETE FROM slo_evaluations WHERE time < current_date - rollup_days;
        DELETE FROM capacity_evaluations WHERE time < current_date - rollup_days;
        DELETE FROM alert_transitions WHERE time < current_date - rollup_days;
        DELETE FROM ingest_rejects WHERE time < current_date - rollup_days;
        DELETE FROM latency_rollup_1h WHERE time < current_date - rollup_days;
        DELETE FROM site_rollup_1m WHERE time < current_date - rollup_days;
        DELETE FROM site_rollup_1h WHERE time < current_date - rollup_days;
        DELETE FROM site_capacity WHERE time < current_date - rollup_days;
        DELETE FROM slo_burn_1h WHERE time < current_date - rollup_days;
    END IF;
    RETURN dropped;
END $$;
REVOKE EXECUTE ON FUNCTION ww_drop_old_data(integer, integer) FROM PUBLIC;
COMMENT ON FUNCTION ww_drop_old_data(integer, integer) IS
    'Retention: drops the daily partitions of node_samples and latency_windows older than '
    'raw_days and deletes rollups (latency per phase, sites; minute and hour), SLO and capacity evaluations and their burn-rate hours, alert '
    'transitions, site capacity rows and ingest rejects older than rollup_days (0 or NULL: keep). Runs as the '
    'owner. Returns the number of partitions dropped.';

-- Hourly latency rollups for the long SLO windows: builds the latency_rollup_1h rows of
-- complete hours from the minutes (the SLO evaluator: its longest window on its first
-- cycle, the last hours on every cycle). ww_sli() uses an hour row only while its window
-- count equals its minutes'. Hours are UTC hours whatever the session's TimeZone.
CREATE OR REPLACE FUNCTION ww_rollup_hours(p_from timestamptz, p_to timestamptz) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    n integer;
BEGIN
    -- Complete hours in [p_from, p_to) whose row is missing or no longer holds all their
    -- minutes (its window count differs), rebuilt whole; in key order, so
    -- two collectors doing it at once take the row locks in the same order.
    WITH m AS (
        SELECT date_trunc('hour', r.time, 'UTC') AS hour, r.phase, r.model, r.site,
               sum(r.windows) AS windows
        FROM latency_rollup_1m r
        WHERE r.time >= date_trunc('hour', p_from, 'UTC')
          AND r.time < least(p_to, date_trunc('hour', now(), 'UTC'))
        GROUP BY 1, 2, 3, 4
    ), stale AS (
        SELECT m.hour, m.phase, m.model, m.site
        FROM m LEFT JOIN latency_rollup_1h h
            ON h.time = m.hour AND h.phase = m.phase AND h.model = m.model AND h.site = m.site
        WHERE h.windows IS DISTINCT FROM m.windows
    )
    INSERT INTO latency_rollup_1h AS h (time, phase, model, site, windows, requests_ok,
                                        requests_error, requests_timeout, requests_rejected,
                                        prompt_tokens, output_tokens, queue, ttft, tpot, e2e)
    SELECT s.hour, s.phase, s.model, s.site, sum(r.windows), sum(r.requests_ok),
           sum(r.requests_error), sum(r.requests_timeout), sum(r.requests_rejected),
           sum(r.prompt_tokens), sum(r.output_tokens), ww_merge(r.queue), ww_merge(r.ttft),
           ww_merge(r.tpot), ww_merge(r.e2e)
    FROM stale s
    JOIN latency_rollup_1m r
        ON r.phase = s.phase AND r.model = s.model AND r.site = s.site
       AND r.time >= s.hour AND r.time < s.hour + interval '1 hour'
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (time, phase, model, site) DO UPDATE SET
        windows = EXCLUDED.windows, requests_ok = EXCLUDED.requests_ok,
        requests_error = EXCLUDED.requests_error, requests_timeout = EXCLUDED.requests_timeout,
        requests_rejected = EXCLUDED.requests_rejected, prompt_tokens = EXCLUDED.prompt_tokens,
        output_tokens = EXCLUDED.output_tokens, queue = EXCLUDED.queue, ttft = EXCLUDED.ttft,
        tpot = EXCLUDED.tpot, e2e = EXCLUDED.e2e;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION ww_rollup_hours(timestamptz, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION ww_rollup_hours(timestamptz, timestamptz) IS
    'Builds or rebuilds the latency_rollup_1h rows of the complete hours in [p_from, p_to) '
    'that are missing or whose window count no longer equals their minutes''. Runs as the '
    'owner. Returns the number of rows written.';

-- 64-bit identifiers. The wire's epoch is a fixed64; PostgreSQL has no unsigned type, so
-- the columns hold the same 64 bits read as a signed bigint (epochs of 2^63 and above are
-- negative here; ww_epoch_hex shows them as the agent logs them).
CREATE OR REPLACE FUNCTION ww_epoch_hex(epoch bigint) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT lpad(to_hex(epoch), 16, '0') $$;
COMMENT ON FUNCTION ww_epoch_hex(bigint) IS
    'A stream epoch as the agent and the collector log it: 16 hex digits of its 64 bits.';
