/* ww_tiers: see ww_tiers.h. */
#define WW_LOG_MODULE "tiers"
#include "ww_tiers.h"

#include "ww_log.h"
#include "ww_time.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ww_tiers {
    ww_tiers_conf_t conf;
    char *conninfo;
    ww_cmetrics_t *metrics;
    PGconn *conn;
    bool leader; /* holds WW_TIERS_LOCK on conn */
    /* The cancel handle of conn, for ww_tiers_stop to interrupt a long build. */
    pthread_mutex_t mu;
    PGcancel *cancel;
    pthread_t thread;
    atomic_bool stop;
    int64_t next_retention; /* monotonic ns */
    ww_complain_t conn_fail, run_fail;
};

static void s_disconnect(ww_tiers_t *self)
{
    pthread_mutex_lock(&self->mu);
    if (self->cancel) {
        PQfreeCancel(self->cancel);
        self->cancel = NULL;
    }
    pthread_mutex_unlock(&self->mu);
    if (self->conn) {
        PQfinish(self->conn);
        self->conn = NULL;
    }
    self->leader = false;
}

static int s_connect(ww_tiers_t *self)
{
    if (self->conn && PQstatus(self->conn) == CONNECTION_OK) {
        return 0;
    }
    s_disconnect(self);
    self->conn = PQconnectdb(self->conninfo);
    if (PQstatus(self->conn) != CONNECTION_OK) {
        WW_COMPLAIN(&self->conn_fail, "cannot connect to PostgreSQL to build the tiers: %.*s",
                    (int)strcspn(PQerrorMessage(self->conn), "\n"), PQerrorMessage(self->conn));
        s_disconnect(self);
        return -ECONNREFUSED;
    }
    WW_RECOVERED(&self->conn_fail, "tier builder connected to PostgreSQL again");
    PQclear(PQexec(self->conn, "SET TIME ZONE 'UTC'"));
    pthread_mutex_lock(&self->mu);
    self->cancel = PQgetCancel(self->conn);
    pthread_mutex_unlock(&self->mu);
    return 0;
}

/* Runs sql (params as text) and returns its result, or NULL with the failure logged once
 * per outage (the connection is dropped when it broke). */
static PGresult *s_query(ww_tiers_t *self, const char *sql, int n, const char *const *params,
                         const char *what)
{
    PGresult *r = PQexecParams(self->conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        return r;
    }
    if (!atomic_load(&self->stop)) {
        WW_COMPLAIN(&self->run_fail, "%s failed (tried again in %lld s): %.*s", what,
                    (long long)(self->conf.interval_ns / WW_NS_PER_S),
                    (int)strcspn(PQerrorMessage(self->conn), "\n"), PQerrorMessage(self->conn));
    }
    PQclear(r);
    if (PQstatus(self->conn) != CONNECTION_OK) {
        s_disconnect(self);
    }
    return NULL;
}

/* Takes the builder's lock if it is free. Logs when this collector starts or stops being
 * the one that builds. */
static bool s_lead(ww_tiers_t *self)
{
    if (self->leader) {
        return true;
    }
    PGresult *r = s_query(self, "SELECT pg_try_advisory_lock(" WW_TIERS_LOCK ")", 0, NULL,
                          "taking the tier builder's lock");
    if (!r) {
        return false;
    }
    self->leader = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (self->leader) {
        WW_INFO("this collector builds the storage tiers (advisory lock %s)", WW_TIERS_LOCK);
    }
    return self->leader;
}

/* Moves the watermark, then builds until caught up. Fills the cycle's figures; false when
 * a step failed. */
