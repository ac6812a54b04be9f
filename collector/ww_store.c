/* store_pg: see ww_store.h. */
#define WW_LOG_MODULE "store"
#include "ww_store.h"

#include "ww_hist_wire.h"
#include "ww_log.h"
#include "ww_migrate.h"
#include "ww_time.h"

#include <errno.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch. */
#define WW_PG_EPOCH_S INT64_C(946684800)

/* node_id -> phase, from the Hellos this collector wrote and from the nodes table, so the
 * per-minute rollups are merged here rather than by ww_merge() in PostgreSQL. Open
 * addressing; emptied by ww_store_maintain() so that a relabelling made through another
 * collector is picked up within the maintenance period. */
typedef struct {
    char **key, **val;
    size_t n, cap; /* cap: a power of two, or 0 */
} s_phase_map_t;

/* One row of latency_rollup_1m being merged: (minute, phase, model). */
typedef struct {
    int64_t minute_us; /* PostgreSQL time of the minute */
    const char *phase, *model;
    uint64_t windows, ok, error, timeout, rejected, prompt_tokens, output_tokens;
    uint64_t added; /* windows and window parts added (windows counts only whole ones) */
    ww_hist_t h[4]; /* queue, ttft, tpot, e2e */
} s_rollup_t;

struct ww_store {
    char *conninfo;
    PGconn *conn;
    bool migrated;
    ww_complain_t conn_fail;
    /* reused buffers */
    char *copy;
    size_t copy_len, copy_cap;
    s_phase_map_t phases;
    s_rollup_t *rollups;
    size_t n_rollups, rollups_cap;
    ww_hist_t delay; /* sample-to-commit delay of each written batch, seconds */
    int retention_raw_days, retention_rollup_days; /* 0: keep */
    /* Latency windows go straight into latency_windows by COPY (the common case: ~40% less
     * work than staging them); a window whose key is stored already (a second part) makes
     * that COPY fail with unique_violation, and the transaction is redone with merge set:
     * staged, and merged by INSERT ... ON CONFLICT. */
    bool merge;        /* this try stages and merges */
    bool fast_copy;    /* the COPY under way is the direct one */
    bool key_conflict; /* ... and it met a stored key (SQLSTATE 23505) */
    ww_store_stats_t st;
};

typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
    bool range; /* a value did not fit its column: refuse the write, never clamp */
} s_buf_t;

static void s_buf_put(s_buf_t *b, const void *p, size_t n)
{
    if (b->oom) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 4096;
        while (ncap < b->len + n + 1) {
            ncap *= 2;
        }
        char *ns = realloc(b->s, ncap);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = ncap;
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void s_buf_str(s_buf_t *b, const char *s)
{
    s_buf_put(b, s, strlen(s));
}

/* Appends s as one element of a PostgreSQL array literal: "..." with \ and " escaped. */
static void s_buf_array_elem(s_buf_t *b, const char *s, bool first)
{
    if (!first) {
        s_buf_put(b, ",", 1);
    }
    s_buf_put(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            s_buf_put(b, "\\", 1);
        }
        s_buf_put(b, p, 1);
    }
    s_buf_put(b, "\"", 1);
}

static void s_buf_array_num(s_buf_t *b, long long v, bool first)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%s%lld", first ? "" : ",", v);
    s_buf_put(b, tmp, (size_t)n);
}

static uint64_t s_hash(const char *s)
{
    uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    }
    return h;
}

static void s_phase_map_clear(s_phase_map_t *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->key[i]);
        free(m->val[i]);
    }
    free(m->key);
    free(m->val);
    memset(m, 0, sizeof *m);
}

static const char *s_phase_get(const s_phase_map_t *m, const char *node)
{
    if (m->cap == 0) {
        return NULL;
    }
    for (size_t i = s_hash(node) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->key[i]) {
            return NULL;
        }
        if (strcmp(m->key[i], node) == 0) {
            return m->val[i];
        }
    }
}

/* Sets node's phase; on out of memory the map is emptied (it is only a cache). */
static void s_phase_put(s_phase_map_t *m, const char *node, const char *phase)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        s_phase_map_t g = {calloc(cap, sizeof(char *)), calloc(cap, sizeof(char *)), m->n, cap};
        if (!g.key || !g.val) {
            free(g.key);
            free(g.val);
            s_phase_map_clear(m);
            return;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (m->key[i]) {
                size_t j = s_hash(m->key[i]) & (cap - 1);
                while (g.key[j]) {
                    j = (j + 1) & (cap - 1);
                }
                g.key[j] = m->key[i];
                g.val[j] = m->val[i];
            }
        }
        free(m->key);
        free(m->val);
        *m = g;
    }
    size_t i = s_hash(node) & (m->cap - 1);
    while (m->key[i] && strcmp(m->key[i], node) != 0) {
        i = (i + 1) & (m->cap - 1);
    }
    char *v = strdup(phase ? phase : "");
    if (!v) {
        s_phase_map_clear(m);
        return;
    }
    if (m->key[i]) {
        free(m->val[i]);
    } else if (!(m->key[i] = strdup(node))) {
        free(v);
        s_phase_map_clear(m);
        return;
    } else {
        m->n++;
    }
    m->val[i] = v;
}

static void s_notice(void *arg, const char *message)
{
    WW_DEBUG("postgres: %.*s", (int)strcspn(message, "\n"), message);
}

int64_t ww_store_pg_time(int64_t unix_ns)
{
    int64_t us = unix_ns / 1000;
    if (unix_ns < 0 && us * 1000 != unix_ns) {
        us--;
    }
    return us - WW_PG_EPOCH_S * 1000000;
}

ww_store_t *ww_store_new(const char *conninfo)
{
    ww_store_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    ww_hist_init(&self->delay, WW_HIST_DEFAULT_SCALE);
    self->conninfo = strdup(conninfo ? conninfo : "");
    if (!self->conninfo) {
        free(self);
        return NULL;
    }
    return self;
}

void ww_store_destroy(ww_store_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    ww_store_t *self = *self_p;
    if (self->conn) {
        PQfinish(self->conn);
    }
    free(self->copy);
    free(self->conninfo);
    s_phase_map_clear(&self->phases);
    for (size_t i = 0; i < self->rollups_cap; i++) {
        for (int k = 0; k < 4; k++) {
            ww_hist_fini(&self->rollups[i].h[k]);
        }
    }
    free(self->rollups);
    ww_hist_fini(&self->delay);
    free(self);
    *self_p = NULL;
}

/* Whether a failed connect was refused for its credentials. libpq gives no SQLSTATE for
 * a connection that never opened, so the server's FATAL message is read: 28000 / 28P01
 * (role, password, pg_hba.conf) and 3D000 (no such database), in the server's default
 * English messages. */
static bool s_auth_refused(const char *msg)
{
    static const char *const marks[] = {"password authentication failed",
                                        "no pg_hba.conf entry",
                                        "authentication failed for user",
                                        "role \"",
                                        "database \"",
                                        "is not permitted to log in",
                                        "fe_sendauth: no password supplied"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        const char *at = strstr(msg, marks[i]);
        if (at && (i < 3 || i > 4 || strstr(at, "does not exist"))) {
            return true;
        }
    }
    return false;
}

static void s_disconnect(ww_store_t *self)
{
    if (self->conn) {
        PQfinish(self->conn);
        self->conn = NULL;
    }
}

int ww_store_maintain(ww_store_t *self)
{
    s_phase_map_clear(&self->phases);
    if (!self->conn) {
        return -ENOTCONN;
    }
    /* A week back (late data is accepted up to 7 days) and two days ahead. */
    PGresult *r = PQexec(self->conn, "SELECT ww_ensure_partitions(current_date - 7, 10)");
    int rc = PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : -EIO;
    if (rc == 0) {
        int made = atoi(PQgetvalue(r, 0, 0));
        if (made > 0) {
            WW_INFO("created %d daily partitions of node_samples", made);
        }
    } else {
        WW_WARN("partition maintenance failed: %s", PQerrorMessage(self->conn));
    }
    PQclear(r);
    /* Hourly rollups of the last two days that are missing or short of late minutes (the
     * SLO evaluator keeps the last hours current; ww_sli reads the minutes of any hour not
     * rolled up, so this only saves it work). */
    r = PQexec(self->conn, "SELECT ww_rollup_hours(now() - interval '2 days', now())");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        WW_WARN("hourly latency rollups failed: %s", PQerrorMessage(self->conn));
    }
    PQclear(r);
    if (rc == 0 && (self->retention_raw_days > 0 || self->retention_rollup_days > 0)) {
        char raw[16], rollup[16];
        snprintf(raw, sizeof raw, "%d", self->retention_raw_days);
        snprintf(rollup, sizeof rollup, "%d", self->retention_rollup_days);
        const char *params[] = {raw, rollup};
        r = PQexecParams(self->conn, "SELECT ww_drop_old_data($1, $2)", 2, NULL, params, NULL, NULL,
                         0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            int dropped = atoi(PQgetvalue(r, 0, 0));
            if (dropped > 0) {
                WW_INFO("retention: dropped %d daily partitions older than %d days", dropped,
                        self->retention_raw_days);
            }
        } else {
            /* Not fatal: ingest goes on, the next maintenance tries again. */
            WW_WARN("retention failed (retention.raw_days, retention.rollup_days): %s",
                    PQerrorMessage(self->conn));
        }
        PQclear(r);
    }
    return rc;
}

