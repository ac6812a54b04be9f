/* The PostgreSQL extension waferwatch (pgext/) against a real server: each test creates a
 * fresh database and runs CREATE EXTENSION itself (the collector's migrations are not
 * involved). The reference for every answer is the C library the agent and the collector
 * use (lib/ww_hist*.c), so the checks are "SQL equals C, bit for bit": text and binary
 * forms, ww_hist_make, ww_merge (serial and parallel, mixed scales), ww_quantile,
 * ww_hist_le, ww_hist_count_above, overflow refusal; plus quantile accuracy against the
 * exact nearest-rank quantiles of the raw values; and the sample blocks of 1.1
 * (ww_sblock_agg, ww_sblock_samples: lib/ww_sblock.c). */
#include "harness.h"
#include "ww_hist.h"
#include "ww_hist_pack.h"
#include "ww_hist_text.h"
#include "ww_sblock.h"
#include "ww_test.h"
#include "ww_wblock.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ----------------------------------------------------------------------------- */

static void s_open(h_db_t *db, const char *tag)
{
    h_db_create(db, tag);
    PQclear(h_query(db, "CREATE EXTENSION waferwatch"));
}

static Oid s_hist_oid(h_db_t *db)
{
    return (Oid)h_query_ll(db, "SELECT 'ww_hist'::regtype::oid");
}

/* The canonical bytes of h (malloc'd; *n their length). */
static uint8_t *s_pack(const ww_hist_t *h, size_t *n)
{
    size_t cap = ww_hist_pack_bound(h);
    uint8_t *p = malloc(cap);
    assert_non_null(p);
    long len = ww_hist_pack(h, p, cap);
    if (len <= 0) {
        fail_msg("ww_hist_pack: %ld", len);
    }
    *n = (size_t)len;
    return p;
}

/* Runs sql with $1 = h in binary form (NULL h: a NULL parameter), results in `fmt` (0 text,
 * 1 binary). Returns the result whatever its status (caller PQclear). */
static PGresult *s_exec_h(h_db_t *db, const char *sql, const ww_hist_t *h, int fmt)
{
    Oid type = s_hist_oid(db);
    size_t n = 0;
    uint8_t *p = h ? s_pack(h, &n) : NULL;
    const char *vals[1] = {(const char *)p};
    int lens[1] = {(int)n}, fmts[1] = {1};
    PGresult *r = PQexecParams(db->conn, sql, 1, &type, vals, lens, fmts, fmt);
    free(p);
    return r;
}

/* As s_exec_h, the query must succeed. */
static PGresult *s_query_h(h_db_t *db, const char *sql, const ww_hist_t *h, int fmt)
{
    PGresult *r = s_exec_h(db, sql, h, fmt);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    }
    return r;
}

/* Decodes a binary ww_hist field into h (initialised); false when it is NULL. */
static bool s_field_hist(PGresult *r, int row, int col, ww_hist_t *h)
{
    ww_hist_init(h, 0);
    if (PQgetisnull(r, row, col)) {
        return false;
    }
    assert_int_equal(PQfformat(r, col), 1);
    const char *why = NULL;
    int rc = ww_hist_unpack((const uint8_t *)PQgetvalue(r, row, col),
                            (size_t)PQgetlength(r, row, col), h, &why);
    if (rc != 0) {
        fail_msg("a ww_hist from the server does not decode: %s", why ? why : "?");
    }
    return true;
}

/* The one ww_hist that sql (no parameters) returns, decoded; false when NULL. */
static bool s_fetch(h_db_t *db, const char *sql, ww_hist_t *h)
{
    PGresult *r = PQexecParams(db->conn, sql, 0, NULL, NULL, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    }
    assert_int_equal(PQntuples(r), 1);
    bool ok = s_field_hist(r, 0, 0, h);
    PQclear(r);
    return ok;
}

/* got and want have the same canonical bytes (every field, sum included, bit for bit). */
static void s_assert_same(const ww_hist_t *got, const ww_hist_t *want, const char *what)
{
    size_t na, nb;
    uint8_t *a = s_pack(got, &na), *b = s_pack(want, &nb);
    if (na != nb || memcmp(a, b, na) != 0) {
        fail_msg("%s: histograms differ (scale %d/%d count %llu/%llu sum %.17g/%.17g)", what,
                 got->scale, want->scale, (unsigned long long)got->count,
                 (unsigned long long)want->count, got->sum, want->sum);
    }
    free(a);
    free(b);
}

/* Same but sum only to a relative 1e-12 (another addition order). */
static void s_assert_same_but_sum(const ww_hist_t *got, const ww_hist_t *want, const char *what)
{
    if (fabs(got->sum - want->sum) > 1e-12 * fabs(want->sum)) {
        fail_msg("%s: sum %.17g, want %.17g", what, got->sum, want->sum);
    }
    ww_hist_t g = *got;
    g.sum = want->sum;
    s_assert_same(&g, want, what);
}

/* sql must fail with SQLSTATE state and a primary message containing `part`. */
static void s_assert_error_r(PGresult *r, const char *what, const char *state, const char *part)
{
    if (PQresultStatus(r) != PGRES_FATAL_ERROR) {
        fail_msg("%s: succeeded, expected an error %s", what, state);
    }
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (!st || strcmp(st, state) != 0 || !msg || !strstr(msg, part)) {
        fail_msg("%s: got %s \"%s\", want %s containing \"%s\"", what, st ? st : "-",
                 msg ? msg : "-", state, part);
    }
    PQclear(r);
}

static void s_assert_error(h_db_t *db, const char *sql, const char *state, const char *part)
{
    s_assert_error_r(PQexec(db->conn, sql), sql, state, part);
}

static double s_query_d(h_db_t *db, const char *sql)
{
    PGresult *r = h_query(db, sql);
    assert_int_equal(PQntuples(r), 1);
    double v = PQgetisnull(r, 0, 0) ? NAN : strtod(PQgetvalue(r, 0, 0), NULL);
    PQclear(r);
    return v;
}

/* A latency-like value: log-normal around `median` seconds. */
static double s_lognormal(uint64_t *st, double median, double sigma)
{
    double u1 = ww_test_rng_unit(st), u2 = ww_test_rng_unit(st);
    double z = sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
    return median * exp(sigma * z);
}

/* A random histogram at `scale` of n values (1 + up to 400 when n is 0), with zeros,
 * negatives, underflow, finite and infinite overflow when `specials`. */
static void s_random(ww_hist_t *h, uint64_t *st, int scale, int n, bool specials)
{
    ww_hist_init(h, scale);
    if (n == 0) {
        n = 1 + (int)(ww_test_rng_next(st) % 400);
    }
    double median = 0.0005 * (double)(1 + ww_test_rng_next(st) % 200);
    for (int k = 0; k < n; k++) {
        uint64_t kind = specials ? ww_test_rng_next(st) % 100 : 99;
        double v = kind == 0   ? 0.0
                   : kind == 1 ? -0.25
                   : kind == 2 ? 1e-7
                   : kind == 3 ? 5000.0
                   : kind == 4 ? INFINITY
                               : s_lognormal(st, median, 0.8);
        ww_hist_record(h, v);
    }
}

/* Inserts h as row id of table `table` (id integer, h ww_hist); NULL h: a NULL row. */
static void s_insert(h_db_t *db, const char *table, int id, const ww_hist_t *h)
{
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (%d, $1)", table, id);
    PQclear(s_query_h(db, sql, h, 0));
}

/* A block's query: sql with the bytea block[0 .. len) as $1 (binary), its result. */
static PGresult *s_block_query(h_db_t *db, const char *sql, const uint8_t *block, size_t len)
{
    Oid bytea_oid = 17;
    const char *vals[1] = {(const char *)block};
    int lens[1] = {(int)len}, fmts[1] = {1};
    return PQexecParams(db->conn, sql, 1, &bytea_oid, vals, lens, fmts, 0);
}

/* The rows the set-returning srf(block) gives are, as text and duplicates counted, the rows
 * of rows_sql (one text column x), want of them; count_fn(block) says want too. */
static void s_block_gives_back(h_db_t *db, const uint8_t *block, size_t len, const char *srf,
                               const char *count_fn, const char *rows_sql, long long want)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "WITH b AS (SELECT d::text AS x FROM %s($1) d), t AS (%s)"
             " SELECT (SELECT count(*) FROM b),"
             " (SELECT count(*) FROM (SELECT x FROM b EXCEPT ALL SELECT x FROM t) e)"
             " + (SELECT count(*) FROM (SELECT x FROM t EXCEPT ALL SELECT x FROM b) f), %s($1)",
             srf, rows_sql, count_fn);
    PGresult *r = s_block_query(db, sql, block, len);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(atoll(PQgetvalue(r, 0, 0)), want);
    assert_int_equal(atoll(PQgetvalue(r, 0, 1)), 0);
    assert_int_equal(atoll(PQgetvalue(r, 0, 2)), want);
    PQclear(r);
}

/* ---- tests ------------------------------------------------------------------------------- */

/* Every function of the extension is immutable, parallel safe and commented; the SQL
 * bounds are the C bounds bit for bit at every index of every scale. */
