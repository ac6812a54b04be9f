/* The SQL side of SLO evaluation (collector/sql/30_functions_slo.sql) against a real
 * PostgreSQL: ww_hist_count_above on hand-built histograms (every part, bucket
 * boundaries, clamping to min/max, NULL), its relation with ww_quantile and its
 * exactness outside the bucket holding the threshold on random histograms recorded by the
 * C histogram, ww_sli over raw windows and over rollups (phase, model, metric, half-open
 * ranges, availability, errors), ww_phase_capacity on hand-inserted samples, and the
 * privileges of waferwatch_writer / waferwatch_reader on the new tables (private cluster:
 * roles are cluster-wide). */
#include "harness.h"
#include "ww_hist.h"
#include "ww_migrate.h"
#include "ww_test.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Scale 0 buckets: i holds (2^i, 2^(i+1)], harmonic-mean point 4/3 * 2^i. H10: zero 1,
 * underflow 1, bucket -2 (0.25, 0.5] x2, bucket -1 (0.5, 1] x3, bucket 0 (1, 2] x2, overflow
 * 1 (5000); min 0, max 5000. */
#define H10 "ww_hist_make(0, 10, 5008, 0, 5000, 1, 1, 1, -2, '{2,3,2}')"
#define T0 "'2030-01-01 00:00:00+00'::timestamptz"

static void s_db(h_db_t *db, const char *tag)
{
    h_db_create(db, tag);
    int v = ww_migrate(db->conn);
    if (v < 6) {
        fail_msg("ww_migrate returned %d, want >= 6", v);
    }
}

