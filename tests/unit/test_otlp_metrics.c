/* ww_otlp_metrics: OTLP/HTTP /v1/metrics bodies (ExportMetricsServiceRequest, protobuf) become
 * the windows' latency histograms, request counts and token sums: exponential points reduced
 * to the agent's scale exactly, cumulative streams turned into deltas (baselines, retries,
 * resets), the range's edges, and every refusal counted with its metric and reason. */
#include "ww_otlp_metrics.h"

#include "otlp/otlp_metrics.pb-c.h"
#include "ww_hist.h"
#include "ww_reading.h"
#include "ww_test.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

typedef Ww__Otlp__V1__ExponentialHistogramDataPoint s_exp_t;
typedef Ww__Otlp__V1__ExponentialHistogramDataPoint__Buckets s_buckets_t;
typedef Ww__Otlp__V1__HistogramDataPoint s_hdp_t;
typedef Ww__Otlp__V1__Metric s_metric_t;
typedef Ww__Otlp__V1__KeyValue s_kv_t;

#define T0 INT64_C(1764720000000000000)
#define SEC INT64_C(1000000000)

/* --- Building bodies: everything allocated here is freed by s_arena_free. --------------- */

static void *s_mem[4096];
static size_t s_nmem;

static void *s_new(size_t size)
{
    assert_true(s_nmem < sizeof s_mem / sizeof s_mem[0]);
    void *p = calloc(1, size);
    assert_non_null(p);
    s_mem[s_nmem++] = p;
    return p;
}

static void s_arena_free(void)
{
    while (s_nmem > 0) {
        free(s_mem[--s_nmem]);
    }
}

static ProtobufCBinaryData s_bin(const char *s)
{
    size_t n = strlen(s);
    char *p = s_new(n + 1);
    memcpy(p, s, n);
    return (ProtobufCBinaryData){.len = n, .data = (uint8_t *)p};
}

static s_kv_t *s_kv(const char *key, const char *value)
{
    s_kv_t *kv = s_new(sizeof *kv);
    *kv = (s_kv_t)WW__OTLP__V1__KEY_VALUE__INIT;
    kv->key = s_bin(key);
    Ww__Otlp__V1__AnyValue *v = s_new(sizeof *v);
    ww__otlp__v1__any_value__init(v);
    v->value_case = WW__OTLP__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v->string_value = s_bin(value);
    kv->value = v;
    return kv;
}

/* Up to 3 string attributes (NULL-terminated key/value pairs) into *list. */
static void s_attrs(s_kv_t ***list, size_t *n, const char *k1, const char *v1, const char *k2,
                    const char *v2)
{
    *list = s_new(3 * sizeof **list);
    *n = 0;
    if (k1) {
        (*list)[(*n)++] = s_kv(k1, v1);
    }
    if (k2) {
        (*list)[(*n)++] = s_kv(k2, v2);
    }
}

static s_buckets_t *s_buckets(int32_t offset, const uint64_t *counts, size_t n)
{
    s_buckets_t *b = s_new(sizeof *b);
    *b = (s_buckets_t)WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__BUCKETS__INIT;
    b->offset = offset;
    b->n_bucket_counts = n;
    b->bucket_counts = s_new((n ? n : 1) * sizeof *b->bucket_counts);
    if (n) {
        memcpy(b->bucket_counts, counts, n * sizeof *counts);
    }
    return b;
}

/* The data point of a recorded ww_hist (its scale, buckets, count, sum, min, max, zero
 * count), model attribute `model` (NULL: none), an optional second attribute. */
static s_exp_t *s_point(const ww_hist_t *h, int64_t start, int64_t time, const char *model,
                        const char *k2, const char *v2)
{
    s_exp_t *p = s_new(sizeof *p);
    *p = (s_exp_t)WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__INIT;
    s_attrs(&p->attributes, &p->n_attributes, model ? "gen_ai.response.model" : k2,
            model ? model : v2, model ? k2 : NULL, v2);
    p->start_time_unix_nano = (uint64_t)start;
    p->time_unix_nano = (uint64_t)time;
    p->count = h->count;
    p->scale = h->scale;
    p->zero_count = h->zero_count;
    assert_int_equal(h->underflow + h->overflow, 0);
    /* Trimmed to the non-empty buckets, as the SDKs send them (see
     * test_zero_buckets_at_the_edges_are_read for untrimmed ones). */
    uint32_t first = 0, end = h->len;
    while (first < end && h->counts[first] == 0) {
        first++;
    }
    while (end > first && h->counts[end - 1] == 0) {
        end--;
    }
    p->positive = s_buckets(h->offset + (int32_t)first, h->counts + first, end - first);
    p->sum_present_case = WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__SUM_PRESENT_SUM;
    p->sum = h->sum;
    if (h->count > 0 && isfinite(h->min)) {
        p->min_present_case = WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__MIN_PRESENT_MIN;
        p->min = h->min;
        p->max_present_case = WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__MAX_PRESENT_MAX;
        p->max = h->max;
    }
    return p;
}

static s_metric_t *s_exp_metric(const char *name, int temporality, s_exp_t **pts, size_t n)
{
    s_metric_t *m = s_new(sizeof *m);
    *m = (s_metric_t)WW__OTLP__V1__METRIC__INIT;
    m->name = s_bin(name);
    Ww__Otlp__V1__ExponentialHistogram *e = s_new(sizeof *e);
    *e = (Ww__Otlp__V1__ExponentialHistogram)WW__OTLP__V1__EXPONENTIAL_HISTOGRAM__INIT;
    e->aggregation_temporality = temporality;
    e->n_data_points = n;
    e->data_points = s_new((n ? n : 1) * sizeof *e->data_points);
    memcpy(e->data_points, pts, n * sizeof *pts);
    m->data_case = WW__OTLP__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM;
    m->exponential_histogram = e;
    return m;
}

