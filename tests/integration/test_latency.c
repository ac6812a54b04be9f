/* Per-request latency end to end: the agent records the simulated requests into
 * histogram windows, the collector stores them, and SQL percentiles over the stored
 * windows match the exact percentiles of the requests the simulation produced. */
#include "harness.h"
#include "verify.h"
#include "ww_agent_conf.h"
#include "ww_sim.h"
#include "ww_test.h"
#include "ww_time.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODES 2

typedef struct {
    double *v;
    size_t n, cap;
} s_vec_t;

static void s_push(s_vec_t *a, double x)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 1024;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        assert_non_null(a->v);
    }
    a->v[a->n++] = x;
}

static void test_sql_percentiles_match_what_was_sent(void **state)
{
    h_db_t db;
    h_db_create(&db, "lat");
    h_secure(db.dir, "lat-agent", "lat-node-*");
    char endpoint[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    char spool[256];
    snprintf(spool, sizeof spool, "%s/spool", db.dir);
    char *argv[] = {(char *)WW_AGENT_BIN,
                    (char *)"--spool-dir",
                    spool,
                    (char *)"--collector",
                    endpoint,
                    (char *)"--agent-id",
                    (char *)"lat-agent",
                    (char *)"--node-id",
                    (char *)"lat-node",
                    (char *)"--phase",
                    (char *)"phase-l",
                    (char *)"--sim-nodes",
                    (char *)"2",
                    (char *)"--sim-seed",
                    (char *)"7",
                    (char *)"--interval",
                    (char *)"100ms",
                    (char *)"--latency-window",
                    (char *)"1s",
                    (char *)"--run-for",
                    (char *)"4s",
                    NULL};
    int argc = (int)(sizeof argv / sizeof argv[0]) - 1;
    char log[256];
    snprintf(log, sizeof log, "%s/agent.log", db.dir);
    h_agent_wait_ok(h_spawn(argv, log), log, 60000);
    long long ticks = h_log_value(log, "stats:", "ticks");
    assert_true(ticks > 30);

    /* Replay the simulation over the same ticks: every request the agent recorded. */
    ww_agent_conf_t conf;
    memset(&conf, 0, sizeof conf);
    ww_cfg_err_t err;
    assert_int_equal(ww_cfg_parse_args(&ww_agent_schema, &conf, argc, argv, &err), WW_CFG_RUN);
    assert_int_equal(ww_agent_conf_finish(&conf, &err), 0);
    int64_t t0 = h_query_ll(&db, "SELECT (extract(epoch from min(time)) * 1000000)::bigint"
                                 " FROM node_samples") *
                 1000;
    s_vec_t ttft = {0}, tpot = {0}, e2e = {0}, queue = {0};
    long long ok = 0, failed = 0, rejected = 0, timeouts = 0, out_tokens = 0;
    for (int node = 0; node < NODES; node++) {
        void *sim = NULL;
        assert_int_equal(ww_sim_source.open(&conf.sim, (unsigned)node, t0, &sim), 0);
        for (long long k = 0; k < ticks; k++) {
            ww_reading_t rd;
            assert_int_equal(ww_sim_source.sample(sim, t0 + k * conf.interval_ns, &rd), 0);
            ww_request_t req[256];
            int got;
            do {
                got = ww_sim_source.poll_requests(sim, req, 256);
                for (int i = 0; i < got; i++) {
                    const ww_request_t *r = &req[i];
                    if (r->status == WW_REQ_OK) {
                        ok++;
                        out_tokens += r->output_tokens;
                        s_push(&ttft, (double)(r->first_token_ns - r->arrival_ns) / 1e9);
                        s_push(&e2e, (double)(r->done_ns - r->arrival_ns) / 1e9);
                        s_push(&queue, (double)(r->start_ns - r->arrival_ns) / 1e9);
                        if (r->output_tokens >= 2) {
                            s_push(&tpot, (double)(r->done_ns - r->first_token_ns) / 1e9 /
                                              (double)(r->output_tokens - 1));
                        }
                    } else if (r->status == WW_REQ_ERROR) {
                        failed++;
                        s_push(&queue, (double)(r->start_ns - r->arrival_ns) / 1e9);
                    } else if (r->status == WW_REQ_REJECTED) {
                        rejected++;
                    } else {
                        timeouts++;
                    }
                }
            } while (got == 256);
        }
        ww_sim_source.close(&sim);
    }
    assert_true(ok > 100);

    /* Every request is in exactly one stored window. */
    assert_int_equal(h_query_ll(&db, "SELECT sum(requests_ok) FROM latency_windows"), ok);
    assert_int_equal(h_query_ll(&db, "SELECT sum(requests_error) FROM latency_windows"), failed);
    assert_int_equal(h_query_ll(&db, "SELECT sum(requests_rejected) FROM latency_windows"),
                     rejected);
    assert_int_equal(h_query_ll(&db, "SELECT sum(requests_timeout) FROM latency_windows"),
                     timeouts);
    assert_int_equal(h_query_ll(&db, "SELECT sum(output_tokens) FROM latency_windows"), out_tokens);
    assert_int_equal(h_query_ll(&db, "SELECT ww_hist_count(ww_merge(ttft)) FROM latency_windows"),
                     ok);
    /* Windows start on the sampling interval's grid (100 ms), each node's on one grid of
     * the window (1 s) shifted by its own phase, and carry all three models. */
    assert_int_equal(h_query_ll(&db,
                                "SELECT count(*) FROM latency_windows"
                                " WHERE extract(microseconds from time)::bigint % 100000 <> 0"),
                     0);
    assert_int_equal(h_query_ll(&db, "SELECT count(DISTINCT (node_id,"
                                     " (extract(epoch from time) * 1000)::bigint % 1000))"
                                     " FROM latency_windows"),
                     2);
    assert_int_equal(h_query_ll(&db, "SELECT count(DISTINCT model) FROM latency_windows"), 3);

    /* SQL percentiles over the raw windows and over the per-minute rollups. */
    h_verify_quantiles(&db, "ttft", ttft.v, ttft.n, "latency_windows");
    h_verify_quantiles(&db, "tpot", tpot.v, tpot.n, "latency_windows");
    h_verify_quantiles(&db, "e2e", e2e.v, e2e.n, "latency_windows");
    h_verify_quantiles(&db, "queue", queue.v, queue.n, "latency_windows");
    h_verify_quantiles(&db, "ttft", ttft.v, ttft.n, "latency_rollup_1m");
    h_verify_quantiles(&db, "tpot", tpot.v, tpot.n, "latency_rollup_1m");
    assert_int_equal(h_query_ll(&db, "SELECT sum(requests_ok) FROM latency_rollup_1m"
                                     " WHERE phase = 'phase-l'"),
                     ok);
    assert_int_equal(h_query_ll(&db, "SELECT sum(windows) FROM latency_rollup_1m"),
                     h_query_ll(&db, "SELECT count(*) FROM latency_windows"));
    /* The collector merges the rollups itself: each row must be exactly what SQL's
     * ww_merge makes of the same windows. */
    assert_int_equal(h_verify_rollups(&db), 0);
    assert_true(h_query_ll(&db, "SELECT count(*) FROM latency_rollup_1m") > 0);

    free(ttft.v);
    free(tpot.v);
    free(e2e.v);
    free(queue.v);
    ww_cfg_free(&ww_agent_schema, &conf);
    assert_int_equal(h_stop(collector, 10000), 0);
    h_db_drop(&db);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sql_percentiles_match_what_was_sent),
};
WW_TEST_MAIN(tests, NULL, NULL)
