/* Hostile and extreme input through the real collector (issue 14): a raw CURVE peer sends
 * what a buggy or hostile agent could, and the tests check that nothing stored is altered,
 * that one stream's bad message costs no other stream (or sample) its data, and that every
 * loss is counted exactly. */
#define _GNU_SOURCE /* memmem */
#include "harness.h"
#include "ww_hist.h"
#include "ww_hist_wire.h"
#include "ww_test.h"
#include "ww_time.h"
#include "ww_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define AGENT "raw-agent"
#define NODE "raw-node"

/* A latency window of a few requests with its histograms (queue, ttft, e2e hold every
 * value; tpot none), built on the stack of the test. */
typedef struct {
    Waferwatch__V1__LatencyWindow w;
    Waferwatch__V1__Histogram pb[4];
    int32_t idx[4][64];
    uint64_t cnt[4][64];
} s_win_t;

static void s_win_init(s_win_t *sw, const char *node, const char *model, int64_t start_ns,
                       int64_t duration_ns, const double *v, size_t n)
{
    Waferwatch__V1__LatencyWindow w0 = WAFERWATCH__V1__LATENCY_WINDOW__INIT;
    sw->w = w0;
    sw->w.node_id = (char *)node;
    sw->w.model = (char *)model;
    sw->w.start_ns = start_ns;
    sw->w.duration_ns = duration_ns;
    sw->w.requests_ok = n;
    sw->w.prompt_tokens = 100 * n;
    sw->w.output_tokens = 10 * n;
    for (int k = 0; k < 4; k++) {
        ww_hist_t h;
        ww_hist_init(&h, WW_HIST_DEFAULT_SCALE);
        for (size_t i = 0; k != 2 && i < n; i++) {
            assert_int_equal(ww_hist_record(&h, v[i]), 0);
        }
        assert_int_equal(ww_hist_to_pb(&h, &sw->pb[k], sw->idx[k], sw->cnt[k], 64), 0);
        ww_hist_fini(&h);
    }
    sw->w.queue = &sw->pb[0];
    sw->w.ttft = &sw->pb[1];
    sw->w.tpot = &sw->pb[2];
    sw->w.e2e = &sw->pb[3];
}

/* Encodes env (version and agent id filled in) and sends it. */
static void s_send(h_peer_t *p, ww_envelope_t *env)
{
    env->wire_version = WW_WIRE_VERSION;
    if (!env->agent_id || !*env->agent_id) {
        env->agent_id = (char *)AGENT;
    }
    long n = ww_wire_encode(env, &p->buf, &p->cap);
    assert_true(n > 0);
    assert_int_equal(zmq_send(p->sock, p->buf, (size_t)n, 0), n);
}

static void s_send_batch(h_peer_t *p, uint64_t epoch, uint64_t seq, ww_batch_t *b)
{
    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    env.epoch = epoch;
    env.seq = seq;
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_BATCH;
    env.batch = b;
    s_send(p, &env);
}

static ww_envelope_t *s_recv(h_peer_t *p)
{
    ww_envelope_t *e = h_peer_recv(p);
    assert_non_null(e);
    return e;
}

/* Expects an Ack of (epoch, seq). */
static void s_expect_ack(h_peer_t *p, uint64_t epoch, uint64_t seq)
{
    ww_envelope_t *e = s_recv(p);
    if (e->body_case != WAFERWATCH__V1__ENVELOPE__BODY_ACK) {
        fail_msg("expected the Ack of seq %llu, got body %d (%s)", (unsigned long long)seq,
                 (int)e->body_case,
                 e->body_case == WAFERWATCH__V1__ENVELOPE__BODY_NACK ? e->nack->reason : "");
    }
    assert_true(e->ack->epoch == epoch);
    assert_true(e->ack->seq == seq);
    ww_wire_free(&e);
}