static s_metric_t *s_hist_metric(const char *name, int temporality, s_hdp_t **pts, size_t n)
{
    s_metric_t *m = s_new(sizeof *m);
    *m = (s_metric_t)WW__OTLP__V1__METRIC__INIT;
    m->name = s_bin(name);
    Ww__Otlp__V1__Histogram *e = s_new(sizeof *e);
    *e = (Ww__Otlp__V1__Histogram)WW__OTLP__V1__HISTOGRAM__INIT;
    e->aggregation_temporality = temporality;
    e->n_data_points = n;
    e->data_points = s_new((n ? n : 1) * sizeof *e->data_points);
    memcpy(e->data_points, pts, n * sizeof *pts);
    m->data_case = WW__OTLP__V1__METRIC__DATA_HISTOGRAM;
    m->histogram = e;
    return m;
}

/* An explicit-bucket point: count values with this sum (buckets not read by the decoder). */
static s_hdp_t *s_hpoint(uint64_t count, double sum, int64_t start, int64_t time, const char *model,
                         const char *k2, const char *v2)
{
    s_hdp_t *p = s_new(sizeof *p);
    *p = (s_hdp_t)WW__OTLP__V1__HISTOGRAM_DATA_POINT__INIT;
    s_attrs(&p->attributes, &p->n_attributes, "gen_ai.response.model", model, k2, v2);
    p->start_time_unix_nano = (uint64_t)start;
    p->time_unix_nano = (uint64_t)time;
    p->count = count;
    p->sum_present_case = WW__OTLP__V1__HISTOGRAM_DATA_POINT__SUM_PRESENT_SUM;
    p->sum = sum;
    return p;
}

/* The body of one resource (with attribute service.name) and one scope holding metrics. */
static uint8_t *s_pack(s_metric_t **metrics, size_t n, size_t *len)
{
    Ww__Otlp__V1__ExportMetricsServiceRequest req =
        WW__OTLP__V1__EXPORT_METRICS_SERVICE_REQUEST__INIT;
    Ww__Otlp__V1__ResourceMetrics rm = WW__OTLP__V1__RESOURCE_METRICS__INIT;
    Ww__Otlp__V1__Resource res = WW__OTLP__V1__RESOURCE__INIT;
    Ww__Otlp__V1__ScopeMetrics sm = WW__OTLP__V1__SCOPE_METRICS__INIT;
    s_kv_t *rattr[] = {s_kv("service.name", "vllm")};
    res.n_attributes = 1;
    res.attributes = rattr;
    sm.n_metrics = n;
    sm.metrics = metrics;
    Ww__Otlp__V1__ScopeMetrics *sms[] = {&sm};
    rm.resource = &res;
    rm.n_scope_metrics = 1;
    rm.scope_metrics = sms;
    Ww__Otlp__V1__ResourceMetrics *rms[] = {&rm};
    req.n_resource_metrics = 1;
    req.resource_metrics = rms;
    *len = ww__otlp__v1__export_metrics_service_request__get_packed_size(&req);
    uint8_t *buf = malloc(*len ? *len : 1);
    assert_non_null(buf);
    assert_int_equal(ww__otlp__v1__export_metrics_service_request__pack(&req, buf), *len);
    return buf;
}

/* --- What the decoder hands over ----------------------------------------------------------- */

typedef struct {
    char model[WW_MODEL_NAME_MAX];
    ww_otlp_m_point_t p; /* p.hist: &h when there was one */
    ww_hist_t h;
} s_one_t;

typedef struct {
    size_t n;
    s_one_t v[8];
} s_got_t;

static void s_take(void *arg, const char *model, const ww_otlp_m_point_t *p)
{
    s_got_t *g = arg;
    assert_true(g->n < sizeof g->v / sizeof g->v[0]);
    s_one_t *o = &g->v[g->n++];
    snprintf(o->model, sizeof o->model, "%s", model);
    o->p = *p;
    if (p->hist) {
        assert_int_equal(ww_hist_check(p->hist), 0);
        ww_hist_init(&o->h, p->hist->scale);
        assert_int_equal(ww_hist_merge(&o->h, p->hist), 0);
        o->p.hist = &o->h;
    }
}

static void s_got_free(s_got_t *g)
{
    for (size_t i = 0; i < g->n; i++) {
        ww_hist_fini(&g->v[i].h);
    }
    memset(g, 0, sizeof *g);
}

/* Packs the metrics, frees what built them, decodes into *g (emptied first). */
static int s_decode(ww_otlp_metrics_t *d, s_metric_t **metrics, size_t n, size_t max_points,
                    s_got_t *g, ww_otlp_metrics_counts_t *c)
{
    size_t len;
    uint8_t *body = s_pack(metrics, n, &len);
    s_arena_free();
    s_got_free(g);
    int rc = ww_otlp_metrics_decode(d, body, len, max_points, s_take, g, c);
    free(body);
    return rc;
}

static int s_decode1(ww_otlp_metrics_t *d, s_metric_t *m, s_got_t *g, ww_otlp_metrics_counts_t *c)
{
    return s_decode(d, &m, 1, 100, g, c);
}

/* The count of bucket idx of h (0 outside its range). */
static uint64_t s_at(const ww_hist_t *h, int32_t idx)
{
    return idx >= h->offset && idx < h->offset + (int32_t)h->len ? h->counts[idx - h->offset] : 0;
}

/* Same scale, counters and buckets (sum, min, max not compared). */
static void s_same_counts(const ww_hist_t *a, const ww_hist_t *b)
{
    assert_int_equal(a->scale, b->scale);
    assert_int_equal(a->count, b->count);
    assert_int_equal(a->zero_count, b->zero_count);
    assert_int_equal(a->underflow, b->underflow);
    assert_int_equal(a->overflow, b->overflow);
    int32_t lo = a->offset < b->offset ? a->offset : b->offset;
    int32_t ha = a->offset + (int32_t)a->len, hb = b->offset + (int32_t)b->len;
    for (int32_t i = lo; i < (ha > hb ? ha : hb); i++) {
        if (s_at(a, i) != s_at(b, i)) {
            fail_msg("bucket %d: %llu, expected %llu", i, (unsigned long long)s_at(a, i),
                     (unsigned long long)s_at(b, i));
        }
    }
}

