/* Unit tests of ww_wblock (the latency-window block codec, lib/ww_wblock.h): round trips of
 * random blocks (histograms of nanosecond and arbitrary values, every kind of counter and
 * double, models switching, times regular and not), byte-identical histograms and bit-exact
 * scalars, one set of windows one block, every truncation and extension refused, every
 * single-byte mutation either refused or decoded into valid histograms, refusals naming the
 * window and the part, and the size on windows shaped like the simulator's. */
#include "ww_hist.h"
#include "ww_hist_pack.h"
#include "ww_test.h"
#include "ww_wblock.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const models[] = {"llama3.1-8b", "llama3.1-70b", "", "qwen2.5-coder-32b",
                                     "m\0x"};
static const size_t model_len[] = {11, 12, 0, 17, 3};

/* Windows and the bytes of their histograms. */
typedef struct {
    ww_wblock_window_t *w;
    uint8_t *bytes;
    size_t n, used, cap;
} set_t;

static void set_init(set_t *s, size_t n)
{
    s->w = calloc(n, sizeof *s->w);
    s->cap = n * WW_WBLOCK_NHIST * 4096;
    s->bytes = malloc(s->cap);
    s->n = n;
    s->used = 0;
    assert_non_null(s->w);
    assert_non_null(s->bytes);
}

static void set_free(set_t *s)
{
    free(s->w);
    free(s->bytes);
}

static double rand_double(uint64_t *r)
{
    switch (ww_test_rng_next(r) % 12) {
    case 0:
        return -0.0;
    case 1:
        return NAN;
    case 2:
        return -INFINITY;
    case 3:
        return 5e-324;
    case 4:
        return -(double)(ww_test_rng_next(r) % 1000000000) / 1e9;
    case 5: {
        uint64_t b = ww_test_rng_next(r);
        double d;
        memcpy(&d, &b, sizeof d);
        return d;
    }
    default:
        return 10.0;
    }
}

/* A histogram of random values: nanosecond readings in seconds (as clocks give them), or
 * arbitrary doubles, sometimes none, zeros and negatives. */
static void add_hist(set_t *s, uint64_t *r, ww_wblock_window_t *w, int k, int scale, bool ns)
{
    ww_hist_t h;
    ww_hist_init(&h, scale);
    int n = (int)(ww_test_rng_next(r) % (ww_test_rng_next(r) % 4 == 0 ? 3 : 300));
    double med = exp(ww_test_rng_unit(r) * 8 - 6);
    for (int i = 0; i < n; i++) {
        double v = med * exp(ww_test_rng_unit(r) * 3 - 1.5);
        if (ns) {
            v = (double)(int64_t)(v * 1e9) / 1e9;
        }
        int kind = (int)(ww_test_rng_next(r) % 50);
        v = kind == 0 ? 0.0 : kind == 1 ? -v : v;
        assert_int_equal(ww_hist_record(&h, v), 0);
    }
    uint8_t *tmp = malloc(ww_hist_pack_bound(&h));
    assert_non_null(tmp);
    long len = ww_hist_pack(&h, tmp, ww_hist_pack_bound(&h));
    assert_true(len > 0 && (size_t)len <= s->cap - s->used);
    memcpy(s->bytes + s->used, tmp, (size_t)len);
    free(tmp);
    w->hist[k] = s->bytes + s->used;
    w->hist_len[k] = (size_t)len;
    s->used += (size_t)len;
    ww_hist_fini(&h);
}

static void gen(set_t *s, uint64_t seed, size_t m)
{
    uint64_t r = seed;
    int64_t t =
        (int64_t)(ww_test_rng_next(&r) % 2) == 0 ? 851990400000000 : (int64_t)ww_test_rng_next(&r);
    bool regular = ww_test_rng_next(&r) % 3 != 0;
    int scale = (int)(ww_test_rng_next(&r) % (WW_HIST_MAX_SCALE + 1));
    for (size_t i = 0; i < s->n; i++) {
        ww_wblock_window_t *w = &s->w[i];
        t += regular ? 10000000 : (int64_t)(ww_test_rng_next(&r) % 100000000) - 1000000;
        w->time_us = t;
        w->model = (uint32_t)((i * m) / s->n);
        w->parts = ww_test_rng_next(&r) % 10 == 0 ? (int32_t)ww_test_rng_next(&r) : 1;
        w->duration_s = ww_test_rng_next(&r) % 8 == 0 ? rand_double(&r) : 10.0;
        int64_t *ctr[6] = {&w->requests_ok,       &w->requests_error, &w->requests_timeout,
                           &w->requests_rejected, &w->prompt_tokens,  &w->output_tokens};
        for (int c = 0; c < 6; c++) {
            uint64_t v = ww_test_rng_next(&r);
            *ctr[c] = v % 5 == 0 ? (int64_t)v : (int64_t)(v % 1000);
        }
        bool ns = ww_test_rng_next(&r) % 4 != 0;
        for (int k = 0; k < WW_WBLOCK_NHIST; k++) {
            add_hist(s, &r, w, k, ww_test_rng_next(&r) % 10 == 0 ? scale / 2 : scale, ns);
        }
    }
}