/* Expects a Nack with code and a reason containing `what`. */
static void s_expect_nack(h_peer_t *p, Waferwatch__V1__NackCode code, uint64_t seq,
                          const char *what)
{
    ww_envelope_t *e = s_recv(p);
    if (e->body_case != WAFERWATCH__V1__ENVELOPE__BODY_NACK) {
        fail_msg("expected a Nack naming %s, got body %d", what, (int)e->body_case);
    }
    assert_int_equal(e->nack->code, code);
    assert_true(e->nack->seq == seq);
    if (!strstr(e->nack->reason, what)) {
        fail_msg("Nack reason \"%s\" does not name %s", e->nack->reason, what);
    }
    ww_wire_free(&e);
}

/* A Hello of one node (rated 23 kW) with the given site, in env (whose parts are in h). */
typedef struct {
    ww_node_info_t ni;
    ww_node_info_t *nis[1];
    ww_hello_t h;
    ww_envelope_t env;
} s_hello_t;

static void s_hello_init(s_hello_t *h, const char *node, const char *site, uint64_t epoch)
{
    ww_node_info_t ni = WAFERWATCH__V1__NODE_INFO__INIT;
    ww_hello_t hh = WAFERWATCH__V1__HELLO__INIT;
    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    h->ni = ni;
    h->ni.node_id = (char *)node;
    h->ni.site = (char *)site;
    h->ni.rated_kw = 23;
    h->nis[0] = &h->ni;
    h->h = hh;
    h->h.nodes = h->nis;
    h->h.n_nodes = 1;
    h->env = env;
    h->env.wire_version = WW_WIRE_VERSION;
    h->env.agent_id = (char *)AGENT;
    h->env.epoch = epoch;
    h->env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_HELLO;
    h->env.hello = &h->h;
}

typedef struct {
    h_db_t db;
    pid_t collector;
    h_peer_t p;
    int64_t t; /* a whole second ten seconds ago */
} s_env_t;

static void s_start(s_env_t *x, const char *tag)
{
    h_db_create(&x->db, tag);
    h_secure(x->db.dir, AGENT, NODE "*");
    char endpoint[256];
    x->collector = h_collector_start(&x->db, endpoint, sizeof endpoint);
    h_peer_open(&x->p, endpoint, x->db.dir, "agent", NULL, 15000);
    x->t = ww_time_next_tick(ww_time_now_ns(), WW_NS_PER_S) - 10 * WW_NS_PER_S;
}

static void s_finish(s_env_t *x)
{
    h_peer_close(&x->p);
    assert_int_equal(h_stop(x->collector, 10000), 0);
    h_db_drop(&x->db);
}

/* 1. A window with counts of 2^64 - 1 is refused (it could not be stored, or merged into
 * a rollup, without overflow); a normal window of another stream for the same minute is
 * written, and the queries of docs/architecture.md over the rollups and the windows work. */
static void test_extreme_window_is_refused_and_costs_no_other_stream(void **state)
{
    s_env_t x;
    s_start(&x, "hextreme");
    int64_t start = x.t - x.t % (10 * WW_NS_PER_S);
    const double v[] = {0.1, 0.2, 0.3};
    s_win_t bad;
    s_win_init(&bad, NODE, "m", start, 10 * WW_NS_PER_S, v, 3);
    bad.w.requests_ok = UINT64_MAX;
    bad.pb[1].count = bad.pb[3].count = UINT64_MAX;
    bad.pb[1].zero_count = bad.pb[3].zero_count = UINT64_MAX - 3;
    bad.pb[0].count = UINT64_MAX;
    bad.pb[0].zero_count = UINT64_MAX - 3;
    Waferwatch__V1__LatencyWindow *wp[] = {&bad.w};
    ww_batch_t b = WAFERWATCH__V1__BATCH__INIT;
    b.latency_windows = wp;
    b.n_latency_windows = 1;
    s_send_batch(&x.p, 11, 1, &b);
    s_expect_nack(&x.p, WAFERWATCH__V1__NACK_CODE__NACK_INVALID, 1, "latency_windows[0]");

    /* Tokens too: more than a window's duration can produce. */
    s_win_t tok;
    s_win_init(&tok, NODE, "m", start, 10 * WW_NS_PER_S, v, 3);
    tok.w.output_tokens = UINT64_MAX;
    wp[0] = &tok.w;
    s_send_batch(&x.p, 11, 2, &b);
    s_expect_nack(&x.p, WAFERWATCH__V1__NACK_CODE__NACK_INVALID, 2, "output_tokens");

    /* Another stream, the same minute, phase and model. */
    s_win_t good;
    s_win_init(&good, NODE "-2", "m", start, 10 * WW_NS_PER_S, v, 3);
    wp[0] = &good.w;
    s_send_batch(&x.p, 12, 1, &b);
    s_expect_ack(&x.p, 12, 1);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM latency_windows"), 1);
    assert_int_equal(h_query_ll(&x.db, "SELECT sum(requests_ok) FROM latency_rollup_1m"), 3);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM latency_rollup_1m WHERE"
                                       " abs(ww_quantile(ttft, 0.99) - 0.3) < 0.3 * 0.00542"),
                     1);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM latency_windows WHERE"
                                       " abs(ww_quantile(ttft, 0.5) - 0.2) < 0.2 * 0.00542"),
                     1);
    assert_int_equal(h_query_ll(&x.db, "SELECT count FROM ww_hist_le((SELECT ww_merge(e2e)"
                                       " FROM latency_windows), '{0.25}') WHERE le = 0.25"),
                     2);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM ingest_rejects WHERE code ="
                                       " 'invalid' AND epoch = 11"),
                     2);
    s_finish(&x);
}

