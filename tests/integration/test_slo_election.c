/* Evaluator election (issue 20 part 1) end to end: three collectors with the same phases
 * file, each connected as its own role, one of them leading the SLO evaluation through the
 * lease in slo_leader (ww_slo_lease.h). The leader is killed (-9), stopped (SIGSTOP) and
 * partitioned (its role locked out, its sessions terminated), once while an alert is
 * firing and once while one is resolving. Each time another collector leads within two
 * evaluation intervals, and in the end no transition is lost or doubled: alert_transitions,
 * the NOTIFY payloads and a real Alertmanager agree.
 *
 * The alert is CapacityBreach of one phase: it fires while no node reports (an agent of the
 * simulator stopped, healthy_window passed) and resolves once its two nodes report again;
 * a fourth collector without a phases file takes the agent's data, so that ingest goes on
 * whichever evaluator is disturbed. */
#include "harness.h"
#include "harness_http.h"
#include "ww_test.h"
#include "ww_time.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_EVAL 3
#define INTERVAL_MS 1000 /* evaluation.interval below */
#define MAX_NOTES 256

/* CapacityBreach of the test's phase: open, and its transitions. */
#define S_OPEN                                                                                     \
    "SELECT count(*) FROM alerts WHERE alertname = 'CapacityBreach' AND phase = 'phase-e'"         \
    " AND state = 'firing'"

typedef enum { S_KILL, S_STOP, S_STOP_IN_EVAL, S_PARTITION } s_fault_t;
static const char *const s_fault_names[] = {"kill -9", "SIGSTOP", "SIGSTOP inside an evaluation",
                                            "partition"};

typedef struct {
    h_db_t db;
    char am_url[64];
    char slo_path[256];
    char role[N_EVAL][64];
    char conninfo[N_EVAL][400];
    pid_t pid[N_EVAL];
    int port[N_EVAL]; /* /metrics */
    char log[N_EVAL][256];
    int starts;
    char endpoint[256]; /* the ingest collector's, for the agent */
    pid_t ingest;
    pid_t agent;
    PGconn *listener;
    char *notes[MAX_NOTES]; /* NOTIFY payloads, in order of arrival */
    size_t n_notes;
    long long takeover_ms[8];
    size_t n_takeovers;
} s_fx_t;

/* The startsAt (to the second, "YYYY-MM-DDTHH:MM:SS") of the active CapacityBreach alert
 * in Alertmanager (the phases file has one phase), into out; "" when none is active.
 * Returns how many are active. */
static int s_am_active(const s_fx_t *fx, char *out, size_t cap)
{
    char api[200];
    snprintf(api, sizeof api,
             "%s/api/v2/alerts?active=true&filter=alertname%%3D%%22CapacityBreach%%22", fx->am_url);
    long code;
    char *body = h_http_get(api, &code);
    assert_int_equal(code, 200);
    int n = 0;
    out[0] = '\0';
    for (char *p = body; (p = strstr(p, "\"fingerprint\"")) != NULL; p++) {
        n++;
    }
    char *starts = strstr(body, "\"startsAt\":\"");
    if (n == 1 && starts) {
        snprintf(out, cap, "%.19s", starts + 12);
    }
    free(body);
    return n;
}

static void s_collect_notes(s_fx_t *fx)
{
    PQconsumeInput(fx->listener);
    PGnotify *n;
    while ((n = PQnotifies(fx->listener)) != NULL) {
        assert_true(fx->n_notes < MAX_NOTES);
        fx->notes[fx->n_notes++] = strdup(n->extra);
        PQfreemem(n);
    }
}

/* Polls sql every 50 ms (NOTIFY payloads collected meanwhile) until it returns want, up to
 * timeout_ms; returns the last value. */
static long long s_wait_ll(s_fx_t *fx, const char *sql, long long want, int timeout_ms)
{
    long long v = h_query_ll(&fx->db, sql);
    for (int waited = 0; v != want && waited < timeout_ms; waited += 50) {
        h_sleep_ms(50);
        s_collect_notes(fx);
        v = h_query_ll(&fx->db, sql);
    }
    return v;
}

