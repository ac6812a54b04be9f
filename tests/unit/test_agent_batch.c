/* Unit tests of the parts of a batch: the latency windows (agent/ww_lwbuf.c) and the node
 * samples' readings, each on its sensor's grid (agent/ww_quant.c). */
#include "ww_lwbuf.h"
#include "ww_quant.h"
#include "ww_sblock.h"
#include "ww_sim.h"
#include "ww_sim_defaults.h"
#include "ww_test.h"
#include "ww_time.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A window with empty histograms (scale 6), as the agent opens one. */
static void s_window_init(ww_lat_window_t *w)
{
    memset(w, 0, sizeof *w);
    ww_hist_init(&w->queue, 6);
    ww_hist_init(&w->ttft, 6);
    ww_hist_init(&w->tpot, 6);
    ww_hist_init(&w->e2e, 6);
}

static void s_window_fini(ww_lat_window_t *w)
{
    ww_hist_fini(&w->queue);
    ww_hist_fini(&w->ttft);
    ww_hist_fini(&w->tpot);
    ww_hist_fini(&w->e2e);
}

/* Wraps batch in an envelope (agent "a", epoch 1, seq 1), encodes it and decodes it as the
 * collector would at now_ns. Returns ww_wire_decode's result; *got (free with
 * ww_wire_free) and *why are filled as it fills them. */
static int s_batch_roundtrip(ww_batch_t *batch, int64_t now_ns, ww_envelope_t **got,
                             ww_wire_why_t *why)
{
    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    env.wire_version = WW_WIRE_VERSION;
    env.agent_id = (char *)"a";
    env.epoch = 1;
    env.seq = 1;
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_BATCH;
    env.batch = batch;
    uint8_t *buf = NULL;
    size_t cap = 0;
    long len = ww_wire_encode(&env, &buf, &cap);
    assert_true(len > 0);
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    int rc = ww_wire_decode(buf, (size_t)len, &lim, now_ns, got, why);
    free(buf); /* the decoded envelope owns copies of everything it holds */
    return rc;
}

/* More windows than the buffer's first allocation: the arrays move when they grow, and
 * every window added before must still be encoded whole (a fleet agent closes thousands
 * of windows in one tick). */
static void test_many_windows_survive_growth(void **state)
{
    (void)state;
    enum { N = 1000 };
    static char names[N][16];
    ww_lwbuf_t b;
    ww_lwbuf_init(&b);
    ww_lat_window_t w;
    s_window_init(&w);
    int64_t t0 = INT64_C(1795000000) * WW_NS_PER_S;
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "n-%d", i);
        w.ok = (uint64_t)i + 1;
        ww_hist_record(&w.queue, 0.001 + i * 0.0001);
        ww_hist_record(&w.ttft, 0.1 + i * 0.001);
        ww_hist_record(&w.tpot, 0.0008);
        ww_hist_record(&w.e2e, 1.0 + i * 0.01);
        assert_int_equal(ww_lwbuf_add(&b, names[i], "m", t0, 10 * WW_NS_PER_S, &w), 0);
    }
    ww_batch_t batch = WAFERWATCH__V1__BATCH__INIT;
    ww_lwbuf_attach(&b, &batch);
    assert_int_equal(batch.n_latency_windows, N);
    ww_envelope_t *got = NULL;
    ww_wire_why_t why;
    int rc = s_batch_roundtrip(&batch, t0, &got, &why);
    if (rc != 0) {
        fail_msg("decode: %s", why.msg);
    }
    assert_int_equal(got->batch->n_latency_windows, N);
    for (int i = 0; i < N; i++) {
        const Waferwatch__V1__LatencyWindow *lw = got->batch->latency_windows[i];
        assert_string_equal(lw->node_id, names[i]);
        assert_int_equal(lw->requests_ok, (uint64_t)i + 1);
        assert_int_equal(lw->ttft->count, (uint64_t)i + 1);
    }
    ww_wire_free(&got);
    ww_lwbuf_reset(&b);
    ww_lwbuf_fini(&b);
    s_window_fini(&w);
}

/* Encodes one window starting at start_ns and decodes it; returns the decode result. */
static int s_window_roundtrip(int64_t start_ns, int64_t now_ns, ww_wire_why_t *why)
{
    ww_lwbuf_t b;
    ww_lwbuf_init(&b);
    ww_lat_window_t w;
    s_window_init(&w);
    assert_int_equal(ww_lwbuf_add(&b, "n", "m", start_ns, 10 * WW_NS_PER_S, &w), 0);
    ww_batch_t batch = WAFERWATCH__V1__BATCH__INIT;
    ww_lwbuf_attach(&b, &batch);
    ww_envelope_t *got = NULL;
    int rc = s_batch_roundtrip(&batch, now_ns, &got, why);
    ww_wire_free(&got);
    ww_lwbuf_reset(&b);
    ww_lwbuf_fini(&b);
    return rc;
}

