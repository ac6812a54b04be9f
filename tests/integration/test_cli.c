/* The binaries as an SRE meets them: --help, --check-config errors that name the file and
 * line, --print-config that loads back, and a graceful stop on SIGTERM. */
#include "harness.h"
#include "ww_test.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    /* Choices list their names and default (issue 16 item 1). */
    assert_non_null(strstr(r.out, "agent.source (one of: sim, reqlog, host, nvml; default sim)"));
    assert_non_null(
        strstr(r.out, "spool.policy (one of: drop_oldest, stop_sampling; default drop_oldest)"));
    assert_non_null(strstr(r.out, "spool.fsync (one of: always, interval, never; default always)"));
    assert_non_null(
        strstr(r.out, "agent.log_level (one of: error, warn, info, debug; default info)"));
    free(r.out);
    char *c[] = {(char *)WW_COLLECTOR_BIN, (char *)"--help", NULL};
    r = s_run(db.dir, "collector-help", c);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "--listen"));
    assert_non_null(strstr(r.out, "--pg"));
    assert_non_null(
        strstr(r.out, "collector.log_level (one of: error, warn, info, debug; default info)"));
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

    /* Issue 15 item 10: the program's own checks report every error of the file at once,
     * each with its line. */
    s_write(path, "spool:\n  policy: bogus\nagent:\n  source: bogus\n  log_level: loud\n");
    r = s_run(db.dir, "three-errors", a);
    assert_int_equal(r.rc, 2);
    static const char *const lines[][2] = {{":2:11: spool.policy", "2"},
                                           {":4:11: agent.source", "4"},
                                           {":5:14: agent.log_level", "5"}};
    for (size_t i = 0; i < 3; i++) {
        snprintf(want, sizeof want, "waferwatch-agent: %s%s", path, lines[i][0]);
        if (!strstr(r.out, want)) {
            fail_msg("expected '%s' (line %s), got:\n%s", want, lines[i][1], r.out);
        }
    }
    /* Issue 16 item 1: choices are enum rows; a refusal lists the allowed names. */
    assert_non_null(strstr(r.out, "spool.policy: \"bogus\" is not one of drop_oldest, "
                                  "stop_sampling"));
    assert_non_null(strstr(r.out, "agent.source: \"bogus\" is not one of sim, reqlog, host, nvml"));
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
    char *a[] = {(char *)WW_AGENT_BIN,    (char *)"--sim-nodes",    (char *)"7",
                 (char *)"--phase",       (char *)"phase-2027b",    (char *)"--spool-policy",
                 (char *)"stop_sampling", (char *)"--print-config", NULL};
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
    assert_non_null(strstr(first, "  policy: stop_sampling\n")); /* an enum prints its name */
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

/* collector.role fleet (issue 20): a fleet database's collector needs no endpoint, keys or
 * allowlist, but a phases file (it only evaluates); a misspelt role is named. */
static void test_collector_fleet_role_config(void **state)
{
    (void)state;
    h_db_t db;
    h_db_create(&db, "cfleet");
    char slo[600];
    snprintf(slo, sizeof slo, "%s", WW_DEPLOY_DIR "/phases.example.yaml");
    char *ok[] = {(char *)WW_COLLECTOR_BIN,
                  (char *)"--role",
                  (char *)"fleet",
                  (char *)"--pg",
                  db.conninfo,
                  (char *)"--slo",
                  slo,
                  (char *)"--stale-after",
                  (char *)"90s",
                  (char *)"--check-config",
                  NULL};
    s_run_t r = s_run(db.dir, "fleet-ok", ok);
    if (r.rc != 0) {
        fail_msg("a fleet collector without listen or keys refused:\n%s", r.out);
    }
    free(r.out);
    char *no_slo[] = {(char *)WW_COLLECTOR_BIN,
                      (char *)"--role",
                      (char *)"fleet",
                      (char *)"--pg",
                      db.conninfo,
                      (char *)"--check-config",
                      NULL};
    r = s_run(db.dir, "fleet-no-slo", no_slo);
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.out, "slo.file: required with collector.role fleet"));
    free(r.out);
    char *typo[] = {(char *)WW_COLLECTOR_BIN,
                    (char *)"--role",
                    (char *)"flet",
                    (char *)"--pg",
                    db.conninfo,
                    (char *)"--check-config",
                    NULL};
    r = s_run(db.dir, "fleet-typo", typo);
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.out, "--role: collector.role: \"flet\" is not one of site, fleet"));
    free(r.out);
    /* A site's collector still needs its keys (CURVE by default). */
    char *site[] = {(char *)WW_COLLECTOR_BIN, (char *)"--pg", db.conninfo, (char *)"--check-config",
                    NULL};
    r = s_run(db.dir, "site-no-keys", site);
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.out, "security.server_key"));
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

