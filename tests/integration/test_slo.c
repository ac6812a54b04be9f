/* SLOs of the phased buildout end to end: agents of one phase suffer a coolant pump fault,
 * the collector's evaluation sees the TTFT error budget burn past 14.4x, pages (PostgreSQL,
 * NOTIFY, a real Alertmanager, `waferwatch slo`), and resolves once the fault clears; the
 * other phase stays green. Windows are compressed with evaluation.window_scale. */
#include "harness.h"
#include "harness_http.h"
#include "ww_test.h"
#include "ww_time.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* GET url; returns the body (malloc'd) or NULL unless HTTP 200. */
static char *s_get(const char *url)
{
    long code;
    char *body = h_http_get(url, &code);
    if (code != 200) {
        free(body);
        return NULL;
    }
    return body;
}

/* Starts a real Alertmanager on 127.0.0.1:port with clustering off. */

/* True when Alertmanager lists an active alert whose labels hold all three strings. */
static int s_am_has(const char *url, const char *a, const char *b, const char *c)
{
    char api[160];
    snprintf(api, sizeof api, "%s/api/v2/alerts?active=true", url);
    char *body = s_get(api);
    int found = 0;
    for (char *p = body; p && (p = strstr(p, "\"labels\":{")) != NULL; p++) {
        char *end = strchr(p, '}');
        if (!end) {
            break;
        }
        *end = '\0';
        found = found || (strstr(p, a) && strstr(p, b) && strstr(p, c));
        *end = '}';
    }
    free(body);
    return found;
}

static int s_cli_slo(h_db_t *db, const char *name, char **out)
{
    char log[256];
    snprintf(log, sizeof log, "%s/%s.log", db->dir, name);
    char *argv[] = {(char *)WW_CLI_BIN, (char *)"slo", (char *)"--pg", db->conninfo, NULL};
    int rc = h_wait(h_spawn(argv, log), 30000);
    *out = h_read_file(log);
    return rc;
}

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* log: filled with the agent's log path when not NULL. */
static pid_t s_agent(h_db_t *db, const char *name, const char *phase, const char *extra_env[],
                     const char *run_for, char *log, size_t log_cap)
{
    const char *args[] = {"--phase",          phase, "--sim-nodes", "2",     "--interval", "100ms",
                          "--latency-window", "1s",  "--run-for",   run_for, NULL};
    return h_agent_spawn_secure(db, name, getenv("WW_TEST_ENDPOINT"), extra_env, args, log,
                                log_cap);
}

/* True when a notification whose payload holds both strings arrives within timeout_ms
 * (notifications read on the way are consumed). */
static int s_notified(PGconn *c, const char *a, const char *b, int timeout_ms)
{
    for (int waited = 0;; waited += 100) {
        PQconsumeInput(c);
        int found = 0;
        PGnotify *n;
        while ((n = PQnotifies(c)) != NULL) {
            found = found || (strstr(n->extra, a) && strstr(n->extra, b));
            PQfreemem(n);
        }
        if (found) {
            return 1;
        }
        if (waited >= timeout_ms) {
            return 0;
        }
        h_sleep_ms(100);
    }
}

