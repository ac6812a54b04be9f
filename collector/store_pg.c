/* store_pg: see store_pg.h. */
#define WW_LOG_MODULE "store"
#include "store_pg.h"

#include "migrate.h"
#include "ww_hist_wire.h"
#include "ww_log.h"
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
    ww_store_stats_t st;
};

typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
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
        WW_COMPLAIN(&self->conn_fail, "cannot connect to PostgreSQL: %s (retrying)", msg);
        s_disconnect(self);
        return -ECONNREFUSED;
    }
    PQsetNoticeProcessor(self->conn, s_notice, NULL);
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
    /* The rollup rows merged here pass through a per-session staging table on their way
     * into the upsert. */
    PGresult *tr = PQexec(self->conn, "CREATE TEMP TABLE IF NOT EXISTS ww_stage_rollup"
                                      " (LIKE latency_rollup_1m) ON COMMIT DELETE ROWS");
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
        WW_ERROR("cannot connect to PostgreSQL: %.*s",
                 (int)strcspn(PQerrorMessage(self->conn), "\n"), PQerrorMessage(self->conn));
        s_disconnect(self);
        return -ECONNREFUSED;
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
    /* Counts are uint32 on the wire; PostgreSQL integer is signed: clamp. */
    s_put32(b, 4);
    s_put32(b, v > INT32_MAX ? (uint32_t)INT32_MAX : v);
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
            rc = s_classify(self, r, what);
        }
        PQclear(r);
    }
    return rc;
}

