/* Delivery guarantees under faults: agents send at a known rate, every sample is
 * checkable against a replay of the deterministic simulation (verify.h), and after each
 * fault the stored rows must show 0 lost, 0 duplicated, 0 altered. Each test runs its own
 * PostgreSQL cluster, since several of them crash or pause it. */
#include "harness.h"
#include "verify.h"
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
    char config[256]; /* agent YAML */
    char spool[256];
    char listen[256]; /* the collector's stable ipc:// endpoint */
    char endpoint[256];
    char *argv[24];
    int argc;
} s_fx_t;

/* A private cluster, an agent config (fast acks, small memory window) and argv. */
static void s_fx_init(s_fx_t *fx, const char *tag, const char *extra_yaml, const char *run_for)
{
    memset(fx, 0, sizeof *fx);
    h_pg_start(&fx->pg, &fx->db, tag);
    h_secure(fx->db.dir, "fault-agent", "fault-node-*");
    snprintf(fx->config, sizeof fx->config, "%s/agent.yaml", fx->db.dir);
    snprintf(fx->spool, sizeof fx->spool, "%s/spool", fx->db.dir);
    snprintf(fx->listen, sizeof fx->listen, "ipc://%s/collector.sock", fx->db.dir);
    FILE *f = fopen(fx->config, "w");
    assert_non_null(f);
    fprintf(f,
            "agent:\n  id: fault-agent\n  interval: %dms\n  latency_window: 1s\n"
            "  drain_timeout: 20s\n"
            "collector:\n  ack_timeout: 500ms\n  queue_batches: 8\n  failover_after: 1s\n"
            "node:\n  id: fault-node\n  phase: phase-f\n"
            "sim:\n  nodes: 2\n  seed: 11\n%s",
            IV_MS, extra_yaml ? extra_yaml : "");
    fclose(f);
    char **a = fx->argv;
    int n = 0;
    a[n++] = (char *)WW_AGENT_BIN;
    a[n++] = (char *)"--config";
    a[n++] = fx->config;
    a[n++] = (char *)"--spool-dir";
    a[n++] = fx->spool;
    a[n++] = (char *)"--collector";
    a[n++] = fx->endpoint[0] ? fx->endpoint : fx->listen;
    if (run_for) {
        a[n++] = (char *)"--run-for";
        a[n++] = (char *)run_for;
    }
    a[n] = NULL;
    fx->argc = n;
}

static pid_t s_collector(s_fx_t *fx, const char *name)
{
    return h_collector_spawn(fx->db.dir, fx->listen, fx->pg.conninfo, name, fx->endpoint,
                             sizeof fx->endpoint);
}

static void s_kill9(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static char *s_log(s_fx_t *fx, const char *name)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s.log", fx->db.dir, name);
    return path;
}

/* Waits for the agent to exit 0 and returns its first and last tick. */
static void s_agent_done(s_fx_t *fx, pid_t agent, const char *log, int64_t *first, int64_t *last)
{
    h_agent_wait_ok(agent, log, 90000);
    *first = h_log_value(log, "agent ", "first_tick");
    *last = h_verify_last_tick(log, IV_MS * WW_NS_PER_MS);
}

static void s_verify(s_fx_t *fx, int64_t first, int64_t last, const char *what)
{
    h_verify_t v;
    h_verify_sim(&fx->db, fx->argc, fx->argv, first, last, &v);
    h_verify_assert_clean(&v, what);
    assert_int_equal(v.rows + v.lost, v.ticks * 2);
}