void ww_store_set_retention(ww_store_t *self, int raw_days, int rollup_days)
{
    self->retention_raw_days = raw_days;
    self->retention_rollup_days = rollup_days;
}

int ww_store_ensure(ww_store_t *self, int migrate)
{
    if (self->conn && PQstatus(self->conn) == CONNECTION_OK) {
        return 0;
    }
    s_disconnect(self);
    self->conn = PQconnectdb(self->conninfo);
    if (PQstatus(self->conn) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(self->conn));
        msg[strcspn(msg, "\n")] = '\0';
        s_disconnect(self);
        if (s_auth_refused(msg)) {
            if (!self->st.pg_auth_failed) {
                WW_ERROR("PostgreSQL refused this collector's credentials: %s: a configuration "
                         "error, not an outage (check pg.conninfo, PGPASSFILE, pg_hba.conf)",
                         msg);
            }
            self->st.pg_auth_failed = true;
            return -EACCES;
        }
        self->st.pg_auth_failed = false;
        WW_COMPLAIN(&self->conn_fail, "cannot connect to PostgreSQL: %s (retrying)", msg);
        return -ECONNREFUSED;
    }
    PQsetNoticeProcessor(self->conn, s_notice, NULL);
    if (self->st.pg_auth_failed) {
        WW_INFO("PostgreSQL accepts this collector's credentials again");
        self->st.pg_auth_failed = false;
    }
    /* UTC so that the report's dates do not depend on the server's zone. */
    PQclear(PQexec(self->conn, "SET TIME ZONE 'UTC'"));
    if (migrate && !self->migrated) {
        int v = ww_migrate(self->conn);
        if (v < 0) {
            s_disconnect(self);
            return v;
        }
        WW_INFO("database schema at version %d", v);
        self->migrated = true;
    }
    /* The rollup rows merged here and the latency windows pass through per-session
     * staging tables on their way into their upserts. */
    PGresult *tr = PQexec(self->conn, "CREATE TEMP TABLE IF NOT EXISTS ww_stage_rollup"
                                      " (LIKE latency_rollup_1m) ON COMMIT DELETE ROWS;"
                                      " CREATE TEMP TABLE IF NOT EXISTS ww_stage_windows"
                                      " (LIKE latency_windows INCLUDING DEFAULTS)"
                                      " ON COMMIT DELETE ROWS");
    if (PQresultStatus(tr) != PGRES_COMMAND_OK) {
        WW_ERROR("cannot create the staging table (is the schema migrated?): %s",
                 PQerrorMessage(self->conn));
        PQclear(tr);
        s_disconnect(self);
        return -EIO;
    }
    PQclear(tr);
    if (self->conn_fail.failing) {
        WW_RECOVERED(&self->conn_fail, "PostgreSQL connection recovered after %lu failed tries",
                     self->conn_fail.repeats + 1);
    } else {
        WW_INFO("connected to PostgreSQL database %s on %s", PQdb(self->conn), PQhost(self->conn));
    }
    return ww_store_maintain(self) == 0 ? 0 : -EIO;
}

int ww_store_check(ww_store_t *self)
{
    self->conn = PQconnectdb(self->conninfo);
    if (PQstatus(self->conn) != CONNECTION_OK) {
        const char *msg = PQerrorMessage(self->conn);
        bool auth = s_auth_refused(msg);
        WW_ERROR("%s: %.*s",
                 auth ? "PostgreSQL refused this collector's credentials (a configuration "
                        "error: pg.conninfo, PGPASSFILE, pg_hba.conf)"
                      : "cannot connect to PostgreSQL",
                 (int)strcspn(msg, "\n"), msg);
        s_disconnect(self);
        return auth ? -EACCES : -ECONNREFUSED;
    }
    /* Two steps: a query naming a missing table fails at parse time. */
    PGresult *r = PQexec(self->conn, "SELECT to_regclass('ww_schema_migrations') IS NOT NULL");
    int v = PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : -EIO;
    if (v == 0 && strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
        PQclear(r);
        r = PQexec(self->conn, "SELECT coalesce(max(version), 0) FROM ww_schema_migrations");
        v = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : -EIO;
    }
    if (v < 0) {
        WW_ERROR("cannot read the schema version: %s", PQerrorMessage(self->conn));
    }
    PQclear(r);
    s_disconnect(self);
    return v;
}

/* Retry or reject: a data error will fail again, anything else (connection, shutdown,
 * deadlock, missing table) is worth retrying with the data kept. */
static ww_store_rc_t s_classify(ww_store_t *self, PGresult *r, const char *what)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", PQerrorMessage(self->conn));
    msg[strcspn(msg, "\n")] = '\0';
    if (PQstatus(self->conn) != CONNECTION_OK) {
        WW_WARN("%s: connection lost: %s", what, msg);
        s_disconnect(self);
        return WW_STORE_RETRY;
    }
    if (state && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0)) {
        WW_WARN("%s: PostgreSQL refused the data (SQLSTATE %s): %s", what, state, msg);
        return WW_STORE_REJECT;
    }
    WW_WARN("%s failed (SQLSTATE %s): %s", what, state ? state : "none", msg);
    return WW_STORE_RETRY;
}

static ww_store_rc_t s_exec(ww_store_t *self, const char *sql, int nparams,
                            const char *const *params, PGresult **out, const char *what)
{
    PGresult *r = PQexecParams(self->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (out) {
            *out = r;
        } else {
            PQclear(r);
        }
        return WW_STORE_OK;
    }
    ww_store_rc_t rc = s_classify(self, r, what);
    PQclear(r);
    return rc;
}

/* Big-endian field writers for the binary COPY format. */
static void s_put16(s_buf_t *b, uint16_t v)
{
    unsigned char x[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    s_buf_put(b, x, 2);
}

static void s_put32(s_buf_t *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    s_buf_put(b, x, 4);
}

static void s_put64(s_buf_t *b, uint64_t v)
{
    s_put32(b, (uint32_t)(v >> 32));
    s_put32(b, (uint32_t)v);
}

static void s_field_f4(s_buf_t *b, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    s_put32(b, 4);
    s_put32(b, bits);
}

static void s_field_i4(s_buf_t *b, uint32_t v)
{
    /* Counts are uint32 on the wire, PostgreSQL integer is signed: ww_wire_check_sample
     * refuses a sample above INT32_MAX on receipt; never clamp one that got here. */
    b->range = b->range || v > INT32_MAX;
    s_put32(b, 4);
    s_put32(b, v);
}

#define WW_SAMPLE_COLUMNS                                                                          \
    "time, node_id, power_w, inlet_c, outlet_c, flow_lpm, wafer_hotspot_c, utilization, "          \
    "tokens_per_s, requests_queued, requests_in_flight, requests_completed, throttled, "           \
    "throttle_factor"
#define WW_SAMPLE_NCOLS 14

static void s_copy_sample(s_buf_t *b, const ww_node_sample_t *s)
{
    s_put16(b, WW_SAMPLE_NCOLS);
    s_put32(b, 8);
    s_put64(b, (uint64_t)ww_store_pg_time(s->time_ns));
    size_t idlen = strlen(s->node_id);
    s_put32(b, (uint32_t)idlen);
    s_buf_put(b, s->node_id, idlen);
    s_field_f4(b, s->power_w);
    s_field_f4(b, s->inlet_c);
    s_field_f4(b, s->outlet_c);
    s_field_f4(b, s->flow_lpm);
    s_field_f4(b, s->wafer_hotspot_c);
    s_field_f4(b, s->utilization);
    s_field_f4(b, s->tokens_per_s);
    s_field_i4(b, s->requests_queued);
    s_field_i4(b, s->requests_in_flight);
    s_field_i4(b, s->requests_completed);
    s_put32(b, 1);
    unsigned char t = s->throttled ? 1 : 0;
    s_buf_put(b, &t, 1);
    s_field_f4(b, s->throttle_factor);
}

/* Writes the PGCOPY binary header. */
static void s_copy_header(s_buf_t *b)
{
    static const char header[] = "PGCOPY\n\377\r\n\0";
    s_buf_put(b, header, 11);
    s_put32(b, 0); /* flags */
    s_put32(b, 0); /* header extension */
}

/* Runs one COPY ... FROM STDIN (FORMAT binary) of the buffer. */
static ww_store_rc_t s_copy_run(ww_store_t *self, const char *sql, const s_buf_t *b,
                                const char *what)
{
    PGresult *r = PQexec(self->conn, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        ww_store_rc_t rc = s_classify(self, r, what);
        PQclear(r);
        return rc;
    }
    PQclear(r);
    if (PQputCopyData(self->conn, b->s, (int)b->len) != 1 || PQputCopyEnd(self->conn, NULL) != 1) {
        return s_classify(self, NULL, what);
    }
    ww_store_rc_t rc = WW_STORE_OK;
    while ((r = PQgetResult(self->conn)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == WW_STORE_OK) {
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            if (self->fast_copy && state && strcmp(state, "23505") == 0) {
                /* Expected now and then (a second part of a window): redone merging. */
                WW_DEBUG("%s met a stored window key: merging instead", what);
                self->key_conflict = true;
                rc = WW_STORE_REJECT;
            } else {
                rc = s_classify(self, r, what);
            }
        }
        PQclear(r);
    }
    return rc;
}

static ww_store_rc_t s_copy_rows(ww_store_t *self, ww_store_item_t *items, size_t n, uint64_t *rows)
{
    s_buf_t b = {self->copy, 0, self->copy_cap, false, false};
    s_copy_header(&b);
    *rows = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].kind != WW_ITEM_BATCH || items[i].disp != WW_DISP_WRITTEN) {
            continue;
        }
        const ww_batch_t *batch = items[i].env->batch;
        for (size_t k = 0; k < batch->n_samples; k++) {
            s_copy_sample(&b, batch->samples[k]);
        }
        *rows += batch->n_samples;
    }
    s_put16(&b, 0xffff); /* trailer */
    self->copy = b.s;
    self->copy_cap = b.cap;
    if (b.oom) {
        WW_ERROR("out of memory building a COPY of %llu rows", (unsigned long long)*rows);
        return WW_STORE_RETRY;
    }
    if (b.range) {
        WW_ERROR("a sample's count does not fit its integer column: refused, not clamped");
        return WW_STORE_REJECT;
    }
    if (*rows == 0) {
        return WW_STORE_OK;
    }
    return s_copy_run(self, "COPY node_samples (" WW_SAMPLE_COLUMNS ") FROM STDIN (FORMAT binary)",
                      &b, "COPY node_samples");
}

