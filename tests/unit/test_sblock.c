/* Unit tests of ww_sblock (the compact block of one node's samples): bit-exact round trips of
 * realistic quantized series, unquantized float noise, every special float (-0.0, NaN
 * payloads, +-inf, denormals, values just off the grid, k at the edges of the grid), U32 at
 * INT32_MAX, irregular, equal and extreme times, NULL runs, n = 0, 1, 2, 3; canonical bytes;
 * the iterator against decode; every truncation and many mutations of valid blocks refused
 * or, when accepted, canonical; hand-written byte vectors from the format in ww_sblock.h (so
 * the format is pinned); hostile heads and sections refused with a reason naming the column
 * and the sample; the grid's fast path checked exhaustively; and the column list against
 * WW_READING_FIELDS. */
#include "ww_fields.h"
#include "ww_sblock.h"
#include "ww_test.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WHY 256

static const ww_field_t s_fields[] = WW_READING_FIELD_TABLE;
#define N_FIELDS (sizeof s_fields / sizeof s_fields[0])

/* ---- helpers ------------------------------------------------------------------------ */

static float u2f(uint32_t u)
{
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static uint32_t f2u(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

static float *f32_at(ww_sblock_sample_t *s, size_t col)
{
    return (float *)((char *)s + ww_sblock_column(col)->off);
}

static bool *null_at(ww_sblock_sample_t *s, size_t col)
{
    return (bool *)((char *)s + ww_sblock_column(col)->null_off);
}

/* The column index of field `name`. */
static size_t col_of(const char *name)
{
    for (size_t c = 0; ww_sblock_column(c); c++) {
        if (strcmp(ww_sblock_column(c)->name, name) == 0) {
            return c;
        }
    }
    fail_msg("no column %s", name);
    return 0;
}

/* a and b hold the same samples, bit for bit (a NULL value: b NULL with value 0). */
static void assert_same(const ww_sblock_sample_t *a, const ww_sblock_sample_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i].time_us != b[i].time_us) {
            fail_msg("sample %zu: time %lld, decoded %lld", i, (long long)a[i].time_us,
                     (long long)b[i].time_us);
        }
        for (size_t c = 1; c < WW_SBLOCK_NCOLS; c++) {
            const ww_sblock_column_t *col = ww_sblock_column(c);
            size_t sz = col->kind == WW_FIELD_KIND_BOOL ? sizeof(bool) : 4;
            const char *pa = (const char *)&a[i] + col->off, *pb = (const char *)&b[i] + col->off;
            if (col->optional) {
                bool na = *(const bool *)((const char *)&a[i] + col->null_off);
                bool nb = *(const bool *)((const char *)&b[i] + col->null_off);
                if (na != nb) {
                    fail_msg("sample %zu: %s NULL %d, decoded %d", i, col->name, na, nb);
                }
                if (na) {
                    static const char zero[4];
                    if (memcmp(pb, zero, sz) != 0) {
                        fail_msg("sample %zu: %s NULL with a value", i, col->name);
                    }
                    continue;
                }
            }
            if (memcmp(pa, pb, sz) != 0) {
                uint32_t ua = 0, ub = 0;
                memcpy(&ua, pa, sz);
                memcpy(&ub, pb, sz);
                fail_msg("sample %zu: %s 0x%08x, decoded 0x%08x", i, col->name, ua, ub);
            }
        }
    }
}

/* Encodes s[0 .. n) into b (reset first); fails the test on an error. */
static void encode_ok(const ww_sblock_sample_t *s, size_t n, ww_buf_t *b)
{
    char why[WHY];
    ww_buf_reset(b);
    int rc = ww_sblock_encode(s, n, b, why, sizeof why);
    if (rc != 0) {
        fail_msg("encode: %d: %s", rc, why);
    }
}

/* Decodes p[0 .. len) (expected valid) with decode and with the iterator. */
static ww_sblock_sample_t *decode_ok(const uint8_t *p, size_t len, size_t *n)
{
    char why[WHY];
    size_t count;
    assert_int_equal(ww_sblock_count(p, len, &count), 0);
    ww_sblock_sample_t *out = calloc(count ? count : 1, sizeof *out);
    assert_non_null(out);
    int rc = ww_sblock_decode(p, len, out, count, n, why, sizeof why);
    if (rc != 0) {
        fail_msg("decode: %d: %s", rc, why);
    }
    assert_true(*n == count);
    ww_sblock_iter_t *it = malloc(sizeof *it);
    assert_non_null(it);
    rc = ww_sblock_iter_init(it, p, len, why, sizeof why);
    if (rc != 0) {
        fail_msg("iter_init: %d: %s", rc, why);
    }
    assert_true(ww_sblock_iter_count(it) == count);
    ww_sblock_sample_t s;
    for (size_t i = 0; i < count; i++) {
        assert_true(ww_sblock_iter_next(it, &s));
        assert_memory_equal(&s, &out[i], sizeof s);
    }
    assert_false(ww_sblock_iter_next(it, &s));
    free(it);
    return out;
}

/* Round trip: encode, decode both ways, same samples, and the decoded samples encode to
 * the same bytes. Returns the block's size. */
static size_t roundtrip(const ww_sblock_sample_t *s, size_t n)
{
    ww_buf_t b = WW_BUF_INIT, b2 = WW_BUF_INIT;
    encode_ok(s, n, &b);
    size_t m;
    ww_sblock_sample_t *d = decode_ok((const uint8_t *)b.p, b.len, &m);
    assert_true(m == n);
    assert_same(s, d, n);
    encode_ok(d, m, &b2);
    assert_true(b2.len == b.len);
    assert_memory_equal(b.p, b2.p, b.len);
    size_t len = b.len;
    free(d);
    ww_buf_free(&b);
    ww_buf_free(&b2);
    return len;
}

/* Expects p[0 .. len) refused by decode and the iterator, the reason containing `want`
 * (when not NULL). */
