-- 0011: hostile and extreme input (issue 14): exact stream holes, outages, one row per
-- (node, model, window start), the exact nearest rank.

-- 64-bit identifiers. The wire's epoch is a fixed64; PostgreSQL has no unsigned type, so
-- the columns hold the same 64 bits read as a signed bigint (epochs of 2^63 and above are
-- negative here; ww_epoch_hex shows them as the agent logs them). seq is refused on the
-- wire above 2^63 - 1, so it is stored as it is.
CREATE FUNCTION ww_epoch_hex(epoch bigint) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT lpad(to_hex(epoch), 16, '0') $$;
COMMENT ON FUNCTION ww_epoch_hex(bigint) IS
    'A stream epoch as the agent and the collector log it: 16 hex digits of its 64 bits.';
COMMENT ON COLUMN streams.epoch IS
    'The wire epoch (fixed64), its 64 bits read as bigint: see ww_epoch_hex().';

-- Sequence numbers a stream skipped, as ranges. A batch above the stream's progress that
-- skips seqs records the hole (and counts it in streams.lost_batches); a batch that
-- arrives later inside a hole is written, not taken for a replay, and the hole shrinks
-- (lost_batches goes down by one): the loss count stays exact whatever the order.
CREATE TABLE stream_holes (
    agent_id   text NOT NULL,
    epoch      bigint NOT NULL,
    first_seq  bigint NOT NULL,
    last_seq   bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, epoch, first_seq),
    CHECK (first_seq >= 1 AND last_seq >= first_seq)
);
COMMENT ON TABLE stream_holes IS
    'Sequence numbers [first_seq, last_seq] of a stream never received (yet): counted in '
    'streams.lost_batches; a batch that arrives inside a hole is written and the hole shrinks.';

-- Time an agent was not sampling, reported by its next run: every hole in node_samples is
-- explained by an outage (not running) or a counted loss (stream_losses, lost_batches).
CREATE TABLE stream_outages (
    agent_id      text NOT NULL,
    epoch         bigint NOT NULL,
    from_time     timestamptz,            -- last tick spooled before (NULL: none known)
    to_time       timestamptz NOT NULL,   -- first tick of the new run
    lost_ticks    bigint NOT NULL,
    lost_requests bigint NOT NULL,        -- in latency windows open at a crash, never sent
    cause         text NOT NULL,          -- 'stop' (clean) or 'crash'
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, epoch, to_time)
);
COMMENT ON TABLE stream_outages IS
    'Stretches an agent did not sample (from its last spooled tick to the first tick of its '
    'next run), with the ticks and the requests of open latency windows lost.';

