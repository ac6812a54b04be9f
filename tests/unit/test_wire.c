/* Unit tests of the wire codec: round trips and refusal of bad input with a reason. */
#include "ww_hist.h"
#include "ww_test.h"
#include "ww_time.h"
#include "ww_wire.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW (INT64_C(1795000000) * WW_NS_PER_S)

typedef struct {
    ww_node_sample_t s[3];
    ww_node_sample_t *p[3];
    ww_batch_t batch;
    ww_envelope_t env;
    uint8_t *buf;
    size_t cap;
} fx_t;

/* Resets the fixture's messages; the encode buffer is kept (and freed by the test). */
static void fx_init(fx_t *fx)
{
    uint8_t *buf = fx->buf;
    size_t cap = fx->cap;
    memset(fx, 0, sizeof *fx);
    fx->buf = buf;
    fx->cap = cap;
    static const char *ids[] = {"node-0", "node-1", "node-2"};
    for (int i = 0; i < 3; i++) {
        waferwatch__v1__node_sample__init(&fx->s[i]);
        fx->s[i].node_id = (char *)ids[i];
        fx->s[i].time_ns = NOW - WW_NS_PER_S;
        fx->s[i].power_w = 21000.5f + (float)i;
        fx->s[i].inlet_c = 25.0f;
        fx->s[i].outlet_c = 32.5f;
        fx->s[i].flow_lpm = 40.0f;
        fx->s[i].wafer_hotspot_c = 70.25f;
        fx->s[i].utilization = 0.75f;
        fx->s[i].tokens_per_s = 9000.0f;
        fx->s[i].requests_queued = 3;
        fx->s[i].requests_in_flight = 40;
        fx->s[i].requests_completed = 12;
        fx->s[i].throttle_factor = 1.0f;
        fx->p[i] = &fx->s[i];
    }
    waferwatch__v1__batch__init(&fx->batch);
    fx->batch.samples = fx->p;
    fx->batch.n_samples = 3;
    waferwatch__v1__envelope__init(&fx->env);
    fx->env.wire_version = WW_WIRE_VERSION;
    fx->env.agent_id = (char *)"agent-a";
    fx->env.epoch = 0x1234567890abcdefULL;
    fx->env.seq = 7;
    fx->env.sent_ns = NOW;
    fx->env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_BATCH;
    fx->env.batch = &fx->batch;
}

/* Encodes the fixture and decodes it again; returns the decode result. */
static int fx_roundtrip(fx_t *fx, ww_envelope_t **out, ww_wire_why_t *why)
{
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    long n = ww_wire_encode(&fx->env, &fx->buf, &fx->cap);
    assert_true(n > 0);
    return ww_wire_decode(fx->buf, (size_t)n, &lim, NOW, out, why);
}

static void test_batch_roundtrip(void **state)
{
    fx_t fx = {0};
    fx_init(&fx);
    ww_envelope_t *env = NULL;
    ww_wire_why_t why;
    assert_int_equal(fx_roundtrip(&fx, &env, &why), 0);
    assert_non_null(env);
    assert_int_equal(env->body_case, WAFERWATCH__V1__ENVELOPE__BODY_BATCH);
    assert_int_equal(env->seq, 7);
    assert_true(env->epoch == 0x1234567890abcdefULL);
    assert_string_equal(env->agent_id, "agent-a");
    assert_int_equal(env->batch->n_samples, 3);
    for (int i = 0; i < 3; i++) {
        const ww_node_sample_t *s = env->batch->samples[i];
        assert_string_equal(s->node_id, fx.s[i].node_id);
        assert_true(s->time_ns == fx.s[i].time_ns);
        assert_true(s->power_w == fx.s[i].power_w);
        assert_true(s->wafer_hotspot_c == fx.s[i].wafer_hotspot_c);
        assert_int_equal(s->requests_in_flight, 40);
    }
    ww_wire_free(&env);
    assert_null(env);
    ww_wire_free(&env); /* twice is safe */
    free(fx.buf);
}

static void test_hello_roundtrip(void **state)
{
    ww_node_info_t ni = WAFERWATCH__V1__NODE_INFO__INIT;
    ww_node_info_t *nip = &ni;
    ni.node_id = (char *)"wse-17";
    ni.site = (char *)"oklahoma-city";
    ni.phase = (char *)"phase-2026a";
    ni.rated_kw = 23.0;
    ww_hello_t h = WAFERWATCH__V1__HELLO__INIT;
    h.nodes = &nip;
    h.n_nodes = 1;
    h.agent_version = (char *)"0.1.0";
    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    env.wire_version = WW_WIRE_VERSION;
    env.agent_id = (char *)"a";
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    uint8_t *buf = NULL;
    size_t cap = 0;
    long n = ww_wire_encode(&env, &buf, &cap);
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    ww_envelope_t *out = NULL;
    ww_wire_why_t why;
    assert_int_equal(ww_wire_decode(buf, (size_t)n, &lim, NOW, &out, &why), 0);
    assert_string_equal(out->hello->nodes[0]->phase, "phase-2026a");
    assert_true(out->hello->nodes[0]->rated_kw == 23.0);
    ww_wire_free(&out);
    free(buf);
}

static void test_garbage_is_malformed(void **state)
{
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02};
    ww_envelope_t *out = (ww_envelope_t *)1;
    ww_wire_why_t why;
    assert_int_equal(ww_wire_decode(junk, sizeof junk, &lim, NOW, &out, &why), -EBADMSG);
    assert_null(out);
    assert_non_null(strstr(why.msg, "do not decode"));
    assert_int_equal(ww_wire_nack_code(-EBADMSG), WAFERWATCH__V1__NACK_CODE__NACK_MALFORMED);
}

/* A batch's readings are not the envelope's validity: the batch decodes, and
 * ww_wire_check_sample refuses the implausible sample alone, naming it. */
static void test_nan_rejected_with_field(void **state)
{
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    fx_t fx = {0};
    fx_init(&fx);
    fx.s[1].power_w = NAN;
    ww_envelope_t *env = NULL;
    ww_wire_why_t why;
    assert_int_equal(fx_roundtrip(&fx, &env, &why), 0);
    assert_int_equal(ww_wire_check_sample(env->batch->samples[0], 0, &lim, NOW, &why), 0);
    assert_int_equal(ww_wire_check_sample(env->batch->samples[1], 1, &lim, NOW, &why), -EINVAL);
    assert_non_null(strstr(why.msg, "batch.samples[1].power_w"));
    assert_non_null(strstr(why.msg, "finite"));
    ww_wire_free(&env);
    free(fx.buf);
}