static uint64_t bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

/* Encodes s, decodes it and checks every window; returns the block's length. */
static size_t roundtrip(const set_t *s, size_t m, ww_buf_t *out)
{
    char why[256] = "";
    ww_buf_reset(out);
    int rc = ww_wblock_encode((const char *const *)models, model_len, m, s->w, s->n, out, why,
                              sizeof why);
    if (rc != 0) {
        fail_msg("encode: %d %s", rc, why);
    }
    size_t n, mm;
    assert_int_equal(ww_wblock_count((const uint8_t *)out->p, out->len, &n, &mm), 0);
    assert_int_equal(n, s->n);
    assert_int_equal(mm, m);
    ww_wblock_window_t *d = calloc(n, sizeof *d);
    const char *dm[8];
    size_t dl[8];
    size_t acap = ww_wblock_arena_bound(out->len, n);
    uint8_t *arena = malloc(acap);
    assert_non_null(d);
    assert_non_null(arena);
    rc = ww_wblock_decode((const uint8_t *)out->p, out->len, d, n, dm, dl, m, arena, acap, why,
                          sizeof why);
    if (rc != 0) {
        fail_msg("decode: %d %s", rc, why);
    }
    for (size_t j = 0; j < m; j++) {
        assert_int_equal(dl[j], model_len[j]);
        if (dl[j]) {
            assert_memory_equal(dm[j], models[j], dl[j]);
        }
    }
    for (size_t i = 0; i < n; i++) {
        const ww_wblock_window_t *a = &s->w[i], *b = &d[i];
        assert_true(a->time_us == b->time_us);
        assert_int_equal(a->model, b->model);
        assert_int_equal(a->parts, b->parts);
        assert_true(bits(a->duration_s) == bits(b->duration_s));
        assert_true(a->requests_ok == b->requests_ok && a->requests_error == b->requests_error);
        assert_true(a->requests_timeout == b->requests_timeout);
        assert_true(a->requests_rejected == b->requests_rejected);
        assert_true(a->prompt_tokens == b->prompt_tokens && a->output_tokens == b->output_tokens);
        for (int k = 0; k < WW_WBLOCK_NHIST; k++) {
            assert_int_equal(a->hist_len[k], b->hist_len[k]);
            assert_memory_equal(a->hist[k], b->hist[k], a->hist_len[k]);
        }
    }
    free(d);
    free(arena);
    return out->len;
}

static void test_roundtrip_random(void **state)
{
    (void)state;
    ww_buf_t out = WW_BUF_INIT, again = WW_BUF_INIT;
    for (uint64_t seed = 1; seed <= 300; seed++) {
        uint64_t r = seed * 7919;
        size_t n = 1 + (size_t)(ww_test_rng_next(&r) % (seed % 10 == 0 ? 1200 : 40));
        size_t m = 1 + (size_t)(ww_test_rng_next(&r) % 5);
        set_t s;
        set_init(&s, n);
        gen(&s, seed, m);
        roundtrip(&s, m, &out);
        /* One set of windows, one block. */
        char why[128];
        assert_int_equal(ww_wblock_encode((const char *const *)models, model_len, m, s.w, n, &again,
                                          why, sizeof why),
                         0);
        assert_int_equal(again.len, out.len);
        assert_memory_equal(again.p, out.p, out.len);
        ww_buf_reset(&again);
        set_free(&s);
    }
    ww_buf_free(&out);
    ww_buf_free(&again);
}

static int decode_all(const uint8_t *p, size_t len, char *why, size_t why_len)
{
    size_t n, m;
    if (ww_wblock_count(p, len, &n, &m) < 0) {
        return -EINVAL;
    }
    ww_wblock_window_t *d = calloc(n, sizeof *d);
    const char **dm = calloc(m, sizeof *dm);
    size_t *dl = calloc(m, sizeof *dl);
    size_t acap = ww_wblock_arena_bound(len, n);
    uint8_t *arena = malloc(acap);
    assert_true(d && dm && dl && arena);
    int rc = ww_wblock_decode(p, len, d, n, dm, dl, m, arena, acap, why, why_len);
    if (rc == 0) {
        ww_hist_t h;
        ww_hist_init(&h, 0);
        for (size_t i = 0; i < n; i++) {
            for (int k = 0; k < WW_WBLOCK_NHIST; k++) {
                assert_int_equal(ww_hist_unpack(d[i].hist[k], d[i].hist_len[k], &h, NULL), 0);
            }
        }
        ww_hist_fini(&h);
    }
    free(d);
    free(dm);
    free(dl);
    free(arena);
    return rc;
}

