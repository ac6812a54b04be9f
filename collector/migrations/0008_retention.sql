-- waferwatch schema, version 8: retention, and SLIs read from the rollups from 2 minutes.
--
-- Retention: ww_drop_old_data() drops the daily partitions of node_samples and
-- latency_windows older than raw_days and deletes rollups, evaluations, transitions and
-- refused-message records older than rollup_days. The collector calls it on its
-- maintenance schedule (retention.raw_days, retention.rollup_days); it runs as the schema
-- owner (SECURITY DEFINER), so waferwatch_writer still has no DROP or DELETE right of its
-- own.
--
-- SLIs: at fleet scale the raw windows of a 5-minute range are millions of rows (32,600
-- nodes x 3 models x 30 windows), too many to merge every evaluation; the per-minute
-- rollups hold the same histograms merged. ww_sli() now reads the rollups for ranges of 2
-- minutes or more (the minutes that start in the range) and the raw windows only below
-- (ranges compressed by evaluation.window_scale in tests and demos). Its body is 0006's
-- with that one threshold changed.

CREATE FUNCTION ww_drop_old_data(raw_days integer, rollup_days integer) RETURNS integer
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
            BEGIN
                EXECUTE format('DROP TABLE IF EXISTS %I', r.relname);
                dropped := dropped + 1;
            EXCEPTION WHEN lock_not_available OR deadlock_detected OR object_in_use THEN
                RAISE NOTICE 'partition % not dropped now (%): retried at the next '
                             'maintenance', r.relname, SQLERRM;
            END;
        END LOOP;
    END IF;
    IF coalesce(rollup_days, 0) > 0 THEN
        DELETE FROM latency_rollup_1m WHERE time < current_date - rollup_days;
        DELETE FROM slo_evaluations WHERE time < current_date - rollup_days;
        DELETE FROM capacity_evaluations WHERE time < current_date - rollup_days;
        DELETE FROM alert_transitions WHERE time < current_date - rollup_days;
        DELETE FROM ingest_rejects WHERE time < current_date - rollup_days;
    END IF;
    RETURN dropped;
END $$;
REVOKE EXECUTE ON FUNCTION ww_drop_old_data(integer, integer) FROM PUBLIC;
COMMENT ON FUNCTION ww_drop_old_data(integer, integer) IS
    'Retention: drops the daily partitions of node_samples and latency_windows older than '
    'raw_days and deletes rollups, SLO and capacity evaluations, alert transitions and '
    'ingest rejects older than rollup_days (0 or NULL: keep). Runs as the owner. Returns '
    'the number of partitions dropped.';

CREATE OR REPLACE FUNCTION ww_sli(p_phase text, p_model text, p_metric text, p_threshold double precision,
                       p_from timestamptz, p_to timestamptz)
RETURNS TABLE(good bigint, total bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    rollup boolean := coalesce(p_to - p_from >= interval '2 minutes', false);
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
    '>= 2 min, raw windows below; (0, 0) when empty.';

-- ww_grant_roles() grows by wrapping: 0006's version keeps its body under a new name and
-- the new one adds the grants of this migration, so no migration copies the whole list.
ALTER FUNCTION ww_grant_roles() RENAME TO ww_grant_roles_0006;
CREATE FUNCTION ww_grant_roles() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer := ww_grant_roles_0006();
BEGIN
    IF to_regrole('waferwatch_writer') IS NOT NULL THEN
        GRANT EXECUTE ON FUNCTION ww_drop_old_data(integer, integer) TO waferwatch_writer;
    END IF;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION ww_grant_roles() FROM PUBLIC;
COMMENT ON FUNCTION ww_grant_roles() IS
    'Creates the group roles if missing (and allowed) and grants them what they need on '
    'every object of the schema (0006''s grants, then those of later migrations). '
    'Idempotent; run by the owner. Returns the number of group roles that exist.';
SELECT ww_grant_roles();