static void test_out_of_range_rejected(void **state)
{
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    fx_t fx = {0};
    fx_init(&fx);
    fx.s[2].utilization = 1.5f;
    ww_envelope_t *env = NULL;
    ww_wire_why_t why;
    assert_int_equal(fx_roundtrip(&fx, &env, &why), 0);
    assert_int_equal(ww_wire_check_sample(env->batch->samples[2], 2, &lim, NOW, &why), -EINVAL);
    assert_non_null(strstr(why.msg, "batch.samples[2].utilization"));
    ww_wire_free(&env);
    fx_init(&fx);
    fx.s[0].power_w = -1.0f;
    assert_int_equal(fx_roundtrip(&fx, &env, &why), 0);
    assert_int_equal(ww_wire_check_sample(env->batch->samples[0], 0, &lim, NOW, &why), -EINVAL);
    assert_non_null(strstr(why.msg, "power_w"));
    ww_wire_free(&env);
    free(fx.buf);
}

/* A sample's time is checked alone, like its readings: the batch decodes and the sample
 * is refused, naming its field, so one node's clock does not cost the others their tick. */
static void test_time_window(void **state)
{
    fx_t fx = {0};
    fx_init(&fx);
    ww_envelope_t *env = NULL;
    ww_wire_why_t why;
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    static const int64_t bad[] = {
        NOW + 3600 * WW_NS_PER_S,          /* an hour in the future */
        NOW - 8 * 24 * 3600 * WW_NS_PER_S, /* 8 days old */
        0,
        -WW_NS_PER_S,
        NOW - WW_NS_PER_S + 1, /* not a whole microsecond: timestamptz would cut it */
        NOW - 999,
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        fx_init(&fx);
        fx.s[0].time_ns = bad[k];
        assert_int_equal(fx_roundtrip(&fx, &env, &why), 0);
        assert_int_equal(ww_wire_check_sample(env->batch->samples[0], 0, &lim, NOW, &why), -EINVAL);
        assert_non_null(strstr(why.msg, "batch.samples[0].time_ns"));
        assert_int_equal(ww_wire_check_sample(env->batch->samples[1], 1, &lim, NOW, &why), 0);
        ww_wire_free(&env);
    }
    fx_init(&fx);
    fx.s[0].time_ns = NOW - 6 * 24 * 3600 * WW_NS_PER_S + 1000; /* 6 days old: accepted */
    assert_int_equal(fx_roundtrip(&fx, &env, &why), 0);
    assert_int_equal(ww_wire_check_sample(env->batch->samples[0], 0, &lim, NOW, &why), 0);
    ww_wire_free(&env);
    free(fx.buf);
}

static void test_required_fields(void **state)
{
    fx_t fx = {0};
    fx_init(&fx);
    ww_envelope_t *env = NULL;
    ww_wire_why_t why;
    fx.env.agent_id = (char *)"";
    assert_int_equal(fx_roundtrip(&fx, &env, &why), -EINVAL);
    assert_non_null(strstr(why.msg, "envelope.agent_id"));
    fx_init(&fx);
    fx.env.seq = 0;
    assert_int_equal(fx_roundtrip(&fx, &env, &why), -EINVAL);
    assert_non_null(strstr(why.msg, "seq"));
    fx_init(&fx);
    fx.s[0].node_id = (char *)"";
    assert_int_equal(fx_roundtrip(&fx, &env, &why), -EINVAL);
    assert_non_null(strstr(why.msg, "batch.samples[0].node_id"));
    fx_init(&fx);
    fx.env.body_case = WAFERWATCH__V1__ENVELOPE__BODY__NOT_SET;
    assert_int_equal(fx_roundtrip(&fx, &env, &why), -EINVAL);
    assert_non_null(strstr(why.msg, "envelope.body"));
    free(fx.buf);
}

static void test_version_and_size(void **state)
{
    fx_t fx = {0};
    fx_init(&fx);
    ww_envelope_t *env = NULL;
    ww_wire_why_t why;
    fx.env.wire_version = 2;
    assert_int_equal(fx_roundtrip(&fx, &env, &why), -EPROTONOSUPPORT);
    assert_int_equal(ww_wire_nack_code(-EPROTONOSUPPORT),
                     WAFERWATCH__V1__NACK_CODE__NACK_UNSUPPORTED_VERSION);
    fx_init(&fx);
    long n = ww_wire_encode(&fx.env, &fx.buf, &fx.cap);
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    lim.max_message_bytes = (size_t)n - 1;
    assert_int_equal(ww_wire_decode(fx.buf, (size_t)n, &lim, NOW, &env, &why), -EMSGSIZE);
    ww_wire_limits_default(&lim);
    lim.max_samples = 2;
    assert_int_equal(ww_wire_decode(fx.buf, (size_t)n, &lim, NOW, &env, &why), -EINVAL);
    assert_non_null(strstr(why.msg, "more than the limit 2"));
    free(fx.buf);
}

static void test_strings_checked(void **state)
{
    fx_t fx = {0};
    fx_init(&fx);
    ww_envelope_t *env = NULL;
    ww_wire_why_t why;
    fx.s[0].node_id = (char *)"node 0"; /* a space: outside the node id alphabet */
    assert_int_equal(fx_roundtrip(&fx, &env, &why), -EINVAL);
    fx_init(&fx);
    char longid[200];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    fx.s[0].node_id = longid;
    assert_int_equal(fx_roundtrip(&fx, &env, &why), -EINVAL);
    assert_non_null(strstr(why.msg, "longer than the limit"));
    /* UTF-8 checks */
    assert_true(ww_wire_text_ok("h\xc3\xa9llo", 6));
    assert_false(ww_wire_text_ok("\xc3", 1));            /* truncated */
    assert_false(ww_wire_text_ok("\xc0\xaf", 2));        /* overlong '/' */
    assert_false(ww_wire_text_ok("\xed\xa0\x80", 3));    /* surrogate */
    assert_false(ww_wire_text_ok("a\x01", 2));           /* control */
    assert_true(ww_wire_text_ok("\xf0\x9f\x94\xa5", 4)); /* U+1F525 */
    free(fx.buf);
}

