/* harness: helpers for integration tests that run the real binaries against the
 * throwaway PostgreSQL of the `pg` ctest fixture (PGHOST etc. in the environment). */
#ifndef WW_HARNESS_H
#define WW_HARNESS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct Waferwatch__V1__NodeSample;

typedef struct {
    char name[64];      /* database name, unique per test */
    char conninfo[256]; /* "dbname=NAME" (host etc. from the environment) */
    PGconn *conn;       /* the test's own connection to it */
    char dir[128];      /* scratch directory for logs and endpoint files */
} h_db_t;

/* Creates a fresh database and a scratch directory; fails the test when it cannot. */
void h_db_create(h_db_t *db, const char *tag);
/* Drops the database, removes the scratch directory. */
void h_db_drop(h_db_t *db);

/* Runs a query that must succeed; returns the result (caller PQclear). */
PGresult *h_query(h_db_t *db, const char *sql);
/* Runs a query that returns one number. */
long long h_query_ll(h_db_t *db, const char *sql);

/* Starts argv[0] with stdout+stderr to log_path. Returns the pid. */
pid_t h_spawn(char *const argv[], const char *log_path);
/* Waits for exit up to timeout_ms; returns the exit code, 128+signal, or -1 on timeout
 * (the process is then killed). */
int h_wait(pid_t pid, int timeout_ms);
/* Sends SIGTERM and waits. */
int h_stop(pid_t pid, int timeout_ms);

/* Waits up to timeout_ms for a spawned agent and fails the test, showing its log, unless
 * it exited 0. */
void h_agent_wait_ok(pid_t agent, const char *log, int timeout_ms);

/* Starts an agent called name for a CURVE test (see h_enrol: dir/NAME.key must be
 * enrolled for agent id name) sending to endpoint: agent id name, key db->dir/NAME.key,
 * spool db->dir/spool-NAME, node id NAME-node, output to db->dir/NAME.log, then
 * extra_args (NULL-terminated, may be NULL). extra_env: NULL-terminated name, value
 * pairs (may be NULL) set for the agent only: in this process while it is started, then
 * unset. Copies the log's path into log when log is not NULL. Returns the pid. */
pid_t h_agent_spawn_secure(h_db_t *db, const char *name, const char *endpoint,
                           const char *const *extra_env, const char *const *extra_args, char *log,
                           size_t log_cap);

/* Starts a collector on tcp://127.0.0.1:* for db; returns its pid and fills endpoint. */
pid_t h_collector_start(h_db_t *db, char *endpoint, size_t cap);

/* A private PostgreSQL cluster (tests/pg_throwaway.sh) for tests that crash, pause or
 * restart the server, which must not disturb the shared fixture. */
typedef struct {
    char dir[64];
    char conninfo[192]; /* to its database "ww", application_name wwcollector */
} h_pg_t;

/* Starts the cluster and creates database ww; fills db (scratch dir, connection) too. */
void h_pg_start(h_pg_t *pg, h_db_t *db, const char *tag);
/* The same, with extra postgresql.conf lines (conf: one setting a line, e.g.
 * "wal_level = logical"; NULL: none; see WW_PG_CONF in tests/pg_throwaway.sh), and not
 * durable (fsync off: for tests that never crash the server). */
void h_pg_start_conf(h_pg_t *pg, h_db_t *db, const char *tag, const char *conf);
/* A streaming standby of primary (pg_basebackup), started; fills db with a connection to
 * its database ww (read-only until promoted). Stop it with h_pg_stop. */
void h_pg_standby(h_pg_t *sb, h_db_t *db, const h_pg_t *primary, const char *tag);
/* pause | resume | restart-immediate | stop | kill9 (the server crashes: every process
 * SIGKILLed) | cut-replication (a standby stops receiving WAL) | promote (a standby) */
void h_pg_cmd(h_pg_t *pg, const char *cmd);
/* Stops the cluster and cleans db's scratch directory. */
void h_pg_stop(h_pg_t *pg, h_db_t *db);