static void test_pump_fault_pages_then_resolves_other_phase_green(void **state)
{
    h_db_t db;
    h_db_create(&db, "slo");
    /* One key pair for both agents: enrolled for each agent id. */
    h_secure(db.dir, "unused", "none");
    h_enrol(db.dir, "hot", "hot", "hot-node-*");
    h_enrol(db.dir, "cool", "cool", "cool-node-*");
    int port = h_free_port();
    char am_url[64];
    pid_t am = h_alertmanager_start(db.dir, port, am_url, sizeof am_url);
    char slo_path[256], yaml[2048];
    snprintf(slo_path, sizeof slo_path, "%s/phases.yaml", db.dir);
    /* window_scale 0.01: 5m = 3 s, 30m = 18 s, 1h = 36 s, 6h = 216 s. */
    snprintf(yaml, sizeof yaml,
             "evaluation:\n  interval: 1s\n  window_scale: 0.01\n  healthy_window: 5s\n"
             "alertmanager:\n  url: %s\n"
             "phases:\n"
             "  - {id: phase-hot, name: Hot, go_live: 2026-01-01, contracted_mw: 0.04,\n"
             "     slos: [{name: ttft-8b, model: llama3.1-8b, metric: ttft, threshold: 1.0,\n"
             "             objective: 0.99}]}\n"
             "  - {id: phase-cool, name: Cool, go_live: 2026-01-01, contracted_mw: 0.04,\n"
             "     slos: [{name: ttft-8b, model: llama3.1-8b, metric: ttft, threshold: 1.0,\n"
             "             objective: 0.99}]}\n",
             am_url);
    s_write(slo_path, yaml);
    setenv("WW_COLLECTOR_SLO_FILE", slo_path, 1);
    char endpoint[256], listen[256];
    /* ipc: the same endpoint across the restart below. */
    snprintf(listen, sizeof listen, "ipc://%s/collector.sock", db.dir);
    /* Listening before the collector starts: its first evaluation pages CapacityBreach
     * (no node reports yet) and resolves it when the agents come, on this channel too. */
    PGconn *listener = PQconnectdb(db.conninfo);
    PQclear(PQexec(listener, "LISTEN waferwatch_alerts"));
    pid_t collector =
        h_collector_spawn(db.dir, listen, db.conninfo, "collector", endpoint, sizeof endpoint);
    setenv("WW_TEST_ENDPOINT", endpoint, 1);

    /* The hot phase: the pump drops to 10% flow for 25 s and decode throttles hard. */
    const char *hot_env[] = {"WW_AGENT_SIM_PUMP_FAULT_ENABLED",
                             "true",
                             "WW_AGENT_SIM_PUMP_FAULT_START",
                             "0",
                             "WW_AGENT_SIM_PUMP_FAULT_DURATION",
                             "25",
                             "WW_AGENT_SIM_PUMP_FAULT_FLOW_FACTOR",
                             "0.1",
                             "WW_AGENT_SIM_TAU",
                             "2",
                             "WW_AGENT_SIM_MIN_THROTTLE",
                             "0.1",
                             "WW_AGENT_SIM_THROTTLE_SLOPE",
                             "0.1",
                             NULL};
    pid_t hot = s_agent(&db, "hot", "phase-hot", hot_env, "75s", NULL, 0);
    pid_t cool = s_agent(&db, "cool", "phase-cool", NULL, "75s", NULL, 0);

    /* Fires. */
    int fired = 0;
    for (int i = 0; i < 60 && !fired; i++) {
        h_sleep_ms(1000);
        fired = h_query_ll(&db, "SELECT count(*) FROM alerts WHERE phase = 'phase-hot' AND"
                                " alertname = 'SLOBurnRate' AND severity = 'page'") > 0;
    }
    assert_true(fired);
    /* Within 2 evaluation periods of the first evaluation that saw 1h and 5m > 14.4x. */
    long long lag_ms = h_query_ll(
        &db, "SELECT (extract(epoch from (SELECT min(started_at) FROM alerts WHERE phase ="
             " 'phase-hot' AND severity = 'page') - (SELECT min(a.time) FROM slo_evaluations a"
             " JOIN slo_evaluations b ON a.time = b.time AND a.phase = b.phase AND a.slo = b.slo"
             " WHERE a.phase = 'phase-hot' AND a.window_name = '1h' AND a.burn_rate > 14.4"
             " AND b.window_name = '5m' AND b.burn_rate > 14.4)) * 1000)::bigint");
    assert_true(lag_ms <= 2000);
    /* In PostgreSQL, on the NOTIFY channel, in Alertmanager, and in the CLI's exit code. */
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM alert_transitions WHERE"
                                     " phase = 'phase-hot' AND to_state = 'firing' AND"
                                     " severity = 'page' AND alertname = 'SLOBurnRate'"),
                     1);
    assert_true(s_notified(listener, "\"alertname\":\"SLOBurnRate\",\"phase\":\"phase-hot\"",
                           "\"severity\":\"page\",\"state\":\"firing\"", 5000));
    int in_am = 0;
    for (int i = 0; i < 20 && !in_am; i++) {
        in_am = s_am_has(am_url, "\"alertname\":\"SLOBurnRate\"", "\"phase\":\"phase-hot\"",
                         "\"severity\":\"page\"");
        if (!in_am) {
            h_sleep_ms(500);
        }
    }
    assert_true(in_am);
    char api[160];
    snprintf(api, sizeof api, "%s/api/v2/alerts", am_url);
    char *am_body = s_get(api);
    assert_non_null(am_body);
    assert_non_null(strstr(am_body, "burn_rates")); /* annotations: burn rates, budget left */
    assert_non_null(strstr(am_body, "budget_left"));
    free(am_body);
    char *report = NULL;
    assert_int_equal(s_cli_slo(&db, "slo-firing", &report), 1);
    assert_non_null(strstr(report, "phase-hot"));
    free(report);

    /* A restarted collector carries on from the alerts table: no second firing. */
    assert_int_equal(h_stop(collector, 15000), 0);
    collector =
        h_collector_spawn(db.dir, listen, db.conninfo, "collector2", endpoint, sizeof endpoint);
    unsetenv("WW_COLLECTOR_SLO_FILE");
    h_sleep_ms(2500);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM alert_transitions WHERE"
                                     " phase = 'phase-hot' AND to_state = 'firing' AND"
                                     " severity = 'page' AND alertname = 'SLOBurnRate'"),
                     1);

    /* Resolves after the fault clears (25 s) and the queue drains. */
    int resolved = 0;
    for (int i = 0; i < 90 && !resolved; i++) {
        h_sleep_ms(1000);
        resolved = h_query_ll(&db, "SELECT count(*) FROM alerts WHERE phase = 'phase-hot' AND"
                                   " alertname = 'SLOBurnRate' AND severity = 'page' AND"
                                   " state = 'firing'") == 0;
    }
    assert_true(resolved);
    assert_true(h_query_ll(&db, "SELECT count(*) FROM alert_transitions WHERE phase ="
                                " 'phase-hot' AND to_state = 'resolved' AND severity = 'page'"
                                " AND alertname = 'SLOBurnRate'") >= 1);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM alert_transitions WHERE"
                                     " phase = 'phase-hot' AND to_state = 'firing' AND"
                                     " severity = 'page' AND alertname = 'SLOBurnRate'"),
                     1);
    int gone = 0;
    for (int i = 0; i < 20 && !gone; i++) {
        gone = !s_am_has(am_url, "\"alertname\":\"SLOBurnRate\"", "\"phase\":\"phase-hot\"",
                         "\"severity\":\"page\"");
        if (!gone) {
            h_sleep_ms(500);
        }
    }
    assert_true(gone);
    /* The other phase never alerted on its SLO. */
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM alerts WHERE phase = 'phase-cool'"
                                     " AND alertname = 'SLOBurnRate'"),
                     0);
    assert_true(h_query_ll(&db, "SELECT count(*) FROM slo_evaluations WHERE phase ="
                                " 'phase-cool'") > 0);
    /* Nothing the faulted nodes reported was refused (their readings stay plausible). */
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM ingest_rejects"), 0);
    kill(hot, SIGTERM);
    kill(cool, SIGTERM);
    h_wait(hot, 30000);
    h_wait(cool, 30000);
    PQfinish(listener);
    assert_int_equal(h_stop(collector, 15000), 0);
    h_stop(am, 10000);
    h_db_drop(&db);
}

