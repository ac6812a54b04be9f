-- Repeatable: the SQL the SLO evaluator measures with (the SLI of a latency or an
-- availability objective, the capacity figures of a phase). Re-applied by the migrator after
-- the versioned migrations whenever a file of collector/sql changes (ww_migrate.h): edit a
-- function here, in place; no migration redefines it. Every statement is idempotent.
-- Both run as their caller (the evaluator connects as waferwatch_writer; dashboards as
-- waferwatch_reader): EXECUTE and the tables they read are granted in 90_grants.sql.

-- An SLI over [p_from, p_to): how many events were good and how many there were, for
-- the SLO evaluator. p_model '*' means every model. p_metric:
--   ttft | tpot | e2e | queue   the histogram of that column merged over the range:
--                  total = its count, good = total - ww_hist_count_above(merged,
--                  p_threshold) (the values at or below the threshold, in seconds)
--   availability   good = requests_ok, total = ok + error + timeout + rejected
--                  (p_threshold is ignored)
-- Where the events are read from, by the length of the range (same result, fewer rows):
--   under 2 minutes   the latency windows (ww_windows) of the phase's nodes (those that start in the
--                     range), which the rollups are made of, so all agree on whole minutes
--                     (ranges compressed by evaluation.window_scale in tests and demos)
--   from 2 minutes    latency_rollup_1m (the minutes that start in the range, phase from
--                     the rollup): at fleet scale the raw windows of a 5-minute range are
--                     millions of rows
--   from 3 hours      when the range holds whole UTC hours (availability too): the hour
--                     rows of latency_rollup_1h for the hours below the tier builder's
--                     hours_done (ww_tier_state: it rebuilds each such hour whole, and again
--                     when late windows touch it, which ww_tier_dirty says meanwhile, 0018)
--                     and, for the others, where the window count still equals their
--                     minutes' (an hour not built yet, the SLO evaluator's ww_rollup_hours,
--                     late data: the minutes are read instead), the minute rows for the rest; for the 30-day SLO period that is 720
--                     merges instead of 43,200 per (phase, model) (bench/sli_period.sh);
--                     between the tiers' start and hours_done the builder made an hour row
--                     of every hour with minutes, so minutes are read there only in the
--                     hours recorded dirty
-- p_tiers_only: a fleet database (collector.role fleet), which has the sites' rollups and no
-- raw windows and no tier builder of its own: rollups whatever the range, and an hour row only
-- where it holds exactly its minutes' windows (per site: rows arrive from each site's
-- builder, which may not have rebuilt an hour touched by late windows yet).
-- Rows are per site (nodes.site, version 24): a phase spread over sites is merged over them.
-- No data: (0, 0). An unknown metric, or a latency metric without a threshold, is an error
-- (SQLSTATE 22023).
-- Custom plans only (plan_cache_mode): after five calls in a session PL/pgSQL may keep a
-- generic plan of each query, planned without the range, which read every minute of the
-- table (the evaluator's 24 SLOs over 30 days: 21 ms a call, then 73 ms; bench/fleetday.sh).
DROP FUNCTION IF EXISTS ww_sli(text, text, text, double precision, timestamptz, timestamptz);
CREATE OR REPLACE FUNCTION ww_sli(p_phase text, p_model text, p_metric text,
                                  p_threshold double precision, p_from timestamptz,
                                  p_to timestamptz, p_tiers_only boolean DEFAULT false)
RETURNS TABLE(good bigint, total bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    rollup boolean := p_tiers_only OR coalesce(p_to - p_from >= interval '2 minutes', false);
    h_lo timestamptz := date_trunc('hour', p_from, 'UTC');
    h_hi timestamptz := date_trunc('hour', p_to, 'UTC');
    good_t timestamptz[];
    good_m text[];
    good_s text[];
    t_hi timestamptz;
    tr_lo timestamptz;
    dirty timestamptz[];
    -- The ranges whose minute rows are read: [rg_lo[i], rg_hi[i]), disjoint.
    rg_lo timestamptz[] := ARRAY[p_from];
    rg_hi timestamptz[] := ARRAY[p_to];
    m ww_hist;
BEGIN
    IF p_metric IS NULL OR p_metric NOT IN ('ttft', 'tpot', 'e2e', 'queue', 'availability') THEN
        RAISE EXCEPTION 'ww_sli: unknown metric "%"', p_metric
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'one of ttft, tpot, e2e, queue, availability';
    END IF;
    IF p_metric = 'availability' AND NOT rollup THEN
        SELECT sum(w.requests_ok),
               sum(w.requests_ok + w.requests_error + w.requests_timeout + w.requests_rejected)
        INTO good, total
        FROM ww_windows(p_from, p_to) w JOIN nodes n USING (node_id)
        WHERE n.phase = p_phase AND (p_model = '*' OR w.model = p_model)
          AND w.time >= p_from AND w.time < p_to;
        good := coalesce(good, 0);
        total := coalesce(total, 0);
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_threshold IS NULL AND p_metric <> 'availability' THEN
        RAISE EXCEPTION 'ww_sli: metric % needs a threshold (seconds)', p_metric
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The whole hours inside the range, [h_lo, h_hi).
    IF h_lo < p_from THEN
        h_lo := h_lo + interval '1 hour';
    END IF;
    IF coalesce(p_to - p_from >= interval '3 hours', false) AND h_lo < h_hi THEN
        -- Hours below the tier builder's hours_done are rebuilt whole by it, and a write
        -- that changes one later records it in ww_tier_dirty ('l') in its own transaction,
        -- which the rebuild deletes: their rows are taken as they are, but for those
        -- recorded dirty. The other hours, [t_hi, h_hi) and the dirty ones, only when
        -- their row holds exactly the minutes there are now (same window count).
        t_hi := CASE WHEN p_tiers_only THEN h_lo
                     ELSE greatest(h_lo, least(h_hi, (SELECT s.hours_done FROM ww_tier_state s)))
                END;
        dirty := ARRAY(SELECT DISTINCT d.time FROM ww_tier_dirty d
                       WHERE d.tier = 'l' AND d.time >= h_lo AND d.time < t_hi);
        SELECT coalesce(array_agg(h.time), '{}'), coalesce(array_agg(h.model), '{}'),
               coalesce(array_agg(h.site), '{}')
        INTO good_t, good_m, good_s
        FROM latency_rollup_1h h
        LEFT JOIN (SELECT date_trunc('hour', r.time, 'UTC') AS hour, r.model, r.site,
                          sum(r.windows) AS windows
                   FROM (SELECT r.time, r.model, r.site, r.windows FROM latency_rollup_1m r
                         WHERE r.time >= t_hi AND r.time < h_hi
                           AND r.phase = p_phase AND (p_model = '*' OR r.model = p_model)
                         UNION ALL
                         SELECT r.time, r.model, r.site, r.windows FROM latency_rollup_1m r
                         JOIN unnest(dirty) AS d(t)
                             ON r.time >= d.t AND r.time < d.t + interval '1 hour'
                         WHERE r.phase = p_phase AND (p_model = '*' OR r.model = p_model)) r
                   GROUP BY 1, 2, 3) c
            ON c.hour = h.time AND c.model = h.model AND c.site = h.site
        WHERE h.phase = p_phase AND (p_model = '*' OR h.model = p_model)
          AND h.time >= h_lo AND h.time < h_hi
          AND ((h.time < t_hi AND h.time <> ALL (dirty)) OR c.windows = h.windows);
        -- Minutes are read only where an hour row may be missing: before the tiers' start
        -- (the builder never built those hours), the dirty hours, and from t_hi on. In
        -- [tr_lo, t_hi) the builder made an hour row of every minute there is, so every
        -- minute there is of a good hour: scanning them to drop them read the whole range
        -- (a 30-day availability SLI: 390,000 minute rows, ~1 s; bench/fleetday.sh).
        tr_lo := least(t_hi, greatest(h_lo, (SELECT s.start FROM ww_tier_state s)));
        rg_lo := ARRAY[p_from, t_hi]
                 || ARRAY(SELECT d FROM unnest(dirty) d WHERE d >= tr_lo ORDER BY d);
        rg_hi := ARRAY[tr_lo, p_to]
                 || ARRAY(SELECT d + interval '1 hour' FROM unnest(dirty) d WHERE d >= tr_lo
                          ORDER BY d);
    ELSE
        good_t := '{}';
        good_m := '{}';
        good_s := '{}';
    END IF;
    IF p_metric = 'availability' THEN
        -- The same hours from their rows, the other minutes from theirs (counters only:
        -- the rows are read, not their histograms).
        SELECT sum(x.ok), sum(x.n) INTO good, total FROM (
            SELECT h.requests_ok AS ok,
                   h.requests_ok + h.requests_error + h.requests_timeout + h.requests_rejected AS n
            FROM latency_rollup_1h h
            JOIN unnest(good_t, good_m, good_s) AS g(t, model, site)
                ON h.time = g.t AND h.model = g.model AND h.site = g.site
            WHERE h.phase = p_phase
            UNION ALL
            SELECT r.requests_ok,
                   r.requests_ok + r.requests_error + r.requests_timeout + r.requests_rejected
            FROM unnest(rg_lo, rg_hi) AS rg(lo, hi)
            JOIN latency_rollup_1m r ON r.time >= rg.lo AND r.time < rg.hi
            WHERE r.phase = p_phase AND (p_model = '*' OR r.model = p_model)
              AND r.time >= p_from AND r.time < p_to
              AND (date_trunc('hour', r.time, 'UTC'), r.model, r.site) NOT IN
                  (SELECT g.t, g.model, g.site
                   FROM unnest(good_t, good_m, good_s) AS g(t, model, site))) x;
        good := coalesce(good, 0);
        total := coalesce(total, 0);
        RETURN NEXT;
        RETURN;
    END IF;
    IF coalesce(p_to - p_from >= interval '3 hours', false) AND h_lo < h_hi THEN
        -- Those hours from their rows, every other minute of the range from the minutes. An
        -- assignment, not SELECT INTO (which would spread the ww_hist over m's fields).
        m := (SELECT ww_merge(x.h) FROM (
                  SELECT CASE p_metric WHEN 'ttft' THEN h.ttft WHEN 'tpot' THEN h.tpot
                                       WHEN 'e2e' THEN h.e2e ELSE h.queue END AS h
                  FROM latency_rollup_1h h
                  JOIN unnest(good_t, good_m, good_s) AS g(t, model, site)
                      ON h.time = g.t AND h.model = g.model AND h.site = g.site
                  WHERE h.phase = p_phase
                  UNION ALL
                  SELECT CASE p_metric WHEN 'ttft' THEN r.ttft WHEN 'tpot' THEN r.tpot
                                       WHEN 'e2e' THEN r.e2e ELSE r.queue END
                  FROM latency_rollup_1m r
                  -- The keys first (an index-only scan of the primary key), then only the
                  -- rows needed: a minute row carries four histograms, ~2 KB.
                  WHERE (r.time, r.phase, r.model, r.site) IN (
                      SELECT k.time, k.phase, k.model, k.site
                      FROM unnest(rg_lo, rg_hi) AS rg(lo, hi)
                      JOIN latency_rollup_1m k ON k.time >= rg.lo AND k.time < rg.hi
                      WHERE k.phase = p_phase AND (p_model = '*' OR k.model = p_model)
                        AND k.time >= p_from AND k.time < p_to
                        AND (date_trunc('hour', k.time, 'UTC'), k.model, k.site) NOT IN
                            (SELECT g.t, g.model, g.site
                             FROM unnest(good_t, good_m, good_s) AS g(t, model, site)))) x);
    ELSIF rollup THEN
        m := (SELECT ww_merge(CASE p_metric WHEN 'ttft' THEN r.ttft WHEN 'tpot' THEN r.tpot
                                            WHEN 'e2e' THEN r.e2e ELSE r.queue END)
              FROM latency_rollup_1m r
              WHERE r.phase = p_phase AND (p_model = '*' OR r.model = p_model)
                AND r.time >= p_from AND r.time < p_to);
    ELSE
        m := (SELECT ww_merge(CASE p_metric WHEN 'ttft' THEN w.ttft WHEN 'tpot' THEN w.tpot
                                            WHEN 'e2e' THEN w.e2e ELSE w.queue END)
              FROM ww_windows(p_from, p_to) w JOIN nodes n USING (node_id)
              WHERE n.phase = p_phase AND (p_model = '*' OR w.model = p_model)
                AND w.time >= p_from AND w.time < p_to);
    END IF;
    total := coalesce(ww_hist_count(m), 0);
    good := total - ww_hist_count_above(m, p_threshold);
    RETURN NEXT;
END $$;
COMMENT ON FUNCTION ww_sli(text, text, text, double precision, timestamptz, timestamptz, boolean) IS
    'Good and total events of an SLI over [p_from, p_to) for a phase and a model (''*'': '
    'all): latency metrics (ttft, tpot, e2e, queue) count values at or below p_threshold '
    '(ww_hist_count_above), availability counts ok among all requests. Raw windows below '
    '2 min; minute rollups from 2 min; from 3 h the whole hours come from latency_rollup_1h '
    'where it holds all their minutes (same result, fewer merges); (0, 0) when empty. '
    'p_tiers_only (a fleet database): the rollups whatever the range, hour rows only where '
    'they hold all their minutes.';

-- Capacity, power, thermal and energy of a phase over [p_from, p_to), from node_samples
-- of the phase's nodes (computed per site label by ww_phase_capacity_sites, below, and
-- added up):
--   reporting_nodes  nodes with at least one sample in the range
--   healthy_nodes    reporting nodes whose latest sample in the range is not throttled
--                    and has wafer_hotspot_c <= p_hotspot_max (NULL: no limit); a reading
--                    the node does not measure (NULL) is not held against it
--   delivered_kw     sum of rated_kw over the healthy nodes
--   power_kw         sum over the reporting nodes of their latest power_w, in kW
--   hotspot_max_c, outlet_max_c   maxima over every sample in the range
--   throttled_share  throttled samples / samples that measured throttling
--   j_per_token      sum(power_w) / sum(tokens_per_s) over the samples that measured both:
--                    each sample stands for the same interval, which cancels
--                    (W / (token/s) = J/token); NULL when no token was produced
-- No sample: one row with 0 nodes, 0 kW and NULL for the rest.
--
-- Plan: at fleet scale a phase's 30 s of samples are ~360,000 rows (10,870 nodes at 1 Hz).
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
-- The same per nodes.site label of the phase's nodes, as the site_capacity rows of time
-- p_to that a site's evaluator writes for the fleet (ww_phase_capacity adds them up): a
-- label with nodes of the phase has its row even when none of them reported (0 nodes, so
-- that the fleet tells a site that lost its nodes from one it has not heard from), with
-- the throttling and J/token figures as numerators and denominators, which add exactly.
CREATE OR REPLACE FUNCTION ww_phase_capacity_sites(p_phase text, p_from timestamptz,
                                                   p_to timestamptz,
                                                   p_hotspot_max double precision)
RETURNS SETOF site_capacity
LANGUAGE sql STABLE PARALLEL SAFE SET jit = off AS $$
    WITH per AS (
        SELECT n.site AS label, n.rated_kw, agg.*, last.power_w,
               last.time IS NOT NULL AS reporting,
               last.time IS NOT NULL AND NOT coalesce(last.throttled, false)
                   AND (p_hotspot_max IS NULL OR last.wafer_hotspot_c IS NULL
                        OR last.wafer_hotspot_c <= p_hotspot_max) AS h
        FROM nodes n
        CROSS JOIN LATERAL (
            SELECT max(ns.wafer_hotspot_c) AS hotspot_max, max(ns.outlet_c) AS outlet_max,
                   count(*) FILTER (WHERE ns.throttled) AS n_throttled,
                   count(ns.throttled) AS n,
                   sum(ns.power_w::double precision)
                       FILTER (WHERE ns.tokens_per_s IS NOT NULL) AS power_sum,
                   sum(ns.tokens_per_s::double precision)
                       FILTER (WHERE ns.power_w IS NOT NULL) AS tokens_sum
            FROM node_samples ns
            WHERE ns.node_id = n.node_id AND ns.time >= p_from AND ns.time < p_to) AS agg
        LEFT JOIN LATERAL (
            SELECT s.time, s.power_w, s.wafer_hotspot_c, s.throttled
            FROM node_samples s
            WHERE s.node_id = n.node_id AND s.time >= p_from AND s.time < p_to
            ORDER BY s.time DESC
            LIMIT 1) AS last ON true
        WHERE n.phase = p_phase
    )
    SELECT p_to, per.label, p_phase, count(*) FILTER (WHERE per.reporting)::integer,
           count(*) FILTER (WHERE per.h)::integer,
           coalesce(sum(per.rated_kw) FILTER (WHERE per.h), 0),
           coalesce(sum(per.power_w::double precision), 0) / 1000,
           max(per.hotspot_max)::double precision, max(per.outlet_max)::double precision,
           sum(per.n_throttled)::bigint, sum(per.n)::bigint,
           sum(per.power_sum), sum(per.tokens_sum)
    FROM per
    GROUP BY per.label
    ORDER BY per.label
$$;
COMMENT ON FUNCTION ww_phase_capacity_sites(text, timestamptz, timestamptz, double precision) IS
    'ww_phase_capacity per nodes.site label of the phase''s nodes as site_capacity rows of '
    'time p_to (a row for each label with nodes of the phase, 0 reporting included), '
    'throttling and J/token as sums: what a site''s evaluator writes for the fleet.';

-- The capacity figures of a set of site_capacity rows added up: nodes and kW summed, the
-- maxima of the maxima, the throttled share and J/token as ratios of the sums. One row
-- always (0 nodes, 0 kW and NULL for the rest when there is none). The one place where
-- labels and sites are added: ww_phase_capacity, the evaluator and ww_fleet_capacity.
CREATE OR REPLACE FUNCTION ww_capacity_total(p_rows site_capacity[])
RETURNS TABLE(reporting_nodes integer, healthy_nodes integer, delivered_kw double precision,
              power_kw double precision, hotspot_max_c double precision,
              outlet_max_c double precision, throttled_share double precision,
              j_per_token double precision)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum(c.reporting_nodes), 0)::integer,
           coalesce(sum(c.healthy_nodes), 0)::integer, coalesce(sum(c.delivered_kw), 0),
           coalesce(sum(c.power_kw), 0), max(c.hotspot_max_c), max(c.outlet_max_c),
           sum(c.throttled_samples)::double precision / nullif(sum(c.throttle_samples), 0),
           sum(c.power_w_tokened) / nullif(sum(c.tokens_per_s), 0)
    FROM unnest(p_rows) c
$$;
COMMENT ON FUNCTION ww_capacity_total(site_capacity[]) IS
    'site_capacity rows added up: the ww_phase_capacity figures of their nodes.';

-- What a site's evaluator runs per phase: the per-label rows of [p_from, p_to) written to
-- site_capacity (time p_to) for the fleet database, and their sum returned (the figures of
-- ww_phase_capacity), in one statement. JIT off: on the evaluator's statement, planned as
-- costly as its functions' default estimates, compiling took 0.18 s of its 0.48 s
-- (10,870 nodes; bench/capacity.sh).
CREATE OR REPLACE FUNCTION ww_site_capacity_write(p_phase text, p_from timestamptz,
                                                  p_to timestamptz,
                                                  p_hotspot_max double precision)
RETURNS TABLE(reporting_nodes integer, healthy_nodes integer, delivered_kw double precision,
              power_kw double precision, hotspot_max_c double precision,
              outlet_max_c double precision, throttled_share double precision,
              j_per_token double precision)
LANGUAGE sql VOLATILE SET jit = off AS $$
    WITH c AS MATERIALIZED (
        SELECT c FROM ww_phase_capacity_sites(p_phase, p_from, p_to, p_hotspot_max) c
    ), i AS (
        INSERT INTO site_capacity SELECT (c.c).* FROM c
    )
    SELECT t.* FROM ww_capacity_total(ARRAY(SELECT c.c FROM c)) t
$$;

CREATE OR REPLACE FUNCTION ww_phase_capacity(p_phase text, p_from timestamptz, p_to timestamptz,
                                             p_hotspot_max double precision)
RETURNS TABLE(reporting_nodes integer, healthy_nodes integer, delivered_kw double precision,
              power_kw double precision, hotspot_max_c double precision,
              outlet_max_c double precision, throttled_share double precision,
              j_per_token double precision)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT t.* FROM ww_capacity_total(ARRAY(
        SELECT c FROM ww_phase_capacity_sites(p_phase, p_from, p_to, p_hotspot_max) c)) t
$$;
COMMENT ON FUNCTION ww_phase_capacity(text, timestamptz, timestamptz, double precision) IS
    'Per phase over [p_from, p_to): reporting and healthy nodes (latest sample not '
    'throttled, hotspot <= p_hotspot_max), delivered kW (rated, healthy), power kW (latest '
    'per node), max hotspot/outlet, throttled share of samples, J/token. One row always.';

-- The fleet's capacity of a phase (a fleet database, collector.role fleet): the newest
-- site_capacity row of every site label that has one for the phase, added up as
-- ww_phase_capacity adds labels. A site whose newest row is older than p_stale (its link to
-- the fleet cut, its evaluator down) is listed in stale_sites and its last figures are
-- still counted: the fleet does not know that capacity lost, and a site coming back sends
-- what it measured meanwhile. sites: every label counted.
-- Plan: the labels by a skip scan of the primary key (site, phase, time) and one backward
-- probe per label: the cost follows the sites, not the rows kept (2,880 a day per site and
-- phase at a 30 s interval).
CREATE OR REPLACE FUNCTION ww_fleet_capacity(p_phase text, p_stale interval)
RETURNS TABLE(reporting_nodes integer, healthy_nodes integer, delivered_kw double precision,
              power_kw double precision, hotspot_max_c double precision,
              outlet_max_c double precision, throttled_share double precision,
              j_per_token double precision, stale_sites text[], sites text[])
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH RECURSIVE k(site) AS (
        (SELECT c.site FROM site_capacity c ORDER BY c.site LIMIT 1)
        UNION ALL
        SELECT (SELECT c.site FROM site_capacity c WHERE c.site > k.site ORDER BY c.site LIMIT 1)
        FROM k WHERE k.site IS NOT NULL
    ), s AS (
        SELECT l.c AS r
        FROM k
        CROSS JOIN LATERAL (
            SELECT c FROM site_capacity c
            WHERE c.site = k.site AND c.phase = p_phase
            ORDER BY c.time DESC
            LIMIT 1) AS l
    )
    SELECT t.*,
           (SELECT coalesce(array_agg((s.r).site ORDER BY (s.r).site), '{}') FROM s
            WHERE (s.r).time < now() - p_stale),
           (SELECT coalesce(array_agg((s.r).site ORDER BY (s.r).site), '{}') FROM s)
    FROM ww_capacity_total(ARRAY(SELECT s.r FROM s)) t
$$;
COMMENT ON FUNCTION ww_fleet_capacity(text, interval) IS
    'Fleet database: ww_phase_capacity of a phase as the sum of every site''s newest '
    'site_capacity row; stale_sites: those older than p_stale (still counted), sites: all.';