/* Item 11 of issue 15: credentials PostgreSQL refuses (here: a role that does not exist)
 * are a configuration error, not an outage retried for ever: exit 2 under --migrate-only,
 * --check-config and at start, with a log line saying so. */
static void test_refused_credentials_are_a_configuration_error(void **state)
{
    h_db_t db;
    h_db_create(&db, "pgauth");
    char conninfo[320];
    snprintf(conninfo, sizeof conninfo, "%s user=no_such_role_ww", db.conninfo);
    char *mig[] = {(char *)WW_COLLECTOR_BIN, (char *)"--pg", conninfo, (char *)"--migrate-only",
                   NULL};
    s_run_t r = s_run(db.dir, "auth-migrate", mig);
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.out, "refused this collector's credentials"));
    free(r.out);
    char *chk[] = {(char *)WW_COLLECTOR_BIN, (char *)"--pg",           conninfo,
                   (char *)"--insecure",     (char *)"--check-config", NULL};
    r = s_run(db.dir, "auth-check", chk);
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.out, "refused the credentials"));
    free(r.out);
    char *run[] = {(char *)WW_COLLECTOR_BIN,
                   (char *)"--pg",
                   conninfo,
                   (char *)"--insecure",
                   (char *)"--listen",
                   (char *)"tcp://127.0.0.1:*",
                   NULL};
    r = s_run(db.dir, "auth-run", run);
    assert_int_equal(r.rc, 2);
    free(r.out);
    h_db_drop(&db);
}

/* Item 10 of issue 15: a choice (log_level, an enum row since issue 16) names its file,
 * line and column like every other configuration error, and the allowed names. */
