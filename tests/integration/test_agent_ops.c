/* Operator mistakes the agent catches before they lose data (issue 15), through the real
 * binary: a second agent on one spool (item 1), configurations that cannot run refused at
 * --check-config and at start with exit 2 and the key named (item 3), an agent that the
 * collector refuses saying so in its own log (item 7), and batches the allowlist refuses
 * held until the operator fixes it, then delivered (item 5). */
#include "harness.h"
#include "ww_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* A scratch directory of this test process. */
static void s_scratch(char *dir, size_t cap, const char *tag)
{
    snprintf(dir, cap, "/tmp/ww-ops-%s-%d", tag, (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    assert_int_equal(system(cmd), 0);
}

static void s_scratch_rm(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Waits up to timeout_ms for `needle` in the file at path; returns whether it came. */
static bool s_log_has(const char *path, const char *needle, int timeout_ms)
{
    for (int waited = 0;; waited += 50) {
        char *text = h_read_file(path);
        bool found = text && strstr(text, needle);
        free(text);
        if (found || waited >= timeout_ms) {
            return found;
        }
        h_sleep_ms(50);
    }
}

static void s_fail_with_log(const char *path, const char *what)
{
    char *text = h_read_file(path);
    fail_msg("%s; log %s:\n%s", what, path, text ? text : "(none)");
}

/* Item 1: the second agent exits 2 naming the first's pid; the first is undisturbed;
 * once the first is killed (no clean close), a new agent takes the spool over. */
static void test_second_agent_on_one_spool_exits_2(void **state)
{
    (void)state;
    char dir[128], spool[192], log1[192], log2[192], log3[192];
    s_scratch(dir, sizeof dir, "lock");
    snprintf(spool, sizeof spool, "%s/spool", dir);
    snprintf(log1, sizeof log1, "%s/first.log", dir);
    snprintf(log2, sizeof log2, "%s/second.log", dir);
    snprintf(log3, sizeof log3, "%s/third.log", dir);
    /* No collector listens on port 1: the first agent runs and spools anyway. */
    char *argv[] = {(char *)WW_AGENT_BIN,
                    (char *)"--insecure",
                    (char *)"--collector",
                    (char *)"tcp://127.0.0.1:1",
                    (char *)"--spool-dir",
                    spool,
                    (char *)"--interval",
                    (char *)"100ms",
                    (char *)"--latency-window",
                    (char *)"1s",
                    (char *)"--drain-timeout",
                    (char *)"0",
                    NULL};
    pid_t first = h_spawn(argv, log1);
    if (!s_log_has(log1, "stream epoch", 10000)) {
        s_fail_with_log(log1, "the first agent did not open its spool");
    }
    pid_t second = h_spawn(argv, log2);
    int rc = h_wait(second, 10000);
    if (rc != 2) {
        s_fail_with_log(log2, "the second agent did not exit 2");
    }
    char want[300];
    snprintf(want, sizeof want, "spool %s is in use by pid %d", spool, (int)first);
    if (!s_log_has(log2, want, 0)) {
        s_fail_with_log(log2, want);
    }
    /* It touched nothing: the first is still running and still the spool's only writer. */
    h_sleep_ms(300);
    assert_int_equal(kill(first, 0), 0);
    kill(first, SIGKILL);
    h_wait(first, 5000);

    char *argv3[16];
    memcpy(argv3, argv, sizeof argv);
    argv3[12] = (char *)"--run-for";
    argv3[13] = (char *)"500ms";
    argv3[14] = NULL;
    rc = h_wait(h_spawn(argv3, log3), 15000);
    if (s_log_has(log3, "in use", 0) || rc == 2 || rc < 0) {
        s_fail_with_log(log3, "the spool stayed locked after its holder was killed");
    }
    s_scratch_rm(dir);
}

/* Runs the agent with args (NULL-terminated, after --insecure); returns its exit code and
 * leaves its output in log. */
static int s_agent(const char *log, const char *const *args)
{
    char *argv[32] = {(char *)WW_AGENT_BIN, (char *)"--insecure"};
    int n = 2;
    for (size_t i = 0; args[i]; i++) {
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    return h_wait(h_spawn(argv, log), 15000);
}

/* Item 3: what cannot run is refused by --check-config and at start, exit 2, key named. */
static void test_check_config_refuses_what_cannot_run(void **state)
{
    (void)state;
    char dir[128], spool[192], log[192], cfg[192], bad_spool[192];
    s_scratch(dir, sizeof dir, "check");
    snprintf(spool, sizeof spool, "%s/new/spool", dir);
    snprintf(log, sizeof log, "%s/agent.log", dir);
    snprintf(cfg, sizeof cfg, "%s/agent.yaml", dir);
    snprintf(bad_spool, sizeof bad_spool, "%s/agent.yaml/spool", dir); /* under a file */
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fprintf(f, "node:\n  id: \"bad node/id\"\n");
    fclose(f);

    struct {
        const char *args[10];
        const char *named;
    } bad[] = {
        {{"--check-config", "--spool-dir", spool, "--collector", "http://x", NULL},
         "collector.endpoints: \"http://x\""},
        {{"--spool-dir", spool, "--collector", "http://x", "--run-for", "1s", NULL},
         "collector.endpoints"},
        {{"--check-config", "--spool-dir", spool, "--node-id", "bad node/id", NULL}, "node.id"},
        {{"--check-config", "--config", cfg, "--spool-dir", spool, NULL},
         "agent.yaml:2:7: node.id"}, /* where in the file */
        {{"--check-config", "--spool-dir", spool, "--collector", "http://x", NULL},
         "flag --collector: collector.endpoints"},
        {{"--spool-dir", spool, "--node-id", "bad node/id", "--run-for", "1s", NULL}, "node.id"},
        {{"--check-config", "--spool-dir", bad_spool, NULL}, "spool.dir"},
        {{"--spool-dir", bad_spool, "--run-for", "1s", NULL}, "spool.dir"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = s_agent(log, bad[i].args);
        char what[200];
        snprintf(what, sizeof what, "case %zu: exit %d, not 2 naming %s", i, rc, bad[i].named);
        if (rc != 2 || !s_log_has(log, bad[i].named, 0)) {
            s_fail_with_log(log, what);
        }
    }
    /* A spool directory that does not exist yet passes (the start creates it); the check
     * itself creates nothing. */
    const char *good[] = {"--check-config", "--spool-dir", spool, NULL};
    if (s_agent(log, good) != 0) {
        s_fail_with_log(log, "a good configuration was refused");
    }
    struct stat sb;
    assert_int_equal(stat(spool, &sb), -1);
    s_scratch_rm(dir);
}

/* Item 7: an agent whose key the collector does not know says so within seconds, and
 * says it again at a growing interval, not at every retry. */
static void test_unenrolled_agent_says_so(void **state)
{
    (void)state;
    h_db_t db;
    h_db_create(&db, "ops_unenrolled");
    h_secure(db.dir, "ops-agent", "ops-node*");
    char rogue_dir[192];
    snprintf(rogue_dir, sizeof rogue_dir, "%s/rogue", db.dir);
    assert_int_equal(mkdir(rogue_dir, 0700), 0);
    h_enrol(rogue_dir, "rogue", "ops-agent", "ops-node*"); /* another collector's allowlist */
    char endpoint[128];
    pid_t coll = h_collector_start(&db, endpoint, sizeof endpoint);

    char key[256], spool[256], log[256];
    snprintf(key, sizeof key, "%s/rogue.key", rogue_dir);
    snprintf(spool, sizeof spool, "%s/spool-rogue", db.dir);
    snprintf(log, sizeof log, "%s/rogue-agent.log", db.dir);
    char *argv[] = {(char *)WW_AGENT_BIN,
                    (char *)"--agent-key",
                    key,
                    (char *)"--spool-dir",
                    spool,
                    (char *)"--collector",
                    endpoint,
                    (char *)"--agent-id",
                    (char *)"ops-agent",
                    (char *)"--node-id",
                    (char *)"ops-node",
                    (char *)"--run-for",
                    (char *)"6s",
                    (char *)"--drain-timeout",
                    (char *)"0",
                    NULL};
    pid_t agent = h_spawn(argv, log);
    /* An enrolled agent that trusts another collector's key: the collector cannot decrypt
     * its HELLO and drops the connection. */
    char ekey[256], wrong_pub[256], espool[256], elog[256];
    snprintf(ekey, sizeof ekey, "%s/agent.key", db.dir);
    snprintf(wrong_pub, sizeof wrong_pub, "%s/rogue.pub", rogue_dir);
    snprintf(espool, sizeof espool, "%s/spool-wrongkey", db.dir);
    snprintf(elog, sizeof elog, "%s/wrongkey-agent.log", db.dir);
    char *eargv[] = {(char *)WW_AGENT_BIN,
                     (char *)"--agent-key",
                     ekey,
                     (char *)"--server-key",
                     wrong_pub,
                     (char *)"--spool-dir",
                     espool,
                     (char *)"--collector",
                     endpoint,
                     (char *)"--agent-id",
                     (char *)"ops-agent",
                     (char *)"--node-id",
                     (char *)"ops-node",
                     (char *)"--run-for",
                     (char *)"3s",
                     (char *)"--drain-timeout",
                     (char *)"0",
                     NULL};
    pid_t wrong = h_spawn(eargv, elog);
    if (!s_log_has(log, "not enrolled, or the wrong collector key?", 5000)) {
        s_fail_with_log(log, "no handshake failure line within 5 s");
    }
    if (!s_log_has(elog, "not enrolled, or the wrong collector key?", 5000)) {
        s_fail_with_log(elog, "no handshake failure line within 5 s (wrong server key)");
    }
    h_wait(wrong, 20000);
    h_wait(agent, 20000);
    /* Retried every 2 s at most for 6 s: one line, the rest counted for the next. */
    char *text = h_read_file(log);
    assert_non_null(text);
    int lines = 0;
    for (const char *p = text; (p = strstr(p, "wrong collector key?")) != NULL; p++) {
        lines++;
    }
    if (lines != 1) {
        s_fail_with_log(log, "the handshake failure was not logged exactly once in 6 s");
    }
    free(text);
    h_stop(coll, 10000);
    h_db_drop(&db);
}

/* Item 7: no collector at the endpoint. The first failed connect is logged at once; the
 * retries (every 2 s at most) are counted and said again only after the growing interval
 * (first 10 s), with the count; the total is in the stats line (and /metrics). */
static void test_unreachable_collector_is_reported_at_a_growing_interval(void **state)
{
    (void)state;
    char dir[128], spool[192], log[192];
    s_scratch(dir, sizeof dir, "unreach");
    snprintf(spool, sizeof spool, "%s/spool", dir);
    snprintf(log, sizeof log, "%s/agent.log", dir);
    char *argv[] = {(char *)WW_AGENT_BIN,
                    (char *)"--insecure",
                    (char *)"--collector",
                    (char *)"tcp://127.0.0.1:1",
                    (char *)"--spool-dir",
                    spool,
                    (char *)"--run-for",
                    (char *)"14s",
                    (char *)"--drain-timeout",
                    (char *)"0",
                    NULL};
    pid_t agent = h_spawn(argv, log);
    if (!s_log_has(log, "cannot connect to tcp://127.0.0.1:1", 3000)) {
        s_fail_with_log(log, "no connect failure line within 3 s");
    }
    h_wait(agent, 30000);
    char *text = h_read_file(log);
    assert_non_null(text);
    int lines = 0;
    for (const char *p = text; (p = strstr(p, "cannot connect to")) != NULL; p++) {
        lines++;
    }
    bool counted = strstr(text, "more since the last report") != NULL;
    free(text);
    if (lines != 2 || !counted) {
        s_fail_with_log(log, "want 2 connect failure lines in 14 s, the second with a count");
    }
    if (h_log_value(log, "stats:", "connect_failures") < 5) {
        s_fail_with_log(log, "the stats line does not count every failed connect");
    }
    s_scratch_rm(dir);
}

/* GET path from 127.0.0.1:port over a plain socket (HTTP/1.0: the server closes). Returns
 * the status (0: no answer) and copies the body into body (cap bytes). */
static long s_http_get(int port, const char *path, char *body, size_t cap)
{
    body[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char buf[65536];
    size_t n = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        int len = snprintf(buf, sizeof buf, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
        if (write(fd, buf, (size_t)len) == len) {
            ssize_t r;
            while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0) {
                n += (size_t)r;
            }
        }
    }
    close(fd);
    buf[n] = '\0';
    long status = 0;
    if (sscanf(buf, "HTTP/%*s %ld", &status) != 1) {
        return 0;
    }
    const char *b = strstr(buf, "\r\n\r\n");
    snprintf(body, cap, "%s", b ? b + 4 : "");
    return status;
}

/* Item 5: the allowlist line of this agent does not cover its node: every batch is Nacked
 * `forbidden`. The batches are held in the spool (not dropped), counted in /metrics, and
 * /healthz says why; the log says it once, not per batch. The operator fixes the line and
 * sends SIGHUP: the held batches are delivered, every tick is stored and the stream has
 * no loss. */
static void test_forbidden_batches_are_held_until_the_allowlist_admits_them(void **state)
{
    (void)state;
    h_db_t db;
    h_db_create(&db, "ops_forbidden");
    h_secure(db.dir, "ops-agent", "other-node*"); /* the mistake: not ops-node */
    char endpoint[128];
    pid_t coll = h_collector_start(&db, endpoint, sizeof endpoint);
    char spool[256], log[256];
    snprintf(spool, sizeof spool, "%s/spool-forbidden", db.dir);
    snprintf(log, sizeof log, "%s/forbidden-agent.log", db.dir);
    char *argv[] = {(char *)WW_AGENT_BIN,
                    (char *)"--spool-dir",
                    spool,
                    (char *)"--collector",
                    endpoint,
                    (char *)"--agent-id",
                    (char *)"ops-agent",
                    (char *)"--node-id",
                    (char *)"ops-node",
                    (char *)"--interval",
                    (char *)"200ms",
                    (char *)"--metrics-listen",
                    (char *)"127.0.0.1:0",
                    (char *)"--run-for",
                    (char *)"14s",
                    (char *)"--drain-timeout",
                    (char *)"15s",
                    NULL};
    pid_t agent = h_spawn(argv, log);
    if (!s_log_has(log, "refuses this agent", 10000)) {
        s_fail_with_log(log, "no refusal line within 10 s");
    }
    long long port = -1;
    for (int i = 0; i < 100 && port <= 0; i++, h_sleep_ms(50)) {
        port = h_log_value(log, "metrics: listening", "port");
    }
    assert_true(port > 0);
    h_sleep_ms(2000); /* ten more ticks, all refused */
    char body[65536];
    long status = s_http_get((int)port, "/healthz", body, sizeof body);
    if (status != 503 || !strstr(body, "the collector refuses this agent: forbidden:") ||
        !strstr(body, "batches held")) {
        s_fail_with_log(log, "/healthz does not say the collector refuses this agent");
    }
    assert_int_equal(s_http_get((int)port, "/metrics", body, sizeof body), 200);
    double held = h_metrics_value(body, "waferwatch_agent_batches_held_refused");
    double forbidden = h_metrics_value(body, "waferwatch_agent_nacks_forbidden_total");
    double nacked = h_metrics_value(body, "waferwatch_agent_batches_nacked_total");
    print_message("refused: held=%g forbidden=%g nacked=%g\n", held, forbidden, nacked);
    assert_true(held >= 1);
    assert_true(forbidden >= held);
    assert_true(nacked == 0);
    /* Said once at once; the next line waits for the growing interval (10 s). */
    char *text = h_read_file(log);
    assert_non_null(text);
    int lines = 0;
    for (const char *p = text; (p = strstr(p, "refuses this agent")) != NULL; p++) {
        lines++;
    }
    free(text);
    if (lines != 1) {
        s_fail_with_log(log, "the refusal was not logged exactly once in 2 s");
    }

    /* The operator fixes the allowlist line and reloads the collector. */
    char allow[300];
    snprintf(allow, sizeof allow, "%s/allowlist", db.dir);
    assert_int_equal(unlink(allow), 0);
    h_enrol(db.dir, "agent", "ops-agent", "ops-node*");
    kill(coll, SIGHUP);
    int rc = h_wait(agent, 45000);
    if (rc != 0) {
        s_fail_with_log(log, "the agent did not exit 0 with everything acked");
    }
    long long samples = h_log_value(log, "stats:", "samples");
    long long stored = h_query_ll(&db, "SELECT count(*) FROM node_samples");
    print_message("samples=%lld stored=%lld\n", samples, stored);
    if (samples < 50 || stored != samples || h_log_value(log, "stats:", "nacked") != 0 ||
        h_log_value(log, "stats:", "held") != 0 || h_log_value(log, "stats:", "forbidden") < 1) {
        s_fail_with_log(log, "not every held batch was delivered");
    }
    assert_int_equal(
        h_query_ll(&db, "SELECT count(*) FROM node_samples WHERE node_id <> 'ops-node'"), 0);
    assert_int_equal(h_query_ll(&db, "SELECT coalesce(sum(lost_batches), 0) FROM streams"
                                     " WHERE agent_id = 'ops-agent'"),
                     0);
    h_stop(coll, 10000);
    h_db_drop(&db);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_unreachable_collector_is_reported_at_a_growing_interval),
    cmocka_unit_test(test_second_agent_on_one_spool_exits_2),
    cmocka_unit_test(test_check_config_refuses_what_cannot_run),
    cmocka_unit_test(test_unenrolled_agent_says_so),
    cmocka_unit_test(test_forbidden_batches_are_held_until_the_allowlist_admits_them),
};

WW_TEST_MAIN(tests, NULL, NULL)
