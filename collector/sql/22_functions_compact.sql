-- Repeatable: compaction of raw samples (migration 0019): reading samples of any age, and
-- the tier job's compaction steps. Re-applied by the migrator whenever a file of
-- collector/sql changes (ww_migrate.h).
--
-- The rule (0019): the node-hour (n, h) is compacted when h >= start and (h <
-- compacted_through or h = compacted_through and n <= compact_node); its samples are then
-- those of its block. A raw row counts when its node-hour is not compacted, or when it lies
-- before truncated_through (a late row of an emptied day, not merged yet). The writers never
-- see any of this: they insert into node_samples as before. Node ids compare in the "C"
-- collation (bytes) wherever the progress is: an ordering of the database's collation
-- could change with a library upgrade, and move nodes across compact_node.

-- The samples of [p_from, p_to) of every node, or of the nodes of p_nodes, raw and
-- compacted alike, with the columns of node_samples. Plain SQL functions, so that the
-- planner inlines them: the range and the node list reach both sides' indexes (a block is
-- decoded only when its node and hour are asked for), and the progress is read once per
-- query (scalar subqueries, not a join that would blur the row estimates). Two functions
-- rather than a NULL node list: `p_nodes IS NULL OR node_id = ANY (p_nodes)` would keep
-- the node list out of the index condition.
CREATE OR REPLACE FUNCTION ww_samples(p_from timestamptz, p_to timestamptz, p_nodes text[])
RETURNS SETOF node_samples
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT s.*
    FROM node_samples s
    WHERE s.time >= p_from AND s.time < p_to AND s.node_id = ANY (p_nodes)
      AND (s.time < (SELECT truncated_through FROM ww_tier_state)
           OR s.time >= (SELECT compacted_through FROM ww_tier_state) + interval '1 hour'
           OR (s.time >= (SELECT compacted_through FROM ww_tier_state)
               AND ((SELECT compact_node FROM ww_tier_state) IS NULL
                    OR s.node_id COLLATE "C" > (SELECT compact_node FROM ww_tier_state))))
    UNION ALL
    SELECT d.time, c.node_id, d.power_w, d.inlet_c, d.outlet_c, d.flow_lpm,
           d.wafer_hotspot_c, d.utilization, d.tokens_per_s, d.requests_queued,
           d.requests_in_flight, d.requests_completed, d.throttled, d.throttle_factor,
           d.humidity_pct
    FROM node_samples_compact c
    CROSS JOIN LATERAL ww_sblock_samples(c.block) d
    WHERE c.time >= date_trunc('hour', p_from, 'UTC') AND c.time < p_to
      AND c.last_time >= p_from AND c.node_id = ANY (p_nodes)
      AND d.time >= p_from AND d.time < p_to
$$;
COMMENT ON FUNCTION ww_samples(timestamptz, timestamptz, text[]) IS
    'The samples of [p_from, p_to) of the given nodes, raw or compacted: the columns of '
    'node_samples (which alone holds only what is not compacted yet).';

CREATE OR REPLACE FUNCTION ww_samples(p_from timestamptz, p_to timestamptz)
RETURNS SETOF node_samples
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT s.*
    FROM node_samples s
    WHERE s.time >= p_from AND s.time < p_to
      AND (s.time < (SELECT truncated_through FROM ww_tier_state)
           OR s.time >= (SELECT compacted_through FROM ww_tier_state) + interval '1 hour'
           OR (s.time >= (SELECT compacted_through FROM ww_tier_state)
               AND ((SELECT compact_node FROM ww_tier_state) IS NULL
                    OR s.node_id COLLATE "C" > (SELECT compact_node FROM ww_tier_state))))
    UNION ALL
    SELECT d.time, c.node_id, d.power_w, d.inlet_c, d.outlet_c, d.flow_lpm,
           d.wafer_hotspot_c, d.utilization, d.tokens_per_s, d.requests_queued,
           d.requests_in_flight, d.requests_completed, d.throttled, d.throttle_factor,
           d.humidity_pct
    FROM node_samples_compact c
    CROSS JOIN LATERAL ww_sblock_samples(c.block) d
    WHERE c.time >= date_trunc('hour', p_from, 'UTC') AND c.time < p_to
      AND c.last_time >= p_from
      AND d.time >= p_from AND d.time < p_to
