/* Agent restarts through the real binaries (issue 14 item 12): a clean stop and restart
 * inside latency windows leaves one row per (node, model, window start) whose parts and
 * the recorded outage make up the window; a SIGKILL and restart records an outage of cause
 * crash from the last spooled tick, with the requests lost. Each test runs its own
 * PostgreSQL cluster and collector. */
#include "harness.h"
#include "ww_test.h"
#include "ww_time.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define IV_MS 100

typedef struct {
    h_pg_t pg;
    h_db_t db;
    char config[256];
    char spool[256];
    char listen[256];
    char endpoint[256];
    char *argv[16];
    int argc;
} s_fx_t;

static void s_fx_init(s_fx_t *fx, const char *tag)
{
    memset(fx, 0, sizeof *fx);
    h_pg_start(&fx->pg, &fx->db, tag);
    h_secure(fx->db.dir, "restart-agent", "restart-node-*");
    snprintf(fx->config, sizeof fx->config, "%s/agent.yaml", fx->db.dir);
    snprintf(fx->spool, sizeof fx->spool, "%s/spool", fx->db.dir);
    snprintf(fx->listen, sizeof fx->listen, "ipc://%s/collector.sock", fx->db.dir);
    FILE *f = fopen(fx->config, "w");
    assert_non_null(f);
    fprintf(f,
            "agent:\n  id: restart-agent\n  interval: %dms\n  latency_window: 2s\n"
            "  drain_timeout: 20s\n"
            "collector:\n  ack_timeout: 500ms\n"
            "node:\n  id: restart-node\n  phase: phase-r\n"
            "sim:\n  nodes: 2\n  seed: 5\n",
            IV_MS);
    fclose(f);
    int n = 0;
    fx->argv[n++] = (char *)WW_AGENT_BIN;
    fx->argv[n++] = (char *)"--config";
    fx->argv[n++] = fx->config;
    fx->argv[n++] = (char *)"--spool-dir";
    fx->argv[n++] = fx->spool;
    fx->argv[n++] = (char *)"--collector";
    fx->argv[n++] = fx->endpoint;
    fx->argv[n] = NULL;
    fx->argc = n;
}

static void s_run_for(s_fx_t *fx, const char *run_for)
{
    fx->argv[fx->argc] = (char *)"--run-for";
    fx->argv[fx->argc + 1] = (char *)run_for;
    fx->argv[fx->argc + 2] = NULL;
}

static void s_log(s_fx_t *fx, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s.log", fx->db.dir, name);
}

/* (node, model, window start) is a key of latency_windows. */
static void s_assert_one_row_per_window(s_fx_t *fx)
{
    assert_int_equal(h_query_ll(&fx->db, "SELECT count(*) FROM (SELECT 1 FROM latency_windows"
                                         " GROUP BY node_id, model, time HAVING count(*) > 1) d"),
                     0);
}

