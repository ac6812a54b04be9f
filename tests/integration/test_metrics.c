/* /metrics and /healthz of the real binaries (metrics.listen): a CURVE pipeline whose
 * agent and collector both serve metrics on 127.0.0.1:0 (the bound port read back from
 * their logs); the counters move and agree with PostgreSQL, every body passes
 * `promtool check metrics`; /healthz turns 503 for the agent once its collector is gone
 * or was never there, and for the collector while PostgreSQL is unreachable; other paths
 * are 404 and other methods 405; an address in use, or a libmicrohttpd that cannot be
 * loaded, stops either binary with a message naming metrics.listen; libmicrohttpd is
 * mapped into a binary only when metrics.listen is set. */
#include "harness.h"
#include "harness_http.h"
#include "ww_test.h"
#include "ww_version.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROMTOOL "promtool"

/* One request to 127.0.0.1:port; returns the body (malloc'd, never NULL) and sets *code
 * (0 when there was no answer) and, when ctype is given, the Content-Type. */
static char *s_http(int port, const char *method, const char *path, long *code, char *ctype,
                    size_t ctype_cap)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    const char *fields = strcmp(method, "POST") == 0 ? "x=1" : NULL;
    return h_http_request(method, url, fields, code, ctype, ctype_cap);
}

/* GET /metrics: must be 200 with the exposition format's content type. */
static char *s_metrics(int port)
{
    long code;
    char ctype[128] = "";
    char *body = s_http(port, "GET", "/metrics", &code, ctype, sizeof ctype);
    if (code != 200) {
        fail_msg("GET /metrics on port %d: HTTP %ld", port, code);
    }
    assert_string_equal(ctype, "text/plain; version=0.0.4; charset=utf-8");
    return body;
}

/* `promtool check metrics` on the body (stdin): it prints each problem and exits 1. */
static void s_promtool(const char *dir, const char *name, const char *body)
{
    char in[256], out[256], cmd[700];
    snprintf(in, sizeof in, "%s/%s.prom", dir, name);
    snprintf(out, sizeof out, "%s/%s.promtool", dir, name);
    FILE *f = fopen(in, "w");
    assert_non_null(f);
    fputs(body, f);
    fclose(f);
    if (system("command -v " PROMTOOL " >/dev/null 2>&1") != 0) {
        fail_msg("promtool not found: apt-get install prometheus (deploy/deps.sh lists it)");
    }
    snprintf(cmd, sizeof cmd, PROMTOOL " check metrics < '%s' > '%s' 2>&1", in, out);
    int rc = system(cmd);
    char *report = h_read_file(out);
    if (rc != 0 || (report && *report)) {
        fail_msg("promtool check metrics on %s's /metrics (exit %d):\n%s\n--- body:\n%s", name, rc,
                 report ? report : "", body);
    }
    free(report);
}

/* Polls /healthz until it answers `want` (up to timeout_ms); returns the last body. */
static char *s_health_until(int port, long want, int timeout_ms)
{
    long code = 0;
    char *body = NULL;
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        free(body);
        body = s_http(port, "GET", "/healthz", &code, NULL, 0);
        if (code == want) {
            return body;
        }
        h_sleep_ms(100);
    }
    fail_msg("/healthz on port %d stayed %ld (wanted %ld): %s", port, code, want, body);
    return NULL;
}

static void s_expect_404_405(int port)
{
    long code;
    free(s_http(port, "GET", "/", &code, NULL, 0));
    assert_int_equal(code, 404);
    free(s_http(port, "GET", "/metricsz", &code, NULL, 0));
    assert_int_equal(code, 404);
    free(s_http(port, "POST", "/metrics", &code, NULL, 0));
    assert_int_equal(code, 405);
    free(s_http(port, "PUT", "/healthz", &code, NULL, 0));
    assert_int_equal(code, 405);
}

/* Whether /proc/PID/maps of a running process maps a file whose path contains `name`. */
static bool s_maps(pid_t pid, const char *name)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    char *maps = h_read_file(path);
    assert_non_null(maps);
    bool found = strstr(maps, name) != NULL;
    free(maps);
    return found;
}

/* Starts an agent; `metrics` is its metrics.listen (NULL: none), `extra` one more
 * argument (may be NULL). */
