/* test_sim: the simulated wafer-scale driver (agent/sources/ww_sim.c). */
#include "ww_test.h"

#include "ww_sim.h"
#include "ww_sim_defaults.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* 2024-08-01 15:00:00 UTC: the diurnal peak (the tests switch the swing off anyway). */
static const int64_t s_t0 = (1722470400LL + 15 * 3600LL) * 1000000000LL;
static const int64_t s_sec = 1000000000LL;

/* A conf with the default numbers and models, no diurnal swing and no bursts, so that a
 * test controls the load. */
typedef struct {
    ww_sim_conf_t c;
    ww_sim_model_t m[WW_SIM_MAX_MODELS];
} fixture_t;

static void s_fixture_init(fixture_t *f)
{
    memset(f, 0, sizeof(*f));
    ww_sim_conf_set_defaults(&f->c);
    size_t n = ww_sim_default_models(f->m, WW_SIM_MAX_MODELS);
    assert_int_equal(n, 3);
    f->c.models = f->m;
    f->c.n_models = n;
    f->c.diurnal_amplitude = 0.0;
    f->c.burst_prob_per_s = 0.0;
}

static void s_fixture_fini(fixture_t *f)
{
    for (size_t i = 0; i < WW_SIM_MAX_MODELS; i++) {
        free(f->m[i].name);
        f->m[i].name = NULL;
    }
}

/* Everything one instance produced: a reading per sample, every request record. */
typedef struct {
    ww_reading_t *r;
    size_t n_r;
    ww_request_t *q;
    size_t n_q, cap_q;
    uint64_t completed; /* sum of requests_completed over the readings */
} trace_t;

static void s_drain(void *st, trace_t *t)
{
    for (;;) {
        if (t->cap_q - t->n_q < 64) {
            t->cap_q = t->cap_q ? t->cap_q * 2 : 1024;
            t->q = realloc(t->q, t->cap_q * sizeof(*t->q));
            assert_non_null(t->q);
        }
        int n = ww_sim_source.poll_requests(st, t->q + t->n_q, 64);
        assert_true(n >= 0 && n <= 64);
        t->n_q += (size_t)n;
        if (n < 64) {
            break;
        }
    }
}

/* Runs node `node` of conf c for `steps` samples `step_ns` apart, starting at s_t0 (the
 * first sample is at s_t0 itself). */
static void s_run(const ww_sim_conf_t *c, unsigned node, size_t steps, int64_t step_ns, trace_t *t)
{
    memset(t, 0, sizeof(*t));
    void *st = NULL;
    assert_int_equal(ww_sim_source.open(c, node, s_t0, &st), 0);
    assert_non_null(st);
    t->r = calloc(steps, sizeof(*t->r));
    assert_non_null(t->r);
    for (size_t i = 0; i < steps; i++) {
        assert_int_equal(ww_sim_source.sample(st, s_t0 + (int64_t)i * step_ns, &t->r[i]), 0);
        t->completed += t->r[i].requests_completed;
        s_drain(st, t);
    }
    t->n_r = steps;
    ww_sim_source.close(&st);
    assert_null(st);
}

static void s_trace_free(trace_t *t)
{
    free(t->r);
    free(t->q);
    memset(t, 0, sizeof(*t));
}

static bool s_reading_eq(const ww_reading_t *a, const ww_reading_t *b)
{
    return a->power_w == b->power_w && a->inlet_c == b->inlet_c && a->outlet_c == b->outlet_c &&
           a->flow_lpm == b->flow_lpm && a->wafer_hotspot_c == b->wafer_hotspot_c &&
           a->utilization == b->utilization && a->tokens_per_s == b->tokens_per_s &&
           a->requests_queued == b->requests_queued &&
           a->requests_in_flight == b->requests_in_flight &&
           a->requests_completed == b->requests_completed && a->throttled == b->throttled &&
           a->throttle_factor == b->throttle_factor && a->humidity_pct == b->humidity_pct;
}

static bool s_request_eq(const ww_request_t *a, const ww_request_t *b)
{
    return a->model == b->model && a->status == b->status && a->arrival_ns == b->arrival_ns &&
           a->start_ns == b->start_ns && a->first_token_ns == b->first_token_ns &&
           a->done_ns == b->done_ns && a->prompt_tokens == b->prompt_tokens &&
           a->output_tokens == b->output_tokens;
}

static bool s_traces_equal(const trace_t *a, const trace_t *b)
{
    if (a->n_r != b->n_r || a->n_q != b->n_q) {
        return false;
    }
    for (size_t i = 0; i < a->n_r; i++) {
        if (!s_reading_eq(&a->r[i], &b->r[i])) {
            return false;
        }
    }
    for (size_t i = 0; i < a->n_q; i++) {
        if (!s_request_eq(&a->q[i], &b->q[i])) {
            return false;
        }
    }
    return true;
}

/* Mean TPOT (seconds per token after the first) of OK requests whose first token came in
 * [from_s, to_s) after s_t0. */
static double s_mean_tpot(const trace_t *t, double from_s, double to_s, size_t *n_out)
{
    double sum = 0.0;
    size_t n = 0;
    for (size_t i = 0; i < t->n_q; i++) {
        const ww_request_t *q = &t->q[i];
        double first = (double)(q->first_token_ns - s_t0) / 1e9;
        if (q->status != WW_REQ_OK || q->output_tokens < 2 || first < from_s || first >= to_s) {
            continue;
        }
        sum += (double)(q->done_ns - q->first_token_ns) / 1e9 / (double)(q->output_tokens - 1);
        n++;
    }
    *n_out = n;
    return n > 0 ? sum / (double)n : 0.0;
}

static double s_mean_field(const trace_t *t, size_t from, size_t to, size_t off)
{
    double sum = 0.0;
    for (size_t i = from; i < to; i++) {
        float v;
        memcpy(&v, (const char *)&t->r[i] + off, sizeof(v));
        sum += v;
    }
    return sum / (double)(to - from);
}