static bool s_build(ww_tiers_t *self, ww_tiers_cycle_t *c)
{
    char grace[32], max_minutes[24], max_late[24];
    snprintf(grace, sizeof grace, "%.3f seconds", (double)self->conf.grace_ns / WW_NS_PER_S);
    snprintf(max_minutes, sizeof max_minutes, "%lld", (long long)self->conf.max_minutes);
    snprintf(max_late, sizeof max_late, "%lld", (long long)self->conf.max_late);
    const char *p1[] = {grace};
    PGresult *r =
        s_query(self, "SELECT ww_tier_advance($1::interval)", 1, p1, "moving the tiers' watermark");
    if (!r) {
        return false;
    }
    PQclear(r);
    const char *p2[] = {max_minutes, max_late};
    for (;;) {
        r = s_query(self,
                    "SELECT minutes, hours, rebuilt, behind_s, dirty_left"
                    " FROM ww_tier_build($1::integer, $2::integer)",
                    2, p2, "building the tiers");
        if (!r) {
            return false;
        }
        c->minutes += strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        c->hours += strtoull(PQgetvalue(r, 0, 1), NULL, 10);
        c->rebuilt += strtoull(PQgetvalue(r, 0, 2), NULL, 10);
        c->behind_s = strtod(PQgetvalue(r, 0, 3), NULL);
        long long left = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
        PQclear(r);
        if ((c->behind_s <= 0 && left == 0) || atomic_load(&self->stop)) {
            return true;
        }
    }
}

/* Compacts what is old enough, node chunk by node chunk, until caught up; then empties the
 * raw rows of the days wholly compacted. */
static bool s_compact(ww_tiers_t *self, ww_tiers_cycle_t *c)
{
    if (self->conf.compact_age_ns <= 0) {
        return true;
    }
    c->compacting = true;
    char age[32], max_nodes[24];
    snprintf(age, sizeof age, "%.3f seconds", (double)self->conf.compact_age_ns / WW_NS_PER_S);
    snprintf(max_nodes, sizeof max_nodes, "%lld", (long long)self->conf.compact_max_nodes);
    const char *p[] = {age, max_nodes};
    for (;;) {
        PGresult *r = s_query(self,
                              "SELECT node_hours, samples, hours, behind_s"
                              " FROM ww_compact($1::interval, $2::integer)",
                              2, p, "compacting raw samples");
        if (!r) {
            return false;
        }
        uint64_t blocks = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        uint64_t hours = strtoull(PQgetvalue(r, 0, 2), NULL, 10);
        c->compacted += blocks;
        c->compacted_samples += strtoull(PQgetvalue(r, 0, 1), NULL, 10);
        c->compact_behind_s = strtod(PQgetvalue(r, 0, 3), NULL);
        PQclear(r);
        if ((blocks == 0 && hours == 0) || atomic_load(&self->stop)) {
            break;
        }
    }
    while (!atomic_load(&self->stop)) {
        PGresult *r =
            s_query(self, "SELECT ww_compact_clear()", 0, NULL, "emptying compacted raw samples");
        if (!r) {
            return false;
        }
        uint64_t days = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        if (days == 0) {
            break;
        }
        c->cleared += days;
    }
    if (c->cleared > 0) {
        WW_INFO("compaction: emptied %llu days of raw samples after compacting them",
                (unsigned long long)c->cleared);
    }
    return true;
}

/* One retention function of days (a single integer), adding the partitions it dropped to
 * *dropped. */
static bool s_drop(ww_tiers_t *self, const char *sql, int64_t days, const char *what,
                   uint64_t *dropped)
{
    char d[24];
    snprintf(d, sizeof d, "%lld", (long long)days);
    const char *p[] = {d};
    PGresult *r = s_query(self, sql, 1, p, what);
    if (!r) {
        return false;
    }
    *dropped += strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return true;
}

