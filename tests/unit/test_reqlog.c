/* Unit tests of ww_reqlog, the request log: the datagram codec (round trips of REQUESTS and
 * READING datagrams, versions 1 and 2, checked against an independent byte-level builder, a batch
 * filling to exactly WW_REQLOG_MAX_DGRAM, every rejection of the parser, of ww_reqlog_record and of
 * the encoder) and the agent-side source end to end over a real Unix datagram socket in a temporary
 * directory (model tables mapped by name across datagrams, readings and their age, bad datagrams
 * and bad records dropped, the ninth model, poll_requests without a sink, an oversize datagram, and
 * what open refuses, replaces and close removes). */
#include "ww_le.h"
#include "ww_log.h"
#include "ww_reqlog_source.h"
#include "ww_test.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#define SEC INT64_C(1000000000)
#define T0 (INT64_C(1795000000) * SEC) /* 2026-11-18 */

/* ---- an independent encoder: the layout of ww_reqlog.h written out byte by byte ---- */

typedef struct {
    uint8_t b[20480];
    size_t len;
} raw_t;

static void raw_header_v(raw_t *d, unsigned version, unsigned type, unsigned n_models,
                         uint32_t count)
{
    memset(d->b, 0, sizeof d->b);
    d->b[0] = 'W';
    d->b[1] = 'R';
    d->b[2] = 'L';
    d->b[3] = '1';
    d->b[4] = (uint8_t)version;
    d->b[5] = (uint8_t)type;
    d->b[6] = (uint8_t)n_models;
    d->b[7] = (uint8_t)(n_models >> 8);
    for (int i = 0; i < 4; i++) {
        d->b[8 + i] = (uint8_t)(count >> (8 * i));
    }
    d->len = WW_REQLOG_HEADER;
}

/* Version 1: what REQUESTS are written as, and the first READING layout. */
static void raw_header(raw_t *d, unsigned type, unsigned n_models, uint32_t count)
{
    raw_header_v(d, 1, type, n_models, count);
}

static void raw_u(raw_t *d, size_t off, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) {
        d->b[off + (size_t)i] = (uint8_t)(v >> (8 * i));
    }
}

/* A REQUESTS datagram: the table as given (names of any length, even 0 or 48), padding,
 * then the records. Returns the records' offset. */
static size_t raw_requests(raw_t *d, const char *const *names, unsigned n, const ww_request_t *r,
                           uint32_t count)
{
    raw_header(d, WW_REQLOG_REQUESTS, n, count);
    size_t off = WW_REQLOG_HEADER;
    for (unsigned i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        d->b[off++] = (uint8_t)len;
        memcpy(d->b + off, names[i], len);
        off += len;
    }
    size_t rec = (off + 7) / 8 * 8;
    for (uint32_t k = 0; k < count; k++) {
        size_t p = rec + (size_t)k * WW_REQLOG_RECORD;
        raw_u(d, p, (uint64_t)r[k].arrival_ns, 8);
        raw_u(d, p + 8, (uint64_t)r[k].start_ns, 8);
        raw_u(d, p + 16, (uint64_t)r[k].first_token_ns, 8);
        raw_u(d, p + 24, (uint64_t)r[k].done_ns, 8);
        raw_u(d, p + 32, r[k].prompt_tokens, 4);
        raw_u(d, p + 36, r[k].output_tokens, 4);
        raw_u(d, p + 40, r[k].model, 2);
        d->b[p + 42] = (uint8_t)r[k].status;
    }
    d->len = rec + (size_t)count * WW_REQLOG_RECORD;
    return rec;
}

static uint32_t fbits(float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    return v;
}

static void raw_reading(raw_t *d, int64_t t, const ww_reading_t *r)
{
    raw_header(d, WW_REQLOG_READING, 0, 1);
    raw_u(d, 16, (uint64_t)t, 8);
    const float f[] = {r->power_w,         r->inlet_c,     r->outlet_c,     r->flow_lpm,
                       r->wafer_hotspot_c, r->utilization, r->tokens_per_s, r->throttle_factor};
    for (int i = 0; i < 8; i++) {
        raw_u(d, 24 + 4 * (size_t)i, fbits(f[i]), 4);
    }
    raw_u(d, 56, r->requests_queued, 4);
    raw_u(d, 60, r->requests_in_flight, 4);
    raw_u(d, 64, r->requests_completed, 4);
    d->b[68] = r->throttled ? 1 : 0;
    d->len = 72;
}

/* Version 2: version 1's body, the version byte 2, and humidity_pct (f32) at 72. */
static void raw_reading2(raw_t *d, int64_t t, const ww_reading_t *r)
{
    raw_reading(d, t, r);
    d->b[4] = 2;
    raw_u(d, 72, fbits(r->humidity_pct), 4);
    d->len = 76;
}

/* ---- fixtures ---- */

static ww_request_t req(uint16_t model, ww_req_status_t st, int64_t done_ns, uint32_t prompt,
                        uint32_t out)
{
    ww_request_t r;
    memset(&r, 0, sizeof r);
    r.model = model;
    r.status = st;
    r.arrival_ns = done_ns - 3 * SEC;
    r.start_ns = done_ns - 2 * SEC;
    r.first_token_ns = done_ns - SEC;
    r.done_ns = done_ns;
    r.prompt_tokens = prompt;
    r.output_tokens = out;
    return r;
}

static void assert_req_equal(const ww_request_t *a, const ww_request_t *b)
{
    assert_int_equal(a->model, b->model);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->arrival_ns, b->arrival_ns);
    assert_int_equal(a->start_ns, b->start_ns);
    assert_int_equal(a->first_token_ns, b->first_token_ns);
    assert_int_equal(a->done_ns, b->done_ns);
    assert_int_equal(a->prompt_tokens, b->prompt_tokens);
    assert_int_equal(a->output_tokens, b->output_tokens);
}

/* Every field, floats by their bits; requests_completed only when `completed` is true. */
static void assert_reading_equal(const ww_reading_t *a, const ww_reading_t *b, bool completed)
{
    assert_int_equal(fbits(a->power_w), fbits(b->power_w));
    assert_int_equal(fbits(a->inlet_c), fbits(b->inlet_c));
    assert_int_equal(fbits(a->outlet_c), fbits(b->outlet_c));
    assert_int_equal(fbits(a->flow_lpm), fbits(b->flow_lpm));
    assert_int_equal(fbits(a->wafer_hotspot_c), fbits(b->wafer_hotspot_c));
    assert_int_equal(fbits(a->utilization), fbits(b->utilization));
    assert_int_equal(fbits(a->tokens_per_s), fbits(b->tokens_per_s));
    assert_int_equal(fbits(a->throttle_factor), fbits(b->throttle_factor));
    assert_int_equal(a->requests_queued, b->requests_queued);
    assert_int_equal(a->requests_in_flight, b->requests_in_flight);
    if (completed) {
        assert_int_equal(a->requests_completed, b->requests_completed);
    }
    assert_int_equal(a->throttled, b->throttled);
    if (isnan(b->humidity_pct)) {
        assert_true(isnan(a->humidity_pct)); /* not measured */
    } else {
        assert_int_equal(fbits(a->humidity_pct), fbits(b->humidity_pct));
    }
}

static ww_reading_t reading_of(float power)
{
    ww_reading_t r;
    memset(&r, 0, sizeof r);
    r.power_w = power;
    r.inlet_c = 25.5f;
    r.outlet_c = 33.25f;
    r.flow_lpm = 41.0f;
    r.wafer_hotspot_c = 71.125f;
    r.utilization = 0.8125f;
    r.tokens_per_s = 9100.5f;
    r.throttle_factor = 1.0f;
    r.requests_queued = 4;
    r.requests_in_flight = 37;
    r.requests_completed = 1234;
    r.humidity_pct = 43.25f;
    return r;
}

/* Parses and expects a refusal with a reason. */
static void expect_bad(const void *buf, size_t len)
{
    ww_reqlog_msg_t m;
    const char *why = NULL;
    assert_int_equal(ww_reqlog_parse(buf, len, &m, &why), -EBADMSG);
    assert_non_null(why);
    assert_true(why[0] != '\0');
}

static void expect_ok(const void *buf, size_t len, ww_reqlog_msg_t *m)
{
    const char *why = NULL;
    int rc = ww_reqlog_parse(buf, len, m, &why);
    if (rc != 0) {
        fail_msg("parse refused a valid datagram: %s", why ? why : "(no reason)");
    }
}

