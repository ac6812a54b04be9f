-- Repeatable: what the dashboards and reports read over a time range, from the storage
-- tiers (migration 0018) chosen by the range, so that a panel costs the same few thousand
-- rows at 1 h or 30 d of the whole fleet. Re-applied by the migrator whenever a file of
-- collector/sql changes (ww_migrate.h). SECURITY INVOKER: a reader needs only SELECT on the
-- tiers (90_grants.sql).
--
-- The rule, one place (ww_tier_for): a step of an hour or more, or a range over 24 h, reads
-- the hour tiers (buckets of at least an hour); anything shorter the minute tiers (buckets
-- of at least a minute). The per-node functions read the raw rows of their nodes for ranges
-- up to 3 h (per-second detail, one index range per node).
--
-- JIT is off in them: their plans cost the branch of the tier not taken as if it ran (a raw
-- scan of the fleet), which turned JIT on and cost ~1.4 s of compiling for a 0.3 s query
-- (bench/fleetday.sh).
--
-- Freshness: the minute and hour tiers hold closed minutes and complete hours (up to
-- ww_tier_state.minutes_done and hours_done, a minute or two behind now with the default
-- tiers.grace); the hour branch adds the minutes of the hour under way from the minute tier,
-- and the latency functions, whose per-minute rollups the ingest path keeps current, read
-- up to now. The "now" panels (ww_node_latest, ww_phase_capacity_latest) stay real time.
--
-- Buckets: date_bin(step, time, 2000-01-01 UTC). A site bucket's power is the mean over its
-- minutes and hours (weighed by their length) of the reporting nodes' power: per row,
-- energy over the seconds the samples stand for (sampled_s) times the nodes, so a node that
-- reported for part of a minute counts with its mean power, not diluted over the whole
-- minute; tokens/s alike.

CREATE OR REPLACE FUNCTION ww_tier_for(p_from timestamptz, p_to timestamptz, p_step interval)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_step >= interval '1 hour' OR p_to - p_from > interval '24 hours'
                THEN '1h' ELSE '1m' END
$$;
COMMENT ON FUNCTION ww_tier_for(timestamptz, timestamptz, interval) IS
    'The tier a range reads: 1h for a step of an hour or more or a range over 24 h, else 1m.';

-- The bucket width a range reads: its step, but at least the tier's minute or hour.
CREATE OR REPLACE FUNCTION ww_tier_step(p_from timestamptz, p_to timestamptz, p_step interval)
RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT greatest(p_step, CASE ww_tier_for(p_from, p_to, p_step)
                                WHEN '1h' THEN interval '1 hour' ELSE interval '1 minute' END)
$$;

-- Where the rows of the minute tier (or of the rows below it) start for a range read from
-- tier p_tier: p_from for the minute tier, the first minute after the hours built
-- (hours_done) for the hour tier, none ('infinity') for raw rows. A bound on the column
-- itself, which the index takes: written as "tier = '1m' OR time >= hours_done" over a
-- CTE's columns it was a filter, and a 30-day range read 30 days of minutes to keep the last
-- hour's (slo_evaluations: 16.6 million rows, 4.5 s; bench/fleetday.sh).
CREATE OR REPLACE FUNCTION ww_tier_minutes_from(p_tier text, p_from timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE p_tier
               WHEN '1m' THEN p_from
               WHEN '1h' THEN greatest(p_from, (SELECT s.hours_done FROM ww_tier_state s))
               ELSE timestamptz 'infinity' END
$$;

-- The tier a per-node range reads: its nodes' raw rows up to 3 h (per-second detail, one
-- index range per node), else ww_tier_for's. A function of the parameters alone, so that a
-- condition on it is checked once before anything is read.
CREATE OR REPLACE FUNCTION ww_node_tier_for(p_from timestamptz, p_to timestamptz, p_step interval)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_to - p_from <= interval '3 hours' THEN 'raw'
                ELSE ww_tier_for(p_from, p_to, p_step) END