/* Values lo..hi milliseconds (times 1.37, so they fall inside buckets) into h. */
static void s_record_ms(ww_hist_t *h, int lo, int hi)
{
    for (int i = lo; i <= hi; i++) {
        assert_int_equal(ww_hist_record(h, i * 1.37e-3), 0);
    }
}

static ww_otlp_metrics_t *s_dec(int scale, int64_t since)
{
    ww_otlp_metrics_conf_t conf = WW_OTLP_METRICS_CONF_GENAI;
    conf.scale = scale;
    ww_otlp_metrics_t *d = ww_otlp_metrics_new(&conf, since);
    assert_non_null(d);
    return d;
}

static const char *TTFT = "gen_ai.server.time_to_first_token";
static const char *TPOT = "gen_ai.server.time_per_output_token";
static const char *E2E = "gen_ai.server.request.duration";
static const char *TOKENS = "gen_ai.client.token.usage";

/* --- Cases --------------------------------------------------------------------------------- */

static void test_delta_point_is_reduced_exactly_to_the_agents_scale(void **state)
{
    (void)state;
    ww_otlp_metrics_t *d = s_dec(6, T0);
    ww_hist_t h8, h6, t8;
    ww_hist_init(&h8, 8);
    ww_hist_init(&h6, 6);
    ww_hist_init(&t8, 8);
    uint64_t rng = 19;
    for (int i = 0; i < 2000; i++) {
        double v = exp(log(1e-4) + ww_test_rng_unit(&rng) * log(1e5)); /* 0.1 ms .. 10 s */
        ww_hist_record(&h8, v);
        ww_hist_record(&h6, v);
    }
    ww_hist_record(&h8, 0.0);
    ww_hist_record(&h6, 0.0);
    s_record_ms(&t8, 1, 50);

    s_exp_t *p = s_point(&h8, T0, T0 + 10 * SEC, "resp-model", "gen_ai.request.model", "req");
    s_exp_t *q = s_point(&t8, T0, T0 + 11 * SEC, NULL, "gen_ai.request.model", "req-only");
    s_metric_t *m[] = {s_exp_metric(TTFT, 1, &p, 1), s_exp_metric(TPOT, 1, &q, 1)};
    s_got_t g = {0};
    ww_otlp_metrics_counts_t c;
    assert_int_equal(s_decode(d, m, 2, 100, &g, &c), 0);
    assert_int_equal(c.points, 2);
    if (c.taken != 2) {
        fail_msg("taken %llu, why \"%s\"", (unsigned long long)c.taken, c.why);
    }
    assert_int_equal(c.refused, 0);
    assert_string_equal(c.why, "");
    assert_int_equal(g.n, 2);
    /* gen_ai.response.model before gen_ai.request.model. */
    assert_string_equal(g.v[0].model, "resp-model");
    assert_int_equal(g.v[0].p.kind, WW_OTLP_M_TTFT);
    assert_int_equal(g.v[0].p.time_ns, T0 + 10 * SEC);
    assert_int_equal(g.v[0].p.count, 2001);
    const ww_hist_t *got = g.v[0].p.hist;
    assert_non_null(got);
    s_same_counts(got, &h6);
    assert_true(got->sum == h6.sum);
    assert_true(got->min == h6.min);
    assert_true(got->max == h6.max);
    /* Only gen_ai.request.model: that one. A TPOT point at 8 into scale 6 too. */
    assert_string_equal(g.v[1].model, "req-only");
    assert_int_equal(g.v[1].p.kind, WW_OTLP_M_TPOT);
    assert_int_equal(g.v[1].p.hist->scale, 6);
    assert_int_equal(g.v[1].p.count, 50);
    /* Delta points start no stream. */
    assert_int_equal(ww_otlp_metrics_streams(d), 0);

    s_got_free(&g);
    ww_hist_fini(&h8);
    ww_hist_fini(&h6);
    ww_hist_fini(&t8);
    ww_otlp_metrics_destroy(&d);
    ww_otlp_metrics_destroy(&d);
    assert_null(d);
    ww_otlp_metrics_destroy(NULL);
}

