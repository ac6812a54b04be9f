/* harness: see harness.h. */
#include "harness.h"

#include "ww_test.h"
#include "ww_time.h"
#include "ww_wire.h"

#include <zmq.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void h_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void h_db_create(h_db_t *db, const char *tag)
{
    memset(db, 0, sizeof *db);
    snprintf(db->name, sizeof db->name, "ww_%s_%d", tag, (int)getpid());
    snprintf(db->conninfo, sizeof db->conninfo, "dbname=%s", db->name);
    snprintf(db->dir, sizeof db->dir, "/tmp/ww-it-%s-%d", tag, (int)getpid());
    mkdir(db->dir, 0755);
    if (!getenv("PGHOST")) {
        fail_msg("PGHOST is not set: run integration tests through ctest (the pg fixture)");
    }
    PGconn *admin = PQconnectdb("dbname=postgres");
    if (PQstatus(admin) != CONNECTION_OK) {
        fail_msg("cannot reach the test PostgreSQL: %s", PQerrorMessage(admin));
    }
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", db->name);
    PQclear(PQexec(admin, sql));
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db->name);
    PGresult *r = PQexec(admin, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fail_msg("CREATE DATABASE failed: %s", PQerrorMessage(admin));
    }
    PQclear(r);
    PQfinish(admin);
    db->conn = PQconnectdb(db->conninfo);
    if (PQstatus(db->conn) != CONNECTION_OK) {
        fail_msg("cannot connect to %s: %s", db->name, PQerrorMessage(db->conn));
    }
    PQclear(PQexec(db->conn, "SET TIME ZONE 'UTC'"));
}

void h_db_drop(h_db_t *db)
{
    if (db->conn) {
        PQfinish(db->conn);
        db->conn = NULL;
    }
    PGconn *admin = PQconnectdb("dbname=postgres");
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
    PQclear(PQexec(admin, sql));
    PQfinish(admin);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", db->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "harness: could not remove %s\n", db->dir);
    }
}

PGresult *h_query(h_db_t *db, const char *sql)
{
    PGresult *r = NULL;
    /* A fault test may have restarted the server under this connection: reconnect. */
    for (int attempt = 0; attempt < 5; attempt++) {
        if (PQstatus(db->conn) != CONNECTION_OK) {
            h_sleep_ms(200);
            PQreset(db->conn);
        }
        r = PQexec(db->conn, sql);
        if (PQresultStatus(r) != PGRES_FATAL_ERROR) {
            break;
        }
        if (attempt < 4) {
            PQclear(r);
            r = NULL;
            PQreset(db->conn);
        }
    }
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        fail_msg("query failed: %s\n%s", sql, PQerrorMessage(db->conn));
    }
    return r;
}

long long h_query_ll(h_db_t *db, const char *sql)
{
    PGresult *r = h_query(db, sql);
    assert_int_equal(PQntuples(r), 1);
    long long v = PQgetisnull(r, 0, 0) ? -1 : atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

/* Children and private clusters a failing test leaves behind (cmocka's failure jumps past
 * the test's own cleanup) are stopped when the test program exits. */
#define WW_MAX_CHILDREN 256
static pid_t s_children[WW_MAX_CHILDREN];
static size_t s_n_children;
static char s_clusters[16][64];
static size_t s_n_clusters;
static bool s_atexit_set;

static void s_cleanup_at_exit(void)
{
    for (size_t i = 0; i < s_n_children; i++) {
        if (s_children[i] > 0 && waitpid(s_children[i], NULL, WNOHANG) == 0) {
            kill(s_children[i], SIGKILL);
            waitpid(s_children[i], NULL, 0);
        }
    }
    for (size_t i = 0; i < s_n_clusters; i++) {
        char line[2048];
        snprintf(line, sizeof line, "'%s' stop '%s' >/dev/null 2>&1", WW_PG_SCRIPT, s_clusters[i]);
        if (system(line) != 0) {
            fprintf(stderr, "harness: could not stop %s\n", s_clusters[i]);
        }
    }
}

static void s_track(void)
{
    if (!s_atexit_set) {
        atexit(s_cleanup_at_exit);
        s_atexit_set = true;
    }
}

pid_t h_spawn(char *const argv[], const char *log_path)
{
    s_track();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    if (s_n_children < WW_MAX_CHILDREN) {
        s_children[s_n_children++] = pid;
    }
    return pid;
}

int h_wait(pid_t pid, int timeout_ms)
{
    for (int waited = 0;; waited += 20) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (WIFEXITED(status)) {
                return WEXITSTATUS(status);
            }
            return 128 + WTERMSIG(status);
        }
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        h_sleep_ms(20);
    }
}