$$;

-- Per bucket, site, hall and phase: reporting nodes (the most in any minute or hour of the
-- bucket), their rated MW, power MW, output tokens/s, J per output token, coolant and wafer
-- temperatures (averages over samples, extremes), the lowest flow, throttled nodes (the
-- most in any minute or hour), humidity, the samples behind the averages (to weigh them
-- when combining rows), and the phase's contract and limits (NULL for a phase the SLO file
-- does not know). A phase over several sites or halls has a row for each: sum power, tokens
-- and nodes over them, weigh averages by samples (humidity by humidity_samples).
CREATE OR REPLACE FUNCTION ww_site_series(p_from timestamptz, p_to timestamptz, p_step interval)
RETURNS TABLE ("time" timestamptz, site text, hall text, phase text, nodes integer,
               rated_mw double precision, power_mw double precision,
               tokens_per_s double precision, j_per_token double precision,
               inlet_avg_c double precision, inlet_max_c real, outlet_avg_c double precision,
               outlet_max_c real, flow_min_lpm real, hotspot_avg_c double precision,
               hotspot_max_c real, throttled_nodes integer, humidity_avg_pct double precision,
               requests_completed bigint, contracted_mw double precision,
               power_ceiling_mw double precision, hotspot_limit_c double precision,
               outlet_limit_c double precision, samples bigint, humidity_samples bigint)
LANGUAGE sql STABLE SET jit = off AS $$
    -- (Spelled out in each function: a set-returning function here would be planned as
    -- 1,000 rows and skew every join below.)
    WITH t AS (
        SELECT ww_tier_for(p_from, p_to, p_step) AS tier,
               ww_tier_step(p_from, p_to, p_step) AS step,
               (SELECT s.hours_done FROM ww_tier_state s) AS hours_done
    ), r AS (
        SELECT m.time, m.site, m.hall, m.phase, m.nodes, m.rated_kw, m.samples,
               m.humidity_samples, m.sampled_s, m.energy_j, m.tokens, m.requests_completed,
               m.inlet_c_sum,
               m.inlet_c_max, m.outlet_c_sum, m.outlet_c_max, m.flow_lpm_min,
               m.wafer_hotspot_c_sum, m.wafer_hotspot_c_max, m.throttled_nodes,
               m.inlet_c_samples, m.outlet_c_samples, m.wafer_hotspot_c_samples,
               m.energy_j_tokened, m.humidity_pct_sum, 60 AS span_s
        FROM site_rollup_1m m
        WHERE m.time >= ww_tier_minutes_from(ww_tier_for(p_from, p_to, p_step), p_from) AND m.time < p_to
        UNION ALL
        SELECT h.time, h.site, h.hall, h.phase, h.nodes, h.rated_kw, h.samples,
               h.humidity_samples, h.sampled_s, h.energy_j, h.tokens, h.requests_completed,
               h.inlet_c_sum,
               h.inlet_c_max, h.outlet_c_sum, h.outlet_c_max, h.flow_lpm_min,
               h.wafer_hotspot_c_sum, h.wafer_hotspot_c_max, h.throttled_nodes,
               h.inlet_c_samples, h.outlet_c_samples, h.wafer_hotspot_c_samples,
               h.energy_j_tokened, h.humidity_pct_sum, 3600
        FROM site_rollup_1h h, t
        WHERE t.tier = '1h' AND h.time >= date_trunc('hour', p_from, 'UTC') AND h.time < p_to
          AND h.time < t.hours_done
    )
    SELECT date_bin(t.step, r.time, timestamptz '2000-01-01 00:00:00+00'), r.site, r.hall,
           r.phase, max(r.nodes), max(r.rated_kw) / 1e3,
           sum(r.energy_j / nullif(r.sampled_s, 0) * r.nodes * r.span_s) / sum(r.span_s) / 1e6,
           sum(r.tokens / nullif(r.sampled_s, 0) * r.nodes * r.span_s) / sum(r.span_s),
           sum(r.energy_j_tokened) / nullif(sum(r.tokens), 0),
           sum(r.inlet_c_sum) / nullif(sum(r.inlet_c_samples), 0), max(r.inlet_c_max),
           sum(r.outlet_c_sum) / nullif(sum(r.outlet_c_samples), 0), max(r.outlet_c_max),
           min(r.flow_lpm_min),
           sum(r.wafer_hotspot_c_sum) / nullif(sum(r.wafer_hotspot_c_samples), 0),
           max(r.wafer_hotspot_c_max),
           max(r.throttled_nodes), sum(r.humidity_pct_sum) / nullif(sum(r.humidity_samples), 0),
           sum(r.requests_completed)::bigint, max(p.contracted_mw), max(p.power_ceiling_mw),
           max(p.hotspot_max_c), max(p.outlet_max_c), sum(r.samples)::bigint,
           sum(r.humidity_samples)::bigint
    FROM r CROSS JOIN t
    LEFT JOIN phases p ON p.id = r.phase
    GROUP BY 1, 2, 3, 4
    ORDER BY 1, 2, 3, 4
