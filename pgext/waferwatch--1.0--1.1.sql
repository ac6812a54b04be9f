-- waferwatch 1.1: sample blocks (pgext/ww_pg_sblock.c over lib/ww_sblock.c). A block is a
-- bytea holding the canonical bytes of lib/ww_sblock.h: one node's samples of a stretch of
-- time (the collector compacts each node-hour of node_samples into one, ~8 bytes a sample
-- at sensor resolution instead of ~150 as rows), read back bit for bit. Every byte read is
-- checked by the codec's decoder (fuzzed by tests/fuzz/fuzz_sblock.c): bytes that are not a
-- valid block are an ERROR (data_corrupted) naming the column and the sample, never read
-- out of bounds.
\echo Use "ALTER EXTENSION waferwatch UPDATE TO '1.1'" to load this file. \quit

-- The aggregate's arguments are the columns of node_samples after node_id, in their order
-- (proto/ww_fields.h: the node_samples COPY row). Not strict: humidity_pct may be NULL (and
-- is given back NULL); a NULL anywhere else is an ERROR, as is a negative count.
CREATE FUNCTION ww_sblock_agg_sfunc(internal, timestamptz, real, real, real, real, real,
                                    real, real, integer, integer, integer, boolean, real,
                                    real)
    RETURNS internal
    AS 'MODULE_PATHNAME', 'ww_pg_sblock_sfunc'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION ww_sblock_agg_sfunc(internal, timestamptz, real, real, real, real, real,
                                        real, real, integer, integer, integer, boolean, real,
                                        real) IS
    'State transition of ww_sblock_agg: one more sample. Use ww_sblock_agg.';

CREATE FUNCTION ww_sblock_agg_final(internal)
    RETURNS bytea
    AS 'MODULE_PATHNAME', 'ww_pg_sblock_final'
    LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION ww_sblock_agg_final(internal) IS
    'Final function of ww_sblock_agg: the samples sorted and encoded.';

-- The rows are sorted (time, then the sample's bits) before encoding: one set of rows gives
-- one block whatever order they came in.
CREATE AGGREGATE ww_sblock_agg(timestamptz, real, real, real, real, real, real, real,
                               integer, integer, integer, boolean, real, real) (
    SFUNC = ww_sblock_agg_sfunc,
    STYPE = internal,
    FINALFUNC = ww_sblock_agg_final,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE ww_sblock_agg(timestamptz, real, real, real, real, real, real, real,
                                   integer, integer, integer, boolean, real, real) IS
    'The sample block (lib/ww_sblock.h) of one node''s rows: (time, power_w .. humidity_pct) '
    'as the columns of node_samples; NULL for no rows.';

CREATE FUNCTION ww_sblock_samples(block bytea,
    OUT "time" timestamptz, OUT power_w real, OUT inlet_c real, OUT outlet_c real,
    OUT flow_lpm real, OUT wafer_hotspot_c real, OUT utilization real,
    OUT tokens_per_s real, OUT requests_queued integer, OUT requests_in_flight integer,
    OUT requests_completed integer, OUT throttled boolean, OUT throttle_factor real,
    OUT humidity_pct real)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'ww_pg_sblock_samples'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 3600;
COMMENT ON FUNCTION ww_sblock_samples(bytea) IS
    'The samples of a block in time order, every bit as they were aggregated (the columns '
    'of node_samples after node_id).';

CREATE FUNCTION ww_sblock_count(block bytea)
    RETURNS integer
    AS 'MODULE_PATHNAME', 'ww_pg_sblock_count'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ww_sblock_count(bytea) IS
    'The number of samples of a block, read from its head.';