static pid_t s_agent_with(const char *dir, const char *endpoint, const char *name,
                          const char *metrics, const char *extra, char *log, size_t log_cap)
{
    char spool[256];
    snprintf(spool, sizeof spool, "%s/spool-%s", dir, name);
    snprintf(log, log_cap, "%s/%s.log", dir, name);
    char *argv[24] = {(char *)WW_AGENT_BIN,
                      (char *)"--spool-dir",
                      spool,
                      (char *)"--collector",
                      (char *)endpoint,
                      (char *)"--agent-id",
                      (char *)"mx-agent",
                      (char *)"--node-id",
                      (char *)"mx-node",
                      (char *)"--sim-nodes",
                      (char *)"2",
                      (char *)"--interval",
                      (char *)"100ms",
                      (char *)"--drain-timeout",
                      (char *)"1s"};
    size_t argc = 15;
    if (metrics) {
        argv[argc++] = (char *)"--metrics-listen";
        argv[argc++] = (char *)metrics;
    }
    argv[argc++] = (char *)extra;
    argv[argc] = NULL;
    return h_spawn(argv, log);
}

static pid_t s_agent(const char *dir, const char *endpoint, const char *name, const char *extra,
                     char *log, size_t log_cap)
{
    return s_agent_with(dir, endpoint, name, "127.0.0.1:0", extra, log, log_cap);
}

