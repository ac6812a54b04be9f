/* Unit tests of ww_late, the late buckets of a write (storage tiers, ww_late.h): which
 * samples and windows are late against the watermark, the UTC minute and hour they fall
 * in (also before 1970, where C division truncates toward zero), repeats kept once, and
 * the three array literals WW_LATE_SQL receives. Without PostgreSQL: test_tiers checks the
 * rows these buckets make the tier builder rebuild. */
#include "ww_test.h"

#include "ww_late.h"

#include <stdint.h>
#include <string.h>

#define NS INT64_C(1000000000)

typedef struct {
    ww_node_sample_t s[4];
    ww_node_sample_t *sp[4];
    Waferwatch__V1__LatencyWindow w[2];
    Waferwatch__V1__LatencyWindow *wp[2];
    ww_batch_t b;
} s_batch_t;

static void s_batch(s_batch_t *x, const char *node, const int64_t *times, size_t n,
                    const int64_t *starts, size_t nw)
{
    memset(x, 0, sizeof *x);
    waferwatch__v1__batch__init(&x->b);
    for (size_t i = 0; i < n; i++) {
        waferwatch__v1__node_sample__init(&x->s[i]);
        x->s[i].node_id = (char *)node;
        x->s[i].time_ns = times[i];
        x->sp[i] = &x->s[i];
    }
    for (size_t i = 0; i < nw; i++) {
        waferwatch__v1__latency_window__init(&x->w[i]);
        x->w[i].node_id = (char *)node;
        x->w[i].start_ns = starts[i];
        x->wp[i] = &x->w[i];
    }
    x->b.n_samples = n;
    x->b.samples = x->sp;
    x->b.n_latency_windows = nw;
    x->b.latency_windows = x->wp;
}

static void s_expect(ww_late_t *l, size_t n, const char *tiers, const char *nodes, const char *secs)
{
    assert_int_equal(l->n, n);
    const char *p[3];
    assert_non_null(ww_late_params(l, p));
    assert_string_equal(p[0], tiers);
    assert_string_equal(p[1], nodes);
    assert_string_equal(p[2], secs);
}

static void test_on_time_data_records_nothing(void **state)
{
    ww_late_t l = {0};
    int64_t w = INT64_C(1800000000) * NS; /* 2027-01-15T08:00:00Z, on a minute and hour */
    ww_late_begin(&l, w);
    s_batch_t x;
    const int64_t t[] = {w, w + 1};
    /* A window in the hour before the watermark's: the watermark is on the hour, so that
     * hour is closed; but a window starting at the watermark itself is not late. */
    const int64_t st[] = {w};
    s_batch(&x, "n1", t, 2, st, 1);
    ww_late_batch(&l, &x.b);
    s_expect(&l, 0, "{}", "{}", "{}");
    ww_late_fini(&l);
    ww_late_fini(&l); /* safe twice */
}

static void test_late_samples_by_minute_repeats_once(void **state)
{
    ww_late_t l = {0};
    int64_t w = INT64_C(1800000000) * NS;
    ww_late_begin(&l, w);
    s_batch_t x;
    /* Two samples in each of the two minutes before the watermark: two buckets. */
    const int64_t t[] = {w - 61 * NS, w - 60 * NS - 1, w - 59 * NS, w - 1};
    s_batch(&x, "node \"q\"", t, 4, NULL, 0);
    ww_late_batch(&l, &x.b);
    s_expect(&l, 2, "{\"s\",\"s\"}", "{\"node \\\"q\\\"\",\"node \\\"q\\\"\"}",
             "{1799999880,1799999940}");
    ww_late_fini(&l);
}

static void test_windows_late_only_in_closed_hours(void **state)
{
    ww_late_t l = {0};
    /* Watermark 08:30: the hour 08:00 is still open, 07:00 is closed. */
    int64_t hour = INT64_C(1800000000) * NS;
    int64_t w = hour + 1800 * NS;
    ww_late_begin(&l, w);
    s_batch_t x;
    const int64_t st[] = {hour + 10 * NS, hour - 10 * NS};
    s_batch(&x, "n2", NULL, 0, st, 2);
    ww_late_batch(&l, &x.b);
    s_expect(&l, 1, "{\"l\"}", "{\"n2\"}", "{1799996400}");
    ww_late_fini(&l);
}

static void test_buckets_before_1970_floor(void **state)
{
    ww_late_t l = {0};
    ww_late_begin(&l, 0);
    s_batch_t x;
    const int64_t t[] = {-1};   /* 1969-12-31T23:59:59.999999999Z */
    const int64_t st[] = {-NS}; /* 23:59:59 */
    s_batch(&x, "n3", t, 1, st, 1);
    ww_late_batch(&l, &x.b);
    s_expect(&l, 2, "{\"s\",\"l\"}", "{\"n3\",\"n3\"}", "{-60,-3600}");
    /* Begin again: empty, memory reused. */
    ww_late_begin(&l, 0);
    s_expect(&l, 0, "{}", "{}", "{}");
    ww_late_fini(&l);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_on_time_data_records_nothing),
    cmocka_unit_test(test_late_samples_by_minute_repeats_once),
    cmocka_unit_test(test_windows_late_only_in_closed_hours),
    cmocka_unit_test(test_buckets_before_1970_floor),
};
WW_TEST_MAIN(tests, NULL, NULL)
