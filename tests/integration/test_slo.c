/* SLOs of the phased buildout end to end: agents of one phase suffer a coolant pump fault,
 * the collector's evaluation sees the TTFT error budget burn past 14.4x, pages (PostgreSQL,
 * NOTIFY, a real Alertmanager, `waferwatch slo`), and resolves once the fault clears; the
 * other phase stays green. Windows are compressed with evaluation.window_scale. */
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
#include <unistd.h>

#define AM_BIN "/usr/bin/prometheus-alertmanager"

static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

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
static pid_t s_alertmanager(const char *dir, int port, char *url, size_t cap)
{
    char cfg[256], storage[256], listen[64], log[256];
    snprintf(cfg, sizeof cfg, "%s/alertmanager.yml", dir);
    snprintf(storage, sizeof storage, "--storage.path=%s/am-data", dir);
    snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", port);
    snprintf(log, sizeof log, "%s/alertmanager.log", dir);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fputs("route:\n  receiver: \"null\"\n  group_wait: 1s\nreceivers:\n  - name: \"null\"\n", f);
    fclose(f);
    char cfgarg[300];
    snprintf(cfgarg, sizeof cfgarg, "--config.file=%s", cfg);
    char *argv[] = {
        (char *)AM_BIN, cfgarg, storage, listen, (char *)"--cluster.listen-address=", NULL};
    pid_t pid = h_spawn(argv, log);
    snprintf(url, cap, "http://127.0.0.1:%d", port);
    char ready[128];
    snprintf(ready, sizeof ready, "%s/-/ready", url);
    for (int i = 0; i < 150; i++) {
        char *body = s_get(ready);
        if (body) {
            free(body);
            return pid;
        }
        h_sleep_ms(100);
    }
    char *text = h_read_file(log);
    fail_msg("Alertmanager did not become ready:\n%s", text ? text : "");
    return -1;
}

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

static void test_pump_fault_pages_then_resolves_other_phase_green(void **state)
{
    h_db_t db;
    h_db_create(&db, "slo");
    /* One key pair for both agents: enrolled for each agent id. */
    h_secure(db.dir, "unused", "none");
    h_enrol(db.dir, "hot", "hot", "hot-node-*");
    h_enrol(db.dir, "cool", "cool", "cool-node-*");
    int port = s_free_port();
    char am_url[64];
    pid_t am = s_alertmanager(db.dir, port, am_url, sizeof am_url);
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
    pid_t collector =
        h_collector_spawn(db.dir, listen, db.conninfo, "collector", endpoint, sizeof endpoint);
    setenv("WW_TEST_ENDPOINT", endpoint, 1);

    PGconn *listener = PQconnectdb(db.conninfo);
    PQclear(PQexec(listener, "LISTEN waferwatch_alerts"));

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
    PQconsumeInput(listener);
    PGnotify *n = PQnotifies(listener);
    assert_non_null(n);
    assert_non_null(strstr(n->extra, "phase-hot"));
    assert_non_null(strstr(n->extra, "firing"));
    PQfreemem(n);
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
                         " LATERAL (SELECT ROW(0, 3, 3.0, 0.5, 2.0, 0, 0, 0, -1,"
                         " '{1,2}')::ww_hist AS h) x"));
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
                                     " requests_ok = 600 AND (ttft).count = 180"),
                     3);
    h_agent_wait_ok(agent, log, 60000);
    assert_int_equal(h_stop(collector, 15000), 0);
    h_db_drop(&db);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_pump_fault_pages_then_resolves_other_phase_green),
    cmocka_unit_test(test_capacity_breach_and_config_errors),
};
WW_TEST_MAIN(tests, NULL, NULL)
