/* The SQL side of ww_hist (the waferwatch extension, pgext/, as the collector's migrations
 * install it) against a real PostgreSQL: quantiles of hand-built histograms with known answers,
 * merge = add chain = histogram of the union (bucket for bucket), merging across scales,
 * Prometheus-style cumulative buckets, count/mean, and quantiles of many merged random histograms
 * against the exact nearest-rank quantiles of the values. The reference histograms are built here
 * by a small, slow, obviously-correct bucketing function, independent of lib/ww_hist.c. */
#include "harness.h"
#include "ww_hist.h"
#include "ww_migrate.h"
#include "ww_test.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define R_MAX_SCALE 8
#define R_MIN_LOG2 (-20)
#define R_MAX_LOG2 12
#define R_MIN (1.0 / 1048576.0)
#define R_MAX 4096.0
/* Every bucket index of the range at scale 8: [-20 * 256, 12 * 256). */
#define R_NB ((R_MAX_LOG2 - R_MIN_LOG2) << R_MAX_SCALE)

/* A reference histogram: the whole in-range index space, no growth logic to get wrong. */
typedef struct {
    int scale;
    long long count, zero, under, over;
    double sum, min, max;
    bool has_mm;       /* min/max set (some finite value) */
    int32_t off, len;  /* as read back from SQL (for the canonical-form check) */
    long long b[R_NB]; /* b[i - s_base(scale)] = count of bucket i */
} r_hist_t;

static int32_t s_base(int scale)
{
    return R_MIN_LOG2 * (1 << scale);
}

static double s_lower(int32_t i, int scale)
{
    return pow(2.0, (double)i / (double)(1 << scale));
}

/* Bucket of v (in range) at scale: lower(i) < v <= upper(i), by log2 then exact fix-up. */
static int32_t s_index(double v, int scale)
{
    int32_t i = (int32_t)ceil(log2(v) * (double)(1 << scale)) - 1;
    while (s_lower(i + 1, scale) < v) {
        i++;
    }
    while (s_lower(i, scale) >= v) {
        i--;
    }
    return i;
}

static r_hist_t *s_new(int scale)
{
    r_hist_t *h = calloc(1, sizeof *h);
    assert_non_null(h);
    h->scale = scale;
    return h;
}

static void s_rec(r_hist_t *h, double v)
{
    h->count++;
    if (isfinite(v)) {
        h->sum += v;
        if (!h->has_mm || v < h->min) {
            h->min = v;
        }
        if (!h->has_mm || v > h->max) {
            h->max = v;
        }
        h->has_mm = true;
    }
    if (isnan(v) || v > R_MAX) {
        h->over++;
    } else if (v <= 0) {
        h->zero++;
    } else if (v <= R_MIN) {
        h->under++;
    } else {
        h->b[s_index(v, h->scale) - s_base(h->scale)]++;
    }
}

static void s_range(const r_hist_t *h, int *first, int *last)
{
    *first = -1;
    *last = -1;
    for (int k = 0; k < R_NB; k++) {
        if (h->b[k]) {
            if (*first < 0) {
                *first = k;
            }
            *last = k;
        }
    }
}

/* The histogram as a SQL expression of type ww_hist (canonical form). Caller frees. */
static char *s_sql(const r_hist_t *h)
{
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    assert_non_null(f);
    int first, last;
    s_range(h, &first, &last);
    fprintf(f, "ww_hist_make(%d,%lld,%.17g,", h->scale, h->count, h->sum);
    if (h->has_mm) {
        fprintf(f, "%.17g,%.17g,", h->min, h->max);
    } else {
        fprintf(f, "NULL,NULL,");
    }
    fprintf(f, "%lld,%lld,%lld,%d,'{", h->zero, h->under, h->over,
            first < 0 ? 0 : first + s_base(h->scale));
    for (int k = first; first >= 0 && k <= last; k++) {
        fprintf(f, "%s%lld", k > first ? "," : "", h->b[k]);
    }
    fprintf(f, "}')");
    fclose(f);
    return out;
}

