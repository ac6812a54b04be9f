/* slo_eval: see slo_eval.h. */
#define WW_LOG_MODULE "slo"
#include "slo_eval.h"

#include "alertmanager.h"
#include "collector_metrics.h"
#include "ww_log.h"
#include "ww_time.h"

#include <errno.h>
#include <libpq-fe.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* One alert a rule wants firing (or not) at this evaluation. */
typedef struct {
    const char *alertname, *phase, *slo, *model, *severity;
    bool firing;
    char summary[256];
    char details[1024];    /* JSON object */
    char annotations[512]; /* JSON object of strings, for Alertmanager */
} s_rule_t;

/* An Alertmanager notification to send after the commit. */
typedef struct {
    char alertname[32], phase[64], slo[64], model[64], severity[16];
    char summary[256], details[1024], annotations[512];
    int64_t starts_ns, ends_ns;
} s_push_t;

struct ww_slo_eval {
    const ww_slo_conf_t *conf;
    char *conninfo;
    PGconn *conn;
    pthread_t thread;
    atomic_bool stop;
    ww_complain_t conn_fail, am_fail;
    s_push_t *push;
    size_t n_push, cap_push;
    char **unknown; /* phases seen in nodes but not configured, already reported */
    size_t n_unknown;
    bool hours_built; /* the hourly rollups of the longest window were built once */
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
    /* The configured phases, for SQL and dashboards. */
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
                   " outlet_max_c = EXCLUDED.outlet_max_c, updated_at = now()",
                   8, params, NULL) < 0) {
            return -EIO;
        }
    }
    return 0;
}

static void s_queue_push(ww_slo_eval_t *self, const s_rule_t *r, int64_t starts_ns, int64_t ends_ns)
{
    if (!self->conf->alertmanager_url || !*self->conf->alertmanager_url) {
        return;
    }
    if (self->n_push == self->cap_push) {
        size_t cap = self->cap_push ? self->cap_push * 2 : 16;
        s_push_t *np = realloc(self->push, cap * sizeof *np);
        if (!np) {
            return;
        }
        self->push = np;
        self->cap_push = cap;
    }
    s_push_t *p = &self->push[self->n_push++];
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
        const char *p[] = {r->alertname, r->phase,   r->slo,    r->model,
                           r->severity,  r->summary, r->details};
        rc = s_exec(self,
                    "WITH a AS (INSERT INTO alerts (alertname, phase, slo, model, severity, state,"
                    " started_at, last_eval_at, summary, details) VALUES ($1, $2, $3, $4, $5,"
                    " 'firing', now(), now(), $6, $7::jsonb) RETURNING id)"
                    " INSERT INTO alert_transitions (alert_id, alertname, phase, slo, severity,"
                    " to_state, details) SELECT id, $1, $2, $3, $5, 'firing', $7::jsonb FROM a",
                    7, p, NULL);
        WW_WARN("FIRING %s %s: %s", r->severity, r->alertname, r->summary);
    } else if (r->firing && open) {
        const char *p[] = {id, r->summary, r->details};
        rc = s_exec(self,
                    "UPDATE alerts SET last_eval_at = now(), summary = $2, details = $3::jsonb"
                    " WHERE id = $1",
                    3, p, NULL);
    } else if (!r->firing && open) {
        const char *p[] = {id, r->details};
        rc = s_exec(self,
                    "WITH a AS (UPDATE alerts SET state = 'resolved', resolved_at = now(),"
                    " last_eval_at = now(), details = $2::jsonb WHERE id = $1 RETURNING *)"
                    " INSERT INTO alert_transitions (alert_id, alertname, phase, slo, severity,"
                    " to_state, details) SELECT id, alertname, phase, slo, severity,"
                    " 'resolved', $2::jsonb FROM a",
                    2, p, NULL);
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
    const char *p[] = {phase, slo->model, slo->metric, thr, from, to};
    PGresult *r;
    if (s_exec(self, "SELECT good, total FROM ww_sli($1, $2, $3, $4, $5, $6)", 6, p, &r) < 0) {
        return -EIO;
    }
    *good = atoll(PQgetvalue(r, 0, 0));
    *total = atoll(PQgetvalue(r, 0, 1));
    PQclear(r);
    return 0;
}

