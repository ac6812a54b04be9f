/* store_pg: see ww_store.h. The binary COPY encoding is ww_copy, the per-minute latency
 * rollups ww_rollup, the connect-time and periodic housekeeping ww_maint; this file holds
 * the connection and the write transaction. */
#define WW_LOG_MODULE "store"
#include "ww_store.h"

#include "ww_buf.h"
#include "ww_copy.h"
#include "ww_late.h"
#include "ww_log.h"
#include "ww_maint.h"
#include "ww_migrate.h"
#include "ww_rollup.h"
#include "ww_time.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ww_store {
    char *conninfo;
    PGconn *conn;
    bool migrated;
    ww_complain_t conn_fail;
    ww_copy_t copy;     /* reused for every COPY */
    ww_rollup_t rollup; /* the rollups of the write under way, and the phase cache */
    ww_late_t late;     /* the late buckets of the write under way (storage tiers) */
    ww_hist_t delay;    /* sample-to-commit delay of each written batch, seconds */
    int retention_raw_days, retention_rollup_days; /* 0: keep */
    bool fleet;                                    /* a fleet database: ww_store_set_fleet */
    int64_t fleet_tier_days[3];
    /* Latency windows go straight into latency_windows by COPY (the common case: ~40% less
     * work than staging them); a window whose key is stored already (a second part) makes
     * that COPY fail with unique_violation, and the transaction is redone with merge set:
     * staged, and merged by INSERT ... ON CONFLICT. */
    bool merge;        /* this try stages and merges */
    bool fast_copy;    /* the COPY under way is the direct one */
    bool key_conflict; /* ... and it met a stored key (SQLSTATE 23505) */
    bool copy_lost;    /* sending the COPY under way failed (the connection) */
    ww_store_stats_t st;
};

/* Appends v as one element of a PostgreSQL array literal (see ww_buf_pg_elem). */
static void s_buf_array_num(ww_buf_t *b, long long v, bool first)
{
    ww_buf_printf(b, "%s%lld", first ? "" : ",", v);
}

static void s_notice(void *arg, const char *message)
{
    WW_DEBUG("postgres: %.*s", (int)strcspn(message, "\n"), message);
}