static void test_capacity_breach_and_config_errors(void **state)
{
    h_db_t db;
    h_db_create(&db, "cap");
    h_secure(db.dir, "unused", "none");
    h_enrol(db.dir, "small", "small", "small-node-*");
    char slo_path[256];
    snprintf(slo_path, sizeof slo_path, "%s/phases.yaml", db.dir);
    /* A config error names the file, line and field. */
    s_write(slo_path, "phases:\n  - {id: p, name: P, go_live: 2026-01-01, contracted_mw: 1,\n"
                      "     slos: [{name: a, model: m, metric: ttft, threshold: 1,\n"
                      "             objective: 1.5}]}\n");
    char log[256];
    snprintf(log, sizeof log, "%s/bad.log", db.dir);
    char *bad[] = {(char *)WW_COLLECTOR_BIN,
                   (char *)"--slo",
                   slo_path,
                   (char *)"--insecure",
                   (char *)"--pg",
                   db.conninfo,
                   (char *)"--check-config",
                   NULL};
    assert_int_equal(h_wait(h_spawn(bad, log), 10000), 2);
    char *text = h_read_file(log);
    if (!strstr(text, "phases.yaml:") || !strstr(text, "objective")) {
        fail_msg("expected an error naming the file and objective, got:\n%s", text);
    }
    free(text);

    /* Minutes of hours three days back, as collectors that ran before left them (older
     * than the 2 days the maintenance rolls up): the evaluator's first cycle rolls up every
     * hour of its longest window (the 30-day period). */
    char *migrate[] = {(char *)WW_COLLECTOR_BIN, (char *)"--insecure",
                       (char *)"--pg",           db.conninfo,
                       (char *)"--migrate-only", NULL};
    assert_int_equal(h_wait(h_spawn(migrate, log), 30000), 0);
    PQclear(h_query(&db, "INSERT INTO latency_rollup_1m SELECT date_trunc('hour', now(), 'UTC')"
                         " - interval '72 hours' + i * interval '1 minute', 'phase-small', 'm',"
                         " 2, 10, 0, 0, 0, 100, 50, h, h, h, h FROM generate_series(0, 179) i,"
                         " LATERAL (SELECT ww_hist_make(0, 3, 3.0, 0.5, 2.0, 0, 0, 0, -1,"
                         " '{1,2}') AS h) x"));
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM latency_rollup_1h"), 0);

    /* Past go-live, 2 nodes of 23 kW against 1 MW contracted: breach. A future phase is not
     * live and cannot breach. */
    s_write(slo_path, "evaluation:\n  interval: 1s\n  healthy_window: 5s\n"
                      "phases:\n"
                      "  - {id: phase-small, name: Small, go_live: 2026-01-01, contracted_mw: 1,\n"
                      "     slos: [{name: avail, model: '*', metric: availability,"
                      " objective: 0.9}]}\n"
                      "  - {id: phase-2028, name: Later, go_live: 2028-06-01, contracted_mw: 250,\n"
                      "     slos: [{name: avail, model: '*', metric: availability,"
                      " objective: 0.9}]}\n");
    setenv("WW_COLLECTOR_SLO_FILE", slo_path, 1);
    char endpoint[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    unsetenv("WW_COLLECTOR_SLO_FILE");
    setenv("WW_TEST_ENDPOINT", endpoint, 1);
    pid_t agent = s_agent(&db, "small", "phase-small", NULL, "6s", log, sizeof log);
    int breach = 0;
    for (int i = 0; i < 30 && !breach; i++) {
        h_sleep_ms(1000);
        breach = h_query_ll(&db, "SELECT count(*) FROM alerts WHERE phase = 'phase-small' AND"
                                 " alertname = 'CapacityBreach' AND state = 'firing'") > 0;
    }
    assert_true(breach);
    assert_true(h_query_ll(&db, "SELECT count(*) FROM capacity_evaluations WHERE phase ="
                                " 'phase-small' AND breach AND healthy_nodes = 2 AND"
                                " abs(delivered_mw - 0.046) < 1e-9") > 0);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM capacity_evaluations WHERE phase ="
                                     " 'phase-2028' AND (live OR breach)"),
                     0);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM alerts WHERE phase = 'phase-2028'"), 0);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM latency_rollup_1h WHERE phase ="
                                     " 'phase-small' AND model = 'm' AND windows = 120 AND"
                                     " requests_ok = 600 AND ww_hist_count(ttft) = 180"),
                     3);
    h_agent_wait_ok(agent, log, 60000);
    assert_int_equal(h_stop(collector, 15000), 0);
    h_db_drop(&db);
}