/* Reads the one ww_hist that `sql` returns; false when it is NULL. */
static bool s_fetch(h_db_t *db, const char *sql, r_hist_t *h)
{
    char q[8192];
    snprintf(q, sizeof q,
             "SELECT ww_hist_scale(x), ww_hist_count(x), ww_hist_sum(x), ww_hist_min(x), "
             "ww_hist_max(x), ww_hist_zero_count(x),"
             " ww_hist_underflow(x), ww_hist_overflow(x), ww_hist_offset(x), ww_hist_counts(x), x "
             "IS NULL"
             " FROM (%s) AS q(x)",
             sql);
    PGresult *r = h_query(db, q);
    assert_int_equal(PQntuples(r), 1);
    memset(h, 0, sizeof *h);
    if (PQgetvalue(r, 0, 10)[0] == 't') {
        PQclear(r);
        return false;
    }
    h->scale = atoi(PQgetvalue(r, 0, 0));
    h->count = atoll(PQgetvalue(r, 0, 1));
    h->sum = strtod(PQgetvalue(r, 0, 2), NULL);
    h->has_mm = !PQgetisnull(r, 0, 3);
    assert_int_equal(h->has_mm, !PQgetisnull(r, 0, 4));
    if (h->has_mm) {
        h->min = strtod(PQgetvalue(r, 0, 3), NULL);
        h->max = strtod(PQgetvalue(r, 0, 4), NULL);
    }
    h->zero = atoll(PQgetvalue(r, 0, 5));
    h->under = atoll(PQgetvalue(r, 0, 6));
    h->over = atoll(PQgetvalue(r, 0, 7));
    h->off = atoi(PQgetvalue(r, 0, 8));
    const char *p = PQgetvalue(r, 0, 9);
    assert_int_equal(*p, '{');
    p++;
    while (*p && *p != '}') {
        char *end;
        long long c = strtoll(p, &end, 10);
        assert_true(end != p);
        int32_t k = h->off + h->len - s_base(h->scale);
        assert_true(k >= 0 && k < R_NB);
        h->b[k] = c;
        h->len++;
        p = *end == ',' ? end + 1 : end;
    }
    PQclear(r);
    return true;
}

/* got (read back from SQL) equals want: every counter and bucket, min/max exactly, sum to
 * a relative 1e-12 (addition order differs); got is canonical (trimmed). */
static void s_assert_same(const r_hist_t *got, const r_hist_t *want)
{
    assert_int_equal(got->scale, want->scale);
    assert_int_equal(got->count, want->count);
    assert_int_equal(got->zero, want->zero);
    assert_int_equal(got->under, want->under);
    assert_int_equal(got->over, want->over);
    assert_int_equal(got->has_mm, want->has_mm);
    if (want->has_mm) {
        assert_true(got->min == want->min);
        assert_true(got->max == want->max);
    }
    if (fabs(got->sum - want->sum) > 1e-12 * fabs(want->sum)) {
        fail_msg("sum %.17g, want %.17g", got->sum, want->sum);
    }
    for (int k = 0; k < R_NB; k++) {
        if (got->b[k] != want->b[k]) {
            fail_msg("bucket %d: %lld, want %lld", k + s_base(want->scale), got->b[k], want->b[k]);
        }
    }
    if (got->len == 0) {
        assert_int_equal(got->off, 0);
    } else {
        assert_true(got->b[got->off - s_base(got->scale)] != 0);
        assert_true(got->b[got->off + got->len - 1 - s_base(got->scale)] != 0);
    }
}

/* A fresh database with the schema; the migrations must reach version 2. */
static void s_open(h_db_t *db, const char *tag)
{
    h_db_create(db, tag);
    int v = ww_migrate(db->conn);
    assert_true(v >= 2);
}

/* One double from a query; NaN for NULL. */
static double s_query_d(h_db_t *db, const char *sql)
{
    PGresult *r = h_query(db, sql);
    assert_int_equal(PQntuples(r), 1);
    double v = PQgetisnull(r, 0, 0) ? NAN : strtod(PQgetvalue(r, 0, 0), NULL);
    PQclear(r);
    return v;
}

static void s_assert_near(double got, double want, double rel, const char *what)
{
    if (!(fabs(got - want) <= rel * fabs(want)) && !(got == want)) {
        fail_msg("%s: got %.17g, want %.17g", what, got, want);
    }
}

/* ww_quantile(<hist>, q) */
static double s_quantile(h_db_t *db, const char *hist, const char *q)
{
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT ww_quantile(%s, %s)", hist, q);
    return s_query_d(db, sql);
}

/* Harmonic-mean point of bucket i at scale s. */
static double s_hm(int32_t i, int scale)
{
    double lo = s_lower(i, scale), hi = s_lower(i + 1, scale);
    return 2 * lo * hi / (lo + hi);
}

