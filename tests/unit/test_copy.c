/* Unit tests of ww_copy, the binary COPY encoder, without PostgreSQL: a node sample and a
 * latency window are encoded and compared byte for byte with streams written out by hand
 * from the format (PGCOPY header, field counts, lengths, big-endian values, NULL as length
 * -1, ww_hist fields in the packed form of lib/ww_hist_pack.h). */
#include "ww_test.h"

#include "ww_copy.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Big-endian spellings of hand-written values, to keep the tables readable. */
#define BE16(v) (uint8_t)((v) >> 8), (uint8_t)(v)
#define BE32(v)                                                                                    \
    (uint8_t)((uint32_t)(v) >> 24), (uint8_t)((uint32_t)(v) >> 16), (uint8_t)((uint32_t)(v) >> 8), \
        (uint8_t)(uint32_t)(v)
#define BE64(v) BE32((uint64_t)(v) >> 32), BE32((uint64_t)(v))

#define HEADER 'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0, BE32(0), BE32(0)
#define TRAILER 0xff, 0xff
#define NULL_FIELD 0xff, 0xff, 0xff, 0xff

/* 2000-01-01 00:00:00 UTC, PostgreSQL's epoch, in ns since 1970. */
#define PG_EPOCH_NS (INT64_C(946684800) * 1000000000)

static void s_assert_bytes(const ww_copy_t *c, const uint8_t *want, size_t n)
{
    assert_false(c->buf.oom);
    assert_int_equal(c->buf.len, n);
    for (size_t i = 0; i < n; i++) {
        if ((uint8_t)c->buf.p[i] != want[i]) {
            fail_msg("byte %zu: 0x%02x, expected 0x%02x", i, (uint8_t)c->buf.p[i], want[i]);
        }
    }
}

/* Ends the stream of one row and checks it whole: the bytes, and no value out of range. */
static void s_assert_row(ww_copy_t *c, const uint8_t *want, size_t n)
{
    ww_copy_end(c);
    s_assert_bytes(c, want, n);
    assert_false(c->range);
}

static void test_pg_time(void **state)
{
    assert_true(ww_copy_pg_time(PG_EPOCH_NS) == 0);
    assert_true(ww_copy_pg_time(PG_EPOCH_NS + 999) == 0);
    assert_true(ww_copy_pg_time(PG_EPOCH_NS + 1000) == 1);
    assert_true(ww_copy_pg_time(PG_EPOCH_NS - 1) == -1); /* floor, not truncation */
    assert_true(ww_copy_pg_time(0) == -INT64_C(946684800000000));
    assert_true(ww_copy_pg_time(-1) == -INT64_C(946684800000001));
}

static void test_empty_stream(void **state)
{
    static const uint8_t want[] = {HEADER, TRAILER};
    ww_copy_t c = {0};
    ww_copy_begin(&c);
    ww_copy_end(&c);
    s_assert_bytes(&c, want, sizeof want);
    /* begin again: the same stream, the memory reused */
    ww_copy_begin(&c);
    ww_copy_end(&c);
    s_assert_bytes(&c, want, sizeof want);
    ww_copy_fini(&c);
    ww_copy_fini(&c);
}