static void s_eval_start(s_fx_t *fx, int i)
{
    char name[32], ep[256];
    snprintf(name, sizeof name, "eval%d-%d", i, fx->starts++);
    snprintf(fx->log[i], sizeof fx->log[i], "%s/%s.log", fx->db.dir, name);
    setenv("WW_COLLECTOR_SLO_FILE", fx->slo_path, 1);
    setenv("WW_COLLECTOR_PG_MIGRATE", "false", 1); /* its role could not */
    setenv("WW_COLLECTOR_METRICS_LISTEN", "127.0.0.1:0", 1);
    fx->pid[i] =
        h_collector_spawn(fx->db.dir, "tcp://127.0.0.1:*", fx->conninfo[i], name, ep, sizeof ep);
    unsetenv("WW_COLLECTOR_SLO_FILE");
    unsetenv("WW_COLLECTOR_PG_MIGRATE");
    unsetenv("WW_COLLECTOR_METRICS_LISTEN");
    fx->port[i] = h_metrics_port(fx->pid[i], fx->log[i]);
}

/* The evaluator that leads (index), its term; -1 when none of ours holds the lease. */
static int s_leader(s_fx_t *fx, long long *term)
{
    PGresult *r = h_query(&fx->db, "SELECT term, split_part(holder, ':', 2) FROM slo_leader");
    *term = atoll(PQgetvalue(r, 0, 0));
    pid_t pid = (pid_t)atol(PQgetvalue(r, 0, 1));
    PQclear(r);
    for (int i = 0; i < N_EVAL; i++) {
        if (fx->pid[i] == pid && pid > 0) {
            return i;
        }
    }
    return -1;
}

/* How many times what is in the file at path. */
static int s_log_count(const char *path, const char *what)
{
    char *text = h_read_file(path);
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, what)) != NULL; p++) {
        n++;
    }
    free(text);
    return n;
}

static void s_agent_start(s_fx_t *fx)
{
    const char *args[] = {"--phase", "phase-e",          "--sim-nodes", "2",         "--interval",
                          "100ms",   "--latency-window", "1s",          "--run-for", "120s",
                          NULL};
    fx->agent = h_agent_spawn_secure(&fx->db, "el", fx->endpoint, NULL, args, NULL, 0);
}

static void s_agent_stop(s_fx_t *fx)
{
    assert_int_equal(h_stop(fx->agent, 30000), 0);
    fx->agent = 0;
}

/* Disturbs the leader with fault, right after the alert's condition changed (the caller
 * started or stopped the agent): another evaluator must lead within two intervals, and
 * the alert reach want_open. Then the disturbed one is healed (restarted, continued,
 * let in again) and must know it no longer leads. */
