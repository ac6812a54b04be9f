-- waferwatch schema, version 9: ww_phase_capacity node by node through the index.
--
-- At fleet scale a phase's 30 s of samples are ~360,000 rows (10,870 nodes at 1 Hz).
-- Version 6 found them with the time BRIN index, materialised them and sorted them by
-- (node_id, time DESC) for each node's latest sample. Under ingest the newest page ranges
-- are not summarised yet (autovacuum summarises them about once a minute), and a BRIN scan
-- reads every unsummarised page: with the fleet bench's collector evaluating three phases
-- every 30 s, one evaluation in two took 3-5 s per phase instead of 0.5 s, and the sort
-- spilled to disk besides. Now every node of the phase is one range scan of
-- node_samples_node_time_idx for its aggregates and one backward probe for its latest
-- sample: the cost follows the phase's nodes and samples, whatever the BRIN state (0.33 s
-- against 1.3-1.5 s per phase on 12,225 nodes x 300 s of synthetic samples with the newest
-- ranges unsummarised; identical rows). JIT is off for it: compiling the plan cost more
-- than running it.
CREATE OR REPLACE FUNCTION ww_phase_capacity(p_phase text, p_from timestamptz, p_to timestamptz,
                                             p_hotspot_max double precision)
RETURNS TABLE(reporting_nodes integer, healthy_nodes integer, delivered_kw double precision,
              power_kw double precision, hotspot_max_c double precision,
              outlet_max_c double precision, throttled_share double precision,
              j_per_token double precision)
LANGUAGE sql STABLE PARALLEL SAFE SET jit = off AS $$
    WITH per AS (
        SELECT n.rated_kw, agg.*, last.power_w,
               NOT last.throttled AND (p_hotspot_max IS NULL
                                       OR last.wafer_hotspot_c <= p_hotspot_max) AS h
        FROM nodes n
        CROSS JOIN LATERAL (
            SELECT max(ns.wafer_hotspot_c) AS hotspot_max, max(ns.outlet_c) AS outlet_max,
                   count(*) FILTER (WHERE ns.throttled) AS n_throttled, count(*) AS n,
                   sum(ns.power_w::double precision) AS power_sum,
                   sum(ns.tokens_per_s::double precision) AS tokens_sum
            FROM node_samples ns
            WHERE ns.node_id = n.node_id AND ns.time >= p_from AND ns.time < p_to) AS agg
        CROSS JOIN LATERAL (
            SELECT s.power_w, s.wafer_hotspot_c, s.throttled
            FROM node_samples s
            WHERE s.node_id = n.node_id AND s.time >= p_from AND s.time < p_to
            ORDER BY s.time DESC
            LIMIT 1) AS last
        WHERE n.phase = p_phase
    ), l AS (
        SELECT count(*)::integer AS reporting,
               count(*) FILTER (WHERE h)::integer AS healthy,
               coalesce(sum(rated_kw) FILTER (WHERE h), 0) AS delivered_kw,
               coalesce(sum(power_w::double precision), 0) / 1000 AS power_kw
        FROM per
    ), a AS (
        SELECT max(hotspot_max)::double precision AS hotspot_max_c,
               max(outlet_max)::double precision AS outlet_max_c,
               sum(n_throttled)::double precision / nullif(sum(n), 0) AS throttled_share,
               sum(power_sum) / nullif(sum(tokens_sum), 0) AS j_per_token
        FROM per
    )
    SELECT l.reporting, l.healthy, l.delivered_kw, l.power_kw, a.hotspot_max_c,
           a.outlet_max_c, a.throttled_share, a.j_per_token
    FROM l, a
$$;
COMMENT ON FUNCTION ww_phase_capacity(text, timestamptz, timestamptz, double precision) IS
    'Per phase over [p_from, p_to): reporting and healthy nodes (latest sample not '
    'throttled, hotspot <= p_hotspot_max), delivered kW (rated, healthy), power kW (latest '
    'per node), max hotspot/outlet, throttled share of samples, J/token. One row always.';