/* ---- tests ---- */

/* Same seed, node and sample times: identical readings and records, with every random path
 * (bursts, diurnal swing, errors, a pump fault) exercised. */
static void test_deterministic_same_seed(void **unused)
{
    fixture_t f;
    s_fixture_init(&f);
    f.c.seed = 42;
    f.c.diurnal_amplitude = 0.3;
    f.c.burst_prob_per_s = 0.01;
    f.c.error_prob = 0.05;
    f.c.pump_fault = true;
    f.c.pump_fault_start_s = 100.0;
    f.c.pump_fault_duration_s = 100.0;
    trace_t a, b;
    s_run(&f.c, 3, 301, s_sec, &a);
    s_run(&f.c, 3, 301, s_sec, &b);
    assert_true(a.n_q > 1000);
    assert_true(s_traces_equal(&a, &b));
    s_trace_free(&a);
    s_trace_free(&b);
    s_fixture_fini(&f);
}

/* Records handed to a sink are appended to the trace (the sink's arg). */
static void s_sink_add(void *arg, const ww_request_t *r)
{
    trace_t *t = arg;
    if (t->n_q == t->cap_q) {
        t->cap_q = t->cap_q ? t->cap_q * 2 : 1024;
        t->q = realloc(t->q, t->cap_q * sizeof(*t->q));
        assert_non_null(t->q);
    }
    t->q[t->n_q++] = *r;
}

/* The defaults, then a conf that takes every record path: errors, bursts, a pump fault, a
 * queue that fills (rejections) and waits that time out. */
static void s_busy_fixture_init(fixture_t *f)
{
    s_fixture_init(f);
    f->c.seed = 7;
    f->c.diurnal_amplitude = 0.3;
    f->c.burst_prob_per_s = 0.02;
    f->c.error_prob = 0.05;
    f->c.pump_fault = true;
    f->c.pump_fault_start_s = 30.0;
    f->c.arrival_rate_rps = 80.0;
    f->c.max_concurrency = 16;
    f->c.max_queue = 40;
    f->c.timeout_s = 1.0;
}

/* With a sink the records come out during sample(), the same records in the same order as
 * poll_requests gives, and poll_requests has none left. */
static void test_sink_same_records(void **unused)
{
    fixture_t f;
    s_busy_fixture_init(&f);
    trace_t polled, sunk;
    s_run(&f.c, 2, 121, s_sec, &polled);
    memset(&sunk, 0, sizeof(sunk));
    sunk.r = calloc(121, sizeof(*sunk.r));
    assert_non_null(sunk.r);
    void *st = NULL;
    assert_int_equal(ww_sim_source.open(&f.c, 2, s_t0, &st), 0);
    ww_sim_source.set_sink(st, s_sink_add, &sunk);
    ww_request_t left[4];
    for (size_t i = 0; i < 121; i++) {
        size_t before = sunk.n_q;
        assert_int_equal(ww_sim_source.sample(st, s_t0 + (int64_t)i * s_sec, &sunk.r[i]), 0);
        sunk.completed += sunk.r[i].requests_completed;
        /* Every record of the interval reached the sink within its sample() call. */
        assert_int_equal(sunk.n_q - before, sunk.r[i].requests_completed);
        assert_int_equal(ww_sim_source.poll_requests(st, left, 4), 0);
    }
    sunk.n_r = 121;
    ww_sim_source.close(&st);
    uint64_t status[4] = {0};
    for (size_t i = 0; i < polled.n_q; i++) {
        status[polled.q[i].status]++;
    }
    assert_true(status[WW_REQ_OK] > 0 && status[WW_REQ_ERROR] > 0 && status[WW_REQ_TIMEOUT] > 0 &&
                status[WW_REQ_REJECTED] > 0);
    assert_true(s_traces_equal(&polled, &sunk));
    s_trace_free(&polled);
    s_trace_free(&sunk);
    s_fixture_fini(&f);
}

/* Setting a sink hands over the records already waiting, first; unsetting it buffers
 * again. Polled, sunk and polled again, the records are those of a run that only polls. */
static void test_sink_switch(void **unused)
{
    fixture_t f;
    s_busy_fixture_init(&f);
    trace_t polled, mixed;
    s_run(&f.c, 0, 61, s_sec, &polled);
    memset(&mixed, 0, sizeof(mixed));
    void *st = NULL;
    assert_int_equal(ww_sim_source.open(&f.c, 0, s_t0, &st), 0);
    for (size_t i = 0; i < 61; i++) {
        ww_reading_t r;
        assert_int_equal(ww_sim_source.sample(st, s_t0 + (int64_t)i * s_sec, &r), 0);
        if (i == 10) {
            size_t before = mixed.n_q;
            ww_sim_source.set_sink(st, s_sink_add, &mixed); /* 10's records, not yet polled */
            assert_int_equal(mixed.n_q - before, r.requests_completed);
            assert_true(r.requests_completed > 0);
        } else if (i == 40) {
            ww_sim_source.set_sink(st, NULL, NULL);
        }
        if (i < 10 || i >= 40) {
            s_drain(st, &mixed);
        }
    }
    ww_sim_source.close(&st);
    assert_true(polled.n_q > 1000);
    assert_int_equal(mixed.n_q, polled.n_q);
    for (size_t i = 0; i < polled.n_q; i++) {
        assert_true(s_request_eq(&mixed.q[i], &polled.q[i]));
    }
    s_trace_free(&polled);
    s_trace_free(&mixed);
    s_fixture_fini(&f);
}

