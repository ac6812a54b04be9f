/* Unit tests of the agent's latency windows (agent/ww_latency.c). */
#include "ww_latency.h"
#include "ww_test.h"
#include "ww_time.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#define W (10 * WW_NS_PER_S)
#define T0 (INT64_C(1795000000) * WW_NS_PER_S) /* a multiple of W */

typedef struct {
    int n;
    unsigned model[16];
    int64_t start[16];
    int64_t duration[16];
    uint64_t ok[16], error[16], timeout[16], rejected[16], ttft_count[16], tpot_count[16];
    double ttft_p50[16], tpot_p50[16];
    int ttft_scale[16];
    bool aggregated[16];
} s_out_t;

static void s_emit(void *arg, unsigned model, int64_t start_ns, int64_t window_ns,
                   const ww_lat_window_t *w)
{
    s_out_t *o = arg;
    assert_true(o->n < 16);
    assert_true(window_ns >= WW_NS_PER_MS && window_ns <= W); /* the part covered */
    int i = o->n++;
    o->duration[i] = window_ns;
    o->model[i] = model;
    o->start[i] = start_ns;
    o->ok[i] = w->ok;
    o->error[i] = w->error;
    o->timeout[i] = w->timeout;
    o->rejected[i] = w->rejected;
    o->ttft_count[i] = w->ttft.count;
    o->tpot_count[i] = w->tpot.count;
    o->ttft_p50[i] = ww_hist_quantile(&w->ttft, 0.5);
    o->tpot_p50[i] = ww_hist_quantile(&w->tpot, 0.5);
    o->ttft_scale[i] = w->ttft.scale;
    o->aggregated[i] = w->aggregated;
}

static ww_request_t s_req(unsigned model, ww_req_status_t st, int64_t done, uint32_t out)
{
    ww_request_t r;
    memset(&r, 0, sizeof r);
    r.model = (uint16_t)model;
    r.status = st;
    r.arrival_ns = done - 2 * WW_NS_PER_S;
    r.start_ns = r.arrival_ns + 100 * WW_NS_PER_MS;       /* queue 0.1 s */
    r.first_token_ns = r.arrival_ns + 250 * WW_NS_PER_MS; /* TTFT 0.25 s */
    r.done_ns = done;
    r.prompt_tokens = 1000;
    r.output_tokens = out;
    return r;
}

static void test_records_land_in_aligned_windows(void **state)
{
    ww_latency_t l;
    s_out_t o = {0};
    assert_int_equal(ww_latency_init(&l, 2, W, 6, s_emit, &o), 0);
    ww_request_t r = s_req(0, WW_REQ_OK, T0 + 3 * WW_NS_PER_S, 1751);
    ww_latency_record(&l, &r);
    r = s_req(1, WW_REQ_OK, T0 + 9 * WW_NS_PER_S, 101);
    ww_latency_record(&l, &r);
    /* A tick inside the window closes nothing. */
    assert_int_equal(ww_latency_close(&l, T0 + 9 * WW_NS_PER_S, false), 0);
    /* The next window's first record closes the first (both models' windows), before it
     * is recorded; the tick at the next window's start then has nothing left to close. */
    r = s_req(0, WW_REQ_OK, T0 + W, 11);
    ww_latency_record(&l, &r);
    assert_int_equal(o.n, 2);
    assert_int_equal(ww_latency_close(&l, T0 + W, false), 0);
    assert_true(o.start[0] == T0 && o.start[1] == T0);
    assert_int_equal(o.ok[0] + o.ok[1], 2);
    /* TTFT 0.25 s; TPOT (done - first token) / (out - 1) = 1.75 s / 1750 = 1 ms. */
    int m0 = o.model[0] == 0 ? 0 : 1;
    assert_true(fabs(o.ttft_p50[m0] - 0.25) / 0.25 < 0.006);
    assert_true(fabs(o.tpot_p50[m0] - 0.001) / 0.001 < 0.006);
    assert_true(o.duration[0] == W && o.duration[1] == W);
    /* Shutdown flushes the open window, with the part it covered: from its start to the
     * stop, at least the 1 ms the wire allows. */
    assert_int_equal(ww_latency_close(&l, T0 + W + 1, true), 1);
    assert_true(o.start[2] == T0 + W);
    assert_true(o.duration[2] == WW_NS_PER_MS);
    assert_int_equal(ww_latency_close(&l, T0 + 2 * W, true), 0);
    ww_latency_fini(&l);
}

