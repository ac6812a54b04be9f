/* Least privilege (migration 0005, deploy/roles.sql): the schema is migrated by an owner
 * that is no superuser, the collector runs as a member of waferwatch_writer (inserts and
 * upserts, no UPDATE/DELETE/TRUNCATE of data, no DDL) and dashboards as a member of
 * waferwatch_reader (SELECT only); what they may not do fails with SQLSTATE 42501. Roles
 * are cluster-wide, so every test runs its own PostgreSQL cluster. */
#include "harness.h"
#include "verify.h"
#include "ww_migrate.h"
#include "ww_test.h"

#include "ww_time.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The partitions ww_ensure_partitions(current_date - 7, 10) makes in a new database: the
 * days of node_samples, latency_windows, node_rollup_1m and latency_node_1h, and the months
 * of node_rollup_1h those days touch. */
#define S_PARTITIONS_MADE                                                                          \
    "SELECT 60 + count(DISTINCT date_trunc('month', d))"                                           \
    " FROM generate_series(current_date - 7, current_date + 2, interval '1 day') d"

#define IV_MS 100
#define PASSWORD "ww-roles-test-secret"

typedef struct {
    h_pg_t pg;
    h_db_t db; /* superuser connection to database ww */
    char endpoint[256];
    char config[256];
    char spool[256];
    char *argv[16];
    int argc;
} s_fx_t;

/* Connection string for user to dbname of the private cluster (one of 4 static buffers). */
static const char *s_ci(s_fx_t *fx, const char *user, const char *dbname)
{
    static char ci[4][256];
    static int k;
    char *out = ci[k++ % 4];
    snprintf(out, sizeof ci[0], "host=%s port=5432 dbname=%s user=%s", fx->pg.dir, dbname, user);
    return out;
}

static PGconn *s_connect(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fail_msg("cannot connect (%s): %s", conninfo, PQerrorMessage(c));
    }
    PQclear(PQexec(c, "SET TIME ZONE 'UTC'"));
    return c;
}

/* Runs sql, which must succeed. */
static void s_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fail_msg("as %s: %s\nfailed: %s", PQuser(c), sql, PQerrorMessage(c));
    }
    PQclear(r);
}

/* Runs sql, which must be refused for lack of privilege (SQLSTATE 42501). */
static void s_denied(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (PQresultStatus(r) != PGRES_FATAL_ERROR || !state || strcmp(state, "42501") != 0) {
        fail_msg("as %s: %s\nexpected SQLSTATE 42501, got status %s, SQLSTATE %s: %s", PQuser(c),
                 sql, PQresStatus(PQresultStatus(r)), state ? state : "none", PQerrorMessage(c));
    }
    PQclear(r);
}

/* Runs a query that returns one number (NULL gives -1). */
static long long s_ll(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        fail_msg("as %s: %s\nfailed: %s", PQuser(c), sql, PQerrorMessage(c));
    }
    long long v = PQgetisnull(r, 0, 0) ? -1 : atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

/* Applies the embedded migrations on a connection as user to dbname. */
static int s_migrate_as(s_fx_t *fx, const char *user, const char *dbname)
{
    PGconn *c = s_connect(s_ci(fx, user, dbname));
    int v = ww_migrate(c);
    PQfinish(c);
    return v;
}

/* Starts a collector on tcp://127.0.0.1:* as the user of conninfo, with pg.migrate on or
 * off (WW_COLLECTOR_PG_MIGRATE, the environment form of --migrate=false, since
 * h_collector_spawn takes no extra flags); logs to dir/log_name.log. */
static pid_t s_collector(s_fx_t *fx, const char *conninfo, int migrate, const char *log_name)
{
    setenv("WW_COLLECTOR_PG_MIGRATE", migrate ? "true" : "false", 1);
    pid_t pid = h_collector_spawn(fx->db.dir, "tcp://127.0.0.1:*", conninfo, log_name, fx->endpoint,
                                  sizeof fx->endpoint);
    unsetenv("WW_COLLECTOR_PG_MIGRATE");
    return pid;
}

