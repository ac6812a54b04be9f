-- waferwatch schema, version 10: hourly latency rollups for the long SLO windows.
--
-- ww_sli() merged one latency_rollup_1m row per minute of its range: for the 30-day SLO
-- period that is 43,200 merges per (phase, model), ~2.5 s per latency SLO once a month of
-- history exists (bench/sli_period.sh), and a phase's SLOs together would outlast the 30 s evaluation interval.
-- latency_rollup_1h holds the same histograms merged per hour. ww_rollup_hours() builds the
-- rows of complete hours from the minutes (the SLO evaluator: its longest window on its
-- first cycle, the last hours on every cycle). ww_sli() now takes, for ranges of 3
-- hours or more, the hour rows of the whole hours inside the range whose window count still
-- equals their minutes' (late data, an hour not built yet, a collector of an older version:
-- the minutes are read instead) and the minute rows for the rest, so its result is the same
-- as merging every minute, only cheaper. Retention deletes hour rows with the minutes. Hours
-- are UTC hours whatever the session's TimeZone.

CREATE TABLE latency_rollup_1h (LIKE latency_rollup_1m INCLUDING ALL);
COMMENT ON TABLE latency_rollup_1h IS
    'latency_rollup_1m merged per hour (time = the hour), built by ww_rollup_hours() from the '
    'minutes; ww_sli() uses a row only while its windows equal its minutes'' sum.';

CREATE FUNCTION ww_rollup_hours(p_from timestamptz, p_to timestamptz) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    n integer;
BEGIN
    -- Complete hours in [p_from, p_to) whose row is missing or no longer holds all their
    -- minutes (its window count differs), rebuilt whole; in (time, phase, model) order, so
    -- two collectors doing it at once take the row locks in the same order.
    WITH m AS (
        SELECT date_trunc('hour', r.time, 'UTC') AS hour, r.phase, r.model, sum(r.windows) AS windows
        FROM latency_rollup_1m r
        WHERE r.time >= date_trunc('hour', p_from, 'UTC')
          AND r.time < least(p_to, date_trunc('hour', now(), 'UTC'))
        GROUP BY 1, 2, 3
    ), stale AS (
        SELECT m.hour, m.phase, m.model
        FROM m LEFT JOIN latency_rollup_1h h
            ON h.time = m.hour AND h.phase = m.phase AND h.model = m.model
        WHERE h.windows IS DISTINCT FROM m.windows
    )
    INSERT INTO latency_rollup_1h AS h
    SELECT s.hour, s.phase, s.model, sum(r.windows), sum(r.requests_ok), sum(r.requests_error),
           sum(r.requests_timeout), sum(r.requests_rejected), sum(r.prompt_tokens),
           sum(r.output_tokens), ww_merge(r.queue), ww_merge(r.ttft), ww_merge(r.tpot),
           ww_merge(r.e2e)
    FROM stale s
    JOIN latency_rollup_1m r
        ON r.phase = s.phase AND r.model = s.model
       AND r.time >= s.hour AND r.time < s.hour + interval '1 hour'
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (time, phase, model) DO UPDATE SET
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

-- ww_sli() grows by wrapping: 0008's keeps its body under a new name and still answers
-- availability, ranges under 3 hours and the errors; the new one adds the hours.
ALTER FUNCTION ww_sli(text, text, text, double precision, timestamptz, timestamptz)
    RENAME TO ww_sli_0008;
CREATE FUNCTION ww_sli(p_phase text, p_model text, p_metric text, p_threshold double precision,
                       p_from timestamptz, p_to timestamptz)