static void test_agent_log_level_error_names_its_line(void **state)
{
    h_db_t db;
    h_db_create(&db, "loglevel");
    char path[256], spool[256];
    snprintf(path, sizeof path, "%s/agent.yaml", db.dir);
    snprintf(spool, sizeof spool, "%s/spool", db.dir);
    s_write(path, "agent:\n  log_level: loud\n");
    char *a[] = {(char *)WW_AGENT_BIN,
                 (char *)"--config",
                 path,
                 (char *)"--insecure",
                 (char *)"--spool-dir",
                 spool,
                 (char *)"--check-config",
                 NULL};
    s_run_t r = s_run(db.dir, "loglevel", a);
    assert_int_equal(r.rc, 2);
    if (!strstr(r.out, "agent.yaml:2:14: agent.log_level: \"loud\" is not one of error, warn, "
                       "info, debug")) {
        fail_msg("no file:line:col in: %s", r.out);
    }
    free(r.out);
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

/* --check-config loads the server key and the allowlist as the start does; every error
 * names where the value came from and exits 2, at check and at start (issue 15 items 3
 * and 8). */
static void test_collector_check_config_loads_key_and_allowlist(void **state)
{
    h_db_t db;
    h_db_create(&db, "ckeys");
    h_secure(db.dir, "ck-agent", "ck-node");
    char path[256], garbage[256], yaml[1024], want[300];
    snprintf(path, sizeof path, "%s/collector.yaml", db.dir);
    snprintf(garbage, sizeof garbage, "%s/garbage", db.dir);
    s_write(garbage, "this is not an allowlist\n");
    /* The .pub (mode 0644 by design) where the secret key belongs. */
    snprintf(yaml, sizeof yaml,
             "collector:\n  listen: tcp://127.0.0.1:*\nsecurity:\n  server_key: %s/collector.pub\n"
             "  allowlist: %s/allowlist\n",
             db.dir, db.dir);
    s_write(path, yaml);
    char *check[] = {(char *)WW_COLLECTOR_BIN,
                     (char *)"--config",
                     path,
                     (char *)"--pg",
                     db.conninfo,
                     (char *)"--check-config",
                     NULL};
    s_run_t r = s_run(db.dir, "pub-as-secret", check);
    assert_int_equal(r.rc, 2);
    snprintf(want, sizeof want, "%s:4:", path);
    if (!strstr(r.out, want) || !strstr(r.out, "security.server_key") ||
        !strstr(r.out, "this is a public key file") || strstr(r.out, "readable by others")) {
        fail_msg("expected %s security.server_key: ... this is a public key file, got:\n%s", want,
                 r.out);
    }
    free(r.out);
    /* A missing allowlist. */
    snprintf(yaml, sizeof yaml,
             "collector:\n  listen: tcp://127.0.0.1:*\nsecurity:\n  server_key: %s/collector.key\n"
             "  allowlist: %s/no-such-allowlist\n",
             db.dir, db.dir);
    s_write(path, yaml);
    r = s_run(db.dir, "missing-allowlist", check);
    assert_int_equal(r.rc, 2);
    snprintf(want, sizeof want, "%s:5:", path);
    if (!strstr(r.out, want) || !strstr(r.out, "security.allowlist") ||
        !strstr(r.out, "No such file")) {
        fail_msg("expected %s security.allowlist: ... No such file, got:\n%s", want, r.out);
    }
    free(r.out);
    /* A garbage allowlist, from a flag: named as the flag and the file's line. */
    char *check_flag[] = {(char *)WW_COLLECTOR_BIN,
                          (char *)"--config",
                          path,
                          (char *)"--pg",
                          db.conninfo,
                          (char *)"--allowlist",
                          garbage,
                          (char *)"--check-config",
                          NULL};
    r = s_run(db.dir, "garbage-allowlist", check_flag);
    assert_int_equal(r.rc, 2);
    snprintf(want, sizeof want, "flag --allowlist: security.allowlist: %s:1:", garbage);
    if (!strstr(r.out, want)) {
        fail_msg("expected '%s', got:\n%s", want, r.out);
    }
    free(r.out);
    /* The real start refuses it the same way, with 2 (systemd: no restart loop). */
    char *start[] = {(char *)WW_COLLECTOR_BIN,
                     (char *)"--config",
                     path,
                     (char *)"--pg",
                     db.conninfo,
                     (char *)"--allowlist",
                     garbage,
                     NULL};
    r = s_run(db.dir, "garbage-start", start);
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.out, want));
    free(r.out);
    /* And a configuration that can run passes, counting the enrolled keys. */
    char allow[300];
    snprintf(allow, sizeof allow, "%s/allowlist", db.dir);
    char *good[] = {(char *)WW_COLLECTOR_BIN,
                    (char *)"--config",
                    path,
                    (char *)"--pg",
                    db.conninfo,
                    (char *)"--allowlist",
                    allow,
                    (char *)"--check-config",
                    NULL};
    r = s_run(db.dir, "good", good);
    if (r.rc != 0 || !strstr(r.out, "1 enrolled agent key")) {
        fail_msg("expected exit 0 and 1 enrolled agent key, got %d:\n%s", r.rc, r.out);
    }
    free(r.out);
    h_db_drop(&db);
}

/* A listen endpoint ZeroMQ cannot bind is a configuration error (exit 2, file and line)
 * at --check-config and at the start, not a failed bind that systemd restarts (item 3). */