/* Windows are staggered per node by whole intervals: a start off the duration's grid is
 * valid, a start off the millisecond is not. */
static void test_staggered_window_start_accepted(void **state)
{
    (void)state;
    int64_t t0 = INT64_C(1795000000) * WW_NS_PER_S;
    ww_wire_why_t why;
    assert_int_equal(s_window_roundtrip(t0 + 3 * WW_NS_PER_S, t0 + 20 * WW_NS_PER_S, &why), 0);
    assert_int_equal(s_window_roundtrip(t0 + 3 * WW_NS_PER_S + 1, t0 + 20 * WW_NS_PER_S, &why),
                     -EINVAL);
    assert_non_null(strstr(why.msg, "start_ns"));
}

/* ---- the samples: readings on their sensor's grid (ww_quant.h) ---------------------- */

/* Checks one F32 reading field as it left the agent (got, present) against what the source
 * gave (raw): NaN raw (not measured) is absent; anything else is present, on the field's
 * grid (as the block codec tests it), the grid value nearest to raw, and, when raw was in
 * the plausible range [lo, hi], still in it. */
static void s_check_f32(const char *name, float raw, bool present, float got, double res, double lo,
                        double hi)
{
    if (isnan(raw)) {
        if (present) {
            fail_msg("%s: not measured (NaN) but sent as %.9g", name, (double)got);
        }
        return;
    }
    if (!present) {
        fail_msg("%s: %.9g measured but not sent", name, (double)raw);
    }
    int64_t k = 0;
    if (!ww_sblock_grid_index(got, res, &k)) {
        fail_msg("%s: %.9g (from %.9g) is off its grid of %g", name, (double)got, (double)raw, res);
    }
    /* The nearest grid value: its index k is within half a step of raw / res (measured in
     * steps, not between the floats of the grid values, whose own rounding could favour the
     * farther one near a tie). */
    double steps = (double)raw / res - (double)k;
    if (fabs(steps) > 0.5 + 1e-9) {
        fail_msg("%s: %.9g was sent as %.9g, %.6g steps of %g away: not the nearest", name,
                 (double)raw, (double)got, steps, res);
    }
    if ((double)raw >= lo && (double)raw <= hi && ((double)got < lo || (double)got > hi)) {
        fail_msg("%s: %.9g in [%g, %g] was sent as %.9g, outside", name, (double)raw, lo, hi,
                 (double)got);
    }
}

/* Checks every reading field of the decoded sample s against the reading r it was made from,
 * expanded from the field list: F32 by s_check_f32, U32 and BOOL sent unchanged. */
#define S_PRESENT_ALWAYS(s, name) true
#define S_PRESENT_OPTIONAL(s, name) WW_WIRE_HAS(s, name)
#define S_CHECK_F32(name, presence, lo, hi)                                                        \
    s_check_f32(#name, r->name, WW_FIELD_CAT(S_PRESENT_, presence)(s, name), s->name,              \
                WW_FIELD_RES(name), lo, hi);
#define S_CHECK_U32(name, presence, lo, hi) assert_int_equal(s->name, r->name);
#define S_CHECK_BOOL(name, presence, lo, hi) assert_int_equal(s->name, r->name);
#define S_CHECK_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                      \
    WW_FIELD_CAT(S_CHECK_, kind)(name, presence, lo, hi)

static void s_check_sample(const ww_node_sample_t *s, const ww_reading_t *r)
{
    WW_READING_FIELDS(S_CHECK_)
}

/* Sends readings r[0 .. n) as the agent does (ww_quant_sample, one batch), decodes the
 * batch as the collector would, and checks every sample: plausible (ww_wire_check_sample)
 * and each field as s_check_sample says. */