int64_t ww_store_pg_time(int64_t unix_ns)
{
    return ww_copy_pg_time(unix_ns);
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
    ww_copy_fini(&self->copy);
    free(self->conninfo);
    ww_rollup_fini(&self->rollup);
    ww_late_fini(&self->late);
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

int ww_store_ping(ww_store_t *self)
{
    if (!self->conn) {
        return -ENOTCONN;
    }
    PGresult *r = PQexec(self->conn, "SELECT 1");
    int rc = PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : -EIO;
    PQclear(r);
    if (rc < 0) {
        const char *msg = PQerrorMessage(self->conn);
        WW_COMPLAIN(&self->conn_fail, "lost PostgreSQL: %.*s (reconnecting)",
                    (int)strcspn(msg, "\n"), msg);
        s_disconnect(self);
    }
    return rc;
}

void ww_store_forget_phases(ww_store_t *self)
{
    ww_rollup_forget_phases(&self->rollup);
}

int ww_store_maintain(ww_store_t *self)
{
    ww_store_forget_phases(self);
    if (!self->conn) {
        return -ENOTCONN;
    }
    return ww_maint_run(self->conn, self->retention_raw_days, self->retention_rollup_days,
                        self->fleet ? self->fleet_tier_days : NULL);
}

void ww_store_set_fleet(ww_store_t *self, const int64_t tier_days[3])
{
    self->fleet = true;
    memcpy(self->fleet_tier_days, tier_days, sizeof self->fleet_tier_days);
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
    int rc = ww_maint_session(self->conn, migrate, &self->migrated);
    if (rc < 0) {
        s_disconnect(self);
        return rc;
    }
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
    int v = ww_migrate_version(self->conn);
    if (v < 0) {
        WW_ERROR("cannot read the schema version: %s", PQerrorMessage(self->conn));
    }
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

/* COPYs are streamed: the rows go to the server in chunks as they are encoded, so that it
 * parses and indexes one chunk while the next is built (and, for latency windows, merged
 * into the rollups). Built whole first, the encoding and merging of a group left the
 * server idle meanwhile: a fifth of the machine in bench/fleet.sh's drain. */
#define S_COPY_CHUNK ((size_t)256 * 1024)

/* Starts COPY sql FROM STDIN of the stream in self->copy: its caller then encodes the rows
 * (from ww_copy_begin to ww_copy_end), sending them with s_copy_send as it goes. */
static ww_store_rc_t s_copy_start(ww_store_t *self, const char *sql, const char *what)
{
    PGresult *r = PQexec(self->conn, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        ww_store_rc_t rc = s_classify(self, r, what);
        PQclear(r);
        return rc;
    }
    PQclear(r);
    self->copy_lost = false;
    return WW_STORE_OK;
}

/* Sends what is encoded once it fills a chunk (all: whatever there is). Nothing is sent
 * after an allocation failed (the stream is incomplete: s_copy_finish aborts it). */
static void s_copy_send(ww_store_t *self, bool all)
{
    ww_buf_t *b = &self->copy.buf;
    if (b->oom || self->copy_lost || b->len == 0 || (!all && b->len < S_COPY_CHUNK)) {
        return;
    }
    if (PQputCopyData(self->conn, b->p, (int)b->len) != 1) {
        self->copy_lost = true; /* the connection: reported by s_copy_finish */
    }
    ww_buf_reset(b);
}

/* Sends the rest of the stream (ended by ww_copy_end), ends the COPY and reads its outcome.
 * A stream that could not be built whole (out of memory: retried; a value that does not fit
 * its column: refused; or what the caller found while building it: `built`, else
 * WW_STORE_OK) is aborted with CopyFail, so the server keeps none of it. */
static ww_store_rc_t s_copy_finish(ww_store_t *self, const char *what, ww_store_rc_t built)
{
    ww_store_rc_t rc = self->copy.buf.oom ? WW_STORE_RETRY
                       : self->copy.range ? WW_STORE_REJECT
                                          : built;
    s_copy_send(self, true);
    if (self->copy_lost ||
        PQputCopyEnd(self->conn, rc == WW_STORE_OK ? NULL : "not built whole") != 1) {
        return s_classify(self, NULL, what);
    }
    PGresult *r;
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
    *rows = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].kind == WW_ITEM_BATCH && items[i].disp == WW_DISP_WRITTEN) {
            *rows += items[i].env->batch->n_samples;
        }
    }
    if (*rows == 0) {
        return WW_STORE_OK;
    }
    const char *what = "COPY node_samples";
    ww_store_rc_t rc = s_copy_start(
        self, "COPY node_samples (" WW_SAMPLE_COLUMNS ") FROM STDIN (FORMAT binary)", what);
    if (rc != WW_STORE_OK) {
        return rc;
    }
    ww_copy_t *c = &self->copy;
    ww_copy_begin(c);
    for (size_t i = 0; i < n; i++) {
        if (items[i].kind != WW_ITEM_BATCH || items[i].disp != WW_DISP_WRITTEN) {
            continue;
        }
        const ww_batch_t *batch = items[i].env->batch;
        for (size_t k = 0; k < batch->n_samples; k++) {
            ww_copy_sample(c, batch->samples[k]);
            s_copy_send(self, false);
        }
    }
    ww_copy_end(c);
    if (c->buf.oom) {
        WW_ERROR("out of memory building a COPY of %llu rows", (unsigned long long)*rows);
    } else if (c->range) {
        WW_ERROR("a sample's count does not fit its integer column: refused, not clamped");
    }
    return s_copy_finish(self, what, WW_STORE_OK);
}

/* Makes sure the phase of every node with a window in the written batches is known: the
 * ones not cached are read from nodes in one query (their Hellos, if in this group, were
 * written and cached just before). A node that never said hello has phase and site ''. */