static void test_truncated_messages_never_crash(void **state)
{
    fx_t fx = {0};
    fx_init(&fx);
    long n = ww_wire_encode(&fx.env, &fx.buf, &fx.cap);
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    int ok = 0;
    /* Every prefix and every single-byte corruption either decodes valid or is refused. */
    for (long len = 0; len < n; len++) {
        ww_envelope_t *env = NULL;
        ww_wire_why_t why;
        int rc = ww_wire_decode(fx.buf, (size_t)len, &lim, NOW, &env, &why);
        assert_true(rc == 0 || rc == -EBADMSG || rc == -EINVAL || rc == -EMSGSIZE ||
                    rc == -EPROTONOSUPPORT);
        assert_true((rc == 0) == (env != NULL));
        ok += rc == 0;
        ww_wire_free(&env);
    }
    for (long i = 0; i < n; i++) {
        uint8_t saved = fx.buf[i];
        fx.buf[i] ^= 0x5a;
        ww_envelope_t *env = NULL;
        ww_wire_why_t why;
        int rc = ww_wire_decode(fx.buf, (size_t)n, &lim, NOW, &env, &why);
        assert_true(rc == 0 || rc == -EBADMSG || rc == -EINVAL || rc == -EMSGSIZE ||
                    rc == -EPROTONOSUPPORT);
        assert_true((rc == 0) == (env != NULL));
        ww_wire_free(&env);
        fx.buf[i] = saved;
    }
    assert_true(ok < n); /* most prefixes lack required fields */
    free(fx.buf);
}

/* Found by fuzz_wire: protobuf-c accepts a field numbered 0 (padded tag 80 00), which
 * protobuf forbids and which re-encodes into bytes it refuses. Refused on arrival. */
static void test_field_number_zero_refused(void **state)
{
    static const uint8_t msg[] = {0x08, 0x01, 0x12, 0x0a, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x61,
                                  0x67, 0x65, 0x6e, 0x74, 0x19, 0xef, 0xcd, 0xab, 0x90, 0x78,
                                  0x56, 0x34, 0x12, 0x28, 0x80, 0x80, 0xce, 0xde, 0xd5, 0xdf,
                                  0xc7, 0xf4, 0x18, 0x62, 0x00, 0x80, 0x00, 0x00};
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    ww_envelope_t *env = NULL;
    ww_wire_why_t why;
    assert_int_equal(ww_wire_decode(msg, sizeof msg, &lim, NOW, &env, &why), -EBADMSG);
    assert_null(env);
    assert_non_null(strstr(why.msg, "numbered 0"));
    /* The same heartbeat without the bad field decodes. */
    assert_int_equal(ww_wire_decode(msg, sizeof msg - 3, &lim, NOW, &env, &why), 0);
    ww_wire_free(&env);
}

/* ---- issue 14: extreme and hostile input ---- */

/* One latency window of 10 s, all `n` requests ok at 0.1 s (tpot empty), in the batch. */
typedef struct {
    Waferwatch__V1__Histogram h[4];
    int32_t idx[4];
    uint64_t cnt[4];
    Waferwatch__V1__LatencyWindow w;
    Waferwatch__V1__LatencyWindow *wp;
} win_t;

static void win_hist(win_t *x, int k, uint64_t n)
{
    Waferwatch__V1__Histogram *h = &x->h[k];
    waferwatch__v1__histogram__init(h);
    h->scale = 6;
    h->count = n;
    if (n > 0) {
        x->idx[k] = ww_hist_index(0.1, 6);
        x->cnt[k] = n;
        h->n_index_delta = h->n_bucket_count = 1;
        h->index_delta = &x->idx[k];
        h->bucket_count = &x->cnt[k];
        h->sum = 0.1 * (double)n;
        h->min = h->max = 0.1;
    } else {
        h->min = h->max = NAN;
    }
}

static void win_init(win_t *x, fx_t *fx, uint64_t n)
{
    for (int k = 0; k < 4; k++) {
        win_hist(x, k, k == 2 ? 0 : n);
    }
    waferwatch__v1__latency_window__init(&x->w);
    x->w.node_id = (char *)"node-0";
    x->w.model = (char *)"llama3.1-8b";
    x->w.start_ns = NOW - 20 * WW_NS_PER_S;
    x->w.duration_ns = 10 * WW_NS_PER_S;
    x->w.requests_ok = n;
    x->w.queue = &x->h[0];
    x->w.ttft = &x->h[1];
    x->w.tpot = &x->h[2];
    x->w.e2e = &x->h[3];
    x->wp = &x->w;
    fx->batch.latency_windows = &x->wp;
    fx->batch.n_latency_windows = 1;
}

static void expect_refused(fx_t *fx, int want_rc, const char *text)
{
    ww_envelope_t *env = NULL;
    ww_wire_why_t why;
    int rc = fx_roundtrip(fx, &env, &why);
    if (rc != want_rc || !strstr(why.msg, text)) {
        fail_msg("got %d \"%s\", want %d with \"%s\"", rc, rc ? why.msg : "", want_rc, text);
    }
    assert_null(env);
}

static void expect_accepted(fx_t *fx)
{
    ww_envelope_t *env = NULL;
    ww_wire_why_t why;
    int rc = fx_roundtrip(fx, &env, &why);
    if (rc != 0) {
        fail_msg("refused (%d): %s", rc, why.msg);
    }
    ww_wire_free(&env);
}

/* A window's histogram counts agree with its requests (ttft and e2e: ok; queue: ok + error;
 * tpot at most ok), unless it is `aggregated` (issue 19: taken from an inference server's
 * OTLP metrics, each histogram counted on its own): then each histogram stands alone, and
 * is still checked whole. */
static void test_window_counts_agree_unless_aggregated(void **state)
{
    (void)state;
    fx_t fx = {0};
    win_t x;
    fx_init(&fx);
    win_init(&x, &fx, 7);
    expect_accepted(&fx);
    /* TTFT counted apart (7 values), 5 requests done, no queue time: refused as it was ... */
    fx_init(&fx);
    win_init(&x, &fx, 7);
    x.w.requests_ok = 5;
    win_hist(&x, 0, 0);
    x.w.e2e->count = 5;
    x.cnt[3] = 5;
    x.w.e2e->sum = 0.5;
    expect_refused(&fx, -EINVAL, "histogram counts (queue 0, ttft 7, tpot 0, e2e 5) disagree");
    /* ... accepted when the agent says it is aggregated. */
    x.w.aggregated = true;
    expect_accepted(&fx);
    /* An aggregated window's histograms are still each checked. */
    x.w.ttft->sum = NAN;
    expect_refused(&fx, -EINVAL, "batch.latency_windows[0].ttft");
    free(fx.buf);
}

/* Item 1: a window's counts are bounded by what an hour can hold (10^6 requests and 10^7
 * tokens per second), whatever its duration (a part of a window covers less time than its
 * requests span), so that they are stored unaltered and rollups of them never overflow. */