/* 2. seq is uint64 on the wire and bigint in PostgreSQL: a seq above 2^63 - 1 is refused
 * with a reason (every time: it never becomes a row), 2^63 - 1 itself works and its replay
 * is recognised; an epoch of 2^63 or more is an ordinary stream (same 64 bits stored). */
static void test_seq_beyond_bigint_is_refused_and_high_epochs_work(void **state)
{
    s_env_t x;
    s_start(&x, "hseq");
    for (int k = 0; k < 3; k++) {
        h_peer_send_batch(&x.p, AGENT, NODE, 21, UINT64_MAX, 1000, x.t);
        s_expect_nack(&x.p, WAFERWATCH__V1__NACK_CODE__NACK_INVALID, UINT64_MAX, "seq");
    }
    h_peer_send_batch(&x.p, AGENT, NODE, 21, (UINT64_C(1) << 63) + 1, 1000, x.t);
    s_expect_nack(&x.p, WAFERWATCH__V1__NACK_CODE__NACK_INVALID, (UINT64_C(1) << 63) + 1, "seq");
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM node_samples"), 0);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM ingest_rejects"
                                       " WHERE epoch = 21 AND seq IS NULL AND reason LIKE '%seq%'"),
                     4);

    uint64_t top = (uint64_t)INT64_MAX;
    for (int k = 0; k < 3; k++) {
        h_peer_send_batch(&x.p, AGENT, NODE, 22, top, 1000, x.t);
        s_expect_ack(&x.p, 22, top);
    }
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM node_samples"), 1);
    assert_true(h_query_ll(&x.db, "SELECT last_seq FROM streams WHERE epoch = 22") == INT64_MAX);
    assert_true(h_query_ll(&x.db, "SELECT lost_batches FROM streams WHERE epoch = 22") ==
                INT64_MAX - 1);

    uint64_t high = UINT64_C(0xfffffffffffffff0);
    for (uint64_t seq = 1; seq <= 2; seq++) {
        h_peer_send_batch(&x.p, AGENT, NODE, high, seq, 1000, x.t + (int64_t)seq * WW_NS_PER_S);
        s_expect_ack(&x.p, high, seq);
    }
    h_peer_send_batch(&x.p, AGENT, NODE, high, 1, 1000, x.t + WW_NS_PER_S);
    s_expect_ack(&x.p, high, 1);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM node_samples"), 3);
    PGresult *r = h_query(&x.db, "SELECT ww_epoch_hex(epoch), last_seq, lost_batches FROM streams"
                                 " WHERE epoch < 0");
    assert_int_equal(PQntuples(r), 1);
    assert_string_equal(PQgetvalue(r, 0, 0), "fffffffffffffff0");
    assert_string_equal(PQgetvalue(r, 0, 1), "2");
    assert_string_equal(PQgetvalue(r, 0, 2), "0");
    PQclear(r);
    s_finish(&x);
}