static void test_status_routing(void **state)
{
    ww_latency_t l;
    s_out_t o = {0};
    assert_int_equal(ww_latency_init(&l, 1, W, 6, s_emit, &o), 0);
    int64_t d = T0 + WW_NS_PER_S;
    ww_request_t rs[] = {s_req(0, WW_REQ_OK, d, 1),       s_req(0, WW_REQ_OK, d, 5),
                         s_req(0, WW_REQ_ERROR, d, 0),    s_req(0, WW_REQ_TIMEOUT, d, 0),
                         s_req(0, WW_REQ_REJECTED, d, 0), s_req(0, WW_REQ_REJECTED, d, 0)};
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
        if (i % 2) {
            ww_latency_record(&l, &rs[i]);
        } else {
            ww_latency_sink(&l, &rs[i]); /* the same, as a source's sink */
        }
    }
    assert_int_equal(l.recorded, 6);
    assert_int_equal(ww_latency_close(&l, T0 + W, false), 1);
    assert_int_equal(o.ok[0], 2);
    assert_int_equal(o.error[0], 1);
    assert_int_equal(o.timeout[0], 1);
    assert_int_equal(o.rejected[0], 2);
    assert_int_equal(o.ttft_count[0], 2); /* latency histograms: successful requests only */
    assert_int_equal(o.tpot_count[0], 1); /* one output token has no inter-token time */
    ww_latency_fini(&l);
}

static void test_empty_windows_emit_nothing_and_unknown_models_ignored(void **state)
{
    ww_latency_t l;
    s_out_t o = {0};
    assert_int_equal(ww_latency_init(&l, 1, W, 6, s_emit, &o), 0);
    ww_request_t r = s_req(5, WW_REQ_OK, T0 + 1, 10); /* model 5 of 1 */
    ww_latency_record(&l, &r);
    assert_int_equal(l.recorded, 0);
    assert_int_equal(ww_latency_close(&l, T0 + 5 * W, true), 0);
    ww_latency_fini(&l);
}

static void test_late_record_is_kept_and_counted(void **state)
{
    ww_latency_t l;
    s_out_t o = {0};
    assert_int_equal(ww_latency_init(&l, 1, W, 6, s_emit, &o), 0);
    ww_request_t r = s_req(0, WW_REQ_OK, T0 + 2 * W + 1, 10); /* window T0 + 2W */
    ww_latency_record(&l, &r);
    r = s_req(0, WW_REQ_OK, T0 + 1, 10); /* window T0: two windows behind the open one */
    ww_latency_record(&l, &r);
    r = s_req(0, WW_REQ_OK, T0 + 2 * W - 1, 10); /* one behind, as late */
    ww_latency_record(&l, &r);
    assert_int_equal(l.late, 2);
    assert_int_equal(o.n, 0);
    assert_int_equal(ww_latency_close(&l, T0 + 3 * W, false), 1);
    assert_int_equal(o.ok[0], 3); /* nothing lost */
    assert_true(o.start[0] == T0 + 2 * W);
    ww_latency_fini(&l);
}

/* A phase shifts the grid: with phase 3 s, windows are [T0-7s, T0+3s), [T0+3s, T0+13s), ...
 * and close at their own ends, not at multiples of the window. */