static void test_catalog_and_bounds(void **state)
{
    h_db_t db;
    s_open(&db, "pgx_cat");
    const char *bad = "SELECT string_agg(p.proname, ', ') FROM pg_proc p"
                      " JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid"
                      "  AND d.deptype = 'e'"
                      " JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'waferwatch'"
                      " WHERE p.provolatile <> 'i' OR p.proparallel <> 's'"
                      "  OR obj_description(p.oid, 'pg_proc') IS NULL";
    PGresult *r = h_query(&db, bad);
    if (!PQgetisnull(r, 0, 0)) {
        fail_msg("not immutable, parallel safe and commented: %s", PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    assert_true(h_query_ll(&db, "SELECT count(*) FROM pg_proc p JOIN pg_depend d"
                                " ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid"
                                " AND d.deptype = 'e' JOIN pg_extension e"
                                " ON e.oid = d.refobjid AND e.extname = 'waferwatch'") >= 30);
    r = h_query(&db, "SELECT s, i, ww_hist_lower(i, s), ww_hist_upper(i, s)"
                     " FROM generate_series(0, 8) s,"
                     " generate_series(-20 * (1 << s), 12 * (1 << s) - 1) i");
    assert_int_equal(PQntuples(r), 32 * 511);
    for (int k = 0; k < PQntuples(r); k++) {
        int s = atoi(PQgetvalue(r, k, 0));
        int32_t i = atoi(PQgetvalue(r, k, 1));
        double lo = strtod(PQgetvalue(r, k, 2), NULL), hi = strtod(PQgetvalue(r, k, 3), NULL);
        if (lo != ww_hist_lower(i, s) || hi != ww_hist_upper(i, s)) {
            fail_msg("scale %d index %d: SQL bounds %.17g %.17g, C %.17g %.17g", s, i, lo, hi,
                     ww_hist_lower(i, s), ww_hist_upper(i, s));
        }
    }
    PQclear(r);
    h_db_drop(&db);
}

static void test_text_round_trip(void **state)
{
    h_db_t db;
    s_open(&db, "pgx_text");
    /* One histogram by hand: scale 0, bucket 0 = (1, 2], bucket 2 = (4, 8]. */
    const char *want = "{\"scale\":0,\"count\":4,\"sum\":15,\"min\":1.5,\"max\":7,\"zero\":0,"
                       "\"underflow\":0,\"overflow\":0,\"buckets\":[[0,2],[2,2]]}";
    ww_hist_t h;
    ww_hist_init(&h, 0);
    ww_hist_record(&h, 1.5);
    ww_hist_record(&h, 1.5);
    ww_hist_record(&h, 5);
    ww_hist_record(&h, 7);
    PGresult *r = s_query_h(&db, "SELECT $1::text", &h, 0);
    assert_string_equal(PQgetvalue(r, 0, 0), want);
    PQclear(r);
    /* Keys in any order, whitespace, defaults: the same value. */
    ww_hist_t got;
    assert_true(s_fetch(&db,
                        "SELECT ' { \"buckets\" : [ [0, 2], [2,2] ], \"max\": 7, \"min\":1.5,"
                        " \"count\":4, \"sum\": 15, \"scale\": 0 }'::ww_hist",
                        &got));
    s_assert_same(&got, &h, "text input");
    ww_hist_fini(&got);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM (SELECT ww_hist_make(0, 4, 15, 1.5, 7,"
                                     " 0, 0, 0, -1, '{0,2,0,2,0}') = '{\"scale\":0,\"count\":4,"
                                     "\"sum\":15,\"min\":1.5,\"max\":7,\"buckets\":[[0,2],[2,2]]}'"
                                     " AS e) q WHERE e"),
                     1);
    /* An empty one, and the JSON cast works. */
    r = h_query(&db, "SELECT '{\"scale\":6,\"count\":0,\"buckets\":[]}'::ww_hist::text,"
                     " ('{\"scale\":6,\"count\":0,\"buckets\":[]}'::ww_hist::text::jsonb)->>'min'"
                     " IS NULL");
    assert_string_equal(PQgetvalue(r, 0, 0),
                        "{\"scale\":6,\"count\":0,\"sum\":0,\"min\":null,\"max\":null,\"zero\":0,"
                        "\"underflow\":0,\"overflow\":0,\"buckets\":[]}");
    assert_string_equal(PQgetvalue(r, 0, 1), "t");
    PQclear(r);
    ww_hist_fini(&h);
    /* Random histograms: SQL text = C text, and text -> value -> bytes = C bytes. */
    uint64_t st = 11;
    for (int k = 0; k < 40; k++) {
        ww_hist_t x;
        s_random(&x, &st, (int)(ww_test_rng_next(&st) % 9), 0, true);
        char buf[65536];
        long n = ww_hist_text_format(&x, buf, sizeof buf);
        assert_true(n > 0 && (size_t)n < sizeof buf);
        r = s_query_h(&db, "SELECT $1::text", &x, 0);
        assert_string_equal(PQgetvalue(r, 0, 0), buf);
        PQclear(r);
        const char *vals[1] = {buf};
        r = PQexecParams(db.conn, "SELECT $1::ww_hist", 1, NULL, vals, NULL, NULL, 1);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_true(s_field_hist(r, 0, 0, &got));
        s_assert_same(&got, &x, "text round trip");
        PQclear(r);
        ww_hist_fini(&got);
        ww_hist_fini(&x);
    }
    h_db_drop(&db);
}

static void test_text_malformed_refused(void **state)
{
    h_db_t db;
    s_open(&db, "pgx_textbad");
    const char *bad[] = {
        "",
        "{}",
        "[1]",
        "{\"scale\":9,\"count\":0,\"buckets\":[]}",
        "{\"scale\":0,\"count\":1,\"buckets\":[]}",
        "{\"scale\":0,\"count\":2,\"min\":1.5,\"max\":3,\"buckets\":[[1,1],[0,1]]}",
        "{\"scale\":0,\"count\":1,\"min\":1.5,\"max\":1.5,\"buckets\":[[0,0]]}",
        "{\"scale\":0,\"count\":0,\"buckets\":[],\"colour\":1}",
        "{\"scale\":0,\"scale\":0,\"count\":0,\"buckets\":[]}",
        "{\"scale\":0,\"count\":1,\"min\":1.5,\"max\":1.5,\"buckets\":[[0,1]]} x",
        "{\"scale\":0,\"count\":1.0,\"min\":1.5,\"max\":1.5,\"buckets\":[[0,1]]}",
        "{\"scale\":0,\"count\":1,\"min\":1.5,\"max\":1.5,\"buckets\":[[12,1]]}",
        "{\"scale\":0,\"count\":1,\"sum\":1.5,\"buckets\":[[0,1]]}", /* a sum, no min/max */
        "{\"scale\":0,\"count\":1,\"min\":2,\"max\":1.5,\"buckets\":[[0,1]]}",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ww_hist_t h;
        ww_hist_init(&h, 0);
        char err[256] = "";
        int rc = ww_hist_text_parse(bad[k], &h, err, sizeof err);
        if (rc != -EINVAL) {
            fail_msg("C accepts %s (%d)", bad[k], rc);
        }
        ww_hist_fini(&h);
        const char *vals[1] = {bad[k]};
        PGresult *r = PQexecParams(db.conn, "SELECT $1::ww_hist", 1, NULL, vals, NULL, NULL, 0);
        s_assert_error_r(r, bad[k], "22P02", err);
    }
    h_db_drop(&db);
}

/* Binary: send = the packed bytes, recv of them = the value, COPY BINARY out and in again,
 * and recv refuses bytes the decoder refuses, with its reason. */
static void test_binary_round_trip_and_corrupt(void **state)
{
    h_db_t db;
    s_open(&db, "pgx_bin");
    PQclear(h_query(&db, "CREATE TABLE t (id integer PRIMARY KEY, h ww_hist)"));
    uint64_t st = 12;
    ww_hist_t hs[30];
    for (int k = 0; k < 30; k++) {
        s_random(&hs[k], &st, 6, 0, k % 2 == 0);
        s_insert(&db, "t", k, &hs[k]);
    }
    s_insert(&db, "t", 30, NULL);
    for (int k = 0; k < 30; k += 7) {
        size_t n;
        uint8_t *p = s_pack(&hs[k], &n);
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT ww_hist_send(h), h FROM t WHERE id = %d", k);
        PGresult *r = PQexecParams(db.conn, sql, 0, NULL, NULL, NULL, NULL, 1);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_int_equal(PQgetlength(r, 0, 0), (int)n);
        assert_memory_equal(PQgetvalue(r, 0, 0), p, n);
        assert_int_equal(PQgetlength(r, 0, 1), (int)n);
        assert_memory_equal(PQgetvalue(r, 0, 1), p, n);
        PQclear(r);
        free(p);
    }
    /* COPY BINARY out, then into a second table. */
    PGresult *r = PQexec(db.conn, "COPY t TO STDOUT (FORMAT binary)");
    assert_int_equal(PQresultStatus(r), PGRES_COPY_OUT);
    PQclear(r);
    char *data = NULL;
    size_t len = 0;
    char *buf;
    int n;
    while ((n = PQgetCopyData(db.conn, &buf, 0)) > 0) {
        data = realloc(data, len + (size_t)n);
        memcpy(data + len, buf, (size_t)n);
        len += (size_t)n;
        PQfreemem(buf);
    }
    assert_int_equal(n, -1);
    PQclear(PQgetResult(db.conn));
    PQclear(h_query(&db, "CREATE TABLE t2 (LIKE t)"));
    r = PQexec(db.conn, "COPY t2 FROM STDIN (FORMAT binary)");
    assert_int_equal(PQresultStatus(r), PGRES_COPY_IN);
    PQclear(r);
    assert_int_equal(PQputCopyData(db.conn, data, (int)len), 1);
    assert_int_equal(PQputCopyEnd(db.conn, NULL), 1);
    r = PQgetResult(db.conn);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fail_msg("COPY FROM: %s", PQresultErrorMessage(r));
    }
    PQclear(r);
    free(data);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM t JOIN t2 USING (id)"
                                     " WHERE t.h = t2.h AND t.h::text = t2.h::text"
                                     " AND NOT t.h <> t2.h"),
                     30);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM t2 WHERE h IS NULL"), 1);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM t a JOIN t b ON a.h = b.h"), 30);
    /* Corrupt bytes: each refused by the decoder, and by recv with the decoder's reason. */
    size_t pn;
    uint8_t *p = s_pack(&hs[0], &pn);
    uint8_t *q = malloc(pn + 1);
    for (int c = 0; c < 5; c++) {
        memcpy(q, p, pn);
        size_t qn = pn;
        switch (c) {
        case 0:
            q[qn++] = 0; /* a byte left over */
            break;
        case 1:
            qn--; /* truncated */
            break;
        case 2:
            q[0] = (uint8_t)((2 << 4) | (q[0] & 0x0f)); /* version 2 */
            break;
        case 3:
            q[1] |= 0x80; /* reserved flag */
            break;
        default:
            q[0] = (uint8_t)((q[0] & 0xf0) | 9); /* scale 9 */
            break;
        }
        ww_hist_t x;
        ww_hist_init(&x, 0);
        const char *why = NULL;
        assert_int_equal(ww_hist_unpack(q, qn, &x, &why), -EINVAL);
        assert_non_null(why);
        ww_hist_fini(&x);
        Oid type = s_hist_oid(&db);
        const char *vals[1] = {(const char *)q};
        int lens[1] = {(int)qn}, fmts[1] = {1};
        r = PQexecParams(db.conn, "SELECT $1::ww_hist", 1, &type, vals, lens, fmts, 0);
        s_assert_error_r(r, "corrupt binary", "22P03", why);
    }
    free(p);
    free(q);
    for (int k = 0; k < 30; k++) {
        ww_hist_fini(&hs[k]);
    }
    h_db_drop(&db);
}