/* One number from a formatted query (NULL gives -1). */
static long long s_ll(h_db_t *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long long s_ll(h_db_t *db, const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return h_query_ll(db, sql);
}

/* One double from a query (NULL gives NAN). */
static double s_dbl(h_db_t *db, const char *sql)
{
    PGresult *r = h_query(db, sql);
    assert_int_equal(PQntuples(r), 1);
    double v = PQgetisnull(r, 0, 0) ? NAN : strtod(PQgetvalue(r, 0, 0), NULL);
    PQclear(r);
    return v;
}

/* count_above of H10 at x (given as SQL text). */
static long long s_above10(h_db_t *db, const char *x)
{
    return s_ll(db, "SELECT ww_hist_count_above(" H10 ", %s)", x);
}

static void test_count_above_parts_and_boundaries(void **state)
{
    (void)state;
    h_db_t db;
    s_db(&db, "slo_ca");
    assert_int_equal(s_above10(&db, "-1"), 10); /* zero_count above x < 0 */
    assert_int_equal(s_above10(&db, "0"), 9);   /* ... at or below 0 */
    assert_int_equal(s_above10(&db, "'-Infinity'"), 10);
    assert_int_equal(s_above10(&db, "power(2, -21)::float8"), 9); /* underflow above */
    assert_int_equal(s_above10(&db, "power(2, -20)::float8"), 8); /* ... at or below 2^-20 */
    assert_int_equal(s_above10(&db, "0.25"), 8);                  /* lower bound of bucket -2 */
    assert_int_equal(s_above10(&db, "0.3"), 8);                   /* below its point 1/3 */
    assert_int_equal(s_above10(&db, "0.34"), 6);                  /* above it */
    assert_int_equal(s_above10(&db, "0.5"), 6);                   /* boundary: exact */
    assert_int_equal(s_above10(&db, "1"), 3);
    assert_int_equal(s_above10(&db, "1.3"), 3);
    assert_int_equal(s_above10(&db, "4::float8 / 3"), 1); /* the point itself is not above */
    assert_int_equal(s_above10(&db, "2"), 1);
    assert_int_equal(s_above10(&db, "4095.9"), 1); /* overflow above every x < 2^12 */
    assert_int_equal(s_above10(&db, "4999"), 1);   /* ... beyond: decided by max */
    assert_int_equal(s_above10(&db, "5000"), 0);
    assert_int_equal(s_above10(&db, "'Infinity'"), 0);
    assert_int_equal(s_above10(&db, "'NaN'"), 0);
    assert_int_equal(s_above10(&db, "NULL"), -1);
    /* NULL and empty histograms: 0. */
    assert_int_equal(h_query_ll(&db, "SELECT ww_hist_count_above(NULL::ww_hist, 1)"), 0);
    assert_int_equal(h_query_ll(&db, "SELECT ww_hist_count_above(NULL, 1)"), 0);
    assert_int_equal(h_query_ll(&db, "SELECT ww_hist_count_above(ww_hist_make(6, 0, 0, NULL, NULL,"
                                     " 0, 0, 0, 0, '{}'), -1)"),
                     0);
    /* A non-canonical histogram (zero buckets at the ends, non-1-based array) counts alike. */
    assert_int_equal(h_query_ll(&db,
                                "SELECT ww_hist_count_above(ww_hist_make(0, 10, 5008, 0, 5000, 1,"
                                " 1, 1, -3, '[0:4]={0,2,3,2,0}'), 0.34)"),
                     6);
    /* Overflow holding only +inf (max a bucket value or NULL): above every finite x. */
    assert_int_equal(h_query_ll(&db,
                                "SELECT ww_hist_count_above(ww_hist_make(0, 3, 1.5, 1.5, 1.5, 0,"
                                " 0, 2, 0, '{1}'), 1e300)"),
                     2);
    assert_int_equal(h_query_ll(&db,
                                "SELECT ww_hist_count_above(ww_hist_make(0, 2, 0, NULL, NULL, 0,"
                                " 0, 2, 0, '{}'), 1e300)"),
                     2);
    /* Clamping to [min, max], as ww_quantile: three values in [1.9, 1.95] of bucket 0
     * (point 4/3 -> 1.9): all above 1.8, none above 1.9 (= the quantile). */
    const char *hi = "ww_hist_make(0, 3, 5.75, 1.9, 1.95, 0, 0, 0, 0, '{3}')";
    assert_int_equal(s_ll(&db, "SELECT ww_hist_count_above(%s, 1.8)", hi), 3);
    assert_int_equal(s_ll(&db, "SELECT ww_hist_count_above(%s, ww_quantile(%s, 0.5))", hi, hi), 0);
    assert_float_equal(s_dbl(&db,
                             "SELECT ww_quantile(ww_hist_make(0, 3, 5.75, 1.9, 1.95, 0, 0, 0, 0,"
                             " '{3}'), 0.5)"),
                       1.9, 0);
    /* Three values in [1.01, 1.2] (point 4/3 -> 1.2): none above 1.25 (exact, where the
     * unclamped point would say 3). */
    const char *lo = "ww_hist_make(0, 3, 3.3, 1.01, 1.2, 0, 0, 0, 0, '{3}')";
    assert_int_equal(s_ll(&db, "SELECT ww_hist_count_above(%s, 1.25)", lo), 0);
    assert_int_equal(s_ll(&db, "SELECT ww_hist_count_above(%s, 1.0)", lo), 3);
    /* Never increases with x. */
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM (SELECT x, ww_hist_count_above(" H10
                                     ", x) AS a, lag(ww_hist_count_above(" H10 ", x)) OVER"
                                     " (ORDER BY x) AS prev FROM (SELECT power(2, k / 64.0)::"
                                     "float8 AS x FROM generate_series(-1400, 900) k) s) t"
                                     " WHERE a > prev"),
                     0);
    h_db_drop(&db);
}

/* xorshift64*: deterministic test data. */
static uint64_t s_rng = 0x9e3779b97f4a7c15ULL;
static double s_unif(void)
{
    s_rng ^= s_rng >> 12;
    s_rng ^= s_rng << 25;
    s_rng ^= s_rng >> 27;
    return (double)((s_rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static double s_normal(void)
{
    double u = s_unif(), v = s_unif();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

/* h as a ww_hist SQL literal (malloc'd). */
static char *s_literal(const ww_hist_t *h)
{
    size_t cap = 256 + (size_t)h->len * 24;
    char *s = malloc(cap);
    assert_non_null(s);
    char mn[40] = "NULL", mx[40] = "NULL";
    if (!isnan(h->min)) {
        snprintf(mn, sizeof mn, "%.17g", h->min);
        snprintf(mx, sizeof mx, "%.17g", h->max);
    }
    size_t n = (size_t)snprintf(
        s, cap, "ww_hist_make(%d, %llu, %.17g, %s, %s, %llu, %llu, %llu, %d, '{", (int)h->scale,
        (unsigned long long)h->count, h->sum, mn, mx, (unsigned long long)h->zero_count,
        (unsigned long long)h->underflow, (unsigned long long)h->overflow, (int)h->offset);
    for (uint32_t k = 0; k < h->len; k++) {
        n += (size_t)snprintf(s + n, cap - n, "%s%llu", k ? "," : "",
                              (unsigned long long)h->counts[k]);
    }
    snprintf(s + n, cap - n, "}')");
    return s;
}

#define R_HISTS 48
#define R_MAXV 1500

static void test_count_above_quantile_relation_and_exactness(void **state)
{
    (void)state;
    h_db_t db;
    s_db(&db, "slo_cq");
    PQclear(h_query(&db, "CREATE TEMP TABLE hs (id int, h ww_hist)"));
    static double v[R_MAXV];
    long long checked = 0;
    for (int k = 0; k < R_HISTS; k++) {
        int scale = k % (WW_HIST_MAX_SCALE + 1);
        int n = 1 + (int)(s_unif() * (k % 3 == 0 ? 20 : R_MAXV - 1));
        double mu = -9.0 + 12.0 * s_unif(), sigma = 0.05 + 1.5 * s_unif();
        ww_hist_t h;
        ww_hist_init(&h, scale);
        for (int i = 0; i < n; i++) {
            double u = s_unif();
            if (k % 4 == 1 && u < 0.03) {
                v[i] = u < 0.01 ? 0.0 : -0.001; /* zero_count */
            } else if (k % 4 == 1 && u < 0.06) {
                v[i] = 3e-7; /* underflow */
            } else if (k % 4 == 2 && u < 0.03) {
                v[i] = u < 0.015 ? 5000.0 + 100000.0 * u : INFINITY; /* overflow */
            } else {
                v[i] = exp(mu + sigma * s_normal());
            }
            assert_int_equal(ww_hist_record(&h, v[i]), 0);
        }
        char *lit = s_literal(&h);
        char *sql = malloc(strlen(lit) + 64);
        assert_non_null(sql);
        sprintf(sql, "INSERT INTO hs VALUES (%d, %s)", k, lit);
        PQclear(h_query(&db, sql));
        free(sql);

        /* Exactness: off from the true count by at most the values of x's bucket. */
        for (int t = 0; t < 12; t++) {
            double x = t < 8 ? v[(int)(s_unif() * n)] : exp(mu + 3.0 * s_normal());
            if (!(x > WW_HIST_MIN && x <= WW_HIST_MAX)) {
                continue;
            }
            int32_t bx = ww_hist_index(x, scale);
            long long truth = 0, in_bucket = 0;
            for (int i = 0; i < n; i++) {
                truth += v[i] > x || isnan(v[i]);
                in_bucket +=
                    v[i] > WW_HIST_MIN && v[i] <= WW_HIST_MAX && ww_hist_index(v[i], scale) == bx;
            }
            char *q = malloc(strlen(lit) + 96);
            assert_non_null(q);
            sprintf(q, "SELECT ww_hist_count_above(%s, %.17g)", lit, x);
            long long got = h_query_ll(&db, q);
            free(q);
            if (llabs(got - truth) > in_bucket) {
                fail_msg("hist %d (scale %d, n %d): count_above(%.17g) = %lld, true %lld,"
                         " bucket holds %lld",
                         k, scale, n, x, got, truth, in_bucket);
            }
            checked++;
        }
        free(lit);
        ww_hist_fini(&h);
    }
    assert_true(checked > R_HISTS * 6);

    /* count_above(h, ww_quantile(h, q)) <= n - r, r = max(1, ceil(q n)) in exact decimal
     * arithmetic (as ww_quantile): at least a share q of the values is at or below the
     * q-quantile. Tight: equality nearly always. */
    PGresult *r = h_query(&db, "WITH qs AS (SELECT (k / 200.0)::float8 AS q FROM"
                               " generate_series(0, 200) k UNION ALL SELECT unnest("
                               "'{0.001, 0.01, 0.999, 0.9999, 0.99999}'::float8[])),"
                               " c AS (SELECT ww_hist_count(h) AS n, q, ww_hist_count_above(h,"
                               " ww_quantile(h, q)) AS above, greatest(1, ceil(q::numeric"
                               " * ww_hist_count(h)))::bigint AS r FROM hs, qs)"
                               " SELECT count(*) FILTER (WHERE above > n - r),"
                               " count(*) FILTER (WHERE n - above < q::numeric * n),"
                               " count(*) FILTER (WHERE above = n - r), count(*) FROM c");
    long long bad = atoll(PQgetvalue(r, 0, 0)), bad_share = atoll(PQgetvalue(r, 0, 1));
    long long equal = atoll(PQgetvalue(r, 0, 2)), all = atoll(PQgetvalue(r, 0, 3));
    PQclear(r);
    assert_int_equal(all, R_HISTS * 206);
    assert_int_equal(bad, 0);
    assert_int_equal(bad_share, 0);
    assert_true(equal > 0);
    h_db_drop(&db);
}

/* A scale-0 histogram literal with `a` values in bucket -3 (0.125, 0.25] (point 1/6) and
 * `b` in bucket bi (point 4/3 * 2^bi), written into buf. */
static const char *s_h2(char *buf, size_t cap, int a, int b, int bi)
{
    if (a == 0) {
        snprintf(buf, cap, "ww_hist_make(0, %d, 1, %g, %g, 0, 0, 0, %d, '{%d}')", b, ldexp(1.1, bi),
                 ldexp(1.9, bi), bi, b);
    } else {
        snprintf(buf, cap,
                 "ww_hist_make(0, %d, 1, 0.2, %g, 0, 0, 0, -3, ARRAY[%d]::bigint[] ||"
                 " array_fill(0::bigint, ARRAY[%d]) || ARRAY[%d]::bigint[])",
                 a + b, b ? ldexp(1.9, bi) : 0.25, a, bi + 3 - 1, b);
    }
    return buf;
}

/* A window (or rollup) row: ttft from s_h2(a, b, bi); queue, tpot, e2e hold 1, 2 and 3
 * values in bucket 3 (8, 16] so that the totals name the column. */
static void s_insert(h_db_t *db, const char *table, const char *when, const char *key,
                     const char *model, int a, int b, int bi, const char *requests)
{
    char h[512], sql[2048];
    s_h2(h, sizeof h, a, b, bi);
#define S_OTHER(n) "ww_hist_make(0, " #n ", 10, 10, 10, 0, 0, 0, 3, '{" #n "}')"
    const char *q = S_OTHER(1), *tp = S_OTHER(2), *e = S_OTHER(3);
    if (strcmp(table, "latency_windows") == 0) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO latency_windows VALUES (" T0 " + interval '%s', '%s', '%s', 1, %s,"
                 " 0, 0, %s, %s, %s, %s)",
                 when, key, model, requests, q, h, tp, e);
    } else {
        snprintf(sql, sizeof sql,
                 "INSERT INTO latency_rollup_1m VALUES (" T0 " + interval '%s', '%s', '%s', 1,"
                 " %s, 0, 0, %s, %s, %s, %s)",
                 when, key, model, requests, q, h, tp, e);
    }
    PQclear(h_query(db, sql));
}

/* Windows and rollups of phases A and B (the rollups deliberately differ from the windows,
 * so that each test sees which source was read). */
static void s_latency_fixture(h_db_t *db)
{
    PQclear(h_query(db, "INSERT INTO nodes (node_id, agent_id, phase) VALUES ('n1', 'a', 'A'),"
                        " ('n2', 'a', 'A'), ('n3', 'a', 'B')"));
    /* requests: ok, error, timeout, rejected */
    s_insert(db, "latency_windows", "0 s", "n1", "m1", 4, 1, 0, "5, 0, 0, 0");
    s_insert(db, "latency_windows", "30 s", "n2", "m2", 2, 2, 1, "3, 1, 0, 0");
    s_insert(db, "latency_windows", "60 s", "n1", "m1", 1, 0, 0, "1, 0, 1, 1");
    s_insert(db, "latency_windows", "0 s", "n3", "m1", 0, 10, 1, "10, 0, 0, 0");
    s_insert(db, "latency_windows", "120 s", "n1", "m1", 0, 7, 2, "7, 7, 0, 0");
    s_insert(db, "latency_windows", "-1 s", "n2", "m1", 0, 9, 2, "9, 9, 0, 0");
    s_insert(db, "latency_rollup_1m", "0 min", "A", "m1", 10, 5, 0, "100, 1, 2, 3");
    s_insert(db, "latency_rollup_1m", "1 min", "A", "m2", 0, 3, 1, "50, 0, 0, 0");
    s_insert(db, "latency_rollup_1m", "9 min", "A", "m1", 0, 2, 0, "20, 0, 0, 5");
    s_insert(db, "latency_rollup_1m", "10 min", "A", "m1", 0, 100, 0, "1000, 0, 0, 0");
    s_insert(db, "latency_rollup_1m", "-1 min", "A", "m1", 0, 100, 0, "1000, 0, 0, 0");
    s_insert(db, "latency_rollup_1m", "0 min", "B", "m1", 0, 50, 0, "1, 1, 1, 1");
    /* A rollup at a finer scale (bucket 0 at scale 1: (1, 2^0.5], point 1.17): merged at
     * scale 0 into (1, 2], still above 1 s. */
    PQclear(h_query(
        db, "INSERT INTO latency_rollup_1m SELECT " T0 " + interval '2 min', 'A',"
            " 'm2', 1, 0, 0, 0, 0, 0, 0, q, h, q, q FROM (SELECT ww_hist_make(1, 1, 1.2, 1.2,"
            " 1.2, 0, 0, 0, 0, '{1}') AS h, ww_hist_make(0, 0, 0, NULL, NULL, 0, 0,"
            " 0, 0, '{}') AS q) s"));
}

/* "good/total" of ww_sli, e.g. "7/10". */
static void s_sli(h_db_t *db, const char *phase, const char *model, const char *metric,
                  const char *threshold, const char *from, const char *to, const char *want)
{
    char sql[1024], got[64];
    snprintf(sql, sizeof sql,
             "SELECT good || '/' || total FROM ww_sli('%s', '%s', '%s', %s, " T0
             " + interval '%s', " T0 " + interval '%s')",
             phase, model, metric, threshold, from, to);
    PGresult *r = h_query(db, sql);
    assert_int_equal(PQntuples(r), 1);
    snprintf(got, sizeof got, "%s", PQgetisnull(r, 0, 0) ? "NULL" : PQgetvalue(r, 0, 0));
    PQclear(r);
    if (strcmp(got, want) != 0) {
        fail_msg("ww_sli(%s, %s, %s, %s, +%s, +%s) = %s, want %s", phase, model, metric, threshold,
                 from, to, got, want);
    }
}

static void test_sli_latency_raw_windows(void **state)
{
    (void)state;
    h_db_t db;
    s_db(&db, "slo_sw");
    s_latency_fixture(&db);
    /* [T, T+2min) of phase A: windows at 0 s (n1 m1: 4 fast, 1 at 4/3), 30 s (n2 m2: 2
     * fast, 2 at 8/3), 60 s (n1 m1: 1 fast); not n3 (phase B), not 120 s, not -1 s. */
    s_sli(&db, "A", "*", "ttft", "1.0", "0 s", "119 s", "7/10");
    s_sli(&db, "A", "m1", "ttft", "1.0", "0 s", "119 s", "5/6");
    s_sli(&db, "A", "m2", "ttft", "1.0", "0 s", "119 s", "2/4");
    s_sli(&db, "A", "*", "ttft", "2.0", "0 s", "119 s", "8/10");
    s_sli(&db, "A", "*", "ttft", "3.0", "0 s", "119 s", "10/10");
    s_sli(&db, "A", "m3", "ttft", "1.0", "0 s", "119 s", "0/0");
    s_sli(&db, "B", "*", "ttft", "1.0", "0 s", "119 s", "0/10");
    s_sli(&db, "C", "*", "ttft", "1.0", "0 s", "119 s", "0/0");
    /* Half-open: [30 s, 60 s) holds the 30 s window only; [-1 s, 0 s) the -1 s one. */
    s_sli(&db, "A", "*", "ttft", "1.0", "30 s", "60 s", "2/4");
    s_sli(&db, "A", "*", "ttft", "1.0", "-1 s", "0 s", "0/9");
    s_sli(&db, "A", "*", "ttft", "1.0", "1 min", "1 min", "0/0");
    s_sli(&db, "A", "*", "ttft", "1.0", "2 min", "0 s", "0/0");
    /* The metric picks the column: queue 1, tpot 2, e2e 3 values per window (at 8..16 s). */
    s_sli(&db, "A", "*", "queue", "1.0", "0 s", "119 s", "0/3");
    s_sli(&db, "A", "*", "tpot", "1.0", "0 s", "119 s", "0/6");
    s_sli(&db, "A", "*", "e2e", "1.0", "0 s", "119 s", "0/9");
    s_sli(&db, "A", "*", "e2e", "20", "0 s", "119 s", "9/9");
    /* Below 2 minutes, raw windows: [T, T+1min59s) holds 0, 30 and 60 s. From 2 minutes
     * on, the rollups (migration 0008): [T, T+2min) is the 0 min row (10 at or below 1 s of
     * 15) and the 1 min row (3 above). */
    s_sli(&db, "A", "*", "ttft", "1.0", "0 s", "2 min", "10/18");
    h_db_drop(&db);
}

static void test_sli_latency_rollups(void **state)
{
    (void)state;
    h_db_t db;
    s_db(&db, "slo_sr");
    s_latency_fixture(&db);
    /* [T, T+10min) of phase A from the rollups: 0 min m1 (10 fast, 5 at 4/3), 1 min m2 (3
     * at 8/3), 2 min m2 (1 at 1.17, scale 1), 9 min m1 (2 at 4/3); not 10 min, -1 min, B. */
    s_sli(&db, "A", "*", "ttft", "1.0", "0 s", "10 min", "10/21");
    s_sli(&db, "A", "m1", "ttft", "1.0", "0 s", "10 min", "10/17");
    s_sli(&db, "A", "m2", "ttft", "1.0", "0 s", "10 min", "0/4");
    s_sli(&db, "A", "m2", "ttft", "2.0", "0 s", "10 min", "1/4");
    s_sli(&db, "B", "*", "ttft", "1.0", "0 s", "10 min", "0/50");
    s_sli(&db, "B", "m2", "ttft", "1.0", "0 s", "10 min", "0/0");
    s_sli(&db, "A", "*", "ttft", "1.0", "1 min", "11 min", "0/106");
    s_sli(&db, "A", "*", "ttft", "1.0", "-1 min", "9 min", "10/119");
    s_sli(&db, "A", "*", "e2e", "20", "0 s", "10 min", "9/9");
    s_sli(&db, "A", "*", "queue", "1.0", "0 s", "10 min", "0/3");
    s_sli(&db, "C", "*", "ttft", "1.0", "0 s", "1 day", "0/0");
    h_db_drop(&db);
}

/* ww_sli over the reference: every minute of [from, to) merged, good = count - above. */
static void s_sli_equals_minutes(h_db_t *db, const char *model, const char *metric, const char *thr,
                                 const char *from, const char *to)
{
    char sql[2048];
    if (strcmp(metric, "availability") == 0) {
        snprintf(sql, sizeof sql,
                 "SELECT (SELECT good || '/' || total FROM ww_sli('P', '%s', '%s', %s, %s, %s)) ="
                 " (SELECT coalesce(sum(requests_ok), 0) || '/' || coalesce(sum(requests_ok"
                 "  + requests_error + requests_timeout + requests_rejected), 0)"
                 "  FROM latency_rollup_1m WHERE phase = 'P' AND ('%s' = '*' OR model = '%s')"
                 "   AND time >= %s AND time < %s)",
                 model, metric, thr, from, to, model, model, from, to);
    } else {
        snprintf(sql, sizeof sql,
                 "SELECT (SELECT good || '/' || total FROM ww_sli('P', '%s', '%s', %s, %s, %s)) ="
                 " (SELECT (coalesce(ww_hist_count(m), 0) - ww_hist_count_above(m, %s)) || '/' ||"
                 "         coalesce(ww_hist_count(m), 0)"
                 "  FROM (SELECT ww_merge(%s) AS m FROM latency_rollup_1m"
                 "        WHERE phase = 'P' AND ('%s' = '*' OR model = '%s')"
                 "          AND time >= %s AND time < %s) x)",
                 model, metric, thr, from, to, thr, metric, model, model, from, to);
    }
    PGresult *r = h_query(db, sql);
    if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
        PQclear(r);
        snprintf(sql, sizeof sql,
                 "SELECT good || '/' || total FROM ww_sli('P', '%s', '%s', %s, %s, %s)", model,
                 metric, thr, from, to);
        r = h_query(db, sql);
        fail_msg("ww_sli(P, %s, %s, %s, %s, %s) = %s differs from merging the minutes", model,
                 metric, thr, from, to, PQgetvalue(r, 0, 0));
    }
    PQclear(r);
}

/* Migration 0010: from 3 hours, ww_sli takes whole hours (of every metric, availability too)
 * from latency_rollup_1h where an hour
 * row still holds all its minutes (0018: or the hour is below the tier builder's hours_done
 * and not recorded dirty), and the minutes elsewhere: always the same result as merging
 * every minute (hours not built yet, late minutes, a wrong hour row that no longer matches,
 * any session time zone), and the hour rows are used when they match. The database is
 * fresh: its hours_done is the hour it was migrated in, after every hour of the test. */
static void test_sli_hourly_rollups_equal_the_minutes(void **state)
{
    (void)state;
    h_db_t db;
    s_db(&db, "slo_1h");
    /* 40 complete hours of minutes, two models, histograms at scales 0-2 with moving offsets
     * and 1-2 windows per minute. */
    PQclear(h_query(&db, "CREATE TABLE b AS SELECT date_trunc('hour', now(), 'UTC')"
                         " - interval '40 hours' AS t"));
    PQclear(h_query(&db,
                    "INSERT INTO latency_rollup_1m SELECT b.t + i * interval '1 minute', 'P', m,"
                    " 1 + i % 2, 5, 1, 0, 0, 10, 20, h, h, h, h FROM b, generate_series(0, 2399) i,"
                    " unnest(ARRAY['m1', 'm2']) m, LATERAL (SELECT ww_hist_make(i % 3, 6 + i % 2,"
                    " 10.0, 0.01, 100.0, 0, 0, 0, (i % 7) - 3 + length(m),"
                    " ARRAY[1, 2 + i % 2, 3]::bigint[]) AS h) x"));
    const char *from = "(SELECT t + interval '17 min' FROM b)";
    const char *to = "(SELECT t + interval '35 hours 3 min' FROM b)";
    const char *to_hour = "(SELECT t + interval '39 hours' FROM b)";
    /* No hour rows yet (the migration ran on an empty database): the minutes. */
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM latency_rollup_1h"), 0);
    s_sli_equals_minutes(&db, "m1", "ttft", "1.7", from, to);
    /* Build them: 40 hours x 2 models, each the merge of its minutes. */
    assert_int_equal(h_query_ll(&db, "SELECT ww_rollup_hours('-infinity', now())"), 80);
    assert_int_equal(h_query_ll(&db, "SELECT ww_rollup_hours('-infinity', now())"), 0);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM latency_rollup_1h h WHERE windows <>"
                                     " (SELECT sum(windows) FROM latency_rollup_1m r WHERE"
                                     " r.model = h.model AND r.time >= h.time"
                                     " AND r.time < h.time + interval '1 hour')"),
                     0);
    const char *metrics[] = {"ttft", "tpot", "e2e", "queue"};
    const char *thrs[] = {"0.3", "1.7", "6"};
    for (size_t k = 0; k < 4; k++) {
        for (size_t j = 0; j < 3; j++) {
            s_sli_equals_minutes(&db, "m1", metrics[k], thrs[j], from, to);
            s_sli_equals_minutes(&db, "*", metrics[k], thrs[j], from, to);
        }
    }
    /* The tiers started before these hours (start): the builder's invariant holds there
     * (an hour row for every hour of minutes), and only the minutes outside it are read. */
    PQclear(h_query(&db, "UPDATE ww_tier_state SET start = b.t, truncated_through = b.t,"
                         " compacted_through = b.t FROM b"));
    for (size_t k = 0; k < 4; k++) {
        s_sli_equals_minutes(&db, "m1", metrics[k], "1.7", from, to);
        s_sli_equals_minutes(&db, "*", metrics[k], "0.3", from, to);
    }
    s_sli_equals_minutes(&db, "m2", "ttft", "1.7", from, to_hour); /* ends on an hour */
    s_sli_equals_minutes(&db, "m2", "ttft", "1.7", "(SELECT t FROM b)", to_hour);
    s_sli_equals_minutes(&db, "m1", "availability", "NULL", from, to);
    s_sli_equals_minutes(&db, "*", "availability", "NULL", from, to);
    s_sli_equals_minutes(&db, "m2", "availability", "NULL", "(SELECT t FROM b)", to_hour);
    /* The hour rows are what is read: one made wrong (same window count) shows. */
    PQclear(h_query(&db, "UPDATE latency_rollup_1h SET ttft = " H10 ","
                         " requests_ok = requests_ok + 1000 WHERE model = 'm1'"
                         " AND time = (SELECT t + interval '10 hours' FROM b)"));
    char asql[1024];
    snprintf(asql, sizeof asql,
             "SELECT good - (SELECT sum(requests_ok) FROM latency_rollup_1m WHERE model = 'm1'"
             " AND time >= %s AND time < %s) FROM ww_sli('P', 'm1', 'availability', NULL, %s, %s)",
             from, to, from, to);
    assert_int_equal(h_query_ll(&db, asql), 1000);
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT total FROM ww_sli('P', 'm1', 'ttft', 1.7, %s, %s)", from, to);
    long long with_wrong = h_query_ll(&db, sql);
    snprintf(sql, sizeof sql,
             "SELECT ww_hist_count(ww_merge(ttft)) FROM latency_rollup_1m WHERE model = 'm1'"
             " AND time >= %s AND time < %s",
             from, to);
    long long minutes = h_query_ll(&db, sql);
    assert_true(with_wrong != minutes);
    /* A late minute in that hour, as the collector writes it: the minute changes and the
     * hour is recorded in ww_tier_dirty in the same transaction (0018). The hour is below
     * the tier builder's hours_done, whose rows are otherwise taken as they are; recorded
     * dirty, it is checked again: its row no longer holds all its minutes, so the minutes
     * are read (the wrong row is ignored) until the hour is rebuilt. */
    PQclear(h_query(&db, "BEGIN; UPDATE latency_rollup_1m SET windows = windows + 1, ttft = "
                         "ww_hist_add(ttft, " H10 ") WHERE model = 'm1'"
                         " AND time = (SELECT t + interval '10 hours 7 min' FROM b);"
                         " INSERT INTO ww_tier_dirty SELECT 'l', 'n1', t + interval '10 hours'"
                         " FROM b; COMMIT"));
    s_sli_equals_minutes(&db, "m1", "ttft", "1.7", from, to);
    s_sli_equals_minutes(&db, "*", "ttft", "1.7", from, to);
    s_sli_equals_minutes(&db, "m1", "availability", "NULL", from, to);
    assert_int_equal(h_query_ll(&db, "SELECT ww_rollup_hours(now() - interval '3 days', now())"),
                     1);
    s_sli_equals_minutes(&db, "m1", "ttft", "1.7", from, to);
    /* Another session time zone (half an hour off UTC): hours stay UTC hours. */
    PQclear(h_query(&db, "SET TimeZone = 'Asia/Kolkata'"));
    s_sli_equals_minutes(&db, "m1", "e2e", "1.7", from, to);
    assert_int_equal(h_query_ll(&db, "SELECT ww_rollup_hours('-infinity', now())"), 0);
    PQclear(h_query(&db, "RESET TimeZone"));
    /* Retention deletes hour rows with the minutes. */
    assert_int_equal(h_query_ll(&db, "SELECT ww_drop_old_data(0, 1)"), 0);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM latency_rollup_1h"
                                     " WHERE time < current_date - 1"),
                     0);
    h_db_drop(&db);
}