$$;
COMMENT ON FUNCTION ww_samples(timestamptz, timestamptz) IS
    'The samples of [p_from, p_to) of every node, raw or compacted: the columns of '
    'node_samples (which alone holds only what is not compacted yet).';

-- The latency windows of [p_from, p_to) of the nodes of p_nodes (or of every node), raw
-- and compacted alike, with the columns of latency_windows (0021). The rule: a node-hour's
-- windows are in its block when the hour is from windows_start on and the samples' rule
-- above says it is compacted; a raw window counts when its node-hour is not, or when it
-- lies before truncated_through (a late window of an emptied day, not merged yet) or before
-- windows_dropped_through (a late window of a day retention dropped, 0020). Plain
-- SQL, inlined as ww_samples is, for the same reasons.
CREATE OR REPLACE FUNCTION ww_windows(p_from timestamptz, p_to timestamptz, p_nodes text[])
RETURNS SETOF latency_windows
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT w.*
    FROM latency_windows w
    WHERE w.time >= p_from AND w.time < p_to AND w.node_id = ANY (p_nodes)
      AND (w.time < (SELECT truncated_through FROM ww_tier_state)
           OR w.time < (SELECT windows_start FROM ww_tier_state)
           OR w.time < (SELECT windows_dropped_through FROM ww_tier_state)
           OR w.time >= (SELECT compacted_through FROM ww_tier_state) + interval '1 hour'
           OR (w.time >= (SELECT compacted_through FROM ww_tier_state)
               AND ((SELECT compact_node FROM ww_tier_state) IS NULL
                    OR w.node_id COLLATE "C" > (SELECT compact_node FROM ww_tier_state))))
    UNION ALL
    SELECT d.time, c.node_id, d.model, d.duration_s, d.requests_ok, d.requests_error,
           d.requests_timeout, d.requests_rejected, d.prompt_tokens, d.output_tokens,
           d.queue, d.ttft, d.tpot, d.e2e, d.parts
    FROM latency_windows_compact c
    CROSS JOIN LATERAL ww_wblock_windows(c.block) d
    WHERE c.time >= date_trunc('hour', p_from, 'UTC') AND c.time < p_to
      AND c.last_time >= p_from AND c.node_id = ANY (p_nodes)
      AND d.time >= p_from AND d.time < p_to
$$;
COMMENT ON FUNCTION ww_windows(timestamptz, timestamptz, text[]) IS
    'The latency windows of [p_from, p_to) of the given nodes, raw or compacted: the columns '
    'of latency_windows (which alone holds only what is not compacted yet).';

CREATE OR REPLACE FUNCTION ww_windows(p_from timestamptz, p_to timestamptz)
RETURNS SETOF latency_windows
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT w.*
    FROM latency_windows w
    WHERE w.time >= p_from AND w.time < p_to
      AND (w.time < (SELECT truncated_through FROM ww_tier_state)
           OR w.time < (SELECT windows_start FROM ww_tier_state)
           OR w.time < (SELECT windows_dropped_through FROM ww_tier_state)
           OR w.time >= (SELECT compacted_through FROM ww_tier_state) + interval '1 hour'
           OR (w.time >= (SELECT compacted_through FROM ww_tier_state)
               AND ((SELECT compact_node FROM ww_tier_state) IS NULL
                    OR w.node_id COLLATE "C" > (SELECT compact_node FROM ww_tier_state))))
    UNION ALL
    SELECT d.time, c.node_id, d.model, d.duration_s, d.requests_ok, d.requests_error,
           d.requests_timeout, d.requests_rejected, d.prompt_tokens, d.output_tokens,
           d.queue, d.ttft, d.tpot, d.e2e, d.parts
    FROM latency_windows_compact c
    CROSS JOIN LATERAL ww_wblock_windows(c.block) d
    WHERE c.time >= date_trunc('hour', p_from, 'UTC') AND c.time < p_to
      AND c.last_time >= p_from
      AND d.time >= p_from AND d.time < p_to