/* ---- the codec ---- */

static void test_roundtrip_requests(void **state)
{
    (void)state;
    static const char name47[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJK";
    assert_int_equal(strlen(name47), 47);
    const char *const models[] = {"llama3.1-8b", "m", name47};
    ww_request_t in[9];
    in[0] = req(0, WW_REQ_OK, T0, 1000, 250);
    in[1] = req(1, WW_REQ_ERROR, T0 + 1, 0, 0);
    in[2] = req(2, WW_REQ_TIMEOUT, T0 + 2, UINT32_MAX, UINT32_MAX);
    in[3] = req(0, WW_REQ_REJECTED, T0 + 3, 17, 0);
    in[3].first_token_ns = in[3].done_ns; /* a rejection: first token = done */
    /* The largest times, all equal. */
    in[4] = req(2, WW_REQ_OK, INT64_MAX, UINT32_MAX - 1, 1);
    in[4].arrival_ns = in[4].start_ns = in[4].first_token_ns = INT64_MAX;
    /* The smallest arrival, one nanosecond after the epoch. */
    in[5] = req(1, WW_REQ_OK, 4, 1, 2);
    in[5].arrival_ns = 1;
    in[5].start_ns = 2;
    in[5].first_token_ns = 3;
    in[6] = req(1, WW_REQ_ERROR, INT64_C(0x7fffffff00000001), 0x80000000u, 0x7fffffffu);
    in[7] = req(0, WW_REQ_TIMEOUT, INT64_C(0x0102030405060708), 0x01020304u, 0xa0b0c0d0u);
    in[8] = req(2, WW_REQ_REJECTED, INT64_C(0x00ff00ff00ff00ff), 3, 0);

    ww_reqlog_batch_t *b = malloc(sizeof *b);
    assert_non_null(b);
    assert_int_equal(ww_reqlog_begin(b, models, 3), 0);
    /* 16 + (1 + 11) + (1 + 1) + (1 + 47) = 78, padded to 80 */
    assert_int_equal(b->records_off, 80);
    assert_int_equal(b->len, 80);
    assert_int_equal(b->count, 0);
    for (int k = 0; k < 9; k++) {
        assert_int_equal(ww_reqlog_add(b, &in[k]), 1);
        assert_int_equal(b->count, (uint32_t)k + 1);
        assert_int_equal(b->len, 80 + 48 * ((size_t)k + 1));
        assert_int_equal(ww_get_le32(b->buf + 8), (uint32_t)k + 1);
    }

    /* Byte for byte what the layout in ww_reqlog.h says. */
    raw_t *raw = malloc(sizeof *raw);
    assert_non_null(raw);
    assert_int_equal(raw_requests(raw, models, 3, in, 9), 80);
    assert_int_equal(raw->len, b->len);
    assert_memory_equal(raw->b, b->buf, b->len);

    ww_reqlog_msg_t m;
    expect_ok(b->buf, b->len, &m);
    assert_int_equal(m.type, WW_REQLOG_REQUESTS);
    assert_int_equal(m.n_models, 3);
    assert_int_equal(m.count, 9);
    assert_ptr_equal(m.records, b->buf + 80);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(m.model_len[i], strlen(models[i]));
        assert_memory_equal(m.model[i], models[i], m.model_len[i]);
    }
    for (uint32_t k = 0; k < 9; k++) {
        ww_request_t out;
        const char *why = NULL;
        assert_int_equal(ww_reqlog_record(&m, k, &out, &why), 0);
        assert_req_equal(&out, &in[k]);
    }

    /* A table that ends on a multiple of 8 (no padding) and an empty batch. */
    const char *const two[] = {"abc", "xyz"};
    assert_int_equal(ww_reqlog_begin(b, two, 2), 0);
    assert_int_equal(b->records_off, 24);
    expect_ok(b->buf, b->len, &m);
    assert_int_equal(m.count, 0);
    assert_int_equal(m.n_models, 2);
    ww_request_t one = req(1, WW_REQ_OK, T0, 5, 6);
    assert_int_equal(ww_reqlog_add(b, &one), 1);
    expect_ok(b->buf, b->len, &m);
    assert_int_equal(b->len, 24 + 48);
    ww_request_t out;
    const char *why = NULL;
    assert_int_equal(ww_reqlog_record(&m, 0, &out, &why), 0);
    assert_req_equal(&out, &one);
    free(raw);
    free(b);
}

static void test_roundtrip_reading(void **state)
{
    (void)state;
    ww_reading_t in;
    memset(&in, 0, sizeof in);
    in.power_w = 23456.789f;
    in.inlet_c = -0.0f;
    in.outlet_c = 1e-45f; /* the smallest subnormal */
    in.flow_lpm = FLT_MAX;
    in.wafer_hotspot_c = -FLT_MAX;
    in.utilization = 0.1f;
    in.tokens_per_s = FLT_MIN;
    in.throttle_factor = 0.7f;
    in.requests_queued = UINT32_MAX;
    in.requests_in_flight = 0x01020304u;
    in.requests_completed = 0x80000001u;
    in.throttled = true;

    in.humidity_pct = 100.0f;

    /* Version 2, what the encoder writes: version 1's 56 bytes, then humidity_pct. */
    uint8_t buf[WW_REQLOG_HEADER + WW_REQLOG_READING_BYTES + 8];
    memset(buf, 0xee, sizeof buf);
    size_t n = ww_reqlog_reading(buf, INT64_MAX, &in);
    assert_int_equal(n, 76);
    assert_int_equal(buf[76], 0xee); /* nothing written past the end */
    raw_t raw;
    raw_reading2(&raw, INT64_MAX, &in);
    assert_memory_equal(raw.b, buf, 76);
    assert_memory_equal(buf, "WRL1\x02\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00", 16);
    assert_memory_equal(buf + 72, "\x00\x00\xc8\x42", 4); /* 100.0f, little-endian */

    ww_reqlog_msg_t m;
    memset(&m, 0xff, sizeof m); /* whatever the caller's stack held */
    expect_ok(buf, n, &m);
    assert_int_equal(m.version, 2);
    assert_int_equal(m.type, WW_REQLOG_READING);
    assert_int_equal(m.time_ns, INT64_MAX);
    assert_reading_equal(&m.reading, &in, true);
    assert_true(m.reading.throttled);
    /* The datagram carries no "not measured" bits: every reading it holds was measured. */
    assert_int_equal(m.reading.not_measured, 0);

    /* Version 1, byte for byte as before: no humidity, which parses as not measured. */
    memset(buf, 0xee, sizeof buf);
    n = ww_reqlog_reading_v(buf, 1, INT64_MAX, &in);
    assert_int_equal(n, 72);
    assert_int_equal(buf[72], 0xee);
    raw_reading(&raw, INT64_MAX, &in);
    assert_memory_equal(raw.b, buf, 72);
    assert_memory_equal(buf, "WRL1\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00", 16);
    expect_ok(buf, n, &m);
    assert_int_equal(m.version, 1);
    assert_true(isnan(m.reading.humidity_pct));
    ww_reading_t v1 = in;
    v1.humidity_pct = NAN;
    assert_reading_equal(&m.reading, &v1, true);
    /* Versions this codec does not write. */
    assert_int_equal(ww_reqlog_reading_v(buf, 0, 1, &in), 0);
    assert_int_equal(ww_reqlog_reading_v(buf, 3, 1, &in), 0);

    /* Not throttled, the smallest time, humidity not measured (NaN travels as NaN). */
    in.throttled = false;
    in.inlet_c = 0.0f;
    in.humidity_pct = NAN;
    n = ww_reqlog_reading(buf, 1, &in);
    assert_int_equal(n, 76);
    assert_int_equal(buf[68], 0);
    raw_reading2(&raw, 1, &in);
    assert_memory_equal(raw.b, buf, 76);
    expect_ok(buf, n, &m);
    assert_int_equal(m.time_ns, 1);
    assert_reading_equal(&m.reading, &in, true);
    assert_false(m.reading.throttled);
    assert_true(isnan(m.reading.humidity_pct));
}

