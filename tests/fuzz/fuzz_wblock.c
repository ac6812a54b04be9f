/* fuzz_wblock: libFuzzer target of the latency-window block decoder (lib/ww_wblock.h), which
 * the PostgreSQL extension feeds stored bytes (and anyone may call ww_wblock_windows() on any
 * bytea).
 *
 * Invariants checked (a violation traps):
 *  - ww_wblock_decode() returns 0 or -EINVAL with a reason (never crashes, never reads out
 *    of bounds: ASan), and agrees with ww_wblock_count() on the head;
 *  - every histogram of an accepted block passes ww_hist_unpack() (no non-canonical
 *    ww_hist reaches SQL);
 *  - the windows of an accepted block encode into a block that decodes to the very same
 *    windows (every scalar bit and histogram byte), and encoding those again gives the same
 *    bytes (the encoder is deterministic; the decoder may accept more than one spelling).
 *
 * Built with -DFUZZ_WBLOCK_SEEDS it is instead the seed writer: `fuzz_wblock_seeds DIR`
 * writes valid blocks (one window, a few models, special doubles) as DIR/NAME.bin.
 */
#include "ww_buf.h"
#include "ww_hist.h"
#include "ww_hist_pack.h"
#include "ww_wblock.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_wblock: invariant violated: %s (%s:%d)\n", #cond, __FILE__,      \
                    __LINE__);                                                                     \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

/* Decoded windows and what they point into. */
typedef struct {
    ww_wblock_window_t *w;
    const char **models;
    size_t *model_len;
    uint8_t *arena;
    size_t n, m;
} s_dec_t;

static void s_dec_free(s_dec_t *d)
{
    free(d->w);
    free(d->models);
    free(d->model_len);
    free(d->arena);
    memset(d, 0, sizeof *d);
}

static int s_decode(const uint8_t *p, size_t len, s_dec_t *d)
{
    memset(d, 0, sizeof *d);
    char why[256] = "";
    if (ww_wblock_count(p, len, &d->n, &d->m) < 0) {
        CHECK(ww_wblock_decode(p, len, NULL, 0, NULL, NULL, 0, NULL, 0, why, sizeof why) ==
              -EINVAL);
        return -EINVAL;
    }
    if (d->n > 100000) { /* a head that claims more than the bytes could hold is refused */
        return -EINVAL;
    }
    size_t acap = ww_wblock_arena_bound(len, d->n);
    d->w = calloc(d->n, sizeof *d->w);
    d->models = calloc(d->m, sizeof *d->models);
    d->model_len = calloc(d->m, sizeof *d->model_len);
    d->arena = malloc(acap);
    if (!d->w || !d->models || !d->model_len || !d->arena) {
        s_dec_free(d);
        return -ENOMEM;
    }
    int rc = ww_wblock_decode(p, len, d->w, d->n, d->models, d->model_len, d->m, d->arena, acap,
                              why, sizeof why);
    CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
    if (rc == -EINVAL) {
        CHECK(why[0] != '\0');
    }
    if (rc != 0) {
        s_dec_free(d);
    }
    return rc;
}

#ifndef FUZZ_WBLOCK_SEEDS

static uint64_t s_bits(double x)
{
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}