/* 3. Counters are uint32 on the wire and integer in node_samples: a sample whose counter
 * does not fit is refused alone and recorded; INT32_MAX itself is stored as it is. */
static void test_counter_beyond_integer_refuses_its_sample_alone(void **state)
{
    s_env_t x;
    s_start(&x, "hcount");
    ww_node_sample_t s[3];
    ww_node_sample_t *sp[] = {&s[0], &s[1], &s[2]};
    h_sample_init(&s[0], NODE "-a", x.t, 1000);
    h_sample_init(&s[1], NODE "-b", x.t, 1000);
    h_sample_init(&s[2], NODE "-c", x.t, 1000);
    s[0].requests_queued = (uint32_t)INT32_MAX + 1;
    s[1].requests_in_flight = UINT32_MAX;
    s[2].requests_completed = INT32_MAX;
    long n = h_peer_encode_samples(&x.p, AGENT, 31, 1, sp, 3);
    assert_int_equal(zmq_send(x.p.sock, x.p.buf, (size_t)n, 0), n);
    s_expect_ack(&x.p, 31, 1);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM node_samples"), 1);
    assert_true(h_query_ll(&x.db, "SELECT requests_completed FROM node_samples") == INT32_MAX);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM ingest_rejects WHERE code ="
                                       " 'implausible_sample' AND epoch = 31 AND seq = 1"
                                       " AND (reason LIKE '%raw-node-a%requests_queued%'"
                                       " OR reason LIKE '%raw-node-b%requests_in_flight%')"),
                     2);
    s_finish(&x);
}

/* 5. An embedded NUL would truncate a string silently (protobuf-c's strings are C
 * strings): refused with the field named. */
static void test_nul_in_a_string_is_refused(void **state)
{
    s_env_t x;
    s_start(&x, "hnul");
    s_hello_t h;
    s_hello_init(&h, NODE, "site#\x1b[31mEVIL", 41);
    long n = ww_wire_encode(&h.env, &x.p.buf, &x.p.cap);
    assert_true(n > 0);
    uint8_t *site = memmem(x.p.buf, (size_t)n, "site#", 5);
    assert_non_null(site);
    site[4] = '\0'; /* same length on the wire: "site\0\x1b[31mEVIL" */
    assert_int_equal(zmq_send(x.p.sock, x.p.buf, (size_t)n, 0), n);
    s_expect_nack(&x.p, WAFERWATCH__V1__NACK_CODE__NACK_INVALID, 0, "hello.nodes[0].site");
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM nodes"), 0);
    s_finish(&x);
}

/* 6. Batches out of order: each one that is not a duplicate is written and acked, the
 * holes it leaves are counted and uncounted as they fill; the loss count stays exact. */
static void test_out_of_order_batches_are_written_and_loss_stays_exact(void **state)
{
    s_env_t x;
    s_start(&x, "horder");
    const uint64_t order[] = {5, 3, 4, 7};
    for (size_t i = 0; i < 4; i++) {
        h_peer_send_batch(&x.p, AGENT, NODE, 61, order[i], 1000,
                          x.t - 20 * WW_NS_PER_S + (int64_t)order[i] * WW_NS_PER_S);
        s_expect_ack(&x.p, 61, order[i]);
    }
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM node_samples"), 4);
    assert_int_equal(h_query_ll(&x.db, "SELECT lost_batches FROM streams WHERE epoch = 61"), 3);
    /* A replay of a late one is a duplicate, not a second row. */
    h_peer_send_batch(&x.p, AGENT, NODE, 61, 3, 1000, x.t - 17 * WW_NS_PER_S);
    s_expect_ack(&x.p, 61, 3);
    const uint64_t rest[] = {6, 1, 2};
    for (size_t i = 0; i < 3; i++) {
        h_peer_send_batch(&x.p, AGENT, NODE, 61, rest[i], 1000,
                          x.t - 20 * WW_NS_PER_S + (int64_t)rest[i] * WW_NS_PER_S);
        s_expect_ack(&x.p, 61, rest[i]);
    }
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM node_samples"), 7);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(DISTINCT time) FROM node_samples"), 7);
    assert_int_equal(h_query_ll(&x.db, "SELECT lost_batches FROM streams WHERE epoch = 61"), 0);
    assert_int_equal(h_query_ll(&x.db, "SELECT last_seq FROM streams WHERE epoch = 61"), 7);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM stream_holes"), 0);
    s_finish(&x);
}