/* PostgreSQL type OIDs (pg_type.dat; fixed across versions) for binary records. */
#define WW_OID_INT4 23
#define WW_OID_INT8 20
#define WW_OID_FLOAT8 701
#define WW_OID_INT8_ARRAY 1016

static void s_put_f8(s_buf_t *b, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    s_put64(b, bits);
}

static void s_field_i8(s_buf_t *b, uint64_t v)
{
    /* Validation bounds every count far below INT64_MAX; never clamp one that got here. */
    b->range = b->range || v > (uint64_t)INT64_MAX;
    s_put32(b, 8);
    s_put64(b, v);
}

/* Writes a 4-byte length placeholder; s_len_end patches it with what followed. */
static size_t s_len_begin(s_buf_t *b)
{
    size_t at = b->len;
    s_put32(b, 0);
    return at;
}

static void s_len_end(s_buf_t *b, size_t at)
{
    if (b->oom) {
        return;
    }
    uint32_t n = (uint32_t)(b->len - at - 4);
    unsigned char x[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                          (unsigned char)(n >> 8), (unsigned char)n};
    memcpy(b->s + at, x, 4);
}

/* Fields of a binary record: type OID, length, value. */
static void s_rec_i4(s_buf_t *b, int32_t v)
{
    s_put32(b, WW_OID_INT4);
    s_put32(b, 4);
    s_put32(b, (uint32_t)v);
}

static void s_rec_i8(s_buf_t *b, uint64_t v)
{
    s_put32(b, WW_OID_INT8);
    s_field_i8(b, v);
}

static void s_rec_f8(s_buf_t *b, double v, bool null_if_nan)
{
    s_put32(b, WW_OID_FLOAT8);
    if (null_if_nan && isnan(v)) {
        s_put32(b, 0xffffffffu); /* NULL */
        return;
    }
    s_put32(b, 8);
    s_put_f8(b, v);
}

/* The head of a ww_hist composite (scale, count, sum, min, max, zero_count, underflow,
 * overflow, offset, counts bigint[]) in binary record form, up to the array's elements:
 * the caller writes `span` int8 fields, then s_hist_end(). min/max NaN are written NULL. */
static void s_hist_begin(s_buf_t *b, int32_t scale, uint64_t count, double sum, double min,
                         double max, uint64_t zero_count, uint64_t underflow, uint64_t overflow,
                         int32_t first, size_t span, size_t *at, size_t *arr)
{
    *at = s_len_begin(b);
    s_put32(b, 10); /* fields */
    s_rec_i4(b, scale);
    s_rec_i8(b, count);
    s_rec_f8(b, sum, false);
    s_rec_f8(b, min, true);
    s_rec_f8(b, max, true);
    s_rec_i8(b, zero_count);
    s_rec_i8(b, underflow);
    s_rec_i8(b, overflow);
    s_rec_i4(b, span ? first : 0);
    /* bigint[]: ndim, has-nulls flag, element type, then per dimension its size and lower
     * bound, then the elements; an empty array has no dimension. */
    s_put32(b, WW_OID_INT8_ARRAY);
    *arr = s_len_begin(b);
    s_put32(b, span ? 1 : 0);
    s_put32(b, 0);
    s_put32(b, WW_OID_INT8);
    if (span) {
        s_put32(b, (uint32_t)span);
        s_put32(b, 1);
    }
}

static void s_hist_end(s_buf_t *b, size_t at, size_t arr)
{
    s_len_end(b, arr);
    s_len_end(b, at);
}

/* A merged ww_hist_t in the canonical form of SQL ww_hist_trim(): zero buckets dropped at
 * both ends, NaN min/max as NULL. */
static void s_field_hist_merged(s_buf_t *b, const ww_hist_t *h)
{
    uint32_t a = 0, z = h->len;
    while (a < z && h->counts[a] == 0) {
        a++;
    }
    while (z > a && h->counts[z - 1] == 0) {
        z--;
    }
    size_t at, arr;
    s_hist_begin(b, h->scale, h->count, h->sum, h->min, h->max, h->zero_count, h->underflow,
                 h->overflow, h->offset + (int32_t)a, z - a, &at, &arr);
    for (uint32_t i = a; i < z; i++) {
        s_field_i8(b, h->counts[i]);
    }
    s_hist_end(b, at, arr);
}

/* A ww_hist composite in binary record form, the dense counts rebuilt from the sparse
 * wire buckets. Validation (ww_hist_from_pb) has already bounded the span and checked the
 * counts. min/max are NULL when the histogram holds no finite value (NaN on the wire). */
static void s_field_hist(s_buf_t *b, const Waferwatch__V1__Histogram *h)
{
    static const Waferwatch__V1__Histogram empty = WAFERWATCH__V1__HISTOGRAM__INIT;
    if (!h) {
        h = &empty;
    }
    int32_t first = 0, last = -1, idx = 0;
    for (size_t k = 0; k < h->n_index_delta; k++) {
        idx = k == 0 ? h->index_delta[0] : idx + h->index_delta[k];
        if (k == 0) {
            first = idx;
        }
        last = idx;
    }
    size_t span = h->n_index_delta ? (size_t)(last - first + 1) : 0;
    bool no_values = h->count == 0;
    size_t at, arr;
    s_hist_begin(b, h->scale, h->count, no_values ? 0.0 : h->sum, no_values ? NAN : h->min,
                 no_values ? NAN : h->max, h->zero_count, h->underflow, h->overflow, first, span,
                 &at, &arr);
    if (span) {
        size_t k = 0;
        idx = first;
        for (int32_t i = first; i <= last; i++) {
            uint64_t c = 0;
            if (k < h->n_index_delta && i == idx) {
                c = h->bucket_count[k++];
                if (k < h->n_index_delta) {
                    idx += h->index_delta[k];
                }
            }
            s_field_i8(b, c);
        }
    }
    s_hist_end(b, at, arr);
}

#define WW_LATENCY_COLUMNS                                                                         \
    "time, node_id, model, duration_s, requests_ok, requests_error, requests_timeout, "            \
    "requests_rejected, prompt_tokens, output_tokens, queue, ttft, tpot, e2e"
#define WW_LATENCY_NCOLS 14

static void s_copy_text(s_buf_t *b, const char *s)
{
    size_t n = strlen(s);
    s_put32(b, (uint32_t)n);
    s_buf_put(b, s, n);
}

static void s_copy_window(s_buf_t *b, const Waferwatch__V1__LatencyWindow *w)
{
    s_put16(b, WW_LATENCY_NCOLS);
    s_put32(b, 8);
    s_put64(b, (uint64_t)ww_store_pg_time(w->start_ns));
    s_copy_text(b, w->node_id);
    s_copy_text(b, w->model);
    s_put32(b, 8);
    s_put_f8(b, (double)w->duration_ns / 1e9);
    s_field_i8(b, w->requests_ok);
    s_field_i8(b, w->requests_error);
    s_field_i8(b, w->requests_timeout);
    s_field_i8(b, w->requests_rejected);
    s_field_i8(b, w->prompt_tokens);
    s_field_i8(b, w->output_tokens);
    s_field_hist(b, w->queue);
    s_field_hist(b, w->ttft);
    s_field_hist(b, w->tpot);
    s_field_hist(b, w->e2e);
}