$$;
COMMENT ON FUNCTION ww_site_series(timestamptz, timestamptz, interval) IS
    'Per bucket (ww_tier_step) of [from, to), site, hall and phase, from the site tiers '
    '(ww_tier_for): reporting nodes, rated MW, power MW, tokens/s, J/token, coolant and '
    'wafer temperatures, lowest flow, throttled nodes, humidity, and the phase''s limits.';

-- Per bucket and node of p_nodes: power (mean and highest, W), coolant and wafer
-- temperatures, lowest flow, utilisation, output tokens/s, queued and in-flight requests
-- (means), lowest throttle factor and the share of time throttled. Raw rows for ranges up to
-- 3 h, the node tiers beyond (one index range per node).
CREATE OR REPLACE FUNCTION ww_node_series(p_nodes text[], p_from timestamptz, p_to timestamptz,
                                          p_step interval)
RETURNS TABLE ("time" timestamptz, node_id text, power_w double precision, power_max_w real,
               inlet_c double precision, outlet_c double precision, hotspot_max_c real,
               flow_min_lpm real, utilization double precision, tokens_per_s double precision,
               requests_queued double precision, requests_in_flight double precision,
               throttle_factor_min real, throttled_share double precision)
LANGUAGE sql STABLE SET jit = off AS $$
    WITH t AS (
        SELECT ww_node_tier_for(p_from, p_to, p_step) AS tier,
               CASE WHEN ww_node_tier_for(p_from, p_to, p_step) = 'raw' THEN p_step
                    ELSE ww_tier_step(p_from, p_to, p_step) END AS step,
               (SELECT s.hours_done FROM ww_tier_state s) AS hours_done
    ), r AS (
        SELECT s.time, s.node_id, 1::bigint AS samples,
               coalesce(nullif(n.interval_ms, 0), 1000)::float8 / 1000 AS sampled_s,
               s.power_w::float8 * coalesce(nullif(n.interval_ms, 0), 1000) / 1000 AS energy_j,
               s.power_w AS power_w_max, s.inlet_c::float8 AS inlet_c_sum,
               s.outlet_c::float8 AS outlet_c_sum, s.wafer_hotspot_c AS wafer_hotspot_c_max,
               s.flow_lpm AS flow_lpm_min, s.utilization::float8 AS utilization_sum,
               s.tokens_per_s::float8 AS tokens_per_s_sum,
               s.requests_queued::bigint AS requests_queued_sum,
               s.requests_in_flight::bigint AS requests_in_flight_sum,
               s.throttle_factor AS throttle_factor_min,
               CASE WHEN s.throttled THEN coalesce(nullif(n.interval_ms, 0), 1000)::float8 / 1000
                    WHEN NOT s.throttled THEN 0 END AS throttled_s
        -- Past every compacted hour (the usual "last hours"), node_samples itself; before,
        -- ww_samples (raw and compacted), whose union costs ~2x a row.
        -- Only for the raw tier: a condition on the parameters alone, which the plan checks
        -- once before reading anything (as a CTE's column it was checked per row, after
        -- ww_samples had decoded the whole range).
        FROM (SELECT s.* FROM node_samples s
              WHERE ww_node_tier_for(p_from, p_to, p_step) = 'raw'
                AND p_from >= (SELECT compacted_through FROM ww_tier_state) + interval '1 hour'
                AND s.node_id = ANY (p_nodes) AND s.time >= p_from AND s.time < p_to
              UNION ALL
              SELECT s.* FROM ww_samples(p_from, p_to, p_nodes) s
              WHERE ww_node_tier_for(p_from, p_to, p_step) = 'raw'
                AND p_from < (SELECT compacted_through FROM ww_tier_state) + interval '1 hour')
             AS s
        LEFT JOIN nodes n ON n.node_id = s.node_id
        UNION ALL
        SELECT m.time, m.node_id, m.samples, m.sampled_s, m.energy_j, m.power_w_max,
               m.inlet_c_sum, m.outlet_c_sum, m.wafer_hotspot_c_max, m.flow_lpm_min,
               m.utilization_sum, m.tokens_per_s_sum, m.requests_queued_sum,
               m.requests_in_flight_sum, m.throttle_factor_min, m.throttled_s
        FROM node_rollup_1m m
        WHERE m.node_id = ANY (p_nodes) AND m.time < p_to
          AND m.time >= ww_tier_minutes_from(ww_node_tier_for(p_from, p_to, p_step), p_from)
        UNION ALL
        SELECT h.time, h.node_id, h.samples, h.sampled_s, h.energy_j, h.power_w_max,
               h.inlet_c_sum, h.outlet_c_sum, h.wafer_hotspot_c_max, h.flow_lpm_min,
               h.utilization_sum, h.tokens_per_s_sum, h.requests_queued_sum,
               h.requests_in_flight_sum, h.throttle_factor_min, h.throttled_s
        FROM node_rollup_1h h CROSS JOIN t
        WHERE t.tier = '1h' AND h.time < t.hours_done AND h.node_id = ANY (p_nodes)
          AND h.time >= date_trunc('hour', p_from, 'UTC') AND h.time < p_to
    )
    SELECT date_bin(t.step, r.time, timestamptz '2000-01-01 00:00:00+00'), r.node_id,
           sum(r.energy_j) / sum(r.sampled_s), max(r.power_w_max),
           sum(r.inlet_c_sum) / sum(r.samples), sum(r.outlet_c_sum) / sum(r.samples),
           max(r.wafer_hotspot_c_max), min(r.flow_lpm_min),
           sum(r.utilization_sum) / sum(r.samples), sum(r.tokens_per_s_sum) / sum(r.samples),
           sum(r.requests_queued_sum)::float8 / sum(r.samples),
           sum(r.requests_in_flight_sum)::float8 / sum(r.samples), min(r.throttle_factor_min),
           sum(r.throttled_s) / sum(r.sampled_s)
    FROM r CROSS JOIN t
    GROUP BY 1, 2
    ORDER BY 1, 2