/* Waits up to timeout_s for a query's number to equal want; returns the last value. */
static long long s_wait_ll(h_db_t *db, const char *sql, long long want, int timeout_s)
{
    long long v = h_query_ll(db, sql);
    for (int i = 0; i < timeout_s * 2 && v != want; i++) {
        h_sleep_ms(500);
        v = h_query_ll(db, sql);
    }
    return v;
}

/* Waits up to timeout_s for Alertmanager to list (want = 1) or not list (0) the alert. */
static int s_wait_am(const char *url, const char *a, const char *b, const char *c, int want,
                     int timeout_s)
{
    int has = s_am_has(url, a, b, c);
    for (int i = 0; i < timeout_s * 2 && has != want; i++) {
        h_sleep_ms(500);
        has = s_am_has(url, a, b, c);
    }
    return has;
}

#define S_IMPOSSIBLE_FIRING                                                                        \
    "SELECT count(*) FROM alerts WHERE phase = 'phase-a' AND slo = 'ttft-impossible' AND"          \
    " severity = 'page' AND state = 'firing'"
#define S_BREACH_B_FIRING                                                                          \
    "SELECT count(*) FROM alerts WHERE phase = 'phase-b' AND alertname = 'CapacityBreach' AND"     \
    " state = 'firing'"

/* Issue 15 item 2: an SLO removed from the phases file (SIGHUP) and a phase removed (a
 * restart) no longer keep their alerts firing: they are resolved in PostgreSQL, on the
 * NOTIFY channel and in Alertmanager (endsAt: a real Alertmanager drops them at once, not
 * after its resolve_timeout), and `waferwatch slo` neither lists nor counts them. A broken
 * file on SIGHUP is refused and the old configuration stays. Item 12: a stopped evaluator
 * makes the CLI warn and exit 3. */