-- One row per (node, model, window start). Earlier agents sent their open windows at a
-- clean stop as if complete and the restarted agent sent the same start again: merge such
-- pairs first (histograms and counts add; a legacy pair each claimed the whole window, so
-- the duration is the larger), then make the key unique. The collector merges a second
-- part of a window into its row from now on (ON CONFLICT), adding the durations, and
-- counts the parts (a whole window is 1 part; 4 bytes that fit the row's padding).
ALTER TABLE latency_windows ADD COLUMN parts integer NOT NULL DEFAULT 1;
COMMENT ON COLUMN latency_windows.parts IS
    'How many parts the window was sent in (> 1: the agent restarted inside it, and the '
    'collector merged the parts; duration_s is then the sum of the parts'' durations).';
CREATE TEMP TABLE ww_0011_dup ON COMMIT DROP AS
SELECT time, node_id, model, count(*)::integer AS parts, max(duration_s) AS duration_s,
       sum(requests_ok)::bigint AS requests_ok, sum(requests_error)::bigint AS requests_error,
       sum(requests_timeout)::bigint AS requests_timeout,
       sum(requests_rejected)::bigint AS requests_rejected,
       sum(prompt_tokens)::bigint AS prompt_tokens, sum(output_tokens)::bigint AS output_tokens,
       ww_merge(queue) AS queue, ww_merge(ttft) AS ttft, ww_merge(tpot) AS tpot,
       ww_merge(e2e) AS e2e
FROM latency_windows GROUP BY time, node_id, model HAVING count(*) > 1;
DELETE FROM latency_windows w USING ww_0011_dup d
WHERE w.time = d.time AND w.node_id = d.node_id AND w.model = d.model;
INSERT INTO latency_windows (time, node_id, model, duration_s, requests_ok, requests_error,
                             requests_timeout, requests_rejected, prompt_tokens, output_tokens,
                             queue, ttft, tpot, e2e, parts)
SELECT time, node_id, model, duration_s, requests_ok, requests_error, requests_timeout,
       requests_rejected, prompt_tokens, output_tokens, queue, ttft, tpot, e2e, parts
FROM ww_0011_dup;
-- The key serves the node drill-down's (node_id, time) range scans as the index it
-- replaces did, so the storage stays the same.
CREATE UNIQUE INDEX latency_windows_key ON latency_windows (node_id, time, model);
DROP INDEX latency_windows_node_time_idx;

-- The nearest rank r = max(1, ceil(q * count)) in exact decimal arithmetic: q as the
-- decimal PostgreSQL's float8 -> numeric cast reads (15 significant digits), so that
-- q = 0.07 of 100 values is rank 7, not 8 (0.07 in binary is a little above 0.07).
-- ww_hist_rank() in C computes the same.
CREATE OR REPLACE FUNCTION ww_quantile(h ww_hist, q double precision) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    r bigint;
    cum bigint;
    i integer;
    x bigint;
    lo double precision;
    hi double precision;
BEGIN
    IF q IS NULL THEN
        RETURN NULL;
    END IF;
    IF NOT (q >= 0 AND q <= 1) THEN  -- NaN sorts above 1 in SQL
        RAISE EXCEPTION 'ww_quantile: q must be in [0, 1], got %', q
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'the 99th percentile is q = 0.99';
    END IF;
    IF h IS NULL OR coalesce(h.count, 0) <= 0 THEN
        RETURN NULL;
    END IF;
    r := greatest(1, ceil(q::numeric * h.count))::bigint;
    IF r <= h.zero_count THEN
        RETURN 0;
    END IF;
    cum := h.zero_count + h.underflow;
    IF r <= cum THEN
        -- WW_HIST_MIN, but never above max: quantiles must not decrease with q when max
        -- sits a rounding step below its bucket (see ww_hist_quantile).
        RETURN least(1.0 / 1048576.0, coalesce(nullif(h.max, 'NaN'), 'Infinity'));
    END IF;
    i := h."offset";
    FOREACH x IN ARRAY coalesce(h.counts, '{}') LOOP
        cum := cum + x;
        IF r <= cum THEN
            lo := ww_hist_lower(i, h.scale);
            hi := ww_hist_upper(i, h.scale);
            RETURN least(greatest(2 * lo * hi / (lo + hi), nullif(h.min, 'NaN')),
                         nullif(h.max, 'NaN'));
        END IF;
        i := i + 1;
    END LOOP;
    IF h.max > 4096 AND h.max < 'Infinity' THEN  -- NaN sorts above Infinity
        RETURN h.max;
    END IF;
    RETURN 'Infinity';
END $$;

ALTER FUNCTION ww_grant_roles() RENAME TO ww_grant_roles_0010;
CREATE FUNCTION ww_grant_roles() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer := ww_grant_roles_0010();
BEGIN
    IF to_regrole('waferwatch_writer') IS NOT NULL THEN
        -- A second part of a window (after an agent restart) is merged into its row: the
        -- measured columns only; the key (node_id, time, model) stays as written.
        GRANT UPDATE (duration_s, requests_ok, requests_error, requests_timeout,
                      requests_rejected, prompt_tokens, output_tokens, queue, ttft, tpot, e2e,
                      parts) ON latency_windows TO waferwatch_writer;
        -- A batch arriving inside a hole shrinks it: the range is deleted and re-inserted.
        GRANT SELECT, INSERT, DELETE ON stream_holes TO waferwatch_writer;
        GRANT SELECT, INSERT ON stream_outages TO waferwatch_writer;
        REVOKE UPDATE, TRUNCATE, REFERENCES, TRIGGER ON stream_holes FROM waferwatch_writer;
        REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON stream_outages
            FROM waferwatch_writer;
        GRANT EXECUTE ON FUNCTION ww_epoch_hex(bigint) TO waferwatch_writer;
    END IF;
    IF to_regrole('waferwatch_reader') IS NOT NULL THEN
        GRANT SELECT ON stream_holes, stream_outages TO waferwatch_reader;
        GRANT EXECUTE ON FUNCTION ww_epoch_hex(bigint) TO waferwatch_reader;
    END IF;
    RETURN n;
END $$;
REVOKE EXECUTE ON FUNCTION ww_grant_roles() FROM PUBLIC;
COMMENT ON FUNCTION ww_grant_roles() IS
    'Creates the group roles if missing (and allowed) and grants them what they need on '
    'every object of the schema (0006''s grants, then those of later migrations). '
    'Idempotent; run by the owner. Returns the number of group roles that exist.';
SELECT ww_grant_roles();