static void test_pipeline_metrics_and_health(void **state)
{
    h_db_t db;
    h_db_create(&db, "mx");
    h_secure(db.dir, "mx-agent", "mx-node-*");
    /* The harness starts the collector; the environment turns its metrics on. */
    setenv("WW_COLLECTOR_METRICS_LISTEN", "127.0.0.1:0", 1);
    char endpoint[256], clog[256], alog[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    unsetenv("WW_COLLECTOR_METRICS_LISTEN");
    snprintf(clog, sizeof clog, "%s/collector.log", db.dir);
    int cport = h_metrics_port(collector, clog);

    /* Answers from the collector go silent 2 s after it stops: then the agent is unhealthy. */
    setenv("WW_AGENT_COLLECTOR_FAILOVER_AFTER", "2s", 1);
    pid_t agent = s_agent(db.dir, endpoint, "agent", NULL, alog, sizeof alog);
    unsetenv("WW_AGENT_COLLECTOR_FAILOVER_AFTER");
    int aport = h_metrics_port(agent, alog);
    assert_true(aport != cport);
    /* Serving: both loaded libmicrohttpd (test_libmicrohttpd_only_with_metrics_listen
     * shows that they do not otherwise). */
    assert_true(s_maps(collector, "/libmicrohttpd.so.12"));
    assert_true(s_maps(agent, "/libmicrohttpd.so.12"));
    assert_true(s_maps(agent, "/libgnutls.so"));

    /* A few seconds of traffic: until the agent has had acks for 20 batches. */
    char *abody = NULL;
    for (int i = 0; i < 150; i++) {
        free(abody);
        abody = s_metrics(aport);
        if (h_metrics_value(abody, "waferwatch_agent_batches_acked_total") >= 20) {
            break;
        }
        h_sleep_ms(100);
    }
    double acked = h_metrics_value(abody, "waferwatch_agent_batches_acked_total");
    if (acked < 20) {
        fail_msg("the agent's acks did not reach 20:\n%s", abody);
    }
    assert_true(h_metrics_value(abody, "waferwatch_build_info{version=\"" WW_VERSION
                                       "\",component=\"agent\"}") == 1);
    double ticks = h_metrics_value(abody, "waferwatch_agent_ticks_total");
    assert_true(ticks >= 20);
    assert_true(h_metrics_value(abody, "waferwatch_agent_samples_total") == 2 * ticks);
    assert_true(h_metrics_value(abody, "waferwatch_agent_batches_spooled_total") >= acked);
    assert_true(h_metrics_value(abody, "waferwatch_agent_batches_sent_total") >= acked);
    assert_true(h_metrics_value(abody, "waferwatch_agent_connects_total") >= 1);
    assert_true(h_metrics_value(abody, "waferwatch_agent_requests_recorded_total") > 0);
    assert_true(h_metrics_value(abody, "waferwatch_agent_batches_nacked_total") == 0);
    assert_true(h_metrics_value(abody, "waferwatch_agent_batches_dropped_total") == 0);
    assert_true(h_metrics_value(abody, "waferwatch_agent_spool_pending_batches") >= 0);
    assert_true(h_metrics_value(abody, "waferwatch_agent_spool_bytes") >= 0);
    assert_true(h_metrics_value(abody, "waferwatch_agent_tick_duration_seconds_count") >= 20);
    assert_true(
        h_metrics_value(abody, "waferwatch_agent_tick_duration_seconds_bucket{le=\"+Inf\"}") ==
        h_metrics_value(abody, "waferwatch_agent_tick_duration_seconds_count"));
    s_promtool(db.dir, "agent", abody);
    free(abody);

    char *cbody = s_metrics(cport);
    assert_true(h_metrics_value(cbody, "waferwatch_build_info{version=\"" WW_VERSION
                                       "\",component=\"collector\"}") == 1);
    assert_true(h_metrics_value(cbody, "waferwatch_collector_messages_received_total") >= acked);
    assert_true(h_metrics_value(cbody, "waferwatch_collector_rows_written_total") > 0);
    assert_true(h_metrics_value(cbody, "waferwatch_collector_transactions_total") > 0);
    assert_true(h_metrics_value(cbody, "waferwatch_collector_postgresql_up") == 1);
    double writes =
        h_metrics_value(cbody, "waferwatch_collector_postgresql_write_duration_seconds_count");
    assert_true(writes > 0);
    assert_true(h_metrics_value(cbody,
                                "waferwatch_collector_postgresql_write_duration_seconds_bucket{"
                                "le=\"+Inf\"}") == writes);
    assert_true(
        h_metrics_value(cbody, "waferwatch_collector_postgresql_write_duration_seconds_sum") > 0);
    assert_true(h_metrics_value(cbody, "waferwatch_collector_group_messages") >= 1);
    assert_true(
        h_metrics_value(cbody,
                        "waferwatch_collector_messages_rejected_total{reason=\"malformed\"}") == 0);
    assert_true(
        h_metrics_value(cbody,
                        "waferwatch_collector_messages_rejected_total{reason=\"forbidden\"}") == 0);
    assert_true(h_metrics_value(cbody, "waferwatch_collector_sequence_gaps_total") == 0);
    s_promtool(db.dir, "collector", cbody);
    free(cbody);

    free(s_health_until(aport, 200, 0));
    char *ok = s_health_until(cport, 200, 0);
    assert_string_equal(ok, "ok\n");
    free(ok);
    s_expect_404_405(aport);
    s_expect_404_405(cport);

    /* What the collector reports agrees with PostgreSQL while rows keep arriving: it is
     * published right after each commit, so it lies between two counts taken around it
     * (barring a read between a commit and its publication: try again). */
    double rows = -1;
    long long before = 0, after = 0;
    bool agree = false;
    for (int i = 0; i < 50 && !agree; i++) {
        before = h_query_ll(&db, "SELECT count(*) FROM node_samples");
        cbody = s_metrics(cport);
        rows = h_metrics_value(cbody, "waferwatch_collector_rows_written_total");
        free(cbody);
        after = h_query_ll(&db, "SELECT count(*) FROM node_samples");
        if (rows > (double)after) {
            fail_msg("rows_written_total %.0f > %lld rows in node_samples", rows, after);
        }
        agree = rows >= (double)before;
    }
    if (!agree) {
        fail_msg("rows_written_total %.0f, node_samples holds %lld..%lld", rows, before, after);
    }

    /* The collector goes away: the agent's acks stop and /healthz says so. */
    assert_int_equal(h_stop(collector, 15000), 0);
    char *sick = s_health_until(aport, 503, 15000);
    if (!strstr(sick, "no ack from the collector")) {
        fail_msg("unexpected reason: %s", sick);
    }
    free(sick);
    abody = s_metrics(aport);
    assert_true(h_metrics_value(abody, "waferwatch_agent_spool_pending_batches") > 0);
    s_promtool(db.dir, "agent-down", abody);
    free(abody);
    int rc = h_stop(agent, 15000);
    assert_int_equal(rc, 3); /* batches left unacked in the spool */
    h_db_drop(&db);
}

static void test_agent_never_connected_is_unhealthy(void **state)
{
    char dir[128], log[256];
    snprintf(dir, sizeof dir, "/tmp/ww-it-mxa-%d", (int)getpid());
    mkdir(dir, 0755);
    /* Nothing listens on port 1. */
    setenv("WW_AGENT_COLLECTOR_FAILOVER_AFTER", "1s", 1);
    pid_t agent = s_agent(dir, "tcp://127.0.0.1:1", "lonely", "--insecure", log, sizeof log);
    unsetenv("WW_AGENT_COLLECTOR_FAILOVER_AFTER");
    int port = h_metrics_port(agent, log);
    char *sick = s_health_until(port, 503, 10000);
    if (!strstr(sick, "never connected to a collector")) {
        fail_msg("unexpected reason: %s", sick);
    }
    assert_non_null(strstr(sick, "collector.failover_after"));
    free(sick);
    char *body = s_metrics(port);
    assert_true(h_metrics_value(body, "waferwatch_agent_batches_acked_total") == 0);
    assert_true(h_metrics_value(body, "waferwatch_agent_connects_total") == 0);
    assert_true(h_metrics_value(body, "waferwatch_agent_batches_spooled_total") > 0);
    s_promtool(dir, "lonely", body);
    free(body);
    assert_int_equal(h_stop(agent, 15000), 3);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static pid_t s_collector_nopg(const char *dir, const char *metrics, char *log, size_t log_cap)
{
    /* A socket directory that does not exist: PostgreSQL is unreachable. */
    char pg[256];
    snprintf(pg, sizeof pg, "host=%s/no-such-socket-dir dbname=ww connect_timeout=2", dir);
    snprintf(log, log_cap, "%s/collector-nopg.log", dir);
    char *argv[] = {(char *)WW_COLLECTOR_BIN,    (char *)"--insecure", (char *)"--listen",
                    (char *)"tcp://127.0.0.1:*", (char *)"--pg",       pg,
                    (char *)"--metrics-listen",  (char *)metrics,      NULL};
    return h_spawn(argv, log);
}

static void test_collector_unhealthy_without_postgresql(void **state)
{
    char dir[128], log[256];
    snprintf(dir, sizeof dir, "/tmp/ww-it-mxc-%d", (int)getpid());
    mkdir(dir, 0755);
    pid_t collector = s_collector_nopg(dir, "127.0.0.1:0", log, sizeof log);
    int port = h_metrics_port(collector, log);
    char *sick = s_health_until(port, 503, 5000);
    if (!strstr(sick, "PostgreSQL not connected")) {
        fail_msg("unexpected reason: %s", sick);
    }
    free(sick);
    char *body = s_metrics(port);
    assert_true(h_metrics_value(body, "waferwatch_collector_postgresql_up") == 0);
    assert_true(h_metrics_value(body, "waferwatch_collector_rows_written_total") == 0);
    assert_true(
        h_metrics_value(body, "waferwatch_collector_postgresql_write_duration_seconds_count") == 0);
    s_promtool(dir, "collector-nopg", body);
    free(body);
    s_expect_404_405(port);
    assert_int_equal(h_stop(collector, 15000), 0);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Holds a listening socket on 127.0.0.1; returns its fd and the port. */
static int s_occupy(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* The process exits non-zero with a log line holding both `want` and `also`. */
/* An agent without a collector or keys (spool in dir, log dir/agent.log), with
 * --check-config when check; its settings from the environment. */
static pid_t s_agent_insecure(const char *dir, bool check, char *log, size_t log_cap)
{
    char spool[200];
    snprintf(spool, sizeof spool, "%s/spool", dir);
    snprintf(log, log_cap, "%s/agent.log", dir);
    char *argv[] = {(char *)WW_AGENT_BIN,
                    (char *)"--insecure",
                    (char *)"--spool-dir",
                    spool,
                    (char *)"--run-for",
                    (char *)"30s",
                    check ? (char *)"--check-config" : NULL,
                    NULL};
    return h_spawn(argv, log);
}

/* pid exits with status `code`, its log holding a line with want ... also. */
static void s_expect_refusal_of(pid_t pid, const char *log, const char *what, int code,
                                const char *want, const char *also)
{
    int rc = h_wait(pid, 15000);
    char *text = h_read_file(log);
    const char *line = text ? strstr(text, want) : NULL;
    const char *eol = line ? strchr(line, '\n') : NULL;
    const char *found = line ? strstr(line, also) : NULL;
    if (rc != code || !found || (eol && found > eol)) {
        fail_msg("%s: wanted exit %d and \"%s ... %s\": exit %d, log:\n%s", what, code, want, also,
                 rc, text ? text : "(none)");
    }
    free(text);
}

static void s_expect_refusal(pid_t pid, const char *log, const char *what)
{
    s_expect_refusal_of(pid, log, what, 1, "metrics.listen", "Address already in use");
}

static void test_address_in_use_stops_the_binaries(void **state)
{
    char dir[128], log[256], addr[64];
    snprintf(dir, sizeof dir, "/tmp/ww-it-mxb-%d", (int)getpid());
    mkdir(dir, 0755);
    int port;
    int fd = s_occupy(&port);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);

    setenv("WW_AGENT_METRICS_LISTEN", addr, 1); /* the environment form of the key */
    s_expect_refusal(s_agent_insecure(dir, false, log, sizeof log), log, "the agent");
    unsetenv("WW_AGENT_METRICS_LISTEN");

    s_expect_refusal(s_collector_nopg(dir, addr, log, sizeof log), log, "the collector");
    close(fd);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Without metrics.listen neither binary maps libmicrohttpd (nor, for the agent, the TLS
 * stack it pulls in: the collector maps gnutls through libcurl anyway) while it runs: a
 * CURVE pipeline until rows arrive. With it, test_pipeline_metrics_and_health finds it
 * mapped. */
static void test_libmicrohttpd_only_with_metrics_listen(void **state)
{
    h_db_t db;
    h_db_create(&db, "mxl");
    h_secure(db.dir, "mx-agent", "mx-node-*");
    char endpoint[256], alog[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint); /* listening */
    pid_t agent = s_agent_with(db.dir, endpoint, "plain", NULL, NULL, alog, sizeof alog);
    long long rows = 0;
    for (int i = 0; i < 300 && rows == 0; i++) {
        h_sleep_ms(100);
        rows = h_query_ll(&db, "SELECT count(*) FROM node_samples");
    }
    if (rows == 0) {
        char *text = h_read_file(alog);
        fail_msg("no rows from the agent within 30 s; its log:\n%s", text ? text : "(none)");
    }
    assert_true(s_maps(agent, "/libzmq.so")); /* the check reads the right maps */
    assert_false(s_maps(agent, "libmicrohttpd"));
    assert_false(s_maps(agent, "libgnutls"));
    assert_false(s_maps(collector, "libmicrohttpd"));
    int rc = h_stop(agent, 15000);
    assert_true(rc == 0 || rc == 3);
    assert_int_equal(h_stop(collector, 15000), 0);
    h_db_drop(&db);
}

/* A libmicrohttpd.so.12 that cannot be loaded (an empty file found first through
 * LD_LIBRARY_PATH): metrics.listen stops either binary, naming the library, the loader's
 * reason and the package. */
static void test_missing_libmicrohttpd_stops_the_binaries(void **state)
{
    char dir[128], lib[200], log[256];
    snprintf(dir, sizeof dir, "/tmp/ww-it-mxd-%d", (int)getpid());
    mkdir(dir, 0755);
    snprintf(lib, sizeof lib, "%s/libmicrohttpd.so.12", dir);
    FILE *f = fopen(lib, "w");
    assert_non_null(f);
    fclose(f);
    setenv("LD_LIBRARY_PATH", dir, 1);

    setenv("WW_AGENT_METRICS_LISTEN", "127.0.0.1:0", 1);
    const char *want = "metrics.listen: cannot load libmicrohttpd.so.12: ";
    const char *also = "file too short (install libmicrohttpd12)";
    /* A configuration error, exit 2: found by --check-config, and before a start. */
    for (int check = 1; check >= 0; check--) {
        pid_t pid = s_agent_insecure(dir, check, log, sizeof log);
        s_expect_refusal_of(pid, log, "the agent", 2, want, also);
    }
    unsetenv("WW_AGENT_METRICS_LISTEN");
    char *argv[] = {(char *)WW_COLLECTOR_BIN,   (char *)"--insecure",
                    (char *)"--listen",         (char *)"tcp://127.0.0.1:*",
                    (char *)"--metrics-listen", (char *)"127.0.0.1:0",
                    (char *)"--check-config",   NULL};
    snprintf(log, sizeof log, "%s/collector-check.log", dir);
    s_expect_refusal_of(h_spawn(argv, log), log, "the collector", 2, want, also);
    s_expect_refusal_of(s_collector_nopg(dir, "127.0.0.1:0", log, sizeof log), log, "the collector",
                        2, want, also);
    unsetenv("LD_LIBRARY_PATH");
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static int s_setup(void **state)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int s_teardown(void **state)
{
    curl_global_cleanup();
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_pipeline_metrics_and_health),
    cmocka_unit_test(test_agent_never_connected_is_unhealthy),
    cmocka_unit_test(test_collector_unhealthy_without_postgresql),
    cmocka_unit_test(test_address_in_use_stops_the_binaries),
    cmocka_unit_test(test_libmicrohttpd_only_with_metrics_listen),
    cmocka_unit_test(test_missing_libmicrohttpd_stops_the_binaries),
};
WW_TEST_MAIN(tests, s_setup, s_teardown)