$$;
COMMENT ON FUNCTION ww_windows(timestamptz, timestamptz) IS
    'The latency windows of [p_from, p_to) of every node, raw or compacted: the columns of '
    'latency_windows (which alone holds only what is not compacted yet).';

-- Compacts the latency windows of the node-hours (p_hours[i], p_nodes[i]) that the progress
-- says are compacted, from windows_start on (0021) and not below windows_dropped_through
-- (retention's late windows are merged into latency_node_1h), as ww_compact_node_hours does the
-- samples: the block of each is rebuilt from the raw rows while its day is not emptied, or
-- from its block and the late raw rows after (which are then deleted). A late row with the
-- key (time, model) of a window in the block is a second part of it: merged as the ingest
-- path merges parts (counts, durations and parts added, histograms merged). Returns the
-- blocks written.
CREATE OR REPLACE FUNCTION ww_compact_window_hours(p_hours timestamptz[], p_nodes text[])
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    st ww_tier_state;
    n integer;
    total integer := 0;
    rh timestamptz[];
    rn text[];
    mh timestamptz[];
    mn text[];
BEGIN
    SELECT * INTO st FROM ww_tier_state;
    SELECT coalesce(array_agg(x.h) FILTER (WHERE x.h >= st.truncated_through), '{}'),
           coalesce(array_agg(x.n) FILTER (WHERE x.h >= st.truncated_through), '{}'),
           coalesce(array_agg(x.h) FILTER (WHERE x.h < st.truncated_through), '{}'),
           coalesce(array_agg(x.n) FILTER (WHERE x.h < st.truncated_through), '{}')
    INTO rh, rn, mh, mn
    FROM (SELECT DISTINCT u.h, u.n FROM unnest(p_hours, p_nodes) AS u(h, n)) AS x
    WHERE x.h >= st.start AND x.h >= st.windows_start AND x.h >= st.windows_dropped_through
      AND (x.h < st.compacted_through
           OR (x.h = st.compacted_through AND st.compact_node IS NOT NULL
               AND x.n COLLATE "C" <= st.compact_node));
    IF cardinality(rh) = 0 AND cardinality(mh) = 0 THEN
        RETURN 0;
    END IF;
    INSERT INTO latency_windows_compact AS c (time, last_time, windows, node_id, block)
    SELECT t.h, max(w.time), count(*), w.node_id,
           ww_wblock_agg(w.time, w.model, w.duration_s, w.requests_ok, w.requests_error,
                         w.requests_timeout, w.requests_rejected, w.prompt_tokens,
                         w.output_tokens, w.parts, w.queue, w.ttft, w.tpot, w.e2e)
    FROM unnest(rh, rn) AS t(h, n)
    JOIN latency_windows w ON w.node_id = t.n AND w.time >= t.h AND w.time < t.h + interval '1 hour'
    GROUP BY t.h, w.node_id
    ON CONFLICT (node_id, time) DO UPDATE
    SET last_time = excluded.last_time, windows = excluded.windows, block = excluded.block;
    GET DIAGNOSTICS n = ROW_COUNT;
    total := total + n;
    WITH late AS (
        DELETE FROM latency_windows w
        USING unnest(mh, mn) AS t(h, n)
        WHERE w.node_id = t.n AND w.time >= t.h AND w.time < t.h + interval '1 hour'
        RETURNING w.*
    ), u AS (
        SELECT date_trunc('hour', l.time, 'UTC') AS h, l.node_id, l.time, l.model, l.duration_s,
               l.requests_ok, l.requests_error, l.requests_timeout, l.requests_rejected,
               l.prompt_tokens, l.output_tokens, l.parts, l.queue, l.ttft, l.tpot, l.e2e
        FROM late l
        UNION ALL
        SELECT c.time, c.node_id, d.time, d.model, d.duration_s, d.requests_ok,
               d.requests_error, d.requests_timeout, d.requests_rejected, d.prompt_tokens,
               d.output_tokens, d.parts, d.queue, d.ttft, d.tpot, d.e2e
        FROM unnest(mh, mn) AS t(h, n)
        JOIN latency_windows_compact c ON c.node_id = t.n AND c.time = t.h
        CROSS JOIN LATERAL ww_wblock_windows(c.block) d
    ), k AS (
        SELECT u.h, u.node_id, u.time, u.model, sum(u.duration_s) AS duration_s,
               sum(u.requests_ok)::bigint AS requests_ok,
               sum(u.requests_error)::bigint AS requests_error,
               sum(u.requests_timeout)::bigint AS requests_timeout,
               sum(u.requests_rejected)::bigint AS requests_rejected,
               sum(u.prompt_tokens)::bigint AS prompt_tokens,
               sum(u.output_tokens)::bigint AS output_tokens, sum(u.parts)::integer AS parts,
               ww_merge(u.queue) AS queue, ww_merge(u.ttft) AS ttft, ww_merge(u.tpot) AS tpot,
               ww_merge(u.e2e) AS e2e
        FROM u
        GROUP BY u.h, u.node_id, u.time, u.model
    )
    INSERT INTO latency_windows_compact AS c (time, last_time, windows, node_id, block)
    SELECT k.h, max(k.time), count(*), k.node_id,
           ww_wblock_agg(k.time, k.model, k.duration_s, k.requests_ok, k.requests_error,
                         k.requests_timeout, k.requests_rejected, k.prompt_tokens,
                         k.output_tokens, k.parts, k.queue, k.ttft, k.tpot, k.e2e)
    FROM k
    GROUP BY k.h, k.node_id
    ON CONFLICT (node_id, time) DO UPDATE
    SET last_time = excluded.last_time, windows = excluded.windows, block = excluded.block;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN total + n;
END $$;
REVOKE EXECUTE ON FUNCTION ww_compact_window_hours(timestamptz[], text[]) FROM PUBLIC;

-- Compacts the node-hours (p_hours[i], p_nodes[i]) that the progress says are compacted
-- (others are left: not compacted yet, or before start): the block of each is rebuilt from
-- the raw rows while its day is not truncated (they are all there), or from its block and
-- the late raw rows after (which are then deleted). Rows a block cannot hold (a negative
-- count: never written by a collector) are an ERROR naming them: the job stops there and
-- says why, it never drops them. Returns the blocks written.
CREATE OR REPLACE FUNCTION ww_compact_node_hours(p_hours timestamptz[], p_nodes text[])
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    st ww_tier_state;
    n integer;
    total integer := 0;
    -- The compacted node-hours asked for: to rebuild from the raw rows (rh, rn), to merge
    -- with their late rows (mh, mn). Arrays, not a temporary table: no catalog write per
    -- call (the builder calls this for every batch of late entries), no TEMP privilege.
    rh timestamptz[];
    rn text[];
    mh timestamptz[];
    mn text[];
BEGIN
    SELECT * INTO st FROM ww_tier_state;
    SELECT coalesce(array_agg(x.h) FILTER (WHERE x.h >= st.truncated_through), '{}'),
           coalesce(array_agg(x.n) FILTER (WHERE x.h >= st.truncated_through), '{}'),
           coalesce(array_agg(x.h) FILTER (WHERE x.h < st.truncated_through), '{}'),
           coalesce(array_agg(x.n) FILTER (WHERE x.h < st.truncated_through), '{}')
    INTO rh, rn, mh, mn
    FROM (SELECT DISTINCT u.h, u.n FROM unnest(p_hours, p_nodes) AS u(h, n)) AS x
    WHERE x.h >= st.start
      AND (x.h < st.compacted_through
           OR (x.h = st.compacted_through AND st.compact_node IS NOT NULL
               AND x.n COLLATE "C" <= st.compact_node));
    IF cardinality(rh) = 0 AND cardinality(mh) = 0 THEN
        RETURN 0;
    END IF;
    -- Days not truncated: the raw rows are all there.
    INSERT INTO node_samples_compact AS c (time, last_time, samples, node_id, block)
    SELECT t.h, max(s.time), count(*), s.node_id,
           ww_sblock_agg(s.time, s.power_w, s.inlet_c, s.outlet_c, s.flow_lpm,
                         s.wafer_hotspot_c, s.utilization, s.tokens_per_s,
                         s.requests_queued, s.requests_in_flight, s.requests_completed,
                         s.throttled, s.throttle_factor, s.humidity_pct)
    FROM unnest(rh, rn) AS t(h, n)
    JOIN node_samples s ON s.node_id = t.n AND s.time >= t.h AND s.time < t.h + interval '1 hour'
    GROUP BY t.h, s.node_id
    ON CONFLICT (node_id, time) DO UPDATE
    SET last_time = excluded.last_time, samples = excluded.samples, block = excluded.block;
    GET DIAGNOSTICS n = ROW_COUNT;
    total := total + n;
    -- Truncated days: the block and the late rows, which leave node_samples.
    WITH late AS (
        DELETE FROM node_samples s
        USING unnest(mh, mn) AS t(h, n)
        WHERE s.node_id = t.n AND s.time >= t.h AND s.time < t.h + interval '1 hour'
        RETURNING s.*
    ), u AS (
        SELECT date_trunc('hour', l.time, 'UTC') AS h, l.* FROM late l
        UNION ALL
        SELECT c.time, d.time, c.node_id, d.power_w, d.inlet_c, d.outlet_c, d.flow_lpm,
               d.wafer_hotspot_c, d.utilization, d.tokens_per_s, d.requests_queued,
               d.requests_in_flight, d.requests_completed, d.throttled, d.throttle_factor,
               d.humidity_pct
        FROM unnest(mh, mn) AS t(h, n)
        JOIN node_samples_compact c ON c.node_id = t.n AND c.time = t.h
        CROSS JOIN LATERAL ww_sblock_samples(c.block) d
    )
    INSERT INTO node_samples_compact AS c (time, last_time, samples, node_id, block)
    SELECT u.h, max(u.time), count(*), u.node_id,
           ww_sblock_agg(u.time, u.power_w, u.inlet_c, u.outlet_c, u.flow_lpm,
                         u.wafer_hotspot_c, u.utilization, u.tokens_per_s,
                         u.requests_queued, u.requests_in_flight, u.requests_completed,
                         u.throttled, u.throttle_factor, u.humidity_pct)
    FROM u
    GROUP BY u.h, u.node_id
    ON CONFLICT (node_id, time) DO UPDATE
    SET last_time = excluded.last_time, samples = excluded.samples, block = excluded.block;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN total + n;
END $$;
REVOKE EXECUTE ON FUNCTION ww_compact_node_hours(timestamptz[], text[]) FROM PUBLIC;

-- The tier job's compaction step, its own transaction after ww_tier_build: compacts the
-- next max_nodes nodes (in node_id order, those with a node_rollup_1h row) of the oldest
-- hour not compacted, once that hour ended age before the watermark (the tiers' now:
-- now - tiers.grace) and its tiers are built. node_hours: blocks written; samples: their
-- samples; hours: 1 when the hour is done; behind_s: how far the compaction is from there
-- (0: caught up). Call it again while it wrote blocks or finished an hour.
CREATE OR REPLACE FUNCTION ww_compact(age interval, max_nodes integer, OUT node_hours integer,
                                      OUT samples bigint, OUT hours integer,
                                      OUT behind_s double precision)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
SET jit = off AS $$
DECLARE
    st ww_tier_state;
    lim timestamptz;
    chunk text[];
BEGIN
    IF max_nodes < 1 OR age < interval '0' THEN
        RAISE EXCEPTION 'ww_compact: max_nodes must be >= 1 and age >= 0';
    END IF;
    SELECT * INTO st FROM ww_tier_state FOR UPDATE;
    lim := least(date_trunc('hour', st.hours_done, 'UTC'),
                 date_trunc('hour', st.watermark - age, 'UTC'));
    node_hours := 0;
    samples := 0;
    hours := 0;
    IF st.compacted_through + interval '1 hour' <= lim THEN
        IF st.compact_node IS NULL THEN
            -- The hour's blocks go into their own day's partition, also for the history of
            -- an upgraded database (the collector makes partitions a week back only).
            PERFORM ww_ensure_partitions((st.compacted_through AT TIME ZONE 'UTC')::date, 1);
        END IF;
        chunk := ARRAY(SELECT x.node_id
                       FROM (SELECT r.node_id FROM node_rollup_1h r
                             WHERE r.time = st.compacted_through
                             UNION
                             SELECT l.node_id FROM latency_node_1h l
                             WHERE l.time = st.compacted_through) AS x
                       WHERE st.compact_node IS NULL OR x.node_id COLLATE "C" > st.compact_node
                       ORDER BY x.node_id COLLATE "C"
                       LIMIT max_nodes);
        -- The nodes come from the hour's node_rollup_1h and latency_node_1h rows, one per
        -- node with samples or windows then (nodes whose data came later are re-compacted
        -- with their late minutes and hours). Rows but no hour rows: retention dropped them
        -- (retention.node_hour_days shorter than the raw history): compacting would hide
        -- the rows, so stop and say so.
        IF st.compact_node IS NULL AND cardinality(chunk) = 0
           AND EXISTS (SELECT 1 FROM node_samples s
                       WHERE s.time >= st.compacted_through
                         AND s.time < st.compacted_through + interval '1 hour') THEN
            RAISE EXCEPTION 'ww_compact: the hour % has raw samples but no node_rollup_1h rows',
                            st.compacted_through
                USING HINT = 'retention.node_hour_days is shorter than the raw samples kept: '
                             'raise it, or drop the older raw partitions',
                      ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        IF st.compact_node IS NULL AND cardinality(chunk) = 0
           AND st.compacted_through >= st.windows_start
           AND EXISTS (SELECT 1 FROM latency_windows w
                       WHERE w.time >= st.compacted_through
                         AND w.time < st.compacted_through + interval '1 hour') THEN
            RAISE EXCEPTION 'ww_compact: the hour % has latency windows but no latency_node_1h rows',
                            st.compacted_through
                USING HINT = 'retention.latency_node_days is shorter than the windows kept: '
                             'raise it, or lower retention.window_days',
                      ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        IF cardinality(chunk) > 0 THEN
            -- The progress first: ww_compact_node_hours compacts what it says is compacted.
            UPDATE ww_tier_state SET compact_node = chunk[cardinality(chunk)], updated_at = now();
            node_hours := ww_compact_node_hours(array_fill(st.compacted_through,
                                                           ARRAY[cardinality(chunk)]), chunk);
            PERFORM ww_compact_window_hours(array_fill(st.compacted_through,
                                                       ARRAY[cardinality(chunk)]), chunk);
            SELECT coalesce(sum(c.samples), 0) INTO samples FROM node_samples_compact c
            WHERE c.time = st.compacted_through AND c.node_id = ANY (chunk);
        END IF;
        IF cardinality(chunk) < max_nodes THEN
            UPDATE ww_tier_state
            SET compacted_through = compacted_through + interval '1 hour', compact_node = NULL,
                updated_at = now();
            hours := 1;
            st.compacted_through := st.compacted_through + interval '1 hour';
        END IF;
    END IF;
    behind_s := greatest(0, extract(epoch FROM lim - st.compacted_through));
END $$;
REVOKE EXECUTE ON FUNCTION ww_compact(interval, integer) FROM PUBLIC;
COMMENT ON FUNCTION ww_compact(interval, integer) IS
    'Tier job: compacts the next max_nodes node-hours of the oldest hour not compacted that '
    'is older than age and built in the tiers. Returns what it did and how far behind it is.';

-- The tier job's last step, its own transaction: once every hour of the oldest day not
-- emptied yet is compacted, empties that day's raw rows, samples and (from windows_start
-- on, 0021) latency windows. No write may add a row of the day meanwhile: it locks the
-- day's raw partitions (ACCESS EXCLUSIVE to truncate one, else SHARE ROW EXCLUSIVE) and the
-- default partitions, so that only writes bringing rows of that day (late ones) wait; when
-- a partition not aligned on UTC days (made by a session in another time zone before
-- schema 19) holds rows of the day too, it takes the tier lock exclusively instead, as
-- ww_tier_advance does (every write waits). All within lock_timeout: a long reader only
-- postpones the step. Then it re-compacts the day's node-hours whose late entries still
-- wait in ww_tier_dirty (their rows are about to go), truncates a partition when it holds
-- nothing outside what is emptied (the tiers' first day keeps its rows before start, and
-- windows before windows_start: they were never compacted), and deletes whatever else of
-- the day is left. Returns the days emptied: 0 or 1 (0 with a NOTICE when a lock was not
-- granted in time).
CREATE OR REPLACE FUNCTION ww_compact_clear() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
SET lock_timeout = '2s' SET jit = off AS $$
DECLARE
    st ww_tier_state;
    d timestamptz;
    d_end timestamptz;
    w_from timestamptz;
    part text;
    wpart text;
    whole boolean;
    others boolean;
    late_h timestamptz[];
    late_n text[];