/* 7. Every refused sample gets its own reject row (up to the bound, then one row counting
 * the rest); a sample with a time outside the accepted range is refused alone. */
static void test_each_refused_sample_is_recorded(void **state)
{
    s_env_t x;
    s_start(&x, "hsamples");
    enum { N = 21 };
    ww_node_sample_t s[N];
    ww_node_sample_t *sp[N];
    char names[N][32];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], NODE "-%02d", i);
        h_sample_init(&s[i], names[i], x.t, 1000);
        sp[i] = &s[i];
    }
    for (int i = 0; i < 5; i++) {
        s[i].power_w = 1e9f; /* implausible */
    }
    long n = h_peer_encode_samples(&x.p, AGENT, 71, 1, sp, 6);
    assert_int_equal(zmq_send(x.p.sock, x.p.buf, (size_t)n, 0), n);
    s_expect_ack(&x.p, 71, 1);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM node_samples"), 1);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(DISTINCT reason) FROM ingest_rejects"
                                       " WHERE seq = 1 AND code = 'implausible_sample'"
                                       " AND reason LIKE '%power_w%'"),
                     5);

    /* 20 bad of 21: 16 rows one by one, one row for the other 4. */
    for (int i = 0; i < N - 1; i++) {
        s[i].power_w = 1e9f;
    }
    s[3].power_w = 1000;
    s[3].time_ns = x.t - INT64_C(8) * 24 * 3600 * WW_NS_PER_S; /* 8 days old */
    n = h_peer_encode_samples(&x.p, AGENT, 71, 2, sp, N);
    assert_int_equal(zmq_send(x.p.sock, x.p.buf, (size_t)n, 0), n);
    s_expect_ack(&x.p, 71, 2);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM node_samples"), 2);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM ingest_rejects WHERE seq = 2"), 17);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM ingest_rejects WHERE seq = 2"
                                       " AND reason LIKE '%raw-node-03%time_ns%'"),
                     1);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM ingest_rejects WHERE seq = 2"
                                       " AND reason LIKE '4 more samples refused%'"),
                     1);
    s_finish(&x);
}

/* 8. A Hello for a node the key may not speak for is recorded with the epoch (and seq 0)
 * its Nack carries. */
static void test_forbidden_hello_is_recorded_with_its_epoch(void **state)
{
    s_env_t x;
    s_start(&x, "hforbid");
    s_hello_t h;
    s_hello_init(&h, "someone-elses-node", "", 81);
    s_send(&x.p, &h.env);
    s_expect_nack(&x.p, WAFERWATCH__V1__NACK_CODE__NACK_FORBIDDEN, 0, "someone-elses-node");
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM ingest_rejects WHERE code ="
                                       " 'forbidden' AND epoch = 81 AND seq = 0"),
                     1);
    s_finish(&x);
}

/* 12. Two parts of one (node, model, window start), in two batches or in one, become one
 * row: counts, durations and histograms added; the rollup counts one window. */