static void test_make_and_accessors(void **state)
{
    h_db_t db;
    s_open(&db, "pgx_make");
    /* NULL/NaN min and max are "no finite value"; NULL counters are 0. */
    PGresult *r = h_query(
        &db, "SELECT h::text, ww_hist_scale(h), ww_hist_count(h), ww_hist_sum(h),"
             " ww_hist_min(h) IS NULL, ww_hist_max(h) IS NULL, ww_hist_zero_count(h),"
             " ww_hist_underflow(h), ww_hist_overflow(h), ww_hist_offset(h), ww_hist_counts(h),"
             " ww_hist_mean(h) IS NULL, ww_hist_make(6, 2, NULL, 'NaN', 'NaN', NULL, NULL, 2,"
             " NULL, NULL) = h"
             " FROM (SELECT ww_hist_make(6, 2, 0, NULL, NULL, 0, 0, 2, 5, '{0,0}') AS h) q");
    assert_string_equal(PQgetvalue(r, 0, 0),
                        "{\"scale\":6,\"count\":2,\"sum\":0,\"min\":null,\"max\":null,\"zero\":0,"
                        "\"underflow\":0,\"overflow\":2,\"buckets\":[]}");
    const char *want0[] = {"6", "2", "0", "t", "t", "0", "0", "2", "0", "{}", "t", "t"};
    for (int c = 1; c <= 12; c++) {
        assert_string_equal(PQgetvalue(r, 0, c), want0[c - 1]);
    }
    PQclear(r);
    /* A full one; accessors against C. */
    ww_hist_t h;
    ww_hist_init(&h, 2);
    const double vals[] = {0, -1, 1e-7, 5000, INFINITY, 0.3, 0.3, 0.31, 1.7, 2.5, 900};
    for (size_t k = 0; k < sizeof vals / sizeof vals[0]; k++) {
        ww_hist_record(&h, vals[k]);
    }
    r = s_query_h(&db,
                  "SELECT ww_hist_scale($1), ww_hist_count($1), ww_hist_sum($1), ww_hist_min($1),"
                  " ww_hist_max($1), ww_hist_zero_count($1), ww_hist_underflow($1),"
                  " ww_hist_overflow($1), ww_hist_offset($1), ww_hist_counts($1),"
                  " ww_hist_mean($1), (SELECT string_agg(index || ':' || count, ',')"
                  " FROM ww_hist_buckets($1)), ww_hist_make(ww_hist_scale($1), ww_hist_count($1),"
                  " ww_hist_sum($1), ww_hist_min($1), ww_hist_max($1), ww_hist_zero_count($1),"
                  " ww_hist_underflow($1), ww_hist_overflow($1), ww_hist_offset($1),"
                  " ww_hist_counts($1)) = $1",
                  &h, 0);
    assert_int_equal(atoi(PQgetvalue(r, 0, 0)), 2);
    assert_int_equal(atoll(PQgetvalue(r, 0, 1)), 11);
    assert_true(strtod(PQgetvalue(r, 0, 2), NULL) == h.sum);
    assert_true(strtod(PQgetvalue(r, 0, 3), NULL) == -1.0);
    assert_true(strtod(PQgetvalue(r, 0, 4), NULL) == 5000.0);
    assert_int_equal(atoll(PQgetvalue(r, 0, 5)), 2);
    assert_int_equal(atoll(PQgetvalue(r, 0, 6)), 1);
    assert_int_equal(atoll(PQgetvalue(r, 0, 7)), 2);
    int32_t first = ww_hist_index(0.3, 2), last = ww_hist_index(900, 2);
    assert_int_equal(atoi(PQgetvalue(r, 0, 8)), first);
    /* counts: dense from first to last, zeros between. */
    char want[4096] = "{", one[64];
    char bk[4096] = "";
    for (int32_t i = first; i <= last; i++) {
        uint64_t c = h.counts[i - h.offset];
        snprintf(one, sizeof one, "%s%llu", i > first ? "," : "", (unsigned long long)c);
        strcat(want, one);
        if (c) {
            snprintf(one, sizeof one, "%s%d:%llu", bk[0] ? "," : "", i, (unsigned long long)c);
            strcat(bk, one);
        }
    }
    strcat(want, "}");
    assert_string_equal(PQgetvalue(r, 0, 9), want);
    /* mean: max 5000 > 2^12, so overflow counts as finite. */
    assert_true(strtod(PQgetvalue(r, 0, 10), NULL) == h.sum / 11.0);
    assert_string_equal(PQgetvalue(r, 0, 11), bk);
    assert_string_equal(PQgetvalue(r, 0, 12), "t");
    PQclear(r);
    ww_hist_fini(&h);
    /* Mean without finite overflow: overflow left out. */
    assert_true(s_query_d(&db, "SELECT ww_hist_mean(ww_hist_make(0, 3, 3, 1.5, 1.5, 0, 0, 1, 0,"
                               " '{2}'))") == 1.5);
    /* Validation: each error names its field. */
    const struct {
        const char *args, *part;
    } bad[] = {
        {"NULL, 1, 1.5, 1.5, 1.5, 0, 0, 0, 0, '{1}'", "scale must not be NULL"},
        {"9, 1, 1.5, 1.5, 1.5, 0, 0, 0, 0, '{1}'", "scale must be in [0, 8]"},
        {"-1, 1, 1.5, 1.5, 1.5, 0, 0, 0, 0, '{1}'", "scale must be in [0, 8]"},
        {"0, NULL, 1.5, 1.5, 1.5, 0, 0, 0, 0, '{1}'", "count must not be NULL"},
        {"0, -1, 1.5, 1.5, 1.5, 0, 0, 0, 0, '{1}'", "count must be >= 0"},
        {"0, 2, 1.5, 1.5, 1.5, 0, 0, 0, 0, '{1}'", "count 2 is not"},
        {"0, 1, 1.5, 1.5, 1.5, -1, 0, 0, 0, '{2}'", "zero_count must be >= 0"},
        {"0, 1, 1.5, 1.5, 1.5, 0, -1, 0, 0, '{2}'", "underflow must be >= 0"},
        {"0, 1, 1.5, 1.5, 1.5, 0, 0, -1, 0, '{2}'", "overflow must be >= 0"},
        {"0, 1, 1.5, 1.5, 1.5, 0, 0, 0, 0, '{1,NULL}'", "counts[2] is NULL"},
        {"0, 1, 1.5, 1.5, 1.5, 0, 0, 0, 0, '{1,-1}'", "counts[2] must be >= 0"},
        {"0, 1, 5000, 5000, 5000, 0, 0, 0, 12, '{1}'", "counts[1]: bucket index 12"},
        {"0, 1, 1.5, 1.5, 1.5, 0, 0, 0, -21, '{1}'", "counts[1]: bucket index -21"},
        {"0, 1, 1.5, 1.5, 1.5, 0, 0, 0, 0, '{{1}}'", "one-dimensional"},
        {"0, 1, 'NaN', 1.5, 1.5, 0, 0, 0, 0, '{1}'", "sum must be finite"},
        {"0, 1, 1.5, 1.5, NULL, 0, 0, 0, 0, '{1}'", "min and max must both"},
        {"0, 1, 1.5, 1.6, 1.5, 0, 0, 0, 0, '{1}'", "min 1.6 is above max 1.5"},
        {"0, 1, 1.5, '-Infinity', 1.5, 0, 0, 0, 0, '{1}'", "min must be finite"},
        {"0, 0, 0, 1, 1, 0, 0, 0, 0, '{}'", "min, max and sum do not fit"},
        {"0, 1, 1.5, NULL, NULL, 0, 0, 0, 0, '{1}'", "min, max and sum do not fit"},
        {"0, 9223372036854775807, 0, NULL, NULL, 0, 0, 9223372036854775807, 0,"
         " '{0}'",
         ""},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char sql[512];
        snprintf(sql, sizeof sql, "SELECT ww_hist_make(%s)", bad[k].args);
        if (!bad[k].part[0]) { /* the largest count that is valid */
            PQclear(h_query(&db, sql));
            continue;
        }
        s_assert_error(&db, sql, "22023", bad[k].part);
    }
    h_db_drop(&db);
}