BEGIN
    SELECT * INTO st FROM ww_tier_state FOR UPDATE;
    d := date_trunc('day', st.truncated_through, 'UTC');
    d_end := d + interval '1 day';
    IF st.compacted_through < d_end THEN
        RETURN 0;
    END IF;
    -- The windows emptied: those of [w_from, d_end), none when windows_start is later.
    -- Below windows_dropped_through retention dropped them: the ones left there are late,
    -- waiting to be merged into latency_node_1h (ww_tier_latency_merge), not compacted.
    w_from := greatest(st.truncated_through, st.windows_start, st.windows_dropped_through);
    part := format('node_samples_p%s', to_char(d AT TIME ZONE 'UTC', 'YYYYMMDD'));
    IF to_regclass(part) IS NULL THEN
        part := NULL;
    END IF;
    wpart := format('latency_windows_p%s', to_char(d AT TIME ZONE 'UTC', 'YYYYMMDD'));
    IF to_regclass(wpart) IS NULL OR w_from >= d_end THEN
        wpart := NULL;
    END IF;
    -- Other partitions with rows of [truncated_through, d_end): by their bounds.
    others := EXISTS (
        SELECT 1
        FROM (SELECT t.relid FROM pg_partition_tree('node_samples') t WHERE t.isleaf
              UNION ALL
              SELECT t.relid FROM pg_partition_tree('latency_windows') t WHERE t.isleaf) t
        JOIN pg_class c ON c.oid = t.relid
        CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                        $r$FROM \('([^']+)'\) TO \('([^']+)'\)$r$) AS b(v)
        WHERE c.relname IS DISTINCT FROM part AND c.relname IS DISTINCT FROM wpart
          AND c.relname <> format('latency_windows_p%s', to_char(d AT TIME ZONE 'UTC', 'YYYYMMDD'))
          AND b.v[1]::timestamptz < d_end AND b.v[2]::timestamptz > st.truncated_through);
    BEGIN
        IF others THEN
            PERFORM pg_advisory_xact_lock(7870002);
        END IF;
        IF part IS NOT NULL THEN
            EXECUTE format('LOCK TABLE %I IN %s MODE', part,
                           CASE WHEN st.truncated_through = d THEN 'ACCESS EXCLUSIVE'
                                ELSE 'SHARE ROW EXCLUSIVE' END);
        END IF;
        IF wpart IS NOT NULL THEN
            EXECUTE format('LOCK TABLE %I IN %s MODE', wpart,
                           CASE WHEN w_from = d THEN 'ACCESS EXCLUSIVE'
                                ELSE 'SHARE ROW EXCLUSIVE' END);
        END IF;
        LOCK TABLE node_samples_default IN SHARE ROW EXCLUSIVE MODE;
        LOCK TABLE latency_windows_default IN SHARE ROW EXCLUSIVE MODE;
    EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
        RAISE NOTICE 'raw samples of % not emptied now (%): retried at the next run', d::date,
                     SQLERRM;
        RETURN 0;
    END;
    SELECT array_agg(x.h), array_agg(x.n) INTO late_h, late_n
    FROM (SELECT DISTINCT date_trunc('hour', t.time, 'UTC') AS h, t.node_id AS n
          FROM ww_tier_dirty t
          WHERE t.tier = 's' AND t.time >= st.truncated_through AND t.time < d_end) AS x;
    IF late_h IS NOT NULL THEN
        PERFORM ww_compact_node_hours(late_h, late_n);
    END IF;
    SELECT array_agg(t.time), array_agg(t.node_id) INTO late_h, late_n
    FROM ww_tier_dirty t
    WHERE t.tier = 'l' AND t.time >= w_from AND t.time < d_end;
    IF late_h IS NOT NULL THEN
        PERFORM ww_compact_window_hours(late_h, late_n);
    END IF;
    IF part IS NOT NULL AND st.truncated_through = d THEN
        EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %I WHERE time < $1 OR time >= $2)',
                       part) INTO whole USING d, d_end;
        IF whole THEN
            EXECUTE format('TRUNCATE %I', part);
        END IF;
    END IF;
    IF wpart IS NOT NULL AND w_from = d THEN
        EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %I WHERE time < $1 OR time >= $2)',
                       wpart) INTO whole USING d, d_end;
        IF whole THEN
            EXECUTE format('TRUNCATE %I', wpart);
        END IF;
    END IF;
    DELETE FROM node_samples WHERE time >= st.truncated_through AND time < d_end;
    DELETE FROM latency_windows WHERE time >= w_from AND time < d_end;
    UPDATE ww_tier_state SET truncated_through = d_end, updated_at = now();
    RETURN 1;
END $$;
REVOKE EXECUTE ON FUNCTION ww_compact_clear() FROM PUBLIC;
COMMENT ON FUNCTION ww_compact_clear() IS
    'Tier job: empties the raw rows of the oldest day whose every hour is compacted (TRUNCATE '
    'of its partition). Returns 1 when it did, 0 when nothing is due or a lock was not granted.';

-- Retention of the compacted samples: drops the daily partitions of node_samples_compact
-- older than days (0 or NULL: keep) and deletes such rows of its default partition.
-- Returns the partitions dropped.
CREATE OR REPLACE FUNCTION ww_drop_old_compact(days integer) RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT ww_drop_partitions_before('node_samples_compact', days)
$$;
REVOKE EXECUTE ON FUNCTION ww_drop_old_compact(integer) FROM PUBLIC;
COMMENT ON FUNCTION ww_drop_old_compact(integer) IS
    'Retention of node_samples_compact: drops its partitions older than days (0: keep). Runs '
    'as the owner. Returns the partitions dropped.';