/* A different seed or node index gives a different history. */
static void test_deterministic_differs(void **unused)
{
    fixture_t f;
    s_fixture_init(&f);
    trace_t base, other;
    s_run(&f.c, 0, 121, s_sec, &base);

    s_run(&f.c, 1, 121, s_sec, &other);
    assert_false(s_traces_equal(&base, &other));
    assert_true(other.n_q > 0 && base.n_q > 0);
    assert_false(other.q[0].arrival_ns == base.q[0].arrival_ns &&
                 other.q[1].arrival_ns == base.q[1].arrival_ns);
    s_trace_free(&other);

    f.c.seed = 2;
    s_run(&f.c, 0, 121, s_sec, &other);
    assert_false(s_traces_equal(&base, &other));
    assert_false(other.q[0].arrival_ns == base.q[0].arrival_ns &&
                 other.q[1].arrival_ns == base.q[1].arrival_ns);
    s_trace_free(&other);
    s_trace_free(&base);
    s_fixture_fini(&f);
}

/* Arrivals come from their own stream: sampling 4x as often does not change which
 * requests arrive (by arrival time and prompt). */
static int s_cmp_arrival(const void *a, const void *b)
{
    const ww_request_t *x = a;
    const ww_request_t *y = b;
    if (x->arrival_ns != y->arrival_ns) {
        return x->arrival_ns < y->arrival_ns ? -1 : 1;
    }
    return (int)x->prompt_tokens - (int)y->prompt_tokens;
}

static void test_arrivals_independent_of_cadence(void **unused)
{
    fixture_t f;
    s_fixture_init(&f);
    trace_t a, b;
    s_run(&f.c, 0, 61, s_sec, &a);
    s_run(&f.c, 0, 241, s_sec / 4, &b);
    /* Requests that arrived early enough to be done in both runs. */
    qsort(a.q, a.n_q, sizeof(*a.q), s_cmp_arrival);
    qsort(b.q, b.n_q, sizeof(*b.q), s_cmp_arrival);
    size_t n = 0;
    for (size_t i = 0; i < a.n_q && i < b.n_q; i++) {
        if (a.q[i].arrival_ns > s_t0 + 50 * s_sec) {
            break;
        }
        assert_int_equal(a.q[i].arrival_ns, b.q[i].arrival_ns);
        assert_int_equal(a.q[i].prompt_tokens, b.q[i].prompt_tokens);
        assert_int_equal(a.q[i].model, b.q[i].model);
        n++;
    }
    assert_true(n > 1000);
    s_trace_free(&a);
    s_trace_free(&b);
    s_fixture_fini(&f);
}

/* Power stays in [idle, max]; zero load draws idle power, heavy load close to max. */
static void test_power_bounds_and_load(void **unused)
{
    fixture_t f;
    s_fixture_init(&f);
    trace_t idle, busy;
    f.c.arrival_rate_rps = 0.0;
    s_run(&f.c, 0, 201, s_sec, &idle);
    f.c.arrival_rate_rps = 60.0;
    s_run(&f.c, 0, 201, s_sec, &busy);

    for (size_t i = 0; i < idle.n_r; i++) {
        assert_true(idle.r[i].power_w == (float)f.c.idle_w);
        assert_true(idle.r[i].utilization == 0.0f);
        assert_true(idle.r[i].tokens_per_s == 0.0f);
        assert_int_equal(idle.r[i].requests_in_flight, 0);
    }
    assert_int_equal(idle.n_q, 0);
    for (size_t i = 0; i < busy.n_r; i++) {
        assert_true(busy.r[i].power_w >= (float)f.c.idle_w);
        assert_true(busy.r[i].power_w <= (float)f.c.max_w);
        assert_true(busy.r[i].utilization >= 0.0f && busy.r[i].utilization <= 1.0f);
    }
    double p_busy = s_mean_field(&busy, 100, 201, offsetof(ww_reading_t, power_w));
    double u_busy = s_mean_field(&busy, 100, 201, offsetof(ww_reading_t, utilization));
    double tps = s_mean_field(&busy, 100, 201, offsetof(ww_reading_t, tokens_per_s));
    assert_true(p_busy > f.c.idle_w + 0.8 * (f.c.max_w - f.c.idle_w));
    assert_true(u_busy > 0.8);
    assert_true(tps > 1000.0);
    s_trace_free(&idle);
    s_trace_free(&busy);
    s_fixture_fini(&f);
}

/* The default load is moderate: mean utilisation in the 0.45-0.75 band. */
static void test_default_load_moderate(void **unused)
{
    fixture_t f;
    s_fixture_init(&f);
    trace_t t;
    s_run(&f.c, 0, 601, s_sec, &t);
    double u = s_mean_field(&t, 60, 601, offsetof(ww_reading_t, utilization));
    assert_true(u > 0.45 && u < 0.75);
    s_trace_free(&t);
    s_fixture_fini(&f);
}

/* Temperatures follow power: outlet rise = P / (rho c Q); the hotspot rises after a load
 * step and settles higher than at idle. */