/* Schema 19: the burn-rate hour tier. The tier builder's hours of slo_burn_1h equal their
 * recomputation from slo_evaluations (highest burn rate and count per hour, SLO and
 * window), and the burn-rate panel's function gives over 7 days (hour rows below
 * hours_done, evaluations above) what the evaluations give per hour, and over 1 hour what
 * they give per minute. */
static void test_burn_rate_hours(void **state)
{
    (void)state;
    h_db_t db;
    s_db(&db, "slo_burn");
    PQclear(h_query(&db, "CREATE TABLE b AS SELECT date_trunc('hour', now(), 'UTC')"
                         " - interval '30 hours' AS t"));
    PQclear(h_query(&db, "UPDATE ww_tier_state SET start = b.t, minutes_done = b.t,"
                         " hours_done = b.t, compacted_through = b.t, truncated_through = b.t,"
                         " watermark = date_trunc('minute', now(), 'UTC') FROM b"));
    /* Every 7 minutes from 30 hours before the hour to now, two SLOs of two phases, three
     * windows. (Up to now: a series that stopped at the hour left the last hour empty in the
     * last minute of every hour, and the 1-hour range below with it.) */
    PQclear(h_query(&db, "INSERT INTO slo_evaluations SELECT b.t + i * interval '7 minutes', p, s,"
                         " CASE s WHEN 'ttft' THEN 'm1' ELSE '*' END, 'ttft', 60, w, 90, 100,"
                         " ((i * 37 + length(p || s || w) * 11) % 97) / 7.0"
                         " FROM b, generate_series(0, 31 * 60 / 7) i, unnest('{A,B}'::text[]) p,"
                         " unnest('{ttft,avail}'::text[]) s, unnest('{5m,1h,6h}'::text[]) w"
                         " WHERE b.t + i * interval '7 minutes' < now()"));
    PQclear(h_query(&db, "SELECT * FROM ww_tier_build(100000, 100000)"));
    assert_int_equal(
        h_query_ll(&db, "SELECT count(*) FROM (SELECT time, burn_max, evaluations, phase, slo,"
                        " window_name, model FROM slo_burn_1h"
                        " EXCEPT ALL SELECT date_trunc('hour', time, 'UTC'), max(burn_rate),"
                        " count(*), phase, slo, window_name, max(model) FROM slo_evaluations"
                        " WHERE time < (SELECT hours_done FROM ww_tier_state)"
                        " GROUP BY 1, 4, 5, 6) x"),
        0);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM slo_burn_1h"), 30 * 2 * 2 * 3);
    static const struct {
        const char *range, *step;
    } r[] = {{"7 days", "1 hour"}, {"1 hour", "1 minute"}};
    for (size_t k = 0; k < 2; k++) {
        char sql[1024];
        snprintf(sql, sizeof sql,
                 "WITH f AS (SELECT * FROM ww_burn_series(now() - interval '%s', now(),"
                 " interval '%s')), e AS (SELECT date_bin(interval '%s', time,"
                 " '2000-01-01 00:00:00+00'), phase, slo, model, window_name, max(burn_rate)"
                 " FROM slo_evaluations WHERE time >= now() - interval '%s' AND time < now()"
                 " GROUP BY 1, 2, 3, 4, 5)"
                 " SELECT (SELECT count(*) FROM f) * 1000000 + (SELECT count(*) FROM"
                 " (SELECT * FROM f EXCEPT ALL SELECT * FROM e) x) + (SELECT count(*) FROM"
                 " (SELECT * FROM e EXCEPT ALL SELECT * FROM f) y)",
                 r[k].range, r[k].step, r[k].step, r[k].range);
        long long v = h_query_ll(&db, sql);
        if (v % 1000000 != 0 || v == 0) {
            fail_msg("ww_burn_series over %s: %lld rows, %lld differ from the evaluations",
                     r[k].range, v / 1000000, v % 1000000);
        }
    }
    h_db_drop(&db);
}

