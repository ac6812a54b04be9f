/* fuzz_sblock: libFuzzer target of the sample-block decoder (lib/ww_sblock.h), which the
 * PostgreSQL extension will feed stored (and, through binary recv, untrusted) bytes, and of
 * its encoder on arbitrary samples.
 *
 * Invariants checked (a violation traps):
 *  - the input as a block: ww_sblock_decode() returns 0 or -EINVAL with a reason (never
 *    crashes, never reads out of bounds: ASan); ww_sblock_iter_init() agrees, and on a valid
 *    block the iterator gives exactly the samples decode gives; ww_sblock_count() agrees;
 *  - an accepted block is canonical: ww_sblock_encode() of its samples gives back exactly
 *    the input bytes (the property fuzz_hist_pack checks of ww_hist_pack);
 *  - the input as samples (every float bit pattern, times non-decreasing, U32 sometimes
 *    past INT32_MAX, NULLs): the encoder refuses exactly the U32 values past INT32_MAX, and
 *    what it encodes decodes back bit for bit and re-encodes to the same bytes.
 *
 * Built with -DFUZZ_SBLOCK_SEEDS it is instead the seed writer: `fuzz_sblock_seeds DIR`
 * writes valid blocks (synthetic series on and off the grid, special floats, NULL runs, n =
 * 0, 1, 2, 3, an hour) as DIR/NAME.bin, each checked to decode.
 */
#include "ww_buf.h"
#include "ww_sblock.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_sblock: invariant violated: %s (%s:%d)\n", #cond, __FILE__,      \
                    __LINE__);                                                                     \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

#ifndef FUZZ_SBLOCK_SEEDS

/* Blocks with more samples are decoded by the iterator only (an array of them would cost the
 * fuzzer more time than the decoding). */
#define FUZZ_ARRAY_MAX 200000

static void s_as_block(const uint8_t *data, size_t size)
{
    char why[256] = "";
    size_t count = 0;
    int crc = ww_sblock_count(data, size, &count);
    ww_sblock_iter_t *it = malloc(sizeof *it);
    if (!it) {
        return;
    }
    int irc = ww_sblock_iter_init(it, data, size, why, sizeof why);
    CHECK(irc == 0 || irc == -EINVAL);
    if (irc != 0) {
        CHECK(why[0] != '\0' && memchr(why, '\0', sizeof why) != NULL);
        ww_sblock_sample_t s;
        CHECK(!ww_sblock_iter_next(it, &s));
        /* decode refuses it too (with any room). */
        ww_sblock_sample_t one;
        size_t n;
        int drc = ww_sblock_decode(data, size, &one, 1, &n, NULL, 0);
        CHECK(drc == -EINVAL);
        free(it);
        return;
    }
    CHECK(crc == 0 && count == ww_sblock_iter_count(it));
    if (count > FUZZ_ARRAY_MAX) {
        ww_sblock_sample_t s;
        size_t got = 0;
        while (ww_sblock_iter_next(it, &s)) {
            got++;
        }
        CHECK(got == count);
        free(it);
        return;
    }
    ww_sblock_sample_t *out = malloc((count ? count : 1) * sizeof *out);
    if (!out) {
        free(it);
        return;
    }
    size_t n = 0;
    int drc = ww_sblock_decode(data, size, out, count, &n, why, sizeof why);
    CHECK(drc == 0 && n == count);
    if (count > 0) {
        size_t m;
        CHECK(ww_sblock_decode(data, size, out, count - 1, &m, NULL, 0) == -ENOBUFS);
        CHECK(m == count);
        drc = ww_sblock_decode(data, size, out, count, &n, why, sizeof why);
        CHECK(drc == 0);
    }
    for (size_t i = 0; i < count; i++) {
        ww_sblock_sample_t s;
        CHECK(ww_sblock_iter_next(it, &s));
        CHECK(memcmp(&s, &out[i], sizeof s) == 0);
    }
    ww_sblock_sample_t s;
    CHECK(!ww_sblock_iter_next(it, &s));
    ww_buf_t b = WW_BUF_INIT;
    int erc = ww_sblock_encode(out, count, &b, why, sizeof why);
    if (erc != -ENOMEM) {
        if (erc != 0) {
            fprintf(stderr, "fuzz_sblock: decoded samples refused by encode: %s\n", why);
        }
        CHECK(erc == 0);
        CHECK(b.len == size && memcmp(b.p, data, size) == 0);
    }
    ww_buf_free(&b);
    free(out);
    free(it);
}

/* The input as samples: 1 byte of shape, then per sample 8 bytes of time step and 4 bytes
 * per field (float bits, U32 value, BOOL bit 0, NULL flag from the shape and bits). */