/* Upserts the rollup rows staged by this transaction (merged in C, see s_rollup_add). */
#define WW_ROLLUP_SQL                                                                              \
    "INSERT INTO latency_rollup_1m AS r SELECT * FROM ww_stage_rollup"                             \
    " ON CONFLICT (time, phase, model) DO UPDATE SET"                                              \
    " windows = r.windows + EXCLUDED.windows,"                                                     \
    " requests_ok = r.requests_ok + EXCLUDED.requests_ok,"                                         \
    " requests_error = r.requests_error + EXCLUDED.requests_error,"                                \
    " requests_timeout = r.requests_timeout + EXCLUDED.requests_timeout,"                          \
    " requests_rejected = r.requests_rejected + EXCLUDED.requests_rejected,"                       \
    " prompt_tokens = r.prompt_tokens + EXCLUDED.prompt_tokens,"                                   \
    " output_tokens = r.output_tokens + EXCLUDED.output_tokens,"                                   \
    " queue = ww_hist_add(r.queue, EXCLUDED.queue), ttft = ww_hist_add(r.ttft, EXCLUDED.ttft),"    \
    " tpot = ww_hist_add(r.tpot, EXCLUDED.tpot), e2e = ww_hist_add(r.e2e, EXCLUDED.e2e)"
#define WW_ROLLUP_NCOLS 14

/* Makes sure the phase of every node with a window in the written batches is known: the
 * ones not cached are read from nodes in one query (their Hellos, if in this group, were
 * written and cached just before). A node that never said hello has phase ''. */
static ww_store_rc_t s_resolve_phases(ww_store_t *self, ww_store_item_t *items, size_t n)
{
    s_buf_t ids = {0};
    bool first = true;
    const char *prev = NULL;
    s_buf_str(&ids, "{");
    for (size_t i = 0; i < n; i++) {
        if (items[i].kind != WW_ITEM_BATCH || items[i].disp != WW_DISP_WRITTEN) {
            continue;
        }
        const ww_batch_t *batch = items[i].env->batch;
        for (size_t k = 0; k < batch->n_latency_windows; k++) {
            const char *node = batch->latency_windows[k]->node_id;
            if ((prev && strcmp(prev, node) == 0) || s_phase_get(&self->phases, node)) {
                continue;
            }
            s_buf_array_elem(&ids, node, first);
            first = false;
            prev = node;
        }
    }
    s_buf_str(&ids, "}");
    ww_store_rc_t rc = ids.oom ? WW_STORE_RETRY : WW_STORE_OK;
    PGresult *r = NULL;
    if (rc == WW_STORE_OK && !first) {
        const char *params[] = {ids.s};
        rc = s_exec(
            self, "SELECT node_id, coalesce(phase, '') FROM nodes WHERE node_id = ANY($1::text[])",
            1, params, &r, "reading node phases");
    }
    for (int t = 0; r && t < PQntuples(r); t++) {
        s_phase_put(&self->phases, PQgetvalue(r, t, 0), PQgetvalue(r, t, 1));
    }
    PQclear(r);
    free(ids.s);
    return rc;
}

/* Adds one window into its (minute, phase, model) rollup row, merging exactly as SQL
 * ww_merge() does: the first window is taken as is, later ones are merged at the coarser
 * of the two scales. part: a second part of a window already counted (merged into its
 * stored row), which adds its requests but is not another window. 0, -ENOMEM, or
 * -EOVERFLOW when a sum would pass what bigint holds (the row is then part-added: the
 * caller refuses the whole write, and the rows are rebuilt by the next one). */
static int s_rollup_add(ww_store_t *self, const Waferwatch__V1__LatencyWindow *w, bool part)
{
    static const Waferwatch__V1__Histogram empty = WAFERWATCH__V1__HISTOGRAM__INIT;
    int64_t t = ww_store_pg_time(w->start_ns);
    const int64_t m = INT64_C(60) * 1000000; /* date_trunc('minute') in the UTC session */
    int64_t minute = t - ((t % m) + m) % m;
    const char *phase = s_phase_get(&self->phases, w->node_id);
    phase = phase ? phase : "";
    s_rollup_t *r = NULL;
    for (size_t i = 0; i < self->n_rollups && !r; i++) {
        s_rollup_t *c = &self->rollups[i];
        if (c->minute_us == minute && strcmp(c->phase, phase) == 0 &&
            strcmp(c->model, w->model) == 0) {
            r = c;
        }
    }
    if (!r) {
        if (self->n_rollups == self->rollups_cap) {
            size_t cap = self->rollups_cap ? self->rollups_cap * 2 : 16;
            s_rollup_t *g = realloc(self->rollups, cap * sizeof *g);
            if (!g) {
                return -ENOMEM;
            }
            memset(g + self->rollups_cap, 0, (cap - self->rollups_cap) * sizeof *g);
            self->rollups = g;
            self->rollups_cap = cap;
        }
        r = &self->rollups[self->n_rollups++];
        r->minute_us = minute;
        r->phase = phase;
        r->model = w->model;
        r->windows = r->added = r->ok = r->error = r->timeout = r->rejected = 0;
        r->prompt_tokens = r->output_tokens = 0;
    }
    const Waferwatch__V1__Histogram *src[4] = {w->queue, w->ttft, w->tpot, w->e2e};
    for (int k = 0; k < 4; k++) {
        const Waferwatch__V1__Histogram *pb = src[k] ? src[k] : &empty;
        ww_hist_t h;
        /* Already validated on receipt: this only rebuilds the dense form. */
        int rc = ww_hist_from_pb(pb, &h, WW_HIST_WIRE_MAX_BUCKETS, NULL, "");
        if (rc == 0 && r->added == 0) {
            ww_hist_fini(&r->h[k]);
            r->h[k] = h;
            continue;
        }
        if (rc == 0) {
            rc = ww_hist_merge(&r->h[k], &h);
        }
        ww_hist_fini(&h);
        if (rc < 0) {
            return rc;
        }
    }
    /* Checked: a sum past INT64_MAX is refused (-EOVERFLOW: the write is refused as data
     * and the offending message found alone), never wrapped or clamped. */
    const struct {
        uint64_t *acc, v;
    } adds[] = {{&r->ok, w->requests_ok},
                {&r->error, w->requests_error},
                {&r->timeout, w->requests_timeout},
                {&r->rejected, w->requests_rejected},
                {&r->prompt_tokens, w->prompt_tokens},
                {&r->output_tokens, w->output_tokens}};
    for (size_t k = 0; k < sizeof adds / sizeof adds[0]; k++) {
        uint64_t sum;
        if (__builtin_add_overflow(*adds[k].acc, adds[k].v, &sum) || sum > (uint64_t)INT64_MAX) {
            return -EOVERFLOW;
        }
        *adds[k].acc = sum;
    }
    r->windows += part ? 0 : 1;
    r->added++;
    return 0;
}

/* Moves the staged windows into latency_windows: a window whose (node, window start,
 * model) is stored already is a second part of it (an agent restarted inside the window,
 * or an older agent sent its open windows at a clean stop): merged into the row, counts,
 * histograms and covered durations added. Returns the keys that were merged, as rows of
 * (node_id, model, start in microseconds since 1970). */
#define WW_WINDOWS_SQL                                                                             \
    "WITH ins AS (INSERT INTO latency_windows AS w SELECT * FROM ww_stage_windows"                 \
    " ON CONFLICT (node_id, time, model) DO UPDATE SET"                                            \
    " duration_s = w.duration_s + EXCLUDED.duration_s,"                                            \
    " requests_ok = w.requests_ok + EXCLUDED.requests_ok,"                                         \
    " requests_error = w.requests_error + EXCLUDED.requests_error,"                                \
    " requests_timeout = w.requests_timeout + EXCLUDED.requests_timeout,"                          \
    " requests_rejected = w.requests_rejected + EXCLUDED.requests_rejected,"                       \
    " prompt_tokens = w.prompt_tokens + EXCLUDED.prompt_tokens,"                                   \
    " output_tokens = w.output_tokens + EXCLUDED.output_tokens,"                                   \
    " queue = ww_hist_add(w.queue, EXCLUDED.queue), ttft = ww_hist_add(w.ttft, EXCLUDED.ttft),"    \
    " tpot = ww_hist_add(w.tpot, EXCLUDED.tpot), e2e = ww_hist_add(w.e2e, EXCLUDED.e2e),"          \
    " parts = w.parts + 1"                                                                         \
    " RETURNING node_id, model, time, parts)"                                                      \
    " SELECT node_id, model, (extract(epoch FROM time) * 1000000)::bigint FROM ins WHERE parts > " \
    "1"

/* The latency windows of the written batches in arrival order, with what the write needs
 * to know of each. */
typedef struct {
    const Waferwatch__V1__LatencyWindow *w;
    uint32_t round; /* earlier windows of this group with the same key */
    bool part;      /* merged into a row stored before it */
} s_win_t;