static void test_batch_fills(void **state)
{
    (void)state;
    static const char name47[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJK";
    static const char n47b[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijk";
    static const char n47c[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJK";
    const struct {
        const char *models[3];
        unsigned n;
        size_t records_off;
    } cases[] = {
        {{"m"}, 1, 24},                 /* 16384 - 24 = 340 records + 40 bytes */
        {{name47}, 1, 64},              /* 16384 - 64 = exactly 340 records */
        {{name47, n47b, n47c}, 3, 160}, /* 338 records + 0 bytes */
        {{"llama3.1-8b", "x"}, 2, 32},  /* 340 records + 32 bytes */
    };
    ww_reqlog_batch_t *b = malloc(sizeof *b);
    assert_non_null(b);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        assert_int_equal(ww_reqlog_begin(b, cases[c].models, cases[c].n), 0);
        assert_int_equal(b->records_off, cases[c].records_off);
        uint32_t want = (uint32_t)((WW_REQLOG_MAX_DGRAM - cases[c].records_off) / 48);
        uint32_t k = 0;
        for (;;) {
            ww_request_t r =
                req((uint16_t)(k % cases[c].n), (ww_req_status_t)(k % 4), T0 + k, k, 2 * k);
            bool fits = b->len + WW_REQLOG_RECORD <= WW_REQLOG_MAX_DGRAM;
            size_t len = b->len;
            int rc = ww_reqlog_add(b, &r);
            assert_int_equal(rc, fits ? 1 : 0);
            if (rc == 0) {
                assert_int_equal(b->len, len); /* a full batch is unchanged */
                break;
            }
            k++;
            assert_true(k <= want);
        }
        assert_int_equal(k, want);
        assert_int_equal(b->count, want);
        assert_int_equal(b->len, cases[c].records_off + 48 * (size_t)want);
        assert_true(b->len <= WW_REQLOG_MAX_DGRAM);
        assert_true(b->len + 48 > WW_REQLOG_MAX_DGRAM);
        /* Still full on a second try. */
        ww_request_t r = req(0, WW_REQ_OK, T0, 1, 1);
        assert_int_equal(ww_reqlog_add(b, &r), 0);

        ww_reqlog_msg_t m;
        expect_ok(b->buf, b->len, &m);
        assert_int_equal(m.count, want);
        for (uint32_t j = 0; j < want; j++) {
            ww_request_t out;
            const char *why = NULL;
            assert_int_equal(ww_reqlog_record(&m, j, &out, &why), 0);
            ww_request_t exp =
                req((uint16_t)(j % cases[c].n), (ww_req_status_t)(j % 4), T0 + j, j, 2 * j);
            assert_req_equal(&out, &exp);
        }
    }
    /* The exact fit fills WW_REQLOG_MAX_DGRAM to the byte. */
    assert_int_equal(ww_reqlog_begin(b, cases[1].models, 1), 0);
    ww_request_t r = req(0, WW_REQ_OK, T0, 1, 1);
    while (ww_reqlog_add(b, &r) == 1) {
    }
    assert_int_equal(b->len, WW_REQLOG_MAX_DGRAM);
    free(b);
}

static void test_parse_rejects_header(void **state)
{
    (void)state;
    ww_reading_t rd = reading_of(20000.0f);
    raw_t d;
    raw_reading(&d, T0, &rd);
    ww_reqlog_msg_t m;
    expect_ok(d.b, d.len, &m);

    /* short header */
    expect_bad(d.b, 0);
    expect_bad(d.b, 1);
    expect_bad(d.b, 15);
    raw_t e;
    /* bad magic: any byte, and the magic written big-endian */
    for (int i = 0; i < 4; i++) {
        e = d;
        e.b[i] ^= 0x01;
        expect_bad(e.b, e.len);
    }
    e = d;
    memcpy(e.b, "1LRW", 4);
    expect_bad(e.b, e.len);
    /* version */
    static const uint8_t versions[] = {0, 3, 255};
    for (size_t i = 0; i < sizeof versions; i++) {
        e = d;
        e.b[4] = versions[i];
        expect_bad(e.b, e.len);
    }
    /* version 2 with version 1's 72-byte reading, and the reverse */
    e = d;
    e.b[4] = 2;
    expect_bad(e.b, e.len);
    raw_reading2(&e, T0, &rd);
    expect_ok(e.b, e.len, &m);
    e.b[4] = 1;
    expect_bad(e.b, e.len);
    /* reserved */
    for (int i = 12; i < 16; i++) {
        e = d;
        e.b[i] = 1;
        expect_bad(e.b, e.len);
    }
    /* unknown type, also on a REQUESTS-shaped datagram */
    static const uint8_t types[] = {0, 3, 255};
    for (size_t i = 0; i < sizeof types; i++) {
        e = d;
        e.b[5] = types[i];
        expect_bad(e.b, e.len);
    }
    const char *const one[] = {"m"};
    raw_requests(&e, one, 1, NULL, 0);
    expect_ok(e.b, e.len, &m);
    e.b[4] = 2; /* REQUESTS are the same in version 2 */
    expect_ok(e.b, e.len, &m);
    assert_int_equal(m.version, 2);
    e.b[4] = 1;
    e.b[5] = 3;
    expect_bad(e.b, e.len);
    e.b[5] = 0;
    expect_bad(e.b, e.len);

    /* longer than 16384: even with a consistent count */
    ww_reqlog_batch_t *b = malloc(sizeof *b);
    assert_non_null(b);
    static const char name47[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJK";
    const char *const big[] = {name47};
    assert_int_equal(ww_reqlog_begin(b, big, 1), 0);
    ww_request_t r = req(0, WW_REQ_OK, T0, 1, 1);
    while (ww_reqlog_add(b, &r) == 1) {
    }
    assert_int_equal(b->len, WW_REQLOG_MAX_DGRAM);
    raw_t *over = malloc(sizeof *over);
    assert_non_null(over);
    memcpy(over->b, b->buf, b->len);
    expect_ok(over->b, WW_REQLOG_MAX_DGRAM, &m);
    memset(over->b + WW_REQLOG_MAX_DGRAM, 0, 48);
    expect_bad(over->b, WW_REQLOG_MAX_DGRAM + 1);
    /* 341 records: consistent with the header, too long */
    memcpy(over->b + WW_REQLOG_MAX_DGRAM, b->buf + 64, 48);
    ww_put_le32(over->b + 8, 341);
    expect_bad(over->b, WW_REQLOG_MAX_DGRAM + 48);
    expect_bad(over->b, sizeof over->b);
    free(over);
    free(b);
}

/* Every refusal of a READING, in both versions (len 72 and 76). */
static void s_rejects_reading(unsigned version)
{
    ww_reading_t rd = reading_of(20000.0f);
    raw_t d;
    if (version == 1) {
        raw_reading(&d, T0, &rd);
    } else {
        raw_reading2(&d, T0, &rd);
    }
    const size_t len = d.len;
    assert_int_equal(len, version == 1 ? 72 : 76);
    ww_reqlog_msg_t m;
    expect_ok(d.b, d.len, &m);
    raw_t e;

    /* wrong length */
    expect_bad(d.b, len - 1);
    expect_bad(d.b, 16);
    e = d;
    expect_bad(e.b, len + 1); /* the byte after is zero */
    expect_bad(e.b, len + 48);
    expect_bad(e.b, version == 1 ? 76 : 72); /* the other version's length */
    /* wrong count, models */
    static const uint32_t counts[] = {0, 2, UINT32_MAX};
    for (size_t i = 0; i < 3; i++) {
        e = d;
        ww_put_le32(e.b + 8, counts[i]);
        expect_bad(e.b, e.len);
    }
    e = d;
    ww_put_le16(e.b + 6, 1);
    expect_bad(e.b, e.len);
    e = d;
    ww_put_le16(e.b + 6, 0x100);
    expect_bad(e.b, e.len);
    /* non-finite floats in each of the eight */
    const float bad[] = {NAN, -NAN, INFINITY, -INFINITY};
    for (int f = 0; f < 8; f++) {
        for (size_t i = 0; i < 4; i++) {
            e = d;
            ww_put_lef(e.b + 24 + 4 * f, bad[i]);
            expect_bad(e.b, e.len);
        }
        e = d; /* a signalling NaN's bits */
        ww_put_le32(e.b + 24 + 4 * f, 0x7f800001u);
        expect_bad(e.b, e.len);
    }
    /* throttled 2, 255; the padding after it */
    static const uint8_t thr[] = {2, 255};
    for (size_t i = 0; i < 2; i++) {
        e = d;
        e.b[68] = thr[i];
        expect_bad(e.b, e.len);
    }
    for (int i = 69; i < 72; i++) {
        e = d;
        e.b[i] = 1;
        expect_bad(e.b, e.len);
    }
    /* time 0 and negative */
    e = d;
    ww_put_le64(e.b + 16, 0);
    expect_bad(e.b, e.len);
    e = d;
    ww_put_le64(e.b + 16, (uint64_t)INT64_C(-1));
    expect_bad(e.b, e.len);
    e = d;
    ww_put_le64(e.b + 16, (uint64_t)INT64_MIN);
    expect_bad(e.b, e.len);
    /* throttled 1 and finite extremes are fine */
    e = d;
    e.b[68] = 1;
    ww_put_lef(e.b + 24, -FLT_MAX);
    expect_ok(e.b, e.len, &m);
    assert_true(m.reading.throttled);
    if (version == 1) {
        assert_true(isnan(m.reading.humidity_pct)); /* version 1 has none */
        return;
    }
    assert_int_equal(fbits(m.reading.humidity_pct), fbits(43.25f));
    /* humidity_pct: any NaN is "not measured"; infinities are refused; the range is the
     * collector's to check (ww_wire_check_sample), not the datagram's */
    static const uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u};
    for (size_t i = 0; i < 3; i++) {
        e = d;
        ww_put_le32(e.b + 72, nans[i]);
        expect_ok(e.b, e.len, &m);
        assert_true(isnan(m.reading.humidity_pct));
    }
    e = d;
    ww_put_lef(e.b + 72, INFINITY);
    expect_bad(e.b, e.len);
    e = d;
    ww_put_lef(e.b + 72, -INFINITY);
    expect_bad(e.b, e.len);
    e = d;
    ww_put_lef(e.b + 72, -FLT_MAX);
    expect_ok(e.b, e.len, &m);
    assert_int_equal(fbits(m.reading.humidity_pct), fbits(-FLT_MAX));
}

static void test_parse_rejects_reading(void **state)
{
    (void)state;
    s_rejects_reading(1);
    s_rejects_reading(2);
}

static void test_parse_rejects_requests(void **state)
{
    (void)state;
    ww_request_t r[3] = {req(0, WW_REQ_OK, T0, 1, 2), req(1, WW_REQ_ERROR, T0 + 1, 3, 4),
                         req(0, WW_REQ_TIMEOUT, T0 + 2, 5, 6)};
    const char *const two[] = {"alpha", "be"}; /* 16 + 6 + 3 = 25: 7 padding bytes */
    raw_t d;
    size_t rec = raw_requests(&d, two, 2, r, 3);
    assert_int_equal(rec, 32);
    ww_reqlog_msg_t m;
    expect_ok(d.b, d.len, &m);
    raw_t e;

    /* 0 and 9 models; 8 is fine */
    raw_requests(&e, two, 0, NULL, 0);
    expect_bad(e.b, e.len);
    e = d;
    ww_put_le16(e.b + 6, 0);
    expect_bad(e.b, e.len);
    const char *const nine[] = {"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"};
    raw_requests(&e, nine, 8, r, 3);
    expect_ok(e.b, e.len, &m);
    assert_int_equal(m.n_models, 8);
    raw_requests(&e, nine, 9, r, 3);
    expect_bad(e.b, e.len);
    e = d;
    ww_put_le16(e.b + 6, 0xffff);
    expect_bad(e.b, e.len);

    /* bad names: length 0, 48 (47 is fine), a space, control bytes, DEL, non-ASCII */
    static const char name47[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJK";
    static const char name48[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL";
    const char *ok47[] = {"alpha", name47};
    raw_requests(&e, ok47, 2, r, 3);
    expect_ok(e.b, e.len, &m);
    assert_int_equal(m.model_len[1], 47);
    const char *const badnames[] = {"",       name48, "a b",   " ab",   "ab ",
                                    "a\x01z", "a\tb", "a\x7f", "\x80x", "a\xff"};
    for (size_t i = 0; i < sizeof badnames / sizeof badnames[0]; i++) {
        for (int pos = 0; pos < 2; pos++) {
            const char *names[2] = {"alpha", "alpha"};
            names[pos] = badnames[i];
            raw_requests(&e, names, 2, r, 3);
            expect_bad(e.b, e.len);
        }
    }
    /* a NUL inside a name */
    raw_requests(&e, two, 2, r, 3);
    e.b[18] = '\0'; /* "al\0ha" */
    expect_bad(e.b, e.len);

    /* the table runs past the end: cut inside a name, right after one, inside a length */
    const char *const long2[] = {"first-model", "second-model"};
    raw_requests(&e, long2, 2, NULL, 0);
    size_t table_end = 16 + 12 + 13;
    assert_int_equal(e.len, 48);
    for (size_t len = 16; len < table_end; len++) {
        expect_bad(e.b, len);
    }
    /* a name length past the end of a whole-length datagram */
    raw_requests(&e, long2, 2, NULL, 0);
    e.b[16 + 12] = 40; /* the second name claims 40 bytes; 48 - 29 = 19 left */
    expect_bad(e.b, e.len);
    memset(e.b + 41, 'x', 7);
    e.b[16 + 12] = 19; /* "second-modelxxxxxxx" ends at 48: no padding needed */
    expect_ok(e.b, e.len, &m);
    assert_int_equal(m.model_len[1], 19);
    e.b[16 + 12] = 20;
    expect_bad(e.b, e.len);
    /* the padding runs past the end (no records, table unaligned) */
    raw_requests(&e, two, 2, NULL, 0);
    assert_int_equal(e.len, 32);
    for (size_t len = 25; len < 32; len++) {
        expect_bad(e.b, len);
    }
    expect_ok(e.b, 32, &m);

    /* nonzero table padding, each byte */
    for (size_t i = 25; i < 32; i++) {
        e = d;
        e.b[i] = 1;
        expect_bad(e.b, e.len);
    }

    /* length and count */
    expect_bad(d.b, d.len - 1);
    e = d;
    expect_bad(e.b, d.len + 1);
    expect_bad(e.b, d.len - 48);
    expect_bad(e.b, d.len + 47);
    for (int delta = -1; delta <= 1; delta += 2) {
        e = d;
        ww_put_le32(e.b + 8, (uint32_t)(3 + delta));
        expect_bad(e.b, e.len);
    }
    e = d;
    ww_put_le32(e.b + 8, 0);
    expect_bad(e.b, e.len);
    e = d;
    ww_put_le32(e.b + 8, UINT32_MAX);
    expect_bad(e.b, e.len);
    /* count + one record's worth of bytes: consistent again */
    e = d;
    ww_put_le32(e.b + 8, 4);
    memcpy(e.b + d.len, e.b + rec, 48);
    expect_ok(e.b, d.len + 48, &m);
    assert_int_equal(m.count, 4);
}

static void test_record_rejects(void **state)
{
    (void)state;
    ww_request_t r[1] = {req(1, WW_REQ_REJECTED, T0, 1, 2)};
    const char *const two[] = {"alpha", "beta"};
    raw_t d;
    size_t rec = raw_requests(&d, two, 2, r, 1);
    ww_reqlog_msg_t m;
    ww_request_t out;
    const char *why = NULL;
    expect_ok(d.b, d.len, &m);
    assert_int_equal(ww_reqlog_record(&m, 0, &out, &why), 0);
    assert_req_equal(&out, &r[0]);

    struct {
        const char *what;
        size_t off;
        int bytes;
        uint64_t v;
    } bad[] = {
        {"model = n_models", 40, 2, 2},
        {"model 0xffff", 40, 2, 0xffff},
        {"model 8", 40, 2, 8},
        {"status 4", 42, 1, 4},
        {"status 255", 42, 1, 255},
        {"arrival > start", 0, 8, (uint64_t)(T0 - 2 * SEC + 1)},
        {"start > first token", 8, 8, (uint64_t)(T0 - SEC + 1)},
        {"first token > done", 16, 8, (uint64_t)(T0 + 1)},
        {"done < first token", 24, 8, (uint64_t)(T0 - SEC - 1)},
        {"arrival 0", 0, 8, 0},
        {"arrival -1", 0, 8, UINT64_MAX},
        {"arrival INT64_MIN", 0, 8, (uint64_t)INT64_MIN},
        {"padding 43", 43, 1, 1},
        {"padding 44", 44, 1, 0x80},
        {"padding 45", 45, 1, 1},
        {"padding 46", 46, 1, 1},
        {"padding 47", 47, 1, 0xff},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        raw_t e = d;
        raw_u(&e, rec + bad[i].off, bad[i].v, bad[i].bytes);
        expect_ok(e.b, e.len, &m); /* records are not the parser's business */
        why = NULL;
        int rc = ww_reqlog_record(&m, 0, &out, &why);
        if (rc != -EINVAL || why == NULL || why[0] == '\0') {
            fail_msg("record with %s: rc %d, why %s", bad[i].what, rc, why ? why : "NULL");
        }
    }
    /* every time equal, and arrival 1, are fine; model n_models - 1 too */
    raw_t e = d;
    raw_u(&e, rec, 1, 8);
    raw_u(&e, rec + 8, 1, 8);
    raw_u(&e, rec + 16, 1, 8);
    raw_u(&e, rec + 24, 1, 8);
    expect_ok(e.b, e.len, &m);
    assert_int_equal(ww_reqlog_record(&m, 0, &out, &why), 0);
    assert_int_equal(out.arrival_ns, 1);
    assert_int_equal(out.done_ns, 1);
    assert_int_equal(out.model, 1);
    assert_int_equal(out.status, WW_REQ_REJECTED);
}

static void test_encoder_rejects(void **state)
{
    (void)state;
    static const char name47[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJK";
    static const char name48[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL";
    ww_reqlog_batch_t *b = malloc(sizeof *b);
    assert_non_null(b);
    const char *n[9] = {"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"};
    assert_int_equal(ww_reqlog_begin(b, n, 0), -EINVAL);
    assert_int_equal(ww_reqlog_begin(b, n, 9), -EINVAL);
    assert_int_equal(ww_reqlog_begin(b, n, 8), 0);
    assert_int_equal(b->n_models, 8);
    assert_int_equal(b->records_off, 16 + 8 * 3 + 0); /* 40 */

    const char *const bad[] = {"", name48, "a b", " ", "a\x01", "\x1f", "a\x7f", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *one[1] = {bad[i]};
        assert_int_equal(ww_reqlog_begin(b, one, 1), -EINVAL);
        const char *three[3] = {"ok", "fine", bad[i]};
        assert_int_equal(ww_reqlog_begin(b, three, 3), -EINVAL);
    }
    const char *one[1] = {name47};
    assert_int_equal(ww_reqlog_begin(b, one, 1), 0);
    assert_int_equal(b->records_off, 64);
    const char *printable[1] = {"!~a.Z-_/:@"};
    assert_int_equal(ww_reqlog_begin(b, printable, 1), 0);
    free(b);
}

/* ---- the source over a real socket ---- */

#define MAX_GOT 4096

typedef struct {
    char *dir;
    char path[108];
    void *st;
    int tx; /* the sender, connected to path */
    ww_request_t got[MAX_GOT];
    size_t n_got;
} fx_t;

static void sink(void *arg, const ww_request_t *r)
{
    fx_t *f = arg;
    assert_true(f->n_got < MAX_GOT);
    f->got[f->n_got++] = *r;
}

static fx_t *fx_new(void)
{
    fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    char tmpl[] = "/tmp/ww_reqlog_test_XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    f->dir = strdup(d);
    assert_non_null(f->dir);
    snprintf(f->path, sizeof f->path, "%s/reqlog.sock", f->dir);
    f->tx = -1;
    return f;
}

static int fx_open_mode(fx_t *f, unsigned mode)
{
    ww_reqlog_conf_t c = {.path = f->path, .mode = mode, .max_age_ns = 5 * SEC};
    return ww_reqlog_source.open(&c, 0, T0, &f->st);
}

static int connect_to(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    assert_true(strlen(path) < sizeof a.sun_path);
    strcpy(a.sun_path, path);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -errno;
    }
    return fd;
}

/* Opens the source (mode 0600, max_age 5 s) and connects the sender. */
static void fx_open(fx_t *f)
{
    assert_int_equal(fx_open_mode(f, 0600), 0);
    assert_non_null(f->st);
    f->tx = connect_to(f->path);
    assert_true(f->tx >= 0);
}

static void fx_send(fx_t *f, const void *buf, size_t len)
{
    ssize_t n = send(f->tx, buf, len, MSG_DONTWAIT);
    if (n < 0 || (size_t)n != len) {
        fail_msg("send of %zu bytes: %zd (%s)", len, n, strerror(errno));
    }
}

static void fx_send_reading(fx_t *f, int64_t t, const ww_reading_t *r)
{
    uint8_t buf[WW_REQLOG_HEADER + WW_REQLOG_READING_BYTES];
    assert_int_equal(ww_reqlog_reading(buf, t, r), 76);
    fx_send(f, buf, 76);
}

static void fx_send_requests(fx_t *f, const char *const *models, unsigned n, const ww_request_t *r,
                             uint32_t count)
{
    ww_reqlog_batch_t *b = malloc(sizeof *b);
    assert_non_null(b);
    assert_int_equal(ww_reqlog_begin(b, models, n), 0);
    for (uint32_t k = 0; k < count; k++) {
        assert_int_equal(ww_reqlog_add(b, &r[k]), 1);
    }
    fx_send(f, b->buf, b->len);
    free(b);
}

/* The source's fd is readable (what the agent polls). */
static void fx_readable(fx_t *f)
{
    struct pollfd p = {.fd = ww_reqlog_source.fd(f->st), .events = POLLIN};
    assert_true(p.fd >= 0);
    assert_int_equal(poll(&p, 1, 2000), 1);
    assert_true(p.revents & POLLIN);
}

static int fx_setup(void **state)
{
    *state = fx_new();
    return 0;
}

/* Closes what the case left open and removes its directory; fails when the directory holds
 * anything but the socket's path. */
static int fx_teardown(void **state)
{
    fx_t *f = *state;
    if (f->tx >= 0) {
        close(f->tx);
    }
    ww_reqlog_source.close(&f->st);
    unlink(f->path);
    int rc = rmdir(f->dir);
    if (rc != 0) {
        fprintf(stderr, "test_reqlog: %s: %s\n", f->dir, strerror(errno));
    }
    free(f->dir);
    free(f);
    *state = NULL;
    return rc == 0 ? 0 : -1;
}

/* r with its model replaced by the agent's index. */
static ww_request_t as_model(ww_request_t r, uint16_t model)
{
    r.model = model;
    return r;
}

static void test_source_end_to_end(void **state)
{
    fx_t *f = *state;
    fx_open(f);
    struct stat st;
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    ww_reqlog_source.set_sink(f->st, sink, f);

    /* no reading ever */
    ww_reading_t out;
    assert_int_equal(ww_reqlog_source.sample(f->st, T0, &out), -ENODATA);
    assert_int_equal(ww_reqlog_source.ready(f->st), 0);
    assert_int_equal(f->n_got, 0);
    assert_null(ww_reqlog_source.model_name(f->st, 0));

    ww_reading_t rd = reading_of(21000.5f);
    rd.throttled = true;
    rd.throttle_factor = 0.625f;
    fx_send_reading(f, T0, &rd);
    const char *const ta[] = {"alpha", "beta"};
    ww_request_t a[3] = {req(0, WW_REQ_OK, T0 - 30, 100, 10), req(1, WW_REQ_ERROR, T0 - 20, 200, 0),
                         req(0, WW_REQ_TIMEOUT, T0 - 10, UINT32_MAX, UINT32_MAX)};
    fx_send_requests(f, ta, 2, a, 3);
    const char *const tb[] = {"gamma", "beta", "alpha"};
    ww_request_t b[4] = {req(0, WW_REQ_OK, T0 - 9, 1, 1), req(2, WW_REQ_REJECTED, T0 - 8, 2, 0),
                         req(1, WW_REQ_OK, T0 - 7, 3, 3), req(0, WW_REQ_ERROR, T0 - 6, 4, 4)};
    fx_send_requests(f, tb, 3, b, 4);

    fx_readable(f);
    assert_int_equal(ww_reqlog_source.ready(f->st), 0);
    assert_int_equal(f->n_got, 7);
    /* alpha 0, beta 1, gamma 2: the order first seen */
    assert_string_equal(ww_reqlog_source.model_name(f->st, 0), "alpha");
    assert_string_equal(ww_reqlog_source.model_name(f->st, 1), "beta");
    assert_string_equal(ww_reqlog_source.model_name(f->st, 2), "gamma");
    assert_null(ww_reqlog_source.model_name(f->st, 3));
    assert_null(ww_reqlog_source.model_name(f->st, 8));
    assert_req_equal(&f->got[0], &a[0]);
    assert_req_equal(&f->got[1], &a[1]);
    assert_req_equal(&f->got[2], &a[2]);
    ww_request_t e;
    e = as_model(b[0], 2);
    assert_req_equal(&f->got[3], &e);
    e = as_model(b[1], 0);
    assert_req_equal(&f->got[4], &e);
    e = as_model(b[2], 1);
    assert_req_equal(&f->got[5], &e);
    e = as_model(b[3], 2);
    assert_req_equal(&f->got[6], &e);
    /* nothing more */
    assert_int_equal(ww_reqlog_source.ready(f->st), 0);
    assert_int_equal(f->n_got, 7);

    /* the reading, with the completions counted here */
    memset(&out, 0xa5, sizeof out);
    assert_int_equal(ww_reqlog_source.sample(f->st, T0 + SEC, &out), 0);
    assert_reading_equal(&out, &rd, false);
    assert_int_equal(out.requests_completed, 7);
    assert_int_equal(ww_reqlog_source.sample(f->st, T0 + 2 * SEC, &out), 0);
    assert_reading_equal(&out, &rd, false);
    assert_int_equal(out.requests_completed, 0);

    /* sample() drains too: a datagram sent now is handed to the sink during sample() */
    const char *const tc[] = {"beta"};
    ww_request_t c[2] = {req(0, WW_REQ_OK, T0 - 5, 7, 7), req(0, WW_REQ_OK, T0 - 4, 8, 8)};
    fx_send_requests(f, tc, 1, c, 2);
    assert_int_equal(ww_reqlog_source.sample(f->st, T0 + 3 * SEC, &out), 0);
    assert_int_equal(f->n_got, 9);
    e = as_model(c[0], 1);
    assert_req_equal(&f->got[7], &e);
    e = as_model(c[1], 1);
    assert_req_equal(&f->got[8], &e);
    assert_int_equal(out.requests_completed, 2);

    /* age: exactly max_age is still a reading; one ns more is none */
    assert_int_equal(ww_reqlog_source.sample(f->st, T0 + 5 * SEC, &out), 0);
    assert_int_equal(out.requests_completed, 0);
    assert_int_equal(ww_reqlog_source.sample(f->st, T0 + 5 * SEC + 1, &out), -ENODATA);

    /* a fresh reading; a late one with an older time does not replace it */
    ww_reading_t rd2 = reading_of(22000.0f);
    ww_reading_t old = reading_of(1.0f);
    fx_send_reading(f, T0 + 7 * SEC, &rd2);
    fx_send_reading(f, T0 + 6 * SEC, &old);
    assert_int_equal(ww_reqlog_source.ready(f->st), 0);
    assert_int_equal(ww_reqlog_source.sample(f->st, T0 + 8 * SEC, &out), 0);
    assert_reading_equal(&out, &rd2, false);
    assert_false(out.throttled);
    assert_int_equal(out.requests_completed, 0);
    assert_int_equal(fbits(out.humidity_pct), fbits(43.25f));

    /* a version 1 producer: its reading is taken, humidity not measured */
    raw_t d1;
    ww_reading_t rd3 = reading_of(23000.0f);
    raw_reading(&d1, T0 + 9 * SEC, &rd3);
    fx_send(f, d1.b, d1.len);
    assert_int_equal(ww_reqlog_source.ready(f->st), 0);
    assert_int_equal(ww_reqlog_source.sample(f->st, T0 + 10 * SEC, &out), 0);
    rd3.humidity_pct = NAN;
    assert_reading_equal(&out, &rd3, false);
    assert_true(isnan(out.humidity_pct));
}

static void test_source_bad_datagrams_dropped(void **state)
{
    fx_t *f = *state;
    fx_open(f);
    ww_reqlog_source.set_sink(f->st, sink, f);
    const char *const t[] = {"alpha", "beta"};
    ww_request_t a[2] = {req(0, WW_REQ_OK, T0 - 30, 1, 1), req(1, WW_REQ_OK, T0 - 29, 2, 2)};
    ww_request_t b[2] = {req(1, WW_REQ_OK, T0 - 28, 3, 3), req(0, WW_REQ_OK, T0 - 27, 4, 4)};
    ww_request_t c[3] = {req(0, WW_REQ_OK, T0 - 26, 5, 5), req(1, WW_REQ_OK, T0 - 25, 6, 6),
                         req(1, WW_REQ_ERROR, T0 - 24, 7, 7)};
    ww_reading_t rd = reading_of(20000.0f);

    fx_send_requests(f, t, 2, a, 2);
    /* bad: wrong magic; a reading with a NaN; a length off by one; empty */
    raw_t d;
    raw_requests(&d, t, 2, a, 2);
    d.b[0] = 'X';
    fx_send(f, d.b, d.len);
    raw_reading(&d, T0, &rd);
    ww_put_lef(d.b + 24, NAN);
    fx_send(f, d.b, d.len);
    raw_requests(&d, t, 2, a, 2);
    fx_send(f, d.b, d.len - 1);
    fx_send(f, d.b, 0);
    fx_send_requests(f, t, 2, b, 2);
    /* a good datagram with a bad record in the middle (status 4, model 2, out of order) */
    size_t rec = raw_requests(&d, t, 2, c, 3);
    d.b[rec + 48 + 42] = 4;
    fx_send(f, d.b, d.len);
    rec = raw_requests(&d, t, 2, c, 3);
    raw_u(&d, rec + 48 + 40, 2, 2);
    fx_send(f, d.b, d.len);
    rec = raw_requests(&d, t, 2, c, 3);
    raw_u(&d, rec + 48, (uint64_t)(T0 - 25 + 1), 8); /* arrival after done */
    fx_send(f, d.b, d.len);

    assert_int_equal(ww_reqlog_source.ready(f->st), 0);
    assert_int_equal(f->n_got, 2 + 2 + 3 * 2);
    assert_req_equal(&f->got[0], &a[0]);
    assert_req_equal(&f->got[1], &a[1]);
    assert_req_equal(&f->got[2], &b[0]);
    assert_req_equal(&f->got[3], &b[1]);
    for (int k = 0; k < 3; k++) {
        assert_req_equal(&f->got[4 + 2 * k], &c[0]);
        assert_req_equal(&f->got[5 + 2 * k], &c[2]);
    }
    /* the NaN reading was not taken */
    ww_reading_t out;
    assert_int_equal(ww_reqlog_source.sample(f->st, T0, &out), -ENODATA);
    assert_null(ww_reqlog_source.model_name(f->st, 2));
    fx_send_reading(f, T0, &rd);
    assert_int_equal(ww_reqlog_source.sample(f->st, T0, &out), 0);
    assert_reading_equal(&out, &rd, false);
    /* the dropped records are not counted as completions */
    assert_int_equal(out.requests_completed, 10);
}

static void test_source_ninth_model_dropped(void **state)
{
    fx_t *f = *state;
    fx_open(f);
    ww_reqlog_source.set_sink(f->st, sink, f);
    const char *const eight[] = {"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7"};
    ww_request_t r8[8];
    for (int i = 0; i < 8; i++) {
        r8[i] = req((uint16_t)(7 - i), WW_REQ_OK, T0 - 100 + i, (uint32_t)i, 1);
    }
    fx_send_requests(f, eight, 8, r8, 8);
    /* m8 is the ninth: its records go, m3's stay */
    const char *const t2[] = {"m8", "m3"};
    ww_request_t r2[4] = {req(0, WW_REQ_OK, T0 - 50, 1, 1), req(1, WW_REQ_OK, T0 - 49, 2, 2),
                          req(0, WW_REQ_ERROR, T0 - 48, 3, 3),
                          req(1, WW_REQ_TIMEOUT, T0 - 47, 4, 4)};
    fx_send_requests(f, t2, 2, r2, 4);
    /* a tenth, alone; then m8 again with a known one after it in the table */
    const char *const t3[] = {"m9"};
    ww_request_t r3[1] = {req(0, WW_REQ_OK, T0 - 46, 5, 5)};
    fx_send_requests(f, t3, 1, r3, 1);
    const char *const t4[] = {"m7", "m8", "m0"};
    ww_request_t r4[3] = {req(2, WW_REQ_OK, T0 - 45, 6, 6), req(1, WW_REQ_OK, T0 - 44, 7, 7),
                          req(0, WW_REQ_OK, T0 - 43, 8, 8)};
    fx_send_requests(f, t4, 3, r4, 3);

    assert_int_equal(ww_reqlog_source.ready(f->st), 0);
    assert_int_equal(f->n_got, 8 + 2 + 2);
    for (int i = 0; i < 8; i++) {
        assert_req_equal(&f->got[i], &r8[i]);
    }
    ww_request_t e = as_model(r2[1], 3);
    assert_req_equal(&f->got[8], &e);
    e = as_model(r2[3], 3);
    assert_req_equal(&f->got[9], &e);
    e = as_model(r4[0], 0);
    assert_req_equal(&f->got[10], &e);
    e = as_model(r4[2], 7);
    assert_req_equal(&f->got[11], &e);
    for (unsigned i = 0; i < 8; i++) {
        char want[8];
        snprintf(want, sizeof want, "m%u", i);
        assert_string_equal(ww_reqlog_source.model_name(f->st, i), want);
    }
    assert_null(ww_reqlog_source.model_name(f->st, 8));
}

static void test_source_poll_without_sink(void **state)
{
    fx_t *f = *state;
    fx_open(f);
    const char *const ta[] = {"x", "y"};
    const char *const tc[] = {"z", "y", "x"};
    ww_request_t a[2] = {req(1, WW_REQ_OK, T0 - 20, 1, 1), req(0, WW_REQ_OK, T0 - 19, 2, 2)};
    ww_request_t c[5];
    for (int i = 0; i < 5; i++) {
        c[i] = req((uint16_t)(i % 3), (ww_req_status_t)(i % 4), T0 - 10 + i, (uint32_t)i, 9);
    }
    ww_reading_t rd = reading_of(19000.0f);
    ww_request_t out[3];
    assert_int_equal(ww_reqlog_source.poll_requests(f->st, out, 3), 0);

    fx_send_requests(f, ta, 2, a, 2);
    fx_send_reading(f, T0, &rd);
    fx_send_requests(f, ta, 2, NULL, 0); /* an empty batch */
    fx_send_requests(f, tc, 3, c, 5);
    /* ready() without a sink takes the first datagram and keeps it for poll_requests */
    fx_readable(f);
    assert_int_equal(ww_reqlog_source.ready(f->st), 0);

    ww_request_t want[7] = {a[0],
                            a[1],
                            as_model(c[0], 2),
                            as_model(c[1], 1),
                            as_model(c[2], 0),
                            as_model(c[3], 2),
                            as_model(c[4], 1)};
    size_t k = 0;
    static const int counts[] = {3, 3, 1, 0};
    for (int call = 0; call < 4; call++) {
        memset(out, 0, sizeof out);
        int n = ww_reqlog_source.poll_requests(f->st, out, 3);
        assert_int_equal(n, counts[call]);
        for (int i = 0; i < n; i++) {
            assert_req_equal(&out[i], &want[k++]);
        }
    }
    assert_int_equal(k, 7);
    assert_int_equal(ww_reqlog_source.poll_requests(f->st, out, 3), 0);
    assert_string_equal(ww_reqlog_source.model_name(f->st, 0), "x");
    assert_string_equal(ww_reqlog_source.model_name(f->st, 1), "y");
    assert_string_equal(ww_reqlog_source.model_name(f->st, 2), "z");
    ww_reading_t s;
    assert_int_equal(ww_reqlog_source.sample(f->st, T0 + SEC, &s), 0);
    assert_reading_equal(&s, &rd, false);
    assert_int_equal(s.requests_completed, 7);
}

/* A REQUESTS datagram with no records (count 0 is allowed) ends nothing and yields nothing:
 * poll_requests moves on to the next datagram instead of decoding records past its end
 * (what is there is the previous datagram's bytes). */
static void test_source_poll_empty_batch(void **state)
{
    fx_t *f = *state;
    fx_open(f);
    const char *const t[] = {"x", "y"};
    ww_request_t a[3] = {req(0, WW_REQ_OK, T0 - 3, 1, 1), req(1, WW_REQ_OK, T0 - 2, 2, 2),
                         req(0, WW_REQ_OK, T0 - 1, 3, 3)};
    ww_request_t b[1] = {req(1, WW_REQ_ERROR, T0, 4, 4)};
    ww_request_t out[3];
    fx_send_requests(f, t, 2, a, 3);
    assert_int_equal(ww_reqlog_source.poll_requests(f->st, out, 3), 3);
    assert_req_equal(&out[2], &a[2]);
    /* empty, then one record */
    fx_send_requests(f, t, 2, NULL, 0);
    fx_send_requests(f, t, 2, b, 1);
    memset(out, 0, sizeof out);
    assert_int_equal(ww_reqlog_source.poll_requests(f->st, out, 3), 1);
    assert_req_equal(&out[0], &b[0]);
    /* empty, last in the queue */
    fx_send_requests(f, t, 2, a, 3);
    assert_int_equal(ww_reqlog_source.poll_requests(f->st, out, 3), 3);
    fx_send_requests(f, t, 2, NULL, 0);
    assert_int_equal(ww_reqlog_source.poll_requests(f->st, out, 3), 0);
    assert_int_equal(ww_reqlog_source.poll_requests(f->st, out, 3), 0);
    /* with a sink, the same: nothing from the empty one */
    ww_reqlog_source.set_sink(f->st, sink, f);
    fx_send_requests(f, t, 2, NULL, 0);
    fx_send_requests(f, t, 2, b, 1);
    assert_int_equal(ww_reqlog_source.ready(f->st), 0);
    assert_int_equal(f->n_got, 1);
    assert_req_equal(&f->got[0], &b[0]);
}

/* Records held by ready() without a sink are handed to a sink set later, first. */
static void test_source_sink_set_later(void **state)
{
    fx_t *f = *state;
    fx_open(f);
    const char *const t[] = {"p"};
    ww_request_t a[3] = {req(0, WW_REQ_OK, T0 - 3, 1, 1), req(0, WW_REQ_OK, T0 - 2, 2, 2),
                         req(0, WW_REQ_OK, T0 - 1, 3, 3)};
    ww_request_t b[1] = {req(0, WW_REQ_ERROR, T0, 4, 4)};
    fx_send_requests(f, t, 1, a, 3);
    fx_send_requests(f, t, 1, b, 1);
    assert_int_equal(ww_reqlog_source.ready(f->st), 0);
    ww_request_t out[1];
    assert_int_equal(ww_reqlog_source.poll_requests(f->st, out, 1), 1);
    assert_req_equal(&out[0], &a[0]);
    ww_reqlog_source.set_sink(f->st, sink, f);
    assert_int_equal(ww_reqlog_source.ready(f->st), 0);
    assert_int_equal(f->n_got, 3);
    assert_req_equal(&f->got[0], &a[1]);
    assert_req_equal(&f->got[1], &a[2]);
    assert_req_equal(&f->got[2], &b[0]);
    /* and back to buffering */
    ww_reqlog_source.set_sink(f->st, NULL, NULL);
    fx_send_requests(f, t, 1, b, 1);
    assert_int_equal(ww_reqlog_source.poll_requests(f->st, out, 1), 1);
    assert_req_equal(&out[0], &b[0]);
    assert_int_equal(f->n_got, 3);
}

/* ww_source.h: with a sink set, poll_requests returns 0 (the records go to the sink). */
static void test_source_poll_with_sink_returns_0(void **state)
{
    fx_t *f = *state;
    fx_open(f);
    ww_reqlog_source.set_sink(f->st, sink, f);
    const char *const t[] = {"p"};
    ww_request_t a[2] = {req(0, WW_REQ_OK, T0 - 2, 1, 1), req(0, WW_REQ_OK, T0 - 1, 2, 2)};
    fx_send_requests(f, t, 1, a, 2);
    ww_request_t out[4];
    int n = ww_reqlog_source.poll_requests(f->st, out, 4);
    assert_int_equal(n, 0);
    /* the records were not lost: the sink has them (now, or at the next ready()) */
    assert_int_equal(ww_reqlog_source.ready(f->st), 0);
    assert_int_equal(f->n_got, 2);
    assert_req_equal(&f->got[0], &a[0]);
    assert_req_equal(&f->got[1], &a[1]);
}

static void test_source_oversize_dropped(void **state)
{
    fx_t *f = *state;
    fx_open(f);
    ww_reqlog_source.set_sink(f->st, sink, f);
    int sz = 1 << 20;
    assert_int_equal(setsockopt(f->tx, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz), 0);

    /* 20000 bytes that start like a valid datagram of 416 records */
    static const char name47[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJK";
    const char *const big[] = {name47};
    raw_t *d = malloc(sizeof *d);
    assert_non_null(d);
    ww_request_t *many = calloc(416, sizeof *many);
    assert_non_null(many);
    for (int i = 0; i < 416; i++) {
        many[i] = req(0, WW_REQ_OK, T0 - 1000 + i, 1, 1);
    }
    raw_requests(d, big, 1, many, 416);
    assert_int_equal(d->len, 64 + 416 * 48);
    fx_send(f, d->b, 20000);
    /* 20000 bytes whose first 16384 are a whole valid datagram (340 records): a receiver
     * that reads only 16384 bytes would take it */
    raw_requests(d, big, 1, many, 340);
    memset(d->b + d->len, 0, 20000 - d->len);
    fx_send(f, d->b, 20000);
    /* a consistent 16432-byte one (341 records), and 16385 bytes */
    raw_requests(d, big, 1, many, 341);
    assert_int_equal(d->len, WW_REQLOG_MAX_DGRAM + 48);
    fx_send(f, d->b, d->len);
    raw_requests(d, big, 1, many, 340);
    assert_int_equal(d->len, WW_REQLOG_MAX_DGRAM);
    fx_send(f, d->b, WW_REQLOG_MAX_DGRAM + 1);
    /* a good small one, then the largest good one */
    const char *const t[] = {"small"};
    ww_request_t g[1] = {req(0, WW_REQ_TIMEOUT, T0, 7, 8)};
    fx_send_requests(f, t, 1, g, 1);
    raw_requests(d, big, 1, many, 340);
    fx_send(f, d->b, d->len);

    assert_int_equal(ww_reqlog_source.ready(f->st), 0);
    assert_int_equal(f->n_got, 1 + 340);
    ww_request_t e = as_model(g[0], 0);
    assert_req_equal(&f->got[0], &e);
    assert_string_equal(ww_reqlog_source.model_name(f->st, 0), "small");
    assert_string_equal(ww_reqlog_source.model_name(f->st, 1), name47);
    for (int i = 0; i < 340; i++) {
        e = as_model(many[i], 1);
        assert_req_equal(&f->got[1 + i], &e);
    }
    free(many);
    free(d);
}

static void test_source_open_mode(void **state)
{
    fx_t *f = *state;
    /* the mode asked for, whatever the process umask */
    mode_t old = umask(077);
    int rc = fx_open_mode(f, 0660);
    umask(old);
    assert_int_equal(rc, 0);
    struct stat st;
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0660);
    /* the umask is restored */
    mode_t now = umask(0);
    umask(now);
    assert_int_equal(now, old);
    int fd = ww_reqlog_source.fd(f->st);
    assert_true(fd >= 0);
    /* close() removes the socket file, NULLs the state, is safe twice and on NULL */
    ww_reqlog_source.close(&f->st);
    assert_null(f->st);
    assert_int_equal(lstat(f->path, &st), -1);
    assert_int_equal(errno, ENOENT);
    ww_reqlog_source.close(&f->st);
    ww_reqlog_source.close(NULL);
}

static void test_source_open_bad_args(void **state)
{
    fx_t *f = *state;
    ww_reqlog_conf_t c = {.path = f->path, .mode = 0600, .max_age_ns = 5 * SEC};
    void *st = (void *)&c;
    assert_int_equal(ww_reqlog_source.open(&c, 1, T0, &st), -EINVAL);
    assert_null(st);
    st = (void *)&c;
    assert_int_equal(ww_reqlog_source.open(NULL, 0, T0, &st), -EINVAL);
    assert_null(st);
    ww_reqlog_conf_t b = c;
    b.max_age_ns = 0;
    assert_int_equal(ww_reqlog_source.open(&b, 0, T0, &st), -EINVAL);
    b = c;
    b.path = NULL;
    assert_int_equal(ww_reqlog_source.open(&b, 0, T0, &st), -EINVAL);
    b.path = "";
    assert_int_equal(ww_reqlog_source.open(&b, 0, T0, &st), -EINVAL);
    char longp[200];
    memset(longp, 'a', sizeof longp);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    b.path = longp;
    assert_int_equal(ww_reqlog_source.open(&b, 0, T0, &st), -ENAMETOOLONG);
    assert_null(st);
    struct stat sb;
    assert_int_equal(lstat(f->path, &sb), -1); /* nothing was bound */
}

static void test_source_open_refuses_regular_file(void **state)
{
    fx_t *f = *state;
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs("keep me\n", fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    f->st = (void *)f;
    assert_int_equal(fx_open_mode(f, 0600), -EEXIST);
    assert_null(f->st);
    /* untouched */
    struct stat st;
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    char buf[32] = {0};
    fp = fopen(f->path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(buf, sizeof buf, fp));
    fclose(fp);
    assert_string_equal(buf, "keep me\n");
}

static void test_source_open_refuses_live_socket(void **state)
{
    fx_t *f = *state;
    int other = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(other >= 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    strcpy(a.sun_path, f->path);
    assert_int_equal(bind(other, (struct sockaddr *)&a, sizeof a), 0);

    f->st = (void *)f;
    assert_int_equal(fx_open_mode(f, 0600), -EADDRINUSE);
    assert_null(f->st);
    /* the other agent's socket is still there and still reached through the path */
    struct stat st;
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    int tx = connect_to(f->path);
    if (tx < 0) {
        fail_msg("the live socket's path no longer reaches it: %s", strerror(-tx));
    }
    assert_int_equal(send(tx, "hi", 2, MSG_DONTWAIT), 2);
    char buf[4];
    assert_int_equal(recv(other, buf, sizeof buf, MSG_DONTWAIT), 2);
    assert_memory_equal(buf, "hi", 2);
    close(tx);
    close(other);
}

static void test_source_open_replaces_stale_socket(void **state)
{
    fx_t *f = *state;
    int dead = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(dead >= 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    strcpy(a.sun_path, f->path);
    assert_int_equal(bind(dead, (struct sockaddr *)&a, sizeof a), 0);
    close(dead); /* the file stays: what an agent that died leaves */
    struct stat st;
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));

    fx_open(f); /* replaces it, and is reached through the path */
    assert_int_equal(lstat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    ww_reading_t rd = reading_of(18000.0f);
    fx_send_reading(f, T0, &rd);
    assert_int_equal(ww_reqlog_source.ready(f->st), 0);
    ww_reading_t out;
    assert_int_equal(ww_reqlog_source.sample(f->st, T0, &out), 0);
    assert_reading_equal(&out, &rd, false);
}

static int group_setup(void **state)
{
    (void)state;
    ww_log_level = WW_LOG_ERROR; /* the dropped datagrams are complained about at WARN */
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_roundtrip_requests),
    cmocka_unit_test(test_roundtrip_reading),
    cmocka_unit_test(test_batch_fills),
    cmocka_unit_test(test_parse_rejects_header),
    cmocka_unit_test(test_parse_rejects_reading),
    cmocka_unit_test(test_parse_rejects_requests),
    cmocka_unit_test(test_record_rejects),
    cmocka_unit_test(test_encoder_rejects),
    cmocka_unit_test_setup_teardown(test_source_end_to_end, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_source_bad_datagrams_dropped, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_source_ninth_model_dropped, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_source_poll_without_sink, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_source_poll_empty_batch, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_source_sink_set_later, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_source_poll_with_sink_returns_0, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_source_oversize_dropped, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_source_open_mode, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_source_open_bad_args, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_source_open_refuses_regular_file, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_source_open_refuses_live_socket, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_source_open_replaces_stale_socket, fx_setup, fx_teardown),
};
WW_TEST_MAIN(tests, group_setup, NULL)