static void s_same(const s_dec_t *a, const s_dec_t *b)
{
    CHECK(a->n == b->n && a->m == b->m);
    for (size_t j = 0; j < a->m; j++) {
        CHECK(a->model_len[j] == b->model_len[j] &&
              memcmp(a->models[j], b->models[j], a->model_len[j]) == 0);
    }
    for (size_t i = 0; i < a->n; i++) {
        const ww_wblock_window_t *x = &a->w[i], *y = &b->w[i];
        CHECK(x->time_us == y->time_us && x->model == y->model && x->parts == y->parts);
        CHECK(s_bits(x->duration_s) == s_bits(y->duration_s));
        CHECK(x->requests_ok == y->requests_ok && x->requests_error == y->requests_error &&
              x->requests_timeout == y->requests_timeout &&
              x->requests_rejected == y->requests_rejected &&
              x->prompt_tokens == y->prompt_tokens && x->output_tokens == y->output_tokens);
        for (int k = 0; k < WW_WBLOCK_NHIST; k++) {
            CHECK(x->hist_len[k] == y->hist_len[k] &&
                  memcmp(x->hist[k], y->hist[k], x->hist_len[k]) == 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_dec_t d;
    if (s_decode(data, size, &d) != 0) {
        return 0;
    }
    ww_hist_t h;
    ww_hist_init(&h, 0);
    for (size_t i = 0; i < d.n; i++) {
        for (int k = 0; k < WW_WBLOCK_NHIST; k++) {
            CHECK(ww_hist_unpack(d.w[i].hist[k], d.w[i].hist_len[k], &h, NULL) == 0);
        }
    }
    ww_hist_fini(&h);
    ww_buf_t b1 = WW_BUF_INIT, b2 = WW_BUF_INIT;
    char why[256];
    CHECK(ww_wblock_encode(d.models, d.model_len, d.m, d.w, d.n, &b1, why, sizeof why) == 0);
    s_dec_t e;
    CHECK(s_decode((const uint8_t *)b1.p, b1.len, &e) == 0);
    s_same(&d, &e);
    CHECK(ww_wblock_encode(e.models, e.model_len, e.m, e.w, e.n, &b2, why, sizeof why) == 0);
    CHECK(b1.len == b2.len && memcmp(b1.p, b2.p, b1.len) == 0);
    s_dec_free(&e);
    s_dec_free(&d);
    ww_buf_free(&b1);
    ww_buf_free(&b2);
    return 0;
}

#else

static size_t s_hist(uint8_t *out, size_t cap, int scale, int n, double base, unsigned seed)
{
    ww_hist_t h;
    ww_hist_init(&h, scale);
    for (int i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        double v = base * (1 + (double)(seed >> 16 & 0x3ff) / 256.0);
        CHECK(ww_hist_record(&h, (double)(long long)(v * 1e9) / 1e9) == 0);
    }
    if (n > 3) {
        CHECK(ww_hist_record(&h, 0.0) == 0);
    }
    CHECK(ww_hist_pack_bound(&h) <= cap);
    long len = ww_hist_pack(&h, out, cap);
    CHECK(len > 0);
    ww_hist_fini(&h);
    return (size_t)len;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_wblock_seeds DIR\n");
        return 2;
    }
    static uint8_t bytes[64][4][1 << 16];
    ww_wblock_window_t w[64];
    const char *models[] = {"llama3.1-8b", "llama3.1-70b", "m"};
    const size_t model_len[] = {11, 12, 1};
    const size_t counts[] = {1, 3, 64};
    const double durations[] = {10.0, -0.0, NAN, 1e300};
    for (int s = 0; s < 3; s++) {
        size_t n = counts[s], m = (size_t)s + 1;
        for (size_t i = 0; i < n; i++) {
            memset(&w[i], 0, sizeof w[i]);
            w[i].time_us = 851990400000000 + (int64_t)i * 10000000;
            w[i].model = (uint32_t)(i * m / n);
            w[i].parts = i % 7 == 3 ? 2 : 1;
            w[i].duration_s = durations[(i / 5) % 4];
            w[i].requests_ok = (int64_t)(100 + i);
            w[i].requests_error = (int64_t)(i % 3);
            w[i].prompt_tokens = (int64_t)(250000 + 17 * i);
            w[i].output_tokens = (int64_t)(50000 + 11 * i);
            for (int k = 0; k < WW_WBLOCK_NHIST; k++) {
                w[i].hist[k] = bytes[i][k];
                w[i].hist_len[k] =
                    s_hist(bytes[i][k], sizeof bytes[i][k], 2 + 2 * s, k == 0 ? 0 : (int)(i % 50),
                           0.01 * (k + 1), (unsigned)(i * 4 + (size_t)k));
            }
        }
        ww_buf_t b = WW_BUF_INIT;
        char why[256];
        CHECK(ww_wblock_encode(models, model_len, m, w, n, &b, why, sizeof why) == 0);
        s_dec_t d;
        CHECK(s_decode((const uint8_t *)b.p, b.len, &d) == 0);
        s_dec_free(&d);
        char path[4096];
        snprintf(path, sizeof path, "%s/block%d.bin", argv[1], s);
        FILE *f = fopen(path, "wb");
        CHECK(f && fwrite(b.p, 1, b.len, f) == b.len && fclose(f) == 0);
        ww_buf_free(&b);
    }
    return 0;
}

#endif