$$;
COMMENT ON FUNCTION ww_node_series(text[], timestamptz, timestamptz, interval) IS
    'Per bucket and node of p_nodes over [from, to): mean and highest power, temperatures, '
    'lowest flow, utilisation, tokens/s, queue, lowest throttle factor, throttled share; raw '
    'rows up to 3 h, node_rollup_1m / _1h beyond (ww_tier_for).';

-- Per bucket, phase and model: requests and tokens, and the four histograms merged (take
-- quantiles with ww_quantile, heatmaps with ww_hist_le). From latency_rollup_1m, or for the
-- hour tier latency_rollup_1h for the hours the tier builder has rebuilt (below hours_done:
-- exact) and the minutes after them: current to the last committed window.
CREATE OR REPLACE FUNCTION ww_latency_series(p_from timestamptz, p_to timestamptz, p_step interval)
RETURNS TABLE ("time" timestamptz, phase text, model text, windows bigint, requests bigint,
               requests_ok bigint, requests_error bigint, requests_timeout bigint,
               requests_rejected bigint, prompt_tokens bigint, output_tokens bigint,
               queue ww_hist, ttft ww_hist, tpot ww_hist, e2e ww_hist)
LANGUAGE sql STABLE SET jit = off AS $$
    -- (Spelled out in each function: a set-returning function here would be planned as
    -- 1,000 rows and skew every join below.)
    WITH t AS (
        SELECT ww_tier_for(p_from, p_to, p_step) AS tier,
               ww_tier_step(p_from, p_to, p_step) AS step,
               (SELECT s.hours_done FROM ww_tier_state s) AS hours_done
    ), r AS (
        SELECT m.time, m.phase, m.model, m.windows, m.requests_ok, m.requests_error,
               m.requests_timeout, m.requests_rejected, m.prompt_tokens, m.output_tokens,
               m.queue, m.ttft, m.tpot, m.e2e
        FROM latency_rollup_1m m
        WHERE m.time >= ww_tier_minutes_from(ww_tier_for(p_from, p_to, p_step), p_from) AND m.time < p_to
        UNION ALL
        SELECT h.time, h.phase, h.model, h.windows, h.requests_ok, h.requests_error,
               h.requests_timeout, h.requests_rejected, h.prompt_tokens, h.output_tokens,
               h.queue, h.ttft, h.tpot, h.e2e
        FROM latency_rollup_1h h CROSS JOIN t
        WHERE t.tier = '1h' AND h.time < t.hours_done
          AND h.time >= date_trunc('hour', p_from, 'UTC') AND h.time < p_to
    )
    SELECT date_bin(t.step, r.time, timestamptz '2000-01-01 00:00:00+00'), r.phase, r.model,
           sum(r.windows)::bigint,
           sum(r.requests_ok + r.requests_error + r.requests_timeout + r.requests_rejected)::bigint,
           sum(r.requests_ok)::bigint, sum(r.requests_error)::bigint,
           sum(r.requests_timeout)::bigint, sum(r.requests_rejected)::bigint,
           sum(r.prompt_tokens)::bigint, sum(r.output_tokens)::bigint, ww_merge(r.queue),
           ww_merge(r.ttft), ww_merge(r.tpot), ww_merge(r.e2e)
    FROM r CROSS JOIN t
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
$$;
COMMENT ON FUNCTION ww_latency_series(timestamptz, timestamptz, interval) IS
    'Per bucket of [from, to), phase and model: requests by status, tokens and the merged '
    'queue/ttft/tpot/e2e histograms, from latency_rollup_1m or _1h (ww_tier_for).';