/* ww_merge over random histograms (NULL rows among them) = a chain of C ww_hist_merge in
 * the same order, bit for bit; ww_hist_add likewise; no rows or only NULL rows: NULL. */
static void test_merge_equals_c(void **state)
{
    h_db_t db;
    s_open(&db, "pgx_merge");
    PQclear(h_query(&db, "CREATE TABLE t (id integer PRIMARY KEY, h ww_hist)"));
    uint64_t st = 13;
    ww_hist_t sum, prev;
    ww_hist_init(&sum, WW_HIST_MAX_SCALE);
    ww_hist_init(&prev, 6);
    bool have_prev = false;
    for (int id = 1; id <= 300; id++) {
        if (id % 37 == 0) {
            s_insert(&db, "t", id, NULL);
            continue;
        }
        ww_hist_t h;
        s_random(&h, &st, 6, 0, id % 3 == 0);
        assert_int_equal(ww_hist_merge(&sum, &h), 0);
        s_insert(&db, "t", id, &h);
        if (have_prev && id % 50 == 0) {
            /* ww_hist_add(prev, h) = C merge. */
            ww_hist_t want;
            ww_hist_init(&want, prev.scale);
            assert_int_equal(ww_hist_merge(&want, &prev), 0);
            assert_int_equal(ww_hist_merge(&want, &h), 0);
            char sql[160];
            snprintf(sql, sizeof sql,
                     "SELECT ww_hist_add(a.h, b.h) FROM t a, t b WHERE a.id = %d AND b.id = %d",
                     id - 1, id);
            ww_hist_t got;
            assert_true(s_fetch(&db, sql, &got));
            s_assert_same(&got, &want, "ww_hist_add");
            ww_hist_fini(&got);
            ww_hist_fini(&want);
        }
        ww_hist_reset(&prev);
        ww_hist_fini(&prev);
        prev = h;
        have_prev = true;
    }
    ww_hist_t got;
    assert_true(s_fetch(&db, "SELECT ww_merge(h ORDER BY id) FROM t", &got));
    s_assert_same(&got, &sum, "ww_merge");
    ww_hist_fini(&got);
    /* NULL-tolerant add; NULL for no rows and for NULL rows only. */
    assert_true(s_fetch(&db, "SELECT ww_hist_add(h, NULL) FROM t WHERE id = 1", &got));
    ww_hist_fini(&got);
    assert_true(s_fetch(&db, "SELECT ww_hist_add(NULL, h) FROM t WHERE id = 1", &got));
    ww_hist_fini(&got);
    assert_false(s_fetch(&db, "SELECT ww_hist_add(NULL::ww_hist, NULL)", &got));
    assert_false(s_fetch(&db, "SELECT ww_merge(h) FROM t WHERE id < 0", &got));
    assert_false(s_fetch(&db, "SELECT ww_merge(h) FROM t WHERE id = 37", &got));
    ww_hist_fini(&sum);
    ww_hist_fini(&prev);
    h_db_drop(&db);
}

/* Histograms of scales 8, 6, 3 and 0 merged: everything at scale 0, as C merges them;
 * ww_hist_downscale = C, and its errors. */
static void test_merge_mixed_scales_and_downscale(void **state)
{
    h_db_t db;
    s_open(&db, "pgx_scales");
    PQclear(h_query(&db, "CREATE TABLE t (id integer PRIMARY KEY, h ww_hist)"));
    uint64_t st = 14;
    const int scales[] = {8, 6, 3, 0};
    ww_hist_t sum, sum86;
    ww_hist_init(&sum, WW_HIST_MAX_SCALE);
    ww_hist_init(&sum86, WW_HIST_MAX_SCALE);
    for (int id = 1; id <= 40; id++) {
        ww_hist_t h;
        s_random(&h, &st, scales[id % 4], 0, true);
        assert_int_equal(ww_hist_merge(&sum, &h), 0);
        if (scales[id % 4] >= 6) {
            assert_int_equal(ww_hist_merge(&sum86, &h), 0);
        }
        s_insert(&db, "t", id, &h);
        for (int s = 0; s <= h.scale; s++) {
            ww_hist_t want, got;
            ww_hist_init(&want, h.scale);
            assert_int_equal(ww_hist_merge(&want, &h), 0);
            assert_int_equal(ww_hist_downscale(&want, s), 0);
            char sql[128];
            snprintf(sql, sizeof sql, "SELECT ww_hist_downscale(h, %d) FROM t WHERE id = %d", s,
                     id);
            assert_true(s_fetch(&db, sql, &got));
            s_assert_same(&got, &want, "ww_hist_downscale");
            ww_hist_fini(&got);
            ww_hist_fini(&want);
        }
        ww_hist_fini(&h);
    }
    ww_hist_t got;
    assert_true(s_fetch(&db, "SELECT ww_merge(h ORDER BY id) FROM t", &got));
    assert_int_equal(got.scale, 0);
    s_assert_same(&got, &sum, "ww_merge across scales");
    ww_hist_fini(&got);
    assert_true(
        s_fetch(&db, "SELECT ww_merge(h ORDER BY id) FROM t WHERE ww_hist_scale(h) >= 6", &got));
    assert_int_equal(got.scale, 6);
    s_assert_same(&got, &sum86, "ww_merge of scales 8 and 6");
    ww_hist_fini(&got);
    s_assert_error(&db, "SELECT ww_hist_downscale(h, -1) FROM t WHERE id = 2", "22023",
                   "cannot change scale 3 to -1");
    s_assert_error(&db, "SELECT ww_hist_downscale(h, 4) FROM t WHERE id = 2", "22023",
                   "cannot change scale 3 to 4");
    ww_hist_fini(&sum);
    ww_hist_fini(&sum86);
    h_db_drop(&db);
}

/* ww_merge in a parallel plan: partial aggregates in workers, serialised, combined; the
 * result equals the serial one (sum to rounding) and the C merge. */