static void s_send_and_check(const ww_reading_t *r, size_t n)
{
    int64_t t0 = INT64_C(1795000000) * WW_NS_PER_S;
    ww_node_sample_t *smp = calloc(n, sizeof *smp);
    ww_node_sample_t **ptrs = calloc(n, sizeof *ptrs);
    assert_non_null(smp);
    assert_non_null(ptrs);
    for (size_t i = 0; i < n; i++) {
        waferwatch__v1__node_sample__init(&smp[i]);
        smp[i].node_id = (char *)"n";
        smp[i].time_ns = t0 + (int64_t)i * WW_NS_PER_S;
        ww_quant_sample(&smp[i], &r[i]);
        ptrs[i] = &smp[i];
    }
    ww_batch_t batch = WAFERWATCH__V1__BATCH__INIT;
    batch.samples = ptrs;
    batch.n_samples = n;
    ww_envelope_t *got = NULL;
    ww_wire_why_t why;
    int64_t now = t0 + (int64_t)n * WW_NS_PER_S;
    if (s_batch_roundtrip(&batch, now, &got, &why) != 0) {
        fail_msg("decode: %s", why.msg);
    }
    assert_int_equal(got->batch->n_samples, n);
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    for (size_t i = 0; i < n; i++) {
        const ww_node_sample_t *s = got->batch->samples[i];
        if (ww_wire_check_sample(s, i, &lim, now, &why) != 0) {
            fail_msg("sample %zu: %s", i, why.msg);
        }
        s_check_sample(s, &r[i]);
    }
    ww_wire_free(&got);
    free(ptrs);
    free(smp);
}

/* A float in [lo, hi] that tries the grid's edges: anywhere in the range, a few steps of
 * res above lo (where float digits are finest), a grid value plus almost or exactly half a
 * step (the ties), and the bounds themselves and the floats just inside them. */
static float s_rand_f32(uint64_t *rng, double lo, double hi, double res)
{
    double u = ww_test_rng_unit(rng);
    switch (ww_test_rng_next(rng) % 6) {
    case 0:
        return (float)(lo + u * (hi - lo));
    case 1:
        return (float)(lo + u * 1000 * res);
    case 2: {
        double k = floor(ww_test_rng_unit(rng) * 10000);
        double half = (ww_test_rng_next(rng) & 1) ? 0.5 : 0.4999;
        return (float)fmin(hi, lo + (k + half) * res);
    }
    case 3:
        return (ww_test_rng_next(rng) & 1) ? (float)lo : (float)hi;
    case 4:
        return (ww_test_rng_next(rng) & 1) ? nextafterf((float)lo, INFINITY)
                                           : nextafterf((float)hi, -INFINITY);
    default:
        return (float)(lo + u * u * u * (hi - lo)); /* mostly low, every magnitude */
    }
}

/* One reading: every field at random within its plausible range (ww_fields.h), an OPTIONAL
 * one not measured (NaN) one time in four. */
#define S_RAND_F32(name, lo, hi) r->name = s_rand_f32(rng, lo, hi, WW_FIELD_RES(name));
#define S_RAND_U32(name, lo, hi) r->name = (uint32_t)(ww_test_rng_next(rng) % ((uint64_t)(hi) + 1));
#define S_RAND_BOOL(name, lo, hi) r->name = (ww_test_rng_next(rng) & 1) != 0;
#define S_ABSENT_ALWAYS(name)
#define S_ABSENT_OPTIONAL(name)                                                                    \
    if (ww_test_rng_next(rng) % 4 == 0) {                                                          \
        r->name = NAN;                                                                             \
    }
#define S_RAND_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                       \
    WW_FIELD_CAT(S_RAND_, kind)(name, lo, hi) WW_FIELD_CAT(S_ABSENT_, presence)(name)

static void s_rand_reading(uint64_t *rng, ww_reading_t *r)
{
    memset(r, 0, sizeof *r);
    WW_READING_FIELDS(S_RAND_)
}

/* Every F32 reading of every sample leaving the agent is on its field's grid and the grid
 * value nearest to what the source gave, whatever the source: random readings over the
 * whole plausible range of each field (its edges, ties, the floats next to the bounds), and
 * the simulator's. Counters and flags are sent as they were; a humidity not measured is
 * absent. */
static void test_samples_leave_on_their_grid(void **state)
{
    (void)state;
    enum { N = 4000 };
    ww_reading_t *r = calloc(N, sizeof *r);
    assert_non_null(r);
    uint64_t rng = 18;
    for (size_t i = 0; i < N; i++) {
        s_rand_reading(&rng, &r[i]);
    }
    s_send_and_check(r, N);

    /* The simulator, two nodes for N / 2 seconds each, with a pump fault so that it runs
     * hot and throttles. */
    ww_sim_conf_t c;
    ww_sim_model_t m[WW_SIM_MAX_MODELS];
    memset(&c, 0, sizeof c);
    memset(m, 0, sizeof m);
    ww_sim_conf_set_defaults(&c);
    c.n_models = ww_sim_default_models(m, WW_SIM_MAX_MODELS);
    c.models = m;
    c.pump_fault = true;
    c.pump_fault_start_s = 300;
    c.pump_fault_duration_s = 0;
    c.pump_fault_flow_factor = 0.3;
    c.pump_fault_every = 1;
    int64_t t0 = INT64_C(1795000000) * WW_NS_PER_S;
    size_t n = 0;
    for (unsigned node = 0; node < 2; node++) {
        void *sim = NULL;
        assert_int_equal(ww_sim_source.open(&c, node, t0, &sim), 0);
        for (size_t i = 0; i < N / 2; i++, n++) {
            assert_int_equal(ww_sim_source.sample(sim, t0 + (int64_t)i * WW_NS_PER_S, &r[n]), 0);
            ww_request_t req[256];
            while (ww_sim_source.poll_requests(sim, req, 256) == 256) {
            }
        }
        ww_sim_source.close(&sim);
    }
    s_send_and_check(r, n);
    for (size_t i = 0; i < WW_SIM_MAX_MODELS; i++) {
        free(m[i].name);
    }
    free(r);
}