static void test_removed_slo_and_phase_resolve_their_alerts(void **state)
{
    h_db_t db;
    h_db_create(&db, "retire");
    h_secure(db.dir, "unused", "none");
    h_enrol(db.dir, "ret", "ret", "ret-node-*");
    int port = h_free_port();
    char am_url[64];
    pid_t am = h_alertmanager_start(db.dir, port, am_url, sizeof am_url);
    char slo_path[256], head[512], yaml[2048];
    snprintf(slo_path, sizeof slo_path, "%s/phases.yaml", db.dir);
    snprintf(head, sizeof head,
             "evaluation:\n  interval: 1s\n  window_scale: 0.01\n  healthy_window: 5s\n"
             "alertmanager:\n  url: %s\n"
             "phases:\n",
             am_url);
    /* ttft-impossible: no request is that fast, so it burns 100x on every window at once.
     * phase-b is live with no node at all: CapacityBreach. */
    static const char phase_a_ok[] =
        "  - {id: phase-a, name: A, go_live: 2026-01-01, contracted_mw: 0.04,\n"
        "     slos: [{name: ttft-ok, model: llama3.1-8b, metric: ttft, threshold: 30,\n"
        "             objective: 0.99, min_requests: 1}";
    static const char impossible[] =
        ",\n             {name: ttft-impossible, model: llama3.1-8b, metric: ttft,\n"
        "              threshold: 0.000001, objective: 0.99, min_requests: 1}";
    static const char phase_b[] =
        "  - {id: phase-b, name: B, go_live: 2026-01-01, contracted_mw: 1,\n"
        "     slos: [{name: avail, model: '*', metric: availability, objective: 0.9}]}\n";
    snprintf(yaml, sizeof yaml, "%s%s%s]}\n%s", head, phase_a_ok, impossible, phase_b);
    s_write(slo_path, yaml);
    setenv("WW_COLLECTOR_SLO_FILE", slo_path, 1);
    char endpoint[256], listen[256], log[256];
    snprintf(listen, sizeof listen, "ipc://%s/collector.sock", db.dir);
    pid_t collector =
        h_collector_spawn(db.dir, listen, db.conninfo, "collector", endpoint, sizeof endpoint);
    setenv("WW_TEST_ENDPOINT", endpoint, 1);
    PGconn *listener = PQconnectdb(db.conninfo);
    PQclear(PQexec(listener, "LISTEN waferwatch_alerts"));
    pid_t agent = s_agent(&db, "ret", "phase-a", NULL, "150s", NULL, 0);

    assert_int_equal(s_wait_ll(&db, S_IMPOSSIBLE_FIRING, 1, 60), 1);
    assert_int_equal(s_wait_ll(&db, S_BREACH_B_FIRING, 1, 10), 1);
    assert_int_equal(s_wait_am(am_url, "\"slo\":\"ttft-impossible\"", "\"phase\":\"phase-a\"",
                               "\"severity\":\"page\"", 1, 15),
                     1);
    char *report = NULL;
    assert_int_equal(s_cli_slo(&db, "slo-before", &report), 1);
    assert_non_null(strstr(report, "ttft-impossible"));
    assert_non_null(strstr(report, "phase-b"));
    free(report);

    /* A broken file is refused whole: the alert keeps firing, evaluations go on. */
    s_write(slo_path, "phases:\n  - {id: phase-a, go_live: 2026-13-45, contracted_mw: 1}\n");
    long long evals = h_query_ll(&db, "SELECT count(*) FROM capacity_evaluations");
    kill(collector, SIGHUP);
    h_sleep_ms(3000);
    snprintf(log, sizeof log, "%s/collector.log", db.dir);
    char *text = h_read_file(log);
    if (!text || !strstr(text, "phases file not reloaded") || !strstr(text, "go_live")) {
        fail_msg("expected the broken phases file to be refused, log:\n%s", text ? text : "");
    }
    free(text);
    assert_int_equal(h_query_ll(&db, S_IMPOSSIBLE_FIRING), 1);
    assert_true(h_query_ll(&db, "SELECT count(*) FROM capacity_evaluations") > evals);

    /* The SLO removed, SIGHUP: resolved everywhere, retired, not reported. */
    (void)s_notified(listener, "", "", 0); /* drop what came before */
    snprintf(yaml, sizeof yaml, "%s%s]}\n%s", head, phase_a_ok, phase_b);
    s_write(slo_path, yaml);
    kill(collector, SIGHUP);
    assert_int_equal(s_wait_ll(&db, S_IMPOSSIBLE_FIRING, 0, 15), 0);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM alerts WHERE slo = 'ttft-impossible'"
                                     " AND state = 'firing'"),
                     0);
    assert_true(h_query_ll(&db, "SELECT count(*) FROM alert_transitions WHERE phase = 'phase-a'"
                                " AND slo = 'ttft-impossible' AND to_state = 'resolved'"
                                " AND details ? 'retired'") >= 1);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM slo_status WHERE phase = 'phase-a'"
                                     " AND slo = 'ttft-impossible' AND retired_at IS NOT NULL"),
                     1);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM slo_status WHERE phase = 'phase-a'"
                                     " AND slo = 'ttft-ok' AND retired_at IS NULL"),
                     1);
    assert_true(
        s_notified(listener, "\"slo\" : \"ttft-impossible\"", "\"state\" : \"resolved\"", 5000));
    assert_int_equal(s_wait_am(am_url, "\"slo\":\"ttft-impossible\"", "\"phase\":\"phase-a\"",
                               "\"alertname\":\"SLOBurnRate\"", 0, 15),
                     0);
    assert_int_equal(s_cli_slo(&db, "slo-slo-removed", &report), 1); /* phase-b still pages */
    if (strstr(report, "ttft-impossible") || !strstr(report, "ttft-ok")) {
        fail_msg("the removed SLO is still reported:\n%s", report);
    }
    free(report);
    /* Still evaluated after the reload: the kept SLO, the kept phase. */
    assert_int_equal(h_query_ll(&db, S_BREACH_B_FIRING), 1);

    /* The phase removed, the collector restarted: its alerts resolve, it is not reported,
     * and the exit code no longer pages. */
    assert_int_equal(h_stop(collector, 15000), 0);
    snprintf(yaml, sizeof yaml, "%s%s]}\n", head, phase_a_ok);
    s_write(slo_path, yaml);
    collector =
        h_collector_spawn(db.dir, listen, db.conninfo, "collector2", endpoint, sizeof endpoint);
    assert_int_equal(s_wait_ll(&db, S_BREACH_B_FIRING, 0, 15), 0);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM phases WHERE id = 'phase-b'"
                                     " AND retired_at IS NOT NULL"),
                     1);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM slo_status WHERE phase = 'phase-b'"
                                     " AND retired_at IS NULL"),
                     0);
    assert_true(s_notified(listener, "\"phase\" : \"phase-b\"", "\"state\" : \"resolved\"", 5000));
    assert_int_equal(s_wait_am(am_url, "\"alertname\":\"CapacityBreach\"", "\"phase\":\"phase-b\"",
                               "\"severity\":\"page\"", 0, 15),
                     0);
    assert_int_equal(s_cli_slo(&db, "slo-phase-removed", &report), 0);
    if (strstr(report, "phase-b") || !strstr(report, "phase-a")) {
        fail_msg("the removed phase is still reported:\n%s", report);
    }
    free(report);

    /* Item 12: the evaluator stops; once its last evaluation is older than a few
     * intervals (made so here rather than waited for), the CLI warns and exits 3. */
    kill(agent, SIGTERM);
    h_wait(agent, 30000);
    assert_int_equal(h_stop(collector, 15000), 0);
    unsetenv("WW_COLLECTOR_SLO_FILE");
    PQclear(h_query(&db, "UPDATE slo_evaluator SET evaluated_at = now() - interval '10 min'"));
    assert_int_equal(s_cli_slo(&db, "slo-stale", &report), 3);
    if (!strstr(report, "stale") || !strstr(report, "evaluator is down")) {
        fail_msg("expected a stale warning with the age, got:\n%s", report);
    }
    free(report);
    PQfinish(listener);
    h_stop(am, 10000);
    h_db_drop(&db);
}