-- The same per node and model of p_nodes: their windows (raw or compacted: ww_windows) up to
-- 24 h, latency_node_1h for the hours below hours_done and the windows after them beyond.
CREATE OR REPLACE FUNCTION ww_node_latency_series(p_nodes text[], p_from timestamptz,
                                                  p_to timestamptz, p_step interval)
RETURNS TABLE ("time" timestamptz, node_id text, model text, windows bigint,
               requests_ok bigint, requests_error bigint, requests_timeout bigint,
               requests_rejected bigint, prompt_tokens bigint, output_tokens bigint,
               queue ww_hist, ttft ww_hist, tpot ww_hist, e2e ww_hist)
LANGUAGE sql STABLE SET jit = off AS $$
    WITH t AS (
        SELECT ww_tier_for(p_from, p_to, p_step) AS tier,
               CASE WHEN ww_tier_for(p_from, p_to, p_step) = '1h'
                    THEN ww_tier_step(p_from, p_to, p_step) ELSE p_step END AS step,
               (SELECT s.hours_done FROM ww_tier_state s) AS hours_done
    ), r AS (
        SELECT w.time, w.node_id, w.model, 1::bigint AS windows, w.requests_ok,
               w.requests_error, w.requests_timeout, w.requests_rejected, w.prompt_tokens,
               w.output_tokens, w.queue, w.ttft, w.tpot, w.e2e
        FROM ww_windows(ww_tier_minutes_from(ww_tier_for(p_from, p_to, p_step), p_from), p_to,
                        p_nodes) w
        UNION ALL
        SELECT h.time, h.node_id, h.model, h.windows, h.requests_ok, h.requests_error,
               h.requests_timeout, h.requests_rejected, h.prompt_tokens, h.output_tokens,
               h.queue, h.ttft, h.tpot, h.e2e
        FROM latency_node_1h h CROSS JOIN t
        WHERE t.tier = '1h' AND h.time < t.hours_done AND h.node_id = ANY (p_nodes)
          AND h.time >= date_trunc('hour', p_from, 'UTC') AND h.time < p_to
    )
    SELECT date_bin(t.step, r.time, timestamptz '2000-01-01 00:00:00+00'), r.node_id, r.model,
           sum(r.windows)::bigint, sum(r.requests_ok)::bigint, sum(r.requests_error)::bigint,
           sum(r.requests_timeout)::bigint, sum(r.requests_rejected)::bigint,
           sum(r.prompt_tokens)::bigint, sum(r.output_tokens)::bigint, ww_merge(r.queue),
           ww_merge(r.ttft), ww_merge(r.tpot), ww_merge(r.e2e)
    FROM r CROSS JOIN t
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
$$;
COMMENT ON FUNCTION ww_node_latency_series(text[], timestamptz, timestamptz, interval) IS
    'Per bucket, node of p_nodes and model over [from, to): requests, tokens and merged '
    'histograms, from latency_windows up to 24 h, latency_node_1h beyond.';