/* Fails unless a and b hold the same values, bit for bit, field by field. */
#define S_SAME_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                       \
    if (memcmp(&a->name, &b->name, sizeof a->name) != 0) {                                         \
        fail_msg("%s differs", #name);                                                             \
    }

static void s_assert_same(const ww_reading_t *a, const ww_reading_t *b)
{
    WW_READING_FIELDS(S_SAME_)
}

/* Off-grid readings are rounded to the nearest grid value (halves away from zero), on-grid
 * ones kept, counters and flags untouched, NaN kept; the source's reading is not changed. */
static void test_off_grid_readings_round_to_nearest(void **state)
{
    (void)state;
    ww_reading_t raw = {.power_w = 23000.37f,
                        .inlet_c = 25.04f,
                        .outlet_c = 30.06f,
                        .flow_lpm = 40.049f,
                        .wafer_hotspot_c = -12.34f,
                        .utilization = 0.4996f,
                        .tokens_per_s = 1234.56f,
                        .requests_queued = 7,
                        .requests_in_flight = 3,
                        .requests_completed = 123456789,
                        .throttled = true,
                        .throttle_factor = 0.99951f,
                        .humidity_pct = 41.26f};
    ww_reading_t q = raw;
    ww_quant_reading(&q);
    assert_true(q.power_w == 23000.0f);
    assert_true(q.inlet_c == 25.0f);
    assert_true(q.outlet_c == 30.1f);
    assert_true(q.flow_lpm == 40.0f);
    assert_true(q.wafer_hotspot_c == -12.3f);
    assert_true(q.utilization == 0.5f);
    assert_true(q.tokens_per_s == 1234.6f);
    assert_int_equal(q.requests_queued, 7);
    assert_int_equal(q.requests_in_flight, 3);
    assert_int_equal(q.requests_completed, 123456789);
    assert_true(q.throttled);
    assert_true(q.throttle_factor == 1.0f);
    assert_true(q.humidity_pct == 41.3f);
    /* Ties go away from zero; a value on the grid stays as it is; -0 becomes +0. */
    ww_reading_t t = raw;
    t.power_w = 22999.5f;
    t.inlet_c = -0.0f;
    t.utilization = 0.25f;
    t.throttle_factor = 0.0f;
    ww_quant_reading(&t);
    assert_true(t.power_w == 23000.0f);
    assert_true(t.inlet_c == 0.0f && !signbit(t.inlet_c));
    assert_true(t.utilization == 0.25f);
    assert_true(t.throttle_factor == 0.0f);

    /* The NodeSample the agent sends carries the quantized values; raw is left alone. */
    ww_node_sample_t s = WAFERWATCH__V1__NODE_SAMPLE__INIT;
    ww_quant_sample(&s, &raw);
    assert_true(raw.power_w == 23000.37f && raw.humidity_pct == 41.26f);
    s_check_sample(&s, &raw);
    ww_reading_t back;
    ww_wire_sample_to_reading(&s, &back);
    s_assert_same(&back, &q);
    assert_true(WW_WIRE_HAS(&s, humidity_pct));

    /* Humidity not measured: NaN stays NaN, and the sample leaves it out. */
    raw.humidity_pct = NAN;
    q = raw;
    ww_quant_reading(&q);
    assert_true(isnan(q.humidity_pct));
    waferwatch__v1__node_sample__init(&s);
    ww_quant_sample(&s, &raw);
    assert_false(WW_WIRE_HAS(&s, humidity_pct));
    assert_true(s.power_w == 23000.0f);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_staggered_window_start_accepted),
    cmocka_unit_test(test_many_windows_survive_growth),
    cmocka_unit_test(test_samples_leave_on_their_grid),
    cmocka_unit_test(test_off_grid_readings_round_to_nearest),
};
WW_TEST_MAIN(tests, NULL, NULL)