static void test_window_counts_bounded(void **state)
{
    fx_t fx = {0};
    win_t x;
    fx_init(&fx);
    win_init(&x, &fx, 3600000000u); /* an hour at 10^6/s: the most, even in a 10 s window */
    x.w.prompt_tokens = x.w.output_tokens = 36000000000u;
    expect_accepted(&fx);
    /* A part of a window: the agent started 1 ms before its end, and requests recorded
     * before its first tick belong to it (test_reqlog_pipeline met 101 of them). */
    fx_init(&fx);
    win_init(&x, &fx, 101);
    x.w.duration_ns = WW_NS_PER_MS;
    x.w.prompt_tokens = 10100;
    expect_accepted(&fx);

    fx_init(&fx);
    win_init(&x, &fx, UINT64_MAX);
    expect_refused(&fx, -EINVAL,
                   "batch.latency_windows[0].requests_ok: 18446744073709551615 is more than a "
                   "window may hold (10^6 per second for an hour: 3600000000)");
    fx_init(&fx);
    win_init(&x, &fx, 3600000001u);
    expect_refused(&fx, -EINVAL, "batch.latency_windows[0].requests_ok: 3600000001 is more than");
    static const char *const fields[] = {"requests_error", "requests_timeout", "requests_rejected"};
    for (int k = 0; k < 3; k++) {
        fx_init(&fx);
        win_init(&x, &fx, 5);
        uint64_t *f[] = {&x.w.requests_error, &x.w.requests_timeout, &x.w.requests_rejected};
        *f[k] = 3600000001u;
        expect_refused(&fx, -EINVAL, fields[k]);
    }
    fx_init(&fx);
    win_init(&x, &fx, 5);
    x.w.prompt_tokens = 36000000001u;
    expect_refused(&fx, -EINVAL,
                   "batch.latency_windows[0].prompt_tokens: 36000000001 is more than a window "
                   "may hold (10^7 per second for an hour: 36000000000)");
    fx_init(&fx);
    win_init(&x, &fx, 5);
    x.w.output_tokens = UINT64_MAX;
    expect_refused(&fx, -EINVAL, "batch.latency_windows[0].output_tokens");
    /* A histogram's own count, before the counts are compared. */
    fx_init(&fx);
    win_init(&x, &fx, 5);
    win_hist(&x, 0, 3600000001u);
    expect_refused(&fx, -EINVAL, "batch.latency_windows[0].queue.count: 3600000001 is more than");
    /* Parts that do not sum exactly to count. */
    fx_init(&fx);
    win_init(&x, &fx, 5);
    x.h[1].count = 6;
    expect_refused(&fx, -EINVAL, "batch.latency_windows[0].ttft.count");
    free(fx.buf);
}

/* Item 2: seq is stored as bigint: above 2^63 - 1 it is refused, naming it, and the Nack
 * still gets the stream position. Any epoch is fine. */
static void test_seq_range(void **state)
{
    fx_t fx = {0};
    static const uint64_t bad[] = {UINT64_C(1) << 63, (UINT64_C(1) << 63) + 1, UINT64_MAX};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        fx_init(&fx);
        fx.env.seq = bad[k];
        ww_envelope_t *env = NULL;
        ww_wire_why_t why;
        assert_int_equal(fx_roundtrip(&fx, &env, &why), -EINVAL);
        assert_non_null(strstr(why.msg, "envelope.seq"));
        assert_true(why.have_seq);
        assert_true(why.seq == bad[k]);
        assert_true(why.epoch == 0x1234567890abcdefULL);
        assert_string_equal(why.agent_id, "agent-a");
    }
    fx_init(&fx);
    fx.env.seq = INT64_MAX;
    expect_accepted(&fx);
    fx_init(&fx);
    fx.env.epoch = UINT64_MAX;
    expect_accepted(&fx);
    fx_init(&fx);
    ww_heartbeat_t hb = WAFERWATCH__V1__HEARTBEAT__INIT;
    fx.env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_HEARTBEAT;
    fx.env.heartbeat = &hb;
    fx.env.seq = UINT64_MAX;
    expect_refused(&fx, -EINVAL, "envelope.seq");
    free(fx.buf);
}

/* Item 3: a sample's counters are PostgreSQL integers: above 2^31 - 1 the sample is
 * refused alone, naming the field, instead of being stored as 2147483647. */
static void test_counters_fit_integer(void **state)
{
    fx_t fx = {0};
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    static const char *const names[] = {"requests_queued", "requests_in_flight",
                                        "requests_completed"};
    for (int k = 0; k < 3; k++) {
        fx_init(&fx);
        uint32_t *f[] = {&fx.s[1].requests_queued, &fx.s[1].requests_in_flight,
                         &fx.s[1].requests_completed};
        *f[k] = INT32_MAX;
        *f[(k + 1) % 3] = UINT32_C(1) << 31;
        ww_envelope_t *env = NULL;
        ww_wire_why_t why;
        assert_int_equal(fx_roundtrip(&fx, &env, &why), 0);
        assert_int_equal(ww_wire_check_sample(env->batch->samples[1], 1, &lim, NOW, &why), -EINVAL);
        char want[64];
        snprintf(want, sizeof want, "batch.samples[1].%s: 2147483648", names[(k + 1) % 3]);
        assert_non_null(strstr(why.msg, want));
        ww_wire_free(&env);
    }
    free(fx.buf);
}

/* Item 3's audit: the other values a column could not hold. */
static void test_unstorable_values_refused(void **state)
{
    fx_t fx = {0};
    fx_init(&fx);
    Waferwatch__V1__SpoolLoss loss = WAFERWATCH__V1__SPOOL_LOSS__INIT;
    fx.batch.loss = &loss;
    loss.dropped_batches = loss.corrupt_records = loss.skipped_ticks = INT64_MAX;
    expect_accepted(&fx);
    loss.corrupt_records = (uint64_t)INT64_MAX + 1;
    expect_refused(&fx, -EINVAL, "batch.loss.corrupt_records");

    ww_node_info_t ni = WAFERWATCH__V1__NODE_INFO__INIT;
    ww_node_info_t *nip = &ni;
    ni.node_id = (char *)"wse-17";
    ww_hello_t h = WAFERWATCH__V1__HELLO__INIT;
    h.nodes = &nip;
    h.n_nodes = 1;
    h.interval_ms = INT32_MAX;
    fx_init(&fx);
    fx.env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_HELLO;
    fx.env.hello = &h;
    expect_accepted(&fx);
    h.interval_ms = UINT32_C(1) << 31;
    expect_refused(&fx, -EINVAL, "hello.interval_ms");
    free(fx.buf);
}