static void test_clean_restart_inside_windows_merges_parts(void **state)
{
    (void)state;
    s_fx_t fx;
    s_fx_init(&fx, "rstop");
    pid_t collector = h_collector_spawn(fx.db.dir, fx.listen, fx.pg.conninfo, "collector",
                                        fx.endpoint, sizeof fx.endpoint);
    char log1[256], log2[256];
    s_log(&fx, "agent1", log1, sizeof log1);
    s_log(&fx, "agent2", log2, sizeof log2);
    s_run_for(&fx, "3500ms"); /* stops inside a window of 2 s */
    h_agent_wait_ok(h_spawn(fx.argv, log1), log1, 60000);
    s_run_for(&fx, "4s"); /* runs past the end of that window */
    h_agent_wait_ok(h_spawn(fx.argv, log2), log2, 60000);
    long long to = h_log_value(log2, "outage:", "to_ns");
    long long from = h_log_value(log2, "outage:", "from_ns");
    assert_true(from > 0 && to > from);
    assert_int_equal(h_log_value(log2, "outage:", "lost_requests"), 0);

    s_assert_one_row_per_window(&fx);
    /* The outage, as the collector stored it. */
    assert_int_equal(h_query_ll(&fx.db, "SELECT count(*) FROM stream_outages WHERE agent_id ="
                                        " 'restart-agent' AND cause = 'stop' AND lost_requests"
                                        " = 0"),
                     1);
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT lost_ticks FROM stream_outages WHERE agent_id = 'restart-agent'"
             " AND to_time = to_timestamp(%lld / 1e9) AND from_time = to_timestamp(%lld / 1e9)",
             to, from);
    assert_int_equal(h_query_ll(&fx.db, sql), (to - from) / (IV_MS * 1000000LL) - 1);
    /* Windows sent in two parts are those that span the restart; each is one row, and its
     * parts with the outage between them make up the window exactly (in microseconds). */
    long long two = h_query_ll(&fx.db, "SELECT count(*) FROM latency_windows WHERE parts = 2");
    assert_true(two > 0);
    assert_int_equal(h_query_ll(&fx.db, "SELECT count(*) FROM latency_windows WHERE parts > 2"), 0);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM latency_windows WHERE parts = 2"
             " AND time <= to_timestamp(%lld / 1e9) AND time + interval '2 s' > "
             "to_timestamp(%lld / 1e9) AND round((duration_s + %lld / 1e9) * 1e6) = 2e6",
             from, to, to - from);
    assert_int_equal(h_query_ll(&fx.db, sql), two);
    assert_int_equal(h_stop(collector, 15000), 0);
    h_pg_stop(&fx.pg, &fx.db);
}

static void test_sigkill_restart_records_a_crash_outage(void **state)
{
    (void)state;
    s_fx_t fx;
    s_fx_init(&fx, "rkill");
    pid_t collector = h_collector_spawn(fx.db.dir, fx.listen, fx.pg.conninfo, "collector",
                                        fx.endpoint, sizeof fx.endpoint);
    char log1[256], log2[256];
    s_log(&fx, "agent1", log1, sizeof log1);
    s_log(&fx, "agent2", log2, sizeof log2);
    pid_t agent = h_spawn(fx.argv, log1);
    h_sleep_ms(2950); /* killed mid-window */
    kill(agent, SIGKILL);
    waitpid(agent, NULL, 0);
    h_sleep_ms(700);
    s_run_for(&fx, "2s");
    h_agent_wait_ok(h_spawn(fx.argv, log2), log2, 60000);
    long long to = h_log_value(log2, "outage:", "to_ns");
    long long from = h_log_value(log2, "outage:", "from_ns");
    long long lost = h_log_value(log2, "outage:", "lost_requests");
    long long ticks = h_log_value(log2, "outage:", "lost_ticks");
    print_message("SIGKILL: outage %.1f s, %lld ticks and %lld requests lost\n",
                  (double)(to - from) / 1e9, ticks, lost);
    assert_true(from > 0 && to > from);
    assert_int_equal(ticks, (to - from) / (IV_MS * 1000000LL) - 1);
    assert_true(lost > 0); /* the sim completes requests every tick; windows of 2 s */
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM stream_outages WHERE agent_id = 'restart-agent'"
             " AND cause = 'crash' AND from_time = to_timestamp(%lld / 1e9)"
             " AND to_time = to_timestamp(%lld / 1e9) AND lost_ticks = %lld"
             " AND lost_requests = %lld",
             from, to, ticks, lost);
    assert_int_equal(h_query_ll(&fx.db, sql), 1);
    /* The hole in node_samples is exactly the outage: the last row before it is its
     * from_time, the first after it its to_time. */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM node_samples WHERE time > to_timestamp(%lld / 1e9)"
             " AND time < to_timestamp(%lld / 1e9)",
             from, to);
    assert_int_equal(h_query_ll(&fx.db, sql), 0);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM node_samples WHERE time = to_timestamp(%lld / 1e9)", from);
    assert_int_equal(h_query_ll(&fx.db, sql), 2);
    s_assert_one_row_per_window(&fx);
    assert_int_equal(h_stop(collector, 15000), 0);
    h_pg_stop(&fx.pg, &fx.db);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_clean_restart_inside_windows_merges_parts),
    cmocka_unit_test(test_sigkill_restart_records_a_crash_outage),
};
WW_TEST_MAIN(tests, NULL, NULL)