static void test_merge_parallel(void **state)
{
    h_db_t db;
    s_open(&db, "pgx_par");
    PQclear(h_query(&db, "CREATE TABLE s (id integer PRIMARY KEY, h ww_hist)"));
    uint64_t st = 15;
    const int distinct = 100, copies = 400;
    ww_hist_t sum;
    ww_hist_init(&sum, WW_HIST_MAX_SCALE);
    for (int id = 0; id < distinct; id++) {
        ww_hist_t h;
        s_random(&h, &st, id % 10 == 0 ? 5 : 6, 0, id % 4 == 0);
        for (int c = 0; c < copies; c++) {
            assert_int_equal(ww_hist_merge(&sum, &h), 0);
        }
        s_insert(&db, "s", id, &h);
        ww_hist_fini(&h);
    }
    PQclear(h_query(&db, "CREATE TABLE big AS SELECT s.id, s.h FROM s,"
                         " generate_series(1, 400) g ORDER BY g, s.id"));
    PQclear(h_query(&db, "ANALYZE big"));
    PQclear(h_query(&db, "SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0;"
                         " SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;"
                         " SET parallel_leader_participation = off"));
    PGresult *r = h_query(&db, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF)"
                               " SELECT ww_merge(h) FROM big");
    char plan[8192] = "";
    for (int k = 0; k < PQntuples(r); k++) {
        strncat(plan, PQgetvalue(r, k, 0), sizeof plan - strlen(plan) - 2);
        strcat(plan, "\n");
    }
    PQclear(r);
    if (!strstr(plan, "Partial Aggregate") || !strstr(plan, "Finalize Aggregate") ||
        strstr(plan, "Workers Launched: 0") || !strstr(plan, "Workers Launched:")) {
        fail_msg("not a parallel aggregate with workers:\n%s", plan);
    }
    /* Grouped, hashed: the finalize step's hash table holds one state per group, as a
     * serial hashed aggregate does (a deserialized partial state is garbage once combined;
     * kept in the aggregate context it stayed in the table's memory for the query, one
     * per group and worker: 792 kB against a serial 528 kB here, 280 kB once fixed). */
    long kb[2];
    for (int par_on = 0; par_on < 2; par_on++) {
        r = h_query(&db, par_on ? "SET enable_sort = off; SET max_parallel_workers_per_gather = 2;"
                                  " EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF)"
                                  " SELECT id % 50, ww_merge(h) FROM big GROUP BY 1"
                                : "SET enable_sort = off; SET max_parallel_workers_per_gather = 0;"
                                  " EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF)"
                                  " SELECT id % 50, ww_merge(h) FROM big GROUP BY 1");
        plan[0] = '\0';
        for (int k = 0; k < PQntuples(r); k++) {
            strncat(plan, PQgetvalue(r, k, 0), sizeof plan - strlen(plan) - 2);
            strcat(plan, "\n");
        }
        PQclear(r);
        const char *top = strstr(plan, par_on ? "Finalize HashAggregate" : "HashAggregate");
        const char *mem = top ? strstr(top, "Memory Usage: ") : NULL;
        if (!mem || (par_on && !strstr(plan, "Workers Launched: 2"))) {
            fail_msg("not the hashed aggregate expected:\n%s", plan);
        }
        kb[par_on] = strtol(mem + 14, NULL, 10);
    }
    PQclear(h_query(&db, "RESET enable_sort; SET max_parallel_workers_per_gather = 2"));
    if (kb[1] > kb[0]) {
        fail_msg("the finalize hash table holds %ld kB for 50 groups, a serial one %ld kB:\n%s",
                 kb[1], kb[0], plan);
    }
    ww_hist_t par, ser;
    assert_true(s_fetch(&db, "SELECT ww_merge(h) FROM big", &par));
    PQclear(h_query(&db, "SET max_parallel_workers_per_gather = 0"));
    assert_true(s_fetch(&db, "SELECT ww_merge(h) FROM big", &ser));
    s_assert_same_but_sum(&par, &ser, "parallel vs serial");
    s_assert_same_but_sum(&ser, &sum, "serial vs C");
    assert_int_equal(par.scale, 5);
    ww_hist_fini(&par);
    ww_hist_fini(&ser);
    ww_hist_fini(&sum);
    h_db_drop(&db);
}

/* A group of one row is that row (ww_pg_agg.c keeps its bytes undecoded): grouped and not,
 * at several scales, with specials, empty, only zeros (a sum of 0 and -0, which the packed
 * form does not keep), and all of them together. Each equals the C merge of its rows into
 * an empty histogram. */
static void test_merge_groups_of_one(void **state)
{
    (void)state;
    h_db_t db;
    s_open(&db, "pgx_one");
    PQclear(h_query(&db, "CREATE TABLE g (id integer PRIMARY KEY, k integer, h ww_hist)"
                         " PARTITION BY LIST (id)"));
    uint64_t st = 29;
    enum { N = 24 };
    ww_hist_t hs[N];
    for (int id = 0; id < N; id++) {
        char sql[160];
        snprintf(sql, sizeof sql, "CREATE TABLE g%d PARTITION OF g FOR VALUES IN (%d)", id, id);
        PQclear(h_query(&db, sql));
        if (id == 0) {
            ww_hist_init(&hs[id], 6); /* empty */
        } else if (id == 1) {
            ww_hist_init(&hs[id], 6);
            ww_hist_record(&hs[id], 0.0);
            hs[id].sum = -0.0;
        } else {
            s_random(&hs[id], &st, 3 + id % 4, 0, id % 3 == 0);
        }
        snprintf(sql, sizeof sql, "INSERT INTO g VALUES (%d, 0, $1)", id);
        PQclear(s_query_h(&db, sql, &hs[id], 0));
    }
    PQclear(h_query(&db, "ANALYZE g"));
    for (int id = 0; id < N; id++) {
        ww_hist_t want, got;
        ww_hist_init(&want, WW_HIST_MAX_SCALE);
        assert_int_equal(ww_hist_merge(&want, &hs[id]), 0);
        for (int k = 0; k < 2; k++) {
            char sql[128], what[64];
            snprintf(sql, sizeof sql, "SELECT ww_merge(h) FROM g WHERE id = %d%s", id,
                     k ? " GROUP BY id" : "");
            snprintf(what, sizeof what, "a group of one row, id %d (%s)", id,
                     k ? "grouped" : "plain");
            assert_true(s_fetch(&db, sql, &got));
            s_assert_same(&got, &want, what);
            ww_hist_fini(&got);
        }
        ww_hist_fini(&want);
    }
    /* All of them in one group, partitionwise allowed (the planner takes it when it
     * costs less: a partial state of one row per partition, combined in this process). */
    PQclear(h_query(&db, "SET enable_partitionwise_aggregate = on"));
    ww_hist_t want, got;
    ww_hist_init(&want, WW_HIST_MAX_SCALE);
    for (int id = 0; id < N; id++) {
        assert_int_equal(ww_hist_merge(&want, &hs[id]), 0);
    }
    assert_true(s_fetch(&db, "SELECT ww_merge(h) FROM g GROUP BY k", &got));
    s_assert_same(&got, &want, "partial states of one row, combined");
    ww_hist_fini(&got);
    ww_hist_fini(&want);
    for (int id = 0; id < N; id++) {
        ww_hist_fini(&hs[id]);
    }
    h_db_drop(&db);
}

/* The q values every quantile check uses: fixed ones and random ones. */
static int s_qs(double *qs, uint64_t *st)
{
    const double fixed[] = {0,    0.001, 0.01,  0.07, 0.1,    0.25,   0.5,    0.75, 0.9,
                            0.95, 0.99,  0.999, 1,    0.3333, 0.6667, 0.9999, 1e-9, 0.123456789};
    int n = 0;
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++) {
        qs[n++] = fixed[k];
    }
    for (int k = 0; k < 30; k++) {
        qs[n++] = ww_test_rng_unit(st);
    }
    return n;
}

/* ww_quantile(h, q) for every q of qs, through one query; out[k] NaN for NULL. */
static void s_sql_quantiles(h_db_t *db, const ww_hist_t *h, const double *qs, int n, double *out)
{
    char sql[8192];
    int len = snprintf(sql, sizeof sql, "SELECT ww_quantile($1, q) FROM unnest('{");
    for (int k = 0; k < n; k++) {
        len += snprintf(sql + len, sizeof sql - (size_t)len, "%s%.17g", k ? "," : "", qs[k]);
    }
    snprintf(sql + len, sizeof sql - (size_t)len,
             "}'::float8[]) WITH ORDINALITY AS u(q, k) ORDER BY k");
    PGresult *r = s_query_h(db, sql, h, 0);
    assert_int_equal(PQntuples(r), n);
    for (int k = 0; k < n; k++) {
        out[k] = PQgetisnull(r, k, 0) ? NAN : strtod(PQgetvalue(r, k, 0), NULL);
    }
    PQclear(r);
}

static void test_quantile_equals_c(void **state)
{
    h_db_t db;
    s_open(&db, "pgx_q");
    uint64_t st = 16;
    double qs[64], got[64];
    for (int k = 0; k < 60; k++) {
        ww_hist_t h;
        s_random(&h, &st, 3 + k % 6, k % 5 == 0 ? 1 + k % 3 : 0, k % 2 == 0);
        int n = s_qs(qs, &st);
        s_sql_quantiles(&db, &h, qs, n, got);
        for (int j = 0; j < n; j++) {
            double want = ww_hist_quantile(&h, qs[j]);
            if (!(got[j] == want)) {
                fail_msg("histogram %d q %.17g: SQL %.17g, C %.17g", k, qs[j], got[j], want);
            }
        }
        ww_hist_fini(&h);
    }
    /* NULL q, NULL or empty histogram: NULL. */
    assert_true(isnan(s_query_d(&db, "SELECT ww_quantile(ww_hist_make(0, 1, 1.5, 1.5, 1.5, 0, 0,"
                                     " 0, 0, '{1}'), NULL)")));
    assert_true(isnan(s_query_d(&db, "SELECT ww_quantile(NULL, 0.5)")));
    assert_true(isnan(s_query_d(&db, "SELECT ww_quantile('{\"scale\":6,\"count\":0,"
                                     "\"buckets\":[]}', 0.5)")));
    /* q outside [0, 1]: the error, its code, message and hint. */
    const char *bad[] = {"-0.01", "1.0000001", "'NaN'", "'Infinity'", "99"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT ww_quantile(NULL, %s)", bad[k]);
        PGresult *r = PQexec(db.conn, sql);
        assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
        assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "22023");
        assert_non_null(strstr(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY),
                               "ww_quantile: q must be in [0, 1], got"));
        assert_string_equal(PQresultErrorField(r, PG_DIAG_MESSAGE_HINT),
                            "the 99th percentile is q = 0.99");
        PQclear(r);
    }
    s_assert_error(&db, "SELECT ww_quantile(NULL, 1.0000001)", "22023", "got 1.0000001");
    s_assert_error(&db, "SELECT ww_quantile(NULL, 'NaN')", "22023", "got NaN");
    h_db_drop(&db);
}