/* Item 7: outages are checked as stream_outages stores them; a Pending body validates. */
static void test_outages_and_pending(void **state)
{
    fx_t fx = {0};
    ww_outage_t o[2];
    ww_outage_t *op[2] = {&o[0], &o[1]};
    for (int k = 0; k < 2; k++) {
        waferwatch__v1__outage__init(&o[k]);
        o[k].from_ns = NOW - (100 + 200 * k) * WW_NS_PER_S;
        o[k].to_ns = NOW - (10 + 200 * k) * WW_NS_PER_S;
        o[k].lost_ticks = 90;
        o[k].lost_requests = 3;
        o[k].cause = (char *)(k ? "stop" : "crash");
    }
#define OUTAGE_CASE(stmt, text)                                                                    \
    do {                                                                                           \
        fx_init(&fx);                                                                              \
        fx.batch.outages = op;                                                                     \
        fx.batch.n_outages = 2;                                                                    \
        ww_outage_t saved = o[1];                                                                  \
        stmt;                                                                                      \
        expect_refused(&fx, -EINVAL, text);                                                        \
        o[1] = saved;                                                                              \
    } while (0)
    fx_init(&fx);
    fx.batch.outages = op;
    fx.batch.n_outages = 2;
    expect_accepted(&fx);
    o[1].from_ns = 0; /* not known */
    expect_accepted(&fx);
    o[1].from_ns = o[1].to_ns; /* empty */
    expect_accepted(&fx);
    OUTAGE_CASE(o[1].to_ns = 0, "batch.outages[1].to_ns");
    OUTAGE_CASE(o[1].to_ns += 1, "batch.outages[1].to_ns");
    OUTAGE_CASE(o[1].to_ns = NOW + 3600 * WW_NS_PER_S, "batch.outages[1].to_ns");
    OUTAGE_CASE(o[1].from_ns = o[1].to_ns + 1000, "batch.outages[1].from_ns");
    OUTAGE_CASE(o[1].from_ns = -1000, "batch.outages[1].from_ns");
    OUTAGE_CASE(o[1].from_ns += 1, "batch.outages[1].from_ns");
    OUTAGE_CASE(o[1].from_ns = o[1].to_ns - 400 * 24 * 3600 * WW_NS_PER_S,
                "batch.outages[1].from_ns");
    OUTAGE_CASE(o[1].lost_ticks = (uint64_t)INT64_MAX + 1, "batch.outages[1].lost_ticks");
    OUTAGE_CASE(o[1].lost_requests = UINT64_MAX, "batch.outages[1].lost_requests");
    OUTAGE_CASE(o[1].cause = (char *)"boom", "batch.outages[1].cause");
    OUTAGE_CASE(o[1].cause = (char *)"", "batch.outages[1].cause");
    OUTAGE_CASE(o[1].to_ns = o[0].to_ns; o[1].from_ns = 0, "batch.outages[1].to_ns");
#undef OUTAGE_CASE
    fx_init(&fx);
    fx.batch.outages = op;
    fx.batch.n_outages = 2;
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    assert_int_equal(lim.max_outages, 1024);
    long n = ww_wire_encode(&fx.env, &fx.buf, &fx.cap);
    lim.max_outages = 1;
    ww_envelope_t *env = NULL;
    ww_wire_why_t why;
    assert_int_equal(ww_wire_decode(fx.buf, (size_t)n, &lim, NOW, &env, &why), -EINVAL);
    assert_non_null(strstr(why.msg, "batch.outages: more than the limit 1"));

    ww_pending_t pd = WAFERWATCH__V1__PENDING__INIT;
    fx_init(&fx);
    fx.env.agent_id = (char *)"collector";
    fx.env.seq = 0;
    fx.env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_PENDING;
    fx.env.pending = &pd;
    pd.epoch = UINT64_MAX;
    pd.seq = 12;
    pd.retry_after_ms = 1000;
    expect_accepted(&fx);
    pd.seq = (uint64_t)INT64_MAX + 1;
    expect_refused(&fx, -EINVAL, "pending.seq");
    pd.seq = 12;
    pd.retry_after_ms = 3600000;
    expect_refused(&fx, -EINVAL, "pending.retry_after_ms");
    free(fx.buf);
}

/* Replaces the '#' of the first "ab#cd" in buf by a NUL: protobuf-c cannot encode one. */
static void put_nul(uint8_t *buf, size_t n)
{
    for (size_t i = 0; i + 5 <= n; i++) {
        if (memcmp(buf + i, "ab#cd", 5) == 0) {
            buf[i + 2] = 0;
            return;
        }
    }
    fail_msg("marker not found");
}

/* Item 5: a NUL inside any string is refused with the field named (protobuf-c would cut
 * the string at it: "site\0EVIL" was stored as "site"). */
static void test_nul_refused_in_every_string(void **state)
{
    static const char *const paths[] = {
        "envelope.agent_id",
        "hello.agent_version",
        "hello.source",
        "hello.nodes[0].node_id",
        "hello.nodes[0].site",
        "hello.nodes[0].hall",
        "hello.nodes[0].rack",
        "hello.nodes[0].phase",
        "hello.nodes[0].system_model",
        "batch.samples[1].node_id",
        "batch.latency_windows[0].node_id",
        "batch.latency_windows[0].model",
        "batch.outages[0].cause",
        "nack.reason",
    };
    char mark[] = "ab#cd";
    for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
        fx_t fx = {0};
        win_t x;
        fx_init(&fx);
        win_init(&x, &fx, 3);
        ww_outage_t o = WAFERWATCH__V1__OUTAGE__INIT;
        ww_outage_t *op = &o;
        o.to_ns = NOW - WW_NS_PER_S;
        o.cause = (char *)"stop";
        fx.batch.outages = &op;
        fx.batch.n_outages = 1;
        ww_node_info_t ni = WAFERWATCH__V1__NODE_INFO__INIT;
        ww_node_info_t *nip = &ni;
        ni.node_id = (char *)"wse-17";
        ww_hello_t h = WAFERWATCH__V1__HELLO__INIT;
        h.nodes = &nip;
        h.n_nodes = 1;
        ww_nack_t nack = WAFERWATCH__V1__NACK__INIT;
        char **field[] = {&fx.env.agent_id, &h.agent_version, &h.source,    &ni.node_id,
                          &ni.site,         &ni.hall,         &ni.rack,     &ni.phase,
                          &ni.system_model, &fx.s[1].node_id, &x.w.node_id, &x.w.model,
                          &o.cause,         &nack.reason};
        *field[p] = mark;
        if (strncmp(paths[p], "hello", 5) == 0) {
            fx.env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_HELLO;
            fx.env.hello = &h;
        } else if (strncmp(paths[p], "nack", 4) == 0) {
            fx.env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_NACK;
            fx.env.nack = &nack;
        }
        long n = ww_wire_encode(&fx.env, &fx.buf, &fx.cap);
        put_nul(fx.buf, (size_t)n);
        ww_wire_limits_t lim;
        ww_wire_limits_default(&lim);
        ww_envelope_t *env = NULL;
        ww_wire_why_t why;
        int rc = ww_wire_decode(fx.buf, (size_t)n, &lim, NOW, &env, &why);
        char want[96];
        snprintf(want, sizeof want, "%s: a NUL byte at offset 2", paths[p]);
        if (rc != -EINVAL || !strstr(why.msg, want)) {
            fail_msg("%s: got %d \"%s\"", paths[p], rc, rc ? why.msg : "");
        }
        /* The stream position is reported unless the agent_id itself is the bad one. */
        assert_int_equal(why.have_seq, p != 0);
        free(fx.buf);
    }
    /* The report's example: a Hello with site = "site\0\x1b[31mEVIL". */
    fx_t fx = {0};
    fx_init(&fx);
    ww_node_info_t ni = WAFERWATCH__V1__NODE_INFO__INIT;
    ww_node_info_t *nip = &ni;
    ni.node_id = (char *)"wse-17";
    ni.site = (char *)"siteab#cd\x1b[31mEVIL";
    ww_hello_t h = WAFERWATCH__V1__HELLO__INIT;
    h.nodes = &nip;
    h.n_nodes = 1;
    fx.env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_HELLO;
    fx.env.hello = &h;
    long n = ww_wire_encode(&fx.env, &fx.buf, &fx.cap);
    put_nul(fx.buf, (size_t)n);
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    ww_envelope_t *env = NULL;
    ww_wire_why_t why;
    assert_int_equal(ww_wire_decode(fx.buf, (size_t)n, &lim, NOW, &env, &why), -EINVAL);
    assert_non_null(strstr(why.msg, "hello.nodes[0].site: a NUL byte at offset 6"));
    free(fx.buf);
}