/* A latency-like value: log-normal around `median` seconds. */
static double s_latency(uint64_t *st, double median, double sigma)
{
    double u1 = ww_test_rng_unit(st), u2 = ww_test_rng_unit(st);
    double z = sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
    return median * exp(sigma * z);
}

static void test_schema_is_the_binary_copy_contract(void **state)
{
    h_db_t db;
    s_open(&db, "sqlh_schema");
    /* ww_hist is the waferwatch extension's type (pgext/): the collector's migrations
     * created the extension, and the binary COPY writes its receive form. */
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM pg_type t JOIN pg_depend d"
                                     " ON d.classid = 'pg_type'::regclass AND d.objid = t.oid"
                                     " AND d.deptype = 'e' JOIN pg_extension e"
                                     " ON e.oid = d.refobjid WHERE t.typname = 'ww_hist'"
                                     " AND e.extname = 'waferwatch' AND t.typtype = 'b'"),
                     1);
    /* Every function is commented, immutable and parallel safe. */
    const char *fns = "SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
                      " AND proname IN ('ww_hist_lower', 'ww_hist_upper', 'ww_hist_downscale',"
                      " 'ww_hist_add', 'ww_merge', 'ww_quantile', 'ww_hist_count',"
                      " 'ww_hist_mean', 'ww_hist_le', 'ww_hist_count_above')";
    assert_int_equal(h_query_ll(&db, fns), 10);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "%s AND (obj_description(oid, 'pg_proc') IS NULL OR provolatile <> 'i'"
             " OR proparallel <> 's')",
             fns);
    assert_int_equal(h_query_ll(&db, sql), 0);
    /* Migrating again is a no-op. */
    assert_true(ww_migrate(db.conn) >= 2);
    h_db_drop(&db);
}

static void test_quantile_known_answers(void **state)
{
    h_db_t db;
    s_open(&db, "sqlh_q");
    /* Scale 0: bucket 0 = (1, 2], 1 = (2, 4], 2 = (4, 8]; two values in 0, two in 2. */
    const char *h = "ww_hist_make(0, 4, 13.5, 1.5, 7, 0, 0, 0, 0, '{2,0,2}')";
    double hm0 = 4.0 / 3.0, hm2 = 16.0 / 3.0;
    assert_true(hm0 < 1.5);
    s_assert_near(s_quantile(&db, h, "0"), 1.5, 1e-15, "q=0 clamped to min");
    s_assert_near(s_quantile(&db, h, "0.5"), 1.5, 1e-15, "rank 2");
    s_assert_near(s_quantile(&db, h, "0.51"), hm2, 1e-15, "rank 3");
    s_assert_near(s_quantile(&db, h, "1"), hm2, 1e-15, "q=1");
    /* Clamped to max. */
    h = "ww_hist_make(0, 4, 13.5, 1.5, 5, 0, 0, 0, 0, '{2,0,2}')";
    s_assert_near(s_quantile(&db, h, "1"), 5.0, 1e-15, "q=1 clamped to max");
    /* Unclamped at scale 6 with a negative offset: ranks 1..3 in bucket -70, 4..10 in -3. */
    char buf[512];
    int n = snprintf(buf, sizeof buf, "ww_hist_make(6, 10, 7, 0.001, 10, 0, 0, 0, -70, '{3");
    for (int i = -69; i < -3; i++) {
        n += snprintf(buf + n, sizeof buf - (size_t)n, ",0");
    }
    snprintf(buf + n, sizeof buf - (size_t)n, ",7}')");
    h = buf;
    s_assert_near(s_quantile(&db, h, "0.3"), s_hm(-70, 6), 1e-15, "rank 3");
    s_assert_near(s_quantile(&db, h, "0.31"), s_hm(-3, 6), 1e-15, "rank 4");
    s_assert_near(s_quantile(&db, h, "0.999"), s_hm(-3, 6), 1e-15, "rank 10");
    /* Harmonic mean of a scale-6 bucket is within 0.542% of both bounds. */
    assert_true(fabs(s_hm(-3, 6) / s_lower(-3, 6) - 1) < 0.0055);
    h_db_drop(&db);
}