static void s_as_samples(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return;
    }
    uint8_t shape = data[0];
    const size_t per = 8 + 4 * WW_READING_NFIELDS;
    size_t n = (size - 1) / per;
    ww_sblock_sample_t *s = calloc(n ? n : 1, sizeof *s);
    if (!s) {
        return;
    }
    const uint8_t *p = data + 1;
    int64_t t = (shape & 1) ? INT64_MIN : 0;
    bool want_fail = false;
    for (size_t i = 0; i < n; i++, p += per) {
        uint64_t step;
        memcpy(&step, p, 8);
        /* Small steps mostly (regular cadence, equal times); any step that fits at times. */
        step = (shape & 2) ? step : step % 4;
        uint64_t room = (uint64_t)INT64_MAX - (uint64_t)t;
        if (i > 0) {
            t = (int64_t)((uint64_t)t + (step <= room ? step : room));
        }
        s[i].time_us = t;
        for (size_t c = 1; c < WW_SBLOCK_NCOLS; c++) {
            const ww_sblock_column_t *col = ww_sblock_column(c);
            uint32_t u;
            memcpy(&u, p + 8 + 4 * (c - 1), 4);
            char *at = (char *)&s[i] + col->off;
            /* NULL (a reading not measured: every column may be) makes the value ignored. */
            bool nul = col->optional && (shape & 16) && (u & 2) != 0;
            if (col->kind == WW_FIELD_KIND_F32) {
                if (shape & 4) { /* mostly on the grid */
                    float v = ww_sblock_grid_value((int32_t)u >> 12, col->res);
                    memcpy(at, &v, 4);
                } else {
                    memcpy(at, &u, 4);
                }
            } else if (col->kind == WW_FIELD_KIND_U32) {
                uint32_t v = (shape & 8) ? u : u & 0x7fffffffu;
                want_fail |= v > INT32_MAX && !nul;
                memcpy(at, &v, 4);
            } else {
                bool b = u & 1;
                memcpy(at, &b, sizeof b);
            }
            if (col->optional) {
                memcpy((char *)&s[i] + col->null_off, &nul, sizeof nul);
            }
        }
    }
    ww_buf_t b = WW_BUF_INIT;
    char why[256];
    int rc = ww_sblock_encode(s, n, &b, why, sizeof why);
    if (rc == -ENOMEM) {
        ww_buf_free(&b);
        free(s);
        return;
    }
    CHECK(rc == (want_fail ? -EINVAL : 0));
    if (rc == 0) {
        ww_sblock_sample_t *d = malloc((n ? n : 1) * sizeof *d);
        if (d) {
            size_t m;
            rc = ww_sblock_decode((const uint8_t *)b.p, b.len, d, n, &m, why, sizeof why);
            if (rc != 0) {
                fprintf(stderr, "fuzz_sblock: own block refused: %s\n", why);
            }
            CHECK(rc == 0 && m == n);
            for (size_t i = 0; i < n; i++) {
                CHECK(d[i].time_us == s[i].time_us);
                for (size_t c = 1; c < WW_SBLOCK_NCOLS; c++) {
                    const ww_sblock_column_t *col = ww_sblock_column(c);
                    size_t sz = col->kind == WW_FIELD_KIND_BOOL ? sizeof(bool) : 4;
                    const char *a = (const char *)&s[i], *e = (const char *)&d[i];
                    if (col->optional && a[col->null_off]) {
                        CHECK(e[col->null_off]);
                        continue;
                    }
                    CHECK(memcmp(a + col->off, e + col->off, sz) == 0);
                }
            }
            ww_buf_t b2 = WW_BUF_INIT;
            if (ww_sblock_encode(d, n, &b2, NULL, 0) == 0) {
                CHECK(b2.len == b.len && memcmp(b2.p, b.p, b.len) == 0);
            }
            ww_buf_free(&b2);
            free(d);
        }
    }
    ww_buf_free(&b);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_as_block(data, size);
    s_as_samples(data, size);
    return 0;
}

#else /* the seed writer */

static int s_failed;

static uint64_t s_rng(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void s_write(const char *dir, const char *name, const ww_sblock_sample_t *s, size_t n)
{
    ww_buf_t b = WW_BUF_INIT;
    char why[256];
    if (ww_sblock_encode(s, n, &b, why, sizeof why) != 0) {
        fprintf(stderr, "fuzz_sblock_seeds: %s: encode: %s\n", name, why);
        s_failed = 1;
        return;
    }
    ww_sblock_iter_t *it = malloc(sizeof *it);
    if (!it || ww_sblock_iter_init(it, (const uint8_t *)b.p, b.len, why, sizeof why) != 0) {
        fprintf(stderr, "fuzz_sblock_seeds: %s: own block refused: %s\n", name, it ? why : "");
        s_failed = 1;
    }
    free(it);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.bin", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b.p ? b.p : "", 1, b.len, f) != b.len || fclose(f) != 0) {
        fprintf(stderr, "fuzz_sblock_seeds: cannot write %s\n", path);
        s_failed = 1;
    }
    ww_buf_free(&b);
}