static void s_fault(s_fx_t *fx, s_fault_t fault, long long want_open)
{
    long long term;
    int i = s_leader(fx, &term);
    assert_true(i >= 0);
    char sql[512];
    int deposed = s_log_count(fx->log[i], "deposed");
    if (fault == S_STOP_IN_EVAL) {
        /* Stopped while its evaluation's transaction holds the lease row: the evaluation is
         * held up on a lock of the test's until the leader is stopped, then let go. The
         * server ends the stopped session once idle in its transaction for a lease. */
        PGconn *locker = PQconnectdb(fx->db.conninfo);
        PQclear(PQexec(locker, "BEGIN"));
        PQclear(PQexec(locker, "LOCK TABLE capacity_evaluations IN SHARE ROW EXCLUSIVE MODE"));
        snprintf(
            sql, sizeof sql,
            "SELECT count(*) FROM pg_stat_activity WHERE usename = '%s' AND state = 'active'"
            " AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO capacity_evaluations%%'",
            fx->role[i]);
        assert_int_equal(s_wait_ll(fx, sql, 1, 10000), 1);
        kill(fx->pid[i], SIGSTOP);
        PQclear(PQexec(locker, "COMMIT"));
        PQfinish(locker);
    }
    int64_t t0 = ww_time_mono_ns();
    switch (fault) {
    case S_STOP_IN_EVAL:
        break;
    case S_KILL:
        kill(fx->pid[i], SIGKILL);
        assert_int_equal(h_wait(fx->pid[i], 10000), 128 + SIGKILL);
        break;
    case S_STOP:
        kill(fx->pid[i], SIGSTOP);
        break;
    case S_PARTITION:
        /* Its database sessions lost, and no new one let in. */
        snprintf(sql, sizeof sql, "ALTER ROLE %s NOLOGIN", fx->role[i]);
        PQclear(h_query(&fx->db, sql));
        snprintf(sql, sizeof sql,
                 "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename ="
                 " '%s'",
                 fx->role[i]);
        PQclear(h_query(&fx->db, sql));
        break;
    }
    /* Another evaluator holds a newer term. */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM slo_leader WHERE term > %lld AND holder NOT LIKE '%%:%ld'", term,
             (long)fx->pid[i]);
    assert_int_equal(s_wait_ll(fx, sql, 1, 10000), 1);
    /* Seen by this test's clock (polled every 50 ms): an upper bound. slo_leader.since would
     * not do: a takeover that waited for the row lock has the time its UPDATE began. */
    long long ms = (long long)((ww_time_mono_ns() - t0) / WW_NS_PER_MS);
    print_message("%s of the leader (term %lld): term %lld leads after %lld ms\n",
                  s_fault_names[fault], term, h_query_ll(&fx->db, "SELECT term FROM slo_leader"),
                  ms);
    fx->takeover_ms[fx->n_takeovers++] = ms;
    if (ms > 2 * INTERVAL_MS) {
        fail_msg("%s: leadership moved after %lld ms, more than two intervals (%d ms)",
                 s_fault_names[fault], ms, 2 * INTERVAL_MS);
    }
    assert_int_equal(s_wait_ll(fx, S_OPEN, want_open, 20000), want_open);

    /* Healed, the old leader follows: it says so, and so does its /metrics. */
    switch (fault) {
    case S_KILL:
        s_eval_start(fx, i);
        break;
    case S_STOP:
    case S_STOP_IN_EVAL:
        kill(fx->pid[i], SIGCONT);
        /* Said once: not at each poll that follows. */
        for (int w = 0; w < 200 && s_log_count(fx->log[i], "deposed") == deposed; w++) {
            h_sleep_ms(50);
        }
        if (s_log_count(fx->log[i], "deposed") != deposed + 1) {
            char *text = h_read_file(fx->log[i]);
            fail_msg("the continued leader did not say it was deposed:\n%s", text);
        }
        break;
    case S_PARTITION:
        snprintf(sql, sizeof sql, "ALTER ROLE %s LOGIN", fx->role[i]);
        PQclear(h_query(&fx->db, sql));
        break;
    }
    double leads = 1;
    for (int w = 0; w < 200 && leads != 0; w++) {
        leads = h_metrics_get(fx->port[i], "waferwatch_collector_slo_leader");
        if (leads != 0) {
            h_sleep_ms(50);
        }
    }
    assert_true(leads == 0);
}