static void test_collector_listen_typo_is_a_config_error(void **state)
{
    h_db_t db;
    h_db_create(&db, "clisten");
    char path[256], want[400];
    snprintf(path, sizeof path, "%s/collector.yaml", db.dir);
    s_write(path, "pg:\n  migrate: true\ncollector:\n  listen: http://127.0.0.1:7878\n");
    char *check[] = {
        (char *)WW_COLLECTOR_BIN, (char *)"--config",       path, (char *)"--pg", db.conninfo,
        (char *)"--insecure",     (char *)"--check-config", NULL};
    s_run_t r = s_run(db.dir, "listen-check", check);
    assert_int_equal(r.rc, 2);
    snprintf(want, sizeof want, "%s:4:11: collector.listen: \"http://127.0.0.1:7878\": must be",
             path);
    if (!strstr(r.out, want)) {
        fail_msg("expected '%s', got:\n%s", want, r.out);
    }
    free(r.out);
    char *start[] = {(char *)WW_COLLECTOR_BIN,
                     (char *)"--config",
                     path,
                     (char *)"--pg",
                     db.conninfo,
                     (char *)"--insecure",
                     NULL};
    r = s_run(db.dir, "listen-start", start);
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.out, want));
    free(r.out);
    char *port[] = {(char *)WW_COLLECTOR_BIN,
                    (char *)"--listen",
                    (char *)"tcp://*:78780",
                    (char *)"--pg",
                    db.conninfo,
                    (char *)"--insecure",
                    (char *)"--check-config",
                    NULL};
    r = s_run(db.dir, "listen-port", port);
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.out, "flag --listen: collector.listen: "));
    free(r.out);
    h_db_drop(&db);
}

/* `waferwatch keygen --help` is help, and NAME.key names the pair (issue 15 item 15). */
static void test_keygen_help_and_name_with_suffix(void **state)
{
    h_db_t db;
    h_db_create(&db, "keygen");
    char *help[] = {(char *)WW_CLI_BIN, (char *)"keygen", (char *)"--help", NULL};
    s_run_t r = s_run(db.dir, "keygen-help", help);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "usage: waferwatch keygen NAME"));
    free(r.out);
    char name[300], key[300], pub[300], twice[300];
    snprintf(name, sizeof name, "%s/node7.key", db.dir);
    snprintf(key, sizeof key, "%s/node7.key", db.dir);
    snprintf(pub, sizeof pub, "%s/node7.pub", db.dir);
    snprintf(twice, sizeof twice, "%s/node7.key.key", db.dir);
    char *gen[] = {(char *)WW_CLI_BIN, (char *)"keygen", name, NULL};
    r = s_run(db.dir, "keygen-suffix", gen);
    assert_int_equal(r.rc, 0);
    free(r.out);
    assert_int_equal(access(key, F_OK), 0);
    assert_int_equal(access(pub, F_OK), 0);
    assert_int_not_equal(access(twice, F_OK), 0);
    h_db_drop(&db);
}

/* `waferwatch sensors` over a tree laid out as the kernel's hwmon and powercap: each
 * sensor on a line with its name, place, kind, value and limit; an energy counter that
 * does not move reads 0 W; a root that does not exist is a usage error. */
static void test_sensors_lists_a_sysfs_tree(void **state)
{
    h_db_t db;
    h_db_create(&db, "sensors");
    char root[300];
    snprintf(root, sizeof root, "%s/host", db.dir);
    assert_int_equal(mkdir(root, 0755), 0);
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/name", "coretemp\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/temp1_input", "45000\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/temp1_label", "Package id 0\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon0/temp1_crit", "100000\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon1/name", "acpi_power_meter\n");
    ww_test_put_file(root, "sys/class/hwmon/hwmon1/power1_average", "23456789\n");
    ww_test_put_file(root, "sys/class/powercap/intel-rapl:0/name", "package-0\n");
    ww_test_put_file(root, "sys/class/powercap/intel-rapl:0/energy_uj", "1000\n");
    char *list[] = {(char *)WW_CLI_BIN, (char *)"sensors", (char *)"--root", root, NULL};
    s_run_t r = s_run(db.dir, "sensors", list);
    assert_int_equal(r.rc, 0);
    static const char *const want[] = {
        "hwmon/acpi_power_meter/power1 hwmon1/power1 power 23.457 W -",
        "hwmon/coretemp/Package id 0 hwmon0/temp1 temp 45.000 C 100.000 C",
        "powercap/package-0 powercap/intel-rapl:0 energy 0.000 W -",
    };
    /* Columns are padded: compare with runs of spaces folded to one. */
    char *flat = strdup(r.out);
    assert_non_null(flat);
    size_t o = 0;
    for (size_t i = 0; flat[i]; i++) {
        if (!(flat[i] == ' ' && o > 0 && flat[o - 1] == ' ')) {
            flat[o++] = flat[i];
        }
    }
    flat[o] = '\0';
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!strstr(flat, want[i])) {
            fail_msg("no line \"%s\" in:\n%s", want[i], r.out);
        }
    }
    free(flat);
    free(r.out);
    char missing[320];
    snprintf(missing, sizeof missing, "%s/nowhere", db.dir);
    char *bad[] = {(char *)WW_CLI_BIN, (char *)"sensors", (char *)"--root", missing, NULL};
    r = s_run(db.dir, "sensors-missing", bad);
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.out, "no such directory"));
    free(r.out);
    h_db_drop(&db);
}