/* A node's readings: on the grid (quantized) or not, with NULL runs when `nulls`. */
static void s_series(ww_sblock_sample_t *s, size_t n, uint64_t seed, bool quantized, bool nulls)
{
    uint64_t r = seed;
    double util = 0.5, hot = 70;
    for (size_t i = 0; i < n; i++) {
        memset(&s[i], 0, sizeof s[i]);
        s[i].time_us =
            INT64_C(851990400000000) + (int64_t)i * 1000000 + ((s_rng(&r) % 100) == 0 ? 17 : 0);
        if (i > 0 && s[i].time_us < s[i - 1].time_us) {
            s[i].time_us = s[i - 1].time_us;
        }
        util += ((double)(s_rng(&r) % 1000) - 500) / 25000.0;
        util = util < 0 ? 0 : util > 1 ? 1 : util;
        hot += ((double)(s_rng(&r) % 100) - 50) / 500.0;
        float v[] = {(float)(9200 + 13800 * util),
                     (float)(25 + (s_rng(&r) % 10) / 100.0),
                     (float)(33 + util * 3),
                     40.0f,
                     (float)hot,
                     (float)util,
                     (float)(util * 12000),
                     1.0f,
                     (float)(42 + (s_rng(&r) % 30) / 100.0)};
        s[i].power_w = v[0];
        s[i].inlet_c = v[1];
        s[i].outlet_c = v[2];
        s[i].flow_lpm = v[3];
        s[i].wafer_hotspot_c = v[4];
        s[i].utilization = v[5];
        s[i].tokens_per_s = v[6];
        s[i].throttle_factor = v[7];
        s[i].humidity_pct = v[8];
        if (quantized) {
            for (size_t c = 1; c < WW_SBLOCK_NCOLS; c++) {
                const ww_sblock_column_t *col = ww_sblock_column(c);
                if (col->kind == WW_FIELD_KIND_F32) {
                    float *f = (float *)((char *)&s[i] + col->off);
                    *f = ww_sblock_quantize(*f, col->res);
                }
            }
        }
        s[i].requests_queued = (s_rng(&r) % 20) == 0 ? (uint32_t)(s_rng(&r) % 10) : 0;
        s[i].requests_in_flight = (uint32_t)(util * 64);
        s[i].requests_completed = (uint32_t)(s_rng(&r) % 60);
        s[i].throttled = (i / 50) % 4 == 3;
        s[i].humidity_pct_null = nulls && (i / 30) % 3 == 1;
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_sblock_seeds DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    enum { N = 3600 };
    ww_sblock_sample_t *s = calloc(N, sizeof *s);
    if (!s) {
        return 1;
    }
    s_write(dir, "empty", s, 0);
    for (size_t n = 1; n <= 3; n++) {
        char name[32];
        s_series(s, n, n, true, false);
        snprintf(name, sizeof name, "n%zu", n);
        s_write(dir, name, s, n);
    }
    s_series(s, 64, 5, true, true);
    s_write(dir, "grid64_nulls", s, 64);
    s_series(s, 64, 6, false, true);
    s_write(dir, "raw64_nulls", s, 64);
    s_series(s, 300, 7, true, false);
    s_write(dir, "grid300", s, 300);
    /* Special floats and extreme integers and times. */
    static const uint32_t sp[] = {0x80000000u, 0x7fc00001u, 0xff800000u, 0x00000001u,
                                  0x7f7fffffu, 0x3dcccccdu, 0x7fbfffffu, 0x00800000u};
    for (size_t i = 0; i < 16; i++) {
        for (size_t c = 1; c < WW_SBLOCK_NCOLS; c++) {
            const ww_sblock_column_t *col = ww_sblock_column(c);
            if (col->kind == WW_FIELD_KIND_F32) {
                memcpy((char *)&s[i] + col->off, &sp[(i + c) % 8], 4);
            }
        }
        s[i].requests_completed = INT32_MAX;
        s[i].time_us = i < 8 ? INT64_MIN + (int64_t)i : INT64_MAX;
    }
    s_write(dir, "specials", s, 16);
    s_series(s, N, 9, true, true);
    s_write(dir, "hour_grid", s, N);
    /* A long regular block of constant readings: every column in RUNS mode. */
    for (size_t i = 0; i < N; i++) {
        s[i] = s[0];
        s[i].time_us = (int64_t)i * 1000000;
    }
    s_write(dir, "hour_constant", s, N);
    free(s);
    return s_failed;
}

#endif
