/* slo_eval: see ww_slo_eval.h. */
#define WW_LOG_MODULE "slo"
#include "ww_slo_eval.h"

#include "ww_am.h"
#include "ww_buf.h"
#include "ww_cmetrics.h"
#include "ww_log.h"
#include "ww_slo_lease.h"
#include "ww_time.h"

#include <errno.h>
#include <libpq-fe.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The SRE workbook's alerting windows. */
static const struct {
    const char *name;
    int64_t seconds;
} s_windows[] = {
    {"5m", 300},   {"30m", 1800}, {"1h", 3600},   {"2h", 7200},
    {"6h", 21600}, {"1d", 86400}, {"3d", 259200},
};
#define WW_N_WINDOWS (sizeof s_windows / sizeof s_windows[0])
enum { W5M, W30M, W1H, W2H, W6H, W1D, W3D };

/* The SRE workbook's multiwindow burn-rate rules: a severity fires when, for one of its
 * rules, both windows burn faster than the factor and the long window holds at least
 * the SLO's min_requests (a few slow requests on an idle phase are no signal). */
static const struct {
    int page; /* 1: page, 0: ticket */
    int long_w, short_w;
    double factor;
} s_rules[] = {
    {1, W1H, W5M, 14.4},
    {1, W6H, W30M, 6},
    {0, W1D, W2H, 3},
    {0, W3D, W6H, 1},
};
#define WW_N_RULES (sizeof s_rules / sizeof s_rules[0])

/* One alert a rule wants firing (or not) at this evaluation. */
typedef struct {
    const char *alertname, *phase, *slo, *model, *severity;
    bool firing;
    char summary[384];
    char details[1024];    /* JSON object */
    char annotations[512]; /* JSON object of strings, for Alertmanager */
} s_rule_t;

/* An Alertmanager notification to send after the commit. */
typedef struct {
    char alertname[32], phase[64], slo[64], model[64], severity[16];
    char summary[384], details[1024], annotations[512];
    int64_t starts_ns, ends_ns;
} s_push_t;

/* A small set of strings (phases, "phase/slo" keys): a handful per fleet. */
typedef struct {
    char **items;
    size_t n;
} s_strset_t;

static bool s_strset_has(const s_strset_t *set, const char *v)
{
    for (size_t i = 0; i < set->n; i++) {
        if (strcmp(set->items[i], v) == 0) {
            return true;
        }
    }
    return false;
}

/* Out of memory leaves v out: it is then reported again, never lost silently. */
static void s_strset_add(s_strset_t *set, const char *v)
{
    char **items = realloc(set->items, (set->n + 1) * sizeof *items);
    if (!items) {
        return;
    }
    set->items = items;
    set->items[set->n] = strdup(v);
    if (set->items[set->n]) {
        set->n++;
    }
}

static void s_strset_del(s_strset_t *set, const char *v)
{
    for (size_t i = 0; i < set->n; i++) {
        if (strcmp(set->items[i], v) == 0) {
            free(set->items[i]);
            set->items[i] = set->items[--set->n];
            return;
        }
    }
}

static void s_strset_free(s_strset_t *set)
{
    for (size_t i = 0; i < set->n; i++) {
        free(set->items[i]);
    }
    free(set->items);
    set->items = NULL;
    set->n = 0;
}

struct ww_slo_eval {
    const ww_slo_conf_t *conf; /* the caller's, until a reload replaces it with owned */
    ww_slo_conf_t owned;       /* the last file reloaded on SIGHUP (zeroed until then) */
    bool has_owned;
    char *path;                    /* the phases file, re-read on reload; may be NULL */
    volatile sig_atomic_t *reload; /* set by the SIGHUP handler; may be NULL */
    bool reconcile;                /* upsert phases, retire the unconfigured: pending */
    int64_t loaded_ns;             /* when the configuration in force was loaded */
    char *conninfo;
    /* > 0: a fleet database (collector.role fleet): capacity from the sites' site_capacity
     * rows, stale past this; SLIs from the rollups only; nothing the sites publish written.
     * 0: a site, which writes its site_capacity rows. */
    int64_t fleet_stale_ns;
    ww_cmetrics_t *metrics; /* NULL without metrics.listen */
    PGconn *conn;
    pthread_t thread;
    atomic_bool stop;
    ww_complain_t conn_fail, am_fail, lease_fail;
    s_push_t *push;
    size_t n_push, cap_push;
    s_strset_t unknown;  /* phases seen in nodes but not configured, already reported */
    s_strset_t silent;   /* "phase/slo" whose model had no request in 1h, already reported */
    s_strset_t stale;    /* fleet: "phase={stale sites}" as last reported, one per phase */
    int64_t stale_pairs; /* fleet: (site, phase) pairs stale in the evaluation under way */
    bool hours_built;    /* the hourly rollups of the longest window were built once */
    /* Leadership (ww_slo_lease.h): term > 0 while this evaluator leads, 0 while it follows. */
    int64_t term;
    char term_s[24];    /* term as text, the parameter of every alert write */
    char holder[300];   /* "host:pid", this evaluator's name in slo_leader */
    int64_t seen_term;  /* the term last read or held, for /metrics */
    int64_t held_until; /* monotonic: the lease, as this evaluator last renewed it, ends */
};

static int s_exec(ww_slo_eval_t *self, const char *sql, int n, const char *const *params,
                  PGresult **out)
{
    PGresult *r = PQexecParams(self->conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        WW_WARN("evaluation query failed: %.*s", (int)strcspn(PQerrorMessage(self->conn), "\n"),
                PQerrorMessage(self->conn));
        PQclear(r);
        return -EIO;
    }
    if (out) {
        *out = r;
    } else {
        PQclear(r);
    }
    return 0;
}

static void s_iso(int64_t ns, char *out, size_t cap)
{
    time_t s = (time_t)(ns / WW_NS_PER_S);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ns % WW_NS_PER_S / 1000000));
}

static int s_connect(ww_slo_eval_t *self)
{
    if (self->conn && PQstatus(self->conn) == CONNECTION_OK) {
        return 0;
    }
    if (self->conn) {
        PQfinish(self->conn);
    }
    self->conn = PQconnectdb(self->conninfo);
    if (PQstatus(self->conn) != CONNECTION_OK) {
        WW_COMPLAIN(&self->conn_fail, "cannot connect to PostgreSQL for evaluation: %.*s",
                    (int)strcspn(PQerrorMessage(self->conn), "\n"), PQerrorMessage(self->conn));
        PQfinish(self->conn);
        self->conn = NULL;
        return -ECONNREFUSED;
    }
    WW_RECOVERED(&self->conn_fail, "evaluation connected to PostgreSQL again");
    PQclear(PQexec(self->conn, "SET TIME ZONE 'UTC'"));
    if (ww_slo_lease_session(self->conn, self->conf->interval_ns) < 0) {
        WW_COMPLAIN(&self->conn_fail, "cannot set the evaluator's session up: %.*s",
                    (int)strcspn(PQerrorMessage(self->conn), "\n"), PQerrorMessage(self->conn));
        PQfinish(self->conn);
        self->conn = NULL;
        return -EIO;
    }
    /* A new connection may follow a database restored or migrated meanwhile. */
    self->reconcile = true;
    return 0;
}

/* Appends one element to a text[] literal "{...}" being built (quoted, so any text is
 * safe); s_array_close closes it. */