int h_stop(pid_t pid, int timeout_ms)
{
    kill(pid, SIGTERM);
    return h_wait(pid, timeout_ms);
}

char *h_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) {
        buf[len] = '\0';
    }
    return buf;
}

long long h_log_value(const char *path, const char *marker, const char *key)
{
    char *text = h_read_file(path);
    if (!text) {
        return -1;
    }
    long long v = -1;
    char *line = text;
    while (line && *line) {
        char *end = strchr(line, '\n');
        if (end) {
            *end = '\0';
        }
        if (strstr(line, marker)) {
            char pat[64];
            snprintf(pat, sizeof pat, " %s=", key);
            char *p = strstr(line, pat);
            if (p) {
                v = atoll(p + strlen(pat));
            }
        }
        line = end ? end + 1 : NULL;
    }
    free(text);
    return v;
}

static void s_keygen(const char *dir, const char *name)
{
    char prefix[256], pub[300];
    snprintf(prefix, sizeof prefix, "%s/%s", dir, name);
    snprintf(pub, sizeof pub, "%s.pub", prefix);
    if (access(pub, F_OK) == 0) {
        return;
    }
    char log[300];
    snprintf(log, sizeof log, "%s/keygen-%s.log", dir, name);
    char *argv[] = {(char *)WW_CLI_BIN, (char *)"keygen", prefix, NULL};
    if (h_wait(h_spawn(argv, log), 10000) != 0) {
        char *text = h_read_file(log);
        fail_msg("waferwatch keygen %s failed:\n%s", prefix, text ? text : "");
    }
}

void h_enrol(const char *dir, const char *key_name, const char *agent_id, const char *patterns)
{
    s_keygen(dir, key_name);
    char path[300];
    snprintf(path, sizeof path, "%s/%s.pub", dir, key_name);
    char *pub = h_read_file(path);
    assert_non_null(pub);
    char *key = strstr(pub, "public = ");
    assert_non_null(key);
    key += strlen("public = ");
    key[strcspn(key, "\n")] = '\0';
    snprintf(path, sizeof path, "%s/allowlist", dir);
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    fprintf(f, "%s %s %s\n", key, agent_id, patterns);
    fclose(f);
    free(pub);
}

void h_secure(const char *dir, const char *agent_id, const char *patterns)
{
    s_keygen(dir, "collector");
    h_enrol(dir, "agent", agent_id, patterns);
    char v[300];
    snprintf(v, sizeof v, "%s/collector.pub", dir);
    setenv("WW_AGENT_SECURITY_SERVER_KEY", v, 1);
    snprintf(v, sizeof v, "%s/agent.key", dir);
    setenv("WW_AGENT_SECURITY_KEY", v, 1);
}

static void s_key_value(const char *path, const char *name, char *out)
{
    char *text = h_read_file(path);
    assert_non_null(text);
    char pat[32];
    snprintf(pat, sizeof pat, "%s = ", name);
    char *p = strstr(text, pat);
    assert_non_null(p);
    p += strlen(pat);
    memcpy(out, p, 40);
    out[40] = '\0';
    free(text);
}

void h_curve_client(void *sock, const char *dir, const char *key_name)
{
    char server[41], pub[41], sec[41], path[300];
    snprintf(path, sizeof path, "%s/collector.pub", dir);
    s_key_value(path, "public", server);
    snprintf(path, sizeof path, "%s/%s.key", dir, key_name);
    s_key_value(path, "public", pub);
    s_key_value(path, "secret", sec);
    assert_int_equal(zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server, 40), 0);
    assert_int_equal(zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, 40), 0);
    assert_int_equal(zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, 40), 0);
}