static uint64_t s_win_hash(const Waferwatch__V1__LatencyWindow *w)
{
    return (s_hash(w->node_id) * 31 + s_hash(w->model)) ^
           ((uint64_t)w->start_ns * 0x9e3779b97f4a7c15u);
}

static bool s_win_same(const Waferwatch__V1__LatencyWindow *a,
                       const Waferwatch__V1__LatencyWindow *b)
{
    return a->start_ns == b->start_ns && strcmp(a->node_id, b->node_id) == 0 &&
           strcmp(a->model, b->model) == 0;
}

/* Numbers each window's round: one statement cannot insert and then update the same row,
 * so a key that comes twice in one group (both parts of a window, or a peer repeating
 * it) goes in a later round. Returns the number of rounds, or 0 when out of memory. */
static uint32_t s_win_rounds(s_win_t *v, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n) {
        cap *= 2;
    }
    size_t *slot = malloc(cap * sizeof *slot); /* index into v + 1; 0: empty */
    if (!slot) {
        return 0;
    }
    memset(slot, 0, cap * sizeof *slot);
    uint32_t rounds = n ? 1 : 0;
    for (size_t i = 0; i < n; i++) {
        size_t h = s_win_hash(v[i].w) & (cap - 1);
        v[i].round = 0;
        while (slot[h] && !s_win_same(v[slot[h] - 1].w, v[i].w)) {
            h = (h + 1) & (cap - 1);
        }
        if (slot[h]) {
            v[i].round = v[slot[h] - 1].round + 1; /* the slot keeps the latest of the key */
            rounds = v[i].round + 1 > rounds ? v[i].round + 1 : rounds;
        }
        slot[h] = i + 1;
    }
    free(slot);
    return rounds;
}

/* Writes the windows of one round: straight into latency_windows by COPY, or, when merge,
 * staged and moved into latency_windows by WW_WINDOWS_SQL, marking those merged into a
 * stored row. */
static ww_store_rc_t s_windows_round(ww_store_t *self, s_win_t *v, size_t n, uint32_t round,
                                     bool merge)
{
    s_buf_t b = {self->copy, 0, self->copy_cap, false, false};
    s_copy_header(&b);
    size_t staged = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].round == round) {
            s_copy_window(&b, v[i].w);
            staged++;
        }
    }
    s_put16(&b, 0xffff);
    self->copy = b.s;
    self->copy_cap = b.cap;
    if (b.oom) {
        WW_ERROR("out of memory building a COPY of %zu latency windows", staged);
        return WW_STORE_RETRY;
    }
    if (b.range) {
        WW_ERROR("a latency window's count does not fit bigint: refused, not clamped");
        return WW_STORE_REJECT;
    }
    ww_store_rc_t rc = WW_STORE_OK;
    if (!merge) {
        self->fast_copy = true;
        rc = s_copy_run(self,
                        "COPY latency_windows (" WW_LATENCY_COLUMNS ") FROM STDIN (FORMAT binary)",
                        &b, "COPY latency windows");
        self->fast_copy = false;
        return rc;
    }
    if (round > 0) {
        rc = s_exec(self, "DELETE FROM ww_stage_windows", 0, NULL, NULL, "staging windows");
    }
    if (rc == WW_STORE_OK) {
        rc = s_copy_run(self,
                        "COPY ww_stage_windows (" WW_LATENCY_COLUMNS ") FROM STDIN (FORMAT binary)",
                        &b, "COPY latency windows");
    }
    PGresult *r = NULL;
    if (rc == WW_STORE_OK) {
        rc = s_exec(self, WW_WINDOWS_SQL, 0, NULL, &r, "writing latency windows");
    }
    /* Rare (restarts): a linear match of the merged keys is enough. */
    for (int t = 0; rc == WW_STORE_OK && t < PQntuples(r); t++) {
        const char *node = PQgetvalue(r, t, 0), *model = PQgetvalue(r, t, 1);
        long long us = strtoll(PQgetvalue(r, t, 2), NULL, 10);
        for (size_t i = 0; i < n; i++) {
            if (v[i].round == round && v[i].w->start_ns / 1000 == us &&
                strcmp(v[i].w->node_id, node) == 0 && strcmp(v[i].w->model, model) == 0) {
                v[i].part = true;
            }
        }
    }
    PQclear(r);
    return rc;
}

/* Latency windows of the written batches: one binary COPY into latency_windows (or, when
 * a key is stored already, staged and merged: see WW_WINDOWS_SQL and ww_store_t.merge),
 * and their per-minute rollups per (phase, model) merged here and upserted, all in the
 * caller's transaction. */
static ww_store_rc_t s_copy_latency(ww_store_t *self, ww_store_item_t *items, size_t n,
                                    uint64_t *windows, uint64_t *parts)
{
    *windows = 0;
    *parts = 0;
    self->n_rollups = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].kind == WW_ITEM_BATCH && items[i].disp == WW_DISP_WRITTEN) {
            *windows += items[i].env->batch->n_latency_windows;
        }
    }
    if (*windows == 0) {
        return WW_STORE_OK;
    }
    ww_store_rc_t rc = s_resolve_phases(self, items, n);
    if (rc != WW_STORE_OK) {
        return rc;
    }
    s_win_t *v = calloc(*windows, sizeof *v);
    if (!v) {
        return WW_STORE_RETRY;
    }
    size_t nw = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].kind != WW_ITEM_BATCH || items[i].disp != WW_DISP_WRITTEN) {
            continue;
        }
        const ww_batch_t *batch = items[i].env->batch;
        for (size_t k = 0; k < batch->n_latency_windows; k++) {
            v[nw++].w = batch->latency_windows[k];
        }
    }
    uint32_t rounds = s_win_rounds(v, nw);
    rc = rounds ? WW_STORE_OK : WW_STORE_RETRY;
    /* A key twice in the group: merging is certain, no need to try the direct COPY. */
    bool merge = self->merge || rounds > 1;
    for (uint32_t round = 0; round < rounds && rc == WW_STORE_OK; round++) {
        rc = s_windows_round(self, v, nw, round, merge);
    }
    for (size_t i = 0; i < nw && rc == WW_STORE_OK; i++) {
        bool part = v[i].part || v[i].round > 0;
        *parts += part;
        int arc = s_rollup_add(self, v[i].w, part);
        if (arc == -EOVERFLOW) {
            WW_ERROR("a latency rollup's sum would pass what bigint holds: refused");
            rc = WW_STORE_REJECT;
        } else if (arc < 0) {
            WW_ERROR("out of memory merging latency rollups");
            rc = WW_STORE_RETRY;
        }
    }
    free(v);
    if (rc != WW_STORE_OK) {
        return rc;
    }
    s_buf_t b = {self->copy, 0, self->copy_cap, false, false};
    b.len = 0;
    s_copy_header(&b);
    for (size_t i = 0; i < self->n_rollups; i++) {
        const s_rollup_t *r = &self->rollups[i];
        s_put16(&b, WW_ROLLUP_NCOLS);
        s_put32(&b, 8);
        s_put64(&b, (uint64_t)r->minute_us);
        s_copy_text(&b, r->phase);
        s_copy_text(&b, r->model);
        s_field_i8(&b, r->windows);
        s_field_i8(&b, r->ok);
        s_field_i8(&b, r->error);
        s_field_i8(&b, r->timeout);
        s_field_i8(&b, r->rejected);
        s_field_i8(&b, r->prompt_tokens);
        s_field_i8(&b, r->output_tokens);
        for (int k = 0; k < 4; k++) {
            s_field_hist_merged(&b, &r->h[k]);
        }
    }
    s_put16(&b, 0xffff);
    self->copy = b.s;
    self->copy_cap = b.cap;
    if (b.oom) {
        return WW_STORE_RETRY;
    }
    if (b.range) {
        return WW_STORE_REJECT;
    }
    rc = s_copy_run(self, "COPY ww_stage_rollup FROM STDIN (FORMAT binary)", &b,
                    "COPY latency rollups");
    if (rc == WW_STORE_OK) {
        rc = s_exec(self, WW_ROLLUP_SQL, 0, NULL, NULL, "updating latency rollups");
    }
    return rc;
}

/* Records the hole [from, to] of the item's stream (seqs are at most INT64_MAX: ww_wire). */
static ww_store_rc_t s_hole_add(ww_store_t *self, const ww_store_item_t *it, uint64_t from,
                                uint64_t to)
{
    char epoch[24], a[24], z[24];
    snprintf(epoch, sizeof epoch, "%lld", (long long)it->epoch);
    snprintf(a, sizeof a, "%llu", (unsigned long long)from);
    snprintf(z, sizeof z, "%llu", (unsigned long long)to);
    const char *params[] = {it->agent_id, epoch, a, z};
    return s_exec(self,
                  "INSERT INTO stream_holes (agent_id, epoch, first_seq, last_seq)"
                  " VALUES ($1, $2, $3, $4)",
                  4, params, NULL, "recording a stream hole");
}

/* When the item's seq lies in a recorded hole of its stream, takes it out of the hole (the
 * range is split around it) and sets *filled. */
