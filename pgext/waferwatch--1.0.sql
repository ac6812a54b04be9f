-- waferwatch 1.0: the ww_hist histogram type and the SQL that reads it (bounds, merge,
-- quantiles, counts above a threshold, Prometheus-style cumulative buckets), in C
-- (pgext/ww_pg.c, ww_pg_agg.c) over the code the agent and the collector run
-- (lib/ww_hist.c, lib/ww_hist_pack.c, lib/ww_hist_text.c), so that C and SQL agree bit for
-- bit. Replaces the plpgsql functions over the composite ww_hist of collector/sql.
\echo Use "CREATE EXTENSION waferwatch" to load this file. \quit

-- Layout (lib/ww_hist.h: the OpenTelemetry exponential layout). At scale s (0..8) the base
-- is b = 2^(2^-s) and bucket index i holds values v with b^i < v <= b^(i+1). zero_count
-- holds zero and negative values, underflow (0, 2^-20], overflow values above 2^12, +inf
-- and NaN. count = zero_count + underflow + overflow + the bucket counts. sum, min and max
-- are over the finite values (min/max NULL when there are none).
--
-- A value is stored as the canonical bytes of ww_hist_pack() (lib/ww_hist_pack.h: only the
-- non-empty buckets, as Exp-Golomb coded gaps and counts: ~48 bytes of buckets, ~90 in all,
-- for a 10 s TTFT window). One histogram has one encoding, so every function that returns a ww_hist
-- returns the canonical form, and `=` is byte equality: two histograms of the same values
-- at the same scale are equal (sum up to floating-point rounding of the addition order).
-- Every value is checked on the way in (text input, binary receive, ww_hist_make) by the
-- decoder's rules, the form of lib/ww_hist.h's ww_hist_check_form(): count equals its
-- parts, indexes within the range of the scale, counts fit a bigint, sum finite, min and
-- max both NULL (no finite value known; then sum is 0) or both numbers with min <= max.
-- Where min and max lie against the buckets is not checked here (the wire checks it, as
-- lib's ww_hist_check() does): the composite of schema versions 12-14 held what SQL wrote
-- by hand, and the upgrade keeps it. ww_quantile clamps to [min, max] as it always did.

CREATE TYPE ww_hist;

-- Text form (lib/ww_hist_text.h): a JSON object, so h::text::jsonb works,
--   {"scale":6,"count":94,"sum":5.3117,"min":0.0008,"max":0.3781,"zero":0,"underflow":0,
--    "overflow":0,"buckets":[[-712,1],[-700,2]]}
-- buckets the non-empty [index, count] ascending; doubles in the shortest exact form.
-- Input takes the keys in any order, with whitespace; "scale", "count" and "buckets" are
-- required, the others default to 0 (min/max to null).
CREATE FUNCTION ww_hist_in(cstring) RETURNS ww_hist
AS 'MODULE_PATHNAME', 'ww_pg_hist_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ww_hist_out(ww_hist) RETURNS cstring
AS 'MODULE_PATHNAME', 'ww_pg_hist_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- Binary form: the packed bytes exactly (what the collector writes with binary COPY);
-- receive refuses anything the decoder does not accept (non-canonical, inconsistent).
CREATE FUNCTION ww_hist_recv(internal) RETURNS ww_hist
AS 'MODULE_PATHNAME', 'ww_pg_hist_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ww_hist_send(ww_hist) RETURNS bytea
AS 'MODULE_PATHNAME', 'ww_pg_hist_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE ww_hist (
    INPUT = ww_hist_in,
    OUTPUT = ww_hist_out,
    RECEIVE = ww_hist_recv,
    SEND = ww_hist_send,
    INTERNALLENGTH = VARIABLE,
    STORAGE = extended,
    ALIGNMENT = int4  -- PostgreSQL requires it of a varlena; short (1-byte header)
                      -- values are stored unaligned anyway, so it costs no padding
);
COMMENT ON TYPE ww_hist IS
    'Mergeable log-bucketed histogram (OpenTelemetry exponential layout), stored packed; '
    'text form JSON {"scale","count","sum","min","max","zero","underflow","overflow","buckets"}.';