/* Quantiles of scale-6 histograms within (b-1)/(b+1) = 0.5415% of the exact nearest-rank
 * quantile of the values, for several shapes. */
static void test_quantile_accuracy(void **state)
{
    h_db_t db;
    s_open(&db, "pgx_acc");
    const int n = 20000;
    double *v = malloc(sizeof(double) * (size_t)n);
    assert_non_null(v);
    const double b = exp2(1.0 / 64), bound = (b - 1) / (b + 1) * (1 + 1e-12);
    assert_true(bound < 0.00542);
    uint64_t st = 17;
    double qs[64], got[64];
    const char *names[] = {"lognormal", "uniform", "bimodal", "heavy tail"};
    for (int dist = 0; dist < 4; dist++) {
        ww_hist_t h;
        ww_hist_init(&h, 6);
        for (int k = 0; k < n; k++) {
            double x;
            do {
                double u = ww_test_rng_unit(&st);
                x = dist == 0   ? s_lognormal(&st, 0.25, 0.6)
                    : dist == 1 ? 0.001 + 1.999 * u
                    : dist == 2
                        ? (u < 0.7 ? s_lognormal(&st, 0.002, 0.2) : s_lognormal(&st, 0.5, 0.3))
                        : 0.001 * pow(u, -1.0 / 1.2); /* Pareto, alpha 1.2 */
            } while (!(x > WW_HIST_MIN && x <= WW_HIST_MAX));
            v[k] = x;
            ww_hist_record(&h, x);
        }
        qsort(v, (size_t)n, sizeof *v, ww_test_cmp_double);
        int nq = s_qs(qs, &st);
        s_sql_quantiles(&db, &h, qs, nq, got);
        for (int j = 0; j < nq; j++) {
            double exact = v[ww_hist_rank(qs[j], (uint64_t)n) - 1];
            double err = fabs(got[j] - exact) / exact;
            if (!(err <= bound)) {
                fail_msg("%s q %.17g: %.17g vs exact %.17g, error %.4f%%", names[dist], qs[j],
                         got[j], exact, 100 * err);
            }
        }
        ww_hist_fini(&h);
    }
    free(v);
    h_db_drop(&db);
}

/* ww_hist_le and ww_hist_count_above against reference computations over the C histogram,
 * written from their definitions (every part's point, not the suffix shortcut). */