-- The p_limit nodes of the sites p_sites and phases p_phases with the hottest wafer over
-- [from, to), hottest first (ties: by node_id): their labels, hottest wafer, hottest coolant
-- outlet, lowest flow and share of time throttled. The candidates come from the site tiers'
-- ten hottest nodes per bucket (exact: see site_rollup_1m.hot_node_ids; p_limit is at most
-- 10), their figures from their own node tiers: a few thousand rows at any range.
CREATE OR REPLACE FUNCTION ww_hottest_nodes(p_from timestamptz, p_to timestamptz,
                                            p_step interval, p_sites text[], p_phases text[],
                                            p_limit integer DEFAULT 10)
RETURNS TABLE (node_id text, site text, rack text, phase text, hotspot_max_c real,
               outlet_max_c real, flow_min_lpm real, throttled_share double precision)
LANGUAGE sql STABLE SET jit = off AS $$
    WITH t AS (
        SELECT ww_tier_for(p_from, p_to, p_step) AS tier,
               (SELECT s.hours_done FROM ww_tier_state s) AS hours_done
    ), b AS (
        SELECT m.hot_node_ids, m.hot_node_c
        FROM site_rollup_1m m
        WHERE m.time >= ww_tier_minutes_from(ww_tier_for(p_from, p_to, p_step), p_from) AND m.time < p_to
          AND m.site = ANY (p_sites) AND m.phase = ANY (p_phases)
        UNION ALL
        SELECT h.hot_node_ids, h.hot_node_c
        FROM site_rollup_1h h CROSS JOIN t
        WHERE t.tier = '1h' AND h.time < t.hours_done
          AND h.time >= date_trunc('hour', p_from, 'UTC') AND h.time < p_to
          AND h.site = ANY (p_sites) AND h.phase = ANY (p_phases)
    ), top AS (
        SELECT u.node_id, max(u.c) AS hotspot_max_c
        FROM b CROSS JOIN LATERAL unnest(b.hot_node_ids, b.hot_node_c) AS u(node_id, c)
        GROUP BY u.node_id
        ORDER BY 2 DESC, 1
        LIMIT least(p_limit, 10)
    ), r AS (
        SELECT m.node_id, m.outlet_c_max, m.flow_lpm_min, m.throttled_s, m.sampled_s
        FROM node_rollup_1m m
        WHERE m.node_id IN (SELECT top.node_id FROM top) AND m.time < p_to
          AND m.time >= ww_tier_minutes_from(ww_tier_for(p_from, p_to, p_step), p_from)
        UNION ALL
        SELECT h.node_id, h.outlet_c_max, h.flow_lpm_min, h.throttled_s, h.sampled_s
        FROM node_rollup_1h h CROSS JOIN t
        WHERE t.tier = '1h' AND h.node_id IN (SELECT top.node_id FROM top)
          AND h.time < t.hours_done AND h.time >= date_trunc('hour', p_from, 'UTC')
          AND h.time < p_to
    )
    SELECT top.node_id, coalesce(n.site, ''), coalesce(n.rack, ''), coalesce(n.phase, ''),
           top.hotspot_max_c, max(r.outlet_c_max), min(r.flow_lpm_min),
           sum(r.throttled_s) / nullif(sum(r.sampled_s), 0)
    FROM top
    LEFT JOIN r ON r.node_id = top.node_id
    LEFT JOIN nodes n ON n.node_id = top.node_id
    GROUP BY top.node_id, n.site, n.rack, n.phase, top.hotspot_max_c
    ORDER BY top.hotspot_max_c DESC, top.node_id