RETURNS TABLE(good bigint, total bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    h_lo timestamptz := date_trunc('hour', p_from, 'UTC');
    h_hi timestamptz := date_trunc('hour', p_to, 'UTC');
    good_t timestamptz[];
    good_m text[];
    m ww_hist;
BEGIN
    -- The whole hours inside the range, [h_lo, h_hi).
    IF h_lo < p_from THEN
        h_lo := h_lo + interval '1 hour';
    END IF;
    IF p_metric IS NULL OR p_metric NOT IN ('ttft', 'tpot', 'e2e', 'queue')
       OR p_threshold IS NULL OR NOT coalesce(p_to - p_from >= interval '3 hours', false)
       OR NOT h_lo < h_hi THEN
        RETURN QUERY SELECT * FROM ww_sli_0008(p_phase, p_model, p_metric, p_threshold,
                                               p_from, p_to);
        RETURN;
    END IF;
    -- (hour, model) pairs whose hour row holds exactly the minutes there are now.
    SELECT coalesce(array_agg(h.time), '{}'), coalesce(array_agg(h.model), '{}')
    INTO good_t, good_m
    FROM latency_rollup_1h h
    JOIN (SELECT date_trunc('hour', r.time, 'UTC') AS hour, r.model, sum(r.windows) AS windows
          FROM latency_rollup_1m r
          WHERE r.phase = p_phase AND (p_model = '*' OR r.model = p_model)
            AND r.time >= h_lo AND r.time < h_hi
          GROUP BY 1, 2) c
        ON c.hour = h.time AND c.model = h.model AND c.windows = h.windows
    WHERE h.phase = p_phase AND (p_model = '*' OR h.model = p_model)
      AND h.time >= h_lo AND h.time < h_hi;
    -- Those hours from their rows, every other minute of the range from the minutes. An
    -- assignment, not SELECT INTO (which would spread the ww_hist over m's fields).
    m := (SELECT ww_merge(x.h) FROM (
              SELECT CASE p_metric WHEN 'ttft' THEN h.ttft WHEN 'tpot' THEN h.tpot
                                   WHEN 'e2e' THEN h.e2e ELSE h.queue END AS h
              FROM latency_rollup_1h h
              JOIN unnest(good_t, good_m) AS g(t, model) ON h.time = g.t AND h.model = g.model
              WHERE h.phase = p_phase
              UNION ALL
              SELECT CASE p_metric WHEN 'ttft' THEN r.ttft WHEN 'tpot' THEN r.tpot
                                   WHEN 'e2e' THEN r.e2e ELSE r.queue END
              FROM latency_rollup_1m r
              WHERE r.phase = p_phase AND (p_model = '*' OR r.model = p_model)
                AND r.time >= p_from AND r.time < p_to
                AND (date_trunc('hour', r.time, 'UTC'), r.model) NOT IN
                    (SELECT g.t, g.model FROM unnest(good_t, good_m) AS g(t, model))) x);
    total := coalesce(m.count, 0);
    good := total - ww_hist_count_above(m, p_threshold);
    RETURN NEXT;
END $$;
COMMENT ON FUNCTION ww_sli(text, text, text, double precision, timestamptz, timestamptz) IS
    'Good and total events of an SLI over [p_from, p_to) for a phase and a model (''*'': '
    'all): latency metrics (ttft, tpot, e2e, queue) count values at or below p_threshold '
    '(ww_hist_count_above), availability counts ok among all requests. Raw windows below '
    '2 min; minute rollups from 2 min; from 3 h the whole hours come from latency_rollup_1h '
    'where it holds all their minutes (same result, fewer merges); (0, 0) when empty.';

-- Retention deletes the hour rows with the minutes: 0008's function keeps its body under a
-- new name and the new one adds this table.
ALTER FUNCTION ww_drop_old_data(integer, integer) RENAME TO ww_drop_old_data_0008;
CREATE FUNCTION ww_drop_old_data(raw_days integer, rollup_days integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    dropped integer := ww_drop_old_data_0008(raw_days, rollup_days);
BEGIN
    IF coalesce(rollup_days, 0) > 0 THEN
        DELETE FROM latency_rollup_1h WHERE time < current_date - rollup_days;
    END IF;
    RETURN dropped;
END $$;
REVOKE EXECUTE ON FUNCTION ww_drop_old_data(integer, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION ww_drop_old_data_0008(integer, integer) FROM PUBLIC;
COMMENT ON FUNCTION ww_drop_old_data(integer, integer) IS
    'Retention: drops the daily partitions of node_samples and latency_windows older than '
    'raw_days and deletes rollups (minute and hour), SLO and capacity evaluations, alert '
    'transitions and ingest rejects older than rollup_days (0 or NULL: keep). Runs as the '
    'owner. Returns the number of partitions dropped.';

ALTER FUNCTION ww_grant_roles() RENAME TO ww_grant_roles_0008;
CREATE FUNCTION ww_grant_roles() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer := ww_grant_roles_0008();
BEGIN
    IF to_regrole('waferwatch_writer') IS NOT NULL THEN
        -- ww_sli() runs as its caller and reads the hour rows; the evaluator builds them
        -- through ww_rollup_hours() (as the owner).
        GRANT SELECT ON latency_rollup_1h TO waferwatch_writer;
        GRANT EXECUTE ON FUNCTION ww_rollup_hours(timestamptz, timestamptz) TO waferwatch_writer;
    END IF;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION ww_grant_roles() FROM PUBLIC;
COMMENT ON FUNCTION ww_grant_roles() IS
    'Creates the group roles if missing (and allowed) and grants them what they need on '
    'every object of the schema (0006''s grants, then those of later migrations). '
    'Idempotent; run by the owner. Returns the number of group roles that exist.';
SELECT ww_grant_roles();
-- No rows are built here: the SLO evaluator builds every hour of its longest window on its
-- first cycle (a migration over months of minutes would hold up the upgrade), and until
-- then ww_sli reads the minutes, as before.