static void s_array_add(ww_buf_t *b, const char *v)
{
    bool first = b->len == 0;
    if (first) {
        ww_buf_put(b, "{", 1);
    }
    ww_buf_pg_elem(b, v, first);
}

static void s_array_close(ww_buf_t *b)
{
    ww_buf_puts(b, b->len == 0 ? "{}" : "}");
}

/* Upserts the configured phases (for SQL and dashboards). */
static int s_upsert_phases(ww_slo_eval_t *self)
{
    for (size_t i = 0; i < self->conf->phases.n; i++) {
        const ww_phase_t *p = &((const ww_phase_t *)self->conf->phases.items)[i];
        char mw[32], share[32], ceil_mw[32], hot[32], outl[32];
        snprintf(mw, sizeof mw, "%.17g", p->contracted_mw);
        snprintf(share, sizeof share, "%.17g", p->capacity_breach_share);
        snprintf(ceil_mw, sizeof ceil_mw, "%.17g", p->power_ceiling_mw);
        snprintf(hot, sizeof hot, "%.17g", p->hotspot_max_c);
        snprintf(outl, sizeof outl, "%.17g", p->outlet_max_c);
        const char *params[] = {
            p->id, p->name ? p->name : p->id, p->go_live, mw, share, ceil_mw, hot, outl};
        if (s_exec(self,
                   "INSERT INTO phases AS p (id, name, go_live, contracted_mw,"
                   " capacity_breach_share, power_ceiling_mw, hotspot_max_c, outlet_max_c)"
                   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET"
                   " name = EXCLUDED.name, go_live = EXCLUDED.go_live,"
                   " contracted_mw = EXCLUDED.contracted_mw,"
                   " capacity_breach_share = EXCLUDED.capacity_breach_share,"
                   " power_ceiling_mw = EXCLUDED.power_ceiling_mw,"
                   " hotspot_max_c = EXCLUDED.hotspot_max_c,"
                   " outlet_max_c = EXCLUDED.outlet_max_c, updated_at = now(),"
                   " retired_at = NULL",
                   8, params, NULL) < 0) {
            return -EIO;
        }
    }
    return 0;
}

/* The alerts a retirement resolved, to push with endsAt after the commit. */
static void s_queue_retired(ww_slo_eval_t *self, PGresult *r, int64_t now_ns);

/* On start and on each reload (and reconnect), inside the evaluation's transaction:
 * upserts the configured phases, then resolves every firing alert whose (phase, slo) is
 * no longer configured (transition, NOTIFY with "reason":"retired", Alertmanager endsAt
 * after the commit) and marks the phases and slo_status rows no longer configured
 * retired_at. Alerts are keyed by (phase, slo): an SLO's name, or capacity / power /
 * thermal for the phase's own rules. Returns 0 or -EIO / -ENOMEM. */
static int s_reconcile(ww_slo_eval_t *self, int64_t now_ns)
{
    if (s_upsert_phases(self) < 0) {
        return -EIO;
    }
    ww_buf_t ids = WW_BUF_INIT, kp = WW_BUF_INIT, ks = WW_BUF_INIT, sp = WW_BUF_INIT,
             ss = WW_BUF_INIT;
    for (size_t i = 0; i < self->conf->phases.n; i++) {
        const ww_phase_t *ph = &((const ww_phase_t *)self->conf->phases.items)[i];
        s_array_add(&ids, ph->id);
        static const char *const own[] = {"capacity", "power", "thermal"};
        for (size_t k = 0; k < sizeof own / sizeof own[0]; k++) {
            s_array_add(&kp, ph->id);
            s_array_add(&ks, own[k]);
        }
        for (size_t k = 0; k < ph->slos.n; k++) {
            const ww_slo_t *slo = &((const ww_slo_t *)ph->slos.items)[k];
            s_array_add(&kp, ph->id);
            s_array_add(&ks, slo->name);
            s_array_add(&sp, ph->id);
            s_array_add(&ss, slo->name);
        }
    }
    s_array_close(&ids);
    s_array_close(&kp);
    s_array_close(&ks);
    s_array_close(&sp);
    s_array_close(&ss);
    int rc = 0;
    if (ids.oom || kp.oom || ks.oom || sp.oom || ss.oom) {
        rc = -ENOMEM;
        goto cleanup;
    }
    const char *ap[] = {kp.p, ks.p, self->conf->notify_channel, self->term_s};
    PGresult *r = NULL;
    rc = s_exec(
        self,
        "WITH c AS (SELECT * FROM unnest($1::text[], $2::text[]) AS c(phase, slo)),"
        " a AS (UPDATE alerts AS a SET state = 'resolved', resolved_at = now(),"
        "  last_eval_at = now(), term = $4::bigint, details = a.details ||"
        "  jsonb_build_object('retired', 'no longer configured')"
        "  WHERE a.state = 'firing' AND NOT EXISTS (SELECT 1 FROM c WHERE c.phase = a.phase"
        "  AND c.slo = a.slo) RETURNING a.*),"
        " t AS (INSERT INTO alert_transitions (alert_id, alertname, phase, slo, severity,"
        "  to_state, details, term) SELECT id, alertname, phase, slo, severity, 'resolved',"
        "  details, term FROM a)"
        " SELECT alertname, phase, slo, model, severity, summary,"
        " (extract(epoch from started_at) * 1e9)::bigint,"
        " pg_notify($3, json_build_object('alertname', alertname, 'phase', phase, 'slo', slo,"
        "  'severity', severity, 'state', 'resolved', 'reason', 'retired')::text)"
        " FROM a ORDER BY id",
        4, ap, &r);
    if (rc < 0) {
        goto cleanup;
    }
    s_queue_retired(self, r, now_ns);
    PQclear(r);
    const char *pp[] = {ids.p};
    rc = s_exec(self,
                "UPDATE phases SET retired_at = now() WHERE retired_at IS NULL"
                " AND id <> ALL ($1::text[])",
                1, pp, NULL);
    if (rc < 0) {
        goto cleanup;
    }
    const char *qp[] = {sp.p, ss.p};
    rc = s_exec(self,
                "UPDATE slo_status AS s SET retired_at = now() WHERE s.retired_at IS NULL"
                " AND NOT EXISTS (SELECT 1 FROM unnest($1::text[], $2::text[]) AS c(phase, slo)"
                " WHERE c.phase = s.phase AND c.slo = s.slo)",
                2, qp, NULL);

cleanup:
    ww_buf_free(&ids);
    ww_buf_free(&kp);
    ww_buf_free(&ks);
    ww_buf_free(&sp);
    ww_buf_free(&ss);
    return rc;
}

/* Where the alerts go after the commit: one slot, or NULL when there is no Alertmanager
 * (or no memory: the alert then waits for the next evaluation's push, or for
 * Alertmanager's resolve_timeout when it was a resolution). */
static s_push_t *s_push_slot(ww_slo_eval_t *self)
{
    if (!self->conf->alertmanager_url || !*self->conf->alertmanager_url) {
        return NULL;
    }
    if (self->n_push == self->cap_push) {
        size_t cap = self->cap_push ? self->cap_push * 2 : 16;
        s_push_t *np = realloc(self->push, cap * sizeof *np);
        if (!np) {
            return NULL;
        }
        self->push = np;
        self->cap_push = cap;
    }
    s_push_t *p = &self->push[self->n_push++];
    memset(p, 0, sizeof *p);
    return p;
}

