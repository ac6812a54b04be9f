/* The binaries as an SRE meets them: --help, --check-config errors that name the file and
 * line, --print-config that loads back, and a graceful stop on SIGTERM. */
#include "harness.h"
#include "ww_test.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int rc;
    char *out;
} s_run_t;

/* Runs argv to completion with output captured in dir/NAME.log. */
static s_run_t s_run(const char *dir, const char *name, char *const argv[])
{
    char log[256];
    snprintf(log, sizeof log, "%s/%s.log", dir, name);
    s_run_t r;
    r.rc = h_wait(h_spawn(argv, log), 30000);
    r.out = h_read_file(log);
    assert_non_null(r.out);
    return r;
}

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_help_lists_flags_and_keys(void **state)
{
    h_db_t db;
    h_db_create(&db, "help");
    char *a[] = {(char *)WW_AGENT_BIN, (char *)"--help", NULL};
    s_run_t r = s_run(db.dir, "agent-help", a);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "--sim-nodes"));
    assert_non_null(strstr(r.out, "--collector"));
    assert_non_null(strstr(r.out, "sim.pump_fault.flow_factor"));
    free(r.out);
    char *c[] = {(char *)WW_COLLECTOR_BIN, (char *)"--help", NULL};
    r = s_run(db.dir, "collector-help", c);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "--listen"));
    assert_non_null(strstr(r.out, "--pg"));
    free(r.out);
    h_db_drop(&db);
}

static void test_check_config_names_file_and_line(void **state)
{
    h_db_t db;
    h_db_create(&db, "check");
    h_secure(db.dir, "unused", "*");
    char path[256];
    snprintf(path, sizeof path, "%s/agent.yaml", db.dir);
    s_write(path, "agent:\n  interval: 1s\nsim:\n  nodes: 4\n  seeed: 3\n");
    char *a[] = {(char *)WW_AGENT_BIN, (char *)"--config", path, (char *)"--check-config", NULL};
    s_run_t r = s_run(db.dir, "bad-key", a);
    assert_int_equal(r.rc, 2);
    char want[300];
    snprintf(want, sizeof want, "%s:5:", path);
    if (!strstr(r.out, want) || !strstr(r.out, "seeed")) {
        fail_msg("expected an error naming %s and 'seeed', got:\n%s", want, r.out);
    }
    free(r.out);

    s_write(path, "sim:\n  nodes: 0\n");
    r = s_run(db.dir, "bad-range", a);
    assert_int_equal(r.rc, 2);
    snprintf(want, sizeof want, "%s:2:", path);
    assert_non_null(strstr(r.out, want));
    assert_non_null(strstr(r.out, "sim.nodes"));
    free(r.out);

    s_write(path, "sim:\n  nodes: 4\n  pump_fault:\n    enabled: true\n    flow_factor: 0.25\n");
    r = s_run(db.dir, "good", a);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "configuration ok: 4 node(s)"));
    free(r.out);
    h_db_drop(&db);
}

static void test_print_config_loads_back(void **state)
{
    h_db_t db;
    h_db_create(&db, "print");
    char *a[] = {(char *)WW_AGENT_BIN,  (char *)"--sim-nodes",    (char *)"7", (char *)"--phase",
                 (char *)"phase-2027b", (char *)"--print-config", NULL};
    s_run_t r = s_run(db.dir, "printed", a);
    assert_int_equal(r.rc, 0);
    char path[256];
    snprintf(path, sizeof path, "%s/printed.yaml", db.dir);
    s_write(path, r.out);
    free(r.out);
    char *b[] = {(char *)WW_AGENT_BIN, (char *)"--config", path, (char *)"--print-config", NULL};
    s_run_t r2 = s_run(db.dir, "reprinted", b);
    assert_int_equal(r2.rc, 0);
    char *first = h_read_file(path);
    assert_string_equal(first, r2.out);
    assert_non_null(strstr(first, "phase-2027b"));
    free(first);
    free(r2.out);
    h_db_drop(&db);
}

/* The shipped examples must stay valid as the schema evolves. */
static void test_example_configs_are_valid(void **state)
{
    h_db_t db;
    h_db_create(&db, "examples");
    h_secure(db.dir, "unused", "*");
    char key[300], allow[300];
    snprintf(key, sizeof key, "%s/collector.key", db.dir);
    snprintf(allow, sizeof allow, "%s/allowlist", db.dir);
    char *a[] = {(char *)WW_AGENT_BIN, (char *)"--config",
                 (char *)WW_DEPLOY_DIR "/agent.example.yaml", (char *)"--check-config", NULL};
    s_run_t r = s_run(db.dir, "agent-example", a);
    if (r.rc != 0) {
        fail_msg("agent.example.yaml refused:\n%s", r.out);
    }
    free(r.out);
    /* The example's database host is fictional: point --pg at the test database. */
    char *c[] = {(char *)WW_COLLECTOR_BIN,
                 (char *)"--config",
                 (char *)WW_DEPLOY_DIR "/collector.example.yaml",
                 (char *)"--pg",
                 db.conninfo,
                 (char *)"--server-key",
                 key,
                 (char *)"--allowlist",
                 allow,
                 (char *)"--check-config",
                 NULL};
    r = s_run(db.dir, "collector-example", c);
    if (r.rc != 0) {
        fail_msg("collector.example.yaml refused:\n%s", r.out);
    }
    free(r.out);
    h_db_drop(&db);
}