static void test_window_parts_merge_into_one_row(void **state)
{
    s_env_t x;
    s_start(&x, "hparts");
    int64_t start = x.t - x.t % (10 * WW_NS_PER_S) - 60 * WW_NS_PER_S;
    const double a[] = {0.1, 0.2, 0.3}, b2[] = {0.4, 0.5};
    s_win_t p1, p2, q1, q2;
    s_win_init(&p1, NODE, "m", start, 4 * WW_NS_PER_S, a, 3);
    s_win_init(&p2, NODE, "m", start, 6 * WW_NS_PER_S, b2, 2);
    s_win_init(&q1, NODE, "m", start + 10 * WW_NS_PER_S, 3 * WW_NS_PER_S, a, 3);
    s_win_init(&q2, NODE, "m", start + 10 * WW_NS_PER_S, 7 * WW_NS_PER_S, b2, 2);
    Waferwatch__V1__LatencyWindow *wp[2] = {&p1.w};
    ww_batch_t b = WAFERWATCH__V1__BATCH__INIT;
    b.latency_windows = wp;
    b.n_latency_windows = 1;
    s_send_batch(&x.p, 91, 1, &b);
    s_expect_ack(&x.p, 91, 1);
    wp[0] = &p2.w; /* the restarted agent's part, a new stream */
    s_send_batch(&x.p, 92, 1, &b);
    s_expect_ack(&x.p, 92, 1);
    wp[0] = &q1.w; /* both parts of the next window in one batch */
    wp[1] = &q2.w;
    b.n_latency_windows = 2;
    s_send_batch(&x.p, 92, 2, &b);
    s_expect_ack(&x.p, 92, 2);
    PGresult *r = h_query(&x.db, "SELECT duration_s, requests_ok, ww_hist_count(ttft),"
                                 " round(1000 * ww_hist_max(e2e)), parts FROM latency_windows"
                                 " ORDER BY time");
    assert_int_equal(PQntuples(r), 2);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(PQgetvalue(r, i, 0), "10");
        assert_string_equal(PQgetvalue(r, i, 1), "5");
        assert_string_equal(PQgetvalue(r, i, 2), "5");
        assert_string_equal(PQgetvalue(r, i, 3), "500");
        assert_string_equal(PQgetvalue(r, i, 4), "2");
    }
    PQclear(r);
    assert_int_equal(h_query_ll(&x.db, "SELECT sum(windows) FROM latency_rollup_1m"), 2);
    assert_int_equal(h_query_ll(&x.db, "SELECT sum(requests_ok) FROM latency_rollup_1m"), 10);
    s_finish(&x);
}

/* A group far larger than one COPY chunk (the writer streams its COPYs in chunks while it
 * encodes them): every sample and window is stored once, exactly; a second part of a window
 * stored earlier, found by the direct COPY only near its end, is merged (the transaction is
 * redone staged), and the rollups count each window once. */
static void test_a_group_of_many_copy_chunks_is_written_whole(void **state)
{
    enum { NS = 3000, NW = 1500 };
    s_env_t x;
    s_start(&x, "hchunks");
    int64_t start = x.t - x.t % (60 * WW_NS_PER_S) - 120 * WW_NS_PER_S;
    const double a[] = {0.1, 0.2, 0.3}, b2[] = {0.4, 0.5};
    static s_win_t first, wins[NW];
    static char names[NW > NS ? NW : NS][32];
    static ww_node_sample_t s[NS];
    static ww_node_sample_t *sp[NS];
    Waferwatch__V1__LatencyWindow *wp[NW];
    /* The first part of the last node's window, stored alone first. */
    snprintf(names[NW - 1], sizeof names[0], NODE "-%05d", NW - 1);
    s_win_init(&first, names[NW - 1], "m", start, 4 * WW_NS_PER_S, a, 3);
    wp[0] = &first.w;
    ww_batch_t b = WAFERWATCH__V1__BATCH__INIT;
    b.latency_windows = wp;
    b.n_latency_windows = 1;
    s_send_batch(&x.p, 71, 1, &b);
    s_expect_ack(&x.p, 71, 1);
    for (int i = 0; i < NS; i++) {
        snprintf(names[i], sizeof names[0], NODE "-%05d", i);
        h_sample_init(&s[i], names[i], start + (i % 60) * WW_NS_PER_S, (float)(1000 + i));
        sp[i] = &s[i];
    }
    for (int i = 0; i < NW; i++) {
        /* the last one: the second part of the window stored above */
        s_win_init(&wins[i], names[i], "m", start + (i == NW - 1 ? 0 : 10 * WW_NS_PER_S),
                   i == NW - 1 ? 6 * WW_NS_PER_S : 10 * WW_NS_PER_S, i == NW - 1 ? b2 : a,
                   i == NW - 1 ? 2 : 3);
        wp[i] = &wins[i].w;
    }
    b.samples = sp;
    b.n_samples = NS;
    b.n_latency_windows = NW;
    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    env.epoch = 72;
    env.seq = 1;
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_BATCH;
    env.batch = &b;
    s_send(&x.p, &env);
    assert_true(ww_wire_encode(&env, &x.p.buf, &x.p.cap) > 256 * 1024); /* several chunks */
    s_expect_ack(&x.p, 72, 1);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM node_samples"), NS);
    assert_int_equal(h_query_ll(&x.db, "SELECT sum(power_w::bigint - 1000"
                                       " - substr(node_id, length(node_id) - 4)::int)"
                                       " FROM node_samples"),
                     0);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(DISTINCT (node_id, time)) FROM node_samples"),
                     NS);
    assert_int_equal(h_query_ll(&x.db, "SELECT count(*) FROM latency_windows"), NW);
    assert_int_equal(h_query_ll(&x.db, "SELECT sum(requests_ok) FROM latency_windows"),
                     3 * (NW - 1) + 5);
    assert_int_equal(
        h_query_ll(&x.db, "SELECT parts FROM latency_windows WHERE node_id = '" NODE "-01499'"), 2);
    assert_int_equal(h_query_ll(&x.db, "SELECT sum(windows) FROM latency_rollup_1m"), NW);
    assert_int_equal(h_query_ll(&x.db, "SELECT sum(requests_ok) FROM latency_rollup_1m"),
                     3 * (NW - 1) + 5);
    assert_int_equal(h_query_ll(&x.db, "SELECT sum(ww_hist_count(ttft)) FROM latency_rollup_1m"),
                     3 * (NW - 1) + 5);
    s_finish(&x);
}