static ww_store_rc_t s_copy_rows(ww_store_t *self, ww_store_item_t *items, size_t n, uint64_t *rows)
{
    s_buf_t b = {self->copy, 0, self->copy_cap, false};
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
    s_put32(b, 8);
    s_put64(b, v > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : v);
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
 * of the two scales. */
static int s_rollup_add(ww_store_t *self, const Waferwatch__V1__LatencyWindow *w)
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
        r->windows = r->ok = r->error = r->timeout = r->rejected = 0;
        r->prompt_tokens = r->output_tokens = 0;
    }
    const Waferwatch__V1__Histogram *src[4] = {w->queue, w->ttft, w->tpot, w->e2e};
    for (int k = 0; k < 4; k++) {
        const Waferwatch__V1__Histogram *pb = src[k] ? src[k] : &empty;
        ww_hist_t h;
        /* Already validated on receipt: this only rebuilds the dense form. */
        int rc = ww_hist_from_pb(pb, &h, WW_HIST_WIRE_MAX_BUCKETS, NULL, "");
        if (rc == 0 && r->windows == 0) {
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
    r->windows++;
    r->ok += w->requests_ok;
    r->error += w->requests_error;
    r->timeout += w->requests_timeout;
    r->rejected += w->requests_rejected;
    r->prompt_tokens += w->prompt_tokens;
    r->output_tokens += w->output_tokens;
    return 0;
}

/* Latency windows of the written batches: one COPY into latency_windows, and their
 * per-minute rollups per (phase, model) merged here and upserted, all in the caller's
 * transaction. */
static ww_store_rc_t s_copy_latency(ww_store_t *self, ww_store_item_t *items, size_t n,
                                    uint64_t *windows)
{
    ww_store_rc_t rc = s_resolve_phases(self, items, n);
    if (rc != WW_STORE_OK) {
        return rc;
    }
    s_buf_t b = {self->copy, 0, self->copy_cap, false};
    s_copy_header(&b);
    *windows = 0;
    self->n_rollups = 0;
    bool oom = false;
    for (size_t i = 0; i < n; i++) {
        if (items[i].kind != WW_ITEM_BATCH || items[i].disp != WW_DISP_WRITTEN) {
            continue;
        }
        const ww_batch_t *batch = items[i].env->batch;
        for (size_t k = 0; k < batch->n_latency_windows; k++) {
            s_copy_window(&b, batch->latency_windows[k]);
            oom = oom || s_rollup_add(self, batch->latency_windows[k]) < 0;
        }
        *windows += batch->n_latency_windows;
    }
    s_put16(&b, 0xffff);
    self->copy = b.s;
    self->copy_cap = b.cap;
    if (b.oom || oom) {
        WW_ERROR("out of memory building a COPY of %llu latency windows",
                 (unsigned long long)*windows);
        return WW_STORE_RETRY;
    }
    if (*windows == 0) {
        return WW_STORE_OK;
    }
    rc =
        s_copy_run(self, "COPY latency_windows (" WW_LATENCY_COLUMNS ") FROM STDIN (FORMAT binary)",
                   &b, "COPY latency windows");
    if (rc != WW_STORE_OK) {
        return rc;
    }
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
    rc = s_copy_run(self, "COPY ww_stage_rollup FROM STDIN (FORMAT binary)", &b,
                    "COPY latency rollups");
    if (rc == WW_STORE_OK) {
        rc = s_exec(self, WW_ROLLUP_SQL, 0, NULL, NULL, "updating latency rollups");
    }
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
                    "SELECT s.agent_id, s.epoch, s.last_seq FROM streams s"
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
    if (!last || !last_id || !last_epoch) {
        free(last);
        free(last_id);
        free(last_epoch);
        PQclear(r);
        return WW_STORE_RETRY;
    }
    size_t ns = 0;
    for (int t = 0; t < nt; t++, ns++) {
        last_id[ns] = PQgetvalue(r, t, 0);
        last_epoch[ns] = (uint64_t)strtoll(PQgetvalue(r, t, 1), NULL, 10);
        last[ns] = (uint64_t)strtoll(PQgetvalue(r, t, 2), NULL, 10);
    }
    for (size_t i = 0; i < n; i++) {
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
        if (it->seq <= last[k]) {
            it->disp = WW_DISP_DUPLICATE;
            continue;
        }
        it->holes = 0;
        if (it->seq > last[k] + 1) {
            /* The agent skips a sequence number only when its spool dropped that batch
             * (policy drop_oldest); nothing will fill the hole. A stream seen for the first
             * time starts at 1, so a first batch above 1 also counts the ones before it. */
            it->holes = it->seq - last[k] - 1;
            WW_WARN("stream %s/%016llx: %llu batches missing before seq %llu (dropped by "
                    "the agent)",
                    it->agent_id, (unsigned long long)it->epoch,
                    (unsigned long long)(it->seq - last[k] - 1), (unsigned long long)it->seq);
            *gaps += it->seq - last[k] - 1;
        }
        it->disp = WW_DISP_WRITTEN;
        last[k] = it->seq;
    }
    free(last);
    free(last_id);
    free(last_epoch);
    PQclear(r);
    return WW_STORE_OK;
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

/* Records every refused message of the group with one INSERT. */
static ww_store_rc_t s_rejects(ww_store_t *self, ww_store_item_t *items, size_t n)
{
    s_buf_t ids = {0}, epochs = {0}, seqs = {0}, codes = {0}, reasons = {0};
    bool first = true;
    s_buf_t *all[] = {&ids, &epochs, &seqs, &codes, &reasons};
    for (size_t k = 0; k < 5; k++) {
        s_buf_str(all[k], "{");
    }
    char bad[400];
    for (size_t i = 0; i < n; i++) {
        const ww_store_item_t *it = &items[i];
        const char *code = it->reject_code, *reason = it->reject_reason;
        if (it->kind == WW_ITEM_BATCH && it->bad_samples > 0) {
            /* Recorded at every receipt, like a refused message (a resent batch again). */
            snprintf(bad, sizeof bad,
                     "%u samples refused, the batch written without them; "
                     "first: %s",
                     it->bad_samples, it->bad_reason ? it->bad_reason : "");
            code = "implausible_sample";
            reason = bad;
        } else if (it->kind != WW_ITEM_REJECT) {
            continue;
        }
        s_buf_array_text(&ids, it->agent_id, first);
        if (it->seq) {
            s_buf_array_num(&epochs, (long long)it->epoch, first);
            s_buf_array_num(&seqs, (long long)it->seq, first);
        } else {
            s_buf_str(&epochs, first ? "NULL" : ",NULL");
            s_buf_str(&seqs, first ? "NULL" : ",NULL");
        }
        s_buf_array_text(&codes, code, first);
        s_buf_array_text(&reasons, reason, first);
        first = false;
    }
    ww_store_rc_t rc = WW_STORE_OK;
    bool oom = false;
    for (size_t k = 0; k < 5; k++) {
        s_buf_str(all[k], "}");
        oom = oom || all[k]->oom;
    }
    if (oom) {
        rc = WW_STORE_RETRY;
    } else if (!first) {
        const char *params[] = {ids.s, epochs.s, seqs.s, codes.s, reasons.s};
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

ww_store_rc_t ww_store_write(ww_store_t *self, ww_store_item_t *items, size_t n)
{
    if (ww_store_ensure(self, 1) < 0) {
        return WW_STORE_RETRY;
    }
    for (size_t i = 0; i < n; i++) {
        items[i].disp = WW_DISP_NONE;
        items[i].committed = false;
    }
    uint64_t rows = 0, gaps = 0, windows = 0;
    ww_store_rc_t rc = s_exec(self, "BEGIN", 0, NULL, NULL, "BEGIN");
    if (rc == WW_STORE_OK) {
        rc = s_sequence(self, items, n, &gaps);
    }
    /* Hellos first: the rollups read each node's phase from nodes. */
    for (size_t i = 0; i < n && rc == WW_STORE_OK; i++) {
        if (items[i].kind == WW_ITEM_HELLO) {
            rc = s_hello(self, &items[i]);
        }
    }
    if (rc == WW_STORE_OK) {
        rc = s_copy_rows(self, items, n, &rows);
    }
    if (rc == WW_STORE_OK) {
        rc = s_copy_latency(self, items, n, &windows);
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
        self->st.retries++;
        for (size_t i = 0; i < n; i++) {
            items[i].disp = WW_DISP_NONE;
        }
        return rc;
    }
    self->st.transactions++;
    self->st.rows += rows;
    self->st.windows += windows;
    self->st.gaps += gaps;
    int64_t now = ww_time_now_ns();
    for (size_t i = 0; i < n; i++) {
        items[i].committed = true;
        if (items[i].disp == WW_DISP_WRITTEN && items[i].env->batch->n_samples > 0) {
            double d = (double)(now - items[i].env->batch->samples[0]->time_ns) / 1e9;
            ww_hist_record(&self->delay, d > 0 ? d : 0);
        }
        self->st.duplicates += items[i].disp == WW_DISP_DUPLICATE;
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