static void test_node_sample(void **state)
{
    ww_node_sample_t s = WAFERWATCH__V1__NODE_SAMPLE__INIT;
    s.node_id = "n1";
    s.time_ns = PG_EPOCH_NS + 1500000123; /* 1,500,000 us; the 123 ns are dropped */
    s.power_w = 1.0f;
    s.inlet_c = 2.0f;
    s.outlet_c = -2.0f;
    s.flow_lpm = 0.5f;
    s.wafer_hotspot_c = 0.0f;
    s.utilization = 0.25f;
    s.tokens_per_s = 1000.0f;
    s.requests_queued = 1;
    s.requests_in_flight = 0x01020304;
    s.requests_completed = INT32_MAX;
    s.throttled = 1;
    s.throttle_factor = 0.75f;
    static const uint8_t want[] = {
        HEADER,
        BE16(15), /* fields */
        BE32(8),
        BE64(1500000), /* time: timestamptz, us since 2000 */
        BE32(2),
        'n',
        '1', /* node_id */
        BE32(4),
        BE32(0x3f800000), /* power_w 1.0 */
        BE32(4),
        BE32(0x40000000), /* inlet_c 2.0 */
        BE32(4),
        BE32(0xc0000000), /* outlet_c -2.0 */
        BE32(4),
        BE32(0x3f000000), /* flow_lpm 0.5 */
        BE32(4),
        BE32(0x00000000), /* wafer_hotspot_c 0.0 */
        BE32(4),
        BE32(0x3e800000), /* utilization 0.25 */
        BE32(4),
        BE32(0x447a0000), /* tokens_per_s 1000.0 */
        BE32(4),
        BE32(1), /* requests_queued */
        BE32(4),
        0x01,
        0x02,
        0x03,
        0x04, /* requests_in_flight */
        BE32(4),
        0x7f,
        0xff,
        0xff,
        0xff, /* requests_completed INT32_MAX */
        BE32(1),
        1, /* throttled: bool, one byte */
        BE32(4),
        BE32(0x3f400000), /* throttle_factor 0.75 */
        BE32(0xffffffff), /* humidity_pct: not sent, NULL */
        TRAILER,
    };
    ww_copy_t c = {0};
    ww_copy_begin(&c);
    ww_copy_sample(&c, &s);
    s_assert_row(&c, want, sizeof want);

    /* Readings not measured (not_measured: flow_lpm, bit 3; throttled, bit 9) are NULL. */
    s.not_measured = WW_FIELD_BIT(6) | WW_FIELD_BIT(12);
    s.flow_lpm = 0;
    s.throttled = false;
    ww_copy_begin(&c);
    ww_copy_sample(&c, &s);
    uint8_t masked[sizeof want];
    size_t mlen = 0;
    /* want with flow_lpm's 8 bytes (length 4 and value) and throttled's 5 (length 1, value)
     * each replaced by a length of -1. */
    for (size_t i = 0; i < sizeof want;) {
        static const uint8_t flow[] = {0, 0, 0, 4, 0x3f, 0x00, 0x00, 0x00};
        static const uint8_t thr[] = {0, 0, 0, 1, 1, 0, 0, 0, 4, 0x3f, 0x40, 0, 0};
        if (i + sizeof flow <= sizeof want && memcmp(want + i, flow, sizeof flow) == 0) {
            memcpy(masked + mlen, "\xff\xff\xff\xff", 4);
            mlen += 4;
            i += sizeof flow;
        } else if (i + sizeof thr <= sizeof want && memcmp(want + i, thr, sizeof thr) == 0) {
            memcpy(masked + mlen, "\xff\xff\xff\xff", 4);
            memcpy(masked + mlen + 4, thr + 5, sizeof thr - 5); /* throttle_factor stays */
            mlen += 4 + sizeof thr - 5;
            i += sizeof thr;
        } else {
            masked[mlen++] = want[i++];
        }
    }
    assert_int_equal(mlen, sizeof want - 4 - 1);
    s_assert_row(&c, masked, mlen);
    s.not_measured = 0;

    /* A count past INT32_MAX is never clamped: the row is flagged for refusal. */
    s.requests_completed = UINT32_C(0x80000000);
    ww_copy_begin(&c);
    ww_copy_sample(&c, &s);
    assert_true(c.range);
    ww_copy_begin(&c); /* and begin clears the flag */
    assert_false(c.range);
    ww_copy_fini(&c);
}

/* The ww_hist field of an empty histogram of scale `sc`: its packed form (lib/ww_hist_pack.h)
 * is the head byte (version 1 << 4 | scale), no flags, count 0 and no bucket. */
#define EMPTY_HIST(sc) BE32(4), (uint8_t)(0x10 | (sc)), 0x00, 0x00, 0x00