static void test_phase_shifts_the_window_grid(void **state)
{
    ww_latency_t l;
    s_out_t o = {0};
    assert_int_equal(ww_latency_init(&l, 1, W, 6, s_emit, &o), 0);
    ww_latency_set_phase(&l, 3 * WW_NS_PER_S + W); /* taken modulo the window */
    ww_request_t r = s_req(0, WW_REQ_OK, T0 + 2 * WW_NS_PER_S, 10);
    ww_latency_record(&l, &r);
    /* T0 + 2 s is inside [T0-7s, T0+3s); T0 + 3 s ends it, with no later record. */
    assert_int_equal(ww_latency_close(&l, T0 + 2 * WW_NS_PER_S, false), 0);
    assert_int_equal(ww_latency_close(&l, T0 + 3 * WW_NS_PER_S, false), 1);
    assert_true(o.start[0] == T0 - 7 * WW_NS_PER_S);
    assert_int_equal(o.ok[0], 1);
    r = s_req(0, WW_REQ_OK, T0 + 3 * WW_NS_PER_S, 10);
    ww_latency_record(&l, &r);
    r = s_req(0, WW_REQ_OK, T0 + 9 * WW_NS_PER_S, 10);
    ww_latency_record(&l, &r);
    /* T0 + W is a multiple of the window but not a window end here. */
    assert_int_equal(ww_latency_close(&l, T0 + W, false), 0);
    r = s_req(0, WW_REQ_OK, T0 + 12 * WW_NS_PER_S, 10);
    ww_latency_record(&l, &r);
    assert_int_equal(ww_latency_close(&l, T0 + 13 * WW_NS_PER_S, false), 1);
    assert_true(o.start[1] == T0 + 3 * WW_NS_PER_S);
    assert_int_equal(o.ok[1], 3);
    /* A record of the window after next: the open one leaves first, then it opens. */
    r = s_req(0, WW_REQ_OK, T0 + 14 * WW_NS_PER_S, 10);
    ww_latency_record(&l, &r);
    r = s_req(0, WW_REQ_OK, T0 + 40 * WW_NS_PER_S, 10);
    ww_latency_record(&l, &r);
    assert_int_equal(o.n, 3);
    assert_true(o.start[2] == T0 + 13 * WW_NS_PER_S);
    assert_int_equal(ww_latency_close(&l, T0 + 43 * WW_NS_PER_S, false), 1);
    assert_true(o.start[3] == T0 + 33 * WW_NS_PER_S);
    assert_int_equal(l.late, 0);
    ww_latency_fini(&l);
}

/* Issue 14 item 12: a window sent at a stop, and the window of a restarted agent that
 * started inside it, say the part they covered; both keep the grid start, so the
 * collector merges them into one row, and with the outage between them (the last tick of
 * the first run to the first tick of the second) they make up the window exactly. */
static void test_partial_windows_carry_their_covered_duration(void **state)
{
    (void)state;
    const int64_t s1 = T0 - 5 * WW_NS_PER_S;     /* run 1 started in the window before */
    const int64_t stop1 = T0 + 6 * WW_NS_PER_S;  /* its last tick */
    const int64_t start2 = T0 + 7 * WW_NS_PER_S; /* run 2's first tick */
    ww_latency_t l;
    s_out_t o = {0};
    assert_int_equal(ww_latency_init(&l, 2, W, 6, s_emit, &o), 0);
    ww_latency_set_cover(&l, s1);
    ww_request_t r = s_req(0, WW_REQ_OK, T0 + 3 * WW_NS_PER_S, 10);
    ww_latency_record(&l, &r);
    r = s_req(1, WW_REQ_ERROR, T0 + 4 * WW_NS_PER_S, 0);
    ww_latency_record(&l, &r);
    r = s_req(0, WW_REQ_OK, T0 + 5 * WW_NS_PER_S, 10);
    ww_latency_record(&l, &r);
    assert_int_equal(ww_latency_open_requests(&l), 3);
    assert_int_equal(ww_latency_close(&l, stop1, true), 2); /* the stop */
    assert_int_equal(ww_latency_open_requests(&l), 0);
    assert_int_equal(o.n, 2);
    for (int i = 0; i < 2; i++) {
        assert_true(o.start[i] == T0);
        assert_true(o.duration[i] == stop1 - T0); /* 6 s, not the window's 10 */
    }
    ww_latency_fini(&l);

    /* Run 2, restarted inside the same window: its first window is the rest of it. */
    s_out_t o2 = {0};
    assert_int_equal(ww_latency_init(&l, 2, W, 6, s_emit, &o2), 0);
    ww_latency_set_cover(&l, start2);
    r = s_req(0, WW_REQ_OK, T0 + 8 * WW_NS_PER_S, 10);
    ww_latency_record(&l, &r);
    assert_int_equal(ww_latency_open_requests(&l), 1);
    r = s_req(0, WW_REQ_OK, T0 + W + 1, 10); /* the next window closes it */
    ww_latency_record(&l, &r);
    assert_int_equal(ww_latency_open_requests(&l), 1);
    assert_int_equal(o2.n, 1);
    assert_true(o2.start[0] == T0);
    assert_true(o2.duration[0] == T0 + W - start2); /* 3 s */
    /* The parts and the outage between them make up the window. */
    assert_true(o.duration[0] + o2.duration[0] + (start2 - stop1) == W);
    /* Later windows are whole again. */
    assert_int_equal(ww_latency_close(&l, T0 + 2 * W, false), 1);
    assert_true(o2.start[1] == T0 + W && o2.duration[1] == W);
    assert_int_equal(l.recorded, 2);
    assert_int_equal(l.emitted, 2);
    ww_latency_fini(&l);
}

