-- Repeatable: the storage tiers (migration 0018): the functions of the collector's tier job
-- (collector/ww_tiers.h) and of the ingest transaction's side of the late-data protocol.
-- Re-applied by the migrator whenever a file of collector/sql changes (ww_migrate.h).
--
-- Every builder replaces its buckets whole: it deletes the rows of the buckets it builds and
-- inserts their recomputation from the tier below (raw rows -> node minutes -> node hours and
-- site minutes; node hours -> site hours; latency_windows -> latency_node_1h), in the
-- caller's transaction. A tier row is thus always exactly its recomputation, whatever the
-- order in which the data arrived. SECURITY DEFINER (the schema owner), fixed search_path;
-- EXECUTE for waferwatch_writer only on the three entry points (90_grants.sql).

-- The columns of node_rollup_1m and node_rollup_1h in the order both builders write them
-- (the tables' own order is by alignment).
CREATE OR REPLACE FUNCTION ww_tier_node_columns() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '
        time, node_id, samples, humidity_samples, last_time, sampled_s, energy_j, tokens, throttled_s,
        requests_completed, power_w_sum, inlet_c_sum, outlet_c_sum, flow_lpm_sum,
        wafer_hotspot_c_sum, utilization_sum, tokens_per_s_sum, throttle_factor_sum,
        requests_queued_sum, requests_in_flight_sum, humidity_pct_sum, power_w_min,
        power_w_max, power_w_last, inlet_c_min, inlet_c_max, inlet_c_last, outlet_c_min,
        outlet_c_max, outlet_c_last, flow_lpm_min, flow_lpm_max, flow_lpm_last,
        wafer_hotspot_c_min, wafer_hotspot_c_max, wafer_hotspot_c_last, utilization_min,
        utilization_max, utilization_last, tokens_per_s_min, tokens_per_s_max,
        tokens_per_s_last, throttle_factor_min, throttle_factor_max, throttle_factor_last,
        requests_queued_min, requests_queued_max, requests_queued_last,
        requests_in_flight_min, requests_in_flight_max, requests_in_flight_last,
        humidity_pct_min, humidity_pct_max, humidity_pct_last'
$$;

-- Node minutes from the samples (raw or compacted: ww_samples): the minutes in [p_from, p_to) of every node (p_nodes NULL)
-- or of the nodes of p_nodes. The *_last readings are those of the minute's latest sample (a
-- tie, two samples of one node at the same instant, goes to the greater readings, in column
-- order: deterministic). Returns the rows written.
CREATE OR REPLACE FUNCTION ww_tier_node_minutes(p_from timestamptz, p_to timestamptz,
                                                p_nodes text[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    n integer;
    -- Minutes past every compacted hour (the forward build, always) read node_samples
    -- itself: all their rows count, and ww_samples' union costs at fleet scale.
    fast boolean := p_from >= (SELECT compacted_through FROM ww_tier_state) + interval '1 hour';
    src text := CASE WHEN fast AND p_nodes IS NULL
                     THEN '(SELECT * FROM node_samples WHERE time >= $1 AND time < $2)'
                     WHEN fast THEN '(SELECT * FROM node_samples WHERE time >= $1 AND time < $2'
                                    ' AND node_id = ANY ($3))'
                     WHEN p_nodes IS NULL THEN 'ww_samples($1, $2)'
                     ELSE 'ww_samples($1, $2, $3)' END;
    last text := CASE WHEN fast
                      THEN 'node_samples s WHERE s.node_id = a.node_id AND s.time = a.last_time'
                      ELSE 'ww_samples(a.last_time, a.last_time + interval ''1 microsecond'','
                           ' ARRAY[a.node_id]) s' END;
BEGIN
    -- EXECUTE: planned with the actual range and node list each time (a generic plan would
    -- not know whether one node or the fleet is asked for).
    EXECUTE 'DELETE FROM node_rollup_1m WHERE time >= $1 AND time < $2'
            ' AND ($3 IS NULL OR node_id = ANY ($3))' USING p_from, p_to, p_nodes;
    EXECUTE format($q$
    INSERT INTO node_rollup_1m (%s)
    SELECT
        a.time, a.node_id, a.samples, a.humidity_samples, a.last_time, a.samples * a.iv,
        a.power_w_sum * a.iv, a.tokens_per_s_sum * a.iv, a.throttled_n * a.iv,
        a.requests_completed, a.power_w_sum, a.inlet_c_sum, a.outlet_c_sum, a.flow_lpm_sum,
        a.wafer_hotspot_c_sum, a.utilization_sum, a.tokens_per_s_sum,
        a.throttle_factor_sum, a.requests_queued_sum, a.requests_in_flight_sum,
        a.humidity_pct_sum, a.power_w_min, a.power_w_max, l.power_w, a.inlet_c_min,
        a.inlet_c_max, l.inlet_c, a.outlet_c_min, a.outlet_c_max, l.outlet_c,
        a.flow_lpm_min, a.flow_lpm_max, l.flow_lpm, a.wafer_hotspot_c_min,
        a.wafer_hotspot_c_max, l.wafer_hotspot_c, a.utilization_min, a.utilization_max,
        l.utilization, a.tokens_per_s_min, a.tokens_per_s_max, l.tokens_per_s,
        a.throttle_factor_min, a.throttle_factor_max, l.throttle_factor,
        a.requests_queued_min, a.requests_queued_max, l.requests_queued,
        a.requests_in_flight_min, a.requests_in_flight_max, l.requests_in_flight,
        a.humidity_pct_min, a.humidity_pct_max, l.humidity_pct
    FROM (SELECT g.*, coalesce(nullif(n.interval_ms, 0), 1000)::float8 / 1000 AS iv
          FROM (SELECT
               s.node_id, date_trunc('minute', s.time, 'UTC') AS time,
               count(*)::integer AS samples,
               count(s.humidity_pct)::integer AS humidity_samples,
               max(s.time) AS last_time,
               CASE WHEN count(s.throttled) > 0
                    THEN count(*) FILTER (WHERE s.throttled) END AS throttled_n,
               sum(s.requests_completed) AS requests_completed,
               sum(s.power_w::float8) AS power_w_sum,
               sum(s.inlet_c::float8) AS inlet_c_sum,
               sum(s.outlet_c::float8) AS outlet_c_sum,
               sum(s.flow_lpm::float8) AS flow_lpm_sum,
               sum(s.wafer_hotspot_c::float8) AS wafer_hotspot_c_sum,
               sum(s.utilization::float8) AS utilization_sum,
               sum(s.tokens_per_s::float8) AS tokens_per_s_sum,
               sum(s.throttle_factor::float8) AS throttle_factor_sum,
               sum(s.requests_queued) AS requests_queued_sum,
               sum(s.requests_in_flight) AS requests_in_flight_sum,
               sum(s.humidity_pct::float8) AS humidity_pct_sum,
               min(s.power_w) AS power_w_min, max(s.power_w) AS power_w_max,
               min(s.inlet_c) AS inlet_c_min, max(s.inlet_c) AS inlet_c_max,
               min(s.outlet_c) AS outlet_c_min, max(s.outlet_c) AS outlet_c_max,
               min(s.flow_lpm) AS flow_lpm_min, max(s.flow_lpm) AS flow_lpm_max,
               min(s.wafer_hotspot_c) AS wafer_hotspot_c_min,
               max(s.wafer_hotspot_c) AS wafer_hotspot_c_max,
               min(s.utilization) AS utilization_min,
               max(s.utilization) AS utilization_max,
               min(s.tokens_per_s) AS tokens_per_s_min,
               max(s.tokens_per_s) AS tokens_per_s_max,
               min(s.throttle_factor) AS throttle_factor_min,
               max(s.throttle_factor) AS throttle_factor_max,
               min(s.requests_queued) AS requests_queued_min,
               max(s.requests_queued) AS requests_queued_max,
               min(s.requests_in_flight) AS requests_in_flight_min,
               max(s.requests_in_flight) AS requests_in_flight_max,
               min(s.humidity_pct) AS humidity_pct_min,
               max(s.humidity_pct) AS humidity_pct_max
                FROM %s s
                GROUP BY 1, 2) AS g
          LEFT JOIN nodes n ON n.node_id = g.node_id) AS a
    CROSS JOIN LATERAL (
        SELECT s.*
        FROM %s
        ORDER BY
                  s.power_w DESC NULLS LAST, s.inlet_c DESC NULLS LAST,
                  s.outlet_c DESC NULLS LAST, s.flow_lpm DESC NULLS LAST,
                  s.wafer_hotspot_c DESC NULLS LAST, s.utilization DESC NULLS LAST,
                  s.tokens_per_s DESC NULLS LAST, s.throttle_factor DESC NULLS LAST,
                  s.requests_queued DESC NULLS LAST, s.requests_in_flight DESC NULLS LAST,
                  s.humidity_pct DESC NULLS LAST
        LIMIT 1) AS l
    $q$, ww_tier_node_columns(), src, last)
    USING p_from, p_to, p_nodes;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION ww_tier_node_minutes(timestamptz, timestamptz, text[]) FROM PUBLIC;

-- Node hours from the node minutes: the hours in [p_from, p_to) (on hours) of every node or
-- of p_nodes. The *_last readings are those of the hour's latest minute.
CREATE OR REPLACE FUNCTION ww_tier_node_hours(p_from timestamptz, p_to timestamptz,
                                              p_nodes text[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    n integer;
BEGIN
    EXECUTE 'DELETE FROM node_rollup_1h WHERE time >= $1 AND time < $2'
            ' AND ($3 IS NULL OR node_id = ANY ($3))' USING p_from, p_to, p_nodes;
    EXECUTE format($q$
    INSERT INTO node_rollup_1h (%s)
    SELECT
        a.time, a.node_id, a.samples, a.humidity_samples, a.last_time, a.sampled_s, a.energy_j,
        a.tokens, a.throttled_s, a.requests_completed, a.power_w_sum, a.inlet_c_sum,
        a.outlet_c_sum, a.flow_lpm_sum, a.wafer_hotspot_c_sum, a.utilization_sum,
        a.tokens_per_s_sum, a.throttle_factor_sum, a.requests_queued_sum,
        a.requests_in_flight_sum, a.humidity_pct_sum, a.power_w_min, a.power_w_max,
        l.power_w_last, a.inlet_c_min, a.inlet_c_max, l.inlet_c_last, a.outlet_c_min,
        a.outlet_c_max, l.outlet_c_last, a.flow_lpm_min, a.flow_lpm_max, l.flow_lpm_last,
        a.wafer_hotspot_c_min, a.wafer_hotspot_c_max, l.wafer_hotspot_c_last,
        a.utilization_min, a.utilization_max, l.utilization_last, a.tokens_per_s_min,
        a.tokens_per_s_max, l.tokens_per_s_last, a.throttle_factor_min,
        a.throttle_factor_max, l.throttle_factor_last, a.requests_queued_min,
        a.requests_queued_max, l.requests_queued_last, a.requests_in_flight_min,
        a.requests_in_flight_max, l.requests_in_flight_last, a.humidity_pct_min,
        a.humidity_pct_max, l.humidity_pct_last
    FROM (SELECT
               m.node_id, date_trunc('hour', m.time, 'UTC') AS time,
               sum(m.samples)::integer AS samples,
               sum(m.humidity_samples)::integer AS humidity_samples,
               max(m.last_time) AS last_time, sum(m.sampled_s) AS sampled_s,
               sum(m.energy_j) AS energy_j,
               sum(m.tokens) AS tokens, sum(m.throttled_s) AS throttled_s,
               sum(m.requests_completed)::bigint AS requests_completed,
               sum(m.power_w_sum) AS power_w_sum, sum(m.inlet_c_sum) AS inlet_c_sum,
               sum(m.outlet_c_sum) AS outlet_c_sum, sum(m.flow_lpm_sum) AS flow_lpm_sum,
               sum(m.wafer_hotspot_c_sum) AS wafer_hotspot_c_sum,
               sum(m.utilization_sum) AS utilization_sum,
               sum(m.tokens_per_s_sum) AS tokens_per_s_sum,
               sum(m.throttle_factor_sum) AS throttle_factor_sum,
               sum(m.requests_queued_sum)::bigint AS requests_queued_sum,
               sum(m.requests_in_flight_sum)::bigint AS requests_in_flight_sum,
               sum(m.humidity_pct_sum) AS humidity_pct_sum,
               min(m.power_w_min) AS power_w_min, max(m.power_w_max) AS power_w_max,
               min(m.inlet_c_min) AS inlet_c_min, max(m.inlet_c_max) AS inlet_c_max,
               min(m.outlet_c_min) AS outlet_c_min, max(m.outlet_c_max) AS outlet_c_max,
               min(m.flow_lpm_min) AS flow_lpm_min, max(m.flow_lpm_max) AS flow_lpm_max,
               min(m.wafer_hotspot_c_min) AS wafer_hotspot_c_min,
               max(m.wafer_hotspot_c_max) AS wafer_hotspot_c_max,
               min(m.utilization_min) AS utilization_min,
               max(m.utilization_max) AS utilization_max,
               min(m.tokens_per_s_min) AS tokens_per_s_min,
               max(m.tokens_per_s_max) AS tokens_per_s_max,
               min(m.throttle_factor_min) AS throttle_factor_min,
               max(m.throttle_factor_max) AS throttle_factor_max,
               min(m.requests_queued_min) AS requests_queued_min,
               max(m.requests_queued_max) AS requests_queued_max,
               min(m.requests_in_flight_min) AS requests_in_flight_min,
               max(m.requests_in_flight_max) AS requests_in_flight_max,
               min(m.humidity_pct_min) AS humidity_pct_min,
               max(m.humidity_pct_max) AS humidity_pct_max
          FROM node_rollup_1m m
          WHERE m.time >= $1 AND m.time < $2 AND ($3 IS NULL OR m.node_id = ANY ($3))
          GROUP BY 1, 2) AS a
    JOIN node_rollup_1m l
        ON l.node_id = a.node_id AND l.time = date_trunc('minute', a.last_time, 'UTC')
    $q$, ww_tier_node_columns()) USING p_from, p_to, p_nodes;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION ww_tier_node_hours(timestamptz, timestamptz, text[]) FROM PUBLIC;

-- Site rows of [p_from, p_to) rebuilt whole from the node rows of the same tier ('1m': the
-- node minutes into site_rollup_1m, '1h': the node hours into site_rollup_1h), labels as
-- nodes holds them now (a node without a Hello: '' labels, rated_kw 0).
CREATE OR REPLACE FUNCTION ww_tier_sites(p_tier text, p_from timestamptz, p_to timestamptz)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    n integer;
BEGIN
    IF p_tier NOT IN ('1m', '1h') THEN
        RAISE EXCEPTION 'ww_tier_sites: tier must be 1m or 1h, not %', p_tier;
    END IF;
    EXECUTE format('DELETE FROM site_rollup_%s WHERE time >= $1 AND time < $2', p_tier)
        USING p_from, p_to;
    EXECUTE format($q$
    INSERT INTO site_rollup_%1$s (
        time, site, hall, phase, samples, humidity_samples, rated_kw, sampled_s, energy_j, tokens,
        throttled_s, requests_completed, inlet_c_sum, outlet_c_sum, flow_lpm_sum,
        wafer_hotspot_c_sum, utilization_sum, humidity_pct_sum, nodes, throttled_nodes,
        power_w_max, inlet_c_max, outlet_c_max, flow_lpm_min, wafer_hotspot_c_max,
        humidity_pct_max, hot_node_ids, hot_node_c, inlet_c_samples, outlet_c_samples,
        flow_lpm_samples, wafer_hotspot_c_samples, utilization_samples, energy_j_tokened)
    SELECT r.time, coalesce(n.site, ''), coalesce(n.hall, ''), coalesce(n.phase, ''),
           sum(r.samples), sum(r.humidity_samples), sum(coalesce(n.rated_kw, 0)),
           sum(r.sampled_s), sum(r.energy_j), sum(r.tokens), sum(r.throttled_s), sum(r.requests_completed),
           sum(r.inlet_c_sum), sum(r.outlet_c_sum), sum(r.flow_lpm_sum),
           sum(r.wafer_hotspot_c_sum), sum(r.utilization_sum), sum(r.humidity_pct_sum),
           count(*), count(*) FILTER (WHERE r.throttled_s > 0), max(r.power_w_max),
           max(r.inlet_c_max), max(r.outlet_c_max), min(r.flow_lpm_min),
           max(r.wafer_hotspot_c_max), max(r.humidity_pct_max),
           -- Nodes without a hotspot reading are not among the hottest.
           coalesce((array_agg(r.node_id ORDER BY r.wafer_hotspot_c_max DESC, r.node_id)
                     FILTER (WHERE r.wafer_hotspot_c_max IS NOT NULL))[1:10], '{}'),
           coalesce((array_agg(r.wafer_hotspot_c_max ORDER BY r.wafer_hotspot_c_max DESC, r.node_id)
                     FILTER (WHERE r.wafer_hotspot_c_max IS NOT NULL))[1:10], '{}'),
           -- The divisors of the means: the samples of the nodes that had each reading.
           coalesce(sum(r.samples) FILTER (WHERE r.inlet_c_sum IS NOT NULL), 0),
           coalesce(sum(r.samples) FILTER (WHERE r.outlet_c_sum IS NOT NULL), 0),
           coalesce(sum(r.samples) FILTER (WHERE r.flow_lpm_sum IS NOT NULL), 0),
           coalesce(sum(r.samples) FILTER (WHERE r.wafer_hotspot_c_sum IS NOT NULL), 0),
           coalesce(sum(r.samples) FILTER (WHERE r.utilization_sum IS NOT NULL), 0),
           sum(r.energy_j) FILTER (WHERE r.tokens IS NOT NULL)
    FROM node_rollup_%1$s r
    LEFT JOIN nodes n ON n.node_id = r.node_id
    WHERE r.time >= $1 AND r.time < $2
    GROUP BY 1, 2, 3, 4
    $q$, p_tier) USING p_from, p_to;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION ww_tier_sites(text, timestamptz, timestamptz) FROM PUBLIC;

-- Latency per node, model and hour from the latency windows (raw or compacted: ww_windows):
-- the hours in [p_from, p_to) of every node or of p_nodes (all their models).
CREATE OR REPLACE FUNCTION ww_tier_latency_hours(p_from timestamptz, p_to timestamptz,
                                                 p_nodes text[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    n integer;
BEGIN
    EXECUTE 'DELETE FROM latency_node_1h WHERE time >= $1 AND time < $2'
            ' AND ($3 IS NULL OR node_id = ANY ($3))' USING p_from, p_to, p_nodes;
    -- Two statements rather than a NULL node list, as ww_windows has two forms (the node
    -- list must reach both sides' indexes).
    EXECUTE format($q$
    INSERT INTO latency_node_1h (
        time, node_id, model, duration_s, requests_ok, requests_error, requests_timeout,
        requests_rejected, prompt_tokens, output_tokens, windows, queue, ttft, tpot, e2e)
    SELECT date_trunc('hour', w.time, 'UTC'), w.node_id, w.model, sum(w.duration_s),
           sum(w.requests_ok), sum(w.requests_error), sum(w.requests_timeout),
           sum(w.requests_rejected), sum(w.prompt_tokens), sum(w.output_tokens), count(*),
           ww_merge(w.queue), ww_merge(w.ttft), ww_merge(w.tpot), ww_merge(w.e2e)
    FROM %s w
    GROUP BY 1, 2, 3
    $q$, CASE WHEN p_nodes IS NULL THEN 'ww_windows($1, $2)' ELSE 'ww_windows($1, $2, $3)' END)
    USING p_from, p_to, p_nodes;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION ww_tier_latency_hours(timestamptz, timestamptz, text[]) FROM PUBLIC;

-- The late windows of the node-hours (p_hour, p_nodes) whose raw windows retention dropped
-- (below windows_dropped_through, 0020): each node-model's hour row and its late windows,
-- merged, replace the hour row, and the late windows leave latency_windows (the merge is
-- exact: the row stays all the windows the hour ever received). A second part of a window
-- whose first part is already merged counts once more in windows. Returns the rows written.
CREATE OR REPLACE FUNCTION ww_tier_latency_merge(p_hour timestamptz, p_nodes text[])
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    n integer;
BEGIN
    WITH late AS (
        DELETE FROM latency_windows w
        WHERE w.time >= p_hour AND w.time < p_hour + interval '1 hour'
          AND w.node_id = ANY (p_nodes)
        RETURNING w.*
    ), old AS (
        DELETE FROM latency_node_1h h
        WHERE h.time = p_hour AND h.node_id = ANY (p_nodes)
          AND (h.node_id, h.model) IN (SELECT l.node_id, l.model FROM late l)
        RETURNING h.*
    ), u AS (
        SELECT l.node_id, l.model, l.duration_s, l.requests_ok, l.requests_error,
               l.requests_timeout, l.requests_rejected, l.prompt_tokens, l.output_tokens,
               1 AS windows, l.queue, l.ttft, l.tpot, l.e2e
        FROM late l
        UNION ALL
        SELECT o.node_id, o.model, o.duration_s, o.requests_ok, o.requests_error,
               o.requests_timeout, o.requests_rejected, o.prompt_tokens, o.output_tokens,
               o.windows, o.queue, o.ttft, o.tpot, o.e2e
        FROM old o
    )
    INSERT INTO latency_node_1h (
        time, node_id, model, duration_s, requests_ok, requests_error, requests_timeout,
        requests_rejected, prompt_tokens, output_tokens, windows, queue, ttft, tpot, e2e)
    SELECT p_hour, u.node_id, u.model, sum(u.duration_s), sum(u.requests_ok),
           sum(u.requests_error), sum(u.requests_timeout), sum(u.requests_rejected),
           sum(u.prompt_tokens), sum(u.output_tokens), sum(u.windows), ww_merge(u.queue),
           ww_merge(u.ttft), ww_merge(u.tpot), ww_merge(u.e2e)
    FROM u
    GROUP BY u.node_id, u.model;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION ww_tier_latency_merge(timestamptz, text[]) FROM PUBLIC;

-- The late latency node-hours (p_hours[i], p_nodes[i]) brought up to date, an hour at a
-- time: recomputed from the windows where retention has not dropped them (their block
-- rebuilt first where they are compacted, 0021, so that the late windows are in it),
-- merged where it has (ww_tier_latency_merge); then the hour's phase rows. Returns the
-- hours done.
CREATE OR REPLACE FUNCTION ww_tier_latency_late(p_hours timestamptz[], p_nodes text[])
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    dropped timestamptz := (SELECT windows_dropped_through FROM ww_tier_state);
    b timestamptz;
    nodes text[];
    n integer := 0;
BEGIN
    FOR b IN SELECT DISTINCT u FROM unnest(p_hours) u ORDER BY 1 LOOP
        nodes := ARRAY(SELECT DISTINCT x.n FROM unnest(p_hours, p_nodes) x(t, n) WHERE x.t = b);
        IF b < dropped THEN
            PERFORM ww_tier_latency_merge(b, nodes);
        ELSE
            PERFORM ww_compact_window_hours(array_fill(b, ARRAY[cardinality(nodes)]), nodes);
            PERFORM ww_tier_latency_hours(b, b + interval '1 hour', nodes);
        END IF;
        PERFORM ww_tier_phase_latency_hours(b, b + interval '1 hour');
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION ww_tier_latency_late(timestamptz[], text[]) FROM PUBLIC;

-- latency_rollup_1h (per phase, model and site) of the hours in [p_from, p_to) rebuilt whole
-- from latency_rollup_1m, which the ingest path keeps exact (late windows and window parts
-- included). ww_rollup_hours (the SLO evaluator's) only rebuilds an hour whose window count
-- changed, which a late second part of a window does not do; the tier builder rebuilds
-- every hour it builds or that late windows touched, so that hour rows below hours_done are
-- exact and the dashboards may read them.
CREATE OR REPLACE FUNCTION ww_tier_phase_latency_hours(p_from timestamptz, p_to timestamptz)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    n integer;
BEGIN
    DELETE FROM latency_rollup_1h WHERE time >= p_from AND time < p_to;
    INSERT INTO latency_rollup_1h (time, phase, model, site, windows, requests_ok,
                                   requests_error, requests_timeout, requests_rejected,
                                   prompt_tokens, output_tokens, queue, ttft, tpot, e2e)
    SELECT date_trunc('hour', r.time, 'UTC'), r.phase, r.model, r.site, sum(r.windows),
           sum(r.requests_ok), sum(r.requests_error), sum(r.requests_timeout),
           sum(r.requests_rejected), sum(r.prompt_tokens), sum(r.output_tokens),
           ww_merge(r.queue), ww_merge(r.ttft), ww_merge(r.tpot), ww_merge(r.e2e)
    FROM latency_rollup_1m r
    WHERE r.time >= p_from AND r.time < p_to
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION ww_tier_phase_latency_hours(timestamptz, timestamptz) FROM PUBLIC;

-- The burn-rate hours [p_from, p_to) (on hours) from slo_evaluations: per SLO and window,
-- the evaluations and their highest burn rate. Returns the rows written.
CREATE OR REPLACE FUNCTION ww_tier_slo_hours(p_from timestamptz, p_to timestamptz)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    n integer;
BEGIN
    DELETE FROM slo_burn_1h WHERE time >= p_from AND time < p_to;
    INSERT INTO slo_burn_1h (time, burn_max, evaluations, phase, slo, window_name, model)
    SELECT date_trunc('hour', e.time, 'UTC'), max(e.burn_rate), count(*), e.phase, e.slo,
           e.window_name, max(e.model)
    FROM slo_evaluations e
    WHERE e.time >= p_from AND e.time < p_to
    GROUP BY 1, e.phase, e.slo, e.window_name;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION ww_tier_slo_hours(timestamptz, timestamptz) FROM PUBLIC;

-- The ingest transaction's side of the protocol, called first in every write transaction:
-- holds the shared tier lock until the transaction ends (so that ww_tier_advance, which
-- takes it exclusively, waits for the writes in flight) and returns the watermark. The
-- write then records in ww_tier_dirty the (node, minute) of its samples older than the
-- watermark and the (node, hour) of its latency windows that start before the watermark's
-- hour. The watermark is read by a second query, after the lock is held: a volatile
-- function's queries each take a new snapshot, so a watermark moved while this one waited
-- is seen.
CREATE OR REPLACE FUNCTION ww_tier_watermark() RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(7870002);
    RETURN (SELECT watermark FROM ww_tier_state);
END $$;
REVOKE EXECUTE ON FUNCTION ww_tier_watermark() FROM PUBLIC;
COMMENT ON FUNCTION ww_tier_watermark() IS
    'For the collector''s write transaction: takes the shared tier lock for the rest of the '
    'transaction and returns the watermark (older samples are late: record them in '
    'ww_tier_dirty).';

-- The tier job's first step, its own transaction: moves the watermark to the minute of
-- now() - grace (never back). Takes the tier lock exclusively, so it waits for the write
-- transactions in flight; lock_timeout keeps a stuck writer from stalling every other write
-- behind this one (the job tries again at its next run). Returns the watermark.
CREATE OR REPLACE FUNCTION ww_tier_advance(grace interval) RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
SET lock_timeout = '2s' AS $$
DECLARE
    w timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(7870002);
    UPDATE ww_tier_state
    SET watermark = greatest(watermark, date_trunc('minute', now() - grace, 'UTC')),
        updated_at = now()
    RETURNING watermark INTO w;
    RETURN w;
END $$;
REVOKE EXECUTE ON FUNCTION ww_tier_advance(interval) FROM PUBLIC;
COMMENT ON FUNCTION ww_tier_advance(interval) IS
    'Tier job: moves the watermark to the minute of now() - grace once the writes in flight '
    'have committed. Call it in its own transaction, before ww_tier_build.';

-- Up to max_dirty late (node, bucket) entries of one tier, deleted, as parallel arrays in
-- bucket order. Taken before anything is built: whatever the entries point at was committed
-- before this query's snapshot, so the builders that run after it see it; an entry
-- committed later stays for the next build.
CREATE OR REPLACE FUNCTION ww_tier_take_dirty(p_tier "char", p_before timestamptz,
                                              max_dirty integer, OUT times timestamptz[],
                                              OUT nodes text[])
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH k AS (
        DELETE FROM ww_tier_dirty d
        USING (SELECT tier, time, node_id
               FROM ww_tier_dirty
               WHERE tier = p_tier AND time < p_before
               ORDER BY time, node_id
               LIMIT max_dirty) AS s
        WHERE d.tier = s.tier AND d.time = s.time AND d.node_id = s.node_id
        RETURNING d.time, d.node_id)
    SELECT coalesce(array_agg(time ORDER BY time, node_id), '{}'),
           coalesce(array_agg(node_id ORDER BY time, node_id), '{}')
    FROM k
$$;
REVOKE EXECUTE ON FUNCTION ww_tier_take_dirty("char", timestamptz, integer) FROM PUBLIC;

-- The tier job's second step, its own transaction (one builder at a time: the state row is
-- locked): builds the minutes [minutes_done, min(watermark, minutes_done + max_minutes)),
-- rebuilds up to max_dirty late node-minutes below minutes_done, then builds the hours that
-- are complete and rebuilds up to max_dirty late node-hours of latency, and moves the
-- progress. minutes, hours: built forward; rebuilt: late buckets rebuilt; behind_s: how far
-- minutes_done still is from the watermark; dirty_left: late entries still waiting. Call it
-- again while behind_s > 0 or dirty_left > 0 (a backlog, the history of an upgraded
-- database).
CREATE OR REPLACE FUNCTION ww_tier_build(max_minutes integer, max_dirty integer,
                                         OUT minutes integer, OUT hours integer,
                                         OUT rebuilt integer, OUT behind_s double precision,
                                         OUT dirty_left bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
-- JIT compiles the build's statements (~2 s each, planned with fresh parameters every
-- time) for longer than they run, at any size: off for everything it calls.
SET jit = off AS $$
DECLARE
    st ww_tier_state;
    m_from timestamptz;
    m_to timestamptz;
    h_from timestamptz;
    h_to timestamptz;
    s_times timestamptz[];
    s_nodes text[];
    l_times timestamptz[];
    l_nodes text[];
    b timestamptz;
BEGIN
    IF max_minutes < 1 OR max_dirty < 1 THEN
        RAISE EXCEPTION 'ww_tier_build: max_minutes and max_dirty must be >= 1';
    END IF;
    SELECT * INTO st FROM ww_tier_state FOR UPDATE;
    m_from := st.minutes_done;
    m_to := least(st.watermark, m_from + make_interval(mins => max_minutes));
    h_from := st.hours_done;
    h_to := greatest(h_from, date_trunc('hour', m_to, 'UTC'));
    -- Late entries first (see ww_tier_take_dirty). Those inside what is built forward now
    -- are only dropped, and those before the tiers' start (see ww_tier_state); those
    -- between are rebuilt.
    DELETE FROM ww_tier_dirty WHERE time < st.start;
    DELETE FROM ww_tier_dirty WHERE tier = 's' AND time >= m_from AND time < m_to;
    DELETE FROM ww_tier_dirty WHERE tier = 'l' AND time >= h_from AND time < h_to;
    SELECT t.times, t.nodes INTO s_times, s_nodes FROM ww_tier_take_dirty('s', m_from, max_dirty) t;
    SELECT t.times, t.nodes INTO l_times, l_nodes FROM ww_tier_take_dirty('l', h_from, max_dirty) t;
    -- A late sample of a compacted node-hour goes into its block first (0019), so that
    -- the minutes below read it.
    IF cardinality(s_times) > 0 THEN
        PERFORM ww_compact_node_hours(ARRAY(SELECT date_trunc('hour', u, 'UTC')
                                            FROM unnest(s_times) WITH ORDINALITY x(u, i)
                                            ORDER BY i), s_nodes);
    END IF;
    minutes := 0;
    hours := 0;
    rebuilt := cardinality(s_times) + cardinality(l_times);
    IF m_to > m_from THEN
        PERFORM ww_tier_node_minutes(m_from, m_to, NULL);
        PERFORM ww_tier_sites('1m', m_from, m_to);
        minutes := (extract(epoch FROM m_to - m_from) / 60)::integer;
    END IF;
    -- Late minutes, one minute at a time with its nodes; then their node hours (below
    -- hours_done: the forward hours below cover the rest) and the site rows of each.
    FOR b IN SELECT DISTINCT u FROM unnest(s_times) u ORDER BY 1 LOOP
        PERFORM ww_tier_node_minutes(b, b + interval '1 minute',
                                     ARRAY(SELECT n FROM unnest(s_times, s_nodes) x(t, n) WHERE t = b));
        PERFORM ww_tier_sites('1m', b, b + interval '1 minute');
    END LOOP;
    FOR b IN SELECT DISTINCT date_trunc('hour', u, 'UTC') FROM unnest(s_times) u
             WHERE u < h_from ORDER BY 1 LOOP
        PERFORM ww_tier_node_hours(b, b + interval '1 hour',
                                   ARRAY(SELECT DISTINCT n FROM unnest(s_times, s_nodes) x(t, n)
                                         WHERE date_trunc('hour', t, 'UTC') = b));
        PERFORM ww_tier_sites('1h', b, b + interval '1 hour');
    END LOOP;
    IF h_to > h_from THEN
        PERFORM ww_tier_node_hours(h_from, h_to, NULL);
        PERFORM ww_tier_sites('1h', h_from, h_to);
        PERFORM ww_tier_latency_hours(h_from, h_to, NULL);
        PERFORM ww_tier_phase_latency_hours(h_from, h_to);
        -- The hour before too, once more: an evaluation is written at its own time, which
        -- a collector's clock behind the database's can put below hours_done.
        PERFORM ww_tier_slo_hours(greatest(st.start, h_from - interval '1 hour'), h_to);
        hours := (extract(epoch FROM h_to - h_from) / 3600)::integer;
    END IF;
    PERFORM ww_tier_latency_late(l_times, l_nodes);
    UPDATE ww_tier_state SET minutes_done = m_to, hours_done = h_to, updated_at = now();
    behind_s := extract(epoch FROM st.watermark - m_to);
    SELECT count(*) INTO dirty_left FROM ww_tier_dirty WHERE time < m_to;
END $$;
REVOKE EXECUTE ON FUNCTION ww_tier_build(integer, integer) FROM PUBLIC;
COMMENT ON FUNCTION ww_tier_build(integer, integer) IS
    'Tier job: builds the closed minutes and complete hours not built yet (at most '
    'max_minutes) and rebuilds up to max_dirty late buckets of each kind, in the caller''s '
    'transaction. Returns what it did, how far behind the watermark it still is and the late '
    'entries left.';

-- Retention of the per-node tiers: drops the partitions of node_rollup_1m and
-- latency_node_1h (daily) and of node_rollup_1h (monthly) whose every row is older than
-- their days (0 or NULL: keep), and deletes such rows from their default partitions. The site
-- tiers follow rollup_days (ww_drop_old_data). Returns the partitions dropped.
CREATE OR REPLACE FUNCTION ww_drop_old_tiers(node_minute_days integer, node_hour_days integer,
                                             latency_node_days integer) RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT ww_drop_partitions_before('node_rollup_1m', node_minute_days)
           + ww_drop_partitions_before('node_rollup_1h', node_hour_days)
           + ww_drop_partitions_before('latency_node_1h', latency_node_days)
$$;
REVOKE EXECUTE ON FUNCTION ww_drop_old_tiers(integer, integer, integer) FROM PUBLIC;
COMMENT ON FUNCTION ww_drop_old_tiers(integer, integer, integer) IS
    'Retention of node_rollup_1m, node_rollup_1h and latency_node_1h: drops their partitions '
    'older than the given days (0: keep) and deletes such rows of their default partitions. '
    'Runs as the owner. Returns the partitions dropped.';

-- Retention of latency_windows (retention.window_days, 0020): drops the daily partitions
-- before the UTC midnight days ago, but never past the day of hours_done (an hour is built
-- into latency_node_1h before its windows go), deletes such rows of the default partition,
-- and moves windows_dropped_through there, in one transaction. Under the tier lock taken
-- exclusively (as ww_tier_advance: the writes in flight finish first, new ones wait), it
-- first brings the late node-hours still waiting below that point up to date from the
-- windows about to go: a late window written while the day was being dropped either waits
-- for the lock or is in that set. A partition that a reader holds past lock_timeout stops
-- the step at its start (the rest waits for the next run), so every window below
-- windows_dropped_through is gone and every one above is still there; their blocks
-- (latency_windows_compact, 0021) go with them. Returns the partitions dropped.
CREATE OR REPLACE FUNCTION ww_drop_old_windows(days integer) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp
SET lock_timeout = '2s' SET jit = off AS $$
DECLARE
    st ww_tier_state;
    b timestamptz;
    r record;
    dropped integer := 0;
    late_h timestamptz[];
    late_n text[];
BEGIN
    IF coalesce(days, 0) <= 0 THEN
        RETURN 0;
    END IF;
    SELECT * INTO st FROM ww_tier_state FOR UPDATE;
    b := least(date_trunc('day', now(), 'UTC') - make_interval(days => days),
               date_trunc('day', st.hours_done, 'UTC'));
    IF b <= st.windows_dropped_through THEN
        RETURN 0;
    END IF;
    BEGIN
        PERFORM pg_advisory_xact_lock(7870002);
    EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
        RAISE NOTICE 'latency windows before % not dropped now (%): retried at the next run',
                     b, SQLERRM;
        RETURN 0;
    END;
    DELETE FROM ww_tier_dirty d WHERE d.tier = 'l' AND d.time < st.start;
    WITH k AS (
        DELETE FROM ww_tier_dirty d WHERE d.tier = 'l' AND d.time < b
        RETURNING d.time, d.node_id)
    SELECT array_agg(time ORDER BY time, node_id), array_agg(node_id ORDER BY time, node_id)
    INTO late_h, late_n FROM k;
    IF late_h IS NOT NULL THEN
        PERFORM ww_tier_latency_late(late_h, late_n);
    END IF;
    -- The partitions with rows before b, oldest first, by their bounds (a partition made in
    -- another time zone before schema 19 is not aligned on UTC days).
    FOR r IN SELECT c.relname, v[1]::timestamptz AS lo, v[2]::timestamptz AS hi
             FROM pg_partition_tree('latency_windows') t
             JOIN pg_class c ON c.oid = t.relid
             CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                             $r$FROM \('([^']+)'\) TO \('([^']+)'\)$r$) AS v
             WHERE t.isleaf AND v[1]::timestamptz < b
             ORDER BY 2 LOOP
        IF r.hi > b OR ww_drop_partition(r.relname) = 0 THEN
            b := r.lo;
            EXIT;
        END IF;
        dropped := dropped + 1;
    END LOOP;
    DELETE FROM latency_windows_default WHERE time < b;
    -- Their blocks (0021) go with them: the partitions of latency_windows_compact wholly
    -- before b (a partition a reader holds is retried at the next run).
    FOR r IN SELECT c.relname, v[2]::timestamptz AS hi
             FROM pg_partition_tree('latency_windows_compact') t
             JOIN pg_class c ON c.oid = t.relid
             CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                             $r$FROM \('([^']+)'\) TO \('([^']+)'\)$r$) AS v
             WHERE t.isleaf AND v[2]::timestamptz <= b LOOP
        dropped := dropped + ww_drop_partition(r.relname);
    END LOOP;
    DELETE FROM latency_windows_compact_default WHERE time < b;
    UPDATE ww_tier_state SET windows_dropped_through = greatest(windows_dropped_through, b),
                             updated_at = now();
    RETURN dropped;
END $$;
REVOKE EXECUTE ON FUNCTION ww_drop_old_windows(integer) FROM PUBLIC;
COMMENT ON FUNCTION ww_drop_old_windows(integer) IS
    'Retention of latency_windows: drops its partitions older than days (0: keep) once their '
    'hours are built, the late ones first brought up to date; below windows_dropped_through '
    'a late window is merged into latency_node_1h. Runs as the owner. Returns the '
    'partitions dropped.';
