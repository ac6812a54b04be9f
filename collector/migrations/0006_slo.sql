-- waferwatch schema, version 6: service level objectives. The tables that the SLO
-- evaluator writes and the CLI reads (phases, evaluations, status, alerts, capacity), and
-- the SQL the evaluator measures with:
--
--   ww_hist_count_above(h, x)   how many values of a histogram lie above x
--   ww_sli(phase, model, metric, threshold, from, to)   good and total events of an SLI
--   ww_phase_capacity(phase, from, to, hotspot_max)     capacity, power, thermal, energy
--
-- and ww_grant_roles() extended to the new objects (the writer inserts and upserts, never
-- deletes; the reader reads).

-- Contract for issue 6 (SLOs): tables the evaluator writes and the CLI reads.
-- Phases as configured (the evaluator upserts them at start and on change).
CREATE TABLE phases (
    id                    text PRIMARY KEY,
    name                  text NOT NULL,
    go_live               date NOT NULL,
    contracted_mw         double precision NOT NULL,
    capacity_breach_share double precision NOT NULL,
    power_ceiling_mw      double precision NOT NULL,
    hotspot_max_c         double precision NOT NULL,
    outlet_max_c          double precision NOT NULL,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
-- One row per evaluation, phase, SLO and window.
CREATE TABLE slo_evaluations (
    time        timestamptz NOT NULL,
    phase       text NOT NULL,
    slo         text NOT NULL,          -- the SLO's name, unique within the phase
    model       text NOT NULL,          -- model name or '*'
    metric      text NOT NULL,          -- ttft | tpot | e2e | queue | availability
    window_s    double precision NOT NULL, -- window length actually used (after window_scale)
    window_name text NOT NULL,          -- '5m', '30m', '1h', '2h', '6h', '1d', '3d', 'period'
    good        bigint NOT NULL,
    total       bigint NOT NULL,
    burn_rate   double precision NOT NULL  -- (1 - good/total) / (1 - objective); 0 when total = 0
);
CREATE INDEX slo_evaluations_time_idx ON slo_evaluations (time);
CREATE INDEX slo_evaluations_key_idx ON slo_evaluations (phase, slo, time);
-- Latest status per SLO (upserted every evaluation).
CREATE TABLE slo_status (
    phase            text NOT NULL,
    slo              text NOT NULL,
    model            text NOT NULL,
    metric           text NOT NULL,
    objective        double precision NOT NULL,
    threshold_s      double precision,         -- NULL for availability
    time             timestamptz NOT NULL,     -- of the evaluation
    attainment       double precision,         -- good/total over the period (NULL: no data)
    budget_remaining double precision,         -- 1 - (1-attainment)/(1-objective), may be < 0
    burn_rates       jsonb NOT NULL,           -- {"5m": 0.3, "1h": 1.2, ...}
    PRIMARY KEY (phase, slo)
);
-- Alerts: one row per alert episode. At most one open (firing) row per (phase, slo, severity).
CREATE TABLE alerts (
    id           bigserial PRIMARY KEY,
    alertname    text NOT NULL,             -- e.g. 'SLOBurnRate', 'CapacityBreach', 'PowerCeiling', 'ThermalLimit'
    phase        text NOT NULL,
    slo          text NOT NULL,             -- SLO name, or 'capacity' / 'power' / 'thermal'
    model        text NOT NULL,             -- model or '*'
    severity     text NOT NULL,             -- 'page' | 'ticket'
    state        text NOT NULL,             -- 'firing' | 'resolved'
    started_at   timestamptz NOT NULL,
    resolved_at  timestamptz,
    last_eval_at timestamptz NOT NULL,
    summary      text NOT NULL,
    details      jsonb NOT NULL             -- burn rates, budget left, capacity figures...
);
CREATE UNIQUE INDEX alerts_open_idx ON alerts (phase, slo, severity) WHERE state = 'firing';
-- Every transition (fired, resolved).
CREATE TABLE alert_transitions (
    time       timestamptz NOT NULL DEFAULT now(),
    alert_id   bigint NOT NULL REFERENCES alerts (id),
    alertname  text NOT NULL,
    phase      text NOT NULL,
    slo        text NOT NULL,
    severity   text NOT NULL,
    to_state   text NOT NULL,
    details    jsonb NOT NULL
);
-- Capacity, power, thermal and energy per phase per evaluation.
CREATE TABLE capacity_evaluations (
    time             timestamptz NOT NULL,
    phase            text NOT NULL,
    live             boolean NOT NULL,          -- past go-live
    reporting_nodes  integer NOT NULL,
    healthy_nodes    integer NOT NULL,
    delivered_mw     double precision NOT NULL, -- healthy nodes x rated kW / 1000
    contracted_mw    double precision NOT NULL,
    delivered_share  double precision,          -- delivered / contracted (NULL if contracted = 0)
    power_mw         double precision NOT NULL, -- sum of the latest power of reporting nodes
    hotspot_max_c    double precision,
    outlet_max_c     double precision,
    throttled_share  double precision,          -- share of samples throttled in the window
    j_per_token      double precision,          -- energy per output token over the window
    breach           boolean NOT NULL           -- live and delivered_share < capacity_breach_share
);
CREATE INDEX capacity_evaluations_time_idx ON capacity_evaluations (phase, time);

-- How many values of h lie above x. Each part of h stands for one point, the very point
-- ww_quantile reports for a rank in that part, and counts above x when its point is > x:
--   zero_count  0                              (above only for x < 0)
--   underflow   least(2^-20, max)              (above only for x < 2^-20)
--   bucket i    2 lo hi / (lo + hi) clamped to [min, max] (lo, hi its bounds)
--   overflow    max when 2^12 < max < +inf, else +inf (above for every x < 2^12)
-- So the answer is exact for every value outside the one bucket that holds x (a bucket
-- entirely above x has its point above x, one entirely at or below x has it at or below
-- x, clamping included since min and max are values of h); the values of the bucket
-- holding x are all counted above or all not, by the same point ww_quantile reports. The
-- points never decrease from one part to the next, so the result never increases with x.
--
-- Relation with ww_quantile (tested in tests/integration/test_sql_slo.c): for a
-- histogram of n > 0 values, 0 <= q <= 1 and r = max(1, ceil(q * n)) (ww_quantile's
-- rank),
--     ww_hist_count_above(h, ww_quantile(h, q)) <= n - r   (<= floor(n * (1 - q)))
-- i.e. at least r values, a share q of them, are "at or below the q-quantile": an SLO
-- whose threshold is the measured p99 is met by at least 99% of the events. Equality holds
-- unless a part above the one holding rank r has the same (clamped) point.
--
-- NULL histogram: 0. NULL x: NULL. x NaN: 0 (NaN sorts above every number).
CREATE FUNCTION ww_hist_count_above(h ww_hist, x double precision) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    n bigint := 0;
    mn double precision;
    mx double precision;
    i integer;
    c bigint;
    lo double precision;
    hi double precision;
    above boolean := false;
BEGIN
    IF h IS NULL OR coalesce(h.count, 0) <= 0 THEN
        RETURN 0;
    END IF;
    IF x IS NULL THEN
        RETURN NULL;
    END IF;
    mn := nullif(h.min, 'NaN');
    mx := nullif(h.max, 'NaN');
    IF 0 > x THEN
        n := n + coalesce(h.zero_count, 0);
    END IF;
    IF least(1.0 / 1048576.0, coalesce(mx, 'Infinity')) > x THEN
        n := n + coalesce(h.underflow, 0);
    END IF;
    -- Bucket points never decrease with i, so the buckets above x are a suffix of counts:
    -- find the first, then add the rest without computing their points.
    i := h."offset";
    FOREACH c IN ARRAY coalesce(h.counts, '{}') LOOP
        IF NOT above AND c <> 0 THEN
            lo := ww_hist_lower(i, h.scale);
            hi := ww_hist_upper(i, h.scale);
            above := least(greatest(2 * lo * hi / (lo + hi), mn), mx) > x;
        END IF;
        IF above THEN
            n := n + c;
        END IF;
        i := i + 1;
    END LOOP;
    -- Overflow's point: max when finite and beyond 2^12 (NaN sorts above Infinity).
    IF h.max > 4096 AND h.max < 'Infinity' THEN
        hi := h.max;
    ELSE
        hi := 'Infinity';
    END IF;
    IF hi > x THEN
        n := n + coalesce(h.overflow, 0);
    END IF;
    RETURN n;
END $$;
COMMENT ON FUNCTION ww_hist_count_above(ww_hist, double precision) IS
    'Values of h above x: each part counts by the point ww_quantile reports for it (0, '
    '2^-20, the bucket''s harmonic-mean point clamped to [min, max], max or +inf), so '
    'count_above(h, ww_quantile(h, q)) <= count - max(1, ceil(q*count)). NULL h: 0.';

-- An SLI over [p_from, p_to): how many events were good and how many there were, for
-- the SLO evaluator. p_model '*' means every model. p_metric:
--   ttft | tpot | e2e | queue   the histogram of that column merged over the range:
--                  total = its count, good = total - ww_hist_count_above(merged,
--                  p_threshold) (the values at or below the threshold, in seconds)
--   availability   good = requests_ok, total = ok + error + timeout + rejected
--                  (p_threshold is ignored)
-- Ranges of 10 minutes or more read latency_rollup_1m (the minutes that start in the
-- range, phase from the rollup); shorter ones read latency_windows of the phase's nodes
-- (the windows that start in the range), which the rollups are made of, so both agree on
-- whole minutes. No data: (0, 0). An unknown metric, or a latency metric without a
-- threshold, is an error (SQLSTATE 22023).
CREATE FUNCTION ww_sli(p_phase text, p_model text, p_metric text, p_threshold double precision,
                       p_from timestamptz, p_to timestamptz)
RETURNS TABLE(good bigint, total bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    rollup boolean := coalesce(p_to - p_from >= interval '10 minutes', false);
    m ww_hist;
BEGIN
    IF p_metric IS NULL OR p_metric NOT IN ('ttft', 'tpot', 'e2e', 'queue', 'availability') THEN
        RAISE EXCEPTION 'ww_sli: unknown metric "%"', p_metric
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'one of ttft, tpot, e2e, queue, availability';
    END IF;
    IF p_metric = 'availability' THEN
        IF rollup THEN
            SELECT sum(r.requests_ok),
                   sum(r.requests_ok + r.requests_error + r.requests_timeout + r.requests_rejected)
            INTO good, total
            FROM latency_rollup_1m r
            WHERE r.phase = p_phase AND (p_model = '*' OR r.model = p_model)
              AND r.time >= p_from AND r.time < p_to;
        ELSE
            SELECT sum(w.requests_ok),
                   sum(w.requests_ok + w.requests_error + w.requests_timeout + w.requests_rejected)
            INTO good, total
            FROM latency_windows w JOIN nodes n USING (node_id)
            WHERE n.phase = p_phase AND (p_model = '*' OR w.model = p_model)
              AND w.time >= p_from AND w.time < p_to;
        END IF;
        good := coalesce(good, 0);
        total := coalesce(total, 0);
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_threshold IS NULL THEN
        RAISE EXCEPTION 'ww_sli: metric % needs a threshold (seconds)', p_metric
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF rollup THEN
        -- An assignment, not SELECT INTO (which would spread the ww_hist over m's fields).
        m := (SELECT ww_merge(CASE p_metric WHEN 'ttft' THEN r.ttft WHEN 'tpot' THEN r.tpot
                                            WHEN 'e2e' THEN r.e2e ELSE r.queue END)
              FROM latency_rollup_1m r
              WHERE r.phase = p_phase AND (p_model = '*' OR r.model = p_model)
                AND r.time >= p_from AND r.time < p_to);
    ELSE
        m := (SELECT ww_merge(CASE p_metric WHEN 'ttft' THEN w.ttft WHEN 'tpot' THEN w.tpot
                                            WHEN 'e2e' THEN w.e2e ELSE w.queue END)
              FROM latency_windows w JOIN nodes n USING (node_id)
              WHERE n.phase = p_phase AND (p_model = '*' OR w.model = p_model)
                AND w.time >= p_from AND w.time < p_to);
    END IF;
    total := coalesce(m.count, 0);
    good := total - ww_hist_count_above(m, p_threshold);
    RETURN NEXT;
END $$;
COMMENT ON FUNCTION ww_sli(text, text, text, double precision, timestamptz, timestamptz) IS
    'Good and total events of an SLI over [p_from, p_to) for a phase and a model (''*'': '
    'all): latency metrics (ttft, tpot, e2e, queue) count values at or below p_threshold '
    '(ww_hist_count_above), availability counts ok among all requests. Rollups for ranges '
    '>= 10 min, raw windows below; (0, 0) when empty.';

-- Capacity, power, thermal and energy of a phase over [p_from, p_to), from node_samples
-- of the phase's nodes:
--   reporting_nodes  nodes with at least one sample in the range
--   healthy_nodes    reporting nodes whose latest sample in the range is not throttled
--                    and has wafer_hotspot_c <= p_hotspot_max (NULL: no limit)
--   delivered_kw     sum of rated_kw over the healthy nodes
--   power_kw         sum over the reporting nodes of their latest power_w, in kW
--   hotspot_max_c, outlet_max_c   maxima over every sample in the range
--   throttled_share  throttled samples / samples
--   j_per_token      sum(power_w) / sum(tokens_per_s) over the samples: each sample stands
--                    for the same interval, which cancels (W / (token/s) = J/token);
--                    NULL when no token was produced
-- No sample: one row with 0 nodes, 0 kW and NULL for the rest.
CREATE FUNCTION ww_phase_capacity(p_phase text, p_from timestamptz, p_to timestamptz,
                                  p_hotspot_max double precision)
RETURNS TABLE(reporting_nodes integer, healthy_nodes integer, delivered_kw double precision,
              power_kw double precision, hotspot_max_c double precision,
              outlet_max_c double precision, throttled_share double precision,
              j_per_token double precision)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH s AS MATERIALIZED (
        SELECT ns.node_id, ns.time, ns.power_w, ns.outlet_c, ns.wafer_hotspot_c,
               ns.tokens_per_s, ns.throttled, n.rated_kw
        FROM node_samples ns JOIN nodes n USING (node_id)
        WHERE n.phase = p_phase AND ns.time >= p_from AND ns.time < p_to
    ), latest AS (
        SELECT DISTINCT ON (node_id) node_id, power_w, wafer_hotspot_c, throttled, rated_kw
        FROM s
        ORDER BY node_id, time DESC
    ), l AS (
        SELECT count(*)::integer AS reporting,
               count(*) FILTER (WHERE h)::integer AS healthy,
               coalesce(sum(rated_kw) FILTER (WHERE h), 0) AS delivered_kw,
               coalesce(sum(power_w::double precision), 0) / 1000 AS power_kw
        FROM (SELECT *, NOT throttled AND (p_hotspot_max IS NULL
                                          OR wafer_hotspot_c <= p_hotspot_max) AS h
              FROM latest) AS x
    ), a AS (
        SELECT max(wafer_hotspot_c)::double precision AS hotspot_max_c,
               max(outlet_c)::double precision AS outlet_max_c,
               (count(*) FILTER (WHERE throttled))::double precision
                   / nullif(count(*), 0) AS throttled_share,
               sum(power_w::double precision)
                   / nullif(sum(tokens_per_s::double precision), 0) AS j_per_token
        FROM s
    )
    SELECT l.reporting, l.healthy, l.delivered_kw, l.power_kw, a.hotspot_max_c,
           a.outlet_max_c, a.throttled_share, a.j_per_token
    FROM l, a
$$;
COMMENT ON FUNCTION ww_phase_capacity(text, timestamptz, timestamptz, double precision) IS
    'Per phase over [p_from, p_to): reporting and healthy nodes (latest sample not '
    'throttled, hotspot <= p_hotspot_max), delivered kW (rated, healthy), power kW (latest '
    'per node), max hotspot/outlet, throttled share of samples, J/token. One row always.';

-- ww_grant_roles() of 0005, extended to the objects of this migration (the SLO tables
-- and functions); everything 0005 granted is granted as before. Idempotent; run by the
-- owner, called once at the end of this migration.
CREATE OR REPLACE FUNCTION ww_grant_roles() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r text;
    can_create boolean;
    owns_schema boolean;
    n integer := 0;
BEGIN
    SELECT rolsuper OR rolcreaterole INTO can_create FROM pg_roles WHERE rolname = current_user;
    FOREACH r IN ARRAY ARRAY['waferwatch_writer', 'waferwatch_reader'] LOOP
        IF to_regrole(r) IS NULL THEN
            IF can_create THEN
                BEGIN
                    EXECUTE format('CREATE ROLE %I NOLOGIN', r);
                EXCEPTION WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- created meanwhile by a migration of another database
                END;
            ELSE
                RAISE NOTICE 'role % does not exist and % may not create roles: skipped; a DBA '
                             'creates it (deploy/roles.sql), then the owner runs '
                             'SELECT ww_grant_roles()', r, current_user;
            END IF;
        END IF;
    END LOOP;

    -- No one but the owner creates objects in schema public. PostgreSQL 15 no longer grants
    -- CREATE on it to PUBLIC, but a cluster upgraded from an older version still does.
    SELECT pg_has_role(current_user, nspowner, 'USAGE') INTO owns_schema
    FROM pg_namespace WHERE nspname = 'public';
    IF owns_schema THEN
        REVOKE CREATE ON SCHEMA public FROM PUBLIC;
    ELSE
        RAISE NOTICE '% does not own schema public: CREATE on it not revoked from PUBLIC',
                     current_user;
    END IF;

    IF to_regrole('waferwatch_writer') IS NOT NULL THEN
        n := n + 1;
        -- The staging table of the collector is a session TEMP table.
        IF has_database_privilege(current_database(), 'TEMPORARY WITH GRANT OPTION') THEN
            EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO waferwatch_writer',
                           current_database());
        ELSE
            RAISE NOTICE '% may not grant on database %: CONNECT, TEMPORARY not granted to '
                         'waferwatch_writer (PUBLIC has them by default)',
                         current_user, current_database();
        END IF;
        IF owns_schema THEN
            GRANT USAGE ON SCHEMA public TO waferwatch_writer;
            REVOKE CREATE ON SCHEMA public FROM waferwatch_writer;
        END IF;
        GRANT USAGE ON TYPE ww_hist TO waferwatch_writer;
        -- Append-only data: COPY and INSERT through the partitioned parents (privileges on
        -- the parent cover the rows routed to its partitions). SELECT on latency_windows:
        -- CREATE TEMP TABLE ... (LIKE latency_windows) needs it.
        GRANT SELECT, INSERT ON node_samples, latency_windows TO waferwatch_writer;
        GRANT INSERT ON ingest_rejects TO waferwatch_writer;
        REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
            ON node_samples, latency_windows, ingest_rejects FROM waferwatch_writer;
        -- Upserts (INSERT ... ON CONFLICT DO UPDATE reads the conflicting row) and the
        -- SELECT ... FOR UPDATE of the stream progress; the rollup reads nodes.
        GRANT SELECT, INSERT, UPDATE ON streams, stream_losses, nodes, latency_rollup_1m
            TO waferwatch_writer;
        REVOKE DELETE, TRUNCATE, REFERENCES, TRIGGER
            ON streams, stream_losses, nodes, latency_rollup_1m FROM waferwatch_writer;
        -- So that a collector that does not migrate can still check the schema version.
        GRANT SELECT ON ww_schema_migrations TO waferwatch_writer;
        GRANT EXECUTE ON FUNCTION ww_ensure_partitions(date, integer) TO waferwatch_writer;
        GRANT EXECUTE ON FUNCTION
            ww_hist_lower(integer, integer), ww_hist_upper(integer, integer),
            ww_hist_trim(ww_hist), ww_hist_downscale(ww_hist, integer),
            ww_hist_merge_sfunc(ww_hist, ww_hist), ww_hist_add(ww_hist, ww_hist),
            ww_merge(ww_hist), ww_quantile(ww_hist, double precision),
            ww_hist_count(ww_hist), ww_hist_mean(ww_hist),
            ww_hist_le(ww_hist, double precision[]),
            ww_hist_count_above(ww_hist, double precision),
            ww_sli(text, text, text, double precision, timestamptz, timestamptz),
            ww_phase_capacity(text, timestamptz, timestamptz, double precision)
            TO waferwatch_writer;
        -- The SLO evaluator (0006): configuration, latest status and alert episodes are
        -- upserted; evaluations, transitions and capacity figures are append-only.
        GRANT SELECT, INSERT, UPDATE ON phases, slo_status, alerts TO waferwatch_writer;
        GRANT USAGE ON SEQUENCE alerts_id_seq TO waferwatch_writer;
        GRANT SELECT, INSERT ON slo_evaluations, alert_transitions, capacity_evaluations
            TO waferwatch_writer;
        REVOKE UPDATE ON slo_evaluations, alert_transitions, capacity_evaluations
            FROM waferwatch_writer;
        REVOKE DELETE, TRUNCATE, REFERENCES, TRIGGER
            ON phases, slo_status, alerts, slo_evaluations, alert_transitions,
               capacity_evaluations FROM waferwatch_writer;
    END IF;

    IF to_regrole('waferwatch_reader') IS NOT NULL THEN
        n := n + 1;
        IF has_database_privilege(current_database(), 'CONNECT WITH GRANT OPTION') THEN
            EXECUTE format('GRANT CONNECT ON DATABASE %I TO waferwatch_reader',
                           current_database());
        END IF;
        IF owns_schema THEN
            GRANT USAGE ON SCHEMA public TO waferwatch_reader;
            REVOKE CREATE ON SCHEMA public FROM waferwatch_reader;
        END IF;
        GRANT USAGE ON TYPE ww_hist TO waferwatch_reader;
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO waferwatch_reader;  -- the SLO tables of 0006 too
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
            ON ALL TABLES IN SCHEMA public FROM waferwatch_reader;
        -- Partitions that ww_ensure_partitions creates later (as the owner) and tables of
        -- later migrations: readable too. Queries through the parents need only the
        -- parents' SELECT; this serves a dashboard that names a partition.
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO waferwatch_reader;
        GRANT EXECUTE ON FUNCTION
            ww_hist_lower(integer, integer), ww_hist_upper(integer, integer),
            ww_hist_trim(ww_hist), ww_hist_downscale(ww_hist, integer),
            ww_hist_merge_sfunc(ww_hist, ww_hist), ww_hist_add(ww_hist, ww_hist),
            ww_merge(ww_hist), ww_quantile(ww_hist, double precision),
            ww_hist_count(ww_hist), ww_hist_mean(ww_hist),
            ww_hist_le(ww_hist, double precision[]),
            ww_hist_count_above(ww_hist, double precision),
            ww_sli(text, text, text, double precision, timestamptz, timestamptz),
            ww_phase_capacity(text, timestamptz, timestamptz, double precision)
            TO waferwatch_reader;
    END IF;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION ww_grant_roles() FROM PUBLIC;
COMMENT ON FUNCTION ww_grant_roles() IS
    'Creates the NOLOGIN group roles waferwatch_writer and waferwatch_reader when missing '
    '(and the caller may) and grants them their privileges; idempotent, run by the owner. '
    'Returns how many of the two roles exist.';

SELECT ww_grant_roles();