/* An envelope head (wire_version 1, agent_id "agent-a", epoch, seq 7) and a batch tag with
 * a length prefix of blen, written at buf; returns the bytes written. */
static size_t raw_head(uint8_t *buf, size_t blen)
{
    static const uint8_t head[] = {0x08, 0x01, 0x12, 0x07, 'a',  'g',  'e',  'n',
                                   't',  '-',  'a',  0x19, 0xef, 0xcd, 0xab, 0x90,
                                   0x78, 0x56, 0x34, 0x12, 0x20, 0x07, 0x5a};
    memcpy(buf, head, sizeof head);
    size_t n = sizeof head;
    do {
        buf[n++] = (uint8_t)((blen & 0x7f) | (blen >= 0x80 ? 0x80 : 0));
        blen >>= 7;
    } while (blen);
    return n;
}

/* Item 4: a 16 MiB envelope of 8.4 million empty samples is refused on its raw bytes,
 * before protobuf-c allocates anything; with a limit that lets it through the scan, the
 * decoder's allocator refuses it at its budget (a small multiple of the size). */
static void test_huge_repeated_refused_before_allocation(void **state)
{
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    size_t total = lim.max_message_bytes;
    uint8_t *buf = malloc(total);
    assert_non_null(buf);
    size_t samples = (total - 64) / 2;
    size_t n = raw_head(buf, samples * 2);
    for (size_t i = 0; i < samples; i++) {
        buf[n++] = 0x0a; /* samples, length-delimited */
        buf[n++] = 0x00; /* empty */
    }
    assert_true(n <= total && samples > 8000000);
    ww_envelope_t *env = NULL;
    ww_wire_why_t why;
    assert_int_equal(ww_wire_decode(buf, n, &lim, NOW, &env, &why), -EINVAL);
    assert_null(env);
    assert_non_null(strstr(why.msg, "batch.samples: more than the limit 65536"));
    assert_true(why.unpack_bytes == 0); /* nothing allocated */
    assert_true(why.have_seq && why.seq == 7);

    lim.max_samples = 10000000; /* the most ingest.max_samples allows */
    assert_int_equal(ww_wire_decode(buf, n, &lim, NOW, &env, &why), -EMSGSIZE);
    assert_null(env);
    assert_non_null(strstr(why.msg, "memory budget"));
    assert_true(why.unpack_bytes > 0 && why.unpack_bytes <= WW_WIRE_ALLOC_BUDGET(n));
    assert_true(why.have_seq && why.seq == 7);
    assert_int_equal(ww_wire_nack_code(-EMSGSIZE), WAFERWATCH__V1__NACK_CODE__NACK_TOO_LARGE);
    free(buf);
}

/* The budget is no obstacle to valid messages at the limits: 65,536 minimal samples, and
 * 65,536 minimal windows with their four histograms. */
static void test_budget_fits_valid_batches(void **state)
{
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    size_t cnt = lim.max_samples;
    ww_node_sample_t *s = calloc(cnt, sizeof *s);
    ww_node_sample_t **sp = calloc(cnt, sizeof *sp);
    Waferwatch__V1__LatencyWindow *w = calloc(cnt, sizeof *w);
    Waferwatch__V1__LatencyWindow **wp = calloc(cnt, sizeof *wp);
    assert_true(s && sp && w && wp);
    fx_t fx = {0};
    win_t x;
    fx_init(&fx);
    win_init(&x, &fx, 1);
    for (size_t i = 0; i < cnt; i++) {
        waferwatch__v1__node_sample__init(&s[i]);
        s[i].node_id = (char *)"n";
        s[i].time_ns = NOW - WW_NS_PER_S;
        sp[i] = &s[i];
        w[i] = x.w;
        w[i].node_id = (char *)"n";
        w[i].model = (char *)"m";
        wp[i] = &w[i];
    }
    for (int k = 0; k < 2; k++) {
        fx.batch.samples = k == 0 ? sp : NULL;
        fx.batch.n_samples = k == 0 ? cnt : 0;
        fx.batch.latency_windows = k == 1 ? wp : NULL;
        fx.batch.n_latency_windows = k == 1 ? cnt : 0;
        ww_envelope_t *env = NULL;
        ww_wire_why_t why;
        long n = ww_wire_encode(&fx.env, &fx.buf, &fx.cap);
        int rc = ww_wire_decode(fx.buf, (size_t)n, &lim, NOW, &env, &why);
        if (rc != 0) {
            fail_msg("%s: %s", k ? "windows" : "samples", why.msg);
        }
        print_message("%zu minimal %s: %ld bytes, unpacked in %zu (%.1f times), budget %zu\n", cnt,
                      k ? "windows" : "samples", n, why.unpack_bytes,
                      (double)why.unpack_bytes / (double)n, WW_WIRE_ALLOC_BUDGET(n));
        ww_wire_free(&env);
    }
    free(fx.buf);
    free(s);
    free(sp);
    free(w);
    free(wp);
}