/* A private cluster whose database ww is owned by waferwatch_owner (LOGIN CREATEROLE, no
 * superuser) and migrated by it, either by a collector connected as the owner (the way a
 * deployment does it) or by ww_migrate() on the owner's connection (which creates no
 * daily partitions), and the login users collector_u (waferwatch_writer) and grafana_u
 * (waferwatch_reader).
 *
 * Owning the database is all the owner needs: in PostgreSQL 15 schema public belongs to
 * pg_database_owner, so the database owner may CREATE in it and grant USAGE on it, and
 * may grant CONNECT and TEMPORARY on the database. CREATEROLE lets migration 0005 create
 * the group roles; without it they must exist already (see the last test). */
static void s_fx_init(s_fx_t *fx, const char *tag, int via_collector)
{
    memset(fx, 0, sizeof *fx);
    h_pg_start(&fx->pg, &fx->db, tag);
    PQclear(h_query(&fx->db, "CREATE ROLE waferwatch_owner LOGIN CREATEROLE"));
    PQclear(h_query(&fx->db, "ALTER DATABASE ww OWNER TO waferwatch_owner"));
    if (via_collector) {
        char log[256];
        snprintf(log, sizeof log, "%s/migrate.log", fx->db.dir);
        pid_t c = s_collector(fx, s_ci(fx, "waferwatch_owner", "ww"), 1, "migrate");
        assert_int_equal(h_stop(c, 15000), 0);
        char *text = h_read_file(log);
        assert_non_null(text);
        if (!strstr(text, "applied migration 0012_baseline")) {
            fail_msg("the owner did not apply the baseline migration:\n%s", text);
        }
        free(text);
    } else {
        assert_true(s_migrate_as(fx, "waferwatch_owner", "ww") >= 5);
    }
    PQclear(h_query(&fx->db, "CREATE ROLE collector_u LOGIN IN ROLE waferwatch_writer"));
    PQclear(h_query(&fx->db, "CREATE ROLE grafana_u LOGIN IN ROLE waferwatch_reader"));
}

static void test_migrations_as_non_superuser_owner(void **state)
{
    (void)state;
    s_fx_t fx;
    s_fx_init(&fx, "rown", 1);
    h_db_t *db = &fx.db;
    assert_int_equal(h_query_ll(db, "SELECT count(*) FROM pg_roles WHERE rolname ="
                                    " 'waferwatch_owner' AND NOT rolsuper"),
                     1);
    assert_int_equal(h_query_ll(db, "SELECT max(version) FROM ww_schema_migrations"),
                     ww_migrations[ww_n_migrations - 1].version);
    /* The group roles exist and cannot log in. */
    assert_int_equal(h_query_ll(db, "SELECT count(*) FROM pg_roles WHERE rolname IN"
                                    " ('waferwatch_writer', 'waferwatch_reader',"
                                    " 'waferwatch_feed') AND NOT rolcanlogin"),
                     3);
    /* Every table and partition (those the collector made at start included) is the
     * owner's, and there are daily partitions. */
    assert_int_equal(h_query_ll(db, "SELECT count(*) FROM pg_class c JOIN pg_namespace n"
                                    " ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
                                    " AND c.relkind IN ('r', 'p')"
                                    " AND c.relowner <> 'waferwatch_owner'::regrole"),
                     0);
    assert_true(h_query_ll(db, "SELECT count(*) FROM pg_class WHERE relname LIKE"
                               " 'node_samples_p%'") >= 10);
    /* ww_ensure_partitions runs as its owner with a fixed search_path; only the writer
     * (and the owner) may call it. */
    assert_int_equal(
        h_query_ll(db, "SELECT count(*) FROM pg_proc WHERE proname = 'ww_ensure_partitions'"
                       " AND prosecdef AND proowner = 'waferwatch_owner'::regrole"
                       " AND proconfig = '{\"search_path=public, pg_temp\"}'"),
        1);
    assert_int_equal(h_query_ll(db, "SELECT has_function_privilege('collector_u',"
                                    " 'ww_ensure_partitions(date, integer)', 'EXECUTE')::int"
                                    " + 2 * has_function_privilege('grafana_u',"
                                    " 'ww_ensure_partitions(date, integer)', 'EXECUTE')::int"),
                     1);
    /* Neither role may create in schema public. */
    assert_int_equal(h_query_ll(db, "SELECT has_schema_privilege('collector_u', 'public',"
                                    " 'CREATE')::int + has_schema_privilege('grafana_u',"
                                    " 'public', 'CREATE')::int"),
                     0);
    /* The owner may run the grants again: idempotent. */
    PGconn *owner = s_connect(s_ci(&fx, "waferwatch_owner", "ww"));
    assert_int_equal(s_ll(owner, "SELECT ww_grant_roles()"), 3);
    assert_int_equal(s_ll(owner, "SELECT ww_grant_roles()"), 3);
    PQfinish(owner);

    /* A second database of the same cluster, migrated by an owner without CREATEROLE:
     * the roles exist already (cluster-wide), creation is skipped, the grants are made. */
    PQclear(h_query(db, "CREATE ROLE owner2 LOGIN"));
    PQclear(h_query(db, "CREATE DATABASE ww2 OWNER owner2"));
    assert_int_equal(s_migrate_as(&fx, "owner2", "ww2"),
                     ww_migrations[ww_n_migrations - 1].version);
    PGconn *w2 = s_connect(s_ci(&fx, "collector_u", "ww2"));
    assert_int_equal(s_ll(w2, "SELECT has_table_privilege('node_samples', 'INSERT')::int"), 1);
    s_ok(w2, "INSERT INTO streams (agent_id, epoch, last_seq) VALUES ('a', 1, 1)");
    s_denied(w2, "DELETE FROM streams");
    PQfinish(w2);
    PGconn *r2 = s_connect(s_ci(&fx, "grafana_u", "ww2"));
    assert_int_equal(s_ll(r2, "SELECT count(*) FROM streams"), 1);
    s_denied(r2, "INSERT INTO streams (agent_id, epoch, last_seq) VALUES ('b', 1, 1)");
    PQfinish(r2);
    h_pg_stop(&fx.pg, &fx.db);
}