static void test_harness_detects_lost_duplicated_and_altered_rows(void **state)
{
    s_fx_t fx;
    s_fx_init(&fx, "oracle", NULL, "2s");
    pid_t collector = s_collector(&fx, "collector");
    char *log = s_log(&fx, "agent");
    int64_t first, last;
    s_agent_done(&fx, h_spawn(fx.argv, log), log, &first, &last);
    s_verify(&fx, first, last, "clean run");

    h_verify_t v;
    /* One row deleted: one lost. */
    PQclear(h_query(&fx.db, "DELETE FROM node_samples WHERE ctid = (SELECT ctid FROM "
                            "node_samples WHERE node_id = 'fault-node-1' ORDER BY time"
                            " OFFSET 5 LIMIT 1)"));
    h_verify_sim(&fx.db, fx.argc, fx.argv, first, last, &v);
    assert_int_equal(v.lost, 1);
    assert_int_equal(v.duplicated, 0);
    /* One row stored twice: one duplicated. */
    PQclear(h_query(&fx.db, "INSERT INTO node_samples SELECT * FROM node_samples WHERE"
                            " node_id = 'fault-node-0' ORDER BY time OFFSET 3 LIMIT 1"));
    h_verify_sim(&fx.db, fx.argc, fx.argv, first, last, &v);
    assert_int_equal(v.lost, 1);
    assert_int_equal(v.duplicated, 1);
    assert_int_equal(v.altered, 0);
    /* One value changed by the smallest step a float allows: one altered. */
    PQclear(h_query(&fx.db, "UPDATE node_samples SET power_w = power_w * 1.0000001"
                            " WHERE ctid = (SELECT ctid FROM node_samples WHERE"
                            " node_id = 'fault-node-0' ORDER BY time OFFSET 10 LIMIT 1)"));
    h_verify_sim(&fx.db, fx.argc, fx.argv, first, last, &v);
    assert_int_equal(v.altered, 1);
    assert_int_equal(h_stop(collector, 15000), 0);
    h_pg_stop(&fx.pg, &fx.db);
}

static void test_collector_sigkill_and_restart(void **state)
{
    s_fx_t fx;
    s_fx_init(&fx, "ckill", NULL, "7s");
    pid_t collector = s_collector(&fx, "collector");
    char *log = s_log(&fx, "agent");
    pid_t agent = h_spawn(fx.argv, log);
    for (int round = 0; round < 3; round++) {
        h_sleep_ms(1500);
        s_kill9(collector);
        h_sleep_ms(500);
        collector = s_collector(&fx, "collector");
    }
    int64_t first, last;
    s_agent_done(&fx, agent, log, &first, &last);
    s_verify(&fx, first, last, "collector killed 3 times");
    assert_true(h_log_value(log, "stats:", "connects") >= 4);
    assert_int_equal(h_stop(collector, 15000), 0);
    h_pg_stop(&fx.pg, &fx.db);
}

static void test_postgres_crash_restart_and_backend_terminated(void **state)
{
    s_fx_t fx;
    s_fx_init(&fx, "pgcrash", NULL, "7s");
    pid_t collector = s_collector(&fx, "collector");
    char *log = s_log(&fx, "agent");
    pid_t agent = h_spawn(fx.argv, log);
    h_sleep_ms(1500);
    h_pg_cmd(&fx.pg, "restart-immediate"); /* mid-batch: no shutdown checkpoint */
    h_sleep_ms(2000);
    assert_int_equal(h_query_ll(&fx.db, "SELECT count(pg_terminate_backend(pid)) FROM"
                                        " pg_stat_activity WHERE application_name = "
                                        "'wwcollector'"),
                     1);
    h_sleep_ms(1500);
    h_pg_cmd(&fx.pg, "restart-immediate");
    int64_t first, last;
    s_agent_done(&fx, agent, log, &first, &last);
    s_verify(&fx, first, last, "PostgreSQL crashed twice, backend terminated once");
    assert_int_equal(h_stop(collector, 15000), 0);
    h_pg_stop(&fx.pg, &fx.db);
}

static void test_postgres_down_longer_than_the_memory_window(void **state)
{
    s_fx_t fx;
    s_fx_init(&fx, "pgdown", NULL, "8s");
    pid_t collector = s_collector(&fx, "collector");
    char *log = s_log(&fx, "agent");
    pid_t agent = h_spawn(fx.argv, log);
    h_sleep_ms(1000);
    h_pg_cmd(&fx.pg, "pause");
    h_sleep_ms(4000); /* 40 batches against a memory window of 8: the spool holds them */
    h_pg_cmd(&fx.pg, "resume");
    int64_t first, last;
    s_agent_done(&fx, agent, log, &first, &last);
    s_verify(&fx, first, last, "PostgreSQL down 4 s");
    assert_int_equal(h_log_value(log, "stats:", "dropped"), 0);
    assert_int_equal(h_stop(collector, 15000), 0);
    h_pg_stop(&fx.pg, &fx.db);
}