static void test_cumulative_points_become_deltas(void **state)
{
    (void)state;
    ww_otlp_metrics_t *d = s_dec(6, T0);
    const int upto[] = {10, 25, 40};
    ww_hist_t cum, merged;
    ww_hist_init(&cum, 8);
    ww_hist_init(&merged, 6);
    s_got_t g = {0};
    ww_otlp_metrics_counts_t c;
    int from = 1;
    for (int k = 0; k < 3; k++) {
        s_record_ms(&cum, from, upto[k]);
        s_exp_t *p = s_point(&cum, T0 + SEC, T0 + (k + 2) * SEC, "m", NULL, NULL);
        assert_int_equal(s_decode1(d, s_exp_metric(TTFT, 2, &p, 1), &g, &c), 0);
        assert_int_equal(c.taken, 1);
        assert_int_equal(c.baseline + c.repeated + c.refused, 0);
        assert_int_equal(g.n, 1);
        const ww_hist_t *h = g.v[0].p.hist;
        assert_int_equal(g.v[0].p.count, (uint64_t)(upto[k] - from + 1));
        assert_int_equal(h->count, g.v[0].p.count);
        assert_int_equal(ww_hist_check(h), 0);
        /* min and max: bounds within the cumulative ones. */
        assert_true(h->min >= cum.min && h->max <= cum.max);
        assert_int_equal(g.v[0].p.time_ns, T0 + (k + 2) * SEC);
        assert_int_equal(ww_hist_merge(&merged, h), 0);
        from = upto[k] + 1;
    }
    ww_hist_t cum6;
    ww_hist_init(&cum6, 6);
    assert_int_equal(ww_hist_merge(&cum6, &cum), 0);
    s_same_counts(&merged, &cum6);
    assert_true(fabs(merged.sum - cum.sum) < 1e-9);
    assert_int_equal(ww_otlp_metrics_streams(d), 1);

    /* The third point again (a retry): nothing. */
    s_exp_t *p = s_point(&cum, T0 + SEC, T0 + 4 * SEC, "m", NULL, NULL);
    assert_int_equal(s_decode1(d, s_exp_metric(TTFT, 2, &p, 1), &g, &c), 0);
    assert_int_equal(c.points, 1);
    assert_int_equal(c.repeated, 1);
    assert_int_equal(c.taken, 0);
    assert_int_equal(g.n, 0);

    /* A stream older than the agent: its first point is only a baseline. */
    ww_hist_t old, diff;
    ww_hist_init(&old, 8);
    ww_hist_init(&diff, 6);
    s_record_ms(&old, 1, 10);
    p = s_point(&old, T0 - 100 * SEC, T0 + 2 * SEC, "old", NULL, NULL);
    assert_int_equal(s_decode1(d, s_exp_metric(TTFT, 2, &p, 1), &g, &c), 0);
    assert_int_equal(c.baseline, 1);
    assert_int_equal(c.taken, 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(ww_otlp_metrics_streams(d), 2);
    s_record_ms(&old, 11, 25);
    s_record_ms(&diff, 11, 25);
    p = s_point(&old, T0 - 100 * SEC, T0 + 3 * SEC, "old", NULL, NULL);
    assert_int_equal(s_decode1(d, s_exp_metric(TTFT, 2, &p, 1), &g, &c), 0);
    assert_int_equal(c.taken, 1);
    assert_int_equal(c.baseline, 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.v[0].model, "old");
    assert_int_equal(g.v[0].p.count, 15);
    s_same_counts(g.v[0].p.hist, &diff);
    assert_true(fabs(g.v[0].p.hist->sum - diff.sum) < 1e-9);

    s_got_free(&g);
    ww_hist_fini(&cum);
    ww_hist_fini(&cum6);
    ww_hist_fini(&merged);
    ww_hist_fini(&old);
    ww_hist_fini(&diff);
    ww_otlp_metrics_destroy(&d);
}

static void test_a_reset_is_taken_whole(void **state)
{
    (void)state;
    ww_otlp_metrics_t *d = s_dec(6, T0);
    s_got_t g = {0};
    ww_otlp_metrics_counts_t c;
    ww_hist_t a, b, b6;
    ww_hist_init(&a, 8);
    ww_hist_init(&b, 8);
    ww_hist_init(&b6, 6);
    s_record_ms(&a, 1, 20);
    s_exp_t *p = s_point(&a, T0 + SEC, T0 + 2 * SEC, "m", NULL, NULL);
    assert_int_equal(s_decode1(d, s_exp_metric(TPOT, 2, &p, 1), &g, &c), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.v[0].p.count, 20);
    /* Same start, fewer values: the server restarted its counts. */
    s_record_ms(&b, 30, 34);
    s_record_ms(&b6, 30, 34);
    p = s_point(&b, T0 + SEC, T0 + 3 * SEC, "m", NULL, NULL);
    assert_int_equal(s_decode1(d, s_exp_metric(TPOT, 2, &p, 1), &g, &c), 0);
    assert_int_equal(c.taken, 1);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.v[0].p.kind, WW_OTLP_M_TPOT);
    assert_int_equal(g.v[0].p.count, 5);
    s_same_counts(g.v[0].p.hist, &b6);
    assert_true(g.v[0].p.hist->min == b.min);
    assert_true(g.v[0].p.hist->max == b.max);
    /* A new start time with more values than before: whole as well. */
    s_record_ms(&b, 1, 20);
    s_record_ms(&b6, 1, 20);
    p = s_point(&b, T0 + 5 * SEC, T0 + 6 * SEC, "m", NULL, NULL);
    assert_int_equal(s_decode1(d, s_exp_metric(TPOT, 2, &p, 1), &g, &c), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.v[0].p.count, 25);
    s_same_counts(g.v[0].p.hist, &b6);
    assert_int_equal(ww_otlp_metrics_streams(d), 1);
    s_got_free(&g);
    ww_hist_fini(&a);
    ww_hist_fini(&b);
    ww_hist_fini(&b6);
    ww_otlp_metrics_destroy(&d);
}

static void test_request_duration_with_error_type_counts_errors(void **state)
{
    (void)state;
    ww_otlp_metrics_t *d = s_dec(6, T0);
    ww_hist_t e, ok;
    ww_hist_init(&e, 8);
    ww_hist_init(&ok, 8);
    s_record_ms(&e, 100, 106);
    s_record_ms(&ok, 200, 210);
    s_exp_t *pts[] = {s_point(&e, T0, T0 + SEC, "m", "error.type", "timeout"),
                      s_point(&ok, T0, T0 + SEC, "m", NULL, NULL)};
    s_got_t g = {0};
    ww_otlp_metrics_counts_t c;
    assert_int_equal(s_decode1(d, s_exp_metric(E2E, 1, pts, 2), &g, &c), 0);
    assert_int_equal(c.taken, 2);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.v[0].p.kind, WW_OTLP_M_ERRORS);
    assert_int_equal(g.v[0].p.count, 7);
    assert_null(g.v[0].p.hist);
    assert_int_equal(g.v[1].p.kind, WW_OTLP_M_E2E);
    assert_int_equal(g.v[1].p.count, 11);
    assert_non_null(g.v[1].p.hist);
    assert_int_equal(g.v[1].p.hist->count, 11);
    s_got_free(&g);
    ww_hist_fini(&e);
    ww_hist_fini(&ok);
    ww_otlp_metrics_destroy(&d);
}