/* COPY (text) of one node sample at now() into the parent node_samples: the columns of
 * the first release, by name (later columns, e.g. humidity_pct, are NULL). */
static void s_copy_sample(PGconn *c)
{
    PGresult *r = PQexec(c, "COPY node_samples (time, node_id, power_w, inlet_c, outlet_c,"
                            " flow_lpm, wafer_hotspot_c, utilization, tokens_per_s,"
                            " requests_queued, requests_in_flight, requests_completed,"
                            " throttled, throttle_factor) FROM STDIN");
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        fail_msg("COPY node_samples as %s: %s", PQuser(c), PQerrorMessage(c));
    }
    PQclear(r);
    char row[256];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char ts[64];
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S+00", &tm);
    snprintf(row, sizeof row, "%s\tcopy-node\t1\t2\t3\t4\t5\t0.5\t6\t0\t0\t0\tf\t1\n", ts);
    assert_int_equal(PQputCopyData(c, row, (int)strlen(row)), 1);
    assert_int_equal(PQputCopyEnd(c, NULL), 1);
    r = PQgetResult(c);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fail_msg("COPY node_samples as %s: %s", PQuser(c), PQerrorMessage(c));
    }
    PQclear(r);
    PQclear(PQgetResult(c));
}

static void test_writer_cannot_update_delete_truncate_or_create(void **state)
{
    (void)state;
    s_fx_t fx;
    s_fx_init(&fx, "rwri", 0);
    PGconn *w = s_connect(s_ci(&fx, "collector_u", "ww"));
    /* What the collector does is allowed: daily partitions through the SECURITY DEFINER
     * function (made by and owned by the owner), COPY into the partitioned parent (routed
     * to today's partition, on which the writer holds no privilege of its own), the TEMP
     * staging table, the progress row locks and upserts, a reject. */
    /* Ten days of the six daily tables, and the months they touch of node_rollup_1h. */
    assert_int_equal(s_ll(w, "SELECT ww_ensure_partitions(current_date - 7, 10)"),
                     h_query_ll(&fx.db, S_PARTITIONS_MADE));
    assert_int_equal(s_ll(w, "SELECT ww_ensure_partitions(current_date - 7, 10)"), 0);
    s_copy_sample(w);
    assert_int_equal(h_query_ll(&fx.db, "SELECT count(*) FROM node_samples WHERE"
                                        " tableoid::regclass::text = 'node_samples_p' ||"
                                        " to_char(time, 'YYYYMMDD')"
                                        " AND node_id = 'copy-node'"),
                     1);
    assert_int_equal(h_query_ll(&fx.db, "SELECT count(*) FROM pg_class WHERE relname ~"
                                        " '^(node_samples|latency_windows)_p[0-9]{8}$'"
                                        " AND relowner = 'waferwatch_owner'::regrole"),
                     20);
    s_ok(w, "CREATE TEMP TABLE IF NOT EXISTS ww_stage_rollup (LIKE latency_rollup_1m)"
            " ON COMMIT DELETE ROWS");
    s_ok(w, "BEGIN");
    s_ok(w, "INSERT INTO streams AS s (agent_id, epoch, last_seq) VALUES ('a', 1, 1)"
            " ON CONFLICT (agent_id, epoch) DO UPDATE SET last_seq = EXCLUDED.last_seq");
    s_ok(w, "SELECT s.last_seq FROM streams s WHERE agent_id = 'a' FOR UPDATE OF s");
    s_ok(w, "UPDATE streams SET last_seq = 2 WHERE agent_id = 'a'");
    s_ok(w, "INSERT INTO nodes (node_id, agent_id) VALUES ('n', 'a') ON CONFLICT (node_id)"
            " DO UPDATE SET last_hello = now()");
    s_ok(w, "INSERT INTO stream_losses (agent_id, epoch) VALUES ('a', 1)"
            " ON CONFLICT (agent_id, epoch) DO UPDATE SET skipped_ticks = 1");
    s_ok(w, "INSERT INTO ingest_rejects (agent_id, code, reason) VALUES ('a', 'x', 'y')");
    s_ok(w, "COMMIT");

    /* What it may not do: 42501 each. */
    s_denied(w, "UPDATE node_samples SET power_w = 0");
    s_denied(w, "DELETE FROM node_samples");
    s_denied(w, "TRUNCATE node_samples");
    /* Window parts are merged into their row (0011): the measured columns only. */
    s_denied(w, "UPDATE latency_windows SET node_id = 'x'");
    s_denied(w, "UPDATE latency_windows SET time = now()");
    s_denied(w, "DELETE FROM latency_windows");
    s_denied(w, "TRUNCATE latency_windows");
    s_denied(w, "DELETE FROM node_samples_default");
    s_denied(w, "UPDATE ingest_rejects SET reason = ''");
    s_denied(w, "DELETE FROM ingest_rejects");
    s_denied(w, "DELETE FROM streams");
    s_denied(w, "TRUNCATE streams");
    s_denied(w, "DELETE FROM latency_rollup_1m");
    s_denied(w, "CREATE TABLE x (i int)");
    s_denied(w, "CREATE TABLE public.x (i int)");
    s_denied(w, "CREATE VIEW v AS SELECT 1");
    s_denied(w, "CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1");
    s_denied(w, "DROP TABLE node_samples");
    s_denied(w, "ALTER TABLE node_samples ADD COLUMN x int");
    s_denied(w, "CREATE TABLE node_samples_p20310101 PARTITION OF node_samples"
                " FOR VALUES FROM ('2031-01-01') TO ('2031-01-02')");
    s_denied(w, "SELECT ww_grant_roles()");
    PQfinish(w);
    h_pg_stop(&fx.pg, &fx.db);
}