static void test_temperature_follows_power(void **unused)
{
    fixture_t f;
    s_fixture_init(&f);
    trace_t idle, busy;
    f.c.arrival_rate_rps = 0.0;
    s_run(&f.c, 0, 301, s_sec, &idle);
    f.c.arrival_rate_rps = 60.0;
    s_run(&f.c, 0, 301, s_sec, &busy);

    double flow_lps = f.c.flow_lpm / 60.0;
    for (size_t i = 1; i < busy.n_r; i++) {
        const ww_reading_t *r = &busy.r[i];
        double rise = r->power_w / (4180.0 * flow_lps);
        assert_true(r->outlet_c > r->inlet_c);
        assert_true(fabs((r->outlet_c - r->inlet_c) - rise) < 0.15);
        assert_true(fabs(r->inlet_c - f.c.inlet_c) <= 0.06);
    }
    /* Idle: steady state from the start, outlet above inlet by idle_w / (rho c Q). */
    double idle_hot = idle.r[300].wafer_hotspot_c;
    double idle_target =
        f.c.inlet_c + f.c.idle_w / (4180.0 * flow_lps) + f.c.idle_w / 1000.0 * f.c.r_th_c_per_kw;
    assert_true(fabs(idle_hot - idle_target) < 0.1);
    assert_true(idle.r[300].outlet_c > idle.r[300].inlet_c + 2.0);
    /* Load step: the hotspot climbs with the RC time constant, then sits well above idle. */
    assert_true(busy.r[10].wafer_hotspot_c < busy.r[40].wafer_hotspot_c);
    assert_true(busy.r[40].wafer_hotspot_c < busy.r[150].wafer_hotspot_c);
    double busy_hot = s_mean_field(&busy, 200, 301, offsetof(ww_reading_t, wafer_hotspot_c));
    assert_true(busy_hot > idle_hot + 15.0);
    assert_true(busy_hot < f.c.throttle_c); /* nominal cooling never throttles */
    for (size_t i = 0; i < busy.n_r; i++) {
        assert_false(busy.r[i].throttled);
    }
    s_trace_free(&idle);
    s_trace_free(&busy);
    s_fixture_fini(&f);
}

/* A pump fault cuts flow, heats the wafer past the throttle point and slows decode against
 * a twin with the same seed; after it ends the node recovers. */
static void test_pump_fault_throttles_and_recovers(void **unused)
{
    fixture_t f;
    s_fixture_init(&f);
    f.c.arrival_rate_rps = 60.0;
    trace_t ok, bad;
    s_run(&f.c, 0, 1401, s_sec, &ok);
    f.c.pump_fault = true;
    f.c.pump_fault_start_s = 200.0;
    f.c.pump_fault_duration_s = 600.0;
    f.c.pump_fault_flow_factor = 0.2;
    s_run(&f.c, 0, 1401, s_sec, &bad);

    /* Before the fault the twins are identical. */
    for (size_t i = 0; i < 200; i++) {
        assert_true(s_reading_eq(&ok.r[i], &bad.r[i]));
    }
    for (size_t i = 0; i < bad.n_r; i++) {
        float want = (i >= 200 && i < 800) ? 8.0f : 40.0f;
        assert_float_equal(bad.r[i].flow_lpm, want, 1e-3);
        assert_float_equal(ok.r[i].flow_lpm, 40.0f, 1e-3);
        assert_false(ok.r[i].throttled);
    }
    /* Late in the fault: hotter, throttled, fewer tokens per second, slower tokens. */
    assert_true(bad.r[750].wafer_hotspot_c > ok.r[750].wafer_hotspot_c + 15.0);
    assert_true(bad.r[750].wafer_hotspot_c > f.c.throttle_c);
    assert_true(bad.r[750].throttled);
    assert_true(bad.r[750].throttle_factor < 0.9f);
    assert_true(bad.r[750].outlet_c > ok.r[750].outlet_c + 15.0);
    double tps_ok = s_mean_field(&ok, 500, 800, offsetof(ww_reading_t, tokens_per_s));
    double tps_bad = s_mean_field(&bad, 500, 800, offsetof(ww_reading_t, tokens_per_s));
    assert_true(tps_bad < 0.9 * tps_ok);
    /* Both twins are saturated, so the throttled one draws less: the lost work's power. */
    double p_ok = s_mean_field(&ok, 500, 800, offsetof(ww_reading_t, power_w));
    double p_bad = s_mean_field(&bad, 500, 800, offsetof(ww_reading_t, power_w));
    assert_true(p_bad < p_ok - 0.05 * (f.c.max_w - f.c.idle_w));
    size_t n_ok, n_bad;
    double tpot_ok = s_mean_tpot(&ok, 500.0, 800.0, &n_ok);
    double tpot_bad = s_mean_tpot(&bad, 500.0, 800.0, &n_bad);
    assert_true(n_ok > 100 && n_bad > 100);
    assert_true(tpot_bad > 1.1 * tpot_ok);
    /* Recovered: full flow, no throttling, back to the twin's temperature. */
    for (size_t i = 1000; i < bad.n_r; i++) {
        assert_false(bad.r[i].throttled);
        assert_true(bad.r[i].throttle_factor == 1.0f);
    }
    assert_true(fabs(bad.r[1400].wafer_hotspot_c - ok.r[1400].wafer_hotspot_c) < 1.0);
    double tpot_after = s_mean_tpot(&bad, 1100.0, 1400.0, &n_bad);
    double tpot_twin = s_mean_tpot(&ok, 1100.0, 1400.0, &n_ok);
    assert_true(fabs(tpot_after - tpot_twin) < 0.05 * tpot_twin);
    s_trace_free(&ok);
    s_trace_free(&bad);
    s_fixture_fini(&f);
}

/* Only nodes with index % pump_fault_every == 0 lose flow. */
static void test_pump_fault_hits_every_nth(void **unused)
{
    fixture_t f;
    s_fixture_init(&f);
    f.c.pump_fault = true;
    f.c.pump_fault_start_s = 10.0;
    f.c.pump_fault_duration_s = 0.0; /* until the end */
    f.c.pump_fault_every = 3;
    for (unsigned node = 0; node < 7; node++) {
        void *st = NULL;
        ww_reading_t r;
        assert_int_equal(ww_sim_source.open(&f.c, node, s_t0, &st), 0);
        assert_int_equal(ww_sim_source.sample(st, s_t0 + 5 * s_sec, &r), 0);
        assert_float_equal(r.flow_lpm, 40.0f, 1e-3);
        assert_int_equal(ww_sim_source.sample(st, s_t0 + 200 * s_sec, &r), 0);
        float want = node % 3 == 0 ? 12.0f : 40.0f;
        assert_float_equal(r.flow_lpm, want, 1e-3);
        ww_sim_source.close(&st);
    }
    s_fixture_fini(&f);
}