static void test_quantile_zero_underflow_overflow_and_empty(void **state)
{
    h_db_t db;
    s_open(&db, "sqlh_qs");
    /* Ranks 1-2 zero, 3-5 underflow, 6-9 bucket 0 of scale 0, 10 overflow; min negative. */
    const char *h = "ww_hist_make(0, 10, 5010, -1, 5000, 2, 3, 1, 0, '{4}')";
    assert_true(s_quantile(&db, h, "0") == 0.0);
    assert_true(s_quantile(&db, h, "0.15") == 0.0);
    assert_true(s_quantile(&db, h, "0.21") == R_MIN);
    assert_true(s_quantile(&db, h, "0.5") == R_MIN);
    s_assert_near(s_quantile(&db, h, "0.51"), 4.0 / 3.0, 1e-15, "rank 6");
    s_assert_near(s_quantile(&db, h, "0.9"), 4.0 / 3.0, 1e-15, "rank 9");
    assert_true(s_quantile(&db, h, "0.91") == 5000.0);
    assert_true(s_quantile(&db, h, "1") == 5000.0);
    /* Overflow holding only +inf/NaN: max is not beyond 2^12, so +inf; likewise no max. */
    h = "ww_hist_make(0, 5, 6, 1.5, 1.5, 0, 0, 1, 0, '{4}')";
    assert_true(isinf(s_quantile(&db, h, "1")));
    assert_true(s_quantile(&db, h, "0.8") == 1.5);
    h = "ww_hist_make(6, 2, 0, NULL, NULL, 0, 0, 2, 0, '{}')";
    assert_true(isinf(s_quantile(&db, h, "0.5")));
    /* Empty or NULL: NULL. A NULL q is NULL too. */
    h = "ww_hist_make(6, 0, 0, NULL, NULL, 0, 0, 0, 0, '{}')";
    assert_true(isnan(s_quantile(&db, h, "0.5")));
    assert_true(isnan(s_quantile(&db, "NULL::ww_hist", "0.5")));
    assert_true(
        isnan(s_quantile(&db, "ww_hist_make(0, 1, 1.5, 1.5, 1.5, 0, 0, 0, 0, '{1}')", "NULL")));
    h_db_drop(&db);
}

static void test_quantile_rejects_q_outside_0_1(void **state)
{
    h_db_t db;
    s_open(&db, "sqlh_qbad");
    const char *bad[] = {"-0.01", "1.0000001", "'NaN'", "'Infinity'", "99"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT ww_quantile(ww_hist_make(0, 1, 1.5, 1.5, 1.5, 0, 0, 0, 0, '{1}'), %s)",
                 bad[i]);
        PGresult *r = PQexec(db.conn, sql);
        assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
        assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "22023");
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        if (!strstr(msg, "q must be in [0, 1]")) {
            fail_msg("q=%s: unexpected message: %s", bad[i], msg);
        }
        PQclear(r);
    }
    h_db_drop(&db);
}

/* 12 random histograms (with zeros, underflow and overflow) plus a NULL row. */
static void s_fill_random(h_db_t *db, r_hist_t *uni, int scale, uint64_t seed)
{
    PQclear(h_query(db, "CREATE TABLE t (id integer PRIMARY KEY, h ww_hist)"));
    r_hist_t *one = s_new(scale);
    uint64_t st = seed;
    for (int id = 1; id <= 13; id++) {
        memset(one, 0, sizeof *one);
        one->scale = scale;
        char *sql;
        if (id == 7) {
            sql = strdup("NULL");
        } else {
            int n = 1 + (int)(ww_test_rng_next(&st) % 400);
            double median = 0.0005 * (double)(1 + id % 5);
            for (int k = 0; k < n; k++) {
                uint64_t kind = ww_test_rng_next(&st) % 100;
                double v = kind == 0   ? 0.0
                           : kind == 1 ? -0.25
                           : kind == 2 ? 1e-7
                           : kind == 3 ? 5000.0
                           : kind == 4 ? INFINITY
                                       : s_latency(&st, median, 0.8);
                s_rec(one, v);
                s_rec(uni, v);
            }
            sql = s_sql(one);
        }
        size_t len = strlen(sql) + 64;
        char *ins = malloc(len);
        snprintf(ins, len, "INSERT INTO t VALUES (%d, %s)", id, sql);
        PQclear(h_query(db, ins));
        free(ins);
        free(sql);
    }
    free(one);
}