static void test_reader_cannot_insert(void **state)
{
    (void)state;
    s_fx_t fx;
    s_fx_init(&fx, "rrea", 0);
    /* One latency window with a histogram, written as the writer. */
    PGconn *w = s_connect(s_ci(&fx, "collector_u", "ww"));
    s_ok(w, "INSERT INTO latency_windows SELECT now(), 'n', 'm', 1, 1, 0, 0, 0, 10, 20,"
            " h, h, h, h FROM (SELECT ww_hist_make(6, 1, 0.05, 0.05, 0.05, 0, 0, 0, -277,"
            " '{1}') AS h) s");
    PQfinish(w);
    PGconn *r = s_connect(s_ci(&fx, "grafana_u", "ww"));
    s_denied(r, "INSERT INTO node_samples VALUES (now(), 'n', 1, 2, 3, 4, 5, 0.5, 6, 0, 0, 0,"
                " false, 1)");
    s_denied(r, "INSERT INTO nodes (node_id, agent_id) VALUES ('n', 'a')");
    s_denied(r, "INSERT INTO streams (agent_id, epoch, last_seq) VALUES ('a', 1, 1)");
    s_denied(r, "INSERT INTO latency_windows SELECT * FROM latency_windows");
    s_denied(r, "INSERT INTO ingest_rejects (code, reason) VALUES ('x', 'y')");
    s_denied(r, "COPY node_samples FROM STDIN");
    s_denied(r, "UPDATE nodes SET site = ''");
    s_denied(r, "DELETE FROM latency_windows");
    s_denied(r, "TRUNCATE nodes");
    s_denied(r, "CREATE TABLE x (i int)");
    s_denied(r, "SELECT ww_ensure_partitions(current_date, 1)");
    s_denied(r, "SELECT * FROM streams FOR UPDATE");
    /* Reading is what it is for: tables, the partitioned parents, the SQL histograms. */
    assert_int_equal(s_ll(r, "SELECT count(*) FROM latency_windows"), 1);
    s_ok(r, "SELECT count(*) FROM node_samples");
    s_ok(r, "SELECT * FROM nodes, streams, stream_losses, ingest_rejects, latency_rollup_1m,"
            " ww_schema_migrations LIMIT 1");
    PGresult *q = PQexec(r, "SELECT ww_quantile(ww_merge(ttft), 0.99) FROM latency_windows");
    assert_int_equal(PQresultStatus(q), PGRES_TUPLES_OK);
    assert_float_equal(atof(PQgetvalue(q, 0, 0)), 0.05, 1e-12);
    PQclear(q);
    assert_int_equal(s_ll(r, "SELECT count(*) FROM latency_windows,"
                             " ww_hist_le(ww_hist_add(e2e, tpot))"),
                     2);
    PQfinish(r);
    h_pg_stop(&fx.pg, &fx.db);
}