/* Records are sane: ordered times, valid statuses and tokens, completion order, and the
 * readings' completion counts add up to the records delivered. */
static void test_request_records_sane(void **unused)
{
    fixture_t f;
    s_fixture_init(&f);
    f.c.arrival_rate_rps = 70.0;
    f.c.burst_prob_per_s = 0.02;
    f.c.max_queue = 40;
    f.c.timeout_s = 1.0;
    f.c.error_prob = 0.05;
    trace_t t;
    s_run(&f.c, 0, 301, s_sec, &t);
    size_t by_status[4] = {0};
    int64_t last_done = INT64_MIN;
    for (size_t i = 0; i < t.n_q; i++) {
        const ww_request_t *q = &t.q[i];
        assert_true(q->arrival_ns >= s_t0);
        assert_true(q->arrival_ns <= q->start_ns);
        assert_true(q->start_ns <= q->first_token_ns);
        assert_true(q->first_token_ns <= q->done_ns);
        assert_true(q->done_ns <= s_t0 + 300 * s_sec);
        assert_true(q->done_ns >= last_done); /* completion order */
        last_done = q->done_ns;
        assert_true(q->model < f.c.n_models);
        assert_true(q->prompt_tokens >= 1 && q->prompt_tokens <= 32768);
        assert_true(q->output_tokens <= 8192);
        assert_true((unsigned)q->status <= WW_REQ_REJECTED);
        by_status[q->status]++;
        switch (q->status) {
        case WW_REQ_OK:
            assert_true(q->output_tokens >= 1);
            assert_true(q->first_token_ns > q->start_ns);
            break;
        case WW_REQ_REJECTED:
            assert_int_equal(q->output_tokens, 0);
            assert_int_equal(q->start_ns, q->arrival_ns);
            assert_int_equal(q->first_token_ns, q->done_ns);
            assert_int_equal(q->done_ns, q->arrival_ns);
            break;
        case WW_REQ_TIMEOUT:
            assert_int_equal(q->output_tokens, 0);
            assert_true(llabs(q->done_ns - q->arrival_ns - s_sec) <= 1000);
            break;
        case WW_REQ_ERROR:
            if (q->output_tokens == 0) {
                assert_int_equal(q->first_token_ns, q->done_ns);
            }
            break;
        }
    }
    for (int s = 0; s < 4; s++) {
        assert_true(by_status[s] > 0);
    }
    assert_int_equal(t.completed, t.n_q);
    for (size_t i = 0; i < t.n_r; i++) {
        assert_true(t.r[i].requests_queued <= (uint32_t)f.c.max_queue);
        assert_true(t.r[i].requests_in_flight <= (uint32_t)f.c.max_concurrency);
    }
    s_trace_free(&t);
    s_fixture_fini(&f);
}

/* A lone 8B request decodes at 1 / decode_tps per token and its TTFT is its prefill. */
static void test_single_request_tpot(void **unused)
{
    fixture_t f;
    s_fixture_init(&f);
    f.c.n_models = 1; /* llama3.1-8b */
    f.c.arrival_rate_rps = 0.02;
    f.c.error_prob = 0.0;
    f.m[0].prompt_tokens_sigma = 0.0;
    f.m[0].output_tokens_median = 400.0;
    f.m[0].output_tokens_sigma = 0.0;
    trace_t t;
    s_run(&f.c, 0, 1001, s_sec, &t);
    assert_true(t.n_q >= 5);
    for (size_t i = 0; i < t.n_q; i++) {
        const ww_request_t *q = &t.q[i];
        assert_int_equal(q->status, WW_REQ_OK);
        assert_int_equal(q->output_tokens, 400);
        assert_int_equal(q->prompt_tokens, 1000);
        assert_int_equal(q->start_ns, q->arrival_ns);
        double ttft = (double)(q->first_token_ns - q->arrival_ns) / 1e9;
        assert_true(fabs(ttft - 1000.0 / f.m[0].prefill_tps) < 1e-6);
        double tpot = (double)(q->done_ns - q->first_token_ns) / 1e9 / 399.0;
        assert_true(tpot >= 0.999 / 1800.0 && tpot < 1.04 / 1800.0);
    }
    s_trace_free(&t);
    s_fixture_fini(&f);
}

/* Overload with a tiny queue: arrivals beyond it are rejected at once, and the queue and
 * batch never exceed their limits. */
static void test_rejection_when_queue_full(void **unused)
{
    fixture_t f;
    s_fixture_init(&f);
    f.c.arrival_rate_rps = 200.0;
    f.c.max_concurrency = 2;
    f.c.max_queue = 3;
    trace_t t;
    s_run(&f.c, 0, 31, s_sec, &t);
    size_t rejected = 0;
    for (size_t i = 0; i < t.n_q; i++) {
        rejected += t.q[i].status == WW_REQ_REJECTED;
    }
    assert_true(rejected > t.n_q / 2);
    for (size_t i = 1; i < t.n_r; i++) {
        assert_true(t.r[i].requests_queued <= 3);
        assert_true(t.r[i].requests_in_flight <= 2);
    }
    assert_int_equal(t.r[30].requests_in_flight, 2);
    assert_true(t.r[30].utilization > 0.0f);
    s_trace_free(&t);
    s_fixture_fini(&f);
}

/* The queue grows on demand well past its initial size and stays FIFO: with one slot,
 * requests start (and so finish) in arrival order. */