/* Item 12: a database where no evaluation ever ran: the CLI says so and exits 3; a fresh
 * heartbeat exits 0 and prints its age. */
static void test_cli_without_evaluation(void **state)
{
    h_db_t db;
    h_db_create(&db, "noeval");
    char log[256];
    snprintf(log, sizeof log, "%s/migrate.log", db.dir);
    char *migrate[] = {(char *)WW_COLLECTOR_BIN, (char *)"--insecure",
                       (char *)"--pg",           db.conninfo,
                       (char *)"--migrate-only", NULL};
    assert_int_equal(h_wait(h_spawn(migrate, log), 30000), 0);
    char *report = NULL;
    assert_int_equal(s_cli_slo(&db, "slo-none", &report), 3);
    if (!strstr(report, "no SLO evaluation yet")) {
        fail_msg("expected 'no SLO evaluation yet', got:\n%s", report);
    }
    free(report);
    PQclear(h_query(&db, "INSERT INTO slo_evaluator (evaluated_at, interval_s, phases, slos,"
                         " loaded_at, host, pid) VALUES (now() - interval '5 s', 30, 0, 0,"
                         " now(), 'h', 1)"));
    assert_int_equal(s_cli_slo(&db, "slo-fresh", &report), 0);
    if (!strstr(report, "last evaluation") || strstr(report, "stale")) {
        fail_msg("expected the age of a fresh evaluation, got:\n%s", report);
    }
    free(report);
    /* 91 s at 30 s intervals: 3 intervals missed. */
    PQclear(h_query(&db, "UPDATE slo_evaluator SET evaluated_at = now() - interval '91 s'"));
    assert_int_equal(s_cli_slo(&db, "slo-stale", &report), 3);
    free(report);
    h_db_drop(&db);
}

/* Issue 15 item 6: an alert names the windows and rates of the rule that fired, and a
 * burn rate over too few requests (min_requests) does not fire. */