static void test_sli_availability(void **state)
{
    (void)state;
    h_db_t db;
    s_db(&db, "slo_sa");
    s_latency_fixture(&db);
    /* Raw windows [T, T+119s), phase A: ok 5 + 3 + 1 = 9 of 5 + 4 + 3 = 12. */
    s_sli(&db, "A", "*", "availability", "NULL", "0 s", "119 s", "9/12");
    s_sli(&db, "A", "*", "availability", "NULL", "0 s", "2 min", "150/156"); /* rollups */
    s_sli(&db, "A", "m1", "availability", "0.5", "0 s", "119 s", "6/8");
    s_sli(&db, "A", "m2", "availability", "NULL", "0 s", "119 s", "3/4");
    s_sli(&db, "B", "*", "availability", "NULL", "0 s", "119 s", "10/10");
    s_sli(&db, "C", "*", "availability", "NULL", "0 s", "119 s", "0/0");
    /* Rollups [T, T+10min), phase A: ok 100 + 50 + 20 + 0 = 170 of 106 + 50 + 25 + 0. */
    s_sli(&db, "A", "*", "availability", "NULL", "0 s", "10 min", "170/181");
    s_sli(&db, "A", "m1", "availability", "NULL", "0 s", "10 min", "120/131");
    s_sli(&db, "B", "*", "availability", "NULL", "0 s", "10 min", "1/4");
    s_sli(&db, "C", "*", "availability", "NULL", "0 s", "10 min", "0/0");
    h_db_drop(&db);
}