static void test_token_usage_sums_by_type(void **state)
{
    (void)state;
    ww_otlp_metrics_t *d = s_dec(6, T0);
    s_got_t g = {0};
    ww_otlp_metrics_counts_t c;
    /* Delta: an explicit-bucket point (input) and an exponential one (output). */
    ww_hist_t h;
    ww_hist_init(&h, 8);
    assert_int_equal(ww_hist_record(&h, 20), 0);
    assert_int_equal(ww_hist_record(&h, 25), 0);
    s_hdp_t *hp = s_hpoint(3, 123, T0, T0 + SEC, "m", "gen_ai.token.type", "input");
    s_exp_t *ep = s_point(&h, T0, T0 + SEC, "m", "gen_ai.token.type", "output");
    s_metric_t *m[] = {s_hist_metric(TOKENS, 1, &hp, 1), s_exp_metric(TOKENS, 1, &ep, 1)};
    assert_int_equal(s_decode(d, m, 2, 100, &g, &c), 0);
    assert_int_equal(c.taken, 2);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.v[0].p.kind, WW_OTLP_M_TOKENS);
    assert_int_equal(g.v[0].p.prompt_tokens, 123);
    assert_int_equal(g.v[0].p.output_tokens, 0);
    assert_null(g.v[0].p.hist);
    assert_int_equal(g.v[1].p.kind, WW_OTLP_M_TOKENS);
    assert_int_equal(g.v[1].p.prompt_tokens, 0);
    assert_int_equal(g.v[1].p.output_tokens, 45);
    assert_int_equal(g.v[1].p.time_ns, T0 + SEC);
    /* Cumulative: the first point whole (the stream began after the agent), then differences. */
    const double sums[] = {100, 250, 250, 1000};
    const uint64_t want[] = {100, 150, 0, 750};
    for (int k = 0; k < 4; k++) {
        hp = s_hpoint(3, sums[k], T0 + SEC, T0 + (k + 2) * SEC, "m", "gen_ai.token.type", "output");
        assert_int_equal(s_decode1(d, s_hist_metric(TOKENS, 2, &hp, 1), &g, &c), 0);
        assert_int_equal(g.n, want[k] ? 1 : 0);
        assert_int_equal(c.repeated, want[k] ? 0 : 1);
        if (want[k]) {
            assert_int_equal(g.v[0].p.output_tokens, want[k]);
            assert_int_equal(g.v[0].p.prompt_tokens, 0);
        }
    }
    s_got_free(&g);
    ww_hist_fini(&h);
    ww_otlp_metrics_destroy(&d);
}

static void s_refused(ww_otlp_metrics_t *d, s_metric_t *m, const char *name, const char *why)
{
    s_got_t g = {0};
    ww_otlp_metrics_counts_t c;
    assert_int_equal(s_decode1(d, m, &g, &c), 0);
    if (c.refused != 1 || c.taken != 0 || g.n != 0 || !strstr(c.why, name) || !strstr(c.why, why)) {
        fail_msg("%s: refused %llu taken %llu why \"%s\", expected \"%s\"", name,
                 (unsigned long long)c.refused, (unsigned long long)c.taken, c.why, why);
    }
    assert_int_equal(c.points, 1);
    s_got_free(&g);
}

static void test_refusals_are_counted_with_their_reason(void **state)
{
    (void)state;
    ww_otlp_metrics_t *d = s_dec(6, T0);
    ww_hist_t h;
    ww_hist_init(&h, 8);
    s_record_ms(&h, 1, 30);
    s_exp_t *p = s_point(&h, T0, T0 + SEC, NULL, "service.name", "x");
    s_refused(d, s_exp_metric(TTFT, 1, &p, 1), TTFT, "without gen_ai.response.model");
    p = s_point(&h, T0, T0 + SEC, "m", NULL, NULL);
    s_refused(d, s_exp_metric(TTFT, 0, &p, 1), TTFT, "temporality unspecified");
    p = s_point(&h, T0, T0 + SEC, "m", NULL, NULL);
    p->sum_present_case = WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__SUM_PRESENT__NOT_SET;
    s_refused(d, s_exp_metric(TPOT, 1, &p, 1), TPOT, "without a finite sum");
    p = s_point(&h, T0, T0 + SEC, "m", NULL, NULL);
    p->scale = -1;
    s_refused(d, s_exp_metric(TTFT, 1, &p, 1), TTFT, "scale outside 0..20");
    p = s_point(&h, T0, T0 + SEC, "m", NULL, NULL);
    p->scale = 21;
    s_refused(d, s_exp_metric(E2E, 1, &p, 1), E2E, "scale outside 0..20");
    p = s_point(&h, T0, T0 + SEC, "m", NULL, NULL);
    p->count++;
    s_refused(d, s_exp_metric(TTFT, 1, &p, 1), TTFT, "count is not the sum");
    p = s_point(&h, T0, T0 + SEC, "m", NULL, NULL);
    p->count--;
    s_refused(d, s_exp_metric(TTFT, 2, &p, 1), TTFT, "count is not the sum");
    s_hdp_t *hp = s_hpoint(30, 0.5, T0, T0 + SEC, "m", NULL, NULL);
    s_refused(d, s_hist_metric(TTFT, 1, &hp, 1), TTFT, "explicit-bucket");
    hp = s_hpoint(3, 2.5, T0, T0 + SEC, "m", "gen_ai.token.type", "input");
    s_refused(d, s_hist_metric(TOKENS, 1, &hp, 1), TOKENS, "whole number");
    hp = s_hpoint(3, 30, T0, T0 + SEC, "m", "gen_ai.token.type", "total");
    s_refused(d, s_hist_metric(TOKENS, 1, &hp, 1), TOKENS, "not input or output");
    /* A refused cumulative point starts no stream... */
    assert_int_equal(ww_otlp_metrics_streams(d), 0);

    /* Other metrics: counted, not refused. */
    s_exp_t *pts[] = {s_point(&h, T0, T0 + SEC, "m", NULL, NULL),
                      s_point(&h, T0, T0 + SEC, "m", NULL, NULL)};
    s_got_t g = {0};
    ww_otlp_metrics_counts_t c;
    assert_int_equal(s_decode1(d, s_exp_metric("http.server.duration", 1, pts, 2), &g, &c), 0);
    assert_int_equal(c.points, 2);
    assert_int_equal(c.other, 2);
    assert_int_equal(c.refused, 0);
    assert_int_equal(c.taken, 0);
    assert_string_equal(c.why, "");
    assert_int_equal(g.n, 0);
    ww_hist_fini(&h);
    ww_otlp_metrics_destroy(&d);
}

