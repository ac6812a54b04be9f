-- waferwatch 1.2: latency-window blocks (pgext/ww_pg_wblock.c over lib/ww_wblock.c). A
-- block is a bytea holding the canonical bytes of lib/ww_wblock.h: one node's latency
-- windows of a stretch of time (the collector compacts each node-hour of latency_windows
-- into one, ~221 bytes a window instead of ~440 as rows), read back bit for bit, every
-- histogram the very bytes it was. Every byte read is checked by the codec's decoder
-- (tests/unit/test_wblock.c mutates and cuts blocks): bytes that are not a valid block are
-- an ERROR (data_corrupted) naming the window and the part, never read out of bounds.
\echo Use "ALTER EXTENSION waferwatch UPDATE TO '1.2'" to load this file. \quit

-- The aggregate's arguments are the columns of latency_windows after node_id: time, model,
-- duration_s, the six counters, parts, then the four histograms. A NULL is an ERROR.
CREATE FUNCTION ww_wblock_agg_sfunc(internal, timestamptz, text, double precision, bigint,
                                    bigint, bigint, bigint, bigint, bigint, integer, ww_hist,
                                    ww_hist, ww_hist, ww_hist)
    RETURNS internal
    AS 'MODULE_PATHNAME', 'ww_pg_wblock_sfunc'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION ww_wblock_agg_sfunc(internal, timestamptz, text, double precision, bigint,
                                        bigint, bigint, bigint, bigint, bigint, integer,
                                        ww_hist, ww_hist, ww_hist, ww_hist) IS
    'State transition of ww_wblock_agg: one more window. Use ww_wblock_agg.';

CREATE FUNCTION ww_wblock_agg_final(internal)
    RETURNS bytea
    AS 'MODULE_PATHNAME', 'ww_pg_wblock_final'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION ww_wblock_agg_final(internal) IS
    'Final function of ww_wblock_agg: the windows sorted and encoded.';

-- The rows are sorted (model, time, then the rest of the row) before encoding: one set of
-- rows gives one block whatever order they came in.
CREATE AGGREGATE ww_wblock_agg(timestamptz, text, double precision, bigint, bigint, bigint,
                               bigint, bigint, bigint, integer, ww_hist, ww_hist, ww_hist,
                               ww_hist) (
    SFUNC = ww_wblock_agg_sfunc,
    STYPE = internal,
    FINALFUNC = ww_wblock_agg_final,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE ww_wblock_agg(timestamptz, text, double precision, bigint, bigint, bigint,
                                   bigint, bigint, bigint, integer, ww_hist, ww_hist, ww_hist,
                                   ww_hist) IS
    'The window block (lib/ww_wblock.h) of one node''s latency windows: (time, model, '
    'duration_s, requests_ok .. output_tokens, parts, queue, ttft, tpot, e2e); NULL for no rows.';

CREATE FUNCTION ww_wblock_windows(block bytea,
    OUT "time" timestamptz, OUT model text, OUT duration_s double precision,
    OUT requests_ok bigint, OUT requests_error bigint, OUT requests_timeout bigint,
    OUT requests_rejected bigint, OUT prompt_tokens bigint, OUT output_tokens bigint,
    OUT parts integer, OUT queue ww_hist, OUT ttft ww_hist, OUT tpot ww_hist, OUT e2e ww_hist)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'ww_pg_wblock_windows'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1080;
COMMENT ON FUNCTION ww_wblock_windows(bytea) IS
    'The windows of a block in (model, time) order, every bit as they were aggregated (the '
    'columns of latency_windows after node_id).';

CREATE FUNCTION ww_wblock_count(block bytea)
    RETURNS integer
    AS 'MODULE_PATHNAME', 'ww_pg_wblock_count'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ww_wblock_count(bytea) IS
    'The number of windows in a block (its head only).';