/* An outage report becomes one row, whatever the number of times it is sent. */
static void test_outage_report_is_recorded_once(void **state)
{
    s_env_t x;
    s_start(&x, "houtage");
    Waferwatch__V1__Outage o = WAFERWATCH__V1__OUTAGE__INIT;
    o.from_ns = x.t - 30 * WW_NS_PER_S;
    o.to_ns = x.t;
    o.lost_ticks = 29;
    o.lost_requests = 123;
    o.cause = (char *)"crash";
    Waferwatch__V1__Outage *op[] = {&o};
    ww_node_sample_t s;
    ww_node_sample_t *sp[] = {&s};
    h_sample_init(&s, NODE, x.t, 1000);
    ww_batch_t b = WAFERWATCH__V1__BATCH__INIT;
    b.samples = sp;
    b.n_samples = 1;
    b.outages = op;
    b.n_outages = 1;
    s_send_batch(&x.p, 101, 1, &b);
    s_expect_ack(&x.p, 101, 1);
    s_send_batch(&x.p, 101, 1, &b);
    s_expect_ack(&x.p, 101, 1);
    PGresult *r =
        h_query(&x.db, "SELECT extract(epoch FROM to_time - from_time), lost_ticks, lost_requests,"
                       " cause FROM stream_outages WHERE epoch = 101");
    assert_int_equal(PQntuples(r), 1);
    assert_int_equal(atoi(PQgetvalue(r, 0, 0)), 30);
    assert_string_equal(PQgetvalue(r, 0, 1), "29");
    assert_string_equal(PQgetvalue(r, 0, 2), "123");
    assert_string_equal(PQgetvalue(r, 0, 3), "crash");
    PQclear(r);
    s_finish(&x);
}

/* 1. A message PostgreSQL refuses as data (here: its window would push a rollup row,
 * left over by an older collector, past bigint) costs no other message of its group:
 * B and C are held in one group while PostgreSQL is down, then B alone is Nacked
 * refused_by_database and recorded, C is committed and acked. */