/* Runs sql; returns its SQLSTATE ("" on success) in state, and the message in msg. */
static void s_exec(PGconn *c, const char *sql, char *state, size_t scap, char *msg, size_t mcap)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    snprintf(state, scap, "%s", st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? "" : s ? s : "?");
    if (msg) {
        snprintf(msg, mcap, "%s", PQerrorMessage(c));
    }
    PQclear(r);
}

static void test_sli_errors(void **state)
{
    (void)state;
    h_db_t db;
    s_db(&db, "slo_se");
    char st[16], msg[512];
    s_exec(db.conn, "SELECT * FROM ww_sli('A', '*', 'latencyy', 1, now() - interval '1 h', now())",
           st, sizeof st, msg, sizeof msg);
    assert_string_equal(st, "22023");
    if (!strstr(msg, "latencyy")) {
        fail_msg("the error does not name the metric: %s", msg);
    }
    s_exec(db.conn, "SELECT * FROM ww_sli('A', '*', 'TTFT', 1, now() - interval '1 m', now())", st,
           sizeof st, NULL, 0);
    assert_string_equal(st, "22023");
    s_exec(db.conn, "SELECT * FROM ww_sli('A', '*', NULL, 1, now() - interval '1 m', now())", st,
           sizeof st, NULL, 0);
    assert_string_equal(st, "22023");
    /* A latency metric needs a threshold. */
    s_exec(db.conn, "SELECT * FROM ww_sli('A', '*', 'ttft', NULL, now() - interval '1 m', now())",
           st, sizeof st, NULL, 0);
    assert_string_equal(st, "22023");
    /* Every known metric on an empty database: one row (0, 0), never NULL. */
    assert_int_equal(h_query_ll(&db,
                                "SELECT count(*) FROM unnest('{ttft,tpot,e2e,queue,"
                                "availability}'::text[]) m, unnest('{1 min, 1 h}'::interval[]) d,"
                                " LATERAL ww_sli('A', '*', m, 1, now() - d, now()) s"
                                " WHERE s.good = 0 AND s.total = 0"),
                     10);
    h_db_drop(&db);
}

static void s_sample(h_db_t *db, const char *node, const char *when, double power, double outlet,
                     double hotspot, double tokens, int throttled)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO node_samples VALUES (" T0 " + interval '%s', '%s', %g, 20, %g, 30,"
             " %g, 0.5, %g, 0, 0, 0, %s, 1)",
             when, node, power, outlet, hotspot, tokens, throttled ? "true" : "false");
    PQclear(h_query(db, sql));
}

/* One row of ww_phase_capacity as text, '|' between the columns. */
#define S_CAPACITY                                                                                 \
    "SELECT reporting_nodes || '|' || healthy_nodes || '|' || delivered_kw || '|' || power_kw"     \
    " || '|' || coalesce(hotspot_max_c::text, 'null') || '|' || coalesce(outlet_max_c::text,"      \
    " 'null') || '|' || coalesce(throttled_share::numeric(10, 6)::text, 'null') || '|' ||"         \
    " coalesce(j_per_token::text, 'null') FROM ww_phase_capacity('%s', " T0                        \
    " + interval '%s', " T0 " + interval '%s', %s)"

