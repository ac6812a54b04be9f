-- Repeatable: the histogram functions of the ww_hist type (the type itself is a table-like
-- object of migration 0002 and stays there). Re-applied by the migrator after the versioned
-- migrations whenever a file of collector/sql changes (ww_migrate.h): edit the function
-- here, in place, and nowhere else. Every statement must be idempotent (CREATE OR REPLACE).
--
-- The SQL that reads ww_hist histograms: bounds, merge (ww_merge), quantiles, counts above
-- a threshold, Prometheus-style cumulative buckets. The layout and semantics are
-- those of proto/ww_hist.h (the OpenTelemetry exponential layout); the C and SQL sides
-- must agree, so a change here is a change there.
--
-- Layout. At scale s the base is b = 2^(2^-s) and bucket index i holds values v with
-- b^i < v <= b^(i+1). counts[k] (1-based, dense) is the count of bucket "offset" + k - 1.
-- zero_count holds zero and negative values, underflow (0, 2^-20], overflow values above
-- 2^12, +inf and NaN. count = zero_count + underflow + overflow + sum(counts). sum, min
-- and max are over the finite values (min/max NULL when there are none; a NaN written by
-- C code is read as NULL too).
--
-- Canonical form. Every function here that returns a ww_hist (ww_hist_add,
-- ww_hist_downscale, ww_hist_trim and the ww_merge aggregate) returns it trimmed: no zero
-- bucket at either end of counts, and counts '{}' with "offset" 0 when no bucket is
-- non-empty. Two canonical histograms of the same values at the same scale are equal
-- field for field (sum up to floating-point rounding of the addition order), so `=` on
-- results is meaningful. Inputs need not be canonical.
--
-- NULL elements inside counts are not allowed (the collector never writes them).

-- Lower bound of bucket `index` at `scale`: 2^(index / 2^scale). SQL so that it inlines.
-- With glibc, pow(2, k/256) is the very double ldexp(exp2(j/256), e) that proto/ww_hist.c
-- uses, for every index of the range, so bounds and quantiles agree with C bit for bit.
CREATE OR REPLACE FUNCTION ww_hist_lower(index integer, scale integer) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN power(2::double precision, index::double precision / (1 << scale)::double precision);
COMMENT ON FUNCTION ww_hist_lower(integer, integer) IS
    'Lower (exclusive) bound of bucket index at scale: 2^(index/2^scale).';

-- Upper bound of bucket `index` at `scale`, the lower bound of the next one.
CREATE OR REPLACE FUNCTION ww_hist_upper(index integer, scale integer) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN power(2::double precision, (index + 1)::double precision / (1 << scale)::double precision);
COMMENT ON FUNCTION ww_hist_upper(integer, integer) IS
    'Upper (inclusive) bound of bucket index at scale: 2^((index+1)/2^scale).';

-- Canonical form of h: zero buckets dropped at both ends ("offset" moved accordingly),
-- counts made 1-based, '{}' with offset 0 when every bucket is empty, NaN min/max made
-- NULL. Everything else is returned as given.
CREATE OR REPLACE FUNCTION ww_hist_trim(h ww_hist) RETURNS ww_hist
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    c bigint[] := coalesce(h.counts, '{}');
    n integer := cardinality(c);
    a integer := 1;
    z integer;
BEGIN
    IF n > 0 AND array_lower(c, 1) <> 1 THEN
        c := c[array_lower(c, 1) : array_upper(c, 1)];  -- a slice is 1-based
    END IF;
    WHILE a <= n AND coalesce(c[a], 0) = 0 LOOP
        a := a + 1;
    END LOOP;
    IF a > n THEN
        h.counts := '{}';
        h."offset" := 0;
    ELSE
        z := n;
        WHILE coalesce(c[z], 0) = 0 LOOP
            z := z - 1;
        END LOOP;
        IF a > 1 OR z < n THEN
            c := c[a : z];
        END IF;
        h.counts := c;
        h."offset" := h."offset" + a - 1;
    END IF;
    IF h.min = 'NaN' THEN
        h.min := NULL;
    END IF;
    IF h.max = 'NaN' THEN
        h.max := NULL;
    END IF;
    RETURN h;