static void test_alert_names_its_rule_and_needs_min_requests(void **state)
{
    h_db_t db;
    h_db_create(&db, "rules");
    h_secure(db.dir, "unused", "none");
    h_enrol(db.dir, "rul", "rul", "rul-node-*");
    char slo_path[256], log[256];
    snprintf(slo_path, sizeof slo_path, "%s/phases.yaml", db.dir);
    /* Both SLOs burn 100x everywhere (no request is that fast); "quiet" wants more
     * requests than the run has. */
    static const char head[] =
        "evaluation:\n  interval: 1s\n  window_scale: 0.01\n  healthy_window: 5s\n"
        "phases:\n"
        "  - {id: phase-r, name: R, go_live: 2026-01-01, contracted_mw: 0.04,\n"
        "     slos: [{name: slow, model: llama3.1-8b, metric: ttft, threshold: 0.000001,\n"
        "             objective: 0.99, min_requests: 1},\n"
        "            {name: quiet, model: llama3.1-8b, metric: ttft, threshold: 0.000001,\n"
        "             objective: 0.99, min_requests: 1000000000}";
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "%s]}\n", head);
    s_write(slo_path, yaml);
    setenv("WW_COLLECTOR_SLO_FILE", slo_path, 1);
    char endpoint[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    unsetenv("WW_COLLECTOR_SLO_FILE");
    setenv("WW_TEST_ENDPOINT", endpoint, 1);
    pid_t agent = s_agent(&db, "rul", "phase-r", NULL, "12s", log, sizeof log);
    assert_int_equal(s_wait_ll(&db,
                               "SELECT count(*) FROM alerts WHERE phase = 'phase-r' AND slo ="
                               " 'slow' AND state = 'firing'",
                               2, 30),
                     2);
    PGresult *r = h_query(&db, "SELECT severity, summary FROM alerts WHERE phase = 'phase-r'"
                               " AND slo = 'slow' ORDER BY severity");
    assert_int_equal(PQntuples(r), 2);
    const char *page = PQgetvalue(r, 0, 1), *ticket = PQgetvalue(r, 1, 1);
    /* Each alert names the rule(s) that fired with their own windows and rates; which of
     * a severity's two rules fired first depends on when the short window first held
     * requests (a loaded machine: only the 6h/30m page rule at the first evaluation). */
    if ((!strstr(page, "1h 100.00x and 5m 100.00x > 14.4x") &&
         !strstr(page, "6h 100.00x and 30m 100.00x > 6x")) ||
        (!strstr(ticket, "1d 100.00x and 2h 100.00x > 3x") &&
         !strstr(ticket, "3d 100.00x and 6h 100.00x > 1x")) ||
        strstr(page, "1h, 5m, 6h")) {
        fail_msg("expected the rules' own windows and rates, got:\n%s\n%s", page, ticket);
    }
    PQclear(r);
    /* Item 10: an SLO on a model no agent reports is warned of once, naming the models
     * the phase does report; an SLO that had no request only before the agents came is
     * said to have them again. */
    snprintf(yaml, sizeof yaml,
             "%s,\n            {name: typo, model: llama-3.1-8b, metric: ttft, threshold: 1,\n"
             "             objective: 0.99}]}\n",
             head);
    s_write(slo_path, yaml);
    char clog[256];
    snprintf(clog, sizeof clog, "%s/collector.log", db.dir);
    kill(collector, SIGHUP);
    assert_int_equal(s_wait_ll(&db, "SELECT count(*) FROM slo_status WHERE slo = 'typo'", 1, 30),
                     1);
    h_agent_wait_ok(agent, log, 60000);
    h_sleep_ms(3000); /* three more evaluations: still one warning each */
    char *text = h_read_file(clog);
    assert_non_null(text);
    static const char typo[] = "slo phase-r/typo: no request for model \"llama-3.1-8b\" in phase"
                               " phase-r in the last 1h (models reported there: llama3.1-405b,"
                               " llama3.1-70b, llama3.1-8b)";
    if (!strstr(text, typo) || strstr(strstr(text, typo) + 1, typo)) {
        const char *at = strstr(text, "slo phase-r/typo");
        fail_msg("expected the typo warning exactly once, got: %.400s", at ? at : "(none)");
    }
    static const char slow[] = "slo phase-r/slow: no request for model \"llama3.1-8b\"";
    if (strstr(text, slow) && !strstr(text, "slo phase-r/slow: model \"llama3.1-8b\" has requests"
                                            " again")) {
        fail_msg("phase-r/slow was warned of but not recovered, log:\n%s", text);
    }
    free(text);
    /* quiet burned just as fast but never fired. */
    assert_true(h_query_ll(&db, "SELECT count(*) FROM slo_evaluations WHERE phase = 'phase-r'"
                                " AND slo = 'quiet' AND window_name = '3d' AND burn_rate > 14.4"
                                " AND total > 0") > 0);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM alerts WHERE slo = 'quiet'"), 0);
    assert_int_equal(h_stop(collector, 15000), 0);
    h_db_drop(&db);
}

/* The path of a file of deploy/ (this file lives in tests/integration/). */
static void s_deploy_path(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s", __FILE__);
    char *cut = strstr(out, "tests/integration/test_slo.c");
    assert_non_null(cut);
    snprintf(cut, cap - (size_t)(cut - out), "deploy/%s", name);
}

/* Runs the demo's fleet without its pump fault (three racks of simulated nodes with the
 * simulator's defaults at their daily peak, seeds as in deploy/demo.sh; racks 1-2 of 4
 * nodes in phase_a, rack 3 of nodes_b in phase_b) for 75 s against the phases file at path,
 * and fails, naming it and the burn rates and latencies reached, if any SLO alert fires,
 * or any alert at all in phase_b (the demo's "other phase stays green"). */