static ww_store_rc_t s_hole_fill(ww_store_t *self, const ww_store_item_t *it, bool *filled)
{
    char epoch[24], seq[24];
    snprintf(epoch, sizeof epoch, "%lld", (long long)it->epoch);
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)it->seq);
    const char *params[] = {it->agent_id, epoch, seq};
    PGresult *r = NULL;
    *filled = false;
    ww_store_rc_t rc = s_exec(self,
                              "DELETE FROM stream_holes WHERE agent_id = $1 AND epoch = $2"
                              " AND first_seq <= $3 AND last_seq >= $3"
                              " RETURNING first_seq, last_seq",
                              3, params, &r, "reading stream holes");
    if (rc != WW_STORE_OK || PQntuples(r) == 0) {
        PQclear(r);
        return rc;
    }
    *filled = true;
    uint64_t from = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    uint64_t to = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    if (from < it->seq) {
        rc = s_hole_add(self, it, from, it->seq - 1);
    }
    if (rc == WW_STORE_OK && it->seq < to) {
        rc = s_hole_add(self, it, it->seq + 1, to);
    }
    return rc;
}

/* The items s_sequence marked as possibly late (holes -1, disp DUPLICATE): one query
 * finds which of them fall in a recorded hole; those are taken out of their holes one by
 * one, in arrival order (a second copy of one in the group then finds no hole left) and
 * written; the others stay duplicates. */
static ww_store_rc_t s_late(ww_store_t *self, ww_store_item_t *items, size_t n)
{
    s_buf_t ids = {0}, epochs = {0}, seqs = {0};
    bool first = true;
    s_buf_str(&ids, "{");
    s_buf_str(&epochs, "{");
    s_buf_str(&seqs, "{");
    for (size_t i = 0; i < n; i++) {
        if (items[i].kind == WW_ITEM_BATCH && items[i].holes < 0) {
            s_buf_array_elem(&ids, items[i].agent_id, first);
            s_buf_array_num(&epochs, (long long)items[i].epoch, first);
            s_buf_array_num(&seqs, (long long)items[i].seq, first);
            first = false;
        }
    }
    s_buf_str(&ids, "}");
    s_buf_str(&epochs, "}");
    s_buf_str(&seqs, "}");
    PGresult *r = NULL;
    ww_store_rc_t rc = WW_STORE_RETRY;
    if (!ids.oom && !epochs.oom && !seqs.oom) {
        const char *params[] = {ids.s, epochs.s, seqs.s};
        rc = s_exec(self,
                    "SELECT DISTINCT u.i FROM unnest($1::text[], $2::bigint[], $3::bigint[])"
                    " WITH ORDINALITY AS u(a, e, q, i) JOIN stream_holes h ON h.agent_id = u.a"
                    " AND h.epoch = u.e AND h.first_seq <= u.q AND h.last_seq >= u.q",
                    3, params, &r, "looking up stream holes");
    }
    free(ids.s);
    free(epochs.s);
    free(seqs.s);
    size_t nl = 0;
    for (size_t i = 0; i < n && rc == WW_STORE_OK; i++) {
        ww_store_item_t *it = &items[i];
        if (it->kind != WW_ITEM_BATCH || it->holes >= 0) {
            continue;
        }
        it->holes = 0;
        nl++;
        bool candidate = false;
        for (int t = 0; t < PQntuples(r) && !candidate; t++) {
            candidate = strtoull(PQgetvalue(r, t, 0), NULL, 10) == nl;
        }
        bool filled = false;
        if (candidate) {
            rc = s_hole_fill(self, it, &filled);
        }
        if (filled) {
            it->disp = WW_DISP_WRITTEN;
            it->holes = -1;
            WW_INFO("stream %s/%016llx: seq %llu arrived late, written into its hole", it->agent_id,
                    (unsigned long long)it->epoch, (unsigned long long)it->seq);
        }
    }
    PQclear(r);
    return rc;
}

/* Reads the progress of every stream in the group, locking the rows, and classifies each
 * sequenced item. */
static ww_store_rc_t s_sequence(ww_store_t *self, ww_store_item_t *items, size_t n, uint64_t *gaps)
{
    s_buf_t ids = {0}, epochs = {0};
    bool first = true;
    s_buf_str(&ids, "{");
    s_buf_str(&epochs, "{");
    for (size_t i = 0; i < n; i++) {
        if (items[i].kind != WW_ITEM_BATCH) {
            continue;
        }
        s_buf_array_elem(&ids, items[i].agent_id, first);
        s_buf_array_num(&epochs, (long long)items[i].epoch, first);
        first = false;
    }
    s_buf_str(&ids, "}");
    s_buf_str(&epochs, "}");
    if (first) {
        free(ids.s);
        free(epochs.s);
        return WW_STORE_OK;
    }
    PGresult *r = NULL;
    ww_store_rc_t rc = WW_STORE_RETRY;
    if (!ids.oom && !epochs.oom) {
        const char *params[] = {ids.s, epochs.s};
        /* A stream seen for the first time gets its row now, so that the row lock below
         * also covers it: two collectors receiving a new stream's first batches at once
         * serialize here instead of both writing them. */
        rc = s_exec(self,
                    "INSERT INTO streams (agent_id, epoch, last_seq)"
                    " SELECT DISTINCT a, e, 0 FROM unnest($1::text[], $2::bigint[]) AS u(a, e)"
                    " ORDER BY 1, 2 ON CONFLICT (agent_id, epoch) DO NOTHING",
                    2, params, NULL, "registering new streams");
    }
    if (rc == WW_STORE_OK) {
        const char *params[] = {ids.s, epochs.s};
        /* Sorted so that concurrent collectors lock rows in the same order. */
        rc = s_exec(self,
                    "SELECT s.agent_id, s.epoch, s.last_seq, s.lost_batches FROM streams s"
                    " JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::bigint[]) AS u(a, e)) u"
                    " ON s.agent_id = u.a AND s.epoch = u.e"
                    " ORDER BY s.agent_id, s.epoch FOR UPDATE OF s",
                    2, params, &r, "reading stream progress");
    }
    free(ids.s);
    free(epochs.s);
    if (rc != WW_STORE_OK) {
        return rc;
    }
    /* Walk the items in arrival order against a local copy of each stream's progress. */
    int nt = PQntuples(r);
    uint64_t *last = calloc((size_t)nt + n, sizeof *last);
    const char **last_id = calloc((size_t)nt + n, sizeof *last_id);
    uint64_t *last_epoch = calloc((size_t)nt + n, sizeof *last_epoch);
    int64_t *lost = calloc((size_t)nt + n, sizeof *lost);
    if (!last || !last_id || !last_epoch || !lost) {
        free(last);
        free(last_id);
        free(last_epoch);
        free(lost);
        PQclear(r);
        return WW_STORE_RETRY;
    }
    size_t ns = 0;
    for (int t = 0; t < nt; t++, ns++) {
        last_id[ns] = PQgetvalue(r, t, 0);
        last_epoch[ns] = (uint64_t)strtoll(PQgetvalue(r, t, 1), NULL, 10);
        last[ns] = (uint64_t)strtoll(PQgetvalue(r, t, 2), NULL, 10);
        lost[ns] = strtoll(PQgetvalue(r, t, 3), NULL, 10);
    }
    rc = WW_STORE_OK;
    size_t late = 0; /* items at or below their stream's progress, in a stream with holes */
    for (size_t i = 0; i < n && rc == WW_STORE_OK; i++) {
        ww_store_item_t *it = &items[i];
        if (it->kind != WW_ITEM_BATCH) {
            continue;
        }
        size_t k = 0;
        while (k < ns && !(last_epoch[k] == it->epoch && strcmp(last_id[k], it->agent_id) == 0)) {
            k++;
        }
        if (k == ns) { /* a stream seen for the first time */
            last_id[ns] = it->agent_id;
            last_epoch[ns] = it->epoch;
            last[ns++] = 0;
        }
        it->holes = 0;
        if (it->seq <= last[k]) {
            /* A replay, or a batch that arrives after later ones did: decided below, after
             * one look at the holes of all such items (replays are common, one statement
             * each would slow a replay storm down). */
            it->disp = WW_DISP_DUPLICATE;
            late += lost[k] > 0;
            it->holes = lost[k] > 0 ? -1 : 0; /* -1: to look up */
            continue;
        }
        if (it->seq > last[k] + 1) {
            /* Skipped seqs: the agent dropped them (policy drop_oldest) or they will come
             * late. A stream seen for the first time starts at 1, so a first batch above 1
             * also counts the ones before it. */
            it->holes = (int64_t)(it->seq - last[k] - 1);
            WW_WARN("stream %s/%016llx: %llu batches missing before seq %llu (dropped by "
                    "the agent, or late)",
                    it->agent_id, (unsigned long long)it->epoch,
                    (unsigned long long)(it->seq - last[k] - 1), (unsigned long long)it->seq);
            *gaps += it->seq - last[k] - 1;
            lost[k] += it->holes;
            rc = s_hole_add(self, it, last[k] + 1, it->seq - 1);
        }
        it->disp = WW_DISP_WRITTEN;
        last[k] = it->seq;
    }
    if (rc == WW_STORE_OK && late > 0) {
        rc = s_late(self, items, n);
    }
    free(lost);
    free(last);
    free(last_id);
    free(last_epoch);
    PQclear(r);
    return rc;
}