/* Makes collector_u authenticate with a scram password over the socket (pg_hba.conf) and
 * writes a PGPASSFILE for it; returns once the server enforces it. */
static void s_require_password(s_fx_t *fx, char *passfile, size_t cap)
{
    PQclear(h_query(&fx->db, "ALTER ROLE collector_u PASSWORD '" PASSWORD "'"));
    char hba[256];
    snprintf(hba, sizeof hba, "%s/data/pg_hba.conf", fx->pg.dir);
    char *old = h_read_file(hba);
    assert_non_null(old);
    FILE *f = fopen(hba, "w");
    assert_non_null(f);
    fprintf(f, "local ww collector_u scram-sha-256\n%s", old);
    fclose(f);
    free(old);
    PQclear(h_query(&fx->db, "SELECT pg_reload_conf()"));

    snprintf(passfile, cap, "%s/pgpass", fx->db.dir);
    int fd = open(passfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    FILE *pf = fdopen(fd, "w");
    assert_non_null(pf);
    fprintf(pf, "%s:5432:ww:collector_u:%s\n", fx->pg.dir, PASSWORD);
    fclose(pf);

    /* Without the file the login is refused (once the reload took effect). */
    char nofile[256];
    snprintf(nofile, sizeof nofile, "%s passfile=%s/none", s_ci(fx, "collector_u", "ww"),
             fx->db.dir);
    int refused = 0;
    for (int i = 0; i < 100 && !refused; i++) {
        PGconn *c = PQconnectdb(nofile);
        refused = PQstatus(c) != CONNECTION_OK;
        PQfinish(c);
        if (!refused) {
            h_sleep_ms(50);
        }
    }
    assert_true(refused);
}

static void test_collector_as_writer_end_to_end(void **state)
{
    (void)state;
    s_fx_t fx;
    s_fx_init(&fx, "re2e", 0); /* ww_migrate: no daily partition exists yet */
    assert_int_equal(h_query_ll(&fx.db, "SELECT count(*) FROM pg_class WHERE relname LIKE"
                                        " 'node_samples\\_p%'"),
                     0);
    char passfile[256];
    s_require_password(&fx, passfile, sizeof passfile);

    /* The collector connects as the writer, with the password from PGPASSFILE only, and
     * does not migrate (the writer could not). */
    char conninfo[256];
    snprintf(conninfo, sizeof conninfo, "%s application_name=wwcollector",
             s_ci(&fx, "collector_u", "ww"));
    h_secure(fx.db.dir, "roles-agent", "roles-node-*");
    setenv("PGPASSFILE", passfile, 1);
    pid_t collector = s_collector(&fx, conninfo, 0, "collector");
    unsetenv("PGPASSFILE");

    snprintf(fx.config, sizeof fx.config, "%s/agent.yaml", fx.db.dir);
    snprintf(fx.spool, sizeof fx.spool, "%s/spool", fx.db.dir);
    FILE *f = fopen(fx.config, "w");
    assert_non_null(f);
    fprintf(f,
            "agent:\n  id: roles-agent\n  interval: %dms\n  latency_window: 1s\n"
            "  drain_timeout: 20s\n"
            "collector:\n  ack_timeout: 500ms\n  queue_batches: 8\n"
            "node:\n  id: roles-node\n  phase: phase-r\n"
            "sim:\n  nodes: 2\n  seed: 13\n",
            IV_MS);
    fclose(f);
    char **a = fx.argv;
    int n = 0;
    a[n++] = (char *)WW_AGENT_BIN;
    a[n++] = (char *)"--config";
    a[n++] = fx.config;
    a[n++] = (char *)"--spool-dir";
    a[n++] = fx.spool;
    a[n++] = (char *)"--collector";
    a[n++] = fx.endpoint;
    a[n++] = (char *)"--run-for";
    a[n++] = (char *)"3s";
    a[n] = NULL;
    fx.argc = n;

    char log[256];
    snprintf(log, sizeof log, "%s/agent.log", fx.db.dir);
    int rc = h_wait(h_spawn(fx.argv, log), 90000);
    if (rc != 0) {
        char *text = h_read_file(log);
        fail_msg("agent exited %d:\n%s", rc, text ? text : "");
    }
    long long first = h_log_value(log, "agent ", "first_tick");
    int64_t last = h_verify_last_tick(log, IV_MS * WW_NS_PER_MS);
    assert_int_equal(h_stop(collector, 15000), 0);

    h_verify_t v;
    h_verify_sim(&fx.db, fx.argc, fx.argv, first, last, &v);
    h_verify_assert_clean(&v, "collector as waferwatch_writer");
    assert_int_equal(v.rows + v.lost, v.ticks * 2);
    assert_true(h_query_ll(&fx.db, "SELECT count(*) FROM latency_windows") > 0);
    assert_true(h_query_ll(&fx.db, "SELECT count(*) FROM latency_rollup_1m") > 0);
    assert_true(h_query_ll(&fx.db, "SELECT count(*) FROM streams") > 0);
    assert_int_equal(h_query_ll(&fx.db, "SELECT count(*) FROM nodes"), 2);
    assert_int_equal(h_query_ll(&fx.db, "SELECT count(*) FROM ingest_rejects"), 0);
    /* The rows went to daily partitions that the writer made through
     * ww_ensure_partitions, owned by the owner. */
    assert_int_equal(h_query_ll(&fx.db, "SELECT count(*) FROM node_samples_default"), 0);
    assert_int_equal(h_query_ll(&fx.db, "SELECT count(*) FROM latency_windows_default"), 0);
    assert_int_equal(h_query_ll(&fx.db, "SELECT count(*) FROM pg_class WHERE relname ~"
                                        " '^(node_samples|latency_windows)_p[0-9]{8}$'"
                                        " AND relowner = 'waferwatch_owner'::regrole"),
                     20);
    char clog[256];
    snprintf(clog, sizeof clog, "%s/collector.log", fx.db.dir);
    char *text = h_read_file(clog);
    assert_non_null(text);
    char made[64];
    snprintf(made, sizeof made, "created %lld partitions", h_query_ll(&fx.db, S_PARTITIONS_MADE));
    if (!strstr(text, made) || strstr(text, "partition maintenance failed") ||
        strstr(text, "permission denied") || strstr(text, "applied migration") ||
        strstr(text, "schema at version")) {
        fail_msg("collector log:\n%s", text);
    }
    free(text);
    h_pg_stop(&fx.pg, &fx.db);
}

/* Runs deploy/roles.sql with psql as the superuser; returns psql's exit status. */
static int s_roles_sql(s_fx_t *fx, const char *vars)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "psql -X -q -v ON_ERROR_STOP=1 -h '%s' -p 5432 -U postgres -d postgres %s"
             " -f '%s/roles.sql' >>'%s/roles-sql.log' 2>&1",
             fx->pg.dir, vars, WW_DEPLOY_DIR, fx->db.dir);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_owner_without_createrole_then_dba_script(void **state)
{
    (void)state;
    s_fx_t fx;
    memset(&fx, 0, sizeof fx);
    h_pg_start(&fx.pg, &fx.db, "rdba");
    /* An owner that may not create roles, on a cluster without the group roles: the
     * migration succeeds, skips the roles (NOTICE) and grants nothing. */
    PQclear(h_query(&fx.db, "CREATE ROLE ww_admin LOGIN"));
    PQclear(h_query(&fx.db, "ALTER DATABASE ww OWNER TO ww_admin"));
    assert_int_equal(s_migrate_as(&fx, "ww_admin", "ww"),
                     ww_migrations[ww_n_migrations - 1].version);
    assert_int_equal(h_query_ll(&fx.db, "SELECT count(*) FROM pg_roles WHERE rolname LIKE"
                                        " 'waferwatch\\_%'"),
                     0);
    /* The DBA script (twice: idempotent) makes the group roles and the logins and hands
     * the database to the owner; the owner then grants. */
    const char *vars = "-v db=ww -v owner=ww_admin -v collector=ww_col -v grafana=ww_graf";
    assert_int_equal(s_roles_sql(&fx, vars), 0);
    assert_int_equal(s_roles_sql(&fx, vars), 0);
    assert_int_equal(h_query_ll(&fx.db, "SELECT count(*) FROM pg_roles WHERE rolname IN"
                                        " ('ww_admin', 'ww_col', 'ww_graf') AND rolcanlogin"
                                        " AND NOT rolsuper AND NOT rolcreaterole"),
                     3);
    PGconn *owner = s_connect(s_ci(&fx, "ww_admin", "ww"));
    assert_int_equal(s_ll(owner, "SELECT ww_grant_roles()"), 3);
    PQfinish(owner);
    PGconn *w = s_connect(s_ci(&fx, "ww_col", "ww"));
    s_ok(w, "CREATE TEMP TABLE s (LIKE latency_windows)");
    s_copy_sample(w);
    s_denied(w, "DELETE FROM node_samples");
    s_denied(w, "CREATE TABLE x (i int)");
    PQfinish(w);
    PGconn *r = s_connect(s_ci(&fx, "ww_graf", "ww"));
    assert_int_equal(s_ll(r, "SELECT count(*) FROM node_samples"), 1);
    s_denied(r, "INSERT INTO nodes (node_id, agent_id) VALUES ('n', 'a')");
    s_denied(r, "CREATE TEMP TABLE t (i int)");
    PQfinish(r);
    /* Nobody else may connect. */
    PQclear(h_query(&fx.db, "CREATE ROLE stranger LOGIN"));
    PGconn *s = PQconnectdb(s_ci(&fx, "stranger", "ww"));
    assert_int_not_equal(PQstatus(s), CONNECTION_OK);
    PQfinish(s);
    h_pg_stop(&fx.pg, &fx.db);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_migrations_as_non_superuser_owner),
    cmocka_unit_test(test_writer_cannot_update_delete_truncate_or_create),
    cmocka_unit_test(test_reader_cannot_insert),
    cmocka_unit_test(test_collector_as_writer_end_to_end),
    cmocka_unit_test(test_owner_without_createrole_then_dba_script),
};

WW_TEST_MAIN(tests, NULL, NULL)