static void test_a_message_refused_by_postgresql_costs_its_group_nothing(void **state)
{
    h_db_t db;
    h_pg_t pg;
    h_pg_start(&pg, &db, "hisolate");
    h_secure(db.dir, AGENT, NODE "*");
    char endpoint[256];
    pid_t collector = h_collector_spawn(db.dir, "tcp://127.0.0.1:*", pg.conninfo, "collector",
                                        endpoint, sizeof endpoint);
    h_peer_t p;
    h_peer_open(&p, endpoint, db.dir, "agent", NULL, 2000);
    int64_t t = ww_time_next_tick(ww_time_now_ns(), WW_NS_PER_S) - 10 * WW_NS_PER_S;
    int64_t start = t - t % (60 * WW_NS_PER_S);
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO latency_rollup_1m VALUES (to_timestamp(%lld), '', 'poison', 1,"
             " 9223372036854775806, 0, 0, 0, 0, 0, %s, %s, %s, %s)",
             (long long)(start / WW_NS_PER_S), "ww_hist_make(6,0,0,NULL,NULL,0,0,0,0,'{}')",
             "ww_hist_make(6,0,0,NULL,NULL,0,0,0,0,'{}')",
             "ww_hist_make(6,0,0,NULL,NULL,0,0,0,0,'{}')",
             "ww_hist_make(6,0,0,NULL,NULL,0,0,0,0,'{}')");
    PQclear(h_query(&db, sql));

    h_pg_cmd(&pg, "pause");
    h_peer_send_batch(&p, AGENT, NODE "-a", 1, 1, 1000, t); /* A: held in the writer */
    h_sleep_ms(500);
    const double v[] = {0.1, 0.2, 0.3};
    s_win_t w;
    s_win_init(&w, NODE "-b", "poison", start, 10 * WW_NS_PER_S, v, 3);
    Waferwatch__V1__LatencyWindow *wp[] = {&w.w};
    ww_batch_t b = WAFERWATCH__V1__BATCH__INIT;
    b.latency_windows = wp;
    b.n_latency_windows = 1;
    s_send_batch(&p, 2, 1, &b);                             /* B */
    h_peer_send_batch(&p, AGENT, NODE "-c", 3, 1, 1000, t); /* C */
    h_sleep_ms(500);
    h_pg_cmd(&pg, "resume");
    PQreset(db.conn);

    int acked[4] = {0}, nacked[4] = {0};
    for (int k = 0; k < 60 && acked[1] + acked[3] + nacked[2] < 3; k++) {
        ww_envelope_t *e = h_peer_recv(&p);
        if (!e) {
            continue;
        }
        if (e->body_case == WAFERWATCH__V1__ENVELOPE__BODY_ACK && e->ack->epoch <= 3) {
            acked[e->ack->epoch]++;
        } else if (e->body_case == WAFERWATCH__V1__ENVELOPE__BODY_NACK && e->nack->epoch <= 3) {
            assert_int_equal(e->nack->code, WAFERWATCH__V1__NACK_CODE__NACK_INVALID);
            nacked[e->nack->epoch]++;
        }
        ww_wire_free(&e);
    }
    assert_true(acked[1] >= 1 && acked[3] >= 1);
    assert_int_equal(nacked[2], 1);
    assert_int_equal(acked[2] + nacked[1] + nacked[3], 0);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples"), 2);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM latency_windows"), 0);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM ingest_rejects WHERE code ="
                                     " 'refused_by_database' AND epoch = 2 AND seq = 1"),
                     1);
    h_peer_close(&p);
    assert_int_equal(h_stop(collector, 10000), 0);
    h_pg_stop(&pg, &db);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_extreme_window_is_refused_and_costs_no_other_stream),
    cmocka_unit_test(test_seq_beyond_bigint_is_refused_and_high_epochs_work),
    cmocka_unit_test(test_counter_beyond_integer_refuses_its_sample_alone),
    cmocka_unit_test(test_nul_in_a_string_is_refused),
    cmocka_unit_test(test_out_of_order_batches_are_written_and_loss_stays_exact),
    cmocka_unit_test(test_each_refused_sample_is_recorded),
    cmocka_unit_test(test_forbidden_hello_is_recorded_with_its_epoch),
    cmocka_unit_test(test_window_parts_merge_into_one_row),
    cmocka_unit_test(test_a_group_of_many_copy_chunks_is_written_whole),
    cmocka_unit_test(test_outage_report_is_recorded_once),
    cmocka_unit_test(test_a_message_refused_by_postgresql_costs_its_group_nothing),
};

WW_TEST_MAIN(tests, NULL, NULL)