static void test_values_outside_the_range_and_negative_ones(void **state)
{
    (void)state;
    ww_otlp_metrics_t *d = s_dec(6, T0);
    /* At scale 8 the indexes in range are [-20 * 256, 12 * 256 - 1] = [-5120, 3071]. */
    ww_hist_t none;
    ww_hist_init(&none, 8);
    /* -5121 below 2^-20 s, -5120 the first in range (scale 6: -1280); negative buckets and
     * the zero bucket to zero_count. */
    s_exp_t *p = s_point(&none, T0, T0 + SEC, "m", NULL, NULL);
    const uint64_t low[] = {2, 4}, neg[] = {1, 2};
    p->positive = s_buckets(-5121, low, 2);
    p->negative = s_buckets(5, neg, 2);
    p->zero_count = 1;
    p->count = 2 + 4 + 3 + 1;
    p->sum = 6 * WW_HIST_MIN - 3.0;
    p->min_present_case = WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__MIN_PRESENT_MIN;
    p->min = -1.5;
    p->max_present_case = WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__MAX_PRESENT_MAX;
    p->max = WW_HIST_MIN * 1.002;
    /* 3071 the last in range (scale 6: 767), 3072 above 4096 s; no min/max given. */
    s_exp_t *q = s_point(&none, T0, T0 + SEC, "m", NULL, NULL);
    const uint64_t high[] = {1, 3};
    q->positive = s_buckets(3071, high, 2);
    q->count = 4;
    q->sum = 4 * 4096.0;
    /* Far outside: -6000 and 4000. */
    s_exp_t *r = s_point(&none, T0, T0 + SEC, "m", NULL, NULL);
    const uint64_t two[] = {2}, three[] = {3};
    r->positive = s_buckets(-6000, two, 1);
    r->count = 2;
    r->sum = 1e-9;
    s_exp_t *t = s_point(&none, T0, T0 + SEC, "m", NULL, NULL);
    t->positive = s_buckets(4000, three, 1);
    t->count = 3;
    t->sum = 3 * 5000.0;
    s_exp_t *pts[] = {p, q, r, t};
    s_got_t g = {0};
    ww_otlp_metrics_counts_t c;
    assert_int_equal(s_decode1(d, s_exp_metric(TTFT, 1, pts, 4), &g, &c), 0);
    if (c.refused) {
        fail_msg("refused: %s", c.why);
    }
    assert_int_equal(g.n, 4);
    const ww_hist_t *h = g.v[0].p.hist;
    assert_int_equal(h->scale, 6);
    assert_int_equal(h->count, 10);
    assert_int_equal(h->underflow, 2);
    assert_int_equal(h->overflow, 0);
    assert_int_equal(h->zero_count, 4);
    assert_int_equal(ww_hist_nonempty(h), 1);
    assert_int_equal(s_at(h, -1280), 4);
    assert_true(h->min == -1.5 && h->max == WW_HIST_MIN * 1.002);
    h = g.v[1].p.hist;
    assert_int_equal(h->count, 4);
    assert_int_equal(h->underflow + h->zero_count, 0);
    assert_int_equal(h->overflow, 3);
    assert_int_equal(ww_hist_nonempty(h), 1);
    assert_int_equal(s_at(h, 767), 1);
    h = g.v[2].p.hist;
    assert_int_equal(h->count, 2);
    assert_int_equal(h->underflow, 2);
    assert_int_equal(ww_hist_nonempty(h) + h->overflow + h->zero_count, 0);
    h = g.v[3].p.hist;
    assert_int_equal(h->count, 3);
    assert_int_equal(h->overflow, 3);
    assert_int_equal(ww_hist_nonempty(h) + h->underflow + h->zero_count, 0);
    s_got_free(&g);
    ww_hist_fini(&none);
    ww_otlp_metrics_destroy(&d);
}

/* Empty buckets at the edges of the positive array (the spec allows them; ww_hist's own
 * dense array has them as slack) are read as zeros. */
static void test_zero_buckets_at_the_edges_are_read(void **state)
{
    (void)state;
    ww_otlp_metrics_t *d = s_dec(6, T0);
    /* Scale 8 buckets 0..1023 (1 s .. 16 s), only 500 and 501 non-empty. */
    static uint64_t counts[1024];
    counts[500] = 2;
    counts[501] = 3;
    ww_hist_t none;
    ww_hist_init(&none, 8);
    s_exp_t *p = s_point(&none, T0, T0 + SEC, "m", NULL, NULL);
    p->positive = s_buckets(0, counts, 1024);
    p->count = 5;
    p->sum = 5 * 3.9;
    s_got_t g = {0};
    ww_otlp_metrics_counts_t c;
    assert_int_equal(s_decode1(d, s_exp_metric(TTFT, 1, &p, 1), &g, &c), 0);
    /* s_from_exp once indexed its array for every bucket, empty ones too, though it had
     * reserved only the non-empty ones' span: a read and write past the array, and the point
     * refused with "counts past 2^40" when the memory there held a large value. */
    if (c.refused || c.taken != 1) {
        fail_msg("refused %llu taken %llu why \"%s\"", (unsigned long long)c.refused,
                 (unsigned long long)c.taken, c.why);
    }
    assert_int_equal(g.n, 1);
    assert_int_equal(s_at(g.v[0].p.hist, 125), 5);
    assert_int_equal(ww_hist_nonempty(g.v[0].p.hist), 1);
    s_got_free(&g);
    ww_hist_fini(&none);
    ww_otlp_metrics_destroy(&d);
}