static void test_le_and_count_above(void **state)
{
    h_db_t db;
    s_open(&db, "pgx_le");
    uint64_t st = 18;
    const double les[] = {-INFINITY, -1,  0, 1e-7, WW_HIST_MIN, 0.0005, 0.001,   0.01,
                          0.1,       0.5, 1, 10,   4096,        5000,   INFINITY};
    const size_t nles = sizeof les / sizeof les[0];
    for (int k = 0; k < 30; k++) {
        ww_hist_t h;
        s_random(&h, &st, 2 + k % 7, k % 6 == 0 ? 1 + k % 4 : 0, k % 2 == 0);
        /* les NULL: one row per non-empty bucket, then +Inf. */
        PGresult *r = s_query_h(&db, "SELECT le, count FROM ww_hist_le($1)", &h, 0);
        int row = 0;
        uint64_t cum = h.zero_count + h.underflow;
        for (uint32_t j = 0; j < h.len; j++) {
            if (h.counts[j] == 0) {
                continue;
            }
            cum += h.counts[j];
            assert_true(row < PQntuples(r));
            assert_true(strtod(PQgetvalue(r, row, 0), NULL) ==
                        ww_hist_upper(h.offset + (int32_t)j, h.scale));
            assert_int_equal(strtoull(PQgetvalue(r, row, 1), NULL, 10), cum);
            row++;
        }
        assert_int_equal(PQntuples(r), row + 1);
        assert_string_equal(PQgetvalue(r, row, 0), "Infinity");
        assert_int_equal(strtoull(PQgetvalue(r, row, 1), NULL, 10), h.count);
        PQclear(r);
        /* les given. */
        r = s_query_h(&db,
                      "SELECT le, count FROM ww_hist_le($1, '{-Infinity,-1,0,1e-7,"
                      "9.5367431640625e-07,0.0005,0.001,0.01,0.1,0.5,1,10,4096,5000,Infinity}')",
                      &h, 0);
        assert_int_equal(PQntuples(r), (int)nles);
        for (size_t e = 0; e + 1 < nles; e++) {
            uint64_t want =
                (les[e] >= 0 ? h.zero_count : 0) + (les[e] >= WW_HIST_MIN ? h.underflow : 0);
            for (uint32_t j = 0; j < h.len; j++) {
                if (ww_hist_upper(h.offset + (int32_t)j, h.scale) <= les[e]) {
                    want += h.counts[j];
                }
            }
            assert_true(strtod(PQgetvalue(r, (int)e, 0), NULL) == les[e]);
            if (strtoull(PQgetvalue(r, (int)e, 1), NULL, 10) != want) {
                fail_msg("le %g: %s, want %llu", les[e], PQgetvalue(r, (int)e, 1),
                         (unsigned long long)want);
            }
        }
        assert_int_equal(strtoull(PQgetvalue(r, (int)nles - 1, 1), NULL, 10), h.count);
        PQclear(r);
        /* count_above at the les, at each quantile point and a hair either side. */
        double xs[64 * 3 + 16];
        int nx = 0;
        for (size_t e = 0; e < nles; e++) {
            xs[nx++] = les[e];
        }
        xs[nx++] = NAN;
        double qs[64];
        int nq = s_qs(qs, &st);
        for (int j = 0; j < nq; j++) {
            double x = ww_hist_quantile(&h, qs[j]);
            xs[nx++] = x;
            xs[nx++] = nextafter(x, -INFINITY);
            xs[nx++] = nextafter(x, INFINITY);
        }
        char sql[16384];
        int len = snprintf(sql, sizeof sql, "SELECT ww_hist_count_above($1, x) FROM unnest('{");
        for (int j = 0; j < nx; j++) {
            len += snprintf(sql + len, sizeof sql - (size_t)len, "%s%.17g", j ? "," : "", xs[j]);
        }
        snprintf(sql + len, sizeof sql - (size_t)len,
                 "}'::float8[]) WITH ORDINALITY AS u(x, k) ORDER BY k");
        r = s_query_h(&db, sql, &h, 0);
        assert_int_equal(PQntuples(r), nx);
        for (int j = 0; j < nx; j++) {
            double x = xs[j];
            uint64_t want = 0;
            if (0 > x) {
                want += h.zero_count;
            }
            double pu = isnan(h.max) || h.max > WW_HIST_MIN ? WW_HIST_MIN : h.max;
            if (pu > x) {
                want += h.underflow;
            }
            for (uint32_t i = 0; i < h.len; i++) {
                double lo = ww_hist_lower(h.offset + (int32_t)i, h.scale);
                double hi = ww_hist_upper(h.offset + (int32_t)i, h.scale);
                double p = 2 * lo * hi / (lo + hi);
                p = isnan(h.min) ? p : fmin(fmax(p, h.min), h.max);
                if (p > x) {
                    want += h.counts[i];
                }
            }
            double po = h.max > WW_HIST_MAX && isfinite(h.max) ? h.max : INFINITY;
            if (po > x) {
                want += h.overflow;
            }
            if (strtoull(PQgetvalue(r, j, 0), NULL, 10) != want) {
                fail_msg("count_above %.17g: %s, want %llu", x, PQgetvalue(r, j, 0),
                         (unsigned long long)want);
            }
        }
        PQclear(r);
        ww_hist_fini(&h);
    }
    /* NULL histogram: no le rows, count_above 0; NULL x: NULL; bad les: an error. */
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM ww_hist_le(NULL)"), 0);
    assert_int_equal(h_query_ll(&db, "SELECT ww_hist_count_above(NULL, 1)"), 0);
    PGresult *r = h_query(&db, "SELECT ww_hist_count_above('{\"scale\":0,\"count\":1,\"min\":1.5,"
                               "\"max\":1.5,\"buckets\":[[0,1]]}', NULL) IS NULL");
    assert_string_equal(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
    const char *h1 = "'{\"scale\":0,\"count\":1,\"min\":1.5,\"max\":1.5,\"buckets\":[[0,1]]}'";
    const char *badles[] = {"'{0.1,NULL}'", "'{0.2,0.1}'", "'{NaN}'", "'{Infinity,1}'"};
    for (size_t k = 0; k < sizeof badles / sizeof badles[0]; k++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT * FROM ww_hist_le(%s, %s)", h1, badles[k]);
        s_assert_error(&db, sql, "22023", "ww_hist_le: les must be ascending numbers");
    }
    h_db_drop(&db);
}

/* Counters that would pass the bigint range: an error naming the counter, in ww_hist_add
 * and ww_merge; in C, past 2^64 the merge is refused and leaves dst unchanged. */
static void test_overflow_refused(void **state)
{
    h_db_t db;
    s_open(&db, "pgx_ovf");
    const char *big_zero = "ww_hist_make(0, 9223372036854775807, 0, -1, -1,"
                           " 9223372036854775807, 0, 0, 0, NULL)";
    const char *one_zero = "ww_hist_make(0, 1, -1, -1, -1, 1, 0, 0, 0, NULL)";
    const char *big_bucket = "ww_hist_make(0, 9223372036854775807, 1.5, 1.5, 1.5, 0, 0, 0, 0,"
                             " '{9223372036854775807}')";
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT ww_hist_add(%s, %s)", big_zero, one_zero);
    s_assert_error(&db, sql, "22003", "ww_hist_add: zero_count would be 9223372036854775808");
    snprintf(sql, sizeof sql, "SELECT ww_hist_add(%s, %s)", big_bucket, big_bucket);
    s_assert_error(&db, sql, "22003", "ww_hist_add: the count of bucket 0 would be");
    /* Across scales: bucket 1 of scale 1 is in bucket 0 of scale 0. */
    snprintf(sql, sizeof sql,
             "SELECT ww_hist_add(%s, ww_hist_make(1, 1, 1.5, 1.5, 1.5, 0, 0, 0, 1, '{1}'))",
             big_bucket);
    s_assert_error(&db, sql, "22003", "bucket 0");
    snprintf(sql, sizeof sql, "SELECT ww_merge(h) FROM (VALUES (%s), (%s)) v(h)", big_zero,
             one_zero);
    s_assert_error(&db, sql, "22003", "ww_merge: zero_count");
    snprintf(sql, sizeof sql,
             "SELECT ww_merge(h) FROM (VALUES (%s), (ww_hist_make(0, 1, 5000, 5000, 5000, 0, 0,"
             " 1, 0, NULL))) v(h)",
             big_zero);
    s_assert_error(&db, sql, "22003", "ww_merge: count would be 9223372036854775808");
    /* Up to INT64_MAX is fine. */
    snprintf(sql, sizeof sql,
             "SELECT ww_hist_count(ww_hist_add(ww_hist_make(0, 9223372036854775806, -1, -1, -1,"
             " 9223372036854775806, 0, 0, 0, NULL), %s))",
             one_zero);
    assert_true(h_query_ll(&db, sql) == INT64_MAX);
    h_db_drop(&db);

    /* C: past 2^64 refused, dst unchanged, plain and packed. */
    ww_hist_t a, b;
    ww_hist_init(&a, 0);
    ww_hist_init(&b, 0);
    a.count = a.zero_count = UINT64_MAX - 1;
    a.min = a.max = -1;
    b.count = b.zero_count = 5;
    b.min = b.max = -2;
    b.sum = -10;
    assert_int_equal(ww_hist_merge(&a, &b), -EOVERFLOW);
    assert_true(a.count == UINT64_MAX - 1 && a.zero_count == UINT64_MAX - 1 && a.min == -1);
    size_t n;
    uint8_t *p = s_pack(&b, &n);
    const char *why = NULL;
    assert_int_equal(ww_hist_merge_packed(&a, p, n, &why), -EOVERFLOW);
    assert_true(a.count == UINT64_MAX - 1 && a.zero_count == UINT64_MAX - 1 && a.min == -1);
    free(p);
    ww_hist_fini(&a);
    ww_hist_fini(&b);
}

/* Sample blocks (1.1): the rows of a table of node_samples' columns, with what a block must
 * give back bit for bit (NaN, -0, a denormal, infinities, values off every grid, the
 * largest integer, NULL humidity, three samples at one instant), aggregated in two orders
 * into the same bytes; those bytes are what lib's decoder accepts and its encoder makes
 * again, and ww_sblock_samples gives the rows back. Refused: a negative count, a NULL
 * where the field cannot be, bytes that are not a block (data_corrupted, nothing read). */
static void test_sblock_round_trip(void **state)
{
    (void)state;
    h_db_t db;
    s_open(&db, "pgx_sblock");
    PQclear(h_query(&db, "CREATE TABLE s (time timestamptz, power_w real, inlet_c real,"
                         " outlet_c real, flow_lpm real, wafer_hotspot_c real,"
                         " utilization real, tokens_per_s real, requests_queued integer,"
                         " requests_in_flight integer, requests_completed integer,"
                         " throttled boolean, throttle_factor real, humidity_pct real)"));
    PQclear(h_query(
        &db, "INSERT INTO s SELECT timestamptz '2026-12-01 10:00:00+00' + g * interval '1 s',"
             " 20000 + (g % 17) * 3, 30 + (g % 7) / 10.0, 40.5, 12.3 + (g % 3) / 10.0,"
             " 80.1, (g % 101) / 100.0, 1000 + g % 11, g % 5, 3, g % 2, g % 50 = 0,"
             " CASE WHEN g % 50 = 0 THEN 0.75 ELSE 1 END,"
             " CASE WHEN g % 9 = 0 THEN NULL ELSE 40 + g % 4 END"
             " FROM generate_series(0, 3599) g"));
    PQclear(h_query(&db, "INSERT INTO s VALUES"
                         " ('2026-12-01 10:00:10+00', 'NaN', '-0', 1e-40, 'Infinity', 0.1234567,"
                         "  0.5, '-Infinity', 0, 2147483647, 0, true, 1, NULL),"
                         " ('2026-12-01 10:00:10+00', 1, 2, 3, 4, 5, 0.5, 7, 8, 9, 10, false,"
                         "  0.75, 99.5)"));
    PGresult *r = PQexec(db.conn, "SELECT ww_sblock_agg(time, power_w, inlet_c, outlet_c,"
                                  " flow_lpm, wafer_hotspot_c, utilization, tokens_per_s,"
                                  " requests_queued, requests_in_flight, requests_completed,"
                                  " throttled, throttle_factor, humidity_pct) FROM s");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    r = PQexecParams(db.conn,
                     "SELECT ww_sblock_agg(time, power_w, inlet_c, outlet_c, flow_lpm,"
                     " wafer_hotspot_c, utilization, tokens_per_s, requests_queued,"
                     " requests_in_flight, requests_completed, throttled, throttle_factor,"
                     " humidity_pct ORDER BY time DESC, power_w),"
                     " ww_sblock_agg(time, power_w, inlet_c, outlet_c, flow_lpm,"
                     " wafer_hotspot_c, utilization, tokens_per_s, requests_queued,"
                     " requests_in_flight, requests_completed, throttled, throttle_factor,"
                     " humidity_pct ORDER BY random()) FROM s",
                     0, NULL, NULL, NULL, NULL, 1);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    size_t len = (size_t)PQgetlength(r, 0, 0);
    assert_int_equal(PQgetlength(r, 0, 1), (int)len);
    assert_memory_equal(PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), len);
    uint8_t *block = malloc(len);
    assert_non_null(block);
    memcpy(block, PQgetvalue(r, 0, 0), len);
    PQclear(r);
    /* lib decodes it, and encodes the samples again into the same bytes. */
    size_t n = 0;
    assert_int_equal(ww_sblock_count(block, len, &n), 0);
    assert_int_equal(n, 3602);
    ww_sblock_sample_t *smp = calloc(n, sizeof *smp);
    assert_non_null(smp);
    char why[256];
    size_t got = 0;
    assert_int_equal(ww_sblock_decode(block, len, smp, n, &got, why, sizeof why), 0);
    ww_buf_t again = WW_BUF_INIT;
    assert_int_equal(ww_sblock_encode(smp, got, &again, why, sizeof why), 0);
    assert_int_equal(again.len, len);
    assert_memory_equal(again.p, block, len);
    ww_buf_free(&again);
    free(smp);
    /* SQL gives every row back, as text (-0 and NaN spelled out), duplicates counted. */
    s_block_gives_back(&db, block, len, "ww_sblock_samples", "ww_sblock_count",
                       "SELECT (time, power_w, inlet_c, outlet_c, flow_lpm, wafer_hotspot_c,"
                       " utilization, tokens_per_s, requests_queued, requests_in_flight,"
                       " requests_completed, throttled, throttle_factor, humidity_pct)::text"
                       " AS x FROM s",
                       3602);
    /* Not a block: another version, then cut short. (A changed bit inside a section may
     * well still be a valid block, of other samples: storage damage is for PostgreSQL's
     * page checksums to find.) */
    const char *samples_of = "SELECT count(*) FROM ww_sblock_samples($1)";
    block[0] = 2;
    s_assert_error_r(s_block_query(&db, samples_of, block, len), "another version", "XX001",
                     "not a valid sample block");
    block[0] = WW_SBLOCK_VERSION;
    s_assert_error_r(s_block_query(&db, samples_of, block, len - 1), "cut short", "XX001",
                     "not a valid sample block");
    free(block);
    /* No rows: NULL. A negative count: refused, naming the column. */
    assert_int_equal(h_query_ll(&db, "SELECT (ww_sblock_agg(time, power_w, inlet_c, outlet_c,"
                                     " flow_lpm, wafer_hotspot_c, utilization, tokens_per_s,"
                                     " requests_queued, requests_in_flight, requests_completed,"
                                     " throttled, throttle_factor, humidity_pct) IS NULL)::int"
                                     " FROM s WHERE false"),
                     1);
    static const struct {
        const char *sql, *column;
    } bad[] = {
        {"UPDATE s SET requests_queued = -1 WHERE time = '2026-12-01 10:00:05+00'",
         "requests_queued"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        PQclear(h_query(&db, bad[k].sql));
        r = PQexec(db.conn, "SELECT ww_sblock_agg(time, power_w, inlet_c, outlet_c, flow_lpm,"
                            " wafer_hotspot_c, utilization, tokens_per_s, requests_queued,"
                            " requests_in_flight, requests_completed, throttled,"
                            " throttle_factor, humidity_pct) FROM s");
        assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
        if (!strstr(PQresultErrorMessage(r), bad[k].column)) {
            fail_msg("the refusal does not name %s: %s", bad[k].column, PQresultErrorMessage(r));
        }
        PQclear(r);
    }
    /* A reading not measured (NULL power, NULL throttled) is kept as NULL (schema 22). */
    PQclear(h_query(&db, "UPDATE s SET requests_queued = 0, power_w = NULL, throttled = NULL"
                         " WHERE time = '2026-12-01 10:00:05+00'"));
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM ww_sblock_samples((SELECT"
                                     " ww_sblock_agg(time, power_w, inlet_c, outlet_c, flow_lpm,"
                                     " wafer_hotspot_c, utilization, tokens_per_s, requests_queued,"
                                     " requests_in_flight, requests_completed, throttled,"
                                     " throttle_factor, humidity_pct) FROM s))"
                                     " WHERE power_w IS NULL AND throttled IS NULL"
                                     " AND time = '2026-12-01 10:00:05+00'"),
                     1);
    h_db_drop(&db);
}

/* Window blocks (1.2): a table of latency_windows' columns (three models, one of them
 * non-ASCII, durations -0 and NaN, counters at INT64_MIN and INT64_MAX, parts, histograms
 * with zeros, negatives, underflow and overflow) aggregated in two orders into the same
 * bytes, which lib decodes and encodes again; ww_wblock_windows gives every row back,
 * histograms byte for byte. Refused: bytes that are not a block, a block whose model is not
 * text (data_corrupted), a NULL histogram (naming it). */
static void test_wblock_round_trip(void **state)
{
    (void)state;
    h_db_t db;
    s_open(&db, "pgx_wblock");
    PQclear(h_query(&db, "ALTER EXTENSION waferwatch UPDATE TO '1.2'"));
    PQclear(h_query(&db, "CREATE TABLE h (id integer, h ww_hist)"));
    uint64_t st = 77;
    for (int i = 0; i < 40; i++) {
        ww_hist_t x;
        s_random(&x, &st, i % 9, i % 5 == 0 ? 1 : 0, true);
        s_insert(&db, "h", i, &x);
        ww_hist_fini(&x);
    }
    PQclear(h_query(
        &db, "CREATE TABLE w AS SELECT"
             " timestamptz '2026-12-01 10:00:00+00' + (g / 3) * interval '10 s' AS time,"
             " (ARRAY['llama3.1-8b', 'm2', 'modèle-ü'])[1 + g % 3] AS model,"
             " CASE g % 7 WHEN 0 THEN '-0'::float8 WHEN 1 THEN 'NaN' ELSE 10 END AS duration_s,"
             " (g * 37)::bigint AS requests_ok,"
             " CASE WHEN g = 5 THEN -9223372036854775808 ELSE 0 END::bigint AS requests_error,"
             " CASE WHEN g = 6 THEN 9223372036854775807 ELSE g % 2 END::bigint"
             "   AS requests_timeout,"
             " 0::bigint AS requests_rejected, (g * 1000)::bigint AS prompt_tokens,"
             " (g * 100)::bigint AS output_tokens, 1 + (g % 5 = 0)::int AS parts,"
             " (SELECT h FROM h WHERE id = g % 40) AS queue,"
             " (SELECT h FROM h WHERE id = (g + 1) % 40) AS ttft,"
             " (SELECT h FROM h WHERE id = (g + 2) % 40) AS tpot,"
             " (SELECT h FROM h WHERE id = (g + 3) % 40) AS e2e"
             " FROM generate_series(0, 999) g"));
#define S_WB_ARGS                                                                                  \
    "time, model, duration_s, requests_ok, requests_error, requests_timeout, requests_rejected,"   \
    " prompt_tokens, output_tokens, parts, queue, ttft, tpot, e2e"
    PGresult *r = PQexecParams(db.conn,
                               "SELECT ww_wblock_agg(" S_WB_ARGS " ORDER BY time DESC, model),"
                               " ww_wblock_agg(" S_WB_ARGS " ORDER BY random()) FROM w",
                               0, NULL, NULL, NULL, NULL, 1);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    size_t len = (size_t)PQgetlength(r, 0, 0);
    assert_int_equal(PQgetlength(r, 0, 1), (int)len);
    assert_memory_equal(PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), len);
    uint8_t *block = malloc(len);
    assert_non_null(block);
    memcpy(block, PQgetvalue(r, 0, 0), len);
    PQclear(r);
    /* lib decodes it, and encodes the windows again into the same bytes. */
    size_t n = 0, m = 0;
    assert_int_equal(ww_wblock_count(block, len, &n, &m), 0);
    assert_int_equal(n, 1000);
    assert_int_equal(m, 3);
    ww_wblock_window_t *win = calloc(n, sizeof *win);
    const char *models[3];
    size_t model_len[3];
    size_t acap = ww_wblock_arena_bound(len, n);
    uint8_t *arena = malloc(acap);
    assert_true(win && arena);
    char why[256];
    assert_int_equal(
        ww_wblock_decode(block, len, win, n, models, model_len, m, arena, acap, why, sizeof why),
        0);
    ww_buf_t again = WW_BUF_INIT;
    assert_int_equal(ww_wblock_encode(models, model_len, m, win, n, &again, why, sizeof why), 0);
    assert_int_equal(again.len, len);
    assert_memory_equal(again.p, block, len);
    /* A model that is not text of the database's encoding: refused when read. */
    const char *bad_models[3] = {models[0], "\xff\xfe", models[2]};
    const size_t bad_len[3] = {model_len[0], 2, model_len[2]};
    ww_buf_t bad = WW_BUF_INIT;
    assert_int_equal(ww_wblock_encode(bad_models, bad_len, m, win, n, &bad, why, sizeof why), 0);
    ww_buf_free(&again);
    free(arena);
    free(win);
    s_block_gives_back(&db, block, len, "ww_wblock_windows", "ww_wblock_count",
                       "SELECT (" S_WB_ARGS ")::text AS x FROM w", 1000);
    /* Histograms byte for byte (their binary form), not only as text. */
    r = s_block_query(&db,
                      "SELECT count(*) FROM (SELECT ww_hist_send(ttft), ww_hist_send(e2e)"
                      " FROM ww_wblock_windows($1) EXCEPT ALL"
                      " SELECT ww_hist_send(ttft), ww_hist_send(e2e) FROM w) x",
                      block, len);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(atoll(PQgetvalue(r, 0, 0)), 0);
    PQclear(r);
    /* Not a block: another version, then cut short, then a model that is not text. */
    const char *windows_of = "SELECT count(*) FROM ww_wblock_windows($1)";
    block[0] = 2;
    s_assert_error_r(s_block_query(&db, windows_of, block, len), "another version", "XX001",
                     "not a valid window block");
    block[0] = WW_WBLOCK_VERSION;
    s_assert_error_r(s_block_query(&db, windows_of, block, len - 1), "cut short", "XX001",
                     "not a valid window block");
    s_assert_error_r(s_block_query(&db, windows_of, (const uint8_t *)bad.p, bad.len),
                     "a model not text", "XX001", "not valid text");
    ww_buf_free(&bad);
    free(block);
    /* No rows: NULL. A NULL histogram: refused, naming it. */
    assert_int_equal(
        h_query_ll(&db, "SELECT (ww_wblock_agg(" S_WB_ARGS ") IS NULL)::int FROM w WHERE false"),
        1);
    PQclear(h_query(&db, "UPDATE w SET tpot = NULL WHERE requests_ok = 37"));
    s_assert_error(&db, "SELECT ww_wblock_agg(" S_WB_ARGS ") FROM w", "22004", "tpot is NULL");
#undef S_WB_ARGS
    h_db_drop(&db);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catalog_and_bounds),
        cmocka_unit_test(test_text_round_trip),
        cmocka_unit_test(test_text_malformed_refused),
        cmocka_unit_test(test_binary_round_trip_and_corrupt),
        cmocka_unit_test(test_make_and_accessors),
        cmocka_unit_test(test_merge_equals_c),
        cmocka_unit_test(test_merge_mixed_scales_and_downscale),
        cmocka_unit_test(test_merge_parallel),
        cmocka_unit_test(test_merge_groups_of_one),
        cmocka_unit_test(test_quantile_equals_c),
        cmocka_unit_test(test_quantile_accuracy),
        cmocka_unit_test(test_le_and_count_above),
        cmocka_unit_test(test_overflow_refused),
        cmocka_unit_test(test_sblock_round_trip),
        cmocka_unit_test(test_wblock_round_trip),
    };
    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