COMMENT ON FUNCTION ww_hist_in(cstring) IS 'Text (JSON) input of ww_hist.';
COMMENT ON FUNCTION ww_hist_out(ww_hist) IS 'Text (JSON) output of ww_hist.';
COMMENT ON FUNCTION ww_hist_recv(internal) IS 'Binary input of ww_hist: the packed bytes, checked.';
COMMENT ON FUNCTION ww_hist_send(ww_hist) IS 'Binary output of ww_hist: the packed bytes.';

CREATE FUNCTION ww_hist_eq(ww_hist, ww_hist) RETURNS boolean
AS 'MODULE_PATHNAME', 'ww_pg_hist_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ww_hist_ne(ww_hist, ww_hist) RETURNS boolean
AS 'MODULE_PATHNAME', 'ww_pg_hist_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ww_hist_eq(ww_hist, ww_hist) IS
    'Equality: same canonical bytes (same scale, counters, sum, min, max, buckets).';
COMMENT ON FUNCTION ww_hist_ne(ww_hist, ww_hist) IS 'Not ww_hist_eq.';
CREATE OPERATOR = (
    LEFTARG = ww_hist, RIGHTARG = ww_hist, FUNCTION = ww_hist_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel
);
CREATE OPERATOR <> (
    LEFTARG = ww_hist, RIGHTARG = ww_hist, FUNCTION = ww_hist_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel
);