/* An aggregate (OTLP metrics) merges into the window that holds its end: counts added, the
 * window marked aggregated; a coarse one makes that window coarse, not the next; one that
 * would pass what a window may hold is refused whole. */
static void test_aggregates_merge_into_their_window_only(void **state)
{
    (void)state;
    ww_latency_t l;
    s_out_t o = {0};
    assert_int_equal(ww_latency_init(&l, 1, W, 6, s_emit, &o), 0);
    ww_hist_t coarse;
    ww_hist_init(&coarse, 2);
    for (int i = 0; i < 7; i++) {
        ww_hist_record(&coarse, 0.3);
    }
    ww_request_t r = s_req(0, WW_REQ_OK, T0 + WW_NS_PER_S, 10);
    ww_latency_record(&l, &r);
    ww_lat_agg_t a = {.model = 0, .at_ns = T0 + 2 * WW_NS_PER_S, .ttft = &coarse, .ok = 5};
    assert_int_equal(ww_latency_merge(&l, &a), 0);
    ww_lat_agg_t huge = {.model = 0, .at_ns = T0 + 3 * WW_NS_PER_S, .ok = UINT64_MAX / 2};
    assert_int_equal(ww_latency_merge(&l, &huge), -ERANGE);
    ww_lat_agg_t other = {.model = 1, .at_ns = T0 + 3 * WW_NS_PER_S, .ok = 1};
    assert_int_equal(ww_latency_merge(&l, &other), -EINVAL);
    /* The next window: a request only, at the agent's scale again. */
    r = s_req(0, WW_REQ_OK, T0 + W + WW_NS_PER_S, 10);
    ww_latency_record(&l, &r);
    ww_latency_close(&l, T0 + 3 * W, true);
    assert_int_equal(o.n, 2);
    assert_int_equal(o.ok[0], 6);
    assert_int_equal(o.ttft_count[0], 8);
    assert_int_equal(o.ttft_scale[0], 2);
    assert_true(o.aggregated[0]);
    assert_int_equal(o.ok[1], 1);
    assert_int_equal(o.ttft_scale[1], 6);
    assert_false(o.aggregated[1]);
    assert_int_equal(ww_latency_open_requests(&l), 0);
    ww_hist_fini(&coarse);
    ww_latency_fini(&l);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_partial_windows_carry_their_covered_duration),
    cmocka_unit_test(test_phase_shifts_the_window_grid),
    cmocka_unit_test(test_records_land_in_aligned_windows),
    cmocka_unit_test(test_status_routing),
    cmocka_unit_test(test_empty_windows_emit_nothing_and_unknown_models_ignored),
    cmocka_unit_test(test_late_record_is_kept_and_counted),
    cmocka_unit_test(test_aggregates_merge_into_their_window_only),
};
WW_TEST_MAIN(tests, NULL, NULL)