$$;
COMMENT ON FUNCTION ww_hottest_nodes(timestamptz, timestamptz, interval, text[], text[], integer) IS
    'The (at most 10) nodes of the given sites and phases with the hottest wafer over '
    '[from, to): labels, hottest wafer and outlet, lowest flow, throttled share; from the '
    'site tiers'' hottest-node lists and the nodes'' own tiers.';

-- Per bucket, SLO and window: the highest burn rate of the evaluations in it (the latency
-- dashboard's burn-rate panel). The hour tier slo_burn_1h below hours_done when the range
-- reads hour tiers (ww_tier_for), slo_evaluations otherwise and above it.
CREATE OR REPLACE FUNCTION ww_burn_series(p_from timestamptz, p_to timestamptz, p_step interval)
RETURNS TABLE ("time" timestamptz, phase text, slo text, model text, window_name text,
               burn double precision)
LANGUAGE sql STABLE SET jit = off AS $$
    -- (Spelled out in each function: a set-returning function here would be planned as
    -- 1,000 rows and skew every join below.)
    WITH t AS (
        SELECT ww_tier_for(p_from, p_to, p_step) AS tier,
               ww_tier_step(p_from, p_to, p_step) AS step,
               (SELECT s.hours_done FROM ww_tier_state s) AS hours_done
    ), r AS (
        SELECT e.time, e.phase, e.slo, e.model, e.window_name, e.burn_rate AS burn
        FROM slo_evaluations e
        WHERE e.time >= ww_tier_minutes_from(ww_tier_for(p_from, p_to, p_step), p_from) AND e.time < p_to
        UNION ALL
        SELECT h.time, h.phase, h.slo, h.model, h.window_name, h.burn_max
        FROM slo_burn_1h h CROSS JOIN t
        WHERE t.tier = '1h' AND h.time < t.hours_done
          AND h.time >= date_trunc('hour', p_from, 'UTC') AND h.time < p_to
    )
    SELECT date_bin(t.step, r.time, timestamptz '2000-01-01 00:00:00+00'), r.phase, r.slo,
           r.model, r.window_name, max(r.burn)
    FROM r CROSS JOIN t
    GROUP BY 1, 2, 3, 4, 5
$$;
COMMENT ON FUNCTION ww_burn_series(timestamptz, timestamptz, interval) IS
    'Per step, SLO and window: the highest burn rate evaluated (slo_burn_1h over the ranges '
    'that read hour tiers, slo_evaluations otherwise).';