/* Alertmanager shows what PostgreSQL has: the open episode (its startsAt) or none. */
static void s_am_agrees(s_fx_t *fx)
{
    char want[32] = "", got[32] = "";
    PGresult *r = h_query(&fx->db, "SELECT to_char(started_at AT TIME ZONE 'UTC',"
                                   " 'YYYY-MM-DD\"T\"HH24:MI:SS') FROM alerts WHERE alertname ="
                                   " 'CapacityBreach' AND phase = 'phase-e' AND state = 'firing'");
    if (PQntuples(r) == 1) {
        snprintf(want, sizeof want, "%s", PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    int n = 0;
    for (int w = 0; w < 200; w++) {
        n = s_am_active(fx, got, sizeof got);
        if (n == (*want ? 1 : 0) && strcmp(got, want) == 0) {
            return;
        }
        h_sleep_ms(50);
        s_collect_notes(fx);
    }
    fail_msg("Alertmanager has %d active CapacityBreach (startsAt %s), PostgreSQL %s", n, got,
             *want ? want : "none firing");
}

static void test_leader_killed_stopped_partitioned_nothing_lost_or_doubled(void **state)
{
    (void)state;
    s_fx_t fx;
    memset(&fx, 0, sizeof fx);
    h_db_create(&fx.db, "elect");
    h_secure(fx.db.dir, "unused", "none");
    h_enrol(fx.db.dir, "el", "el", "el-node-*");
    pid_t am = h_alertmanager_start(fx.db.dir, h_free_port(), fx.am_url, sizeof fx.am_url);
    snprintf(fx.slo_path, sizeof fx.slo_path, "%s/phases.yaml", fx.db.dir);
    FILE *f = fopen(fx.slo_path, "w");
    assert_non_null(f);
    /* Only capacity can alert: no SLO, power and temperatures far from their limits. */
    fprintf(f,
            "evaluation:\n  interval: %dms\n  window_scale: 0.01\n  healthy_window: 2s\n"
            "alertmanager:\n  url: %s\n"
            "phases:\n"
            "  - {id: phase-e, name: E, go_live: 2026-01-01, contracted_mw: 0.04,\n"
            "     power_ceiling_mw: 10, hotspot_max_c: 200, outlet_max_c: 200}\n",
            INTERVAL_MS, fx.am_url);
    fclose(f);

    /* The ingest collector migrates; the evaluators connect as roles of their own. */
    fx.ingest = h_collector_spawn(fx.db.dir, "tcp://127.0.0.1:*", fx.db.conninfo, "ingest",
                                  fx.endpoint, sizeof fx.endpoint);
    for (int i = 0; i < N_EVAL; i++) {
        snprintf(fx.role[i], sizeof fx.role[i], "ww_elect_%d_%d", (int)getpid(), i);
        char sql[160];
        snprintf(sql, sizeof sql, "DROP ROLE IF EXISTS %s", fx.role[i]);
        PQclear(h_query(&fx.db, sql));
        snprintf(sql, sizeof sql, "CREATE ROLE %s LOGIN IN ROLE waferwatch_writer", fx.role[i]);
        PQclear(h_query(&fx.db, sql));
        snprintf(fx.conninfo[i], sizeof fx.conninfo[i], "%s user=%s", fx.db.conninfo, fx.role[i]);
    }
    fx.listener = PQconnectdb(fx.db.conninfo);
    PQclear(PQexec(fx.listener, "LISTEN waferwatch_alerts"));
    for (int i = 0; i < N_EVAL; i++) {
        s_eval_start(&fx, i);
    }

    /* One leads; no node reports yet: the breach fires. */
    assert_int_equal(s_wait_ll(&fx, "SELECT count(*) FROM slo_leader WHERE term > 0", 1, 15000), 1);
    assert_int_equal(s_wait_ll(&fx, S_OPEN, 1, 15000), 1);
    s_am_agrees(&fx);

    /* Killed while firing, then stopped while resolving, partitioned while firing again,
     * killed while resolving, stopped while firing, partitioned while resolving. */
    s_fault(&fx, S_KILL, 1);
    s_am_agrees(&fx);
    static const s_fault_t faults[] = {S_STOP, S_PARTITION, S_KILL, S_STOP_IN_EVAL, S_PARTITION};
    for (size_t k = 0; k < sizeof faults / sizeof faults[0]; k++) {
        bool resolve = k % 2 == 0;
        if (resolve) {
            s_agent_start(&fx);
        } else {
            s_agent_stop(&fx);
        }
        s_fault(&fx, faults[k], resolve ? 0 : 1);
        s_am_agrees(&fx);
    }

    /* A deposed leader stopped between its last renewal and its push sends, once resumed,
     * the firing alert a newer leader has resolved since (Alertmanager has no fencing):
     * that push, made here by hand as it would make it, is corrected by the leader's next
     * evaluation. */
    PGresult *last = h_query(&fx.db, "SELECT to_char(started_at AT TIME ZONE 'UTC',"
                                     " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM alerts"
                                     " ORDER BY id DESC LIMIT 1");
    char stale[512], am_api[128];
    snprintf(stale, sizeof stale,
             "[{\"labels\":{\"alertname\":\"CapacityBreach\",\"phase\":\"phase-e\","
             "\"model\":\"*\",\"slo\":\"capacity\",\"severity\":\"page\"},"
             "\"annotations\":{\"summary\":\"stale\"},\"startsAt\":\"%s\"}]",
             PQgetvalue(last, 0, 0));
    PQclear(last);
    snprintf(am_api, sizeof am_api, "%s/api/v2/alerts", fx.am_url);
    const char *json[] = {"Content-Type: application/json", NULL};
    long status;
    size_t out_len;
    free(h_http_post(am_api, stale, strlen(stale), json, &status, &out_len, NULL, 0));
    assert_int_equal(status, 200);
    s_am_agrees(&fx);

    /* PostgreSQL: three episodes, each fired once and resolved once, every transition
     * written under a term, the terms never going back. */
    assert_int_equal(h_query_ll(&fx.db, "SELECT count(*) FROM alerts"), 3);
    assert_int_equal(h_query_ll(&fx.db, "SELECT count(*) FROM alerts a WHERE a.state <>"
                                        " 'resolved' OR (SELECT count(*) FROM alert_transitions t"
                                        " WHERE t.alert_id = a.id AND t.to_state = 'firing') <> 1"
                                        " OR (SELECT count(*) FROM alert_transitions t WHERE"
                                        " t.alert_id = a.id AND t.to_state = 'resolved') <> 1"),
                     0);
    assert_int_equal(h_query_ll(&fx.db, "SELECT count(*) FROM (SELECT term, lag(term) OVER"
                                        " (ORDER BY time, to_state DESC) AS prev FROM"
                                        " alert_transitions) x WHERE term IS NULL OR term < prev"),
                     0);
    assert_true(h_query_ll(&fx.db, "SELECT term FROM slo_leader") >= 7);
    /* NOTIFY: the same six transitions, in the same order, none twice. */
    PGresult *r = h_query(&fx.db, "SELECT string_agg(to_state, ',' ORDER BY time, to_state DESC)"
                                  " FROM alert_transitions");
    char want[128];
    snprintf(want, sizeof want, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    assert_string_equal(want, "firing,resolved,firing,resolved,firing,resolved");
    char got[128] = "";
    for (int w = 0; w < 100 && strcmp(got, want) != 0; w++) {
        s_collect_notes(&fx);
        got[0] = '\0';
        for (size_t n = 0; n < fx.n_notes; n++) {
            if (!strstr(fx.notes[n], "\"alertname\":\"CapacityBreach\"") ||
                !strstr(fx.notes[n], "\"phase\":\"phase-e\"")) {
                fail_msg("an unexpected notification: %s", fx.notes[n]);
            }
            size_t len = strlen(got);
            snprintf(got + len, sizeof got - len, "%s%s", len ? "," : "",
                     strstr(fx.notes[n], "\"state\":\"firing\"") ? "firing" : "resolved");
        }
        if (strcmp(got, want) != 0) {
            h_sleep_ms(50);
        }
    }
    assert_string_equal(got, want);

    /* Who leads: its /metrics and `waferwatch slo`. */
    long long term;
    int lead = s_leader(&fx, &term);
    assert_true(lead >= 0);
    for (int i = 0; i < N_EVAL; i++) {
        double want_leads = i == lead ? 1 : 0, leads = -1;
        for (int w = 0; w < 100 && leads != want_leads; w++) {
            leads = h_metrics_get(fx.port[i], "waferwatch_collector_slo_leader");
            if (leads != want_leads) {
                h_sleep_ms(50);
            }
        }
        assert_true(leads == want_leads);
    }
    assert_true(h_metrics_get(fx.port[lead], "waferwatch_collector_slo_term") == (double)term);
    char clog[256];
    snprintf(clog, sizeof clog, "%s/cli.log", fx.db.dir);
    char *argv[] = {(char *)WW_CLI_BIN, (char *)"slo", (char *)"--pg", fx.db.conninfo, NULL};
    assert_int_equal(h_wait(h_spawn(argv, clog), 30000), 0);
    char *report = h_read_file(clog);
    char line[96];
    snprintf(line, sizeof line, ":%ld, term %lld since ", (long)fx.pid[lead], term);
    if (!report || !strstr(report, "leader ") || !strstr(report, line)) {
        fail_msg("expected the leader (\"%s\") in the report:\n%s", line, report);
    }
    free(report);
    char *jargv[] = {(char *)WW_CLI_BIN, (char *)"slo",    (char *)"--pg",
                     fx.db.conninfo,     (char *)"--json", NULL};
    assert_int_equal(h_wait(h_spawn(jargv, clog), 30000), 0);
    report = h_read_file(clog);
    snprintf(line, sizeof line, "\"term\": %lld", term);
    if (!report || !strstr(report, "\"leader\": {") || !strstr(report, line) ||
        !strstr(report, "\"expires_at\"")) {
        fail_msg("expected the leader (%s) in the JSON report:\n%s", line, report);
    }
    free(report);
    s_agent_stop(&fx);
    print_message("takeovers (ms):");
    for (size_t k = 0; k < fx.n_takeovers; k++) {
        print_message(" %lld", fx.takeover_ms[k]);
    }
    print_message("\n");

    /* A leader stopped cleanly (a rolling restart) hands the lease back: another leads at
     * its next poll rather than once the lease has run out. */
    lead = s_leader(&fx, &term);
    assert_true(lead >= 0);
    int64_t t0 = ww_time_mono_ns();
    assert_int_equal(h_stop(fx.pid[lead], 15000), 0);
    snprintf(line, sizeof line, "handed the SLO evaluation lease of term %lld back", term);
    if (s_log_count(fx.log[lead], line) != 1) {
        char *text = h_read_file(fx.log[lead]);
        fail_msg("expected \"%s\" in the log:\n%s", line, text);
    }
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM slo_leader WHERE term > %lld", term);
    assert_int_equal(s_wait_ll(&fx, sql, 1, 10000), 1);
    print_message("SIGTERM of the leader (term %lld): term %lld leads after %lld ms\n", term,
                  term + 1, (long long)((ww_time_mono_ns() - t0) / WW_NS_PER_MS));
    fx.pid[lead] = 0;
    for (int i = 0; i < N_EVAL; i++) {
        if (fx.pid[i] > 0) {
            assert_int_equal(h_stop(fx.pid[i], 15000), 0);
        }
    }
    assert_int_equal(h_stop(fx.ingest, 15000), 0);
    h_stop(am, 10000);
    PQfinish(fx.listener);
    for (size_t n = 0; n < fx.n_notes; n++) {
        free(fx.notes[n]);
    }
    h_db_drop(&fx.db);
    for (int i = 0; i < N_EVAL; i++) {
        snprintf(sql, sizeof sql, "DROP ROLE IF EXISTS %s", fx.role[i]);
        PGconn *admin = PQconnectdb("dbname=postgres");
        PQclear(PQexec(admin, sql));
        PQfinish(admin);
    }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_leader_killed_stopped_partitioned_nothing_lost_or_doubled),
};
WW_TEST_MAIN(tests, NULL, NULL)