static void test_queue_grows_fifo(void **unused)
{
    fixture_t f;
    s_fixture_init(&f);
    f.c.arrival_rate_rps = 300.0;
    f.c.max_concurrency = 1;
    f.c.max_queue = 5000;
    f.c.timeout_s = 1000.0;
    f.c.error_prob = 0.0;
    trace_t t;
    s_run(&f.c, 0, 13, s_sec, &t); /* ~3,500 queued at 12 s; full at ~17 s */
    uint32_t max_q = 0;
    for (size_t i = 0; i < t.n_r; i++) {
        max_q = t.r[i].requests_queued > max_q ? t.r[i].requests_queued : max_q;
    }
    assert_true(max_q > 2000 && max_q <= 5000);
    size_t n_ok = 0;
    int64_t last_arrival = INT64_MIN;
    for (size_t i = 0; i < t.n_q; i++) {
        assert_int_equal(t.q[i].status, WW_REQ_OK); /* nobody rejected or timed out */
        assert_true(t.q[i].arrival_ns >= last_arrival);
        last_arrival = t.q[i].arrival_ns;
        n_ok++;
    }
    assert_true(n_ok > 10);
    s_trace_free(&t);
    s_fixture_fini(&f);
}

/* Requests queued longer than timeout_s end as timeouts exactly then. */
static void test_queue_timeout(void **unused)
{
    fixture_t f;
    s_fixture_init(&f);
    f.c.n_models = 1;
    f.m[0].output_tokens_median = 4000.0; /* ~2.2 s each at 1,800 tok/s */
    f.m[0].output_tokens_sigma = 0.0;
    f.c.arrival_rate_rps = 5.0;
    f.c.max_concurrency = 1;
    f.c.max_queue = 1000;
    f.c.timeout_s = 2.0;
    trace_t t;
    s_run(&f.c, 0, 61, s_sec, &t);
    size_t timeouts = 0;
    for (size_t i = 0; i < t.n_q; i++) {
        if (t.q[i].status == WW_REQ_TIMEOUT) {
            timeouts++;
            assert_true(llabs(t.q[i].done_ns - t.q[i].arrival_ns - 2 * s_sec) <= 1000);
        }
        if (t.q[i].status == WW_REQ_OK) {
            assert_true(t.q[i].start_ns - t.q[i].arrival_ns <= 2 * s_sec);
        }
    }
    assert_true(timeouts > 100);
    s_trace_free(&t);
    s_fixture_fini(&f);
}

/* open() refuses bad configurations with -EINVAL and leaves *state NULL. */
static void test_open_rejects_bad_conf(void **unused)
{
    fixture_t f;
    s_fixture_init(&f);
    void *st = (void *)&f; /* must be overwritten with NULL */
    assert_int_equal(ww_sim_source.open(NULL, 0, s_t0, &st), -EINVAL);
    assert_null(st);
    assert_int_equal(ww_sim_source.open(&f.c, 0, s_t0, NULL), -EINVAL);

    for (int k = 0;; k++) {
        fixture_t g = f; /* shares f's model names; only numbers are mutated */
        g.c.models = g.m;
        ww_sim_conf_t *c = &g.c;
        switch (k) {
        case 0:
            c->n_models = 0;
            break;
        case 1:
            c->n_models = WW_SIM_MAX_MODELS + 1;
            break;
        case 2:
            c->models = NULL;
            break;
        case 3:
            g.m[0].weight = 0;
            g.m[1].weight = 0;
            g.m[2].weight = 0;
            break;
        case 4:
            g.m[1].weight = -1.0;
            break;
        case 5:
            g.m[0].prefill_tps = 0.0;
            break;
        case 6:
            g.m[2].decode_tps = NAN;
            break;
        case 7:
            g.m[1].name = NULL;
            break;
        case 8:
            g.m[0].output_tokens_median = 0.0;
            break;
        case 9:
            c->arrival_rate_rps = -1.0;
            break;
        case 10:
            c->diurnal_amplitude = 1.5;
            break;
        case 11:
            c->burst_prob_per_s = 2.0;
            break;
        case 12:
            c->burst_factor = 0.0;
            break;
        case 13:
            c->max_concurrency = 0;
            break;
        case 14:
            c->max_queue = -1;
            break;
        case 15:
            c->timeout_s = 0.0;
            break;
        case 16:
            c->error_prob = 1.5;
            break;
        case 17:
            c->idle_w = c->max_w;
            break;
        case 18:
            c->flow_lpm = 0.0;
            break;
        case 19:
            c->tau_s = 0.0;
            break;
        case 20:
            c->min_throttle = 0.0;
            break;
        case 21:
            c->min_throttle = 1.5;
            break;
        case 22:
            c->pump_fault = true;
            c->pump_fault_every = 0;
            break;
        case 23:
            c->pump_fault = true;
            c->pump_fault_flow_factor = 0.0;
            break;
        case 24:
            c->max_w = INFINITY;
            break;
        case 25:
            g.m[0].prompt_tokens_sigma = -0.1;
            break;
        default:
            goto done;
        }
        st = (void *)&f;
        int rc = ww_sim_source.open(c, 0, s_t0, &st);
        if (rc != -EINVAL) {
            fail_msg("case %d: open returned %d, want -EINVAL", k, rc);
        }
        assert_null(st);
    }
done:
    /* The unmodified defaults open, and so do the config's largest limits (the arrays grow
     * on demand, so they cost nothing up front). */
    assert_int_equal(ww_sim_source.open(&f.c, 0, s_t0, &st), 0);
    ww_sim_source.close(&st);
    f.c.max_concurrency = 100000;
    f.c.max_queue = 10000000;
    assert_int_equal(ww_sim_source.open(&f.c, 0, s_t0, &st), 0);
    ww_reading_t r;
    assert_int_equal(ww_sim_source.sample(st, s_t0 + 10 * s_sec, &r), 0);
    assert_true(r.requests_in_flight > 0);
    ww_sim_source.close(&st);
    s_fixture_fini(&f);
}