static void refused(const uint8_t *p, size_t len, const char *want)
{
    char why[WHY] = "";
    ww_sblock_sample_t *out = calloc(64, sizeof *out);
    assert_non_null(out);
    size_t n = 0;
    int rc = ww_sblock_decode(p, len, out, 64, &n, why, sizeof why);
    if (rc != -EINVAL) {
        fail_msg("decode accepted (%d) a block that must be refused (%s)", rc, want ? want : "");
    }
    assert_true(why[0] != '\0');
    if (want && !strstr(why, want)) {
        fail_msg("reason \"%s\" does not say \"%s\"", why, want);
    }
    ww_sblock_iter_t *it = malloc(sizeof *it);
    assert_non_null(it);
    assert_int_equal(ww_sblock_iter_init(it, p, len, NULL, 0), -EINVAL);
    ww_sblock_sample_t s;
    assert_false(ww_sblock_iter_next(it, &s));
    free(it);
    free(out);
}

/* ---- series ------------------------------------------------------------------------- */

static double rng_normal(uint64_t *s)
{
    double u = ww_test_rng_unit(s), v = ww_test_rng_unit(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static float q(double v, const char *name)
{
    return ww_sblock_quantize((float)v, ww_sblock_column(col_of(name))->res);
}

/* A simulator-like hour of one node: power following a noisy utilisation, temperatures
 * with 0.05 C of sensor noise, flow that rarely moves, a throttling episode, counts, and
 * humidity with NULL runs. quantized: readings on their grids (what the agent will send);
 * else raw floats (every F32 off the grid, but for the exact ones). */
static void gen_series(uint64_t seed, ww_sblock_sample_t *s, size_t n, bool quantized)
{
    uint64_t r = seed;
    double util = 0.6, hot = 70.0, rh = 42.0;
    int64_t t = INT64_C(851990400000000) + (int64_t)(ww_test_rng_next(&r) % 1000) * 1000000;
    uint32_t queued = 0;
    for (size_t i = 0; i < n; i++) {
        ww_sblock_sample_t *x = &s[i];
        memset(x, 0, sizeof *x);
        x->time_us = t;
        t += ww_test_rng_unit(&r) < 0.002 ? 3000000 : 1000000; /* a skipped tick, rarely */
        util += 0.02 * rng_normal(&r);
        util = util < 0.05 ? 0.05 : util > 1.0 ? 1.0 : util;
        bool throttled = i > n / 2 && i < n / 2 + 300;
        double factor = throttled ? 0.9 - 0.001 * (double)(i - n / 2) / 3.0 : 1.0;
        double power = 9200 + 13800 * pow(util, 0.9) * factor + 30 * rng_normal(&r);
        double flow = i < n / 3 ? 40.0 : 38.5;
        double inlet = 25.0 + 0.05 * (2 * ww_test_rng_unit(&r) - 1);
        double outlet =
            25.0 + power / (4180.0 * flow / 60.0) + 0.05 * (2 * ww_test_rng_unit(&r) - 1);
        hot += (outlet + power / 1000.0 * 1.5 - hot) / 20.0;
        double hotn = hot + 0.05 * (2 * ww_test_rng_unit(&r) - 1);
        rh += 0.001 * rng_normal(&r);
        double rhn = rh + 0.15 * (2 * ww_test_rng_unit(&r) - 1);
        double tps = util * 12000 * factor + 200 * rng_normal(&r);
        tps = tps < 0 ? 0 : tps;
        if (ww_test_rng_unit(&r) < 0.01) {
            queued = (uint32_t)(ww_test_rng_next(&r) % 40);
        } else if (queued > 0 && ww_test_rng_unit(&r) < 0.3) {
            queued--;
        }
        uint32_t in_flight = (uint32_t)(util * 64);
        double done = 30 + 6 * rng_normal(&r);
        uint32_t completed = done > 0 ? (uint32_t)done : 0;
        if (quantized) {
            x->power_w = q(power, "power_w");
            x->inlet_c = q(inlet, "inlet_c");
            x->outlet_c = q(outlet, "outlet_c");
            x->flow_lpm = q(flow, "flow_lpm");
            x->wafer_hotspot_c = q(hotn, "wafer_hotspot_c");
            x->utilization = q(util, "utilization");
            x->tokens_per_s = q(tps, "tokens_per_s");
            x->throttle_factor = q(factor, "throttle_factor");
            x->humidity_pct = q(rhn, "humidity_pct");
        } else {
            x->power_w = (float)power;
            x->inlet_c = (float)inlet;
            x->outlet_c = (float)outlet;
            x->flow_lpm = (float)flow;
            x->wafer_hotspot_c = (float)hotn;
            x->utilization = (float)util;
            x->tokens_per_s = (float)tps;
            x->throttle_factor = (float)factor;
            x->humidity_pct = (float)rhn;
        }
        x->requests_queued = queued;
        x->requests_in_flight = in_flight;
        x->requests_completed = completed;
        x->throttled = throttled;
        x->humidity_pct_null = (i / 700) % 3 == 1; /* NULL runs: a sensor that drops out */
        if (x->humidity_pct_null) {
            x->humidity_pct = u2f((uint32_t)ww_test_rng_next(&r)); /* ignored */
        }
        /* Readings not measured (ALWAYS fields): a run of a float, a count and a flag. */
        x->flow_lpm_null = (i / 500) % 4 == 1;
        x->requests_queued_null = (i / 900) % 5 == 2;
        x->throttled_null = (i / 300) % 6 == 5;
        if (x->flow_lpm_null) {
            x->flow_lpm = u2f((uint32_t)ww_test_rng_next(&r)); /* ignored */
        }
    }
}

/* ---- tests -------------------------------------------------------------------------- */

#define RES_SEEN_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                     \
    {#name, WW_FIELD_RES(name)},

static void test_columns_match_fields(void **state)
{
    (void)state;
    /* WW_FIELD_RES(name) exists for every field of the list (this would not compile else). */
    static const struct {
        const char *name;
        double res;
    } res[] = {WW_READING_FIELDS(RES_SEEN_)};
    assert_int_equal(sizeof res / sizeof res[0], N_FIELDS);
    assert_int_equal(WW_SBLOCK_NCOLS, N_FIELDS + 1);
    assert_string_equal(ww_sblock_column(0)->name, "time_us");
    assert_int_equal(ww_sblock_column(0)->off, offsetof(ww_sblock_sample_t, time_us));
    size_t end = sizeof(int64_t);
    for (size_t i = 0; i < N_FIELDS; i++) {
        const ww_sblock_column_t *c = ww_sblock_column(i + 1);
        assert_non_null(c);
        assert_string_equal(c->name, s_fields[i].name);
        assert_string_equal(res[i].name, s_fields[i].name);
        assert_int_equal(c->kind, s_fields[i].kind);
        assert_true(c->optional); /* every reading may be NULL: not measured */
        assert_true(c->res == res[i].res);
        /* Members in list order, each of its kind's size, inside the struct. */
        size_t sz = c->kind == WW_FIELD_KIND_BOOL ? sizeof(bool) : 4;
        assert_true(c->off >= end);
        end = c->off + sz;
        if (c->optional) {
            assert_true(c->null_off == c->off + sz || c->null_off >= c->off + sz);
            end = c->null_off + sizeof(bool);
        }
        assert_true(end <= sizeof(ww_sblock_sample_t));
        if (c->kind == WW_FIELD_KIND_F32) {
            /* A power of ten the codec knows: its grid round-trips. */
            int64_t k;
            assert_true(ww_sblock_grid_index(ww_sblock_grid_value(7, c->res), c->res, &k));
            assert_true(k == 7);
        } else {
            assert_true(c->res == 1.0);
        }
    }
    assert_null(ww_sblock_column(WW_SBLOCK_NCOLS));
    /* Every field has its NULL flag as a member. */
    ww_sblock_sample_t s = {0};
    s.humidity_pct_null = true;
    assert_true(*null_at(&s, col_of("humidity_pct")));
    s.flow_lpm_null = true;
    assert_true(*null_at(&s, col_of("flow_lpm")));
}

static void test_roundtrip_realistic(void **state)
{
    (void)state;
    size_t n = 3600;
    ww_sblock_sample_t *s = calloc(n, sizeof *s);
    assert_non_null(s);
    for (uint64_t seed = 1; seed <= 4; seed++) {
        gen_series(seed, s, n, true);
        size_t len = roundtrip(s, n);
        /* The point of the format: a few bytes per sample on the grid (issue 18 budgets ~20). */
        double per = (double)len / (double)n;
        if (per > 10.0) {
            fail_msg("quantized series: %.2f bytes per sample", per);
        }
        gen_series(seed, s, n, false);
        roundtrip(s, n);
        /* Prefixes of every length up to 40, and odd lengths. */
        for (size_t m = 0; m <= 40; m++) {
            roundtrip(s, m);
        }
        roundtrip(s + 1, 1001);
    }
    free(s);
}

static void test_roundtrip_special_floats(void **state)
{
    (void)state;
    static const uint32_t specials[] = {
        0x00000000u,     0x80000000u, /* +0.0, -0.0 */
        0x7f800000u,     0xff800000u, /* +-inf */
        0x7fc00000u,     0xffc00000u, 0x7fc00001u,
        0x7fbfffffu,                               /* NaNs: quiet, payloads, signalling */
        0xff800001u,     0x7fffffffu, 0xffffffffu, /* more NaN payloads */
        0x00000001u,     0x80000001u, 0x007fffffu,
        0x00400000u,                               /* denormals */
        0x00800000u,     0x80800000u,              /* FLT_MIN, -FLT_MIN */
        0x7f7fffffu,     0xff7fffffu,              /* +-FLT_MAX */
        0x3f800000u,     0x3dcccccdu, 0x41c80000u, /* 1.0, 0.1f, 25.0 */
        0x3dcccccCu + 1,                           /* 0.1f + 1 ulp: off the grid */
    };
    size_t ns = sizeof specials / sizeof specials[0];
    size_t n = 4 * ns + 64;
    ww_sblock_sample_t *s = calloc(n, sizeof *s);
    assert_non_null(s);
    uint64_t r = 99;
    for (size_t i = 0; i < n; i++) {
        s[i].time_us = (int64_t)i;
        for (size_t c = 1; c < WW_SBLOCK_NCOLS; c++) {
            const ww_sblock_column_t *col = ww_sblock_column(c);
            if (col->kind != WW_FIELD_KIND_F32) {
                continue;
            }
            /* Each column a different mix: specials in order, on-grid values, values one
             * ulp off the grid, and k at the edges of the grid (2^22, 2^50). */
            size_t j = (i + c * 7) % (ns + 6);
            float v;
            if (j < ns) {
                v = u2f(specials[j]);
            } else if (j == ns) {
                v = ww_sblock_grid_value((int64_t)(ww_test_rng_next(&r) % 2000) - 1000, col->res);
            } else if (j == ns + 1) {
                v = nextafterf(ww_sblock_grid_value(250, col->res), INFINITY);
            } else if (j == ns + 2) {
                v = ww_sblock_grid_value((INT64_C(1) << 22) + (int64_t)(i % 3) - 1, col->res);
            } else if (j == ns + 3) {
                v = ww_sblock_grid_value(-(INT64_C(1) << 50) + (int64_t)(i % 2), col->res);
            } else if (j == ns + 4) {
                v = ww_sblock_grid_value(INT64_C(1) << 50, col->res);
            } else {
                v = u2f((uint32_t)ww_test_rng_next(&r)); /* any bits */
            }
            *f32_at(&s[i], c) = v;
        }
        s[i].requests_queued = i % 2 ? INT32_MAX : 0;
        s[i].requests_in_flight = (uint32_t)(ww_test_rng_next(&r) % ((uint64_t)INT32_MAX + 1));
        s[i].requests_completed = INT32_MAX - (uint32_t)i;
        s[i].throttled = (i / 3) % 2;
    }
    roundtrip(s, n);
    for (size_t m = 0; m < 30; m++) {
        roundtrip(s + m, m);
    }
    /* A whole column of one special. */
    for (size_t j = 0; j < ns; j++) {
        for (size_t i = 0; i < 10; i++) {
            s[i].power_w = u2f(specials[j]);
            s[i].humidity_pct = u2f(specials[j]);
        }
        roundtrip(s, 10);
    }
    free(s);
}

static void test_roundtrip_nulls(void **state)
{
    (void)state;
    size_t n = 200;
    ww_sblock_sample_t *s = calloc(n, sizeof *s);
    assert_non_null(s);
    for (int pattern = 0; pattern < 7; pattern++) {
        for (size_t i = 0; i < n; i++) {
            s[i].time_us = 1000000 * (int64_t)i;
            s[i].humidity_pct = q(40.0 + 0.1 * (double)(i % 5), "humidity_pct");
            bool nul;
            switch (pattern) {
            case 0:
                nul = false;
                break;
            case 1:
                nul = true;
                break;
            case 2:
                nul = i % 2;
                break;
            case 3:
                nul = i == 0;
                break;
            case 4:
                nul = i == n - 1;
                break;
            case 5:
                nul = (i / 17) % 2;
                break;
            default:
                nul = i % 50 != 7;
                break;
            }
            s[i].humidity_pct_null = nul;
            if (i % 9 == 0 && !nul) {
                s[i].humidity_pct = -0.0f; /* escapes among NULLs */
            }
        }
        roundtrip(s, n);
        roundtrip(s, 1);
        roundtrip(s, 2);
    }
    /* A NULL sample's value is ignored: any bits give the same block. */
    ww_buf_t a = WW_BUF_INIT, b = WW_BUF_INIT;
    s[3].humidity_pct_null = true;
    s[3].humidity_pct = 1.0f;
    encode_ok(s, n, &a);
    s[3].humidity_pct = u2f(0x7fc01234u);
    encode_ok(s, n, &b);
    assert_true(a.len == b.len);
    assert_memory_equal(a.p, b.p, a.len);
    ww_buf_free(&a);
    ww_buf_free(&b);
    free(s);
}

static void test_roundtrip_times(void **state)
{
    (void)state;
    ww_sblock_sample_t s[64];
    memset(s, 0, sizeof s);
    /* Irregular, equal, and the whole int64 range. */
    static const int64_t series[][6] = {
        {0, 0, 0, 0, 0, 0},
        {5, 5, 6, 6, 6, 1000000},
        {INT64_MIN, INT64_MIN, 0, INT64_MAX, INT64_MAX, INT64_MAX},
        {INT64_MIN, INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX},
        {INT64_MIN, -1, 0, 1, INT64_MAX - 1, INT64_MAX},
        {-5000000, -4000000, -3000000, -1000000, 0, 999},
        {INT64_MIN, INT64_MIN + 1, INT64_MIN + 1, INT64_MAX - 1, INT64_MAX, INT64_MAX},
    };
    for (size_t k = 0; k < sizeof series / sizeof series[0]; k++) {
        for (size_t m = 0; m <= 6; m++) {
            for (size_t i = 0; i < m; i++) {
                s[i].time_us = series[k][i];
            }
            roundtrip(s, m);
        }
    }
    uint64_t r = 5;
    int64_t t = -(INT64_C(1) << 40);
    for (size_t i = 0; i < 64; i++) {
        s[i].time_us = t;
        t += (int64_t)(ww_test_rng_next(&r) % 3000000);
    }
    roundtrip(s, 64);
    /* Decreasing times and U32 past INT32_MAX are refused by the encoder, nothing appended. */
    ww_buf_t b = WW_BUF_INIT;
    ww_buf_put(&b, "x", 1);
    char why[WHY];
    s[10].time_us = s[9].time_us - 1;
    assert_int_equal(ww_sblock_encode(s, 64, &b, why, sizeof why), -EINVAL);
    assert_non_null(strstr(why, "time_us: sample 10"));
    assert_true(b.len == 1);
    s[10].time_us = s[9].time_us;
    s[12].requests_in_flight = (uint32_t)INT32_MAX + 1;
    assert_int_equal(ww_sblock_encode(s, 64, &b, why, sizeof why), -EINVAL);
    assert_non_null(strstr(why, "requests_in_flight: sample 12"));
    assert_true(b.len == 1);
    s[12].requests_in_flight = INT32_MAX;
    assert_int_equal(ww_sblock_encode(s, WW_SBLOCK_MAX_SAMPLES + 1, &b, why, sizeof why), -EINVAL);
    assert_int_equal(ww_sblock_encode(NULL, 3, &b, why, sizeof why), -EINVAL);
    assert_int_equal(ww_sblock_encode(NULL, 0, &b, NULL, 0), 0);
    assert_true(b.len == 4);
    ww_buf_free(&b);
}

static void test_canonical_bytes(void **state)
{
    (void)state;
    size_t n = 3600;
    ww_sblock_sample_t *s = calloc(n, sizeof *s);
    assert_non_null(s);
    gen_series(7, s, n, true);
    ww_buf_t a = WW_BUF_INIT, b = WW_BUF_INIT;
    encode_ok(s, n, &a);
    encode_ok(s, n, &b);
    assert_true(a.len == b.len);
    assert_memory_equal(a.p, b.p, a.len);
    /* Appending keeps what the buffer held. */
    ww_buf_reset(&b);
    ww_buf_put(&b, "head", 4);
    assert_int_equal(ww_sblock_encode(s, n, &b, NULL, 0), 0);
    assert_true(b.len == a.len + 4);
    assert_memory_equal(b.p + 4, a.p, a.len);
    /* One changed bit of one reading changes the block. */
    s[1234].inlet_c = nextafterf(s[1234].inlet_c, INFINITY);
    encode_ok(s, n, &b);
    assert_false(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
    ww_buf_free(&a);
    ww_buf_free(&b);
    free(s);
}

static void test_enobufs_and_count(void **state)
{
    (void)state;
    ww_sblock_sample_t s[10];
    gen_series(3, s, 10, true);
    ww_buf_t b = WW_BUF_INIT;
    encode_ok(s, 10, &b);
    size_t n = 0;
    assert_int_equal(ww_sblock_count((const uint8_t *)b.p, b.len, &n), 0);
    assert_true(n == 10);
    ww_sblock_sample_t out[9];
    assert_int_equal(ww_sblock_decode((const uint8_t *)b.p, b.len, out, 9, &n, NULL, 0), -ENOBUFS);
    assert_true(n == 10);
    assert_int_equal(ww_sblock_count(NULL, 0, &n), -EINVAL);
    ww_buf_free(&b);
}

/* Every proper prefix of a valid block is refused, and so is every block with one more byte. */
static void test_truncations_refused(void **state)
{
    (void)state;
    ww_sblock_sample_t *s = calloc(200, sizeof *s);
    assert_non_null(s);
    static const size_t sizes[] = {0, 1, 2, 3, 17, 200};
    for (int quant = 0; quant < 2; quant++) {
        gen_series(11, s, 200, quant);
        s[5].outlet_c = -0.0f;
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            ww_buf_t b = WW_BUF_INIT;
            encode_ok(s, sizes[k], &b);
            uint8_t *p = malloc(b.len + 1);
            assert_non_null(p);
            for (size_t len = 0; len < b.len; len++) {
                /* A copy of exactly len bytes: ASan sees any read past them. */
                uint8_t *q = malloc(len ? len : 1);
                assert_non_null(q);
                memcpy(q, b.p, len);
                refused(q, len, NULL);
                free(q);
            }
            memcpy(p, b.p, b.len);
            for (unsigned extra = 0; extra < 256; extra += 51) {
                p[b.len] = (uint8_t)extra;
                refused(p, b.len + 1, NULL);
            }
            free(p);
            ww_buf_free(&b);
        }
    }
    free(s);
}

/* Mutations of valid blocks (a bit flipped, a byte changed, inserted or removed): each is
 * refused, or accepted and then canonical (it encodes back to itself). */
static void test_mutations_refused_or_canonical(void **state)
{
    (void)state;
    size_t n = 300;
    ww_sblock_sample_t *s = calloc(n, sizeof *s);
    ww_sblock_sample_t *out = calloc(n + 1, sizeof *out);
    assert_non_null(s);
    assert_non_null(out);
    uint64_t r = 2024;
    size_t accepted = 0, tried = 0;
    for (int round = 0; round < 6; round++) {
        gen_series(100 + (uint64_t)round, s, n, round % 3 != 2);
        size_t m = round < 3 ? n : 5;
        ww_buf_t b = WW_BUF_INIT, back = WW_BUF_INIT;
        encode_ok(s, m, &b);
        uint8_t *p = malloc(b.len + 1);
        assert_non_null(p);
        for (int t = 0; t < 3000; t++) {
            size_t len = b.len;
            memcpy(p, b.p, b.len);
            size_t at = (size_t)(ww_test_rng_next(&r) % b.len);
            switch (ww_test_rng_next(&r) % 4) {
            case 0:
                p[at] ^= (uint8_t)(1u << (ww_test_rng_next(&r) % 8));
                break;
            case 1:
                p[at] = (uint8_t)ww_test_rng_next(&r);
                break;
            case 2:
                memmove(p + at + 1, p + at, len - at);
                p[at] = (uint8_t)ww_test_rng_next(&r);
                len++;
                break;
            default:
                memmove(p + at, p + at + 1, len - at - 1);
                len--;
                break;
            }
            tried++;
            size_t got;
            char why[WHY];
            int rc = ww_sblock_decode(p, len, out, n + 1, &got, why, sizeof why);
            if (rc == -ENOBUFS) {
                fail_msg("round %d: a mutated block of %zu samples was accepted", round, got);
            }
            if (rc != 0) {
                assert_int_equal(rc, -EINVAL);
                assert_true(why[0] != '\0');
                continue;
            }
            accepted++;
            encode_ok(out, got, &back);
            if (back.len != len || memcmp(back.p, p, len) != 0) {
                fail_msg("round %d: a mutated block was accepted but is not canonical", round);
            }
        }
        free(p);
        ww_buf_free(&b);
        ww_buf_free(&back);
    }
    print_message("mutations: %zu tried, %zu accepted (all canonical)\n", tried, accepted);
    free(s);
    free(out);
}

/* ---- byte vectors from the format in ww_sblock.h ------------------------------------- */

static void set_defaults(ww_sblock_sample_t *s)
{
    memset(s, 0, sizeof *s);
}

/* n = 1, one of each kind of column: on the grid, an escape (-0.0), U32 at INT32_MAX, a
 * BOOL, a NULL. outlet_c -0.0: head ESC, e -1, escape runs head 0x80 (first escaped, k 0),
 * runs part EG(0) of 0 (1), esc_len 1, DELTAS head PLAIN k 1, no value; the escape part: the
 * image of -0.0 is -1, zigzag 1, EG(1) of 1 is 1 1. */
static const uint8_t s_vec1[] = {
    0x01, 0x0d, 0x01,                               /* version, nf 13, n 1 */
    0x01, 0x02,                                     /* time: zigzag(1) */
    0x05, 0x00, 0x00, 0xb0, 0xea, 0x01,             /* power_w 15000 W: k 15000 */
    0x04, 0x00, 0xff, 0xf4, 0x03,                   /* inlet_c 25.0: e -1, k 250 */
    0x07, 0x02, 0xff, 0x80, 0x80, 0x01, 0x01, 0xc0, /* outlet_c -0.0: ESC (below) */
    0x04, 0x00, 0xff, 0xa0, 0x06,                   /* flow_lpm 40.0: k 400 */
    0x03, 0x00, 0xff, 0x00,                         /* wafer_hotspot_c 0.0 */
    0x04, 0x00, 0xfd, 0xe8, 0x07,                   /* utilization 0.5: e -3, k 500 */
    0x03, 0x00, 0xff, 0x00,                         /* tokens_per_s 0.0 */
    0x02, 0x00, 0x00,                               /* requests_queued 0 */
    0x02, 0x00, 0x05,                               /* requests_in_flight 5 */
    0x06, 0x00, 0xff, 0xff, 0xff, 0xff, 0x07,       /* requests_completed INT32_MAX */
    0x03, 0x00, 0x80, 0x80,                         /* throttled true: one run of 1 */
    0x04, 0x00, 0xfd, 0xd0, 0x0f,                   /* throttle_factor 1.0: k 1000 */
    0x04, 0x01, 0xff, 0x80, 0x80,                   /* humidity_pct NULL */
};

static void vec1_samples(ww_sblock_sample_t *s)
{
    set_defaults(s);
    s->time_us = 1;
    s->power_w = 15000.0f;
    s->inlet_c = 25.0f;
    s->outlet_c = -0.0f;
    s->flow_lpm = 40.0f;
    s->utilization = 0.5f;
    s->requests_in_flight = 5;
    s->requests_completed = INT32_MAX;
    s->throttled = true;
    s->throttle_factor = 1.0f;
    s->humidity_pct_null = true;
}

/* n = 4: regular times, PLAIN deltas, an escaped NaN among grid values, BOOL runs, NULLs. */
static const uint8_t s_vec4[] = {
    0x01,
    0x0d,
    0x04,
    /* time 1e6 .. 4e6 us: zigzag(1e6), d_2 1e6, PLAIN k 0, dods 0 0 (1 1) */
    0x08,
    0x80,
    0x89,
    0x7a,
    0xc0,
    0x84,
    0x3d,
    0x00,
    0xc0,
    /* power_w 100 100 101 99: k_1 100, z 0 2 3 in EG(0): 1 011 00100 */
    0x07,
    0x00,
    0x00,
    0xc8,
    0x01,
    0x00,
    0xb2,
    0x00,
    /* inlet_c 25.0 x4: z 0 0 0 -> 111 */
    0x06,
    0x00,
    0xff,
    0xf4,
    0x03,
    0x00,
    0xe0,
    /* outlet_c 30.0 NaN(0x7fc00001) 30.0 30.1: ESC runs 0|1|00 (head 0x00, 1 1 010);
     * esc_len 5, PLAIN k 32 (0x20); k_1 300, PLAIN k 0; escape part: the image of the NaN
     * is 0x7fc00001, zigzag 0xff800002, EG(32): 1 then its 32 bits; value part z 0 2:
     * 1 011 */
    0x0f,
    0x02,
    0xff,
    0x00,
    0xd0,
    0x05,
    0x20,
    0xd8,
    0x04,
    0x00,
    0xff,
    0xc0,
    0x00,
    0x01,
    0x00,
    0xb0,
    /* flow_lpm 40.0 x4 */
    0x06,
    0x00,
    0xff,
    0xa0,
    0x06,
    0x00,
    0xe0,
    /* wafer_hotspot_c, utilization, tokens_per_s 0.0 x4 */
    0x05,
    0x00,
    0xff,
    0x00,
    0x00,
    0xe0,
    0x05,
    0x00,
    0xfd,
    0x00,
    0x00,
    0xe0,
    0x05,
    0x00,
    0xff,
    0x00,
    0x00,
    0xe0,
    /* requests_queued 0 x4, requests_in_flight 5 x4 */
    0x04,
    0x00,
    0x00,
    0x00,
    0xe0,
    0x04,
    0x00,
    0x05,
    0x00,
    0xe0,
    /* requests_completed 1 2 3 4: z 2 2 2 in EG(0): 011 011 011 */
    0x05,
    0x00,
    0x01,
    0x00,
    0x6d,
    0x80,
    /* throttled F F T T: runs 2 2 at k 1: head 0x01, 11 11 */
    0x03,
    0x00,
    0x01,
    0xf0,
    /* throttle_factor 1.0 x4 */
    0x06,
    0x00,
    0xfd,
    0xd0,
    0x0f,
    0x00,
    0xe0,
    /* humidity_pct NULL 45.0 NULL NULL: NULL runs 1|0|11 (head 0x80, 1 1 010), k_1 450 */
    0x06,
    0x01,
    0xff,
    0x80,
    0xd0,
    0x84,
    0x07,
};

static void vec4_samples(ww_sblock_sample_t *s)
{
    static const float power[] = {100, 100, 101, 99};
    static const uint32_t outlet[] = {0x41f00000u, 0x7fc00001u, 0x41f00000u, 0x41f0cccdu};
    for (int i = 0; i < 4; i++) {
        set_defaults(&s[i]);
        s[i].time_us = 1000000 * (int64_t)(i + 1);
        s[i].power_w = power[i];
        s[i].inlet_c = 25.0f;
        s[i].outlet_c = u2f(outlet[i]);
        s[i].flow_lpm = 40.0f;
        s[i].requests_in_flight = 5;
        s[i].requests_completed = (uint32_t)i + 1;
        s[i].throttled = i >= 2;
        s[i].throttle_factor = 1.0f;
        s[i].humidity_pct_null = i != 1;
        s[i].humidity_pct = 45.0f;
    }
    s[1].humidity_pct_null = false;
}

static void check_vector(const ww_sblock_sample_t *s, size_t n, const uint8_t *vec, size_t len)
{
    ww_buf_t b = WW_BUF_INIT;
    encode_ok(s, n, &b);
    if (b.len != len || memcmp(b.p, vec, len) != 0) {
        char hex[3 * 256 + 1] = "";
        for (size_t i = 0; i < b.len && i < 256; i++) {
            snprintf(hex + 3 * i, 4, "%02x ", (uint8_t)b.p[i]);
        }
        fail_msg("encoded %zu bytes, the vector has %zu: %s", b.len, len, hex);
    }
    size_t m;
    ww_sblock_sample_t *d = decode_ok(vec, len, &m);
    assert_true(m == n);
    assert_same(s, d, n);
    free(d);
    ww_buf_free(&b);
}

static void test_byte_vectors(void **state)
{
    (void)state;
    static const uint8_t empty[] = {0x01, 0x0d, 0x00};
    check_vector(NULL, 0, empty, sizeof empty);
    ww_sblock_sample_t s[20];
    vec1_samples(s);
    check_vector(s, 1, s_vec1, sizeof s_vec1);
    vec4_samples(s);
    check_vector(s, 4, s_vec4, sizeof s_vec4);
    /* RUNS mode: 20 samples 1 s apart from 0: 18 zero dods are one run, EG(3) of 18
     * (0 11 010), head 0x43 (RUNS, k 3), k_val 0. */
    for (int i = 0; i < 20; i++) {
        set_defaults(&s[i]);
        s[i].time_us = 1000000 * (int64_t)i;
    }
    static const uint8_t time20[] = {0x07, 0x00, 0xc0, 0x84, 0x3d, 0x43, 0x00, 0x68};
    ww_buf_t b = WW_BUF_INIT;
    encode_ok(s, 20, &b);
    assert_true(b.len > 3 + sizeof time20);
    assert_memory_equal(b.p + 3, time20, sizeof time20);
    /* And a constant F32 column of 20: the same run in RUNS mode (19 zero deltas: EG(3) of
     * 19 = 0 11 011), after head, e and k_1 = 0. */
    static const uint8_t power20[] = {0x06, 0x00, 0x00, 0x00, 0x43, 0x00, 0x6c};
    assert_memory_equal(b.p + 3 + sizeof time20, power20, sizeof power20);
    roundtrip(s, 20);
    ww_buf_free(&b);
}

/* Hostile blocks, each refused with its reason. */
static void test_rejects(void **state)
{
    (void)state;
    uint8_t p[sizeof s_vec4 + 16];
#define REFUSE(why_part, ...)                                                                      \
    do {                                                                                           \
        static const uint8_t v_[] = {__VA_ARGS__};                                                 \
        refused(v_, sizeof v_, why_part);                                                          \
    } while (0)
    REFUSE("truncated", 0x01);
    REFUSE("version 2", 0x02, 0x0d, 0x00);
    REFUSE("12 field columns", 0x01, 0x0c, 0x00);
    REFUSE("more than", 0x01, 0x0d, 0xc1, 0x84, 0x3d); /* 1,000,001 samples */
    REFUSE("count", 0x01, 0x0d, 0x80, 0x00);           /* non-minimal varint */
    REFUSE("count", 0x01, 0x0d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02);
    REFUSE("left over", 0x01, 0x0d, 0x00, 0x00);     /* bytes after an empty block */
    REFUSE("time_us", 0x01, 0x0d, 0x01, 0x05, 0x02); /* section past the end */
    REFUSE("power_w", 0x01, 0x0d, 0x01, 0x01, 0x02); /* a section missing */
    /* n at the limit with nothing behind it: refused quickly, no allocation. */
    REFUSE("time_us", 0x01, 0x0d, 0xc0, 0x84, 0x3d);

    /* Edits of the n = 4 vector, at known offsets. */
    size_t t0 = 3, pw = t0 + 9, in = pw + 8, out = in + 7, fl = out + 16;
    size_t ho = fl + 7, ut = ho + 6, tk = ut + 6, qu = tk + 6, inf = qu + 5, co = inf + 5;
    size_t th = co + 6, tf = th + 4, hu = tf + 7;
    assert_int_equal(hu + 7, sizeof s_vec4);
#define EDIT(at, val, why_part)                                                                    \
    do {                                                                                           \
        memcpy(p, s_vec4, sizeof s_vec4);                                                          \
        p[at] = (uint8_t)(val);                                                                    \
        refused(p, sizeof s_vec4, why_part);                                                       \
    } while (0)
    EDIT(t0 + 7, 0x80, "time_us: delta mode 2");             /* delta head: mode 2 */
    EDIT(t0 + 7, 0x01, "time_us: sample 3: bad delta code"); /* k 1 reads past the end */
    EDIT(t0 + 8, 0xc1, "time_us: bit part");                 /* padding bit set */
    EDIT(t0 + 8, 0x40, "time_us: sample 3");                 /* 010: a dod of -1, then nothing */
    EDIT(pw + 1, 0x04, "power_w: head");                     /* flag bit 2 */
    EDIT(pw + 1, 0x01, "power_w: runs head"); /* NULLS set: what follows is no runs head */
    EDIT(pw + 2, 0x01, "power_w: grid 1e1");  /* another resolution */
    EDIT(pw + 5, 0x40, "power_w: k_val 178"); /* RUNS: the next byte is no order */
    EDIT(pw + 7, 0x01, "power_w: value part: truncated, bytes left over or padding"); /* padding */
    EDIT(out + 3, 0x80, "outlet_c: "); /* ESC runs T F TT: 3 escapes */
    EDIT(out + 3, 0x40, "outlet_c: runs head");
    EDIT(out + 4, 0xd1, "outlet_c: runs: padding");
    EDIT(qu + 2, 0x80,
         "requests_queued: first value: truncated or bad varint"); /* 80 00: not minimal */
    EDIT(th + 2, 0x03, "throttled: sample");                       /* k 3: a run past the end */
    EDIT(th + 2, 0x41, "throttled: runs head");
    EDIT(hu + 1, 0x00, "humidity_pct: truncated");           /* NULLS clear: the rest misread */
    EDIT(hu + 4, 0x00, "humidity_pct: sample 0: NULL runs"); /* no code in the runs */
    EDIT(hu + 3, 0x00, "humidity_pct: truncated: no delta head"); /* F T FF: 3 values */
    /* Valid codes of orders that are not the canonical ones. */
    memcpy(p, s_vec4, sizeof s_vec4);
    p[t0 + 7] = 0x01; /* PLAIN k 1 */
    p[t0 + 8] = 0xa0; /* EG(1) of 0, 0: 10 10 */
    refused(p, sizeof s_vec4, "time_us: delta mode or orders not the canonical ones");
    memcpy(p, s_vec4, sizeof s_vec4);
    p[th + 2] = 0x00; /* F T F T at k 0 is valid: but the canonical block of it is not this */
    {
        size_t got;
        ww_sblock_sample_t d[4];
        assert_int_equal(ww_sblock_decode(p, sizeof s_vec4, d, 4, &got, NULL, 0), 0);
        assert_true(d[0].throttled == false && d[1].throttled == true && d[3].throttled);
    }
    /* An escape holding a value on the grid (30.0: image 0x41f00000, zigzag 0x83e00000,
     * EG(32): 1 1000001 1111 0000 ...). */
    memcpy(p, s_vec4, sizeof s_vec4);
    p[out + 10] = 0xc1;
    p[out + 11] = 0xf0;
    p[out + 12] = 0x00;
    p[out + 13] = 0x00;
    p[out + 14] = 0x00;
    refused(p, sizeof s_vec4, "outlet_c: sample 1: escaped value 0x41f00000 is on the grid");

    /* U32 past INT32_MAX; first k past 2^50; a time past INT64_MAX. */
    ww_sblock_sample_t s[4];
    vec4_samples(s);
    ww_buf_t b = WW_BUF_INIT;
    /* vec1 with requests_completed 2^31 (06 00 80 80 80 80 08). */
    static const uint8_t big_u32[] = {
        0x01, 0x0d, 0x01, 0x01, 0x02, 0x05, 0x00, 0x00, 0xb0, 0xea, 0x01, 0x04, 0x00, 0xff,
        0xf4, 0x03, 0x07, 0x02, 0xff, 0x80, 0x80, 0x01, 0x01, 0xc0, 0x04, 0x00, 0xff, 0xa0,
        0x06, 0x03, 0x00, 0xff, 0x00, 0x04, 0x00, 0xfd, 0xe8, 0x07, 0x03, 0x00, 0xff, 0x00,
        0x02, 0x00, 0x00, 0x02, 0x00, 0x05, 0x06, 0x00, 0x80, 0x80, 0x80, 0x80, 0x08, 0x03,
        0x00, 0x80, 0x80, 0x04, 0x00, 0xfd, 0xd0, 0x0f, 0x04, 0x01, 0xff, 0x80, 0x80};
    refused(big_u32, sizeof big_u32, "requests_completed: first value 2147483648 past INT32_MAX");
    uint8_t big_k[sizeof s_vec1 + 8];
    /* power_w's k_1 = 2^50 + 1: zigzag 2^51 + 2, varint 82 80 80 80 80 80 80 04 (8 bytes). */
    memcpy(big_k, s_vec1, 5);
    static const uint8_t pw_big[] = {0x0a, 0x00, 0x00, 0x82, 0x80, 0x80,
                                     0x80, 0x80, 0x80, 0x80, 0x04};
    memcpy(big_k + 5, pw_big, sizeof pw_big);
    memcpy(big_k + 5 + sizeof pw_big, s_vec1 + 11, sizeof s_vec1 - 11);
    refused(big_k, 5 + sizeof pw_big + sizeof s_vec1 - 11, "power_w: first k past 2^50");
    /* Two samples: t_1 = INT64_MAX (zigzag 2^64 - 2), d_2 = 1. */
    for (int i = 0; i < 2; i++) {
        s[i] = s[0];
        s[i].time_us = INT64_MAX;
    }
    encode_ok(s, 2, &b);
    /* time section: len 0b, zigzag(INT64_MAX) = fe ff ff ff ff ff ff ff ff 01, d_2 00 */
    assert_int_equal((uint8_t)b.p[3], 0x0b);
    assert_int_equal((uint8_t)b.p[14], 0x00);
    b.p[14] = 0x01;
    refused((const uint8_t *)b.p, b.len, "time_us: sample 1: time past the int64 range");
    ww_buf_free(&b);
#undef EDIT
#undef REFUSE
}

/* The decoder takes a grid k below 2^22 in magnitude as the k of its value without checking:
 * true of every such k of every grid of the list. And beyond, the check holds. */
static void test_grid_fast_path(void **state)
{
    (void)state;
    double seen[WW_SBLOCK_NCOLS];
    size_t nseen = 0;
    for (size_t c = 1; c < WW_SBLOCK_NCOLS; c++) {
        const ww_sblock_column_t *col = ww_sblock_column(c);
        bool dup = false;
        for (size_t j = 0; j < nseen; j++) {
            dup |= seen[j] == col->res;
        }
        if (col->kind != WW_FIELD_KIND_F32 || dup) {
            continue;
        }
        seen[nseen++] = col->res;
        const int64_t lim = INT64_C(1) << 22;
        for (int64_t k = -lim + 1; k < lim; k++) {
            float v = ww_sblock_grid_value(k, col->res);
            int64_t back;
            if (!ww_sblock_grid_index(v, col->res, &back) || back != k) {
                fail_msg("%s: k %lld -> %a -> %lld", col->name, (long long)k, (double)v,
                         (long long)back);
            }
        }
        /* Quantizing any value lands on the grid. */
        uint64_t r = 77;
        for (int i = 0; i < 100000; i++) {
            float v = (float)((ww_test_rng_unit(&r) - 0.5) * 2e5);
            float qv = ww_sblock_quantize(v, col->res);
            int64_t k;
            assert_true(ww_sblock_grid_index(qv, col->res, &k));
            assert_true(f2u(ww_sblock_grid_value(k, col->res)) == f2u(qv));
        }
    }
    assert_true(isnan(ww_sblock_grid_value(1, 0.5)));
    int64_t k;
    assert_false(ww_sblock_grid_index(1.0f, 0.5, &k));
    assert_false(ww_sblock_grid_index(-0.0f, 1.0, &k));
    assert_false(ww_sblock_grid_index(NAN, 1.0, &k));
}

/* A long block (a day at 1 Hz) and the iterator over it. */
static void test_long_block(void **state)
{
    (void)state;
    size_t n = 86400;
    ww_sblock_sample_t *s = calloc(n, sizeof *s);
    assert_non_null(s);
    gen_series(21, s, n, true);
    size_t len = roundtrip(s, n);
    print_message("a day of quantized samples: %zu bytes, %.2f bytes/sample\n", len,
                  (double)len / (double)n);
    free(s);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_columns_match_fields),
        cmocka_unit_test(test_roundtrip_realistic),
        cmocka_unit_test(test_roundtrip_special_floats),
        cmocka_unit_test(test_roundtrip_nulls),
        cmocka_unit_test(test_roundtrip_times),
        cmocka_unit_test(test_canonical_bytes),
        cmocka_unit_test(test_enobufs_and_count),
        cmocka_unit_test(test_truncations_refused),
        cmocka_unit_test(test_mutations_refused_or_canonical),
        cmocka_unit_test(test_byte_vectors),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_grid_fast_path),
        cmocka_unit_test(test_long_block),
    };
    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