/* The per-node tiers', compacted samples' and latency windows' retention, at most hourly. */
static bool s_retention(ww_tiers_t *self, ww_tiers_cycle_t *c)
{
    if (ww_time_mono_ns() < self->next_retention) {
        return true;
    }
    char d[3][24];
    const int64_t days[3] = {self->conf.node_minute_days, self->conf.node_hour_days,
                             self->conf.latency_node_days};
    const char *p[3];
    for (int k = 0; k < 3; k++) {
        snprintf(d[k], sizeof d[k], "%lld", (long long)days[k]);
        p[k] = d[k];
    }
    PGresult *r = s_query(self, "SELECT ww_drop_old_tiers($1::integer, $2::integer, $3::integer)",
                          3, p, "the tiers' retention");
    if (!r) {
        return false;
    }
    c->dropped = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (!s_drop(self, "SELECT ww_drop_old_compact($1::integer)", self->conf.compact_days,
                "the compacted samples' retention", &c->dropped) ||
        !s_drop(self, "SELECT ww_drop_old_windows($1::integer)", self->conf.window_days,
                "the latency windows' retention", &c->dropped)) {
        return false;
    }
    if (c->dropped > 0) {
        WW_INFO("retention: dropped %llu partitions of the per-node tiers, compacted samples "
                "and latency windows",
                (unsigned long long)c->dropped);
    }
    self->next_retention = ww_time_mono_ns() + 3600 * WW_NS_PER_S;
    return true;
}

static void s_run(ww_tiers_t *self)
{
    ww_tiers_cycle_t c = {0};
    int64_t t0 = ww_time_mono_ns();
    bool ok = s_connect(self) == 0;
    if (ok && s_lead(self)) {
        c.leader = true;
        /* A compaction that cannot go on (a row no block can hold: logged) must not stop
         * the retention behind it. */
        ok = s_build(self, &c);
        if (ok) {
            bool compacted = s_compact(self, &c);
            ok = s_retention(self, &c) && compacted;
        }
        if (ok) {
            WW_RECOVERED(&self->run_fail, "the tiers are built again");
        }
    }
    c.ok = ok;
    c.seconds = (double)(ww_time_mono_ns() - t0) / WW_NS_PER_S;
    ww_cmetrics_tiers(self->metrics, &c);
}

static void *s_thread(void *arg)
{
    ww_tiers_t *self = arg;
    int64_t next = ww_time_mono_ns() + self->conf.interval_ns;
    while (!atomic_load(&self->stop)) {
        if (ww_time_mono_ns() >= next) {
            s_run(self);
            next += self->conf.interval_ns;
            if (next < ww_time_mono_ns()) {
                next = ww_time_mono_ns() + self->conf.interval_ns;
            }
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

ww_tiers_t *ww_tiers_start(const ww_tiers_conf_t *conf, const char *conninfo,
                           ww_cmetrics_t *metrics)
{
    ww_tiers_t *self = calloc(1, sizeof *self);
    if (!self) {
        WW_ERROR("cannot start the tier builder: out of memory");
        return NULL;
    }
    self->conf = *conf;
    self->metrics = metrics;
    self->conninfo = strdup(conninfo ? conninfo : "");
    atomic_init(&self->stop, false);
    pthread_mutex_init(&self->mu, NULL);
    if (!self->conninfo || pthread_create(&self->thread, NULL, s_thread, self) != 0) {
        pthread_mutex_destroy(&self->mu);
        free(self->conninfo);
        free(self);
        WW_ERROR("cannot start the tier builder's thread");
        return NULL;
    }
    WW_INFO("building the storage tiers every %lld s (grace %lld s)",
            (long long)(conf->interval_ns / WW_NS_PER_S),
            (long long)(conf->grace_ns / WW_NS_PER_S));
    return self;
}

void ww_tiers_stop(ww_tiers_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    ww_tiers_t *self = *self_p;
    atomic_store(&self->stop, true);
    pthread_mutex_lock(&self->mu);
    if (self->cancel) {
        char err[256];
        PQcancel(self->cancel, err, sizeof err); /* a build under way stops now */
    }
    pthread_mutex_unlock(&self->mu);
    pthread_join(self->thread, NULL);
    s_disconnect(self);
    pthread_mutex_destroy(&self->mu);
    free(self->conninfo);
    free(self);
    *self_p = NULL;
}