static void test_merge_equals_add_chain_and_union(void **state)
{
    h_db_t db;
    s_open(&db, "sqlh_merge");
    r_hist_t *uni = s_new(6), *got = s_new(6);
    s_fill_random(&db, uni, 6, 42);
    assert_true(uni->zero > 0 && uni->under > 0 && uni->over > 0);

    assert_true(s_fetch(&db, "SELECT ww_merge(h ORDER BY id) FROM t", got));
    s_assert_same(got, uni);
    assert_true(s_fetch(&db, "SELECT ww_merge(h ORDER BY id DESC) FROM t", got));
    s_assert_same(got, uni);
    /* add(NULL, h1), add(that, h2), ... in id order, the NULL row included. */
    assert_true(s_fetch(&db,
                        "WITH RECURSIVE r(id, acc) AS (SELECT 0, NULL::ww_hist UNION ALL"
                        " SELECT t.id, ww_hist_add(r.acc, t.h) FROM r JOIN t ON t.id = r.id + 1)"
                        " SELECT acc FROM r ORDER BY id DESC LIMIT 1",
                        got));
    s_assert_same(got, uni);
    /* Merging merged parts gives the same (sum up to rounding). */
    assert_int_equal(
        h_query_ll(
            &db,
            "SELECT ((ww_hist_scale(m), ww_hist_count(m), ww_hist_min(m), ww_hist_max(m),"
            " ww_hist_zero_count(m), ww_hist_underflow(m), ww_hist_overflow(m), ww_hist_offset(m),"
            " ww_hist_counts(m)) = (ww_hist_scale(a), ww_hist_count(a), ww_hist_min(a), "
            "ww_hist_max(a),"
            " ww_hist_zero_count(a), ww_hist_underflow(a), ww_hist_overflow(a), ww_hist_offset(a),"
            " ww_hist_counts(a)) AND abs(ww_hist_sum(m) - ww_hist_sum(a)) <= 1e-9 * "
            "ww_hist_sum(a))::int"
            " FROM (SELECT ww_merge(h ORDER BY id) FROM t) AS x(m),"
            " (SELECT ww_hist_add(ww_hist_add((SELECT ww_merge(h) FROM t"
            " WHERE id < 5), (SELECT ww_merge(h) FROM t WHERE id"
            " BETWEEN 5 AND 9)), (SELECT ww_merge(h) FROM t WHERE"
            " id > 9))) AS y(a)"),
        1);
    /* A parallel plan (partial aggregates combined by ww_hist_add) gives the same. */
    PQclear(h_query(&db, "INSERT INTO t SELECT 1000 * g + id, h FROM t, generate_series(1, 400) g"
                         " WHERE h IS NOT NULL"));
    PQclear(h_query(&db, "ANALYZE t"));
    PQclear(h_query(&db, "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;"
                         " SET min_parallel_table_scan_size = 0;"
                         " SET max_parallel_workers_per_gather = 2"));
    PGresult *r = h_query(&db, "EXPLAIN SELECT ww_merge(h) FROM t");
    bool partial = false;
    for (int i = 0; i < PQntuples(r); i++) {
        partial = partial || strstr(PQgetvalue(r, i, 0), "Partial Aggregate");
    }
    PQclear(r);
    assert_true(partial);
    assert_true(s_fetch(&db, "SELECT ww_merge(h) FROM t", got));
    PQclear(h_query(&db, "SET max_parallel_workers_per_gather = 0"));
    r_hist_t *serial = s_new(6);
    assert_true(s_fetch(&db, "SELECT ww_merge(h) FROM t", serial));
    s_assert_same(got, serial);
    assert_int_equal(got->count, uni->count * 401);
    /* No rows, or only NULL rows: NULL. add(NULL, NULL) is NULL. */
    assert_false(s_fetch(&db, "SELECT ww_merge(h) FROM t WHERE id < 0", got));
    assert_false(s_fetch(&db, "SELECT ww_merge(h) FROM t WHERE id = 7", got));
    assert_false(s_fetch(&db, "SELECT ww_hist_add(NULL, NULL)", got));
    free(serial);
    free(got);
    free(uni);
    h_db_drop(&db);
}