static void test_agent_sigkill_and_restart_replays_the_spool(void **state)
{
    s_fx_t fx;
    s_fx_init(&fx, "akill", NULL, NULL);
    pid_t collector = s_collector(&fx, "collector");
    char log1[256], log2[256];
    snprintf(log1, sizeof log1, "%s", s_log(&fx, "agent1"));
    snprintf(log2, sizeof log2, "%s", s_log(&fx, "agent2"));
    /* Run 1: killed while writing; the collector is paused-by-kill too, so that the
     * spool holds unacked batches at the moment of the kill. */
    pid_t agent = h_spawn(fx.argv, log1);
    h_sleep_ms(1500);
    s_kill9(collector);
    h_sleep_ms(1230);
    int64_t killed_at = ww_time_now_ns();
    s_kill9(agent);
    collector = s_collector(&fx, "collector");
    long long first1 = h_log_value(log1, "agent ", "first_tick");
    assert_true(first1 > 0);
    /* Run 2: same spool, 2 s more. */
    fx.argv[fx.argc++] = (char *)"--run-for";
    fx.argv[fx.argc++] = (char *)"2s";
    fx.argv[fx.argc] = NULL;
    int64_t first2, last2;
    s_agent_done(&fx, h_spawn(fx.argv, log2), log2, &first2, &last2);
    assert_true(h_log_value(log2, "stats:", "replayed") > 5);
    /* Run 1's rows: contiguous from its first tick to its last spooled tick, which is at
     * most two ticks before the kill (the tick being written may be lost, nothing else). */
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT (extract(epoch from max(time)) * 1000000)::bigint * 1000 FROM node_samples"
             " WHERE time < to_timestamp(%lld / 1e9)",
             (long long)first2);
    long long last1 = h_query_ll(&fx.db, sql);
    assert_true(last1 >= killed_at - 3 * IV_MS * WW_NS_PER_MS);
    h_verify_t v;
    h_verify_sim(&fx.db, fx.argc, fx.argv, first1, last1, &v);
    h_verify_assert_clean(&v, "run 1 (SIGKILLed)");
    s_verify(&fx, first2, last2, "run 2 (after the restart)");
    assert_int_equal(h_stop(collector, 15000), 0);
    h_pg_stop(&fx.pg, &fx.db);
}

static void test_spool_full_drop_policy_loss_counted_exactly(void **state)
{
    s_fx_t fx;
    s_fx_init(&fx, "drop",
              "spool:\n  max_bytes: 8192\n  segment_bytes: 2048\n  policy: drop_oldest\n", "8s");
    char *log = s_log(&fx, "agent");
    /* No collector for the first 5 s: the spool fills and drops its oldest batches (8 KiB
     * is ~25 batches, full in ~2.5 s at 10 Hz: 16 KiB was full only as the collector came
     * up on a loaded machine, and then every batch dropped had been sent already). */
    pid_t agent = h_spawn(fx.argv, log);
    h_sleep_ms(5000);
    pid_t collector = s_collector(&fx, "collector");
    int64_t first, last;
    s_agent_done(&fx, agent, log, &first, &last);
    long long dropped = h_log_value(log, "stats:", "dropped");
    assert_true(dropped > 0);
    h_verify_t v;
    h_verify_sim(&fx.db, fx.argc, fx.argv, first, last, &v);
    assert_int_equal(v.duplicated, 0);
    assert_int_equal(v.altered, 0);
    assert_int_equal(v.misplaced, 0);
    /* Each batch is one tick of both nodes. PostgreSQL counts the batches that never
     * arrived exactly (holes in the committed sequence): they are exactly the missing
     * ticks. The agent's own count is what its spool dropped, which can include batches
     * already sent (in flight) when they were dropped, and so arrived anyway. */
    long long lost = h_query_ll(&fx.db, "SELECT lost_batches FROM streams"
                                        " WHERE agent_id = 'fault-agent'");
    assert_true(lost > 0);
    assert_int_equal(v.lost, lost * 2);
    assert_true(lost <= dropped);
    assert_int_equal(h_query_ll(&fx.db, "SELECT dropped_batches FROM stream_losses"
                                        " WHERE agent_id = 'fault-agent'"),
                     dropped);
    assert_int_equal(h_stop(collector, 15000), 0);
    char *clog = s_log(&fx, "collector");
    assert_int_equal(h_log_value(clog, "stopping:", "gaps"), lost);
    h_pg_stop(&fx.pg, &fx.db);
}

/* An agent frozen (SIGSTOP) for longer than its catch-up window skips the ticks it cannot
 * make up, and says how many (stream_losses.skipped_ticks): those rows are missing, every
 * other row is exactly the simulation's. The simulated workload goes on through the skipped
 * ticks (a real server does not pause for its agent): what is sampled after the stall is
 * what a never-stalled agent would have sampled then. */