/* close() is safe on NULL and twice; sample() refuses time going backwards. */
static void test_close_twice_and_backwards(void **unused)
{
    fixture_t f;
    s_fixture_init(&f);
    ww_sim_source.close(NULL);
    void *st = NULL;
    ww_sim_source.close(&st);
    assert_int_equal(ww_sim_source.open(&f.c, 0, s_t0, &st), 0);
    ww_reading_t r;
    assert_int_equal(ww_sim_source.sample(st, s_t0 + 10 * s_sec, &r), 0);
    assert_int_equal(ww_sim_source.sample(st, s_t0 + 10 * s_sec, &r), 0); /* same time */
    assert_int_equal(ww_sim_source.sample(st, s_t0 + 9 * s_sec, &r), -EINVAL);
    ww_sim_source.close(&st);
    assert_null(st);
    ww_sim_source.close(&st);
    assert_null(st);
    s_fixture_fini(&f);
}

/* poll_requests drains in chunks of at most cap, in completion order, then returns 0. */
static void test_poll_bounded_chunks(void **unused)
{
    fixture_t f;
    s_fixture_init(&f);
    void *st = NULL;
    assert_int_equal(ww_sim_source.open(&f.c, 0, s_t0, &st), 0);
    ww_reading_t r;
    ww_request_t buf[8];
    assert_int_equal(ww_sim_source.poll_requests(st, buf, 7), 0); /* nothing yet */
    assert_int_equal(ww_sim_source.sample(st, s_t0, &r), 0);
    assert_int_equal(ww_sim_source.sample(st, s_t0 + 20 * s_sec, &r), 0);
    assert_true(r.requests_completed > 100);
    size_t total = 0;
    int64_t last_done = INT64_MIN;
    for (;;) {
        memset(buf, 0xa5, sizeof(buf));
        int n = ww_sim_source.poll_requests(st, buf, 7);
        assert_true(n >= 0 && n <= 7);
        for (int i = 0; i < n; i++) {
            assert_true(buf[i].done_ns >= last_done);
            assert_true(buf[i].done_ns <= s_t0 + 20 * s_sec);
            last_done = buf[i].done_ns;
        }
        /* Slots past n are untouched. */
        assert_true(buf[7].done_ns == (int64_t)0xa5a5a5a5a5a5a5a5ULL);
        total += (size_t)n;
        if (n < 7) {
            break;
        }
    }
    assert_int_equal(total, r.requests_completed);
    assert_int_equal(ww_sim_source.poll_requests(st, buf, 7), 0);
    assert_int_equal(ww_sim_source.poll_requests(st, buf, 0), 0);
    ww_sim_source.close(&st);
    s_fixture_fini(&f);
}

/* A long gap between samples is simulated (not skipped) and stays bounded in memory: an
 * agent that never drains keeps the newest records only. */
static void test_long_gap_and_record_cap(void **unused)
{
    fixture_t f;
    s_fixture_init(&f);
    f.c.arrival_rate_rps = 200.0;
    f.c.max_concurrency = 1;
    f.c.max_queue = 0; /* nearly everything is rejected: cheap records */
    void *st = NULL;
    assert_int_equal(ww_sim_source.open(&f.c, 0, s_t0, &st), 0);
    ww_reading_t r;
    assert_int_equal(ww_sim_source.sample(st, s_t0 + 1000 * s_sec, &r), 0);
    assert_true(r.requests_completed > 190000); /* ~200,000 over 1,000 s */
    ww_request_t buf[256];
    size_t total = 0;
    int64_t last_done = INT64_MIN;
    int n;
    while ((n = ww_sim_source.poll_requests(st, buf, 256)) > 0) {
        for (int i = 0; i < n; i++) {
            assert_true(buf[i].done_ns >= last_done);
            last_done = buf[i].done_ns;
        }
        total += (size_t)n;
    }
    assert_int_equal(n, 0);
    assert_true(total < r.requests_completed);
    assert_int_equal(total, 131072);             /* the cap */
    assert_true(last_done > s_t0 + 999 * s_sec); /* the newest survived */
    ww_sim_source.close(&st);

    /* An hour-long gap at the default load completes with a sensible reading. */
    s_fixture_fini(&f);
    s_fixture_init(&f);
    assert_int_equal(ww_sim_source.open(&f.c, 0, s_t0, &st), 0);
    assert_int_equal(ww_sim_source.sample(st, s_t0 + 3600 * s_sec, &r), 0);
    assert_true(r.tokens_per_s > 1000.0f);
    assert_true(r.utilization > 0.3f && r.utilization < 0.9f);
    ww_sim_source.close(&st);
    s_fixture_fini(&f);
}

/* Model names are the instance's copies; the default models are calibrated. */
static void test_models_and_defaults(void **unused)
{
    fixture_t f;
    s_fixture_init(&f);
    void *st = NULL;
    assert_int_equal(ww_sim_source.open(&f.c, 0, s_t0, &st), 0);
    s_fixture_fini(&f); /* the conf's names are gone; the instance kept its own */
    assert_string_equal(ww_sim_source.model_name(st, 0), "llama3.1-8b");
    assert_string_equal(ww_sim_source.model_name(st, 1), "llama3.1-70b");
    assert_string_equal(ww_sim_source.model_name(st, 2), "llama3.1-405b");
    assert_null(ww_sim_source.model_name(st, 3));
    assert_null(ww_sim_source.model_name(NULL, 0));
    ww_sim_source.close(&st);

    ww_sim_model_t m[3];
    assert_int_equal(ww_sim_default_models(m, 1), 1);
    free(m[0].name);
    assert_int_equal(ww_sim_default_models(NULL, 3), 0);
    assert_int_equal(ww_sim_default_models(m, 3), 3);
    assert_float_equal(m[0].decode_tps, 1800.0, 1e-9);
    assert_float_equal(m[1].decode_tps, 450.0, 1e-9);
    assert_float_equal(m[2].decode_tps, 969.0, 1e-9);
    /* 405B: TTFT of the median prompt ~0.24 s. */
    assert_float_equal(m[2].prompt_tokens_median / m[2].prefill_tps, 0.24, 0.01);
    for (int i = 0; i < 3; i++) {
        free(m[i].name);
    }

    ww_sim_conf_t c;
    ww_sim_conf_set_defaults(&c);
    assert_null(c.models);
    assert_int_equal(c.n_models, 0);
    assert_float_equal(c.max_w, 23000.0, 1e-9);
    assert_true(c.idle_w < c.max_w);
    /* Calibration claims: full-load hotspot 65-70 °C on nominal flow, above throttle_c at
     * the default pump-fault flow. */
    double hot_full =
        c.inlet_c + c.max_w / (4180.0 * c.flow_lpm / 60.0) + c.max_w / 1000.0 * c.r_th_c_per_kw;
    assert_true(hot_full > 65.0 && hot_full < 70.0);
    double hot_fault = c.inlet_c +
                       c.max_w / (4180.0 * c.pump_fault_flow_factor * c.flow_lpm / 60.0) +
                       c.max_w / 1000.0 * c.r_th_c_per_kw;
    assert_true(hot_fault > c.throttle_c);
    assert_int_equal(ww_sim_source.open(&c, 0, s_t0, &st), -EINVAL); /* no models */
}