pid_t h_collector_spawn(const char *dir, const char *listen, const char *conninfo,
                        const char *log_name, char *endpoint, size_t cap)
{
    char epfile[256], log[256], key[300], allow[300];
    s_keygen(dir, "collector");
    snprintf(key, sizeof key, "%s/collector.key", dir);
    snprintf(allow, sizeof allow, "%s/allowlist", dir);
    FILE *af = fopen(allow, "a"); /* exists, possibly empty: nobody enrolled yet */
    if (af) {
        fclose(af);
    }
    snprintf(epfile, sizeof epfile, "%s/%s.endpoint", dir, log_name);
    snprintf(log, sizeof log, "%s/%s.log", dir, log_name);
    unlink(epfile);
    char *argv[] = {(char *)WW_COLLECTOR_BIN,
                    (char *)"--listen",
                    (char *)listen,
                    (char *)"--endpoint-file",
                    epfile,
                    (char *)"--pg",
                    (char *)conninfo,
                    (char *)"--server-key",
                    key,
                    (char *)"--allowlist",
                    allow,
                    NULL};
    pid_t pid = h_spawn(argv, log);
    for (int i = 0; i < 1500; i++) { /* up to 30 s: migrations under sanitizers are slow */
        char *ep = h_read_file(epfile);
        if (ep) {
            ep[strcspn(ep, "\n")] = '\0';
            snprintf(endpoint, cap, "%s", ep);
            free(ep);
            return pid;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            char *text = h_read_file(log);
            fail_msg("collector exited before listening:\n%s", text ? text : "(no log)");
        }
        h_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    fail_msg("collector did not start listening within 30 s");
    return -1;
}

pid_t h_agent_spawn_secure(h_db_t *db, const char *name, const char *endpoint,
                           const char *const *extra_env, const char *const *extra_args, char *log,
                           size_t log_cap)
{
    char log_path[256], spool[256], node[64], key[256];
    snprintf(key, sizeof key, "%s/%s.key", db->dir, name);
    snprintf(log_path, sizeof log_path, "%s/%s.log", db->dir, name);
    snprintf(spool, sizeof spool, "%s/spool-%s", db->dir, name);
    snprintf(node, sizeof node, "%s-node", name);
    if (log) {
        snprintf(log, log_cap, "%s", log_path);
    }
    char *argv[48] = {(char *)WW_AGENT_BIN,
                      (char *)"--agent-key",
                      key,
                      (char *)"--spool-dir",
                      spool,
                      (char *)"--collector",
                      (char *)endpoint,
                      (char *)"--agent-id",
                      (char *)name,
                      (char *)"--node-id",
                      node};
    size_t argc = 11;
    for (size_t i = 0; extra_args && extra_args[i]; i++) {
        assert_true(argc + 1 < sizeof argv / sizeof argv[0]);
        argv[argc++] = (char *)extra_args[i];
    }
    argv[argc] = NULL;
    for (size_t i = 0; extra_env && extra_env[i]; i += 2) {
        setenv(extra_env[i], extra_env[i + 1], 1);
    }
    pid_t pid = h_spawn(argv, log_path);
    for (size_t i = 0; extra_env && extra_env[i]; i += 2) {
        unsetenv(extra_env[i]);
    }
    return pid;
}

pid_t h_collector_start(h_db_t *db, char *endpoint, size_t cap)
{
    return h_collector_spawn(db->dir, "tcp://127.0.0.1:*", db->conninfo, "collector", endpoint,
                             cap);
}

static void s_pg_script(const char *cmd, const char *dir)
{
    char line[512];
    snprintf(line, sizeof line, "'%s' %s '%s' >/dev/null", WW_PG_SCRIPT, cmd, dir);
    if (system(line) != 0) {
        fail_msg("%s failed", line);
    }
}

/* A private cluster's place: /tmp/ww-pf-TAG-PID (short: the Unix socket path lives in it,
 * 108 bytes at most), stopped at exit should the test fail first. */
static void s_pg_place(h_pg_t *pg, h_db_t *db, const char *tag)
{
    memset(pg, 0, sizeof *pg);
    memset(db, 0, sizeof *db);
    snprintf(pg->dir, sizeof pg->dir, "/tmp/ww-pf-%s-%d", tag, (int)getpid());
    s_track();
    if (s_n_clusters < sizeof s_clusters / sizeof s_clusters[0]) {
        snprintf(s_clusters[s_n_clusters++], sizeof s_clusters[0], "%s", pg->dir);
    }
}

/* The running cluster's database ww: pg's conninfo, db's scratch directory and connection. */
static void s_pg_attach(h_pg_t *pg, h_db_t *db, const char *tag)
{
    snprintf(pg->conninfo, sizeof pg->conninfo,
             "host=%s port=5432 user=postgres dbname=ww application_name=wwcollector", pg->dir);
    snprintf(db->name, sizeof db->name, "ww");
    snprintf(db->conninfo, sizeof db->conninfo, "%s", pg->conninfo);
    snprintf(db->dir, sizeof db->dir, "/tmp/ww-it-%s-%d", tag, (int)getpid());
    mkdir(db->dir, 0755);
    char own[192];
    snprintf(own, sizeof own, "host=%s port=5432 user=postgres dbname=ww", pg->dir);
    db->conn = PQconnectdb(own);
    if (PQstatus(db->conn) != CONNECTION_OK) {
        fail_msg("cannot connect to the private cluster %s: %s", pg->dir, PQerrorMessage(db->conn));
    }
    PQclear(PQexec(db->conn, "SET TIME ZONE 'UTC'"));
}

/* Starts the placed cluster with pg_throwaway.sh's cmd (start, start-durable), with the
 * extra postgresql.conf lines conf (NULL: none) in WW_PG_CONF for the script only. */
static void s_pg_start_cmd(h_pg_t *pg, const char *cmd, const char *conf)
{
    const char *prev = getenv("WW_PG_CONF");
    char *saved = prev ? strdup(prev) : NULL;
    if (conf) {
        setenv("WW_PG_CONF", conf, 1);
    }
    s_pg_script(cmd, pg->dir);
    if (saved) {
        setenv("WW_PG_CONF", saved, 1);
        free(saved);
    } else {
        unsetenv("WW_PG_CONF");
    }
}

/* A started private cluster: creates its database ww and attaches db to it. */
static void s_pg_create_ww(h_pg_t *pg, h_db_t *db, const char *tag)
{
    char admin[160];
    snprintf(admin, sizeof admin, "host=%s port=5432 user=postgres dbname=postgres", pg->dir);
    PGconn *c = PQconnectdb(admin);
    if (PQstatus(c) != CONNECTION_OK) {
        fail_msg("private cluster unreachable: %s", PQerrorMessage(c));
    }
    PQclear(PQexec(c, "CREATE DATABASE ww"));
    PQfinish(c);
    s_pg_attach(pg, db, tag);
}

void h_pg_start(h_pg_t *pg, h_db_t *db, const char *tag)
{
    s_pg_place(pg, db, tag);
    s_pg_script("start-durable", pg->dir); /* crash tests need durable commits */
    s_pg_create_ww(pg, db, tag);
}

void h_pg_start_conf(h_pg_t *pg, h_db_t *db, const char *tag, const char *conf)
{
    s_pg_place(pg, db, tag);
    s_pg_start_cmd(pg, "start", conf);
    s_pg_create_ww(pg, db, tag);
}

void h_pg_standby(h_pg_t *sb, h_db_t *db, const h_pg_t *primary, const char *tag)
{
    s_pg_place(sb, db, tag);
    char line[512];
    snprintf(line, sizeof line, "'%s' standby '%s' '%s' >/dev/null", WW_PG_SCRIPT, sb->dir,
             primary->dir);
    if (system(line) != 0) {
        fail_msg("%s failed", line);
    }
    s_pg_attach(sb, db, tag);
}

void h_pg_cmd(h_pg_t *pg, const char *cmd)
{
    s_pg_script(cmd, pg->dir);
}

void h_pg_stop(h_pg_t *pg, h_db_t *db)
{
    if (db->conn) {
        PQfinish(db->conn);
        db->conn = NULL;
    }
    s_pg_script("stop", pg->dir);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", db->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "harness: could not remove %s\n", db->dir);
    }
}