static void test_a_stalled_agent_skips_ticks_and_says_so(void **state)
{
    s_fx_t fx;
    s_fx_init(&fx, "stall", NULL, "11s");
    pid_t collector = s_collector(&fx, "collector");
    char *log = s_log(&fx, "agent");
    pid_t agent = h_spawn(fx.argv, log);
    h_sleep_ms(1500);
    /* 7.5 s at 100 ms: 75 ticks behind, 60 made up, 15 skipped (or so: the machine). */
    kill(agent, SIGSTOP);
    h_sleep_ms(7500);
    kill(agent, SIGCONT);
    h_agent_wait_ok(agent, log, 90000);
    long long first = h_log_value(log, "agent ", "first_tick");
    long long skipped = h_log_value(log, "stats:", "skipped_ticks");
    assert_true(skipped > 0);
    int64_t last = h_verify_last_tick(log, IV_MS * WW_NS_PER_MS);
    h_verify_t v;
    h_verify_sim(&fx.db, fx.argc, fx.argv, first, last, &v);
    if (v.altered || v.duplicated || v.misplaced || v.lost != skipped * 2 ||
        v.skipped != skipped * 2) {
        fail_msg("%lld ticks, %lld skipped: %lld rows, %lld lost, %lld altered, %lld duplicated, "
                 "%lld misplaced",
                 v.ticks, skipped, v.rows, v.lost, v.altered, v.duplicated, v.misplaced);
    }
    assert_int_equal(h_query_ll(&fx.db, "SELECT sum(skipped_ticks) FROM stream_losses"
                                        " WHERE agent_id = 'fault-agent'"),
                     skipped);
    assert_int_equal(h_stop(collector, 15000), 0);
    h_pg_stop(&fx.pg, &fx.db);
}

static void test_failover_to_the_second_collector(void **state)
{
    s_fx_t fx;
    s_fx_init(&fx, "failover", NULL, "6s");
    char a_ep[256], b_listen[256], b_ep[256], eps[600];
    pid_t a = s_collector(&fx, "collector-a");
    snprintf(a_ep, sizeof a_ep, "%s", fx.endpoint);
    snprintf(b_listen, sizeof b_listen, "ipc://%s/collector-b.sock", fx.db.dir);
    pid_t b =
        h_collector_spawn(fx.db.dir, b_listen, fx.pg.conninfo, "collector-b", b_ep, sizeof b_ep);
    snprintf(eps, sizeof eps, "%s,%s", a_ep, b_ep);
    fx.argv[6] = eps; /* --collector A,B */
    char *log = s_log(&fx, "agent");
    pid_t agent = h_spawn(fx.argv, log);
    h_sleep_ms(1500);
    s_kill9(a); /* A is gone for good */
    int64_t first, last;
    s_agent_done(&fx, agent, log, &first, &last);
    assert_true(h_log_value(log, "stats:", "failovers") >= 1);
    s_verify(&fx, first, last, "failover from A to B");
    assert_int_equal(h_stop(b, 15000), 0);
    h_pg_stop(&fx.pg, &fx.db);
}

/* Zero loss through a PostgreSQL failover (issue 20): traffic flowing, the primary crashes
 * (every process SIGKILLed), its streaming standby is promoted, and the collector's
 * multi-host conninfo finds the new primary (target_session_attrs=read-write).
 *   lagging: the standby stopped receiving WAL 1.5 s before the crash (an asynchronous
 *     standby that lags), so the batches the old primary acked meanwhile are missing; the
 *     first batch written after the failover names them in its Ack and the agent sends
 *     them again from its spool (spool.keep_acked);
 *   remote_apply: synchronous replication with synchronous_commit = remote_apply, the
 *     documented alternative: every ack was applied on the standby, nothing to repair.
 * Either way: rows = ticks, 0 lost, 0 duplicated, no hole left. */