END $$;
COMMENT ON FUNCTION ww_hist_trim(ww_hist) IS
    'Canonical form: leading/trailing zero buckets dropped, 1-based counts, ''{}'' with '
    'offset 0 when no bucket is non-empty, NaN min/max as NULL.';

-- h at the coarser scale new_scale (0 <= new_scale <= h.scale): bucket i becomes
-- i >> (h.scale - new_scale), an arithmetic shift, i.e. floor(i / 2^d) also for negative
-- indexes, exactly as ww_hist_downscale() in C. Each value stays in the bucket that
-- contains it, since b'^(i>>d) <= b^i < v <= b^(i+1) <= b'^((i>>d)+1). Returns the
-- canonical form.
CREATE OR REPLACE FUNCTION ww_hist_downscale(h ww_hist, new_scale integer) RETURNS ww_hist
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    d integer := h.scale - new_scale;
    src bigint[];
    c bigint[];
    lo integer;
    j integer;
    x bigint;
BEGIN
    IF new_scale < 0 OR d < 0 THEN
        RAISE EXCEPTION 'ww_hist_downscale: cannot change scale % to % (only 0 <= new scale <= old scale)',
                        h.scale, new_scale
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    h := ww_hist_trim(h);
    IF d = 0 OR cardinality(h.counts) = 0 THEN
        h.scale := new_scale;
        RETURN h;
    END IF;
    src := h.counts;
    lo := h."offset" >> d;
    c := array_fill(0::bigint, ARRAY[((h."offset" + cardinality(src) - 1) >> d) - lo + 1]);
    j := h."offset";
    FOREACH x IN ARRAY src LOOP
        c[(j >> d) - lo + 1] := c[(j >> d) - lo + 1] + x;
        j := j + 1;
    END LOOP;
    h.scale := new_scale;
    h."offset" := lo;
    h.counts := c;  -- dense and trimmed: the source's end buckets are non-zero
    RETURN h;
END $$;
COMMENT ON FUNCTION ww_hist_downscale(ww_hist, integer) IS
    'h reduced to the coarser scale new_scale (<= h.scale): bucket i becomes '
    'i >> (h.scale - new_scale) (floor, also for negative i). Canonical result.';

-- The state transition of ww_merge: st + h. Works on st's counts array in place (a local
-- expanded array), loops only over h's buckets, and grows st's range only when h's does
-- not fit in it. A finer side is first reduced to the coarser side's scale. The result
-- is not trimmed (the aggregate trims once, in its final function).
CREATE OR REPLACE FUNCTION ww_hist_merge_sfunc(st ww_hist, h ww_hist) RETURNS ww_hist
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    c bigint[];
    hc bigint[];
    n integer;
    m integer;
    so integer;
    ho integer;
    lo integer;
    hi integer;
    j integer;
    x bigint;
BEGIN
    IF st.scale <> h.scale THEN
        IF st.scale > h.scale THEN
            st := ww_hist_downscale(st, h.scale);
        ELSE
            h := ww_hist_downscale(h, st.scale);
        END IF;
    END IF;
    hc := h.counts;
    m := coalesce(cardinality(hc), 0);
    IF m > 0 THEN
        c := st.counts;
        n := coalesce(cardinality(c), 0);
        ho := h."offset";
        IF n = 0 THEN
            c := hc;
            so := ho;
            IF array_lower(c, 1) <> 1 THEN
                c := c[array_lower(c, 1) : array_upper(c, 1)];
            END IF;
        ELSE
            so := st."offset";
            IF array_lower(c, 1) <> 1 THEN
                c := c[array_lower(c, 1) : array_upper(c, 1)];
            END IF;
            IF ho < so OR ho + m > so + n THEN
                lo := least(so, ho);
                hi := greatest(so + n, ho + m);
                IF lo < so THEN
                    c := array_fill(0::bigint, ARRAY[so - lo]) || c;
                END IF;
                IF hi > so + n THEN
                    c := c || array_fill(0::bigint, ARRAY[hi - so - n]);
                END IF;
                so := lo;
            END IF;
            j := ho - so + 1;
            FOREACH x IN ARRAY hc LOOP
                c[j] := c[j] + x;
                j := j + 1;
            END LOOP;
        END IF;
        st.counts := c;
        st."offset" := so;
    END IF;
    RETURN ROW(st.scale, st.count + h.count, coalesce(st.sum, 0) + coalesce(h.sum, 0),
               least(nullif(st.min, 'NaN'), nullif(h.min, 'NaN')),
               greatest(nullif(st.max, 'NaN'), nullif(h.max, 'NaN')),
               st.zero_count + h.zero_count, st.underflow + h.underflow,
               st.overflow + h.overflow, st."offset", st.counts)::ww_hist;