void h_peer_open(h_peer_t *p, const char *endpoint, const char *dir, const char *key_name,
                 const char *server_pub, int rcvtimeo_ms)
{
    memset(p, 0, sizeof *p);
    p->ctx = zmq_ctx_new();
    p->sock = zmq_socket(p->ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(p->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(p->sock, ZMQ_RCVTIMEO, &rcvtimeo_ms, sizeof rcvtimeo_ms);
    int sndtimeo_ms = 10000;
    zmq_setsockopt(p->sock, ZMQ_SNDTIMEO, &sndtimeo_ms, sizeof sndtimeo_ms);
    if (key_name) {
        h_curve_client(p->sock, dir, key_name);
        if (server_pub) {
            char path[300], key[41];
            snprintf(path, sizeof path, "%s/%s.pub", dir, server_pub);
            s_key_value(path, "public", key);
            assert_int_equal(zmq_setsockopt(p->sock, ZMQ_CURVE_SERVERKEY, key, 40), 0);
        }
    }
    assert_int_equal(zmq_connect(p->sock, endpoint), 0);
}

void h_peer_close(h_peer_t *p)
{
    zmq_close(p->sock);
    zmq_ctx_term(p->ctx);
    free(p->buf);
}

void h_sample_init(ww_node_sample_t *s, const char *node, int64_t t, float power_w)
{
    waferwatch__v1__node_sample__init(s);
    s->node_id = (char *)node;
    s->time_ns = t;
    s->power_w = power_w;
    s->inlet_c = 25;
    s->outlet_c = 30;
    s->flow_lpm = 40;
    s->wafer_hotspot_c = 60;
    s->utilization = 0.5f;
    s->throttle_factor = 1;
}

long h_peer_encode_batch(h_peer_t *p, const char *agent, const char *node, uint64_t epoch,
                         uint64_t seq, float power_w, int64_t t)
{
    ww_node_sample_t s;
    ww_node_sample_t *sp = &s;
    h_sample_init(&s, node, t, power_w);
    return h_peer_encode_samples(p, agent, epoch, seq, &sp, 1);
}

long h_peer_encode_samples(h_peer_t *p, const char *agent, uint64_t epoch, uint64_t seq,
                           ww_node_sample_t **samples, size_t n)
{
    ww_batch_t b = WAFERWATCH__V1__BATCH__INIT;
    b.samples = samples;
    b.n_samples = n;
    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    env.wire_version = WW_WIRE_VERSION;
    env.agent_id = (char *)agent;
    env.epoch = epoch;
    env.seq = seq;
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_BATCH;
    env.batch = &b;
    long len = ww_wire_encode(&env, &p->buf, &p->cap);
    assert_true(len > 0);
    return len;
}

void h_peer_send_batch(h_peer_t *p, const char *agent, const char *node, uint64_t epoch,
                       uint64_t seq, float power_w, int64_t t)
{
    long n = h_peer_encode_batch(p, agent, node, epoch, seq, power_w, t);
    int sent = zmq_send(p->sock, p->buf, (size_t)n, 0);
    if (sent != n) {
        fail_msg("zmq_send: %s (no connection to send to within 10 s)", zmq_strerror(errno));
    }
}

bool h_peer_offer_batch(h_peer_t *p, const char *agent, const char *node, uint64_t epoch,
                        uint64_t seq, float power_w, int64_t t)
{
    long n = h_peer_encode_batch(p, agent, node, epoch, seq, power_w, t);
    return zmq_send(p->sock, p->buf, (size_t)n, ZMQ_DONTWAIT) == n;
}

ww_envelope_t *h_peer_recv(h_peer_t *p)
{
    uint8_t buf[65536];
    int n = zmq_recv(p->sock, buf, sizeof buf, 0);
    if (n < 0) {
        return NULL;
    }
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    ww_envelope_t *env = NULL;
    ww_wire_why_t why;
    if (ww_wire_decode(buf, (size_t)n, &lim, ww_time_now_ns(), &env, &why) != 0) {
        fail_msg("undecodable reply: %s", why.msg);
    }
    return env;
}

void h_agent_wait_ok(pid_t agent, const char *log, int timeout_ms)
{
    int rc = h_wait(agent, timeout_ms);
    if (rc != 0) {
        char *text = h_read_file(log);
        fail_msg("agent exited %d:\n%s", rc, text ? text : "");
    }
}

int h_metrics_port(pid_t pid, const char *log)
{
    for (int i = 0; i < 1500; i++) {
        long long port = h_log_value(log, "metrics: listening", "port");
        if (port > 0) {
            return (int)port;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            char *text = h_read_file(log);
            fail_msg("%s: exited before serving metrics:\n%s", log, text ? text : "(no log)");
        }
        h_sleep_ms(20);
    }
    fail_msg("%s: no \"metrics: listening\" within 30 s", log);
    return -1;
}

double h_metrics_value(const char *body, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            return strtod(p + n + 1, NULL);
        }
    }
    return -1;
}