static void test_latency_window(void **state)
{
    /* Three values of 0.96875 (bucket -3 at scale 6: 2^(-3/64) < v <= 2^(-2/64)) and one of
     * 1.0 (bucket -1), all exact in binary so that the sum is too. */
    Waferwatch__V1__Histogram ttft = WAFERWATCH__V1__HISTOGRAM__INIT;
    int32_t deltas[] = {-3, 2}; /* buckets -3 and -1 */
    uint64_t counts[] = {3, 1};
    ttft.scale = 6;
    ttft.count = 4;
    ttft.sum = 3.90625;
    ttft.min = 0.96875;
    ttft.max = 1.0;
    ttft.n_index_delta = 2;
    ttft.index_delta = deltas;
    ttft.n_bucket_count = 2;
    ttft.bucket_count = counts;
    Waferwatch__V1__Histogram e2e = WAFERWATCH__V1__HISTOGRAM__INIT;
    e2e.scale = 2; /* no values */
    Waferwatch__V1__LatencyWindow w = WAFERWATCH__V1__LATENCY_WINDOW__INIT;
    w.node_id = "n";
    w.model = "m";
    w.start_ns = PG_EPOCH_NS + INT64_C(60000000000); /* 60 s */
    w.duration_ns = 1500000000;
    w.requests_ok = 3;
    w.requests_rejected = 1;
    w.prompt_tokens = 100;
    w.output_tokens = UINT64_C(0x0102030405060708);
    w.queue = NULL; /* missing: an empty histogram */
    w.ttft = &ttft;
    w.tpot = NULL;
    w.e2e = &e2e;
    static const uint8_t want[] = {
        HEADER,
        BE16(14), /* fields */
        BE32(8),
        BE64(60000000), /* time */
        BE32(1),
        'n', /* node_id */
        BE32(1),
        'm', /* model */
        BE32(8),
        BE64(0x3ff8000000000000), /* duration_s 1.5 */
        BE32(8),
        BE64(3), /* requests_ok */
        BE32(8),
        BE64(0), /* requests_error */
        BE32(8),
        BE64(0), /* requests_timeout */
        BE32(8),
        BE64(1), /* requests_rejected */
        BE32(8),
        BE64(100), /* prompt_tokens */
        BE32(8),
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,             /* output_tokens */
        EMPTY_HIST(0), /* queue */
        /* ttft, packed by hand from lib/ww_hist_pack.h: */
        BE32(31),
        0x16, /* version 1, scale 6 */
        0x71, /* flags: FINITE | SUM | MIN | MAX */
        0x04, /* count 4 */
        0x00,
        0x00,
        0x00,
        0x00,
        0x00,
        0x40,
        0x0f,
        0x40, /* sum 3.90625, little-endian */
        0x00,
        0x00,
        0x00,
        0x00,
        0x00,
        0x00,
        0xef,
        0x3f, /* min 0.96875 */
        0x00,
        0x00,
        0x00,
        0x00,
        0x00,
        0x00,
        0xf0,
        0x3f,          /* max 1.0 */
        0x02,          /* 2 non-empty buckets */
        0x05,          /* the first, -3, zigzag */
        0x10,          /* orders: gaps Exp-Golomb k = 1 (a gap of 1: 2 bits), counts k = 0 */
        0x7c,          /* 011 (count 3 - 1 = 2), 11 (gap 1), 1 (count 1 - 1 = 0), 00 padding */
        EMPTY_HIST(0), /* tpot */
        EMPTY_HIST(2), /* e2e */
        TRAILER,
    };
    ww_copy_t c = {0};
    ww_copy_begin(&c);
    ww_copy_window(&c, &w);
    s_assert_row(&c, want, sizeof want);

    /* A count bigint cannot hold is flagged, never clamped. */
    w.requests_error = (uint64_t)INT64_MAX + 1;
    ww_copy_begin(&c);
    ww_copy_window(&c, &w);
    assert_true(c.range);
    ww_copy_fini(&c);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_pg_time),
    cmocka_unit_test(test_empty_stream),
    cmocka_unit_test(test_node_sample),
    cmocka_unit_test(test_latency_window),
};
WW_TEST_MAIN(tests, NULL, NULL)