static void s_fleet_stays_quiet(const char *tag, const char *path, const char *phase_a,
                                const char *phase_b, const char *nodes_b)
{
    h_db_t db;
    h_db_create(&db, tag);
    h_secure(db.dir, "unused", "none");
    static const char *const racks[] = {"okc1-r01", "okc1-r02", "okc2-r01"};
    static const char *const seeds[] = {"101", "102", "201"};
    for (int i = 0; i < 3; i++) {
        char pattern[64];
        snprintf(pattern, sizeof pattern, "%s-node-*", racks[i]);
        h_enrol(db.dir, racks[i], racks[i], pattern);
    }
    setenv("WW_COLLECTOR_SLO_FILE", path, 1);
    char endpoint[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    unsetenv("WW_COLLECTOR_SLO_FILE");
    /* The simulator's busiest hour whatever the time: its arrivals peak at 15:00 UTC at
     * (1 + diurnal_amplitude) x arrival_rate, 1.3 x 30/s by default (see ww_sim.c). */
    double h = (double)(time(NULL) % 86400) / 3600.0;
    char rate[32];
    snprintf(rate, sizeof rate, "%.3f",
             30.0 * 1.3 / (1.0 + 0.3 * cos(2 * 3.14159265358979 * (h - 15) / 24)));
    const char *env[] = {"WW_AGENT_SIM_ARRIVAL_RATE", rate, NULL};
    pid_t agents[3];
    char logs[3][256];
    for (int i = 0; i < 3; i++) {
        const char *args[] = {"--phase",     i < 2 ? phase_a : phase_b,
                              "--sim-nodes", i < 2 ? "4" : nodes_b,
                              "--sim-seed",  seeds[i],
                              "--run-for",   "75s",
                              NULL};
        agents[i] = h_agent_spawn_secure(&db, racks[i], endpoint, env, args, logs[i], 256);
    }
    for (int i = 0; i < 3; i++) {
        h_agent_wait_ok(agents[i], logs[i], 120000);
    }
    h_sleep_ms(3000);
    assert_int_equal(h_stop(collector, 15000), 0);
    PGresult *b = h_query(&db, "SELECT string_agg(format('%s/%s %s %s', phase, slo, window_name,"
                               " round(burn::numeric, 2)), ', ' ORDER BY burn DESC)"
                               " FROM (SELECT phase, slo, window_name, max(burn_rate) AS burn"
                               " FROM slo_evaluations WHERE window_name <> 'period'"
                               " GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 8) x");
    print_message("%s: highest burn rates: %s\n", path, PQgetvalue(b, 0, 0));
    PGresult *q = h_query(&db, "SELECT string_agg(format('%s: ttft p99 %s p99.9 %s, tpot p99 %s"
                               " p99.9 %s, e2e p99 %s, failed %s%%', model,"
                               " round(ww_quantile(t, 0.99)::numeric, 3),"
                               " round(ww_quantile(t, 0.999)::numeric, 3),"
                               " round(ww_quantile(o, 0.99)::numeric, 4),"
                               " round(ww_quantile(o, 0.999)::numeric, 4),"
                               " round(ww_quantile(e, 0.99)::numeric, 2),"
                               " round(100.0 * bad / greatest(ok + bad, 1), 3)), '; ')"
                               " FROM (SELECT model, ww_merge(ttft) AS t, ww_merge(tpot) AS o,"
                               " ww_merge(e2e) AS e, sum(requests_ok) AS ok,"
                               " sum(requests_error + requests_timeout + requests_rejected)"
                               " AS bad FROM latency_rollup_1m GROUP BY model) x");
    print_message("%s: latencies: %s\n", path, PQgetvalue(q, 0, 0));
    PQclear(q);
    PGresult *r = h_query(&db, "SELECT phase, slo, severity, summary FROM alerts"
                               " WHERE alertname = 'SLOBurnRate' ORDER BY started_at");
    if (PQntuples(r) > 0) {
        fail_msg("%s: %d SLO alerts fired without a fault, first: %s %s %s: %s", path, PQntuples(r),
                 PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2),
                 PQgetvalue(r, 0, 3));
    }
    PQclear(r);
    const char *pb[] = {phase_b};
    PGconn *c = db.conn;
    r = PQexecParams(c, "SELECT alertname, summary FROM alerts WHERE phase = $1 ORDER BY id", 1,
                     NULL, pb, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    if (PQntuples(r) > 0) {
        fail_msg("%s: %d alerts fired in %s, which has no fault, first: %s: %s", path, PQntuples(r),
                 phase_b, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    PQclear(b);
    assert_true(h_query_ll(&db, "SELECT count(*) FROM slo_evaluations WHERE total > 0") > 0);
    h_db_drop(&db);
}

/* Issue 15 item 6: the demo's phases file and the simulator's defaults raise no SLO
 * alert by themselves. */
static void test_demo_phases_default_sim_quiet(void **state)
{
    char path[512];
    s_deploy_path("demo-phases.yaml", path, sizeof path);
    /* Phase 2027b has 5 nodes in the demo: 4 simulated, 1 from the request log. */
    s_fleet_stays_quiet("quietdemo", path, "phase-2026a", "phase-2027b", "5");
}

/* The same for the shipped example (window_scale 1: the windows hold the run's minute),
 * evaluated every 2 s instead of 30 s and with no Alertmanager. */
static void test_example_phases_default_sim_quiet(void **state)
{
    char path[512], out[256];
    s_deploy_path("phases.example.yaml", path, sizeof path);
    char *text = h_read_file(path);
    assert_non_null(text);
    char *iv = strstr(text, "interval: 30s"), *url = strstr(text, "url: \"http");
    assert_non_null(iv);
    assert_non_null(url);
    memcpy(iv, "interval:  2s", 13);
    char *end = strchr(url + 6, '"');
    assert_non_null(end);
    memset(url + 5, ' ', (size_t)(end - url - 4));
    url[5] = '"';
    url[6] = '"';
    snprintf(out, sizeof out, "/tmp/ww-example-phases-%d.yaml", (int)getpid());
    s_write(out, text);
    free(text);
    s_fleet_stays_quiet("quietexample", out, "phase-2026a", "phase-2027a", "4");
    unlink(out);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_pump_fault_pages_then_resolves_other_phase_green),
    cmocka_unit_test(test_capacity_breach_and_config_errors),
    cmocka_unit_test(test_removed_slo_and_phase_resolve_their_alerts),
    cmocka_unit_test(test_cli_without_evaluation),
    cmocka_unit_test(test_alert_names_its_rule_and_needs_min_requests),
    cmocka_unit_test(test_demo_phases_default_sim_quiet),
    cmocka_unit_test(test_example_phases_default_sim_quiet),
};
WW_TEST_MAIN(tests, NULL, NULL)