static ww_store_rc_t s_resolve_phases(ww_store_t *self, ww_store_item_t *items, size_t n)
{
    ww_buf_t ids = {0};
    bool first = true;
    const char *prev = NULL;
    ww_buf_puts(&ids, "{");
    for (size_t i = 0; i < n; i++) {
        if (items[i].kind != WW_ITEM_BATCH || items[i].disp != WW_DISP_WRITTEN) {
            continue;
        }
        const ww_batch_t *batch = items[i].env->batch;
        for (size_t k = 0; k < batch->n_latency_windows; k++) {
            const char *node = batch->latency_windows[k]->node_id;
            if ((prev && strcmp(prev, node) == 0) || ww_rollup_phase(&self->rollup, node)) {
                continue;
            }
            ww_buf_pg_elem(&ids, node, first);
            first = false;
            prev = node;
        }
    }
    ww_buf_puts(&ids, "}");
    ww_store_rc_t rc = ids.oom ? WW_STORE_RETRY : WW_STORE_OK;
    PGresult *r = NULL;
    if (rc == WW_STORE_OK && !first) {
        const char *params[] = {ids.p};
        rc = s_exec(self, "SELECT node_id, phase, site FROM nodes WHERE node_id = ANY($1::text[])",
                    1, params, &r, "reading node phases");
    }
    for (int t = 0; r && t < PQntuples(r); t++) {
        ww_rollup_set_phase(&self->rollup, PQgetvalue(r, t, 0), PQgetvalue(r, t, 1),
                            PQgetvalue(r, t, 2));
    }
    PQclear(r);
    free(ids.p);
    return rc;
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
    return (ww_rollup_hash(w->node_id) * 31 + ww_rollup_hash(w->model)) ^
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

/* Adds window i of the group to the rollups. */
static ww_store_rc_t s_rollup_add(ww_store_t *self, const s_win_t *w)
{
    int arc = ww_rollup_add(&self->rollup, w->w, w->part || w->round > 0);
    if (arc == -EOVERFLOW) {
        WW_ERROR("a latency rollup's sum would pass what bigint holds: refused");
        return WW_STORE_REJECT;
    }
    if (arc < 0) {
        WW_ERROR("out of memory merging latency rollups");
        return WW_STORE_RETRY;
    }
    return WW_STORE_OK;
}

/* Writes the windows of one round: straight into latency_windows by COPY, merging each
 * into the rollups as it goes (while the server takes the chunk before), or, when merge,
 * staged and moved into latency_windows by WW_WINDOWS_SQL, marking those merged into a
 * stored row (their rollups are the caller's: a part adds no window). */
static ww_store_rc_t s_windows_round(ww_store_t *self, s_win_t *v, size_t n, uint32_t round,
                                     bool merge)
{
    ww_store_rc_t rc = WW_STORE_OK;
    if (merge && round > 0) {
        rc = s_exec(self, "DELETE FROM ww_stage_windows", 0, NULL, NULL, "staging windows");
    }
    const char *what = "COPY latency windows";
    if (rc == WW_STORE_OK) {
        rc = s_copy_start(
            self,
            merge ? "COPY ww_stage_windows (" WW_LATENCY_COLUMNS ") FROM STDIN (FORMAT binary)"
                  : "COPY latency_windows (" WW_LATENCY_COLUMNS ") FROM STDIN (FORMAT binary)",
            what);
    }
    if (rc != WW_STORE_OK) {
        return rc;
    }
    ww_copy_t *c = &self->copy;
    ww_copy_begin(c);
    size_t staged = 0;
    ww_store_rc_t add = WW_STORE_OK;
    for (size_t i = 0; i < n; i++) {
        if (v[i].round == round) {
            ww_copy_window(c, v[i].w);
            staged++;
            if (!merge && add == WW_STORE_OK) {
                add = s_rollup_add(self, &v[i]);
            }
            s_copy_send(self, false);
        }
    }
    ww_copy_end(c);
    if (c->buf.oom) {
        WW_ERROR("out of memory building a COPY of %zu latency windows", staged);
    } else if (c->range) {
        WW_ERROR("a latency window's count does not fit bigint: refused, not clamped");
    }
    self->fast_copy = !merge;
    rc = s_copy_finish(self, what, add);
    self->fast_copy = false;
    if (!merge || rc != WW_STORE_OK) {
        return rc;
    }
    PGresult *r = NULL;
    rc = s_exec(self, WW_WINDOWS_SQL, 0, NULL, &r, "writing latency windows");
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
    ww_rollup_clear(&self->rollup);
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
        *parts += v[i].part || v[i].round > 0;
        if (merge) { /* else the direct COPY added them as it went */
            rc = s_rollup_add(self, &v[i]);
        }
    }
    free(v);
    if (rc != WW_STORE_OK) {
        return rc;
    }
    ww_rollup_encode(&self->rollup, &self->copy);
    if (self->copy.buf.oom) {
        return WW_STORE_RETRY;
    }
    if (self->copy.range) {
        return WW_STORE_REJECT;
    }
    rc = s_copy_start(self, WW_ROLLUP_COPY_SQL, "COPY latency rollups");
    if (rc == WW_STORE_OK) {
        rc = s_copy_finish(self, "COPY latency rollups", WW_STORE_OK); /* built whole */
    }
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

/* A Hello: the newest hole of its stream (the highest seqs recorded missing), for the Hello's
 * Ack to name (ww_store_item_t.missing_first). An agent that had its batches acked and
 * still keeps them sends them again: the Ack of the batch that opened the hole may never
 * have reached it (the collector died first, or the agent restarted during a repair). */
static ww_store_rc_t s_hello_hole(ww_store_t *self, ww_store_item_t *it)
{
    char epoch[24];
    snprintf(epoch, sizeof epoch, "%lld", (long long)it->epoch);
    const char *params[] = {it->agent_id, epoch};
    PGresult *r = NULL;
    ww_store_rc_t rc = s_exec(self,
                              "SELECT first_seq, last_seq FROM stream_holes"
                              " WHERE agent_id = $1 AND epoch = $2"
                              " ORDER BY first_seq DESC LIMIT 1",
                              2, params, &r, "reading the newest stream hole");
    if (rc == WW_STORE_OK && PQntuples(r) == 1) {
        it->missing_first = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        it->missing_last = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    }
    PQclear(r);
    return rc;
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
    ww_buf_t ids = {0}, epochs = {0}, seqs = {0};
    bool first = true;
    ww_buf_puts(&ids, "{");
    ww_buf_puts(&epochs, "{");
    ww_buf_puts(&seqs, "{");
    for (size_t i = 0; i < n; i++) {
        if (items[i].kind == WW_ITEM_BATCH && items[i].holes < 0) {
            ww_buf_pg_elem(&ids, items[i].agent_id, first);
            s_buf_array_num(&epochs, (long long)items[i].epoch, first);
            s_buf_array_num(&seqs, (long long)items[i].seq, first);
            first = false;
        }
    }
    ww_buf_puts(&ids, "}");
    ww_buf_puts(&epochs, "}");
    ww_buf_puts(&seqs, "}");
    PGresult *r = NULL;
    ww_store_rc_t rc = WW_STORE_RETRY;
    if (!ids.oom && !epochs.oom && !seqs.oom) {
        const char *params[] = {ids.p, epochs.p, seqs.p};
        rc = s_exec(self,
                    "SELECT DISTINCT u.i FROM unnest($1::text[], $2::bigint[], $3::bigint[])"
                    " WITH ORDINALITY AS u(a, e, q, i) JOIN stream_holes h ON h.agent_id = u.a"
                    " AND h.epoch = u.e AND h.first_seq <= u.q AND h.last_seq >= u.q",
                    3, params, &r, "looking up stream holes");
    }
    free(ids.p);
    free(epochs.p);
    free(seqs.p);
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
    ww_buf_t ids = {0}, epochs = {0};
    bool first = true;
    ww_buf_puts(&ids, "{");
    ww_buf_puts(&epochs, "{");
    for (size_t i = 0; i < n; i++) {
        if (items[i].kind != WW_ITEM_BATCH) {
            continue;
        }
        ww_buf_pg_elem(&ids, items[i].agent_id, first);
        s_buf_array_num(&epochs, (long long)items[i].epoch, first);
        first = false;
    }
    ww_buf_puts(&ids, "}");
    ww_buf_puts(&epochs, "}");
    if (first) {
        free(ids.p);
        free(epochs.p);
        return WW_STORE_OK;
    }
    PGresult *r = NULL;
    ww_store_rc_t rc = WW_STORE_RETRY;
    if (!ids.oom && !epochs.oom) {
        const char *params[] = {ids.p, epochs.p};
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
        const char *params[] = {ids.p, epochs.p};
        /* Sorted so that concurrent collectors lock rows in the same order. */
        rc = s_exec(self,
                    "SELECT s.agent_id, s.epoch, s.last_seq, s.lost_batches FROM streams s"
                    " JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::bigint[]) AS u(a, e)) u"
                    " ON s.agent_id = u.a AND s.epoch = u.e"
                    " ORDER BY s.agent_id, s.epoch FOR UPDATE OF s",
                    2, params, &r, "reading stream progress");
    }
    free(ids.p);
    free(epochs.p);
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
    ww_buf_t ids = {0}, epochs = {0}, seqs = {0}, holes = {0};
    bool first = true;
    ww_buf_puts(&ids, "{");
    ww_buf_puts(&epochs, "{");
    ww_buf_puts(&seqs, "{");
    ww_buf_puts(&holes, "{");
    for (size_t i = 0; i < n; i++) {
        if (items[i].kind != WW_ITEM_BATCH || items[i].disp != WW_DISP_WRITTEN) {
            continue;
        }
        ww_buf_pg_elem(&ids, items[i].agent_id, first);
        s_buf_array_num(&epochs, (long long)items[i].epoch, first);
        s_buf_array_num(&seqs, (long long)items[i].seq, first);
        s_buf_array_num(&holes, (long long)items[i].holes, first);
        first = false;
    }
    ww_buf_puts(&ids, "}");
    ww_buf_puts(&epochs, "}");
    ww_buf_puts(&seqs, "}");
    ww_buf_puts(&holes, "}");
    ww_store_rc_t rc = WW_STORE_OK;
    if (ids.oom || epochs.oom || seqs.oom || holes.oom) {
        rc = WW_STORE_RETRY;
    } else if (!first) {
        const char *params[] = {ids.p, epochs.p, seqs.p, holes.p};
        rc = s_exec(self,
                    "INSERT INTO streams AS s (agent_id, epoch, last_seq, lost_batches)"
                    " SELECT a, e, max(q), sum(h) FROM unnest($1::text[], $2::bigint[],"
                    " $3::bigint[], $4::bigint[]) AS u(a, e, q, h) GROUP BY a, e"
                    " ON CONFLICT (agent_id, epoch) DO UPDATE"
                    " SET last_seq = greatest(s.last_seq, EXCLUDED.last_seq),"
                    " lost_batches = s.lost_batches + EXCLUDED.lost_batches, updated_at = now()",
                    4, params, NULL, "writing stream progress");
    }
    free(ids.p);
    free(epochs.p);
    free(seqs.p);
    free(holes.p);
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
    ww_buf_t a[7] = {{0}};
    for (int k = 0; k < 7; k++) {
        ww_buf_puts(&a[k], "{");
    }
    char rated[64];
    for (size_t i = 0; i < h->n_nodes; i++) {
        const ww_node_info_t *ni = h->nodes[i];
        snprintf(rated, sizeof rated, "%.17g", ni->rated_kw);
        const char *v[7] = {ni->node_id, ni->site,         ni->hall, ni->rack,
                            ni->phase,   ni->system_model, rated};
        for (int k = 0; k < 7; k++) {
            ww_buf_pg_elem(&a[k], v[k] ? v[k] : "", i == 0);
        }
    }
    bool oom = false;
    for (int k = 0; k < 7; k++) {
        ww_buf_puts(&a[k], "}");
        oom = oom || a[k].oom;
    }
    ww_store_rc_t rc = WW_STORE_RETRY;
    if (!oom) {
        char interval[32];
        snprintf(interval, sizeof interval, "%u", h->interval_ms);
        const char *params[] = {a[0].p, a[1].p,       a[2].p,           a[3].p,    a[4].p,  a[5].p,
                                a[6].p, it->agent_id, h->agent_version, h->source, interval};
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
        ww_buf_free(&a[k]);
    }
    for (size_t i = 0; rc == WW_STORE_OK && i < h->n_nodes; i++) {
        ww_rollup_set_phase(&self->rollup, h->nodes[i]->node_id, h->nodes[i]->phase,
                            h->nodes[i]->site);
    }
    return rc;
}

/* Appends text as an array element, keeping printable ASCII only: reasons quote what a
 * peer sent, and must never make the INSERT itself fail. */
static void s_buf_array_text(ww_buf_t *b, const char *text, bool first)
{
    char clean[512];
    size_t n = 0;
    for (const char *p = text ? text : ""; *p && n < sizeof clean - 1; p++) {
        unsigned char c = (unsigned char)*p;
        clean[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    clean[n] = '\0';
    ww_buf_pg_elem(b, clean, first);
}

/* The five arrays of an INSERT into ingest_rejects. */
typedef struct {
    ww_buf_t ids, epochs, seqs, codes, reasons;
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
        ww_buf_puts(&rj->epochs, first ? "NULL" : ",NULL");
    }
    if (it->epoch != 0 && it->seq <= (uint64_t)INT64_MAX) {
        s_buf_array_num(&rj->seqs, (long long)it->seq, first);
    } else {
        ww_buf_puts(&rj->seqs, first ? "NULL" : ",NULL");
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
    ww_buf_t *all[] = {&rj.ids, &rj.epochs, &rj.seqs, &rj.codes, &rj.reasons};
    for (size_t k = 0; k < 5; k++) {
        ww_buf_puts(all[k], "{");
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
        ww_buf_puts(all[k], "}");
        oom = oom || all[k]->oom;
    }
    if (oom) {
        rc = WW_STORE_RETRY;
    } else if (!rj.first) {
        const char *params[] = {rj.ids.p, rj.epochs.p, rj.seqs.p, rj.codes.p, rj.reasons.p};
        rc = s_exec(self,
                    "INSERT INTO ingest_rejects (agent_id, epoch, seq, code, reason)"
                    " SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[],"
                    " $5::text[])",
                    5, params, NULL, "recording refused messages");
    }
    for (size_t k = 0; k < 5; k++) {
        ww_buf_free(all[k]);
    }
    return rc;
}

/* BEGIN, and the storage tiers' watermark (ww_late.h): one round trip. */
static ww_store_rc_t s_begin(ww_store_t *self)
{
    PGresult *r = PQexec(self->conn, "BEGIN; " WW_LATE_WATERMARK_SQL);
    ww_store_rc_t rc = WW_STORE_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
        rc = s_classify(self, r, "BEGIN (the storage tiers' watermark)");
    } else {
        char *end;
        errno = 0;
        long long us = strtoll(PQgetvalue(r, 0, 0), &end, 10);
        /* Unix ns in an int64 reach 2262: a watermark past that (a state row set by hand) is
         * refused, never clamped, since it decides which buckets are recorded as late. */
        if (errno != 0 || *end != '\0' || us > INT64_MAX / 1000 || us < INT64_MIN / 1000) {
            WW_ERROR("ww_tier_state.watermark \"%s\" is outside the times an agent sends "
                     "(Unix ns in an int64): fix the row (see docs/operations.md, Storage tiers)",
                     PQgetvalue(r, 0, 0));
            PQclear(r);
            return WW_STORE_RETRY; /* the caller rolls back */
        }
        ww_late_begin(&self->late, (int64_t)us * 1000);
    }
    PQclear(r);
    return rc;
}

/* Records the buckets of the tiers that this write's late data changed (ww_late.h). */
static ww_store_rc_t s_late_buckets(ww_store_t *self, ww_store_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (items[i].kind == WW_ITEM_BATCH && items[i].disp == WW_DISP_WRITTEN) {
            ww_late_batch(&self->late, items[i].env->batch);
        }
    }
    if (self->late.n == 0) {
        return WW_STORE_OK;
    }
    const char *params[3];
    if (!ww_late_params(&self->late, params)) {
        WW_ERROR("out of memory listing the late buckets of a write");
        return WW_STORE_RETRY;
    }
    return s_exec(self, WW_LATE_SQL, 3, params, NULL, "recording late buckets");
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
    ww_store_rc_t rc = s_begin(self);
    if (rc == WW_STORE_OK) {
        rc = s_sequence(self, items, n, &c->gaps);
    }
    /* Hellos first: the rollups read each node's phase from nodes. */
    for (size_t i = 0; i < n && rc == WW_STORE_OK; i++) {
        if (items[i].kind == WW_ITEM_HELLO) {
            items[i].missing_first = items[i].missing_last = 0;
            rc = s_hello(self, &items[i]);
            if (rc == WW_STORE_OK && items[i].epoch != 0) {
                rc = s_hello_hole(self, &items[i]);
            }
        }
    }
    if (rc == WW_STORE_OK) {
        rc = s_copy_rows(self, items, n, &c->rows);
    }
    if (rc == WW_STORE_OK) {
        rc = s_copy_latency(self, items, n, &c->windows, &c->parts);
    }
    if (rc == WW_STORE_OK) {
        rc = s_late_buckets(self, items, n);
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
    self->st.late_buckets += self->late.n;
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

void ww_store_stats_add(ww_store_stats_t *sum, const ww_store_stats_t *st)
{
    sum->transactions += st->transactions;
    sum->rows += st->rows;
    sum->windows += st->windows;
    sum->duplicates += st->duplicates;
    sum->gaps += st->gaps;
    sum->rejects += st->rejects;
    sum->retries += st->retries;
    sum->implausible_samples += st->implausible_samples;
    sum->late += st->late;
    sum->window_parts += st->window_parts;
    sum->outages += st->outages;
    sum->late_buckets += st->late_buckets;
    sum->pg_auth_failed = sum->pg_auth_failed || st->pg_auth_failed;
}

int ww_store_delay_merge(const ww_store_t *self, ww_hist_t *into)
{
    return ww_hist_merge(into, &self->delay);
}