/* Help says "default none", not "default ", and sizes in binary units (item 15). */
static void test_help_reads_as_humans_write(void **state)
{
    h_db_t db;
    h_db_create(&db, "hhelp");
    char *c[] = {(char *)WW_COLLECTOR_BIN, (char *)"--help", NULL};
    s_run_t r = s_run(db.dir, "collector-help", c);
    assert_int_equal(r.rc, 0);
    if (strstr(r.out, "default )") || !strstr(r.out, "(string, default none)") ||
        !strstr(r.out, "ingest.max_message_bytes (size, default 16 MiB, range 1 KiB..1 GiB)")) {
        fail_msg("help:\n%s", r.out);
    }
    free(r.out);
    h_db_drop(&db);
}

/* The README's enrolment, done with `waferwatch enroll`: the line it prints lets a
 * one-node agent (node id = agent id) write, although the pattern is only a prefix glob;
 * a missing .pub prints no line and exits 2 (item 4). */
static void test_enroll_prints_a_line_that_admits_the_agent(void **state)
{
    h_db_t db;
    h_db_create(&db, "enroll");
    char prefix[300], pub[300], allow[300], line_log[300];
    snprintf(prefix, sizeof prefix, "%s/agent", db.dir);
    snprintf(pub, sizeof pub, "%s/agent.pub", db.dir);
    snprintf(allow, sizeof allow, "%s/allowlist", db.dir);
    char *gen[] = {(char *)WW_CLI_BIN, (char *)"keygen", prefix, NULL};
    s_run_t r = s_run(db.dir, "keygen-agent", gen);
    assert_int_equal(r.rc, 0);
    free(r.out);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/nobody.pub", db.dir);
    char *bad[] = {(char *)WW_CLI_BIN,    (char *)"enroll",        missing,
                   (char *)"okc1-h1-r01", (char *)"okc1-h1-r01-*", NULL};
    r = s_run(db.dir, "enroll-missing", bad);
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.out, "nobody.pub"));
    assert_null(strstr(r.out, " okc1-h1-r01 "));
    free(r.out);
    /* stdout only: the line, as `>>allowlist` would append it. */
    char *en[] = {(char *)WW_CLI_BIN,    (char *)"enroll",        pub,
                  (char *)"okc1-h1-r01", (char *)"okc1-h1-r01-*", NULL};
    snprintf(line_log, sizeof line_log, "%s/enroll.log", db.dir);
    pid_t pid = h_spawn(en, line_log);
    assert_int_equal(h_wait(pid, 10000), 0);
    char *out = h_read_file(line_log);
    assert_non_null(out);
    char *key_text = h_read_file(pub);
    assert_non_null(key_text);
    char *k = strstr(key_text, "public = ");
    assert_non_null(k);
    k += strlen("public = ");
    k[strcspn(k, "\n")] = '\0';
    char want[300];
    snprintf(want, sizeof want, "%s okc1-h1-r01 okc1-h1-r01 okc1-h1-r01-*\n", k);
    if (!strstr(out, want)) {
        fail_msg("expected the line '%s', got:\n%s", want, out);
    }
    s_write(allow, strstr(out, want));
    free(out);
    free(key_text);
    /* The agent the README describes: one node, its id the agent's own. */
    char v[300];
    snprintf(v, sizeof v, "%s/collector.pub", db.dir);
    setenv("WW_AGENT_SECURITY_SERVER_KEY", v, 1);
    snprintf(v, sizeof v, "%s/agent.key", db.dir);
    setenv("WW_AGENT_SECURITY_KEY", v, 1);
    char endpoint[256];
    pid_t collector = h_collector_start(&db, endpoint, sizeof endpoint);
    char spool[256], log[256];
    snprintf(spool, sizeof spool, "%s/spool", db.dir);
    snprintf(log, sizeof log, "%s/agent.log", db.dir);
    char *a[] = {(char *)WW_AGENT_BIN,
                 (char *)"--spool-dir",
                 spool,
                 (char *)"--collector",
                 endpoint,
                 (char *)"--interval",
                 (char *)"100ms",
                 (char *)"--agent-id",
                 (char *)"okc1-h1-r01",
                 (char *)"--node-id",
                 (char *)"okc1-h1-r01",
                 (char *)"--run-for",
                 (char *)"1s",
                 NULL};
    pid_t agent = h_spawn(a, log);
    assert_int_equal(h_wait(agent, 20000), 0);
    assert_true(
        h_query_ll(&db, "SELECT count(*) FROM node_samples WHERE node_id = 'okc1-h1-r01'") >= 5);
    assert_int_equal(h_query_ll(&db, "SELECT count(*) FROM ingest_rejects"), 0);
    assert_int_equal(h_stop(collector, 15000), 0);
    h_db_drop(&db);
}