/* Intake humidity (ww_sim.h): a hall setpoint in 40..45 % from the seed, a slow drift shared
 * by the hall's nodes, a small per-node offset and noise; deterministic for a seed; drawn
 * from no stream of the node's, so the other readings do not depend on it. */
static void test_humidity_hall_model(void **state)
{
    (void)state;
    fixture_t f;
    s_fixture_init(&f);
    f.c.arrival_rate_rps = 5.0;
    enum { STEPS = 6 * 60 + 1 }; /* six hours, a sample a minute */
    const int64_t step = 60 * s_sec;
    double mean[2][2] = {{0}};
    trace_t t[2][2];
    for (int seed = 0; seed < 2; seed++) {
        f.c.seed = 1000 + (uint64_t)seed * 7919;
        for (unsigned node = 0; node < 2; node++) {
            s_run(&f.c, node, STEPS, step, &t[seed][node]);
            for (size_t i = 0; i < STEPS; i++) {
                double h = t[seed][node].r[i].humidity_pct;
                /* setpoint 40..45, drift +-2, offset +-0.8, noise +-0.15 */
                assert_true(h >= 40.0 - 2.0 - 0.8 - 0.15 && h <= 45.0 + 2.0 + 0.8 + 0.15);
                mean[seed][node] += h / STEPS;
            }
        }
        /* One hall: the nodes differ by their offsets and noise only, at every sample. */
        for (size_t i = 0; i < STEPS; i++) {
            double d = t[seed][0].r[i].humidity_pct - t[seed][1].r[i].humidity_pct;
            assert_true(fabs(d) <= 2 * 0.8 + 2 * 0.15 + 1e-4);
        }
        /* It drifts, slowly: a minute moves it by the noise and a little drift at most. */
        double lo = 100.0, hi = 0.0;
        for (size_t i = 0; i < STEPS; i++) {
            double h = t[seed][0].r[i].humidity_pct;
            lo = h < lo ? h : lo;
            hi = h > hi ? h : hi;
            if (i > 0) {
                assert_true(fabs(h - t[seed][0].r[i - 1].humidity_pct) < 0.5);
            }
        }
        assert_true(hi - lo > 0.5);
    }
    /* The setpoint is the seed's: the two halls' means differ; each is near 40..45. */
    assert_true(mean[0][0] != mean[1][0]);
    for (int seed = 0; seed < 2; seed++) {
        assert_true(mean[seed][0] > 40.0 - 2.0 - 0.8 && mean[seed][0] < 45.0 + 2.0 + 0.8);
    }
    /* Deterministic: the same seed, node and times give the same humidity. */
    trace_t again;
    f.c.seed = 1000;
    s_run(&f.c, 1, STEPS, step, &again);
    assert_true(s_traces_equal(&again, &t[0][1]));
    s_trace_free(&again);
    /* ... and the same drift at the same absolute time whenever the node started. */
    void *st = NULL;
    assert_int_equal(ww_sim_source.open(&f.c, 1, s_t0 + 90 * step, &st), 0);
    ww_reading_t r;
    assert_int_equal(ww_sim_source.sample(st, s_t0 + 100 * step, &r), 0);
    assert_true(r.humidity_pct == t[0][1].r[100].humidity_pct);
    ww_sim_source.close(&st);
    for (int seed = 0; seed < 2; seed++) {
        for (unsigned node = 0; node < 2; node++) {
            s_trace_free(&t[seed][node]);
        }
    }
    s_fixture_fini(&f);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_deterministic_same_seed),
    cmocka_unit_test(test_deterministic_differs),
    cmocka_unit_test(test_sink_same_records),
    cmocka_unit_test(test_sink_switch),
    cmocka_unit_test(test_arrivals_independent_of_cadence),
    cmocka_unit_test(test_power_bounds_and_load),
    cmocka_unit_test(test_default_load_moderate),
    cmocka_unit_test(test_temperature_follows_power),
    cmocka_unit_test(test_pump_fault_throttles_and_recovers),
    cmocka_unit_test(test_pump_fault_hits_every_nth),
    cmocka_unit_test(test_request_records_sane),
    cmocka_unit_test(test_single_request_tpot),
    cmocka_unit_test(test_rejection_when_queue_full),
    cmocka_unit_test(test_queue_grows_fifo),
    cmocka_unit_test(test_queue_timeout),
    cmocka_unit_test(test_open_rejects_bad_conf),
    cmocka_unit_test(test_close_twice_and_backwards),
    cmocka_unit_test(test_poll_bounded_chunks),
    cmocka_unit_test(test_long_gap_and_record_cap),
    cmocka_unit_test(test_models_and_defaults),
    cmocka_unit_test(test_humidity_hall_model),
};
WW_TEST_MAIN(tests, NULL, NULL)
