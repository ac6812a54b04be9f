/* Unit tests of the latency-window part of a batch (agent/ww_lwbuf.c). */
#include "ww_lwbuf.h"
#include "ww_test.h"
#include "ww_time.h"

#include <errno.h>
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

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_staggered_window_start_accepted),
    cmocka_unit_test(test_many_windows_survive_growth),
};
WW_TEST_MAIN(tests, NULL, NULL)