static void test_truncations_and_mutations(void **state)
{
    (void)state;
    ww_buf_t out = WW_BUF_INIT;
    set_t s;
    set_init(&s, 12);
    gen(&s, 42, 3);
    size_t len = roundtrip(&s, 3, &out);
    uint8_t *p = malloc(len + 1);
    assert_non_null(p);
    memcpy(p, out.p, len);
    char why[256];
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_equal(decode_all(p, cut, why, sizeof why), -EINVAL);
    }
    p[len] = 0;
    assert_int_equal(decode_all(p, len + 1, why, sizeof why), -EINVAL);
    assert_non_null(strstr(why, "left over"));
    size_t accepted = 0;
    for (size_t i = 0; i < len; i++) {
        for (unsigned x = 1; x < 256; x <<= 1) {
            p[i] ^= (uint8_t)x;
            accepted += decode_all(p, len, why, sizeof why) == 0;
            p[i] ^= (uint8_t)x;
        }
    }
    print_message("%zu of %zu single-bit mutations decode (into valid histograms)\n", accepted,
                  len * 8);
    free(p);
    set_free(&s);
    ww_buf_free(&out);
}

static void test_refusals_name_the_window(void **state)
{
    (void)state;
    ww_buf_t out = WW_BUF_INIT;
    set_t s;
    set_init(&s, 5);
    gen(&s, 7, 1);
    /* A histogram that is not canonical: a count one too high for its parts. */
    uint8_t bad[4096];
    memcpy(bad, s.w[3].hist[1], s.w[3].hist_len[1]);
    bad[2] ^= 1;
    s.w[3].hist[1] = bad;
    char why[256] = "";
    assert_int_equal(
        ww_wblock_encode((const char *const *)models, model_len, 1, s.w, 5, &out, why, sizeof why),
        -EINVAL);
    assert_non_null(strstr(why, "window 3: ttft: not a valid packed histogram"));
    s.w[3].hist[1] = s.w[2].hist[1];
    s.w[3].hist_len[1] = s.w[2].hist_len[1];
    s.w[4].model = 1;
    ww_buf_reset(&out);
    assert_int_equal(
        ww_wblock_encode((const char *const *)models, model_len, 1, s.w, 5, &out, why, sizeof why),
        -EINVAL);
    assert_non_null(strstr(why, "window 4: model index 1"));
    ww_buf_reset(&out);
    assert_int_equal(
        ww_wblock_encode((const char *const *)models, model_len, 1, s.w, 0, &out, why, sizeof why),
        -EINVAL);
    set_free(&s);
    ww_buf_free(&out);
}

/* Windows shaped like the simulator's (132 requests, nanosecond latencies): the block is
 * smaller than the packed histograms alone. */
static void test_size_on_nanosecond_windows(void **state)
{
    (void)state;
    set_t s;
    set_init(&s, 360);
    uint64_t r = 99;
    size_t packed = 0;
    for (size_t i = 0; i < s.n; i++) {
        ww_wblock_window_t *w = &s.w[i];
        w->time_us = 851990400000000 + (int64_t)i * 10000000;
        w->parts = 1;
        w->duration_s = 10.0;
        w->requests_ok = 120 + (int64_t)(ww_test_rng_next(&r) % 25);
        w->prompt_tokens = 250000 + (int64_t)(ww_test_rng_next(&r) % 90000);
        w->output_tokens = 50000 + (int64_t)(ww_test_rng_next(&r) % 20000);
        for (int k = 0; k < WW_WBLOCK_NHIST; k++) {
            ww_hist_t h;
            ww_hist_init(&h, 6);
            for (int64_t j = 0; j < w->requests_ok; j++) {
                double v =
                    k == 0 ? 0.0
                           : (double)(int64_t)(exp(ww_test_rng_unit(&r) * 3 - 3 + k) * 1e8) / 1e9;
                assert_int_equal(ww_hist_record(&h, v), 0);
            }
            long len = ww_hist_pack(&h, s.bytes + s.used, s.cap - s.used);
            assert_true(len > 0);
            w->hist[k] = s.bytes + s.used;
            w->hist_len[k] = (size_t)len;
            s.used += (size_t)len;
            packed += (size_t)len;
            ww_hist_fini(&h);
        }
    }
    ww_buf_t out = WW_BUF_INIT;
    size_t len = roundtrip(&s, 1, &out);
    print_message("360 windows: block %.1f B/window, packed histograms alone %.1f B/window\n",
                  (double)len / 360, (double)packed / 360);
    assert_true(len < packed);
    set_free(&s);
    ww_buf_free(&out);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_random),
        cmocka_unit_test(test_truncations_and_mutations),
        cmocka_unit_test(test_refusals_name_the_window),
        cmocka_unit_test(test_size_on_nanosecond_windows),
    };
    if (argc > 1) {
        cmocka_set_test_filter(argv[1]);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