/* A misspelt WW_AGENT_* or WW_COLLECTOR_* variable is an unknown key, not silence (item 9). */
static void test_unknown_environment_variables_are_refused(void **state)
{
    h_db_t db;
    h_db_create(&db, "envtypo");
    setenv("WW_AGENT_SIM_SEEDS", "3", 1);
    char *a[] = {(char *)WW_AGENT_BIN, (char *)"--insecure", (char *)"--check-config", NULL};
    s_run_t r = s_run(db.dir, "agent-typo", a);
    unsetenv("WW_AGENT_SIM_SEEDS");
    assert_int_equal(r.rc, 2);
    if (!strstr(r.out, "environment WW_AGENT_SIM_SEEDS: unknown key (did you mean "
                       "WW_AGENT_SIM_SEED?)")) {
        fail_msg("agent:\n%s", r.out);
    }
    free(r.out);
    setenv("WW_COLLECTOR_SLO_FILES", "x.yaml", 1);
    char *c[] = {(char *)WW_COLLECTOR_BIN, (char *)"--pg",           db.conninfo,
                 (char *)"--insecure",     (char *)"--check-config", NULL};
    r = s_run(db.dir, "collector-typo", c);
    unsetenv("WW_COLLECTOR_SLO_FILES");
    assert_int_equal(r.rc, 2);
    if (!strstr(r.out, "environment WW_COLLECTOR_SLO_FILES: unknown key (did you mean "
                       "WW_COLLECTOR_SLO_FILE?)")) {
        fail_msg("collector:\n%s", r.out);
    }
    free(r.out);
    h_db_drop(&db);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_help_lists_flags_and_keys),
    cmocka_unit_test(test_check_config_names_file_and_line),
    cmocka_unit_test(test_print_config_loads_back),
    cmocka_unit_test(test_example_configs_are_valid),
    cmocka_unit_test(test_collector_check_config_reaches_postgres),
    cmocka_unit_test(test_password_refused_and_migrate_only),
    cmocka_unit_test(test_collector_fleet_role_config),
    cmocka_unit_test(test_refused_credentials_are_a_configuration_error),
    cmocka_unit_test(test_agent_log_level_error_names_its_line),
    cmocka_unit_test(test_sigterm_stops_agent_and_collector_cleanly),
    cmocka_unit_test(test_collector_check_config_loads_key_and_allowlist),
    cmocka_unit_test(test_collector_listen_typo_is_a_config_error),
    cmocka_unit_test(test_keygen_help_and_name_with_suffix),
    cmocka_unit_test(test_help_reads_as_humans_write),
    cmocka_unit_test(test_enroll_prints_a_line_that_admits_the_agent),
    cmocka_unit_test(test_sensors_lists_a_sysfs_tree),
    cmocka_unit_test(test_unknown_environment_variables_are_refused),
};
WW_TEST_MAIN(tests, NULL, NULL)