static void test_too_many_points_change_nothing(void **state)
{
    (void)state;
    ww_otlp_metrics_t *d = s_dec(6, T0);
    s_got_t g = {0};
    ww_otlp_metrics_counts_t c;
    ww_hist_t a;
    ww_hist_init(&a, 8);
    s_record_ms(&a, 1, 10);
    s_exp_t *p = s_point(&a, T0 + SEC, T0 + 2 * SEC, "a", NULL, NULL);
    assert_int_equal(s_decode1(d, s_exp_metric(TTFT, 2, &p, 1), &g, &c), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(ww_otlp_metrics_streams(d), 1);
    s_record_ms(&a, 11, 16);
    static const char *models[] = {"a", "b", "c", "d", "e"};
    for (int round = 0; round < 2; round++) {
        s_exp_t *pts[5];
        for (int k = 0; k < 5; k++) {
            pts[k] = s_point(&a, T0 + SEC, T0 + 3 * SEC, models[k], NULL, NULL);
        }
        s_metric_t *m = s_exp_metric(TTFT, 2, pts, 5);
        int rc = s_decode(d, &m, 1, round == 0 ? 4 : 5, &g, &c);
        if (round == 0) {
            assert_int_equal(rc, -ENOSPC);
            assert_int_equal(g.n, 0);
            assert_int_equal(ww_otlp_metrics_streams(d), 1);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(c.taken, 5);
            assert_int_equal(g.n, 5);
            assert_string_equal(g.v[0].model, "a");
            assert_int_equal(g.v[0].p.count, 6); /* the delta of a's stream */
            for (int k = 1; k < 5; k++) {
                assert_string_equal(g.v[k].model, models[k]);
                assert_int_equal(g.v[k].p.count, 16); /* the first of its stream: whole */
            }
            assert_int_equal(ww_otlp_metrics_streams(d), 5);
        }
    }
    s_got_free(&g);
    ww_hist_fini(&a);
    ww_otlp_metrics_destroy(&d);
}

static void test_garbage_is_not_an_export(void **state)
{
    (void)state;
    ww_otlp_metrics_t *d = s_dec(6, T0);
    s_got_t g = {0};
    ww_otlp_metrics_counts_t c;
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t cut[] = {0x0a, 0x20, 0x0a, 0x02}; /* a length past the end */
    assert_int_equal(ww_otlp_metrics_decode(d, junk, sizeof junk, 100, s_take, &g, &c), -EBADMSG);
    assert_int_equal(ww_otlp_metrics_decode(d, cut, sizeof cut, 100, s_take, &g, &c), -EBADMSG);
    assert_int_equal(g.n, 0);
    /* The empty body is an empty export. */
    assert_int_equal(ww_otlp_metrics_decode(d, junk, 0, 100, s_take, &g, &c), 0);
    assert_int_equal(c.points, 0);
    ww_otlp_metrics_destroy(&d);
}

/* Two exporters with one identity (no service.instance.id) and their own start times: a
 * point that began before the stream's latest start is refused, not taken as yet another
 * restart (each would count its whole history again). */
static void test_two_exporters_with_one_identity_are_not_counted_over(void **state)
{
    (void)state;
    ww_otlp_metrics_t *d = s_dec(6, T0 - 10 * SEC);
    ww_hist_t x1, y1, x2, y2;
    ww_hist_init(&x1, 6);
    ww_hist_init(&y1, 6);
    s_record_ms(&x1, 1, 10);
    s_record_ms(&y1, 1, 5);
    ww_hist_init(&x2, 6);
    ww_hist_init(&y2, 6);
    s_record_ms(&x2, 1, 11);
    s_record_ms(&y2, 1, 6);
    const struct {
        ww_hist_t *h;
        int64_t start, time;
        uint64_t taken, refused;
    } seq[] = {
        {&x1, T0, T0 + 10 * SEC, 10, 0},          /* X: the stream's first point, whole */
        {&y1, T0 + 5 * SEC, T0 + 11 * SEC, 5, 0}, /* Y: a later start, a restart: whole */
        {&x2, T0, T0 + 20 * SEC, 0, 1},           /* X again: began before Y: refused */
        {&y2, T0 + 5 * SEC, T0 + 21 * SEC, 1, 0}, /* Y: its difference */
    };
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
        s_exp_t *p = s_point(seq[i].h, seq[i].start, seq[i].time, "m", NULL, NULL);
        s_got_t g = {0};
        ww_otlp_metrics_counts_t c;
        assert_int_equal(s_decode1(d, s_exp_metric(TTFT, 2, &p, 1), &g, &c), 0);
        assert_int_equal(c.refused, seq[i].refused);
        assert_int_equal(g.n, seq[i].taken ? 1 : 0);
        if (seq[i].taken) {
            assert_int_equal(g.v[0].p.count, seq[i].taken);
        } else {
            assert_non_null(strstr(c.why, "two exporters with one identity"));
        }
        s_got_free(&g);
    }
    ww_hist_fini(&x1);
    ww_hist_fini(&y1);
    ww_hist_fini(&x2);
    ww_hist_fini(&y2);
    ww_otlp_metrics_destroy(&d);
}