/* Writes the new progress of every stream that moved. */
static ww_store_rc_t s_progress(ww_store_t *self, ww_store_item_t *items, size_t n)
{
    s_buf_t ids = {0}, epochs = {0}, seqs = {0}, holes = {0};
    bool first = true;
    s_buf_str(&ids, "{");
    s_buf_str(&epochs, "{");
    s_buf_str(&seqs, "{");
    s_buf_str(&holes, "{");
    for (size_t i = 0; i < n; i++) {
        if (items[i].kind != WW_ITEM_BATCH || items[i].disp != WW_DISP_WRITTEN) {
            continue;
        }
        s_buf_array_elem(&ids, items[i].agent_id, first);
        s_buf_array_num(&epochs, (long long)items[i].epoch, first);
        s_buf_array_num(&seqs, (long long)items[i].seq, first);
        s_buf_array_num(&holes, (long long)items[i].holes, first);
        first = false;
    }
    s_buf_str(&ids, "}");
    s_buf_str(&epochs, "}");
    s_buf_str(&seqs, "}");
    s_buf_str(&holes, "}");
    ww_store_rc_t rc = WW_STORE_OK;
    if (ids.oom || epochs.oom || seqs.oom || holes.oom) {
        rc = WW_STORE_RETRY;
    } else if (!first) {
        const char *params[] = {ids.s, epochs.s, seqs.s, holes.s};
        rc = s_exec(self,
                    "INSERT INTO streams AS s (agent_id, epoch, last_seq, lost_batches)"
                    " SELECT a, e, max(q), sum(h) FROM unnest($1::text[], $2::bigint[],"
                    " $3::bigint[], $4::bigint[]) AS u(a, e, q, h) GROUP BY a, e"
                    " ON CONFLICT (agent_id, epoch) DO UPDATE"
                    " SET last_seq = greatest(s.last_seq, EXCLUDED.last_seq),"
                    " lost_batches = s.lost_batches + EXCLUDED.lost_batches, updated_at = now()",
                    4, params, NULL, "writing stream progress");
    }
    free(ids.s);
    free(epochs.s);
    free(seqs.s);
    free(holes.s);
    return rc;
}

/* Records the loss counters carried by the written batches (highest value wins). */
static ww_store_rc_t s_losses(ww_store_t *self, ww_store_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const ww_store_item_t *it = &items[i];
        if (it->kind != WW_ITEM_BATCH || it->disp != WW_DISP_WRITTEN || !it->env->batch->loss) {
            continue;
        }
        const Waferwatch__V1__SpoolLoss *l = it->env->batch->loss;
        char epoch[32], dropped[32], corrupt[32], skipped[32];
        snprintf(epoch, sizeof epoch, "%lld", (long long)it->epoch);
        snprintf(dropped, sizeof dropped, "%llu", (unsigned long long)l->dropped_batches);
        snprintf(corrupt, sizeof corrupt, "%llu", (unsigned long long)l->corrupt_records);
        snprintf(skipped, sizeof skipped, "%llu", (unsigned long long)l->skipped_ticks);
        const char *params[] = {it->agent_id, epoch, dropped, corrupt, skipped};
        ww_store_rc_t rc = s_exec(
            self,
            "INSERT INTO stream_losses AS l (agent_id, epoch, dropped_batches, corrupt_records,"
            " skipped_ticks) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (agent_id, epoch) DO UPDATE SET"
            " dropped_batches = greatest(l.dropped_batches, EXCLUDED.dropped_batches),"
            " corrupt_records = greatest(l.corrupt_records, EXCLUDED.corrupt_records),"
            " skipped_ticks = greatest(l.skipped_ticks, EXCLUDED.skipped_ticks),"
            " updated_at = now()",
            5, params, NULL, "recording stream losses");
        if (rc != WW_STORE_OK) {
            return rc;
        }
    }
    return WW_STORE_OK;
}

/* Records the outages the written batches report (a resent report is a duplicate batch,
 * and the key (agent_id, epoch, to_time) keeps one row should a new run repeat it). */
static ww_store_rc_t s_outages(ww_store_t *self, ww_store_item_t *items, size_t n,
                               uint64_t *recorded)
{
    *recorded = 0;
    for (size_t i = 0; i < n; i++) {
        const ww_store_item_t *it = &items[i];
        if (it->kind != WW_ITEM_BATCH || it->disp != WW_DISP_WRITTEN) {
            continue;
        }
        const ww_batch_t *b = it->env->batch;
        for (size_t k = 0; k < b->n_outages; k++) {
            const Waferwatch__V1__Outage *o = b->outages[k];
            char epoch[24], from[24], to[24], ticks[24], reqs[24];
            snprintf(epoch, sizeof epoch, "%lld", (long long)it->epoch);
            snprintf(from, sizeof from, "%lld", (long long)ww_store_pg_time(o->from_ns));
            snprintf(to, sizeof to, "%lld", (long long)ww_store_pg_time(o->to_ns));
            snprintf(ticks, sizeof ticks, "%llu", (unsigned long long)o->lost_ticks);
            snprintf(reqs, sizeof reqs, "%llu", (unsigned long long)o->lost_requests);
            const char *params[] = {it->agent_id,
                                    epoch,
                                    o->from_ns > 0 ? from : NULL,
                                    to,
                                    ticks,
                                    reqs,
                                    o->cause && *o->cause ? o->cause : "crash"};
            /* Times travel as microseconds since 2000-01-01, PostgreSQL's epoch. */
            ww_store_rc_t rc = s_exec(
                self,
                "INSERT INTO stream_outages (agent_id, epoch, from_time, to_time, lost_ticks,"
                " lost_requests, cause)"
                " VALUES ($1, $2, timestamptz '2000-01-01 UTC' + $3::bigint * interval '1 us',"
                " timestamptz '2000-01-01 UTC' + $4::bigint * interval '1 us', $5, $6, $7)"
                " ON CONFLICT (agent_id, epoch, to_time) DO NOTHING",
                7, params, NULL, "recording an outage");
            if (rc != WW_STORE_OK) {
                return rc;
            }
            WW_INFO("stream %s/%016llx: agent was down %.1f s (%s), %llu ticks and %llu "
                    "requests lost",
                    it->agent_id, (unsigned long long)it->epoch,
                    o->from_ns > 0 ? (double)(o->to_ns - o->from_ns) / 1e9 : 0.0,
                    o->cause && *o->cause ? o->cause : "crash", (unsigned long long)o->lost_ticks,
                    (unsigned long long)o->lost_requests);
            (*recorded)++;
        }
    }
    return WW_STORE_OK;
}

/* Upserts the labels of every node of a Hello with one statement (a fleet agent speaks
 * for thousands of nodes) and caches their phases for the rollups. */
static ww_store_rc_t s_hello(ww_store_t *self, const ww_store_item_t *it)
{
    const ww_hello_t *h = it->env->hello;
    if (h->n_nodes == 0) {
        return WW_STORE_OK;
    }
    s_buf_t a[7] = {{0}};
    for (int k = 0; k < 7; k++) {
        s_buf_str(&a[k], "{");
    }
    char rated[64];
    for (size_t i = 0; i < h->n_nodes; i++) {
        const ww_node_info_t *ni = h->nodes[i];
        snprintf(rated, sizeof rated, "%.17g", ni->rated_kw);
        const char *v[7] = {ni->node_id, ni->site,         ni->hall, ni->rack,
                            ni->phase,   ni->system_model, rated};
        for (int k = 0; k < 7; k++) {
            s_buf_array_elem(&a[k], v[k] ? v[k] : "", i == 0);
        }
    }
    bool oom = false;
    for (int k = 0; k < 7; k++) {
        s_buf_str(&a[k], "}");
        oom = oom || a[k].oom;
    }
    ww_store_rc_t rc = WW_STORE_RETRY;
    if (!oom) {
        char interval[32];
        snprintf(interval, sizeof interval, "%u", h->interval_ms);
        const char *params[] = {a[0].s, a[1].s,       a[2].s,           a[3].s,    a[4].s,  a[5].s,
                                a[6].s, it->agent_id, h->agent_version, h->source, interval};
        /* Sorted, so that two collectors upserting overlapping nodes lock them in the
         * same order. */
        rc = s_exec(
            self,
            "INSERT INTO nodes AS n (node_id, agent_id, site, hall, rack, phase, system_model,"
            " rated_kw, agent_version, source, interval_ms)"
            " SELECT DISTINCT ON (u.id) u.id, $8, u.site, u.hall, u.rack, u.phase, u.model,"
            " u.rated, $9, $10, $11"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
            " $6::text[], $7::double precision[]) AS u(id, site, hall, rack, phase, model, rated)"
            " ORDER BY u.id"
            " ON CONFLICT (node_id) DO UPDATE SET agent_id = EXCLUDED.agent_id,"
            " site = EXCLUDED.site, hall = EXCLUDED.hall, rack = EXCLUDED.rack,"
            " phase = EXCLUDED.phase, system_model = EXCLUDED.system_model,"
            " rated_kw = EXCLUDED.rated_kw, agent_version = EXCLUDED.agent_version,"
            " source = EXCLUDED.source, interval_ms = EXCLUDED.interval_ms, last_hello = now()",
            11, params, NULL, "writing node labels");
    }
    for (int k = 0; k < 7; k++) {
        free(a[k].s);
    }
    for (size_t i = 0; rc == WW_STORE_OK && i < h->n_nodes; i++) {
        s_phase_put(&self->phases, h->nodes[i]->node_id, h->nodes[i]->phase);
    }
    return rc;
}

