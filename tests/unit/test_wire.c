/* Unit tests of the wire codec: round trips and refusal of bad input with a reason. */
#include "ww_test.h"
#include "ww_time.h"
#include "ww_wire.h"

#include <errno.h>
#include <math.h>
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
    fx_t fx = {0};
    fx_init(&fx);
    fx.s[1].power_w = NAN;
    ww_envelope_t *env = NULL;
    ww_wire_why_t why;
    assert_int_equal(fx_roundtrip(&fx, &env, &why), 0);
    assert_int_equal(ww_wire_check_sample(env->batch->samples[0], 0, &why), 0);
    assert_int_equal(ww_wire_check_sample(env->batch->samples[1], 1, &why), -EINVAL);
    assert_non_null(strstr(why.msg, "batch.samples[1].power_w"));
    assert_non_null(strstr(why.msg, "finite"));
    ww_wire_free(&env);
    free(fx.buf);
}

static void test_out_of_range_rejected(void **state)
{
    fx_t fx = {0};
    fx_init(&fx);
    fx.s[2].utilization = 1.5f;
    ww_envelope_t *env = NULL;
    ww_wire_why_t why;
    assert_int_equal(fx_roundtrip(&fx, &env, &why), 0);
    assert_int_equal(ww_wire_check_sample(env->batch->samples[2], 2, &why), -EINVAL);
    assert_non_null(strstr(why.msg, "batch.samples[2].utilization"));
    ww_wire_free(&env);
    fx_init(&fx);
    fx.s[0].power_w = -1.0f;
    assert_int_equal(fx_roundtrip(&fx, &env, &why), 0);
    assert_int_equal(ww_wire_check_sample(env->batch->samples[0], 0, &why), -EINVAL);
    assert_non_null(strstr(why.msg, "power_w"));
    ww_wire_free(&env);
    free(fx.buf);
}

static void test_time_window(void **state)
{
    fx_t fx = {0};
    fx_init(&fx);
    ww_envelope_t *env = NULL;
    ww_wire_why_t why;
    fx.s[0].time_ns = NOW + 3600 * WW_NS_PER_S; /* an hour in the future */
    assert_int_equal(fx_roundtrip(&fx, &env, &why), -EINVAL);
    assert_non_null(strstr(why.msg, "time_ns"));
    /* The stream position of the refused batch is reported for the Nack. */
    assert_true(why.have_seq);
    assert_int_equal(why.seq, 7);
    assert_string_equal(why.agent_id, "agent-a");
    fx.s[0].time_ns = NOW - 8 * 24 * 3600 * WW_NS_PER_S; /* 8 days old */
    assert_int_equal(fx_roundtrip(&fx, &env, &why), -EINVAL);
    fx.s[0].time_ns = NOW - 6 * 24 * 3600 * WW_NS_PER_S; /* 6 days old: accepted */
    assert_int_equal(fx_roundtrip(&fx, &env, &why), 0);
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
        assert_true(rc == 0 || rc == -EBADMSG || rc == -EINVAL || rc == -EPROTONOSUPPORT);
        ok += rc == 0;
        ww_wire_free(&env);
    }
    for (long i = 0; i < n; i++) {
        uint8_t saved = fx.buf[i];
        fx.buf[i] ^= 0x5a;
        ww_envelope_t *env = NULL;
        ww_wire_why_t why;
        int rc = ww_wire_decode(fx.buf, (size_t)n, &lim, NOW, &env, &why);
        assert_true(rc <= 0);
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

static const struct CMUnitTest tests[] = {
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
};
WW_TEST_MAIN(tests, NULL, NULL)