static int s_eval_slo(ww_slo_eval_t *self, const ww_phase_t *ph, const ww_slo_t *slo,
                      int64_t now_ns, const char *now_iso)
{
    double burn[WW_N_WINDOWS];
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
            len += (size_t)snprintf(rates + len, sizeof rates - len, "%s\"%s\":%.4g", w ? "," : "",
                                    wname, b);
            continue;
        }
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
                " budget_remaining = EXCLUDED.budget_remaining, burn_rates = EXCLUDED.burn_rates",
                10, q, NULL) < 0) {
            return -EIO;
        }
        s_rule_t page = {"SLOBurnRate", ph->id, slo->name, slo->model, "page", false, "", "", ""};
        s_rule_t ticket = {"SLOBurnRate", ph->id, slo->name, slo->model, "ticket",
                           false,         "",     "",        ""};
        page.firing = (burn[W1H] > 14.4 && burn[W5M] > 14.4) || (burn[W6H] > 6 && burn[W30M] > 6);
        ticket.firing = (burn[W1D] > 3 && burn[W2H] > 3) || (burn[W3D] > 1 && burn[W6H] > 1);
        s_rule_t *rules[] = {&page, &ticket};
        for (int k = 0; k < 2; k++) {
            snprintf(rules[k]->summary, sizeof rules[k]->summary,
                     "%s %s (%s %s, objective %g): error budget burning %.1fx over 1h, %.1fx "
                     "over 5m, %.1fx over 6h",
                     ph->id, slo->name, slo->model, slo->metric, slo->objective, burn[W1H],
                     burn[W5M], burn[W6H]);
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

static int s_eval_capacity(ww_slo_eval_t *self, const ww_phase_t *ph, int64_t now_ns,
                           const char *now_iso)
{
    char from[48], hot[32];
    s_iso(now_ns - self->conf->healthy_window_ns, from, sizeof from);
    snprintf(hot, sizeof hot, "%.17g", ph->hotspot_max_c);
    const char *p[] = {ph->id, from, now_iso, hot};
    PGresult *r;
    if (s_exec(self,
               "SELECT reporting_nodes, healthy_nodes, delivered_kw, power_kw, hotspot_max_c,"
               " outlet_max_c, throttled_share, j_per_token FROM ww_phase_capacity($1, $2, $3, $4)",
               4, p, &r) < 0) {
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
    PQclear(r);
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
                       breach ? "t" : "f"};
    if (s_exec(self,
               "INSERT INTO capacity_evaluations (time, phase, live, reporting_nodes,"
               " healthy_nodes, delivered_mw, contracted_mw, delivered_share, power_mw,"
               " hotspot_max_c, outlet_max_c, throttled_share, j_per_token, breach) VALUES"
               " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
               14, q, NULL) < 0) {
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
               "SELECT phase, count(*) FROM nodes WHERE phase NOT IN (SELECT id FROM phases)"
               " GROUP BY phase ORDER BY phase",
               0, NULL, &r) < 0) {
        return;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        const char *phase = PQgetvalue(r, i, 0);
        bool known = false;
        for (size_t k = 0; k < self->n_unknown && !known; k++) {
            known = strcmp(self->unknown[k], phase) == 0;
        }
        if (known) {
            continue;
        }
        WW_WARN("%s node(s) declare phase \"%s\", which is not configured: not evaluated",
                PQgetvalue(r, i, 1), phase);
        char **nu = realloc(self->unknown, (self->n_unknown + 1) * sizeof *nu);
        if (nu) {
            self->unknown = nu;
            self->unknown[self->n_unknown] = strdup(phase);
            if (self->unknown[self->n_unknown]) {
                self->n_unknown++;
            }
        }
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

/* Returns true when the evaluation committed. */
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

static bool s_evaluate(ww_slo_eval_t *self)
{
    if (s_connect(self) < 0) {
        return false;
    }
    int64_t now = ww_time_now_ns();
    char now_iso[48];
    s_iso(now, now_iso, sizeof now_iso);
    self->n_push = 0;
    if (s_exec(self, "BEGIN", 0, NULL, NULL) < 0) {
        return false;
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
    int rc =
        s_exec(self, "SELECT ww_rollup_hours(now() - make_interval(secs => $1::bigint), now())", 1,
               bp, NULL);
    for (size_t i = 0; rc == 0 && i < self->conf->phases.n; i++) {
        const ww_phase_t *ph = &((const ww_phase_t *)self->conf->phases.items)[i];
        rc = s_eval_capacity(self, ph, now, now_iso);
        for (size_t k = 0; rc == 0 && k < ph->slos.n; k++) {
            rc = s_eval_slo(self, ph, &((const ww_slo_t *)ph->slos.items)[k], now, now_iso);
        }
    }
    if (rc == 0) {
        rc = s_exec(self, "COMMIT", 0, NULL, NULL);
    }
    if (rc == 0) {
        self->hours_built = true;
    }
    if (rc != 0) {
        PQclear(PQexec(self->conn, "ROLLBACK"));
        self->n_push = 0;
        return false;
    }
    s_report_unknown(self);
    s_push_all(self);
    return true;
}

static void *s_thread(void *arg)
{
    ww_slo_eval_t *self = arg;
    /* The first evaluation waits one interval: the ingest path migrates the schema first. */
    int64_t next = ww_time_mono_ns() + self->conf->interval_ns;
    while (!atomic_load(&self->stop)) {
        if (ww_time_mono_ns() >= next) {
            int64_t t0 = ww_time_mono_ns();
            bool ok = s_evaluate(self);
            ww_cmetrics_slo_evaluated(ww_cmetrics_global(), ok,
                                      (double)(ww_time_mono_ns() - t0) / WW_NS_PER_S);
            next += self->conf->interval_ns;
            if (next < ww_time_mono_ns()) {
                next = ww_time_mono_ns() + self->conf->interval_ns;
            }
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

ww_slo_eval_t *ww_slo_eval_start(const ww_slo_conf_t *conf, const char *conninfo)
{
    ww_slo_eval_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->conf = conf;
    self->conninfo = strdup(conninfo ? conninfo : "");
    atomic_init(&self->stop, false);
    if (!self->conninfo || pthread_create(&self->thread, NULL, s_thread, self) != 0) {
        free(self->conninfo);
        free(self);
        WW_ERROR("cannot start the SLO evaluation thread");
        return NULL;
    }
    WW_INFO("evaluating %zu phases every %lld ms (window scale %g)%s%s", conf->phases.n,
            (long long)(conf->interval_ns / WW_NS_PER_MS), conf->window_scale,
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
    if (self->conn) {
        PQfinish(self->conn);
    }
    for (size_t i = 0; i < self->n_unknown; i++) {
        free(self->unknown[i]);
    }
    free(self->unknown);
    free(self->push);
    free(self->conninfo);
    free(self);
    *self_p = NULL;
}