static void test_merge_across_scales(void **state)
{
    h_db_t db;
    s_open(&db, "sqlh_scales");
    r_hist_t *got = s_new(0);
    /* Scale 2, indexes -5..0 -> scale 0 (>> 2, floor): -2 | -1 -1 -1 -1 | 0. */
    const char *a = "ww_hist_make(2, 21, 10, 0.3, 1.1, 0, 0, 0, -5, '{1,2,3,4,5,6}')";
    const char *b = "ww_hist_make(0, 8, 60, 0.1, 9, 1, 0, 0, 3, '{7}')";
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT ww_hist_downscale(%s, 0)", a);
    assert_true(s_fetch(&db, sql, got));
    assert_int_equal(got->scale, 0);
    assert_int_equal(got->off, -2);
    assert_int_equal(got->len, 3);
    assert_int_equal(got->b[-2 - s_base(0)], 1);
    assert_int_equal(got->b[-1 - s_base(0)], 14);
    assert_int_equal(got->b[0 - s_base(0)], 6);
    assert_int_equal(got->count, 21);
    /* a + b at scale 0, either order, and by the aggregate. */
    for (int i = 0; i < 4; i++) {
        const char *x = i % 2 ? b : a, *y = i % 2 ? a : b;
        if (i < 2) {
            snprintf(sql, sizeof sql, "SELECT ww_hist_add(%s, %s)", x, y);
        } else {
            snprintf(sql, sizeof sql, "SELECT ww_merge(h) FROM (VALUES (%s), (%s)) AS v(h)", x, y);
        }
        assert_true(s_fetch(&db, sql, got));
        assert_int_equal(got->scale, 0);
        assert_int_equal(got->count, 29);
        assert_int_equal(got->zero, 1);
        assert_true(got->sum == 70.0 && got->min == 0.1 && got->max == 9.0);
        assert_int_equal(got->off, -2);
        assert_int_equal(got->len, 6);
        long long want[6] = {1, 14, 6, 0, 0, 7};
        for (int k = 0; k < 6; k++) {
            assert_int_equal(got->b[k - 2 - s_base(0)], want[k]);
        }
    }
    /* Raising the scale is refused. */
    snprintf(sql, sizeof sql, "SELECT ww_hist_downscale(%s, 3)", a);
    PGresult *r = PQexec(db.conn, sql);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);

    /* Random values recorded at scales 8, 7 and 6, merged: exactly the union at scale 6. */
    r_hist_t *uni = s_new(6), *one = s_new(8);
    PQclear(h_query(&db, "CREATE TABLE t (h ww_hist)"));
    uint64_t st = 7;
    for (int i = 0; i < 30; i++) {
        memset(one, 0, sizeof *one);
        one->scale = 8 - i % 3;
        for (int k = 0; k < 200; k++) {
            double v = s_latency(&st, 0.02, 1.5);
            s_rec(one, v);
            s_rec(uni, v);
        }
        char *h = s_sql(one);
        size_t len = strlen(h) + 64;
        char *ins = malloc(len);
        snprintf(ins, len, "INSERT INTO t VALUES (%s)", h);
        PQclear(h_query(&db, ins));
        free(ins);
        free(h);
    }
    r_hist_t *chk = s_new(6);
    assert_true(s_fetch(&db, "SELECT ww_merge(h) FROM t", chk));
    s_assert_same(chk, uni);
    free(chk);
    free(one);
    free(uni);
    free(got);
    h_db_drop(&db);
}

/* Rows of ww_hist_le as "le:count le:count ...". */
static void s_le(h_db_t *db, const char *sql, char *out, size_t cap)
{
    PGresult *r = h_query(db, sql);
    out[0] = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%s:%s", i ? " " : "", PQgetvalue(r, i, 0),
                 PQgetvalue(r, i, 1));
    }
    PQclear(r);
}

static void test_le_cumulative_buckets(void **state)
{
    h_db_t db;
    s_open(&db, "sqlh_le");
    /* Scale 0: zero 1, underflow 2, (0.5, 1] 3, (1, 2] 0, (2, 4] 4, overflow 5. */
    const char *h = "ww_hist_make(0, 15, 9, -1, 5000, 1, 2, 5, -1, '{3,0,4}')";
    char sql[512], got[512];
    snprintf(sql, sizeof sql, "SELECT le, count FROM ww_hist_le(%s)", h);
    s_le(&db, sql, got, sizeof got);
    assert_string_equal(got, "1:6 4:10 Infinity:15");
    snprintf(sql, sizeof sql,
             "SELECT * FROM ww_hist_le(%s, '{-1,1e-7,1e-6,0.5,1,3,4,100,Infinity}')", h);
    s_le(&db, sql, got, sizeof got);
    assert_string_equal(got, "-1:0 1e-07:1 1e-06:3 0.5:3 1:6 3:6 4:10 100:10 Infinity:15");
    /* An empty histogram: only the total; NULL: no rows. */
    s_le(&db, "SELECT * FROM ww_hist_le(ww_hist_make(6, 0, 0, NULL, NULL, 0, 0, 0, 0, '{}'))", got,
         sizeof got);
    assert_string_equal(got, "Infinity:0");
    s_le(&db,
         "SELECT * FROM ww_hist_le(ww_hist_make(6, 0, 0, NULL, NULL, 0, 0, 0, 0, '{}'),"
         " '{0.001}')",
         got, sizeof got);
    assert_string_equal(got, "0.001:0 Infinity:0");
    s_le(&db, "SELECT * FROM ww_hist_le(NULL)", got, sizeof got);
    assert_string_equal(got, "");
    /* Scale 6: the upper bound of bucket 63 is exactly 2, and counts as <= 2. */
    s_le(&db,
         "SELECT * FROM ww_hist_le(ww_hist_make(6, 3, 5, 1.9, 2.0, 0, 0, 0, 63, '{2,1}'),"
         " '{1.99, 2, 2.01, 2.03}')",
         got, sizeof got);
    assert_string_equal(got, "1.99:0 2:2 2.01:2 2.03:3 Infinity:3");
    /* Unsorted les are refused. */
    snprintf(sql, sizeof sql, "SELECT * FROM ww_hist_le(%s, '{1,0.5}')", h);
    PGresult *r = PQexec(db.conn, sql);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    h_db_drop(&db);
}