END $$;
COMMENT ON FUNCTION ww_hist_merge_sfunc(ww_hist, ww_hist) IS
    'State transition of ww_merge: st + h, grown in place, not trimmed. Use ww_hist_add.';

-- a + b, NULL-tolerant: add(NULL, b) = b, add(a, NULL) = a. A finer side is reduced to the
-- coarser scale first. Counts, zero/underflow/overflow and sum add up; min and max are the
-- least and greatest of the two (ignoring NULL). Returns the canonical form.
CREATE OR REPLACE FUNCTION ww_hist_add(a ww_hist, b ww_hist) RETURNS ww_hist
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF a IS NULL THEN
        RETURN ww_hist_trim(b);
    ELSIF b IS NULL THEN
        RETURN ww_hist_trim(a);
    END IF;
    RETURN ww_hist_trim(ww_hist_merge_sfunc(a, b));
END $$;
COMMENT ON FUNCTION ww_hist_add(ww_hist, ww_hist) IS
    'a + b (NULL-tolerant; the finer side reduced to the coarser scale). Canonical result.';

-- Merges histograms row by row (NULL rows are skipped; no rows gives NULL). Parallel
-- partial aggregates are combined with ww_hist_add.
CREATE OR REPLACE AGGREGATE ww_merge(ww_hist) (
    SFUNC = ww_hist_merge_sfunc,
    STYPE = ww_hist,
    FINALFUNC = ww_hist_trim,
    COMBINEFUNC = ww_hist_add,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE ww_merge(ww_hist) IS
    'Sum of histograms (at the coarsest scale among them), canonical; NULL for no rows.';

-- The q-quantile of h by nearest rank, exactly as ww_hist_quantile() in C: the value of
-- rank r = max(1, ceil(q * count)) counted upwards through zero_count, underflow, the
-- buckets and overflow. A rank in zero_count gives 0, in underflow 2^-20, in a bucket the
-- bucket's harmonic-mean point 2 lo hi / (lo + hi) clamped to [min, max], in overflow max
-- when max is beyond 2^12 (the largest finite overflow value), else +inf (overflow then
-- holds only +inf/NaN; max NULL counts as none). NULL for an empty (or NULL) histogram;
-- q outside [0, 1] (or NaN) is an error, where the C function clamps q.
-- The rank is computed in exact decimal arithmetic (since 0011): q as the decimal
-- PostgreSQL's float8 -> numeric cast reads (15 significant digits), so that q = 0.07 of
-- 100 values is rank 7, not 8 (0.07 in binary is a little above 0.07); ww_hist_rank() in
-- C computes the same.
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
COMMENT ON FUNCTION ww_quantile(ww_hist, double precision) IS
    'q-quantile (0 <= q <= 1) by nearest rank: the bucket''s harmonic-mean point clamped '
    'to [min, max]; 0 in zero_count, 2^-20 in underflow, in overflow max if > 2^12 else '
    '+inf; NULL when empty.';

-- Number of values recorded (zero, underflow and overflow included).
CREATE OR REPLACE FUNCTION ww_hist_count(h ww_hist) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN h.count;
COMMENT ON FUNCTION ww_hist_count(ww_hist) IS
    'Number of values recorded, zero_count, underflow and overflow included.';

-- Mean of the finite values: sum / (number of finite values). The layout does not say how
-- many overflow values were finite (above 2^12) rather than +inf or NaN, so: when max is
-- above 2^12 (some overflow value was finite) all of overflow counts as finite, else none
-- of it. Exact whenever overflow is all finite or all non-finite. NULL when none.
CREATE OR REPLACE FUNCTION ww_hist_mean(h ww_hist) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (SELECT CASE WHEN n > 0 THEN h.sum / n END
        FROM (SELECT h.count - CASE WHEN h.max > 4096 AND h.max < 'Infinity' THEN 0
                                    ELSE h.overflow END AS n) AS f);
COMMENT ON FUNCTION ww_hist_mean(ww_hist) IS
    'Mean of the finite values (sum / their count; overflow counted as finite only when '
    'max > 2^12); NULL when there are none.';

-- Prometheus-style cumulative buckets (for Grafana heatmaps), ending with le = +Inf and
-- the total count.
--  * les NULL: one row per non-empty bucket, le = its upper bound, count = everything up
--    to and including it; zero_count and underflow are counted from the first row on
--    (they get no row of their own).
--  * les given (ascending; +Inf entries are left to the final row): for each le, the
--    number of values whose bucket lies entirely at or below le, i.e. upper bound <= le
--    (zero_count's bound is 0, underflow's 2^-20). An approximation: the values of the
--    bucket that straddles le are not counted, though some may be <= le; the error is
--    under one bucket (0.54% of le at scale 6).
-- A NULL histogram gives no rows.
CREATE OR REPLACE FUNCTION ww_hist_le(h ww_hist, les double precision[] DEFAULT NULL)
RETURNS TABLE(le double precision, count bigint)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    c bigint[];
    n integer;
    k integer := 1;
    cum bigint;
    x bigint;
    l double precision;
    prev double precision := '-Infinity';
BEGIN
    IF h IS NULL THEN
        RETURN;
    END IF;
    c := coalesce(h.counts, '{}');
    n := cardinality(c);
    IF les IS NULL THEN
        cum := h.zero_count + h.underflow;
        FOREACH x IN ARRAY c LOOP
            IF x <> 0 THEN
                cum := cum + x;
                le := ww_hist_upper(h."offset" + k - 1, h.scale);
                count := cum;
                RETURN NEXT;
            END IF;
            k := k + 1;
        END LOOP;
    ELSE
        cum := 0;  -- sum of c[1 .. k-1], the buckets already below the current le
        FOREACH l IN ARRAY les LOOP
            IF l IS NULL OR l = 'NaN' OR l < prev THEN
                RAISE EXCEPTION 'ww_hist_le: les must be ascending numbers without NULL or NaN, got %', les
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            prev := l;
            CONTINUE WHEN l = 'Infinity';
            WHILE k <= n AND ww_hist_upper(h."offset" + k - 1, h.scale) <= l LOOP
                cum := cum + c[k];
                k := k + 1;
            END LOOP;
            le := l;
            count := cum + CASE WHEN l >= 0 THEN h.zero_count ELSE 0 END
                         + CASE WHEN l >= 1.0 / 1048576.0 THEN h.underflow ELSE 0 END;
            RETURN NEXT;
        END LOOP;
    END IF;
    le := 'Infinity';
    count := h.count;
    RETURN NEXT;
END $$;
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
-- Relation with ww_quantile (tested in tests/integration/test_sql_slo.c): for a
-- histogram of n > 0 values, 0 <= q <= 1 and r = max(1, ceil(q * n)) (ww_quantile's
-- rank),
--     ww_hist_count_above(h, ww_quantile(h, q)) <= n - r   (<= floor(n * (1 - q)))
-- i.e. at least r values, a share q of them, are "at or below the q-quantile": an SLO
-- whose threshold is the measured p99 is met by at least 99% of the events. Equality holds
-- unless a part above the one holding rank r has the same (clamped) point.
--
-- NULL histogram: 0. NULL x: NULL. x NaN: 0 (NaN sorts above every number).
CREATE OR REPLACE FUNCTION ww_hist_count_above(h ww_hist, x double precision) RETURNS bigint
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