static void test_phase_capacity(void **state)
{
    (void)state;
    h_db_t db;
    s_db(&db, "slo_pc");
    PQclear(h_query(&db, "INSERT INTO nodes (node_id, agent_id, phase, rated_kw) VALUES"
                         " ('c1', 'a', 'A', 10), ('c2', 'a', 'A', 20), ('c3', 'a', 'A', 40),"
                         " ('c4', 'a', 'A', 80), ('c5', 'a', 'B', 160)"));
    /* c1: healthy at its latest sample (30 s). */
    s_sample(&db, "c1", "0 s", 1000, 40, 70, 100, 0);
    s_sample(&db, "c1", "30 s", 1500, 41, 72, 100, 0);
    s_sample(&db, "c1", "60 s", 9999, 99, 99, 1, 1); /* at p_to: outside */
    /* c2: throttled at its latest sample. */
    s_sample(&db, "c2", "0 s", 2000, 42, 71, 200, 0);
    s_sample(&db, "c2", "40 s", 2500, 43.5, 75, 50, 1);
    /* c3: throttled before, too hot at its latest sample. */
    s_sample(&db, "c3", "5 s", 500, 44, 80, 50, 1);
    s_sample(&db, "c3", "10 s", 3000, 45.25, 95, 300, 0);
    /* c4: stale (before p_from); c5: another phase. */
    s_sample(&db, "c4", "-1 s", 8888, 98, 50, 1300, 0);
    s_sample(&db, "c5", "10 s", 7777, 97, 99, 1000, 1);

    struct {
        const char *phase, *from, *to, *hot, *want;
    } cases[] = {
        /* 3 reporting, c1 healthy (10 kW), latest power 1500 + 2500 + 3000 W, samples: 6,
         * 2 throttled, 10500 W over 800 tokens/s = 13.125 J/token. */
        {"A", "0 s", "60 s", "90", "3|1|10|7|95|45.25|0.333333|13.125"},
        {"A", "0 s", "60 s", "95", "3|2|50|7|95|45.25|0.333333|13.125"},
        {"A", "0 s", "60 s", "NULL", "3|2|50|7|95|45.25|0.333333|13.125"},
        /* [0 s, 10 s): c1 and c2 at 0 s, c3 at 5 s (throttled). */
        {"A", "0 s", "10 s", "90", "3|2|30|3.5|80|44|0.333333|10"},
        /* [-1 s, 1 s): c4 reports now; c1 and c2 at 0 s. */
        {"A", "-1 s", "1 s", "90", "3|3|110|11.888|71|98|0.000000|7.43"},
        {"B", "0 s", "60 s", "90", "1|0|0|7.777|99|97|1.000000|7.777"},
        /* No sample: one row of zeros and NULLs. */
        {"C", "0 s", "60 s", "90", "0|0|0|0|null|null|null|null"},
        {"A", "1 h", "2 h", "90", "0|0|0|0|null|null|null|null"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char sql[1024];
        snprintf(sql, sizeof sql, S_CAPACITY, cases[i].phase, cases[i].from, cases[i].to,
                 cases[i].hot);
        PGresult *r = h_query(&db, sql);
        assert_int_equal(PQntuples(r), 1);
        if (strcmp(PQgetvalue(r, 0, 0), cases[i].want) != 0) {
            fail_msg("ww_phase_capacity(%s, +%s, +%s, %s) = %s, want %s", cases[i].phase,
                     cases[i].from, cases[i].to, cases[i].hot, PQgetvalue(r, 0, 0), cases[i].want);
        }
        PQclear(r);
    }
    /* No tokens at all: J/token NULL, not a division by zero. */
    PQclear(h_query(&db, "INSERT INTO nodes (node_id, agent_id, phase, rated_kw) VALUES"
                         " ('d1', 'a', 'D', 1)"));
    s_sample(&db, "d1", "0 s", 100, 30, 60, 0, 0);
    assert_true(isnan(s_dbl(&db, "SELECT j_per_token FROM ww_phase_capacity('D', " T0 ", " T0
                                 " + interval '1 min', 90)")));
    /* Readings not measured (NULL, schema 22): h1 measures power only (a host), h2 all of
     * them. h1 is healthy (no throttle or hotspot against it), its power counts, and it
     * weighs in neither the throttled share nor J/token (it has no token rate). */
    PQclear(h_query(&db, "INSERT INTO nodes (node_id, agent_id, phase, rated_kw) VALUES"
                         " ('h1', 'a', 'H', 5), ('h2', 'a', 'H', 7)"));
    PQclear(h_query(&db, "INSERT INTO node_samples (time, node_id, power_w) VALUES"
                         " (" T0 " + interval '5 s', 'h1', 400)"));
    s_sample(&db, "h2", "5 s", 1000, 40, 99, 100, 1);
    char sql[1024];
    snprintf(sql, sizeof sql, S_CAPACITY, "H", "0 s", "60 s", "90");
    PGresult *r = h_query(&db, sql);
    /* 2 reporting, h1 healthy (5 kW), power 0.4 + 1 kW, max hotspot and outlet h2's, 1
     * throttled of the 1 sample that measured throttling, 1000 W / 100 tokens/s. */
    if (strcmp(PQgetvalue(r, 0, 0), "2|1|5|1.4|99|40|1.000000|10") != 0) {
        fail_msg("with readings not measured: %s", PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    h_db_drop(&db);
}

/* One latency_rollup_1m or _1h row of phase S, model m and site `site` at T0 + `at`, every
 * histogram H10, `windows` windows. */
static void s_site_rollup(h_db_t *db, const char *tier, const char *site, const char *at,
                          int windows)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO latency_rollup_%s (time, phase, model, site, windows, requests_ok,"
             " requests_error, requests_timeout, requests_rejected, prompt_tokens, output_tokens,"
             " queue, ttft, tpot, e2e) VALUES (" T0 " + interval '%s', 'S', 'm', '%s', %d, 9, 1,"
             " 0, 0, 100, 200, " H10 ", " H10 ", " H10 ", " H10 ")",
             tier, at, site, windows);
    PQclear(h_query(db, sql));
}

/* Schema 24 (issue 20, sites feeding a fleet database): a phase spread over sites.
 * Its capacity per nodes.site label adds up to the phase's figures, a label whose nodes of
 * the phase did not report having its row of zeros; ww_fleet_capacity adds the newest
 * site_capacity row of each site, still counting a site whose newest row is stale and
 * naming it; ww_sli merges the sites' latency rows, and with p_tiers_only (a fleet database:
 * no raw windows) reads the rollups below 2 minutes too and an hour row only where it holds
 * its own site's minutes. */
static void test_sites_add_up(void **state)
{
    (void)state;
    h_db_t db;
    s_db(&db, "slo_sites");
    PQclear(h_query(&db, "INSERT INTO nodes (node_id, agent_id, site, phase, rated_kw) VALUES"
                         " ('c1', 'a', 'dc-a', 'A', 10), ('c2', 'a', 'dc-a', 'A', 20),"
                         " ('c3', 'b', 'dc-b', 'A', 40), ('c6', 'c', 'dc-c', 'A', 5),"
                         " ('c7', 'c', 'dc-c', 'B', 7)"));
    /* The samples of test_phase_capacity: the same figures, now from three labels. */
    s_sample(&db, "c1", "0 s", 1000, 40, 70, 100, 0);
    s_sample(&db, "c1", "30 s", 1500, 41, 72, 100, 0);
    s_sample(&db, "c2", "0 s", 2000, 42, 71, 200, 0);
    s_sample(&db, "c2", "40 s", 2500, 43.5, 75, 50, 1);
    s_sample(&db, "c3", "5 s", 500, 44, 80, 50, 1);
    s_sample(&db, "c3", "10 s", 3000, 45.25, 95, 300, 0);
    s_sample(&db, "c7", "10 s", 7777, 97, 99, 1000, 1);
    char sql[2048];
    snprintf(sql, sizeof sql, S_CAPACITY, "A", "0 s", "60 s", "90");
    PGresult *r = h_query(&db, sql);
    if (strcmp(PQgetvalue(r, 0, 0), "3|1|10|7|95|45.25|0.333333|13.125") != 0) {
        fail_msg("ww_phase_capacity over three labels: %s", PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    r = h_query(&db, "SELECT string_agg(site || ':' || reporting_nodes || '/' || healthy_nodes"
                     " || '/' || delivered_kw || '/' || power_kw || '/' || throttled_samples"
                     " || '/' || throttle_samples || '/' || coalesce(power_w_tokened::text, '-'),"
                     " ' ' ORDER BY site) FROM ww_phase_capacity_sites('A', " T0 ", " T0
                     " + interval '60 s', 90)");
    /* dc-a: c1 healthy, c2 throttled at its latest; dc-b: c3 too hot; dc-c: c6 silent. */
    if (strcmp(PQgetvalue(r, 0, 0),
               "dc-a:2/1/10/4/1/4/7000 dc-b:1/0/0/3/1/2/3500 dc-c:0/0/0/0/0/0/-") != 0) {
        fail_msg("ww_phase_capacity_sites: %s", PQgetvalue(r, 0, 0));
    }
    PQclear(r);

    /* The fleet: each site's evaluations as site_capacity rows. dc-b's newest is 10 min
     * old, dc-a has an older row with other figures, and a row of phase B. */
    PQclear(h_query(&db, "INSERT INTO site_capacity SELECT * FROM ww_phase_capacity_sites('A', " T0
                         ", " T0 " + interval '60 s', 90)"));
    PQclear(h_query(&db, "UPDATE site_capacity SET time = CASE site WHEN 'dc-b'"
                         " THEN now() - interval '10 min' ELSE now() END"));
    PQclear(h_query(&db, "INSERT INTO site_capacity VALUES (now() - interval '1 h', 'dc-a', 'A',"
                         " 99, 99, 990, 99, 199, 199, 0, 99, 1, 1), (now(), 'dc-a', 'B', 1, 1,"
                         " 7, 7.7, 99, 97, 1, 1, 7777, 1000)"));
#define S_FLEET                                                                                    \
    "SELECT reporting_nodes || '|' || healthy_nodes || '|' || delivered_kw || '|' || power_kw"     \
    " || '|' || coalesce(hotspot_max_c::text, 'null') || '|' || coalesce(outlet_max_c::text,"      \
    " 'null') || '|' || coalesce(throttled_share::numeric(10, 6)::text, 'null') || '|' ||"         \
    " coalesce(j_per_token::text, 'null') || '|' || stale_sites::text || '|' || sites::text"       \
    " FROM ww_fleet_capacity('%s', '%s')"
    struct {
        const char *phase, *stale, *want;
    } fleet[] = {
        {"A", "5 min", "3|1|10|7|95|45.25|0.333333|13.125|{dc-b}|{dc-a,dc-b,dc-c}"},
        {"A", "1 h", "3|1|10|7|95|45.25|0.333333|13.125|{}|{dc-a,dc-b,dc-c}"},
        {"B", "5 min", "1|1|7|7.7|99|97|1.000000|7.777|{}|{dc-a}"},
        {"Z", "5 min", "0|0|0|0|null|null|null|null|{}|{}"},
    };
    for (size_t i = 0; i < sizeof fleet / sizeof fleet[0]; i++) {
        snprintf(sql, sizeof sql, S_FLEET, fleet[i].phase, fleet[i].stale);
        r = h_query(&db, sql);
        if (strcmp(PQgetvalue(r, 0, 0), fleet[i].want) != 0) {
            fail_msg("ww_fleet_capacity(%s, %s) = %s, want %s", fleet[i].phase, fleet[i].stale,
                     PQgetvalue(r, 0, 0), fleet[i].want);
        }
        PQclear(r);
    }
#undef S_FLEET

    /* Latency of phase S at sites x and y: the same minute T0 at both (one key apart), and
     * T0 + 1 min at y. H10 holds 10 values, 3 above 1 s. */
    s_site_rollup(&db, "1m", "x", "0 s", 1);
    s_site_rollup(&db, "1m", "y", "0 s", 1);
    s_site_rollup(&db, "1m", "y", "1 min", 1);
    /* Hour rows: x's holds its minute; y's claims 7 windows it does not hold. */
    s_site_rollup(&db, "1h", "x", "0 s", 1);
    s_site_rollup(&db, "1h", "y", "0 s", 7);
    struct {
        const char *from, *to, *tiers, *want;
    } sli[] = {
        {"0 s", "2 min", "false", "21/30"}, {"0 s", "2 min", "true", "21/30"},
        {"0 s", "1 min", "true", "14/20"}, /* below 2 minutes: the rollups all the same */
        {"0 s", "1 min", "false", "0/0"},  /* ... where the raw windows would be read */
        {"-1 h", "3 h", "true", "21/30"},  /* x's hour row, y's minutes */
        {"-1 h", "3 h", "false", "21/30"},
    };
    for (size_t i = 0; i < sizeof sli / sizeof sli[0]; i++) {
        snprintf(sql, sizeof sql,
                 "SELECT good || '/' || total FROM ww_sli('S', '*', 'ttft', 1.0, " T0
                 " + interval '%s', " T0 " + interval '%s', %s)",
                 sli[i].from, sli[i].to, sli[i].tiers);
        r = h_query(&db, sql);
        if (strcmp(PQgetvalue(r, 0, 0), sli[i].want) != 0) {
            fail_msg("ww_sli(S, [+%s, +%s), tiers_only %s) = %s, want %s", sli[i].from, sli[i].to,
                     sli[i].tiers, PQgetvalue(r, 0, 0), sli[i].want);
        }
        PQclear(r);
    }
    /* The availability SLI and the hour tier likewise: 9 ok of 10 per row. */
    assert_int_equal(s_ll(&db, "SELECT total FROM ww_sli('S', '*', 'availability', NULL, " T0
                               " - interval '1 h', " T0 " + interval '3 h', true)"),
                     30);
    h_db_drop(&db);
}

/* Runs sql as c; fails unless it succeeds (want "") or fails with SQLSTATE want. */
static void s_as(PGconn *c, const char *sql, const char *want)
{
    char st[16], msg[512];
    s_exec(c, sql, st, sizeof st, msg, sizeof msg);
    if (strcmp(st, want) != 0) {
        fail_msg("as %s: %s\nwant SQLSTATE '%s', got '%s': %s", PQuser(c), sql, want, st, msg);
    }
}

static PGconn *s_login(h_pg_t *pg, const char *user)
{
    char ci[256];
    snprintf(ci, sizeof ci, "host=%s port=5432 dbname=ww user=%s", pg->dir, user);
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK) {
        fail_msg("cannot connect as %s: %s", user, PQerrorMessage(c));
    }
    return c;
}

static void test_roles_on_slo_tables(void **state)
{
    (void)state;
    h_pg_t pg;
    h_db_t db;
    h_pg_start(&pg, &db, "slor");
    assert_true(ww_migrate(db.conn) >= 6);
    PQclear(h_query(&db, "CREATE ROLE slo_w LOGIN IN ROLE waferwatch_writer"));
    PQclear(h_query(&db, "CREATE ROLE slo_r LOGIN IN ROLE waferwatch_reader"));
    PGconn *w = s_login(&pg, "slo_w");
    /* What the evaluator does: upsert phases, status and alerts, append the rest. */
    s_as(w,
         "INSERT INTO phases (id, name, go_live, contracted_mw, capacity_breach_share,"
         " power_ceiling_mw, hotspot_max_c, outlet_max_c) VALUES ('A', 'a', '2030-01-01', 1,"
         " 0.9, 2, 90, 45) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
         "");
    s_as(w,
         "INSERT INTO phases (id, name, go_live, contracted_mw, capacity_breach_share,"
         " power_ceiling_mw, hotspot_max_c, outlet_max_c) VALUES ('A', 'a2', '2030-01-01', 1,"
         " 0.9, 2, 90, 45) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,"
         " updated_at = now()",
         "");
    s_as(w,
         "INSERT INTO slo_evaluations VALUES (now(), 'A', 'ttft-p99', 'm', 'ttft', 300, '5m',"
         " 99, 100, 1.0)",
         "");
    for (int i = 0; i < 2; i++) {
        s_as(w,
             "INSERT INTO slo_status VALUES ('A', 'ttft-p99', 'm', 'ttft', 0.99, 1.0, now(),"
             " 0.99, 0, '{\"5m\": 1.0}') ON CONFLICT (phase, slo) DO UPDATE SET time ="
             " EXCLUDED.time, burn_rates = EXCLUDED.burn_rates",
             "");
    }
    /* The lease (0023): taken over once expired, renewed by its term. */
    s_as(w,
         "UPDATE slo_leader SET term = term + 1, holder = 'h:1', since = clock_timestamp(),"
         " renewed_at = clock_timestamp(), expires_at = clock_timestamp() + interval '1 s'"
         " WHERE expires_at < clock_timestamp()",
         "");
    s_as(w, "UPDATE slo_leader SET expires_at = clock_timestamp() WHERE term = 1", "");
    s_as(w, "INSERT INTO slo_leader SELECT * FROM slo_leader", "42501");
    s_as(w, "DELETE FROM slo_leader", "42501");
    s_as(w,
         "WITH a AS (INSERT INTO alerts (alertname, phase, slo, model, severity, state,"
         " started_at, last_eval_at, summary, details, term) VALUES ('SLOBurnRate', 'A',"
         " 'ttft-p99', 'm', 'page', 'firing', now(), now(), 's', '{}', 1) RETURNING id,"
         " alertname, phase, slo, severity) INSERT INTO alert_transitions (alert_id, alertname,"
         " phase, slo, severity, to_state, details, term) SELECT id, alertname, phase, slo,"
         " severity, 'firing', '{}', 1 FROM a",
         "");
    s_as(w,
         "UPDATE alerts SET state = 'resolved', resolved_at = now(), term = 1 WHERE state ="
         " 'firing'",
         "");
    /* The fencing: a write of another term than the lease's, or of none, is refused by the
     * database (ww_slo_fence, SQLSTATE WW001), whoever writes it. */
    s_as(w, "UPDATE alerts SET last_eval_at = now(), term = 0", "WW001");
    s_as(w, "UPDATE alerts SET last_eval_at = now(), term = NULL", "WW001");
    s_as(w, "UPDATE alerts SET last_eval_at = now()", ""); /* keeps its term 1 */
    s_as(w,
         "INSERT INTO alert_transitions (alert_id, alertname, phase, slo, severity, to_state,"
         " details, term) SELECT id, alertname, phase, slo, severity, 'resolved', '{}', 2 FROM"
         " alerts",
         "WW001");
    s_as(w,
         "INSERT INTO alerts (alertname, phase, slo, model, severity, state, started_at,"
         " last_eval_at, summary, details) VALUES ('X', 'A', 'x', 'm', 'page', 'firing', now(),"
         " now(), 's', '{}')",
         "WW001");
    /* Deposed: the lease (expired above) taken over by term 2; term 1 writes no more. */
    s_as(w,
         "UPDATE slo_leader SET term = term + 1, holder = 'h:2', since = clock_timestamp(),"
         " renewed_at = clock_timestamp(), expires_at = clock_timestamp() + interval '1 min'"
         " WHERE expires_at < clock_timestamp()",
         "");
    s_as(w, "UPDATE alerts SET last_eval_at = now()", "WW001");
    s_as(w, "UPDATE alerts SET last_eval_at = now(), term = 2", "");
    s_as(w,
         "INSERT INTO capacity_evaluations VALUES (now(), 'A', true, 1, 1, 0.5, 1, 0.5, 0.4, 80,"
         " 40, 0, 10, true)",
         "");
    s_as(w,
         "SELECT * FROM ww_sli('A', '*', 'ttft', 1, now() - interval '1 h', now()),"
         " ww_sli('A', '*', 'availability', NULL, now() - interval '1 m', now()) a,"
         " ww_phase_capacity('A', now() - interval '1 m', now(), 90),"
         " ww_hist_count_above(NULL, 1)",
         "");
    /* The long windows read the hour rollups, which the evaluator builds (0010) but cannot
     * write by hand. */
    s_as(w,
         "SELECT * FROM ww_sli('A', '*', 'ttft', 1, now() - interval '30 days', now()),"
         " ww_rollup_hours(now() - interval '3 hours', now())",
         "");
    s_as(w, "DELETE FROM latency_rollup_1h", "42501");
    s_as(w, "INSERT INTO latency_rollup_1h SELECT * FROM latency_rollup_1h", "42501");
    /* No deleting, truncating or rewriting history. */
    const char *tables[] = {"phases",          "slo_status",        "alerts",
                            "slo_evaluations", "alert_transitions", "capacity_evaluations"};
    char sql[256];
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        snprintf(sql, sizeof sql, "DELETE FROM %s", tables[i]);
        s_as(w, sql, "42501");
        snprintf(sql, sizeof sql, "TRUNCATE %s", tables[i]);
        s_as(w, sql, "42501");
    }
    /* Retiring what is no longer configured and the heartbeat (0012): updates. */
    s_as(w, "UPDATE phases SET retired_at = now() WHERE id <> ALL ('{B}'::text[])", "");
    s_as(w, "UPDATE slo_status SET retired_at = now() WHERE retired_at IS NULL", "");
    for (int i = 0; i < 2; i++) {
        s_as(w,
             "INSERT INTO slo_evaluator AS e (id, evaluated_at, interval_s, phases, slos,"
             " loaded_at, host, pid) VALUES (true, now(), 30, 1, 1, now(), 'h', 1)"
             " ON CONFLICT (id) DO UPDATE SET evaluated_at = EXCLUDED.evaluated_at",
             "");
    }
    s_as(w, "DELETE FROM slo_evaluator", "42501");
    s_as(w, "UPDATE slo_evaluations SET good = 0", "42501");
    s_as(w, "UPDATE alert_transitions SET to_state = 'x'", "42501");
    s_as(w, "UPDATE capacity_evaluations SET breach = false", "42501");
    /* 0005's grants still hold. */
    s_as(w, "INSERT INTO streams (agent_id, epoch, last_seq) VALUES ('a', 1, 1)", "");
    s_as(w, "DELETE FROM streams", "42501");
    PQfinish(w);

    PGconn *r = s_login(&pg, "slo_r");
    s_as(r,
         "SELECT * FROM phases, slo_evaluations, slo_status, alerts, alert_transitions,"
         " capacity_evaluations",
         "");
    s_as(r,
         "SELECT * FROM ww_sli('A', 'm', 'e2e', 1, now() - interval '1 h', now()),"
         " ww_phase_capacity('A', now() - interval '1 m', now(), 90)",
         "");
    s_as(r, "INSERT INTO slo_evaluations VALUES (now(), 'A', 'x', 'm', 'ttft', 300, '5m', 1, 1, 0)",
         "42501");
    s_as(r, "SELECT * FROM slo_evaluator, ww_slo_budget, ww_phase_capacity_latest", "");
    s_as(r, "UPDATE slo_evaluator SET pid = 0", "42501");
    s_as(r, "UPDATE slo_status SET objective = 0", "42501");
    s_as(r, "UPDATE phases SET name = ''", "42501");
    s_as(r, "DELETE FROM alerts", "42501");
    PQfinish(r);
    h_pg_stop(&pg, &db);
}

/* Issue 15 item 2 (migration 0012): retired phases and SLOs stay in their tables as
 * history but leave the views of current state. */
static void test_retired_rows_leave_the_views(void **state)
{
    (void)state;
    h_db_t db;
    h_db_create(&db, "sloret");
    assert_true(ww_migrate(db.conn) >= 12);
    PQclear(h_query(&db, "INSERT INTO phases (id, name, go_live, contracted_mw,"
                         " capacity_breach_share, power_ceiling_mw, hotspot_max_c, outlet_max_c)"
                         " VALUES ('A', 'a', '2026-01-01', 1, 0.9, 1, 90, 45),"
                         " ('B', 'b', '2026-01-01', 1, 0.9, 1, 90, 45)"));
    PQclear(h_query(&db, "INSERT INTO slo_status (phase, slo, model, metric, objective, time,"
                         " burn_rates) VALUES ('A', 'kept', '*', 'availability', 0.99, now(),"
                         " '{}'), ('A', 'gone', '*', 'availability', 0.99, now(), '{}'),"
                         " ('B', 'x', '*', 'availability', 0.99, now(), '{}')"));
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM ww_slo_budget"), 3);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM ww_phase_capacity_latest"), 2);
    PQclear(h_query(&db, "UPDATE phases SET retired_at = now() WHERE id = 'B'"));
    PQclear(h_query(&db, "UPDATE slo_status SET retired_at = now() WHERE slo <> 'kept'"));
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM ww_slo_budget"), 1);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM ww_slo_budget WHERE slo = 'kept'"), 1);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM ww_phase_capacity_latest"), 1);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM slo_status"), 3); /* history */
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM phases"), 2);
    h_db_drop(&db);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_count_above_parts_and_boundaries),
    cmocka_unit_test(test_count_above_quantile_relation_and_exactness),
    cmocka_unit_test(test_sli_latency_raw_windows),
    cmocka_unit_test(test_sli_latency_rollups),
    cmocka_unit_test(test_sli_hourly_rollups_equal_the_minutes),
    cmocka_unit_test(test_burn_rate_hours),
    cmocka_unit_test(test_sli_availability),
    cmocka_unit_test(test_sli_errors),
    cmocka_unit_test(test_phase_capacity),
    cmocka_unit_test(test_sites_add_up),
    cmocka_unit_test(test_roles_on_slo_tables),
    cmocka_unit_test(test_retired_rows_leave_the_views),
};

WW_TEST_MAIN(tests, NULL, NULL)