/* Starts a collector listening on `listen` writing to `conninfo`, logging to
 * dir/log_name; waits until it listens; fills endpoint. */
pid_t h_collector_spawn(const char *dir, const char *listen, const char *conninfo,
                        const char *log_name, char *endpoint, size_t cap);

/* CURVE for a test: `waferwatch keygen` writes dir/collector.{key,pub} and
 * dir/agent.{key,pub} (once), the agent key is enrolled in dir/allowlist as agent_id with
 * the node patterns, and WW_AGENT_SECURITY_SERVER_KEY / WW_AGENT_SECURITY_KEY are set so
 * that agents started afterwards by this test use them. Collectors started by
 * h_collector_spawn use dir's collector key and allowlist. */
void h_secure(const char *dir, const char *agent_id, const char *patterns);

/* Generates dir/KEY_NAME.{key,pub} if missing and enrols the key in dir/allowlist as
 * agent_id with the node patterns (no environment change). */
void h_enrol(const char *dir, const char *key_name, const char *agent_id, const char *patterns);

/* Sets a raw ZeroMQ socket up as a CURVE client with dir's keys (see h_secure). */
void h_curve_client(void *sock, const char *dir, const char *key_name);

/* A raw DEALER peer speaking the protocol by hand. */
typedef struct {
    void *ctx, *sock;
    uint8_t *buf;
    size_t cap;
} h_peer_t;

/* Connects to endpoint. key_name: a key pair in dir (NAME.key) for CURVE, or NULL for a
 * client without CURVE; server_pub: the server public key to trust (dir/NAME.pub), NULL
 * for dir/collector.pub. Replies are awaited rcvtimeo_ms; a send waits at most 10 s (a
 * DEALER whose connection failed its handshake has no pipe, and a send would block). */
void h_peer_open(h_peer_t *p, const char *endpoint, const char *dir, const char *key_name,
                 const char *server_pub, int rcvtimeo_ms);
void h_peer_close(h_peer_t *p);
/* Encodes a one-sample batch into p->buf; returns its length. */
long h_peer_encode_batch(h_peer_t *p, const char *agent, const char *node, uint64_t epoch,
                         uint64_t seq, float power_w, int64_t t);
/* A plausible sample of node at t (power_w as given; the other readings fixed). */
void h_sample_init(struct Waferwatch__V1__NodeSample *s, const char *node, int64_t t,
                   float power_w);
/* Encodes a batch of these samples into p->buf; returns its length. */
long h_peer_encode_samples(h_peer_t *p, const char *agent, uint64_t epoch, uint64_t seq,
                           struct Waferwatch__V1__NodeSample **samples, size_t n);
/* Encodes and sends it. */
void h_peer_send_batch(h_peer_t *p, const char *agent, const char *node, uint64_t epoch,
                       uint64_t seq, float power_w, int64_t t);
/* Encodes it and offers it without waiting, for a peer whose handshake is meant to fail:
 * once it has failed there is nothing to send to. Returns whether it was queued. */
bool h_peer_offer_batch(h_peer_t *p, const char *agent, const char *node, uint64_t epoch,
                        uint64_t seq, float power_w, int64_t t);
/* The next reply, decoded (free with ww_wire_free), or NULL after the timeout. */
struct Waferwatch__V1__Envelope *h_peer_recv(h_peer_t *p);

/* Sleeps ms milliseconds. */
void h_sleep_ms(int ms);

/* Reads a whole file into a malloc'd string (NULL if missing). */
char *h_read_file(const char *path);
/* Value of `key=` in the last line containing `marker` of a log file; -1 if absent. */
long long h_log_value(const char *path, const char *marker, const char *key);

/* Waits up to 30 s for the port of "metrics: listening ... port=N" in the log of the
 * spawned process pid (a binary run with metrics.listen port 0); fails the test, showing
 * the log, if the process exits first or no port shows. */
int h_metrics_port(pid_t pid, const char *log);

/* The value of one series ("name" or "name{label=\"v\"}", a line of its own) in a
 * /metrics body, or -1 when absent. */
double h_metrics_value(const char *body, const char *series);

#endif