/* A latency metric in another unit is refused (it would be read as seconds). */
static void test_a_latency_in_another_unit_is_refused(void **state)
{
    (void)state;
    ww_otlp_metrics_t *d = s_dec(6, T0);
    ww_hist_t h;
    ww_hist_init(&h, 6);
    s_record_ms(&h, 1, 3);
    const char *units[] = {"ms", "s", ""};
    for (int i = 0; i < 3; i++) {
        s_exp_t *p = s_point(&h, T0, T0 + SEC, "m", NULL, NULL);
        s_metric_t *m = s_exp_metric(TTFT, 1, &p, 1);
        m->unit = s_bin(units[i]);
        s_got_t g = {0};
        ww_otlp_metrics_counts_t c;
        assert_int_equal(s_decode1(d, m, &g, &c), 0);
        assert_int_equal(c.refused, i == 0 ? 1 : 0);
        assert_int_equal(g.n, i == 0 ? 0 : 1);
        if (i == 0) {
            assert_non_null(strstr(c.why, "unit is not s"));
        }
        s_got_free(&g);
    }
    ww_hist_fini(&h);
    ww_otlp_metrics_destroy(&d);
}

/* A cumulative stream that once recorded a zero (its min 0), then only a value below the
 * range (underflow): the difference is taken, its min positive. */
static void test_an_underflow_after_a_zero_is_taken(void **state)
{
    (void)state;
    ww_otlp_metrics_t *d = s_dec(8, T0);
    /* Scale 8: index -6000 is ~9e-8 s (below 2^-20 s), -851 holds 0.1 s. */
    enum { LO = -6000, HI = -851, N = HI - LO + 1 };
    uint64_t *counts = calloc(N, sizeof *counts);
    assert_non_null(counts);
    for (int k = 0; k < 2; k++) {
        counts[N - 1] = 1;
        counts[0] = k; /* the second point adds the underflow value */
        s_exp_t *p = s_new(sizeof *p);
        *p = (s_exp_t)WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__INIT;
        s_attrs(&p->attributes, &p->n_attributes, "gen_ai.response.model", "m", NULL, NULL);
        p->start_time_unix_nano = (uint64_t)T0;
        p->time_unix_nano = (uint64_t)(T0 + (k + 1) * SEC);
        p->scale = 8;
        p->zero_count = 1;
        p->count = 2 + (uint64_t)k;
        p->positive = k ? s_buckets(LO, counts, N) : s_buckets(HI, counts + N - 1, 1);
        p->sum_present_case = WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__SUM_PRESENT_SUM;
        p->sum = 0.1 + k * 9e-8;
        p->min_present_case = WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__MIN_PRESENT_MIN;
        p->min = 0;
        p->max_present_case = WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__MAX_PRESENT_MAX;
        p->max = 0.1;
        s_got_t g = {0};
        ww_otlp_metrics_counts_t c;
        assert_int_equal(s_decode1(d, s_exp_metric(TTFT, 2, &p, 1), &g, &c), 0);
        if (c.refused) {
            fail_msg("point %d refused: %s", k, c.why);
        }
        assert_int_equal(g.n, 1);
        if (k == 1) {
            assert_int_equal(g.v[0].p.count, 1);
            assert_int_equal(g.v[0].h.underflow, 1);
            assert_true(g.v[0].h.min > 0 && g.v[0].h.min <= WW_HIST_MIN);
        }
        s_got_free(&g);
    }
    free(counts);
    ww_otlp_metrics_destroy(&d);
}

/* When the table of cumulative streams is full, those idle for an hour are forgotten to
 * make room; a new stream is refused only while every stream is recent. */
static void test_idle_streams_make_room(void **state)
{
    (void)state;
    ww_otlp_metrics_conf_t conf = WW_OTLP_METRICS_CONF_GENAI;
    conf.max_streams = 2;
    ww_otlp_metrics_t *d = ww_otlp_metrics_new(&conf, T0);
    assert_non_null(d);
    ww_hist_t h;
    ww_hist_init(&h, 6);
    s_record_ms(&h, 1, 3);
    const struct {
        const char *model;
        int64_t time;
        size_t taken, streams;
    } seq[] = {
        {"a", T0 + SEC, 1, 1},
        {"b", T0 + 2 * SEC, 1, 2},
        {"c", T0 + 600 * SEC, 0, 2},  /* full, none idle: refused */
        {"c", T0 + 7200 * SEC, 1, 1}, /* a and b idle for over an hour: forgotten */
    };
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
        s_exp_t *p = s_point(&h, T0, seq[i].time, seq[i].model, NULL, NULL);
        s_got_t g = {0};
        ww_otlp_metrics_counts_t c;
        assert_int_equal(s_decode1(d, s_exp_metric(TTFT, 2, &p, 1), &g, &c), 0);
        assert_int_equal(g.n, seq[i].taken);
        assert_int_equal(ww_otlp_metrics_streams(d), seq[i].streams);
        if (!seq[i].taken) {
            assert_non_null(strstr(c.why, "more cumulative streams"));
        }
        s_got_free(&g);
    }
    ww_hist_fini(&h);
    ww_otlp_metrics_destroy(&d);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_delta_point_is_reduced_exactly_to_the_agents_scale),
    cmocka_unit_test(test_cumulative_points_become_deltas),
    cmocka_unit_test(test_a_reset_is_taken_whole),
    cmocka_unit_test(test_request_duration_with_error_type_counts_errors),
    cmocka_unit_test(test_token_usage_sums_by_type),
    cmocka_unit_test(test_refusals_are_counted_with_their_reason),
    cmocka_unit_test(test_values_outside_the_range_and_negative_ones),
    cmocka_unit_test(test_zero_buckets_at_the_edges_are_read),
    cmocka_unit_test(test_too_many_points_change_nothing),
    cmocka_unit_test(test_garbage_is_not_an_export),
    cmocka_unit_test(test_two_exporters_with_one_identity_are_not_counted_over),
    cmocka_unit_test(test_a_latency_in_another_unit_is_refused),
    cmocka_unit_test(test_an_underflow_after_a_zero_is_taken),
    cmocka_unit_test(test_idle_streams_make_room),
};
WW_TEST_MAIN(tests, NULL, NULL)