static void test_count_and_mean(void **state)
{
    h_db_t db;
    s_open(&db, "sqlh_mean");
    const char *h = "ww_hist_make(0, 5, 10, 1.5, 3, 0, 0, 1, 0, '{2,2}')";
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT ww_hist_count(%s)", h);
    assert_int_equal(h_query_ll(&db, sql), 5);
    /* max 3: the overflow value was +inf/NaN, not in sum: 10 / 4. */
    snprintf(sql, sizeof sql, "SELECT ww_hist_mean(%s)", h);
    assert_true(s_query_d(&db, sql) == 2.5);
    /* max 5000: the overflow value was finite and in sum: 5010 / 5. */
    assert_true(
        s_query_d(
            &db, "SELECT ww_hist_mean(ww_hist_make(0, 5, 5010, 1.5, 5000, 0, 0, 1, 0, '{2,2}'))") ==
        1002.0);
    /* Zero and negative values are finite: (-1 + 0 + 3) / 3. */
    assert_true(
        s_query_d(&db, "SELECT ww_hist_mean(ww_hist_make(0, 3, 2, -1, 3, 2, 0, 0, 1, '{1}'))") ==
        2.0 / 3.0);
    assert_true(isnan(s_query_d(
        &db, "SELECT ww_hist_mean(ww_hist_make(6, 2, 0, NULL, NULL, 0, 0, 2, 0, '{}'))")));
    assert_true(isnan(s_query_d(
        &db, "SELECT ww_hist_mean(ww_hist_make(6, 0, 0, NULL, NULL, 0, 0, 0, 0, '{}'))")));
    assert_int_equal(h_query_ll(&db, "SELECT ww_hist_count(NULL)"), -1);
    h_db_drop(&db);
}

static void test_merged_random_quantiles_match_exact(void **state)
{
    enum { HISTS = 300, PER = 400 };
    h_db_t db;
    s_open(&db, "sqlh_rand");
    double *all = malloc(sizeof(double) * HISTS * PER);
    assert_non_null(all);
    r_hist_t *one = s_new(6);
    PQclear(h_query(&db, "CREATE TABLE t (h ww_hist)"));
    uint64_t st = 2024;
    size_t n = 0;
    for (int i = 0; i < HISTS; i++) {
        memset(one, 0, sizeof *one);
        one->scale = 6 + i % 3; /* scales 6..8: the merge is at 6, within 0.542% */
        double median = 0.0002 * (double)(1 + i % 7);
        for (int k = 0; k < PER; k++) {
            double v = s_latency(&st, median, 0.6 + 0.1 * (double)(i % 4));
            s_rec(one, v);
            all[n++] = v;
        }
        char *h = s_sql(one);
        size_t len = strlen(h) + 64;
        char *ins = malloc(len);
        snprintf(ins, len, "INSERT INTO t VALUES (%s)", h);
        PQclear(h_query(&db, ins));
        free(ins);
        free(h);
    }
    qsort(all, n, sizeof *all, ww_test_cmp_double);
    const char *qs[] = {"0", "0.5", "0.9", "0.99", "0.999", "1"};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        double q = strtod(qs[i], NULL);
        double x = ceil(q * (double)n);
        size_t rank = x < 1 ? 1 : (size_t)x;
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT ww_quantile(ww_merge(h), %s) FROM t", qs[i]);
        double got = s_query_d(&db, sql);
        char what[64];
        snprintf(what, sizeof what, "q=%s", qs[i]);
        s_assert_near(got, all[rank - 1], 0.01, what);
        /* Tighter than asked: within half a scale-6 bucket. */
        s_assert_near(got, all[rank - 1], 0.0055, what);
    }
    assert_int_equal(h_query_ll(&db, "SELECT ww_hist_count(ww_merge(h)) FROM t"), (long long)n);
    free(one);
    free(all);
    h_db_drop(&db);
}