/* Queues row i of r (alertname, phase, slo, model, severity, summary, started_at in ns) to
 * be pushed ending at ends_ns, the summary followed by suffix. */
static void s_queue_row(ww_slo_eval_t *self, PGresult *r, int i, const char *suffix,
                        int64_t ends_ns)
{
    s_push_t *p = s_push_slot(self);
    if (!p) {
        return;
    }
    snprintf(p->alertname, sizeof p->alertname, "%s", PQgetvalue(r, i, 0));
    snprintf(p->phase, sizeof p->phase, "%s", PQgetvalue(r, i, 1));
    snprintf(p->slo, sizeof p->slo, "%s", PQgetvalue(r, i, 2));
    snprintf(p->model, sizeof p->model, "%s", PQgetvalue(r, i, 3));
    snprintf(p->severity, sizeof p->severity, "%s", PQgetvalue(r, i, 4));
    snprintf(p->summary, sizeof p->summary, "%s%s", PQgetvalue(r, i, 5), suffix);
    p->starts_ns = strtoll(PQgetvalue(r, i, 6), NULL, 10);
    p->ends_ns = ends_ns;
}

static void s_queue_retired(ww_slo_eval_t *self, PGresult *r, int64_t now_ns)
{
    for (int i = 0; i < PQntuples(r); i++) {
        WW_INFO("resolved %s %s for %s/%s: no longer configured", PQgetvalue(r, i, 4),
                PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
        s_queue_row(self, r, i, " (resolved: no longer configured)", now_ns);
    }
}

static void s_queue_push(ww_slo_eval_t *self, const s_rule_t *r, int64_t starts_ns, int64_t ends_ns)
{
    s_push_t *p = s_push_slot(self);
    if (!p) {
        return;
    }
    snprintf(p->alertname, sizeof p->alertname, "%s", r->alertname);
    snprintf(p->phase, sizeof p->phase, "%s", r->phase);
    snprintf(p->slo, sizeof p->slo, "%s", r->slo);
    snprintf(p->model, sizeof p->model, "%s", r->model);
    snprintf(p->severity, sizeof p->severity, "%s", r->severity);
    snprintf(p->summary, sizeof p->summary, "%s", r->summary);
    snprintf(p->details, sizeof p->details, "%s", r->details);
    snprintf(p->annotations, sizeof p->annotations, "%s", r->annotations);
    p->starts_ns = starts_ns;
    p->ends_ns = ends_ns;
}

/* Fires, refreshes or resolves the alert of one rule; state is the alerts table. */
static int s_apply(ww_slo_eval_t *self, const s_rule_t *r, int64_t now_ns)
{
    const char *key[] = {r->phase, r->slo, r->severity, r->alertname};
    PGresult *res;
    if (s_exec(self,
               "SELECT id, (extract(epoch from started_at) * 1e9)::bigint FROM alerts"
               " WHERE phase = $1 AND slo = $2 AND severity = $3 AND alertname = $4"
               " AND state = 'firing'",
               4, key, &res) < 0) {
        return -EIO;
    }
    bool open = PQntuples(res) > 0;
    char id[32] = "";
    int64_t started = now_ns;
    if (open) {
        snprintf(id, sizeof id, "%s", PQgetvalue(res, 0, 0));
        started = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
    char payload[512];
    int rc = 0;
    if (r->firing && !open) {
        const char *p[] = {r->alertname, r->phase,   r->slo,     r->model,
                           r->severity,  r->summary, r->details, self->term_s};
        rc = s_exec(self,
                    "WITH a AS (INSERT INTO alerts (alertname, phase, slo, model, severity, state,"
                    " started_at, last_eval_at, summary, details, term) VALUES ($1, $2, $3, $4,"
                    " $5, 'firing', now(), now(), $6, $7::jsonb, $8::bigint) RETURNING id)"
                    " INSERT INTO alert_transitions (alert_id, alertname, phase, slo, severity,"
                    " to_state, details, term) SELECT id, $1, $2, $3, $5, 'firing', $7::jsonb,"
                    " $8::bigint FROM a",
                    8, p, NULL);
        WW_WARN("FIRING %s %s: %s", r->severity, r->alertname, r->summary);
    } else if (r->firing && open) {
        const char *p[] = {id, r->summary, r->details, self->term_s};
        rc = s_exec(self,
                    "UPDATE alerts SET last_eval_at = now(), summary = $2, details = $3::jsonb,"
                    " term = $4::bigint WHERE id = $1",
                    4, p, NULL);
    } else if (!r->firing && open) {
        const char *p[] = {id, r->details, self->term_s};
        rc = s_exec(self,
                    "WITH a AS (UPDATE alerts SET state = 'resolved', resolved_at = now(),"
                    " last_eval_at = now(), details = $2::jsonb, term = $3::bigint WHERE id = $1"
                    " RETURNING *)"
                    " INSERT INTO alert_transitions (alert_id, alertname, phase, slo, severity,"
                    " to_state, details, term) SELECT id, alertname, phase, slo, severity,"
                    " 'resolved', $2::jsonb, $3::bigint FROM a",
                    3, p, NULL);
        WW_INFO("resolved %s %s for %s/%s", r->severity, r->alertname, r->phase, r->slo);
    } else {
        return 0;
    }
    if (rc == 0 && (r->firing != open)) {
        snprintf(payload, sizeof payload,
                 "{\"alertname\":\"%s\",\"phase\":\"%s\",\"slo\":\"%s\",\"severity\":\"%s\","
                 "\"state\":\"%s\"}",
                 r->alertname, r->phase, r->slo, r->severity, r->firing ? "firing" : "resolved");
        const char *p[] = {self->conf->notify_channel, payload};
        rc = s_exec(self, "SELECT pg_notify($1, $2)", 2, p, NULL);
    }
    if (rc == 0) {
        s_queue_push(self, r, started, r->firing ? 0 : now_ns);
    }
    return rc;
}

/* good/total of one SLO over [now - window, now). */
static int s_sli(ww_slo_eval_t *self, const char *phase, const ww_slo_t *slo, int64_t window_ns,
                 int64_t now_ns, long long *good, long long *total)
{
    char thr[32], from[48], to[48];
    snprintf(thr, sizeof thr, "%.17g", slo->threshold_s);
    s_iso(now_ns - window_ns, from, sizeof from);
    s_iso(now_ns, to, sizeof to);
    const char *p[] = {
        phase, slo->model, slo->metric, thr, from, to, self->fleet_stale_ns > 0 ? "t" : "f"};
    PGresult *r;
    if (s_exec(self, "SELECT good, total FROM ww_sli($1, $2, $3, $4, $5, $6, $7)", 7, p, &r) < 0) {
        return -EIO;
    }
    *good = atoll(PQgetvalue(r, 0, 0));
    *total = atoll(PQgetvalue(r, 0, 1));
    PQclear(r);
    return 0;
}

/* Whether the rules of one severity (page: 1, ticket: 0) fire, and why in the rules' own
 * words: the rules that fire ("3d 1.42x and 6h 1.42x > 1x", joined by "; "), else every
 * rule of the severity with its rates and factor ("1h 0.20x and 5m 0.00x, not both >
 * 14.4x"), saying when the burn would fire but the long window has fewer than
 * min_requests requests. */
static void s_rule_text(const double *burn, const long long *totals, int64_t min_requests, int page,
                        bool *firing, char *out, size_t cap)
{
    size_t len = 0;
    *firing = false;
    out[0] = '\0';
    for (int pass = 0; pass < 2 && !*firing; pass++) {
        for (size_t i = 0; i < WW_N_RULES && len < cap; i++) {
            if (s_rules[i].page != page) {
                continue;
            }
            int l = s_rules[i].long_w, sh = s_rules[i].short_w;
            bool burning = burn[l] > s_rules[i].factor && burn[sh] > s_rules[i].factor;
            bool enough = totals[l] >= min_requests;
            if (pass == 0 && !(burning && enough)) {
                continue; /* the first pass names only the rules that fire */
            }
            *firing = *firing || (burning && enough);
            int k = snprintf(out + len, cap - len, "%s%s %.2fx and %s %.2fx", len ? "; " : "",
                             s_windows[l].name, burn[l], s_windows[sh].name, burn[sh]);
            len += k > 0 ? (size_t)k : 0;
            if (len >= cap) {
                break;
            }
            if (burning && enough) {
                k = snprintf(out + len, cap - len, " > %gx", s_rules[i].factor);
            } else if (burning) {
                k = snprintf(out + len, cap - len, " > %gx, but %lld requests in %s (min %lld)",
                             s_rules[i].factor, totals[l], s_windows[l].name,
                             (long long)min_requests);
            } else {
                k = snprintf(out + len, cap - len, ", not both > %gx", s_rules[i].factor);
            }
            len += k > 0 ? (size_t)k : 0;
        }
        if (pass == 0 && *firing) {
            break;
        }
    }
}

/* An SLO whose model had no request in its phase over the (scaled) last hour is warned
 * of once, naming the models the phase did report: a model name no agent reports (a
 * typo, a renamed deployment) otherwise reads as a perfect SLO. Said again, as
 * recovered, when requests return. */
static void s_check_reported(ww_slo_eval_t *self, const ww_phase_t *ph, const ww_slo_t *slo,
                             long long total_1h, int64_t now_ns)
{
    char key[160];
    snprintf(key, sizeof key, "%s/%s", ph->id, slo->name);
    bool known = s_strset_has(&self->silent, key);
    if (total_1h > 0) {
        if (known) {
            WW_INFO("slo %s: model \"%s\" has requests again", key, slo->model);
            s_strset_del(&self->silent, key);
        }
        return;
    }
    if (known) {
        return;
    }
    char from[48];
    int64_t win = (int64_t)((double)s_windows[W1H].seconds * 1e9 * self->conf->window_scale);
    s_iso(now_ns - win, from, sizeof from);
    const char *p[] = {ph->id, from};
    PGresult *r;
    if (s_exec(self,
               "SELECT coalesce(string_agg(model, ', ' ORDER BY model COLLATE \"C\"), '') FROM "
               "(SELECT DISTINCT"
               " model FROM latency_rollup_1m WHERE phase = $1"
               " AND time >= date_trunc('minute', $2::timestamptz)) m",
               2, p, &r) < 0) {
        return;
    }
    const char *models = PQgetvalue(r, 0, 0);
    WW_WARN("slo %s: no request for model \"%s\" in phase %s in the last %s (%s%s): is the "
            "SLO's model the name agents report?",
            key, slo->model, ph->id, s_windows[W1H].name,
            *models ? "models reported there: " : "the phase reported no model", models);
    PQclear(r);
    s_strset_add(&self->silent, key);
}

static int s_eval_slo(ww_slo_eval_t *self, const ww_phase_t *ph, const ww_slo_t *slo,
                      int64_t now_ns, const char *now_iso)
{
    double burn[WW_N_WINDOWS];
    long long totals[WW_N_WINDOWS];
    char rates[512];
    size_t len = (size_t)snprintf(rates, sizeof rates, "{");
    double budget = 1 - slo->objective;
    for (size_t w = 0; w <= WW_N_WINDOWS; w++) {
        bool period = w == WW_N_WINDOWS;
        int64_t win =
            period ? (int64_t)((double)slo->period_ns * self->conf->window_scale)
                   : (int64_t)((double)s_windows[w].seconds * 1e9 * self->conf->window_scale);
        long long good, total;
        if (s_sli(self, ph->id, slo, win, now_ns, &good, &total) < 0) {
            return -EIO;
        }
        double b = total > 0 ? (1.0 - (double)good / (double)total) / budget : 0.0;
        const char *wname = period ? "period" : s_windows[w].name;
        char ws[32], g[32], t[32], bs[32];
        snprintf(ws, sizeof ws, "%.6f", (double)win / 1e9);
        snprintf(g, sizeof g, "%lld", good);
        snprintf(t, sizeof t, "%lld", total);
        snprintf(bs, sizeof bs, "%.6g", b);
        const char *p[] = {now_iso, ph->id, slo->name, slo->model, slo->metric,
                           ws,      wname,  g,         t,          bs};
        if (s_exec(self,
                   "INSERT INTO slo_evaluations (time, phase, slo, model, metric, window_s,"
                   " window_name, good, total, burn_rate) VALUES ($1, $2, $3, $4, $5, $6, $7,"
                   " $8, $9, $10)",
                   10, p, NULL) < 0) {
            return -EIO;
        }
        if (!period) {
            burn[w] = b;
            totals[w] = total;
            len += (size_t)snprintf(rates + len, sizeof rates - len, "%s\"%s\":%.4g", w ? "," : "",
                                    wname, b);
            continue;
        }
        s_check_reported(self, ph, slo, totals[W1H], now_ns);
        /* Attainment and budget over the SLO period. */
        len += (size_t)snprintf(rates + len, sizeof rates - len, "}");
        char att[32] = "", left[32] = "", obj[32], thr[32];
        snprintf(obj, sizeof obj, "%.17g", slo->objective);
        snprintf(thr, sizeof thr, "%.17g", slo->threshold_s);
        if (total > 0) {
            double a = (double)good / (double)total;
            snprintf(att, sizeof att, "%.9g", a);
            snprintf(left, sizeof left, "%.9g", 1.0 - (1.0 - a) / budget);
        }
        const char *q[] = {ph->id,
                           slo->name,
                           slo->model,
                           slo->metric,
                           obj,
                           slo->sli == WW_SLI_AVAILABILITY ? NULL : thr,
                           now_iso,
                           total > 0 ? att : NULL,
                           total > 0 ? left : NULL,
                           rates};
        if (s_exec(
                self,
                "INSERT INTO slo_status AS s (phase, slo, model, metric, objective,"
                " threshold_s, time, attainment, budget_remaining, burn_rates)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)"
                " ON CONFLICT (phase, slo) DO UPDATE SET model = EXCLUDED.model,"
                " metric = EXCLUDED.metric, objective = EXCLUDED.objective,"
                " threshold_s = EXCLUDED.threshold_s, time = EXCLUDED.time,"
                " attainment = EXCLUDED.attainment,"
                " budget_remaining = EXCLUDED.budget_remaining, burn_rates = EXCLUDED.burn_rates,"
                " retired_at = NULL",
                10, q, NULL) < 0) {
            return -EIO;
        }
        s_rule_t page = {"SLOBurnRate", ph->id, slo->name, slo->model, "page", false, "", "", ""};
        s_rule_t ticket = {"SLOBurnRate", ph->id, slo->name, slo->model, "ticket",
                           false,         "",     "",        ""};
        s_rule_t *rules[] = {&page, &ticket};
        for (int k = 0; k < 2; k++) {
            char why[256];
            s_rule_text(burn, totals, slo->min_requests, k == 0, &rules[k]->firing, why,
                        sizeof why);
            snprintf(rules[k]->summary, sizeof rules[k]->summary,
                     "%s %s (%s %s, objective %g): error budget burning %s", ph->id, slo->name,
                     slo->model, slo->metric, slo->objective, why);
            snprintf(rules[k]->details, sizeof rules[k]->details,
                     "{\"burn_rates\":%s,\"budget_remaining\":%s,\"objective\":%s}", rates,
                     total > 0 ? left : "null", obj);
            snprintf(rules[k]->annotations, sizeof rules[k]->annotations,
                     "{\"burn_rates\":\"5m %.2fx, 30m %.2fx, 1h %.2fx, 2h %.2fx, 6h %.2fx, 1d "
                     "%.2fx, 3d %.2fx\",\"budget_left\":\"%s\",\"objective\":\"%s\"}",
                     burn[W5M], burn[W30M], burn[W1H], burn[W2H], burn[W6H], burn[W1D], burn[W3D],
                     total > 0 ? left : "unknown", obj);
            if (s_apply(self, rules[k], now_ns) < 0) {
                return -EIO;
            }
        }
    }
    return 0;
}

/* The capacity figures of a phase now, columns as ww_capacity_total's, then stale_sites.
 * A site computes them from its samples per site label and writes those rows to
 * site_capacity (for the fleet) in the same statement; a fleet database adds up the sites'
 * newest rows (ww_fleet_capacity). NULL on failure (logged). */
static PGresult *s_capacity(ww_slo_eval_t *self, const ww_phase_t *ph, int64_t now_ns,
                            const char *now_iso)
{
    PGresult *r = NULL;
    if (self->fleet_stale_ns > 0) {
        char stale[32];
        snprintf(stale, sizeof stale, "%lld ms", (long long)(self->fleet_stale_ns / WW_NS_PER_MS));
        const char *p[] = {ph->id, stale};
        s_exec(self,
               "SELECT reporting_nodes, healthy_nodes, delivered_kw, power_kw, hotspot_max_c,"
               " outlet_max_c, throttled_share, j_per_token, stale_sites,"
               " cardinality(stale_sites) FROM ww_fleet_capacity($1, $2::interval)",
               2, p, &r);
        return r;
    }
    char from[48], hot[32];
    s_iso(now_ns - self->conf->healthy_window_ns, from, sizeof from);
    snprintf(hot, sizeof hot, "%.17g", ph->hotspot_max_c);
    const char *p[] = {ph->id, from, now_iso, hot};
    s_exec(self, "SELECT *, NULL::text[], 0 FROM ww_site_capacity_write($1, $2, $3, $4)", 4, p, &r);
    return r;
}

/* Logs a phase's stale sites (a fleet database) when they change: each set once, and the
 * return of every site. */
static void s_note_stale(ww_slo_eval_t *self, const char *phase, const char *sites)
{
    char key[600];
    snprintf(key, sizeof key, "%s=%.500s", phase, sites);
    if (s_strset_has(&self->stale, key)) {
        return;
    }
    bool had = false;
    size_t lp = strlen(phase);
    for (size_t i = 0; i < self->stale.n; i++) {
        if (strncmp(self->stale.items[i], phase, lp) == 0 && self->stale.items[i][lp] == '=') {
            had = strcmp(self->stale.items[i] + lp + 1, "{}") != 0;
            s_strset_del(&self->stale, self->stale.items[i]);
            break;
        }
    }
    if (strcmp(sites, "{}") != 0) {
        WW_WARN("phase %s: no recent figures from sites %.500s (fleet.stale_after %lld s): their "
                "last figures are counted, marked stale",
                phase, sites, (long long)(self->fleet_stale_ns / WW_NS_PER_S));
    } else if (had) {
        WW_INFO("phase %s: every site's figures are current again", phase);
    }
    s_strset_add(&self->stale, key);
}

static int s_eval_capacity(ww_slo_eval_t *self, const ww_phase_t *ph, int64_t now_ns,
                           const char *now_iso)
{
    PGresult *r = s_capacity(self, ph, now_ns, now_iso);
    if (!r) {
        return -EIO;
    }
    int reporting = atoi(PQgetvalue(r, 0, 0)), healthy = atoi(PQgetvalue(r, 0, 1));
    double delivered_mw = atof(PQgetvalue(r, 0, 2)) / 1000.0;
    double power_mw = atof(PQgetvalue(r, 0, 3)) / 1000.0;
    bool has_hot = !PQgetisnull(r, 0, 4), has_out = !PQgetisnull(r, 0, 5);
    double hotspot = has_hot ? atof(PQgetvalue(r, 0, 4)) : 0;
    double outlet = has_out ? atof(PQgetvalue(r, 0, 5)) : 0;
    char throttled[32] = "", jpt[32] = "";
    snprintf(throttled, sizeof throttled, "%s", PQgetvalue(r, 0, 6));
    snprintf(jpt, sizeof jpt, "%s", PQgetvalue(r, 0, 7));
    bool null_thr = PQgetisnull(r, 0, 6), null_jpt = PQgetisnull(r, 0, 7);
    const char *stale_sites = PQgetisnull(r, 0, 8) ? NULL : PQgetvalue(r, 0, 8);
    if (stale_sites) {
        s_note_stale(self, ph->id, stale_sites);
    }
    self->stale_pairs += atoll(PQgetvalue(r, 0, 9));
    bool live = now_ns >= ph->go_live_ns;
    double share = ph->contracted_mw > 0 ? delivered_mw / ph->contracted_mw : NAN;
    bool breach = live && ph->contracted_mw > 0 && share < ph->capacity_breach_share;
    char rep[16], hea[16], del[32], con[32], sh[32], pw[32], hs[32], os[32];
    snprintf(rep, sizeof rep, "%d", reporting);
    snprintf(hea, sizeof hea, "%d", healthy);
    snprintf(del, sizeof del, "%.9g", delivered_mw);
    snprintf(con, sizeof con, "%.9g", ph->contracted_mw);
    snprintf(sh, sizeof sh, "%.9g", share);
    snprintf(pw, sizeof pw, "%.9g", power_mw);
    snprintf(hs, sizeof hs, "%.9g", hotspot);
    snprintf(os, sizeof os, "%.9g", outlet);
    const char *q[] = {now_iso,
                       ph->id,
                       live ? "t" : "f",
                       rep,
                       hea,
                       del,
                       con,
                       isnan(share) ? NULL : sh,
                       pw,
                       has_hot ? hs : NULL,
                       has_out ? os : NULL,
                       null_thr ? NULL : throttled,
                       null_jpt ? NULL : jpt,
                       breach ? "t" : "f",
                       stale_sites};
    int rc = s_exec(self,
                    "INSERT INTO capacity_evaluations (time, phase, live, reporting_nodes,"
                    " healthy_nodes, delivered_mw, contracted_mw, delivered_share, power_mw,"
                    " hotspot_max_c, outlet_max_c, throttled_share, j_per_token, breach,"
                    " stale_sites) VALUES"
                    " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                    15, q, NULL);
    PQclear(r);
    if (rc < 0) {
        return -EIO;
    }
    s_rule_t cap = {"CapacityBreach", ph->id, "capacity", "*", "page", breach, "", "", ""};
    snprintf(cap.summary, sizeof cap.summary,
             "%s delivers %.3f MW of %.3f MW contracted (%.1f%%, breach below %.0f%%): %d of %d "
             "reporting nodes healthy",
             ph->id, delivered_mw, ph->contracted_mw, isnan(share) ? 0 : share * 100,
             ph->capacity_breach_share * 100, healthy, reporting);
    snprintf(cap.annotations, sizeof cap.annotations,
             "{\"delivered_mw\":\"%.6g\",\"contracted_mw\":\"%.6g\",\"healthy_nodes\":\"%d\"}",
             delivered_mw, ph->contracted_mw, healthy);
    snprintf(cap.details, sizeof cap.details,
             "{\"delivered_mw\":%.9g,\"contracted_mw\":%.9g,\"healthy_nodes\":%d,"
             "\"reporting_nodes\":%d}",
             delivered_mw, ph->contracted_mw, healthy, reporting);
    s_rule_t power = {"PowerCeiling",
                      ph->id,
                      "power",
                      "*",
                      "ticket",
                      power_mw > ph->power_ceiling_mw,
                      "",
                      "",
                      ""};
    snprintf(power.summary, sizeof power.summary, "%s draws %.3f MW, ceiling %.3f MW", ph->id,
             power_mw, ph->power_ceiling_mw);
    snprintf(power.details, sizeof power.details, "{\"power_mw\":%.9g,\"ceiling_mw\":%.9g}",
             power_mw, ph->power_ceiling_mw);
    s_rule_t thermal = {"ThermalLimit",
                        ph->id,
                        "thermal",
                        "*",
                        "ticket",
                        (has_hot && hotspot > ph->hotspot_max_c) ||
                            (has_out && outlet > ph->outlet_max_c),
                        "",
                        "",
                        ""};
    snprintf(thermal.summary, sizeof thermal.summary,
             "%s hottest wafer %.1f C (limit %.1f), coolant outlet %.1f C (limit %.1f)", ph->id,
             hotspot, ph->hotspot_max_c, outlet, ph->outlet_max_c);
    snprintf(thermal.details, sizeof thermal.details,
             "{\"hotspot_max_c\":%.9g,\"outlet_max_c\":%.9g,\"throttled_share\":%s}", hotspot,
             outlet, null_thr ? "null" : throttled);
    if (s_apply(self, &cap, now_ns) < 0 || s_apply(self, &power, now_ns) < 0 ||
        s_apply(self, &thermal, now_ns) < 0) {
        return -EIO;
    }
    return 0;
}

/* Nodes that declare a phase the configuration does not know: reported once each. */
static void s_report_unknown(ww_slo_eval_t *self)
{
    PGresult *r;
    if (s_exec(self,
               "SELECT phase, count(*) FROM nodes WHERE phase NOT IN (SELECT id FROM phases"
               " WHERE retired_at IS NULL)"
               " GROUP BY phase ORDER BY phase",
               0, NULL, &r) < 0) {
        return;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        const char *phase = PQgetvalue(r, i, 0);
        if (s_strset_has(&self->unknown, phase)) {
            continue;
        }
        WW_WARN("%s node(s) declare phase \"%s\", which is not configured: not evaluated",
                PQgetvalue(r, i, 1), phase);
        s_strset_add(&self->unknown, phase);
    }
    PQclear(r);
}

static void s_push_all(ww_slo_eval_t *self)
{
    if (self->n_push == 0) {
        return;
    }
    ww_am_alert_t *a = calloc(self->n_push, sizeof *a);
    if (!a) {
        self->n_push = 0;
        return;
    }
    for (size_t i = 0; i < self->n_push; i++) {
        const s_push_t *p = &self->push[i];
        a[i].alertname = p->alertname;
        a[i].phase = p->phase;
        a[i].model = p->model;
        a[i].slo = p->slo;
        a[i].severity = p->severity;
        a[i].summary = p->summary;
        a[i].description = p->summary;
        a[i].extra_annotations_json = p->annotations[0] ? p->annotations : NULL;
        a[i].starts_ns = p->starts_ns;
        a[i].ends_ns = p->ends_ns;
    }
    char why[256];
    if (ww_am_post(self->conf->alertmanager_url, a, self->n_push,
                   self->conf->alertmanager_timeout_ns, why, sizeof why) < 0) {
        WW_COMPLAIN(&self->am_fail,
                    "Alertmanager %s: %s (alerts stay in PostgreSQL and are "
                    "sent again at the next evaluation)",
                    self->conf->alertmanager_url, why);
    } else {
        WW_RECOVERED(&self->am_fail, "Alertmanager %s reachable again",
                     self->conf->alertmanager_url);
    }
    free(a);
    self->n_push = 0;
}

/* The evaluator's heartbeat (slo_evaluator, migration 0012): `waferwatch slo` tells a
 * current state from one an evaluator that stopped left behind. */
static int s_heartbeat(ww_slo_eval_t *self, const char *now_iso)
{
    size_t n_slos = 0;
    for (size_t i = 0; i < self->conf->phases.n; i++) {
        n_slos += ((const ww_phase_t *)self->conf->phases.items)[i].slos.n;
    }
    char interval[32], phases[16], slos[16], loaded[48], host[256] = "", pid[16];
    snprintf(interval, sizeof interval, "%.9g", (double)self->conf->interval_ns / 1e9);
    snprintf(phases, sizeof phases, "%zu", self->conf->phases.n);
    snprintf(slos, sizeof slos, "%zu", n_slos);
    s_iso(self->loaded_ns, loaded, sizeof loaded);
    if (gethostname(host, sizeof host - 1) != 0) {
        snprintf(host, sizeof host, "?");
    }
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    const char *p[] = {now_iso, interval, phases, slos, loaded, host, pid};
    return s_exec(self,
                  "INSERT INTO slo_evaluator AS e (id, evaluated_at, interval_s, phases, slos,"
                  " loaded_at, host, pid) VALUES (true, $1, $2, $3, $4, $5, $6, $7)"
                  " ON CONFLICT (id) DO UPDATE SET evaluated_at = EXCLUDED.evaluated_at,"
                  " interval_s = EXCLUDED.interval_s, phases = EXCLUDED.phases,"
                  " slos = EXCLUDED.slos, loaded_at = EXCLUDED.loaded_at, host = EXCLUDED.host,"
                  " pid = EXCLUDED.pid",
                  7, p, NULL);
}

/* The longest window evaluated: the 3d window or an SLO's period, as scaled. */
static int64_t s_longest_ns(const ww_slo_eval_t *self)
{
    int64_t longest = s_windows[W3D].seconds * WW_NS_PER_S;
    for (size_t i = 0; i < self->conf->phases.n; i++) {
        const ww_phase_t *ph = &((const ww_phase_t *)self->conf->phases.items)[i];
        for (size_t k = 0; k < ph->slos.n; k++) {
            int64_t p = ((const ww_slo_t *)ph->slos.items)[k].period_ns;
            longest = p > longest ? p : longest;
        }
    }
    return (int64_t)((double)longest * self->conf->window_scale);
}

/* Leadership lost (another collector took the lease over): said once, then this
 * evaluator follows; what it meant to push is dropped. Call outside a transaction. */
static void s_deposed(ww_slo_eval_t *self, const char *when)
{
    int64_t term = 0;
    char holder[300] = "?";
    if (self->conn) {
        (void)ww_slo_lease_read(self->conn, &term, holder, sizeof holder);
    }
    WW_WARN("deposed %s: this collector led SLO evaluation in term %lld, term %lld is now "
            "held by %s; nothing more of term %lld is written, notified or pushed; following",
            when, (long long)self->term, (long long)term, holder, (long long)self->term);
    self->term = 0;
    self->term_s[0] = '\0';
    self->seen_term = term;
    self->n_push = 0;
}

/* The latest episode of each alert, when it resolved in the last 5 minutes (or 3 leases,
 * when longer): to Alertmanager again with its endsAt, at every evaluation. A former leader
 * may have committed a resolution and died before its push; or, stopped between its last
 * renewal and its push, it may send a firing alert that a newer leader has resolved since
 * (Alertmanager has no fencing): the next evaluation of the leader corrects it. 5 minutes:
 * Alertmanager's default resolve_timeout, after which a firing alert it no longer hears of
 * resolves anyway. An older episode is never sent: for Alertmanager it would replace the
 * newer one of the same labels. A second endsAt for an alert it already resolved changes
 * nothing there (nor notifies again). */
static int s_repush(ww_slo_eval_t *self)
{
    char secs[32];
    double window = 3.0 * (double)ww_slo_lease_ns(self->conf->interval_ns) / WW_NS_PER_S;
    snprintf(secs, sizeof secs, "%.3f", window > 300 ? window : 300);
    const char *p[] = {secs};
    PGresult *r;
    if (s_exec(self,
               "SELECT alertname, phase, slo, model, severity, summary,"
               " (extract(epoch from started_at) * 1e9)::bigint,"
               " (extract(epoch from resolved_at) * 1e9)::bigint FROM alerts a"
               " WHERE state = 'resolved' AND resolved_at > now() - make_interval(secs =>"
               " $1::double precision) AND NOT EXISTS (SELECT 1 FROM alerts b WHERE"
               " b.alertname = a.alertname AND b.phase = a.phase AND b.slo = a.slo AND"
               " b.severity = a.severity AND b.id > a.id) ORDER BY id",
               1, p, &r) < 0) {
        return -EIO;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        s_queue_row(self, r, i, "", strtoll(PQgetvalue(r, i, 7), NULL, 10));
    }
    PQclear(r);
    return 0;
}

/* One evaluation by the leader. Returns 1 committed (and pushed when still the leader), 0
 * deposed (rolled back: another collector leads), -EIO failed (rolled back, see the log). */
static int s_evaluate(ww_slo_eval_t *self)
{
    if (s_connect(self) < 0) {
        return -EIO;
    }
    int64_t now = ww_time_now_ns();
    char now_iso[48];
    s_iso(now, now_iso, sizeof now_iso);
    self->n_push = 0;
    self->stale_pairs = 0;
    if (s_exec(self, "BEGIN", 0, NULL, NULL) < 0) {
        return -EIO;
    }
    /* First, so that this transaction holds the lease row to its COMMIT: a takeover waits
     * for it, or took the lease already and then this renewal finds no row. */
    int lease = ww_slo_lease_renew(self->conn, self->term, self->conf->interval_ns);
    if (lease <= 0) {
        PQclear(PQexec(self->conn, "ROLLBACK"));
        if (lease == 0) {
            s_deposed(self, "before an evaluation");
            return 0;
        }
        WW_WARN("cannot renew the SLO evaluation lease: %.*s",
                (int)strcspn(PQerrorMessage(self->conn), "\n"), PQerrorMessage(self->conn));
        return -EIO;
    }
    /* The hourly rollups the long windows read instead of 60 minute rows each (migration
     * 0010): on the first cycle every hour of the longest window (built once, then only
     * checked), then the hours that completed since and late minutes of those before. */
    char back[32];
    snprintf(back, sizeof back, "%lld",
             (long long)((self->hours_built ? 3 * 3600 * WW_NS_PER_S : s_longest_ns(self)) /
                         WW_NS_PER_S) +
                 1);
    const char *bp[] = {back};
    /* Not in a fleet database: its hour rows arrive from the sites, and one built here
     * would collide with theirs (the subscription would stop on the duplicate key). */
    int rc =
        self->fleet_stale_ns > 0
            ? 0
            : s_exec(self,
                     "SELECT ww_rollup_hours(now() - make_interval(secs => $1::bigint), now())", 1,
                     bp, NULL);
    if (rc == 0) {
        rc = s_repush(self); /* before this evaluation resolves anything */
    }
    if (rc == 0 && self->reconcile) {
        rc = s_reconcile(self, now);
    }
    for (size_t i = 0; rc == 0 && i < self->conf->phases.n; i++) {
        const ww_phase_t *ph = &((const ww_phase_t *)self->conf->phases.items)[i];
        rc = s_eval_capacity(self, ph, now, now_iso);
        for (size_t k = 0; rc == 0 && k < ph->slos.n; k++) {
            rc = s_eval_slo(self, ph, &((const ww_slo_t *)ph->slos.items)[k], now, now_iso);
        }
    }
    if (rc == 0) {
        rc = s_heartbeat(self, now_iso);
    }
    /* Again just before COMMIT: a slow evaluation keeps a lease that lasts from its end. */
    if (rc == 0 && ww_slo_lease_renew(self->conn, self->term, self->conf->interval_ns) != 1) {
        rc = -EIO;
    }
    if (rc == 0) {
        rc = s_exec(self, "COMMIT", 0, NULL, NULL);
    }
    if (rc == 0) {
        self->hours_built = true;
        self->reconcile = false;
        ww_cmetrics_fleet_stale(self->metrics, self->stale_pairs);
    }
    if (rc != 0) {
        PQclear(PQexec(self->conn, "ROLLBACK"));
        self->n_push = 0;
        return -EIO;
    }
    s_report_unknown(self);
    /* Alertmanager hears only from the leader: an evaluator stopped between its COMMIT and
     * here must not, once resumed, send what a newer leader has changed since. */
    lease = ww_slo_lease_renew(self->conn, self->term, self->conf->interval_ns);
    if (lease == 0) {
        s_deposed(self, "after an evaluation");
        return 1;
    }
    s_push_all(self);
    return 1;
}

/* Every poll period: the leader renews its lease, a follower tries to take it over.
 * Returns true when this poll took it over. */
static bool s_poll(ww_slo_eval_t *self)
{
    int64_t t0 = ww_time_mono_ns();
    if (s_connect(self) < 0 && self->term > 0 && t0 > self->held_until) {
        /* Cut off from the database past its lease: another collector may lead by now. */
        WW_WARN("lost the SLO evaluation lease of term %lld: no renewal reached PostgreSQL "
                "within the lease (%lld ms); following",
                (long long)self->term,
                (long long)(ww_slo_lease_ns(self->conf->interval_ns) / WW_NS_PER_MS));
        self->term = 0;
        self->term_s[0] = '\0';
        self->n_push = 0;
    }
    if (!self->conn) {
        return false;
    }
    if (self->term > 0) {
        int rc = ww_slo_lease_renew(self->conn, self->term, self->conf->interval_ns);
        if (rc == 1) {
            self->held_until = t0 + ww_slo_lease_ns(self->conf->interval_ns);
        }
        if (rc == 0) {
            s_deposed(self, "at a renewal of its lease");
        } else if (rc < 0) {
            WW_COMPLAIN(&self->lease_fail, "cannot renew the SLO evaluation lease: %.*s",
                        (int)strcspn(PQerrorMessage(self->conn), "\n"), PQerrorMessage(self->conn));
        } else {
            WW_RECOVERED(&self->lease_fail, "SLO evaluation lease renewed again");
        }
        return false;
    }
    int64_t term = 0;
    char prev[300] = "";
    int rc = ww_slo_lease_take(self->conn, self->holder, self->conf->interval_ns, &term, prev,
                               sizeof prev);
    if (rc < 0) {
        WW_COMPLAIN(&self->lease_fail, "cannot poll the SLO evaluation lease: %.*s",
                    (int)strcspn(PQerrorMessage(self->conn), "\n"), PQerrorMessage(self->conn));
        return false;
    }
    WW_RECOVERED(&self->lease_fail, "SLO evaluation lease polled again");
    if (rc == 0) {
        char holder[300];
        (void)ww_slo_lease_read(self->conn, &self->seen_term, holder, sizeof holder);
        return false;
    }
    self->term = term;
    self->seen_term = term;
    self->held_until = t0 + ww_slo_lease_ns(self->conf->interval_ns);
    snprintf(self->term_s, sizeof self->term_s, "%lld", (long long)term);
    self->reconcile = true;
    WW_INFO("leading SLO evaluation as %s, term %lld (%s%s%s)", self->holder, (long long)term,
            *prev ? "the lease of " : "the first leader", prev, *prev ? " had expired" : "");
    return true;
}

/* SIGHUP: re-reads the phases file. A file with any error is refused whole and the
 * configuration in force stays (as the allowlist's reload does): half a new file could
 * retire every alert of the phases it failed to read. */
static void s_reload(ww_slo_eval_t *self)
{
    if (!self->path || !*self->path) {
        WW_WARN("SIGHUP: no phases file to re-read");
        return;
    }
    ww_slo_conf_t fresh;
    ww_cfg_err_t err = {{0}};
    if (ww_slo_conf_load(self->path, &fresh, &err) < 0) {
        WW_ERROR("phases file not reloaded, the previous one stays in force: %s", err.msg);
        return;
    }
    int64_t longest = s_longest_ns(self);
    if (self->has_owned) {
        ww_slo_conf_free(&self->owned);
    }
    self->owned = fresh;
    self->has_owned = true;
    self->conf = &self->owned;
    self->reconcile = true;
    if (s_longest_ns(self) > longest) {
        self->hours_built = false; /* build the hours of the longer window once */
    }
    self->loaded_ns = ww_time_now_ns();
    /* The lease follows the interval: so does the session's timeout (ww_slo_lease.h). */
    if (self->conn && ww_slo_lease_session(self->conn, self->conf->interval_ns) < 0) {
        PQfinish(self->conn); /* reconnected, and set up, at the next poll */
        self->conn = NULL;
    }
    size_t n_slos = 0;
    for (size_t i = 0; i < self->conf->phases.n; i++) {
        n_slos += ((const ww_phase_t *)self->conf->phases.items)[i].slos.n;
    }
    WW_INFO("phases file %s reloaded: %zu phases, %zu SLOs", self->path, self->conf->phases.n,
            n_slos);
}

static void *s_thread(void *arg)
{
    ww_slo_eval_t *self = arg;
    /* The first poll waits one interval: the ingest path migrates the schema first. */
    int64_t next = ww_time_mono_ns() + self->conf->interval_ns, next_poll = next;
    while (!atomic_load(&self->stop)) {
        if (self->reload && *self->reload) {
            *self->reload = 0;
            s_reload(self);
        }
        if (ww_time_mono_ns() >= next_poll) {
            bool took = s_poll(self);
            next_poll = ww_time_mono_ns() + ww_slo_lease_poll_ns(self->conf->interval_ns);
            ww_cmetrics_slo_leader(self->metrics, self->term > 0, self->seen_term, took);
            if (took) {
                next = ww_time_mono_ns(); /* the new leader evaluates at once */
            }
        }
        if (self->term > 0 && ww_time_mono_ns() >= next) {
            int64_t t0 = ww_time_mono_ns();
            int rc = s_evaluate(self);
            if (rc != 0) {
                ww_cmetrics_slo_evaluated(self->metrics, rc > 0,
                                          (double)(ww_time_mono_ns() - t0) / WW_NS_PER_S);
            }
            ww_cmetrics_slo_leader(self->metrics, self->term > 0, self->seen_term, false);
            next += self->conf->interval_ns;
            if (next < ww_time_mono_ns()) {
                next = ww_time_mono_ns() + self->conf->interval_ns;
            }
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

ww_slo_eval_t *ww_slo_eval_start(const ww_slo_conf_t *conf, const char *path, const char *conninfo,
                                 int64_t fleet_stale_ns, volatile sig_atomic_t *reload,
                                 ww_cmetrics_t *metrics)
{
    ww_slo_eval_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->conf = conf;
    self->fleet_stale_ns = fleet_stale_ns;
    self->metrics = metrics;
    self->reload = reload;
    self->reconcile = true;
    self->loaded_ns = ww_time_now_ns();
    self->conninfo = strdup(conninfo ? conninfo : "");
    self->path = path ? strdup(path) : NULL;
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) {
        snprintf(host, sizeof host, "?");
    }
    snprintf(self->holder, sizeof self->holder, "%s:%ld", host, (long)getpid());
    atomic_init(&self->stop, false);
    if (!self->conninfo || (path && !self->path) ||
        pthread_create(&self->thread, NULL, s_thread, self) != 0) {
        free(self->path);
        free(self->conninfo);
        free(self);
        WW_ERROR("cannot start the SLO evaluation thread");
        return NULL;
    }
    WW_INFO("evaluating %zu phases every %lld ms (window scale %g)%s%s%s", conf->phases.n,
            (long long)(conf->interval_ns / WW_NS_PER_MS), conf->window_scale,
            fleet_stale_ns > 0 ? " for the fleet, from the sites' figures" : "",
            conf->alertmanager_url && *conf->alertmanager_url ? ", alerts to " : "",
            conf->alertmanager_url && *conf->alertmanager_url ? conf->alertmanager_url : "");
    return self;
}

void ww_slo_eval_stop(ww_slo_eval_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    ww_slo_eval_t *self = *self_p;
    atomic_store(&self->stop, true);
    pthread_join(self->thread, NULL);
    /* A rolling restart hands leadership over at the followers' next poll, not a lease
     * later. */
    if (self->term > 0 && self->conn && PQstatus(self->conn) == CONNECTION_OK &&
        ww_slo_lease_release(self->conn, self->term) == 1) {
        WW_INFO("handed the SLO evaluation lease of term %lld back", (long long)self->term);
    }
    if (self->conn) {
        PQfinish(self->conn);
    }
    s_strset_free(&self->unknown);
    s_strset_free(&self->silent);
    s_strset_free(&self->stale);
    free(self->push);
    if (self->has_owned) {
        ww_slo_conf_free(&self->owned);
    }
    free(self->path);
    free(self->conninfo);
    free(self);
    *self_p = NULL;
}