-- The constructor from the fields of the former composite ww_hist (the upgrade migration
-- converts rows with it): counts is dense, counts[k] (k from the array's lower bound) the
-- count of bucket "offset" + k - lower bound; zero entries are allowed anywhere (dropped).
-- scale and count are required; sum, zero_count, underflow, overflow and "offset" NULL
-- mean 0, counts NULL no bucket, min/max NULL (or NaN, as C code wrote it) no finite
-- value. Every field is checked and an error (invalid_parameter_value) names the field:
-- scale in [0, 8], counters and counts >= 0 (no NULL element), every non-empty bucket
-- index within the range of the scale ([-20 * 2^scale, 12 * 2^scale - 1]), count equal to
-- its parts, sum finite, min <= max (the form of the type, see the top of this file).
CREATE FUNCTION ww_hist_make(scale integer, count bigint, sum double precision,
                             min double precision, max double precision, zero_count bigint,
                             underflow bigint, overflow bigint, "offset" integer,
                             counts bigint[])
RETURNS ww_hist
AS 'MODULE_PATHNAME', 'ww_pg_hist_make' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION ww_hist_make(integer, bigint, double precision, double precision,
                                 double precision, bigint, bigint, bigint, integer, bigint[]) IS
    'ww_hist from the fields of the former composite (dense counts from "offset", zeros '
    'allowed); NULL min/max: no finite value; checked, errors name the field.';

-- Accessors. The head (scale, counters, sum, min, max, offset) is read without decoding
-- the buckets.
CREATE FUNCTION ww_hist_scale(h ww_hist) RETURNS integer
AS 'MODULE_PATHNAME', 'ww_pg_hist_scale' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ww_hist_scale(ww_hist) IS 'Scale s (base 2^(2^-s)), 0..8.';
-- Number of values recorded (zero, underflow and overflow included).
CREATE FUNCTION ww_hist_count(h ww_hist) RETURNS bigint
AS 'MODULE_PATHNAME', 'ww_pg_hist_count' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ww_hist_count(ww_hist) IS
    'Number of values recorded, zero_count, underflow and overflow included.';
CREATE FUNCTION ww_hist_sum(h ww_hist) RETURNS double precision
AS 'MODULE_PATHNAME', 'ww_pg_hist_sum' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ww_hist_sum(ww_hist) IS 'Sum of the finite values (0 when none).';
CREATE FUNCTION ww_hist_min(h ww_hist) RETURNS double precision
AS 'MODULE_PATHNAME', 'ww_pg_hist_min' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ww_hist_min(ww_hist) IS 'Least finite value; NULL when none.';
CREATE FUNCTION ww_hist_max(h ww_hist) RETURNS double precision
AS 'MODULE_PATHNAME', 'ww_pg_hist_max' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ww_hist_max(ww_hist) IS 'Greatest finite value; NULL when none.';
CREATE FUNCTION ww_hist_zero_count(h ww_hist) RETURNS bigint
AS 'MODULE_PATHNAME', 'ww_pg_hist_zero_count' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ww_hist_zero_count(ww_hist) IS 'Values <= 0 (and -inf).';
CREATE FUNCTION ww_hist_underflow(h ww_hist) RETURNS bigint
AS 'MODULE_PATHNAME', 'ww_pg_hist_underflow' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ww_hist_underflow(ww_hist) IS 'Values in (0, 2^-20].';
CREATE FUNCTION ww_hist_overflow(h ww_hist) RETURNS bigint
AS 'MODULE_PATHNAME', 'ww_pg_hist_overflow' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ww_hist_overflow(ww_hist) IS 'Values above 2^12, +inf and NaN.';
-- The index of the first non-empty bucket (0 when none), as "offset" of the former
-- composite in canonical form.
CREATE FUNCTION ww_hist_offset(h ww_hist) RETURNS integer
AS 'MODULE_PATHNAME', 'ww_pg_hist_offset' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ww_hist_offset(ww_hist) IS
    'Index of the first non-empty bucket; 0 when none.';
-- Dense bucket counts from the first to the last non-empty bucket: counts[k] (1-based) is
-- the count of bucket ww_hist_offset(h) + k - 1; '{}' when no bucket is non-empty.
CREATE FUNCTION ww_hist_counts(h ww_hist) RETURNS bigint[]
AS 'MODULE_PATHNAME', 'ww_pg_hist_counts' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ww_hist_counts(ww_hist) IS
    'Dense counts from the first to the last non-empty bucket (1-based: counts[k] is '
    'bucket ww_hist_offset(h) + k - 1); ''{}'' when none.';
-- The non-empty buckets, ascending.
CREATE FUNCTION ww_hist_buckets(h ww_hist) RETURNS TABLE(index integer, count bigint)
AS 'MODULE_PATHNAME', 'ww_pg_hist_buckets' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 100;
COMMENT ON FUNCTION ww_hist_buckets(ww_hist) IS
    'The non-empty buckets (index, count), ascending by index.';

-- Mean of the finite values: sum / (number of finite values). The layout does not say how
-- many overflow values were finite (above 2^12) rather than +inf or NaN, so: when max is
-- above 2^12 (some overflow value was finite) all of overflow counts as finite, else none
-- of it. Exact whenever overflow is all finite or all non-finite. NULL when none.
CREATE FUNCTION ww_hist_mean(h ww_hist) RETURNS double precision
AS 'MODULE_PATHNAME', 'ww_pg_hist_mean' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ww_hist_mean(ww_hist) IS
    'Mean of the finite values (sum / their count; overflow counted as finite only when '
    'max > 2^12); NULL when there are none.';

-- Lower bound of bucket `index` at `scale`: 2^(index / 2^scale). SQL so that it inlines.
-- With glibc, pow(2, k/256) is the very double ldexp(exp2(j/256), e) that lib/ww_hist.c
-- uses (ww_hist_lower()), for every index of the range, so bounds and quantiles agree with
-- C bit for bit (tests/integration/test_pgext.c checks every index of every scale).
CREATE FUNCTION ww_hist_lower(index integer, scale integer) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN power(2::double precision, index::double precision / (1 << scale)::double precision);
COMMENT ON FUNCTION ww_hist_lower(integer, integer) IS
    'Lower (exclusive) bound of bucket index at scale: 2^(index/2^scale).';

-- Upper bound of bucket `index` at `scale`, the lower bound of the next one.
CREATE FUNCTION ww_hist_upper(index integer, scale integer) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN power(2::double precision, (index + 1)::double precision / (1 << scale)::double precision);
COMMENT ON FUNCTION ww_hist_upper(integer, integer) IS
    'Upper (inclusive) bound of bucket index at scale: 2^((index+1)/2^scale).';

-- a + b, NULL-tolerant: add(NULL, b) = b, add(a, NULL) = a, add(NULL, NULL) = NULL. A
-- finer side is reduced to the coarser scale first (ww_hist_merge() in C). Counts,
-- zero/underflow/overflow and sum add up; min and max are the least and greatest of the
-- two (ignoring a side without finite values). A counter that would pass the bigint range
-- is an error (numeric_value_out_of_range) naming it.
CREATE FUNCTION ww_hist_add(a ww_hist, b ww_hist) RETURNS ww_hist
AS 'MODULE_PATHNAME', 'ww_pg_hist_add' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION ww_hist_add(ww_hist, ww_hist) IS
    'a + b (NULL-tolerant; the finer side reduced to the coarser scale); a counter past '
    'bigint is an error.';

-- h at the coarser scale new_scale (0 <= new_scale <= scale of h, else an error
-- invalid_parameter_value): bucket i becomes i >> (scale - new_scale), an arithmetic
-- shift, i.e. floor(i / 2^d) also for negative indexes, exactly as ww_hist_downscale() in
-- C. Each value stays in the bucket that contains it, since
-- b'^(i>>d) <= b^i < v <= b^(i+1) <= b'^((i>>d)+1).
CREATE FUNCTION ww_hist_downscale(h ww_hist, new_scale integer) RETURNS ww_hist
AS 'MODULE_PATHNAME', 'ww_pg_hist_downscale' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ww_hist_downscale(ww_hist, integer) IS
    'h reduced to the coarser scale new_scale (<= scale of h): bucket i becomes '
    'i >> (scale - new_scale) (floor, also for negative i).';

-- The aggregate's support functions (internal state: a C histogram in the aggregate's
-- memory context, merged from each row's packed bytes without decoding it).
CREATE FUNCTION ww_hist_merge_sfunc(internal, ww_hist) RETURNS internal
AS 'MODULE_PATHNAME', 'ww_pg_merge_sfunc' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION ww_hist_merge_final(internal) RETURNS ww_hist
AS 'MODULE_PATHNAME', 'ww_pg_merge_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION ww_hist_merge_combine(internal, internal) RETURNS internal
AS 'MODULE_PATHNAME', 'ww_pg_merge_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION ww_hist_merge_serial(internal) RETURNS bytea
AS 'MODULE_PATHNAME', 'ww_pg_merge_serial' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION ww_hist_merge_deserial(bytea, internal) RETURNS internal
AS 'MODULE_PATHNAME', 'ww_pg_merge_deserial' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ww_hist_merge_sfunc(internal, ww_hist) IS
    'State transition of ww_merge: st + h. Use ww_merge or ww_hist_add.';
COMMENT ON FUNCTION ww_hist_merge_final(internal) IS 'Final function of ww_merge: the packed sum.';
COMMENT ON FUNCTION ww_hist_merge_combine(internal, internal) IS
    'Combine function of ww_merge (parallel partial states).';
COMMENT ON FUNCTION ww_hist_merge_serial(internal) IS
    'Serialisation of a ww_merge partial state: its packed bytes.';
COMMENT ON FUNCTION ww_hist_merge_deserial(bytea, internal) IS
    'Deserialisation of a ww_merge partial state.';

-- Merges histograms row by row (NULL rows are skipped; no rows gives NULL), at the
-- coarsest scale among them, exactly as a chain of ww_hist_merge() in C over the same
-- rows in the same order. Parallel partial aggregates are serialised as packed bytes and
-- combined (sum may then differ in the last bits: another addition order).
CREATE AGGREGATE ww_merge(ww_hist) (
    SFUNC = ww_hist_merge_sfunc,
    STYPE = internal,
    SSPACE = 4096,
    FINALFUNC = ww_hist_merge_final,
    COMBINEFUNC = ww_hist_merge_combine,
    SERIALFUNC = ww_hist_merge_serial,
    DESERIALFUNC = ww_hist_merge_deserial,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE ww_merge(ww_hist) IS
    'Sum of histograms (at the coarsest scale among them); NULL for no rows.';

-- The q-quantile of h by nearest rank, exactly ww_hist_quantile() in C: the value of rank
-- r = max(1, ceil(q * count)) counted upwards through zero_count, underflow, the buckets
-- and overflow. A rank in zero_count gives 0, in underflow 2^-20 (but never above max), in
-- a bucket the bucket's harmonic-mean point 2 lo hi / (lo + hi) clamped to [min, max], in
-- overflow max when max is beyond 2^12 (the largest finite overflow value), else +inf
-- (overflow then holds only +inf/NaN). NULL for an empty (or NULL) histogram and for a
-- NULL q; q outside [0, 1] (or NaN) is an error (invalid_parameter_value), where the C
-- function clamps q. The rank is exact decimal arithmetic (ww_hist_rank()): q as the
-- decimal PostgreSQL's float8 -> numeric cast reads (15 significant digits), so that
-- q = 0.07 of 100 values is rank 7, not 8 (0.07 in binary is a little above 0.07).
-- Reported value within 0.542% of the true nearest-rank quantile at scale 6.
CREATE FUNCTION ww_quantile(h ww_hist, q double precision) RETURNS double precision
AS 'MODULE_PATHNAME', 'ww_pg_quantile' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION ww_quantile(ww_hist, double precision) IS
    'q-quantile (0 <= q <= 1) by nearest rank: the bucket''s harmonic-mean point clamped '
    'to [min, max]; 0 in zero_count, 2^-20 in underflow, in overflow max if > 2^12 else '
    '+inf; NULL when empty.';

-- Prometheus-style cumulative buckets (for Grafana heatmaps), ending with le = +Inf and
-- the total count.
--  * les NULL: one row per non-empty bucket, le = its upper bound, count = everything up
--    to and including it; zero_count and underflow are counted from the first row on
--    (they get no row of their own).
--  * les given (ascending, no NULL or NaN, else an error invalid_parameter_value; +Inf
--    entries are left to the final row): for each le, the number of values whose bucket
--    lies entirely at or below le, i.e. upper bound <= le (zero_count's bound is 0,
--    underflow's 2^-20). An approximation: the values of the bucket that straddles le are
--    not counted, though some may be <= le; the error is under one bucket (0.54% of le at
--    scale 6).
-- A NULL histogram gives no rows.
CREATE FUNCTION ww_hist_le(h ww_hist, les double precision[] DEFAULT NULL)
RETURNS TABLE(le double precision, count bigint)
AS 'MODULE_PATHNAME', 'ww_pg_hist_le' LANGUAGE C IMMUTABLE PARALLEL SAFE ROWS 100;
COMMENT ON FUNCTION ww_hist_le(ww_hist, double precision[]) IS
    'Cumulative (le, count) rows ending with +Inf: per non-empty bucket at its upper bound '
    '(les NULL), or at each given le counting buckets whose upper bound <= le.';

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
-- Relation with ww_quantile: for a histogram of n > 0 values, 0 <= q <= 1 and
-- r = max(1, ceil(q * n)) (ww_quantile's rank),
--     ww_hist_count_above(h, ww_quantile(h, q)) <= n - r   (<= floor(n * (1 - q)))
-- i.e. at least r values, a share q of them, are "at or below the q-quantile": an SLO
-- whose threshold is the measured p99 is met by at least 99% of the events. Equality holds
-- unless a part above the one holding rank r has the same (clamped) point.
--
-- NULL (or empty) histogram: 0. NULL x: NULL. x NaN: 0 (NaN sorts above every number).
CREATE FUNCTION ww_hist_count_above(h ww_hist, x double precision) RETURNS bigint
AS 'MODULE_PATHNAME', 'ww_pg_hist_count_above' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION ww_hist_count_above(ww_hist, double precision) IS
    'Values of h above x: each part counts by the point ww_quantile reports for it (0, '
    '2^-20, the bucket''s harmonic-mean point clamped to [min, max], max or +inf), so '
    'count_above(h, ww_quantile(h, q)) <= count - max(1, ceil(q*count)). NULL h: 0.';