/* The nearest rank in SQL is C's, exactly (ww_hist_rank: q as the decimal of its 15
 * significant digits): with the values 1..n ms each in a bucket of its own, ww_quantile
 * and ww_hist_quantile agree bit for bit for every q = k/1000 and a few awkward doubles,
 * and q = 0.07 of 100 values is the 7th, not the 8th (0.07 * 100 is 7.000000000000001 in
 * binary floating point). */
static void test_quantile_rank_is_exact_and_equals_c(void **state)
{
    h_db_t db;
    s_open(&db, "sqlh_rank");
    const int sizes[] = {100, 977, 1000};
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
        ww_hist_t h;
        ww_hist_init(&h, WW_HIST_DEFAULT_SCALE);
        for (int i = 1; i <= sizes[z]; i++) {
            assert_int_equal(ww_hist_record(&h, i * 1e-3), 0);
        }
        size_t cap = 64 + (size_t)h.len * 24 + 1004 * 26;
        char *sql = malloc(cap);
        assert_non_null(sql);
        int n = snprintf(
            sql, cap,
            "SELECT ww_quantile(ww_hist_make(%d, %llu, %.17g, %.17g, %.17g, 0, 0, 0, %d, '{",
            h.scale, (unsigned long long)h.count, h.sum, h.min, h.max, h.offset);
        for (uint32_t i = 0; i < h.len; i++) {
            n += snprintf(sql + n, cap - (size_t)n, "%s%llu", i ? "," : "",
                          (unsigned long long)h.counts[i]);
        }
        n += snprintf(sql + n, cap - (size_t)n, "}'), q) FROM unnest('{");
        double qs[1004];
        size_t nq = 0;
        for (int k = 0; k <= 1000; k++) {
            qs[nq++] = k / 1000.0;
        }
        qs[nq++] = 1.0 / 3.0;
        qs[nq++] = 2.0 / 3.0;
        qs[nq++] = 0.1234567890123456789;
        for (size_t k = 0; k < nq; k++) {
            n += snprintf(sql + n, cap - (size_t)n, "%s%.17g", k ? "," : "", qs[k]);
        }
        snprintf(sql + n, cap - (size_t)n, "}'::float8[]) WITH ORDINALITY AS u(q, i) ORDER BY i");
        PGresult *r = h_query(&db, sql);
        assert_int_equal(PQntuples(r), (int)nq);
        for (size_t k = 0; k < nq; k++) {
            double got = strtod(PQgetvalue(r, (int)k, 0), NULL);
            double want = ww_hist_quantile(&h, qs[k]);
            if (got != want) {
                fail_msg("n %d, q %.17g: SQL %.17g, C %.17g (rank %llu)", sizes[z], qs[k], got,
                         want, (unsigned long long)ww_hist_rank(qs[k], h.count));
            }
        }
        PQclear(r);
        free(sql);
        if (sizes[z] == 100) {
            assert_int_equal(ww_hist_rank(0.07, 100), 7);
            s_assert_near(ww_hist_quantile(&h, 0.07), 0.007, 0.00542, "q 0.07 of 1..100 ms");
        }
        ww_hist_fini(&h);
    }
    h_db_drop(&db);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_schema_is_the_binary_copy_contract),
    cmocka_unit_test(test_quantile_known_answers),
    cmocka_unit_test(test_quantile_zero_underflow_overflow_and_empty),
    cmocka_unit_test(test_quantile_rejects_q_outside_0_1),
    cmocka_unit_test(test_merge_equals_add_chain_and_union),
    cmocka_unit_test(test_merge_across_scales),
    cmocka_unit_test(test_le_cumulative_buckets),
    cmocka_unit_test(test_count_and_mean),
    cmocka_unit_test(test_merged_random_quantiles_match_exact),
    cmocka_unit_test(test_quantile_rank_is_exact_and_equals_c),
};

WW_TEST_MAIN(tests, NULL, NULL)