/* Issue 16 item 3: humidity_pct, the first OPTIONAL reading field. Unset, it is absent
 * after decoding (stored as NULL), it costs no bytes, and it is not range-checked; set, it
 * travels as NodeSample field 15 (5 bytes: the tag 0x7d and a little-endian float) and must
 * be finite and within 0..100. */
/* Readings a source did not measure (NodeSample.not_measured): carried as a bit, the value
 * unset; a bit beside a value, or one that names no reading that may be left out, refuses
 * the sample; from and to a reading, the bits and NaN for a float. */
static void test_not_measured(void **state)
{
    (void)state;
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    fx_t fx = {0};
    fx_init(&fx);
    ww_envelope_t *env = NULL;
    ww_wire_why_t why;
    fx.s[0].not_measured = WW_FIELD_BIT(6) | WW_FIELD_BIT(12); /* flow_lpm, throttled */
    fx.s[0].flow_lpm = 0;
    fx.s[0].throttled = false;
    assert_int_equal(fx_roundtrip(&fx, &env, &why), 0);
    assert_int_equal(env->batch->samples[0]->not_measured, WW_FIELD_BIT(6) | WW_FIELD_BIT(12));
    assert_int_equal(ww_wire_check_sample(env->batch->samples[0], 0, &lim, NOW, &why), 0);
    ww_reading_t r;
    ww_wire_sample_to_reading(env->batch->samples[0], &r);
    assert_true(isnan(r.flow_lpm));
    assert_int_equal(r.not_measured, WW_FIELD_BIT(6) | WW_FIELD_BIT(12));
    ww_wire_free(&env);

    /* A bit beside a value; a bit of no such reading; humidity's own (bit 12). */
    fx.s[0].flow_lpm = 40.0f;
    assert_int_equal(ww_wire_check_sample(&fx.s[0], 0, &lim, NOW, &why), -EINVAL);
    assert_non_null(strstr(why.msg, "batch.samples[0].flow_lpm: marked not measured"));
    fx.s[0].flow_lpm = 0;
    fx.s[0].not_measured = UINT32_C(1) << 20;
    assert_int_equal(ww_wire_check_sample(&fx.s[0], 0, &lim, NOW, &why), -EINVAL);
    assert_non_null(strstr(why.msg, "not_measured: 0x100000 has bits"));
    fx.s[0].not_measured = WW_FIELD_BIT(15);
    assert_int_equal(ww_wire_check_sample(&fx.s[0], 0, &lim, NOW, &why), -EINVAL);

    /* From a reading: the bit, or NaN for a float, leaves the value 0 and sets the bit. */
    memset(&r, 0, sizeof r);
    r.power_w = 900;
    r.inlet_c = NAN;
    r.requests_queued = 7;
    r.not_measured = WW_FIELD_BIT(10); /* requests_queued */
    r.humidity_pct = NAN;
    ww_node_sample_t s = WAFERWATCH__V1__NODE_SAMPLE__INIT;
    ww_wire_sample_from_reading(&s, &r);
    assert_int_equal(s.not_measured, WW_FIELD_BIT(4) | WW_FIELD_BIT(10));
    assert_true(s.inlet_c == 0 && s.requests_queued == 0 && s.power_w == 900);
    free(fx.buf);
}