static void s_failover(bool remote_apply)
{
    s_fx_t fx;
    s_fx_init(&fx, remote_apply ? "fsp" : "fop", NULL, "6s");
    h_pg_t sb;
    h_db_t sdb;
    h_pg_standby(&sb, &sdb, &fx.pg, remote_apply ? "fss" : "fos");
    if (remote_apply) {
        PQclear(h_query(&fx.db, "ALTER SYSTEM SET synchronous_standby_names = '*'"));
        PQclear(h_query(&fx.db, "ALTER SYSTEM SET synchronous_commit = 'remote_apply'"));
        PQclear(h_query(&fx.db, "SELECT pg_reload_conf()"));
        for (int i = 0; i < 100 && h_query_ll(&fx.db, "SELECT count(*) FROM pg_stat_replication "
                                                      "WHERE sync_state = 'sync'") != 1;
             i++) {
            h_sleep_ms(100);
        }
        assert_int_equal(h_query_ll(&fx.db, "SELECT count(*) FROM pg_stat_replication "
                                            "WHERE sync_state = 'sync'"),
                         1);
    }
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo,
             "host=%s,%s port=5432,5432 user=postgres dbname=ww application_name=wwcollector "
             "target_session_attrs=read-write connect_timeout=2",
             fx.pg.dir, sb.dir);
    pid_t collector = h_collector_spawn(fx.db.dir, fx.listen, conninfo, "collector", fx.endpoint,
                                        sizeof fx.endpoint);
    char *log = s_log(&fx, "agent");
    pid_t agent = h_spawn(fx.argv, log);
    h_sleep_ms(1500);
    if (!remote_apply) {
        h_pg_cmd(&sb, "cut-replication");
    }
    long long at_cut = h_query_ll(&sdb, "SELECT count(*) FROM node_samples");
    h_sleep_ms(1500); /* ~30 rows acked by the primary (alone, when lagging) */
    long long on_primary = h_query_ll(&fx.db, "SELECT count(*) FROM node_samples");
    h_pg_cmd(&fx.pg, "kill9");
    PQfinish(fx.db.conn);
    fx.db.conn = NULL;
    h_pg_cmd(&sb, "promote");
    long long on_standby = h_query_ll(&sdb, "SELECT count(*) FROM node_samples");
    print_message("%s: rows at the cut %lld, on the primary at its crash %lld, on the promoted "
                  "standby %lld\n",
                  remote_apply ? "remote_apply" : "lagging", at_cut, on_primary, on_standby);
    /* The test makes the loss it means to repair; remote_apply has none to make. */
    assert_true(remote_apply ? on_standby >= on_primary : on_primary - on_standby >= 10);

    int64_t first, last;
    s_agent_done(&fx, agent, log, &first, &last);
    h_verify_t v;
    h_verify_sim(&sdb, fx.argc, fx.argv, first, last, &v);
    h_verify_assert_clean(&v, remote_apply ? "failover, remote_apply" : "failover, lagging");
    assert_int_equal(v.lost, 0);
    assert_int_equal(v.rows, v.ticks * 2);
    assert_int_equal(h_query_ll(&sdb, "SELECT coalesce(sum(lost_batches), 0) FROM streams"), 0);
    assert_int_equal(h_query_ll(&sdb, "SELECT count(*) FROM stream_holes"), 0);
    /* The latency windows too (each part the agent sent, once), and the per-minute
     * rollups the collector keeps at ingest agree with them after the late writes. */
    assert_int_equal(h_query_ll(&sdb, "SELECT coalesce(sum(parts), 0) FROM latency_windows"),
                     h_log_value(log, "stats:", "latency_windows"));
    assert_int_equal(h_verify_rollups(&sdb), 0);
    if (remote_apply) {
        assert_int_equal(h_log_value(log, "stats:", "repaired"), 0);
    } else {
        assert_true(h_log_value(log, "stats:", "repaired") >= 5);
    }
    assert_int_equal(h_log_value(log, "stats:", "repair_gone"), 0);
    assert_int_equal(h_stop(collector, 15000), 0);
    h_pg_stop(&sb, &sdb);
    h_pg_stop(&fx.pg, &fx.db);
}

static void test_postgres_failover_to_a_lagging_standby_loses_nothing(void **state)
{
    (void)state;
    s_failover(false);
}

static void test_postgres_failover_with_remote_apply_needs_no_repair(void **state)
{
    (void)state;
    s_failover(true);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_postgres_failover_to_a_lagging_standby_loses_nothing),
    cmocka_unit_test(test_postgres_failover_with_remote_apply_needs_no_repair),
    cmocka_unit_test(test_harness_detects_lost_duplicated_and_altered_rows),
    cmocka_unit_test(test_collector_sigkill_and_restart),
    cmocka_unit_test(test_postgres_crash_restart_and_backend_terminated),
    cmocka_unit_test(test_postgres_down_longer_than_the_memory_window),
    cmocka_unit_test(test_agent_sigkill_and_restart_replays_the_spool),
    cmocka_unit_test(test_spool_full_drop_policy_loss_counted_exactly),
    cmocka_unit_test(test_failover_to_the_second_collector),
    cmocka_unit_test(test_a_stalled_agent_skips_ticks_and_says_so),
};
WW_TEST_MAIN(tests, NULL, NULL)