static void test_collector_check_config_reaches_postgres(void **state)
{
    h_db_t db;
    h_db_create(&db, "ccheck");
    /* About PostgreSQL, not keys: insecure mode keeps it to that. */
    char *ok[] = {(char *)WW_COLLECTOR_BIN, (char *)"--pg",           db.conninfo,
                  (char *)"--insecure",     (char *)"--check-config", NULL};
    s_run_t r = s_run(db.dir, "reachable", ok);
    assert_int_equal(r.rc, 0);
    free(r.out);
    char *bad[] = {(char *)WW_COLLECTOR_BIN,
                   (char *)"--pg",
                   (char *)"host=/nonexistent-socket-dir dbname=x connect_timeout=2",
                   (char *)"--insecure",
                   (char *)"--check-config",
                   NULL};
    r = s_run(db.dir, "unreachable", bad);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.out, "cannot connect to PostgreSQL"));
    free(r.out);
    h_db_drop(&db);
}

static void test_password_refused_and_migrate_only(void **state)
{
    h_db_t db;
    h_db_create(&db, "pw");
    char *pw[] = {
        (char *)WW_COLLECTOR_BIN, (char *)"--pg",           (char *)"dbname=x password=hunter2",
        (char *)"--insecure",     (char *)"--check-config", NULL};
    s_run_t r = s_run(db.dir, "password", pw);
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.out, "PGPASSFILE"));
    assert_null(strstr(r.out, "hunter2"));
    free(r.out);
    char *uri[] = {(char *)WW_COLLECTOR_BIN,
                   (char *)"--pg",
                   (char *)"postgresql://u:hunter2@localhost/x",
                   (char *)"--insecure",
                   (char *)"--check-config",
                   NULL};
    r = s_run(db.dir, "password-uri", uri);
    assert_int_equal(r.rc, 2);
    free(r.out);
    /* The upgrade step: migrations only, no keys needed, then exit 0. */
    char *mig[] = {(char *)WW_COLLECTOR_BIN, (char *)"--pg", db.conninfo, (char *)"--migrate-only",
                   NULL};
    r = s_run(db.dir, "migrate-only", mig);
    assert_int_equal(r.rc, 0);
    free(r.out);
    assert_true(h_query_ll(&db, "SELECT max(version) FROM ww_schema_migrations") >= 5);
    h_db_drop(&db);
}

static void test_sigterm_stops_agent_and_collector_cleanly(void **state)
{
    h_db_t db;
    h_db_create(&db, "term");
    h_secure(db.dir, "term-agent", "term-node");
    char endpoint[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    char log[256];
    snprintf(log, sizeof log, "%s/agent.log", db.dir);
    char spool[256];
    snprintf(spool, sizeof spool, "%s/spool", db.dir);
    char *a[] = {(char *)WW_AGENT_BIN,
                 (char *)"--spool-dir",
                 spool,
                 (char *)"--collector",
                 endpoint,
                 (char *)"--interval",
                 (char *)"100ms",
                 (char *)"--node-id",
                 (char *)"term-node",
                 (char *)"--agent-id",
                 (char *)"term-agent",
                 NULL};
    pid_t agent = h_spawn(a, log);
    struct timespec ts = {1, 500000000};
    nanosleep(&ts, NULL);
    assert_int_equal(h_stop(agent, 15000), 0); /* drained: everything acked */
    long long ticks = h_log_value(log, "stats:", "ticks");
    assert_true(ticks >= 5);
    assert_int_equal(h_log_value(log, "stats:", "unacked"), 0);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM node_samples"), ticks);
    assert_int_equal(h_stop(collector, 15000), 0);
    h_db_drop(&db);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_help_lists_flags_and_keys),
    cmocka_unit_test(test_check_config_names_file_and_line),
    cmocka_unit_test(test_print_config_loads_back),
    cmocka_unit_test(test_example_configs_are_valid),
    cmocka_unit_test(test_collector_check_config_reaches_postgres),
    cmocka_unit_test(test_password_refused_and_migrate_only),
    cmocka_unit_test(test_sigterm_stops_agent_and_collector_cleanly),
};
WW_TEST_MAIN(tests, NULL, NULL)