static void test_humidity_optional(void **state)
{
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    fx_t fx = {0};
    fx_init(&fx);
    ww_envelope_t *env = NULL;
    ww_wire_why_t why;
    long without = ww_wire_encode(&fx.env, &fx.buf, &fx.cap);
    assert_true(without > 0);
    assert_int_equal(fx_roundtrip(&fx, &env, &why), 0);
    assert_false(WW_WIRE_HAS(env->batch->samples[0], humidity_pct));
    assert_int_equal(ww_wire_check_sample(env->batch->samples[0], 0, &lim, NOW, &why), 0);
    ww_reading_t r;
    ww_wire_sample_to_reading(env->batch->samples[0], &r);
    assert_true(isnan(r.humidity_pct));
    ww_wire_free(&env);

    /* From a reading: NaN leaves it unset, a value sets it. */
    memset(&r, 0, sizeof r);
    r.humidity_pct = NAN;
    ww_wire_sample_from_reading(&fx.s[1], &r);
    assert_false(WW_WIRE_HAS(&fx.s[1], humidity_pct));
    r.humidity_pct = 42.5f;
    ww_wire_sample_from_reading(&fx.s[1], &r);
    assert_true(WW_WIRE_HAS(&fx.s[1], humidity_pct));
    assert_int_equal(fx.s[1].humidity_pct_present_case,
                     WAFERWATCH__V1__NODE_SAMPLE__HUMIDITY_PCT_PRESENT_HUMIDITY_PCT);
    ww_reading_t back;
    memset(&back, 0, sizeof back); /* the padding too */
    ww_wire_sample_to_reading(&fx.s[1], &back);
    assert_memory_equal(&back, &r, sizeof r);

    fx_init(&fx);
    fx.s[1].humidity_pct_present_case =
        WAFERWATCH__V1__NODE_SAMPLE__HUMIDITY_PCT_PRESENT_HUMIDITY_PCT;
    fx.s[1].humidity_pct = 42.5f;
    long with = ww_wire_encode(&fx.env, &fx.buf, &fx.cap);
    assert_int_equal(with, without + 5);
    assert_int_equal(fx_roundtrip(&fx, &env, &why), 0);
    assert_false(WW_WIRE_HAS(env->batch->samples[0], humidity_pct));
    assert_true(WW_WIRE_HAS(env->batch->samples[1], humidity_pct));
    assert_true(env->batch->samples[1]->humidity_pct == 42.5f);
    assert_int_equal(ww_wire_check_sample(env->batch->samples[1], 1, &lim, NOW, &why), 0);
    ww_wire_free(&env);

    /* 0 is a value, not "absent"; present values are checked like any reading. */
    const struct {
        float v;
        int rc;
        const char *text;
    } cases[] = {
        {0.0f, 0, NULL},
        {100.0f, 0, NULL},
        {100.5f, -EINVAL,
         "batch.samples[1].humidity_pct: 100.5 is outside the plausible range [0, 100]"},
        {-0.5f, -EINVAL, "batch.samples[1].humidity_pct: -0.5 is outside"},
        {NAN, -EINVAL, "batch.samples[1].humidity_pct: nan is not a finite number"},
        {INFINITY, -EINVAL, "batch.samples[1].humidity_pct: inf is not a finite number"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        fx_init(&fx);
        fx.s[1].humidity_pct_present_case =
            WAFERWATCH__V1__NODE_SAMPLE__HUMIDITY_PCT_PRESENT_HUMIDITY_PCT;
        fx.s[1].humidity_pct = cases[k].v;
        assert_int_equal(fx_roundtrip(&fx, &env, &why), 0);
        assert_true(WW_WIRE_HAS(env->batch->samples[1], humidity_pct));
        assert_int_equal(ww_wire_check_sample(env->batch->samples[1], 1, &lim, NOW, &why),
                         cases[k].rc);
        if (cases[k].text) {
            assert_non_null(strstr(why.msg, cases[k].text));
        }
        ww_wire_free(&env);
    }
    free(fx.buf);
}

/* A pointer to the F32 field `name` of *r (ww_fields.h), or NULL. */
#define F32_PTR_F32(name)                                                                          \
    if (strcmp(field, #name) == 0) {                                                               \
        return &r->name;                                                                           \
    }
#define F32_PTR_U32(name)
#define F32_PTR_BOOL(name)
#define F32_PTR_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                      \
    WW_FIELD_CAT(F32_PTR_, kind)(name)
static float *f32_field(ww_reading_t *r, const char *field)
{
    WW_READING_FIELDS(F32_PTR_)
    return NULL;
}

/* The ranges of ww_fields.h are what ww_wire_check_sample enforces, field by field: each
 * bound is accepted, a step past it refused naming the field; the fields are copied from a
 * reading by ww_wire_sample_from_reading. */
static void test_ranges_from_field_list(void **state)
{
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    static const ww_field_t fields[] = WW_READING_FIELD_TABLE;
    fx_t fx = {0};
    size_t checked = 0;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (fields[i].kind != WW_FIELD_KIND_F32) {
            continue;
        }
        const double at[] = {fields[i].lo, fields[i].hi,
                             fields[i].lo - (fabs(fields[i].lo) + 1.0) * 0.01,
                             fields[i].hi + (fabs(fields[i].hi) + 1.0) * 0.01};
        for (int k = 0; k < 4; k++) {
            fx_init(&fx);
            ww_reading_t r;
            ww_wire_sample_to_reading(&fx.s[2], &r);
            r.humidity_pct = 40.0f;
            float *f = f32_field(&r, fields[i].name);
            assert_non_null(f);
            *f = (float)at[k];
            ww_wire_sample_from_reading(&fx.s[2], &r);
            ww_envelope_t *env = NULL;
            ww_wire_why_t why;
            assert_int_equal(fx_roundtrip(&fx, &env, &why), 0);
            int rc = ww_wire_check_sample(env->batch->samples[2], 2, &lim, NOW, &why);
            if (k < 2) {
                assert_int_equal(rc, 0);
            } else {
                assert_int_equal(rc, -EINVAL);
                char want[96];
                snprintf(want, sizeof want, "batch.samples[2].%s: ", fields[i].name);
                assert_non_null(strstr(why.msg, want));
                assert_non_null(strstr(why.msg, "plausible range"));
            }
            ww_wire_free(&env);
        }
        checked++;
    }
    assert_int_equal(checked, 9); /* eight ALWAYS floats and humidity_pct */
    free(fx.buf);
}

/* Ack.missing_first..missing_last: none (both 0) or seqs before the acked one; anything
 * else is refused naming the fields, so an agent never goes looking for a range it could
 * not hold (a collector's bug, not a reason to read the spool from seq 0). */
static void test_ack_missing_range(void **state)
{
    (void)state;
    static const struct {
        uint64_t seq, first, last;
        bool ok;
    } cases[] = {
        {10, 0, 0, true},  {10, 4, 9, true},  {10, 9, 9, true},          {10, 1, 1, true},
        {10, 0, 3, false}, {10, 5, 4, false}, {10, 4, 10, false},        {10, 4, 0, false},
        {0, 0, 0, true},   {0, 1, 1, true},   {2, 1, 1, true},           {2, 2, 2, false},
        {0, 7, 3, false},  {0, 0, 9, false},  {0, 5, 1ULL << 63, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
        ww_ack_t ack = WAFERWATCH__V1__ACK__INIT;
        env.wire_version = WW_WIRE_VERSION;
        env.agent_id = (char *)"collector";
        env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_ACK;
        env.ack = &ack;
        ack.epoch = 7;
        ack.seq = cases[i].seq;
        ack.missing_first = cases[i].first;
        ack.missing_last = cases[i].last;
        uint8_t *buf = NULL;
        size_t cap = 0;
        long n = ww_wire_encode(&env, &buf, &cap);
        assert_true(n >= 0);
        ww_wire_limits_t lim;
        ww_wire_limits_default(&lim);
        ww_envelope_t *got = NULL;
        ww_wire_why_t why;
        int rc = ww_wire_decode(buf, (size_t)n, &lim, NOW, &got, &why);
        if (cases[i].ok) {
            if (rc != 0) {
                fail_msg("case %zu refused: %s", i, why.msg);
            }
            assert_int_equal(got->ack->missing_first, cases[i].first);
            assert_int_equal(got->ack->missing_last, cases[i].last);
            ww_wire_free(&got);
        } else {
            assert_int_equal(rc, -EINVAL);
            assert_non_null(strstr(why.msg, "ack.missing_first..missing_last"));
        }
        free(buf);
    }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_ack_missing_range),
    cmocka_unit_test(test_batch_roundtrip),
    cmocka_unit_test(test_hello_roundtrip),
    cmocka_unit_test(test_garbage_is_malformed),
    cmocka_unit_test(test_nan_rejected_with_field),
    cmocka_unit_test(test_out_of_range_rejected),
    cmocka_unit_test(test_time_window),
    cmocka_unit_test(test_required_fields),
    cmocka_unit_test(test_version_and_size),
    cmocka_unit_test(test_strings_checked),
    cmocka_unit_test(test_truncated_messages_never_crash),
    cmocka_unit_test(test_field_number_zero_refused),
    cmocka_unit_test(test_window_counts_bounded),
    cmocka_unit_test(test_window_counts_agree_unless_aggregated),
    cmocka_unit_test(test_not_measured),
    cmocka_unit_test(test_seq_range),
    cmocka_unit_test(test_counters_fit_integer),
    cmocka_unit_test(test_unstorable_values_refused),
    cmocka_unit_test(test_outages_and_pending),
    cmocka_unit_test(test_nul_refused_in_every_string),
    cmocka_unit_test(test_huge_repeated_refused_before_allocation),
    cmocka_unit_test(test_budget_fits_valid_batches),
    cmocka_unit_test(test_humidity_optional),
    cmocka_unit_test(test_ranges_from_field_list),
};
WW_TEST_MAIN(tests, NULL, NULL)