/* Appends text as an array element, keeping printable ASCII only: reasons quote what a
 * peer sent, and must never make the INSERT itself fail. */
static void s_buf_array_text(s_buf_t *b, const char *text, bool first)
{
    char clean[512];
    size_t n = 0;
    for (const char *p = text ? text : ""; *p && n < sizeof clean - 1; p++) {
        unsigned char c = (unsigned char)*p;
        clean[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    clean[n] = '\0';
    s_buf_array_elem(b, clean, first);
}

/* The five arrays of an INSERT into ingest_rejects. */
typedef struct {
    s_buf_t ids, epochs, seqs, codes, reasons;
    bool first;
} s_rejects_t;

/* Appends one reject row. epoch 0: not known (NULL); a seq above INT64_MAX is NULL too
 * (bigint cannot hold it; the reason says it). */
static void s_reject_row(s_rejects_t *rj, const ww_store_item_t *it, const char *code,
                         const char *reason)
{
    bool first = rj->first;
    s_buf_array_text(&rj->ids, it->agent_id, first);
    if (it->epoch != 0) {
        s_buf_array_num(&rj->epochs, (long long)it->epoch, first);
    } else {
        s_buf_str(&rj->epochs, first ? "NULL" : ",NULL");
    }
    if (it->epoch != 0 && it->seq <= (uint64_t)INT64_MAX) {
        s_buf_array_num(&rj->seqs, (long long)it->seq, first);
    } else {
        s_buf_str(&rj->seqs, first ? "NULL" : ",NULL");
    }
    s_buf_array_text(&rj->codes, code, first);
    s_buf_array_text(&rj->reasons, reason, first);
    rj->first = false;
}

/* One row per sample a batch had refused (its reasons are lines of bad_reason), and one
 * that counts those past WW_STORE_MAX_SAMPLE_REJECTS. Recorded at every receipt, like a
 * refused message (a resent batch again). */
static void s_reject_samples(s_rejects_t *rj, const ww_store_item_t *it)
{
    const char *p = it->bad_reason ? it->bad_reason : "";
    uint32_t rows = 0;
    char line[400];
    while (*p && rows < it->bad_samples) {
        size_t len = strcspn(p, "\n");
        snprintf(line, sizeof line, "sample refused, the batch written without it: %.*s",
                 (int)(len < 340 ? len : 340), p);
        s_reject_row(rj, it, "implausible_sample", line);
        rows++;
        p += len + (p[len] == '\n');
    }
    if (it->bad_samples > rows) {
        snprintf(line, sizeof line,
                 "%u more samples refused (not recorded one by one), the batch written "
                 "without them",
                 it->bad_samples - rows);
        s_reject_row(rj, it, "implausible_sample", line);
    }
}

/* Records every refused message and sample of the group with one INSERT. */
static ww_store_rc_t s_rejects(ww_store_t *self, ww_store_item_t *items, size_t n)
{
    s_rejects_t rj = {.first = true};
    s_buf_t *all[] = {&rj.ids, &rj.epochs, &rj.seqs, &rj.codes, &rj.reasons};
    for (size_t k = 0; k < 5; k++) {
        s_buf_str(all[k], "{");
    }
    for (size_t i = 0; i < n; i++) {
        const ww_store_item_t *it = &items[i];
        if (it->kind == WW_ITEM_BATCH && it->bad_samples > 0) {
            s_reject_samples(&rj, it);
        } else if (it->kind == WW_ITEM_REJECT) {
            s_reject_row(&rj, it, it->reject_code, it->reject_reason);
        }
    }
    ww_store_rc_t rc = WW_STORE_OK;
    bool oom = false;
    for (size_t k = 0; k < 5; k++) {
        s_buf_str(all[k], "}");
        oom = oom || all[k]->oom;
    }
    if (oom) {
        rc = WW_STORE_RETRY;
    } else if (!rj.first) {
        const char *params[] = {rj.ids.s, rj.epochs.s, rj.seqs.s, rj.codes.s, rj.reasons.s};
        rc = s_exec(self,
                    "INSERT INTO ingest_rejects (agent_id, epoch, seq, code, reason)"
                    " SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[],"
                    " $5::text[])",
                    5, params, NULL, "recording refused messages");
    }
    for (size_t k = 0; k < 5; k++) {
        free(all[k]->s);
    }
    return rc;
}

typedef struct {
    uint64_t rows, gaps, windows, parts, outages;
} s_tx_counts_t;

/* One try at the group's transaction, up to and including COMMIT. */
static ww_store_rc_t s_write_tx(ww_store_t *self, ww_store_item_t *items, size_t n,
                                s_tx_counts_t *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < n; i++) {
        items[i].disp = WW_DISP_NONE;
        items[i].committed = false;
    }
    ww_store_rc_t rc = s_exec(self, "BEGIN", 0, NULL, NULL, "BEGIN");
    if (rc == WW_STORE_OK) {
        rc = s_sequence(self, items, n, &c->gaps);
    }
    /* Hellos first: the rollups read each node's phase from nodes. */
    for (size_t i = 0; i < n && rc == WW_STORE_OK; i++) {
        if (items[i].kind == WW_ITEM_HELLO) {
            rc = s_hello(self, &items[i]);
        }
    }
    if (rc == WW_STORE_OK) {
        rc = s_copy_rows(self, items, n, &c->rows);
    }
    if (rc == WW_STORE_OK) {
        rc = s_copy_latency(self, items, n, &c->windows, &c->parts);
    }
    if (rc == WW_STORE_OK) {
        rc = s_outages(self, items, n, &c->outages);
    }
    if (rc == WW_STORE_OK) {
        rc = s_progress(self, items, n);
    }
    if (rc == WW_STORE_OK) {
        rc = s_losses(self, items, n);
    }
    if (rc == WW_STORE_OK) {
        rc = s_rejects(self, items, n);
    }
    if (rc == WW_STORE_OK) {
        rc = s_exec(self, "COMMIT", 0, NULL, NULL, "COMMIT");
    }
    if (rc != WW_STORE_OK) {
        if (self->conn) {
            PQclear(PQexec(self->conn, "ROLLBACK"));
        }
        for (size_t i = 0; i < n; i++) {
            items[i].disp = WW_DISP_NONE;
        }
    }
    return rc;
}

ww_store_rc_t ww_store_write(ww_store_t *self, ww_store_item_t *items, size_t n)
{
    if (ww_store_ensure(self, 1) < 0) {
        return WW_STORE_RETRY;
    }
    s_tx_counts_t c;
    self->merge = false;
    self->key_conflict = false;
    ww_store_rc_t rc = s_write_tx(self, items, n, &c);
    if (rc == WW_STORE_REJECT && self->key_conflict) {
        self->merge = true; /* a second part of a window: redo, merging it */
        rc = s_write_tx(self, items, n, &c);
    }
    if (rc != WW_STORE_OK) {
        self->st.retries++;
        return rc;
    }
    uint64_t rows = c.rows, gaps = c.gaps, windows = c.windows, parts = c.parts;
    uint64_t outages = c.outages;
    self->st.transactions++;
    self->st.rows += rows;
    self->st.windows += windows;
    self->st.gaps += gaps;
    self->st.window_parts += parts;
    self->st.outages += outages;
    int64_t now = ww_time_now_ns();
    for (size_t i = 0; i < n; i++) {
        items[i].committed = true;
        if (items[i].disp == WW_DISP_WRITTEN && items[i].env->batch->n_samples > 0) {
            double d = (double)(now - items[i].env->batch->samples[0]->time_ns) / 1e9;
            ww_hist_record(&self->delay, d > 0 ? d : 0);
        }
        self->st.duplicates += items[i].disp == WW_DISP_DUPLICATE;
        self->st.late += items[i].kind == WW_ITEM_BATCH && items[i].holes < 0;
        self->st.rejects += items[i].kind == WW_ITEM_REJECT;
        self->st.implausible_samples += items[i].kind == WW_ITEM_BATCH ? items[i].bad_samples : 0;
    }
    return WW_STORE_OK;
}

void ww_store_stats(const ww_store_t *self, ww_store_stats_t *out)
{
    *out = self->st;
}

double ww_store_delay_quantile(const ww_store_t *self, double q)
{
    return ww_hist_quantile(&self->delay, q);
}
