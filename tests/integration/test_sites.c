/* Sites and a fleet view (issue 20 part 3) end to end: two site databases and a fleet
 * database, three private clusters, fed by PostgreSQL logical replication.
 *
 *   site A (wal_level logical)  <- collector A (ingest, SLO evaluator) <- agent a: nodes
 *                                  a-node-0, a-node-1 of phase p1, site label dc-a
 *   site B (wal_level logical)  <- collector B (ingest, SLO evaluator) <- agent b1: node
 *                                  b1-node of p1, agent b2: node b2-node of p2, label dc-b
 *   fleet                       <- subscriptions ww_site_a, ww_site_b to each site's
 *                                  publication waferwatch_site (made by hand, as the
 *                                  operations guide says); a collector of role fleet
 *                                  evaluates capacity from ww_fleet_capacity and the SLIs
 *                                  from the replicated rollups (ww_sli(..., tiers_only))
 *
 * 1. The fleet sees p1's three nodes over both sites and p2's one, no site stale.
 * 2. With the sites' collectors held (SIGSTOP) and the fleet caught up, the fleet's capacity
 *    figures of each phase (ww_fleet_capacity, and its newest capacity_evaluations row) are
 *    the union of the sites' newest site_capacity rows read on the sites; the fleet's SLIs
 *    over a closed minute-aligned range are the sums of the sites'; its latency_rollup_1m
 *    and site_capacity rows of each site label are the site's own, row for row.
 * 3. Site B's link is cut (its replication role locked out, its walsender ended) while
 *    its agents go on: the fleet marks dc-b stale and still counts its capacity (no breach,
 *    p1 still 3 nodes, p2 still 1); B's rows grow, the fleet's rows of dc-b do not.
 * 4. The link is restored: the fleet catches up from B's replication slot (the time is
 *    printed), dc-b is no longer stale, and once everything has stopped, the equalities of
 *    2 hold again over the whole test, the minutes written while cut off included. */
#include "harness.h"
#include "harness_http.h"
#include "ww_test.h"
#include "ww_time.h"

#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define STALE "3s"    /* fleet.stale_after */
#define WAIT_MS 30000 /* every wait: generous against a loaded 2-core CI machine */
#define TTFT_S 0.25   /* the SLI thresholds compared */
#define E2E_S 2.0
#define N_SITES 2

typedef struct {
    const char *label; /* nodes.site of its agents */
    h_pg_t pg;
    h_db_t db;
    char endpoint[256];
    pid_t collector;
    char log[256];
} s_site_t;

typedef struct {
    s_site_t site[N_SITES]; /* A, B */
    h_pg_t fpg;
    h_db_t fleet; /* its dir holds the keys, the phases file and every process's log */
    pid_t fleet_collector;
    char fleet_log[256];
    char slo_path[256];
    pid_t agent[3];
    char from[64], to[64]; /* the SLI range: minute-aligned, covers the whole test */
} s_fx_t;

/* The capacity figures of a phase: a union of site rows, or the fleet's. NAN for NULL. */
typedef struct {
    long long reporting, healthy;
    double delivered_kw, power_kw, hotspot, outlet;
    double throttled_share, j_per_token;
    char sites[128]; /* labels, sorted, comma-separated */
    char stale[128]; /* the fleet's stale labels */
} s_cap_t;

static double s_dbl(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NAN : strtod(PQgetvalue(r, row, col), NULL);
}

/* Equal within rel (relative), or both NULL. */
static bool s_near(double a, double b, double rel)
{
    if (isnan(a) || isnan(b)) {
        return isnan(a) && isnan(b);
    }
    return fabs(a - b) <= rel * fmax(fabs(a), fabs(b));
}

static void s_text(h_db_t *db, const char *sql, char *out, size_t cap)
{
    PGresult *r = h_query(db, sql);
    assert_int_equal(PQntuples(r), 1);
    snprintf(out, cap, "%s", PQgetisnull(r, 0, 0) ? "<null>" : PQgetvalue(r, 0, 0));
    PQclear(r);
}

/* Fails the test, showing the tail of the fleet collector's log. */
static void s_fail(s_fx_t *fx, const char *what)
{
    char *text = h_read_file(fx->fleet_log);
    size_t n = text ? strlen(text) : 0;
    fail_msg("%s\nfleet collector log (tail):\n%s", what,
             text ? text + (n > 4000 ? n - 4000 : 0) : "(none)");
}

/* The collectors must be alive while the test waits on them. */
static void s_alive(s_fx_t *fx)
{
    int status;
    if (fx->fleet_collector > 0 && waitpid(fx->fleet_collector, &status, WNOHANG) != 0) {
        fx->fleet_collector = 0;
        s_fail(fx, "the fleet collector exited");
    }
    for (int i = 0; i < N_SITES; i++) {
        if (fx->site[i].collector > 0 && waitpid(fx->site[i].collector, &status, WNOHANG) != 0) {
            char *text = h_read_file(fx->site[i].log);
            fx->site[i].collector = 0;
            fail_msg("site %s's collector exited:\n%s", fx->site[i].label, text ? text : "");
        }
    }
}

/* Polls sql (one text value) on db every 50 ms until it reads want; fails after timeout_ms
 * with what and the last value. Returns the milliseconds waited. */
static long long s_wait_text(s_fx_t *fx, h_db_t *db, const char *sql, const char *want,
                             int timeout_ms, const char *what)
{
    int64_t t0 = ww_time_mono_ns();
    char got[512];
    for (;;) {
        s_alive(fx);
        s_text(db, sql, got, sizeof got);
        long long ms = (long long)((ww_time_mono_ns() - t0) / WW_NS_PER_MS);
        if (strcmp(got, want) == 0) {
            return ms;
        }
        if (ms > timeout_ms) {
            char msg[1400];
            snprintf(msg, sizeof msg, "%s: after %lld ms still \"%s\", want \"%s\" (%s)", what, ms,
                     got, want, sql);
            s_fail(fx, msg);
        }
        h_sleep_ms(50);
    }
}

/* The newest fleet evaluation of a phase, as "reporting|stale_sites|breach". */
static void s_eval_sql(char *sql, size_t cap, const char *phase)
{
    snprintf(sql, cap,
             "SELECT coalesce((SELECT reporting_nodes || '|' || coalesce(stale_sites::text,"
             " '<null>') || '|' || breach FROM capacity_evaluations WHERE phase = '%s' ORDER BY"
             " time DESC LIMIT 1), '<none>')",
             phase);
}

static long long s_wait_eval(s_fx_t *fx, const char *phase, const char *want, int timeout_ms)
{
    char sql[400], what[128];
    s_eval_sql(sql, sizeof sql, phase);
    snprintf(what, sizeof what, "the fleet's newest capacity evaluation of %s", phase);
    return s_wait_text(fx, &fx->fleet, sql, want, timeout_ms, what);
}

/* ---- the figures compared ----------------------------------------------------------- */

/* The union of the newest site_capacity row of each site label of phase, read on every site
 * database, added up as the fleet must: sums of nodes and kW, maxima, throttled samples over
 * samples measuring it, power over tokens. */
static s_cap_t s_sites_union(s_fx_t *fx, const char *phase)
{
    s_cap_t u;
    memset(&u, 0, sizeof u);
    u.hotspot = u.outlet = NAN;
    long long thr_n = 0, thr_d = 0;
    double pw = NAN, tps = NAN;
    for (int i = 0; i < N_SITES; i++) {
        char sql[600];
        snprintf(sql, sizeof sql,
                 "SELECT site, reporting_nodes, healthy_nodes, delivered_kw, power_kw,"
                 " hotspot_max_c, outlet_max_c, throttled_samples, throttle_samples,"
                 " power_w_tokened, tokens_per_s FROM (SELECT DISTINCT ON (site) * FROM"
                 " site_capacity WHERE phase = '%s' ORDER BY site, time DESC) x ORDER BY site",
                 phase);
        PGresult *r = h_query(&fx->site[i].db, sql);
        for (int k = 0; k < PQntuples(r); k++) {
            size_t len = strlen(u.sites);
            snprintf(u.sites + len, sizeof u.sites - len, "%s%s", len ? "," : "",
                     PQgetvalue(r, k, 0));
            u.reporting += atoll(PQgetvalue(r, k, 1));
            u.healthy += atoll(PQgetvalue(r, k, 2));
            u.delivered_kw += s_dbl(r, k, 3);
            u.power_kw += s_dbl(r, k, 4);
            double hot = s_dbl(r, k, 5), out = s_dbl(r, k, 6);
            if (!isnan(hot) && (isnan(u.hotspot) || hot > u.hotspot)) {
                u.hotspot = hot;
            }
            if (!isnan(out) && (isnan(u.outlet) || out > u.outlet)) {
                u.outlet = out;
            }
            thr_n += atoll(PQgetvalue(r, k, 7));
            thr_d += atoll(PQgetvalue(r, k, 8));
            double p = s_dbl(r, k, 9), t = s_dbl(r, k, 10);
            if (!isnan(p)) {
                pw = isnan(pw) ? p : pw + p;
            }
            if (!isnan(t)) {
                tps = isnan(tps) ? t : tps + t;
            }
        }
        PQclear(r);
    }
    u.throttled_share = thr_d > 0 ? (double)thr_n / (double)thr_d : NAN;
    u.j_per_token = !isnan(tps) && tps != 0 ? pw / tps : NAN;
    return u;
}

/* The one row of r: the eight figures of ww_capacity_total, then the stale labels. */
static s_cap_t s_cap_row(PGresult *r)
{
    assert_int_equal(PQntuples(r), 1);
    s_cap_t f;
    memset(&f, 0, sizeof f);
    f.reporting = atoll(PQgetvalue(r, 0, 0));
    f.healthy = atoll(PQgetvalue(r, 0, 1));
    f.delivered_kw = s_dbl(r, 0, 2);
    f.power_kw = s_dbl(r, 0, 3);
    f.hotspot = s_dbl(r, 0, 4);
    f.outlet = s_dbl(r, 0, 5);
    f.throttled_share = s_dbl(r, 0, 6);
    f.j_per_token = s_dbl(r, 0, 7);
    snprintf(f.stale, sizeof f.stale, "%s", PQgetvalue(r, 0, 8));
    return f;
}

/* The fleet's figures of phase from ww_fleet_capacity. */
static s_cap_t s_fleet_capacity(s_fx_t *fx, const char *phase)
{
    char sql[600];
    snprintf(sql, sizeof sql,
             "SELECT reporting_nodes, healthy_nodes, delivered_kw, power_kw, hotspot_max_c,"
             " outlet_max_c, throttled_share, j_per_token,"
             " (SELECT coalesce(string_agg(s, ',' ORDER BY s), '') FROM unnest(stale_sites) s),"
             " (SELECT coalesce(string_agg(s, ',' ORDER BY s), '') FROM unnest(sites) s)"
             " FROM ww_fleet_capacity('%s', '%s')",
             phase, STALE);
    PGresult *r = h_query(&fx->fleet, sql);
    s_cap_t f = s_cap_row(r);
    snprintf(f.sites, sizeof f.sites, "%s", PQgetvalue(r, 0, 9));
    PQclear(r);
    return f;
}

/* The fleet's newest capacity evaluation of phase (its MW back in kW); it must be later than
 * after (a timestamptz literal). */
static s_cap_t s_fleet_evaluation(s_fx_t *fx, const char *phase, const char *after)
{
    char sql[700];
    snprintf(sql, sizeof sql,
             "SELECT reporting_nodes, healthy_nodes, delivered_mw * 1000, power_mw * 1000,"
             " hotspot_max_c, outlet_max_c, throttled_share, j_per_token,"
             " (SELECT coalesce(string_agg(s, ',' ORDER BY s), '') FROM unnest(stale_sites) s),"
             " time > '%s', stale_sites IS NULL FROM capacity_evaluations WHERE phase = '%s'"
             " ORDER BY time DESC LIMIT 1",
             after, phase);
    PGresult *r = h_query(&fx->fleet, sql);
    s_cap_t f = s_cap_row(r);
    assert_string_equal(PQgetvalue(r, 0, 9), "t");
    assert_string_equal(PQgetvalue(r, 0, 10), "f"); /* a fleet row: stale_sites, maybe {} */
    PQclear(r);
    return f;
}

static void s_cap_print(const char *who, const s_cap_t *c)
{
    print_message("  %-28s reporting %lld healthy %lld delivered %.6f kW power %.6f kW hotspot"
                  " %.3f outlet %.3f throttled %.6g J/token %.6g sites [%s] stale [%s]\n",
                  who, c->reporting, c->healthy, c->delivered_kw, c->power_kw, c->hotspot,
                  c->outlet, c->throttled_share, c->j_per_token, c->sites, c->stale);
}

/* want and got agree: counts exactly, figures within rel. */
static void s_cap_equal(const char *what, const s_cap_t *want, const s_cap_t *got, double rel)
{
    if (want->reporting != got->reporting || want->healthy != got->healthy ||
        !s_near(want->delivered_kw, got->delivered_kw, rel) ||
        !s_near(want->power_kw, got->power_kw, rel) || !s_near(want->hotspot, got->hotspot, rel) ||
        !s_near(want->outlet, got->outlet, rel) ||
        !s_near(want->throttled_share, got->throttled_share, rel) ||
        !s_near(want->j_per_token, got->j_per_token, rel)) {
        s_cap_print("the sites' union", want);
        s_cap_print(what, got);
        fail_msg("%s differs from the union of the sites' newest site_capacity rows", what);
    }
}

/* A phase's capacity on the fleet (ww_fleet_capacity and the newest evaluation, later than
 * after) against the union of the sites' rows; the union has want_reporting nodes
 * (-1: any) over the labels want_sites. */
static void s_check_capacity(s_fx_t *fx, const char *phase, const char *after,
                             long long want_reporting, const char *want_sites)
{
    s_cap_t u = s_sites_union(fx, phase);
    s_cap_t f = s_fleet_capacity(fx, phase);
    s_cap_t e = s_fleet_evaluation(fx, phase, after);
    print_message("%s:\n", phase);
    s_cap_print("the sites' union", &u);
    s_cap_print("ww_fleet_capacity", &f);
    s_cap_print("capacity_evaluations", &e);
    assert_string_equal(u.sites, want_sites);
    if (want_reporting >= 0) {
        assert_int_equal(u.reporting, want_reporting);
        assert_true(u.delivered_kw > 0 && u.power_kw > 0);
    }
    assert_string_equal(f.sites, u.sites);
    /* Sums of two doubles, maxima and one division: exact but for the order of addition. */
    s_cap_equal("ww_fleet_capacity", &u, &f, 1e-12);
    /* The evaluation stores MW and temperatures to 9 significant digits. */
    s_cap_equal("capacity_evaluations", &u, &e, 1e-8);
}

/* Good and total of an SLI over the test's range on db; tiers_only as given. */
static void s_sli(s_fx_t *fx, h_db_t *db, const char *phase, const char *metric, double thr,
                  bool tiers_only, long long *good, long long *total)
{
    char sql[400], t[32];
    if (isnan(thr)) {
        snprintf(t, sizeof t, "NULL");
    } else {
        snprintf(t, sizeof t, "%.17g", thr);
    }
    snprintf(sql, sizeof sql, "SELECT good, total FROM ww_sli('%s', '*', '%s', %s, '%s', '%s'%s)",
             phase, metric, t, fx->from, fx->to, tiers_only ? ", true" : "");
    PGresult *r = h_query(db, sql);
    assert_int_equal(PQntuples(r), 1);
    *good = atoll(PQgetvalue(r, 0, 0));
    *total = atoll(PQgetvalue(r, 0, 1));
    PQclear(r);
}

/* The fleet's SLIs (tiers only) are the sums of the sites' over the closed range; p1 has
 * requests at both sites, p2 at B only. Returns p1's ttft total. */
static long long s_check_sli(s_fx_t *fx)
{
    static const struct {
        const char *metric;
        double thr;
    } m[] = {{"ttft", TTFT_S}, {"e2e", E2E_S}, {"availability", NAN}};
    static const char *const phases[] = {"p1", "p2"};
    long long p1_ttft = 0;
    for (size_t p = 0; p < 2; p++) {
        for (size_t k = 0; k < sizeof m / sizeof m[0]; k++) {
            long long g[N_SITES], n[N_SITES], fg, fn, sg = 0, sn = 0;
            for (int i = 0; i < N_SITES; i++) {
                s_sli(fx, &fx->site[i].db, phases[p], m[k].metric, m[k].thr, false, &g[i], &n[i]);
                sg += g[i];
                sn += n[i];
            }
            s_sli(fx, &fx->fleet, phases[p], m[k].metric, m[k].thr, true, &fg, &fn);
            print_message("%s %-12s A %lld/%lld + B %lld/%lld = fleet %lld/%lld\n", phases[p],
                          m[k].metric, g[0], n[0], g[1], n[1], fg, fn);
            if (p == 0) {
                assert_true(n[0] > 0 && n[1] > 0); /* p1 spreads over both sites */
            } else {
                assert_int_equal(n[0], 0);
                assert_true(n[1] > 0);
            }
            assert_true(g[0] <= n[0] && g[1] <= n[1]);
            assert_int_equal(fg, sg);
            assert_int_equal(fn, sn);
            if (p == 0 && k == 0) {
                p1_ttft = fn;
            }
        }
    }
    /* The latency dashboards' function on the fleet: per minute, phase and model, the
     * sites' requests and TTFT histograms merged (a row per site merged into one). */
    char sql[600], want[160] = "", got[160];
    snprintf(sql, sizeof sql,
             "SELECT count(*) || ':' || sum(requests) || ':' || sum(ww_hist_count(ttft))"
             " FROM ww_latency_series('%s', '%s', interval '1 minute')",
             fx->from, fx->to);
    long long rows = 0, req = 0, cnt = 0;
    for (int i = 0; i < N_SITES; i++) {
        s_text(&fx->site[i].db, sql, got, sizeof got);
        long long a, b, c;
        assert_int_equal(sscanf(got, "%lld:%lld:%lld", &a, &b, &c), 3);
        rows = a > rows ? a : rows;
        req += b;
        cnt += c;
    }
    s_text(&fx->fleet, sql, got, sizeof got);
    long long fr, fq, fc;
    assert_int_equal(sscanf(got, "%lld:%lld:%lld", &fr, &fq, &fc), 3);
    snprintf(want, sizeof want, "requests %lld ttft %lld", req, cnt);
    print_message("ww_latency_series: sites %s, fleet %lld rows requests %lld ttft %lld\n", want,
                  fr, fq, fc);
    assert_true(req > 0);
    assert_int_equal(fq, req);
    assert_int_equal(fc, cnt);
    /* Merged, not a row per site: no more rows than the site with the most (p1 shares
     * its minutes over both). */
    assert_true(fr >= rows);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM (SELECT time, phase, model FROM ww_latency_series('%s', '%s',"
             " interval '1 minute') GROUP BY 1, 2, 3 HAVING count(*) > 1) d",
             fx->from, fx->to);
    assert_int_equal(h_query_ll(&fx->fleet, sql), 0);
    return p1_ttft;
}

/* md5 of a site label's rows of table (every column, histograms as text), in key order. */
static void s_digest_sql(char *sql, size_t cap, const char *table, const char *order,
                         const char *label)
{
    snprintf(sql, cap,
             "SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY %s)), '')"
             " FROM %s x WHERE site = '%s'",
             order, table, label);
}

static const struct {
    const char *table, *order;
} s_digested[] = {
    {"latency_rollup_1m", "x.time, x.phase, x.model"},
    {"site_capacity", "x.phase, x.time"},
};

/* Waits (sites held or stopped: nothing moves there) until the fleet holds exactly each
 * site's rows of the digested tables; returns the fleet's now() then, for a later
 * evaluation. */
static void s_caught_up(s_fx_t *fx, char *at, size_t cap)
{
    for (int i = 0; i < N_SITES; i++) {
        for (size_t t = 0; t < sizeof s_digested / sizeof s_digested[0]; t++) {
            char sql[400], want[128], what[128];
            s_digest_sql(sql, sizeof sql, s_digested[t].table, s_digested[t].order,
                         fx->site[i].label);
            s_text(&fx->site[i].db, sql, want, sizeof want);
            assert_true(atoll(want) > 0);
            snprintf(what, sizeof what, "the fleet's %s rows of %s", s_digested[t].table,
                     fx->site[i].label);
            long long ms = s_wait_text(fx, &fx->fleet, sql, want, WAIT_MS, what);
            print_message("fleet has %s's %s (%s rows) after %lld ms\n", fx->site[i].label,
                          s_digested[t].table, want, ms);
        }
    }
    s_text(&fx->fleet, "SELECT now()", at, cap);
}

/* Waits until the fleet has evaluated both phases since at. */
static void s_evaluated_since(s_fx_t *fx, const char *at)
{
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(DISTINCT phase) FROM capacity_evaluations WHERE time > '%s'", at);
    s_wait_text(fx, &fx->fleet, sql, "2", WAIT_MS, "a fleet evaluation after the catch-up");
}

/* A site label's latency windows in latency_rollup_1m on db (what its minutes hold). */
static long long s_windows(h_db_t *db, const char *label)
{
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(sum(windows), 0) FROM latency_rollup_1m WHERE site = '%s'", label);
    return h_query_ll(db, sql);
}

/* A site label's site_capacity rows on db. */
static long long s_caprows(h_db_t *db, const char *label)
{
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM site_capacity WHERE site = '%s'", label);
    return h_query_ll(db, sql);
}

/* ---- the processes ------------------------------------------------------------------- */

static void s_site_start(s_fx_t *fx, int i, const char *tag)
{
    s_site_t *s = &fx->site[i];
    h_pg_start_conf(&s->pg, &s->db, tag, "wal_level = logical");
    char name[32];
    snprintf(name, sizeof name, "collector-%s", s->label);
    snprintf(s->log, sizeof s->log, "%s/%s.log", fx->fleet.dir, name);
    setenv("WW_COLLECTOR_SLO_FILE", fx->slo_path, 1);
    s->collector = h_collector_spawn(fx->fleet.dir, "tcp://127.0.0.1:*", s->pg.conninfo, name,
                                     s->endpoint, sizeof s->endpoint);
    unsetenv("WW_COLLECTOR_SLO_FILE");
    /* Migrated: the publication is there. The fleet's login: REPLICATION, and SELECT on
     * what is published through the group role the migration made (docs/operations.md). */
    assert_int_equal(h_query_ll(&s->db, "SELECT count(*) FROM pg_publication WHERE pubname ="
                                        " 'waferwatch_site' AND pubviaroot"),
                     1);
    PQclear(h_query(&s->db, "CREATE ROLE ww_feed LOGIN REPLICATION IN ROLE waferwatch_feed"));
}

static pid_t s_agent(s_fx_t *fx, int site, const char *name, const char *phase, const char *nodes,
                     const char *rated_kw, const char *seed)
{
    const char *env[] = {"WW_AGENT_NODE_RATED_KW", rated_kw, NULL};
    const char *args[] = {"--site",
                          fx->site[site].label,
                          "--phase",
                          phase,
                          "--sim-nodes",
                          nodes,
                          "--sim-seed",
                          seed,
                          "--interval",
                          "100ms",
                          "--latency-window",
                          "1s",
                          "--run-for",
                          "300s",
                          NULL};
    return h_agent_spawn_secure(&fx->fleet, name, fx->site[site].endpoint, env, args, NULL, 0);
}

static void s_subscribe(s_fx_t *fx, int i, const char *name)
{
    char sql[400];
    snprintf(sql, sizeof sql,
             "CREATE SUBSCRIPTION %s CONNECTION 'host=%s port=5432 dbname=ww user=ww_feed'"
             " PUBLICATION waferwatch_site",
             name, fx->site[i].pg.dir);
    PQclear(h_query(&fx->fleet, sql));
}

/* Waits until the fleet collector's /metrics has fleet_stale_sites = want (set after each
 * committed evaluation). */
static void s_wait_stale_metric(s_fx_t *fx, int port, double want)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    double v = -1;
    for (int waited = 0; waited < WAIT_MS; waited += 100) {
        long code = 0;
        char *body = h_http_get(url, &code);
        v = body && code == 200 ? h_metrics_value(body, "waferwatch_collector_fleet_stale_sites")
                                : -1;
        free(body);
        if (v == want) {
            return;
        }
        h_sleep_ms(100);
    }
    char what[128];
    snprintf(what, sizeof what, "waferwatch_collector_fleet_stale_sites is %g, want %g", v, want);
    s_fail(fx, what);
}

static void test_two_sites_feed_the_fleet_cut_and_restored(void **state)
{
    (void)state;
    int64_t t_test = ww_time_mono_ns();
    s_fx_t fx;
    memset(&fx, 0, sizeof fx);
    fx.site[0].label = "dc-a";
    fx.site[1].label = "dc-b";
    h_pg_start_conf(&fx.fpg, &fx.fleet, "fleet", "wal_retrieve_retry_interval = 200ms");
    snprintf(fx.fleet_log, sizeof fx.fleet_log, "%s/collector-fleet.log", fx.fleet.dir);

    /* Keys (one collector key for both sites), agents enrolled by node. */
    h_secure(fx.fleet.dir, "unused", "none");
    h_enrol(fx.fleet.dir, "a", "a", "a-node-*");
    h_enrol(fx.fleet.dir, "b1", "b1", "b1-node");
    h_enrol(fx.fleet.dir, "b2", "b2", "b2-node");
    /* p1: 2 x 23 kW at A and 21 kW at B; p2: 25 kW at B. Contracted as installed, so a site
     * whose capacity counted as lost would breach. No limit near. */
    snprintf(fx.slo_path, sizeof fx.slo_path, "%s/phases.yaml", fx.fleet.dir);
    FILE *f = fopen(fx.slo_path, "w");
    assert_non_null(f);
    fprintf(f, "evaluation:\n  interval: 1s\n  window_scale: 0.01\n  healthy_window: 2s\n"
               "phases:\n"
               "  - {id: p1, name: P1, go_live: 2026-01-01, contracted_mw: 0.067,\n"
               "     power_ceiling_mw: 10, hotspot_max_c: 200, outlet_max_c: 200,\n"
               "     slos: [{name: ttft, metric: ttft, threshold: 0.25, objective: 0.99}]}\n"
               "  - {id: p2, name: P2, go_live: 2026-01-01, contracted_mw: 0.025,\n"
               "     power_ceiling_mw: 10, hotspot_max_c: 200, outlet_max_c: 200,\n"
               "     slos: [{name: ttft, metric: ttft, threshold: 0.25, objective: 0.99}]}\n");
    fclose(f);
    /* The SLI range: whole minutes from before the first request to past the test's end. */
    s_text(&fx.fleet, "SELECT date_trunc('minute', now())", fx.from, sizeof fx.from);
    s_text(&fx.fleet, "SELECT date_trunc('minute', now()) + interval '3 minutes'", fx.to,
           sizeof fx.to);

    /* The sites, their collectors, their agents. */
    s_site_start(&fx, 0, "sitea");
    s_site_start(&fx, 1, "siteb");
    fx.agent[0] = s_agent(&fx, 0, "a", "p1", "2", "23", "3");
    fx.agent[1] = s_agent(&fx, 1, "b1", "p1", "1", "21", "5");
    fx.agent[2] = s_agent(&fx, 1, "b2", "p2", "1", "25", "7");

    /* The fleet: its collector migrates it; then the subscriptions, by hand. */
    setenv("WW_COLLECTOR_SLO_FILE", fx.slo_path, 1);
    setenv("WW_COLLECTOR_COLLECTOR_ROLE", "fleet", 1);
    setenv("WW_COLLECTOR_FLEET_STALE_AFTER", STALE, 1);
    char *fargv[] = {(char *)WW_COLLECTOR_BIN,   (char *)"--pg",        fx.fpg.conninfo,
                     (char *)"--metrics-listen", (char *)"127.0.0.1:0", NULL};
    fx.fleet_collector = h_spawn(fargv, fx.fleet_log);
    int fleet_port = h_metrics_port(fx.fleet_collector, fx.fleet_log);
    unsetenv("WW_COLLECTOR_SLO_FILE");
    unsetenv("WW_COLLECTOR_COLLECTOR_ROLE");
    unsetenv("WW_COLLECTOR_FLEET_STALE_AFTER");
    s_wait_text(&fx, &fx.fleet, "SELECT count(*) FROM pg_proc WHERE proname = 'ww_fleet_capacity'",
                "1", WAIT_MS, "the fleet database migrated");
    s_wait_text(&fx, &fx.fleet, "SELECT to_regclass('site_capacity') IS NOT NULL", "t", WAIT_MS,
                "the fleet database migrated");
    /* A fleet builds no tiers and takes no agents: nothing of its own in what it receives. */
    s_subscribe(&fx, 0, "ww_site_a");
    s_subscribe(&fx, 1, "ww_site_b");
    /* Both copied every published table (the feed role may read them all) and stream. */
    s_wait_text(&fx, &fx.fleet,
                "SELECT count(*) FILTER (WHERE r.srsubstate <> 'r') || '/' || count(*) FROM"
                " pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid WHERE"
                " s.subname IN ('ww_site_a', 'ww_site_b')",
                "0/18", WAIT_MS, "the subscriptions' initial copies");
    s_wait_text(&fx, &fx.fleet,
                "SELECT string_agg(node_id || '@' || site || '/' || phase, ',' ORDER BY node_id)"
                " FROM nodes",
                "a-node-0@dc-a/p1,a-node-1@dc-a/p1,b1-node@dc-b/p1,b2-node@dc-b/p2", WAIT_MS,
                "the fleet's nodes");

    /* 1. p1 over both sites, p2 at B; nobody stale. */
    long long ms = s_wait_eval(&fx, "p1", "3|{}|false", WAIT_MS);
    s_wait_eval(&fx, "p2", "1|{}|false", WAIT_MS);
    print_message("the fleet sees p1's 3 nodes and p2's 1 after %lld ms\n", ms);

    /* Every site has closed latency windows of each of its phases (10 s windows: on a
     * loaded machine the fleet may see the nodes well before; the checks below need both
     * sites' requests). */
    s_wait_text(&fx, &fx.site[0].db,
                "SELECT count(DISTINCT phase) FROM latency_rollup_1m WHERE site = 'dc-a'"
                " AND windows > 0",
                "1", WAIT_MS, "site A's latency windows");
    s_wait_text(&fx, &fx.site[1].db,
                "SELECT count(DISTINCT phase) FROM latency_rollup_1m WHERE site = 'dc-b'"
                " AND windows > 0",
                "2", WAIT_MS, "site B's latency windows of p1 and p2");

    /* 2. The sites held still; the fleet caught up: equal. */
    for (int i = 0; i < N_SITES; i++) {
        kill(fx.site[i].collector, SIGSTOP);
    }
    char at[64];
    s_caught_up(&fx, at, sizeof at);
    s_evaluated_since(&fx, at);
    s_check_capacity(&fx, "p1", at, 3, "dc-a,dc-b");
    s_check_capacity(&fx, "p2", at, 1, "dc-b");
    long long ttft_total_1 = s_check_sli(&fx);
    for (int i = 0; i < N_SITES; i++) {
        kill(fx.site[i].collector, SIGCONT);
    }
    /* The sites' own evaluations are not the fleet's. */
    for (int i = 0; i < N_SITES; i++) {
        assert_true(h_query_ll(&fx.site[i].db, "SELECT count(*) FROM capacity_evaluations") > 0);
        assert_int_equal(h_query_ll(&fx.site[i].db, "SELECT count(*) FROM capacity_evaluations"
                                                    " WHERE stale_sites IS NOT NULL"),
                         0);
    }
    /* Settled again before the cut (the held sites' first evaluations may miss samples). */
    s_wait_eval(&fx, "p1", "3|{}|false", WAIT_MS);
    s_wait_eval(&fx, "p2", "1|{}|false", WAIT_MS);

    /* 3. Site B cut off: its replication role locked out, its walsender ended. */
    h_db_t *b = &fx.site[1].db;
    PQclear(h_query(b, "ALTER ROLE ww_feed NOLOGIN"));
    char cut_at[64];
    s_text(&fx.fleet, "SELECT now()", cut_at, sizeof cut_at);
    assert_true(h_query_ll(b, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                              " WHERE usename = 'ww_feed'") >= 1);
    ms = s_wait_eval(&fx, "p1", "3|{dc-b}|false", 4 * 3000);
    s_wait_eval(&fx, "p2", "1|{dc-b}|false", 4 * 3000);
    print_message("site B cut off: stale in the fleet's evaluation after %lld ms\n", ms);
    /* /metrics says so too: dc-b in p1 and in p2. */
    s_wait_stale_metric(&fx, fleet_port, 2);
    long long fleet_b_windows = s_windows(&fx.fleet, "dc-b");
    long long fleet_b_rows = s_caprows(&fx.fleet, "dc-b");
    long long fleet_a_rows = s_caprows(&fx.fleet, "dc-a");
    long long site_b_windows = s_windows(b, "dc-b");
    long long site_b_rows = s_caprows(b, "dc-b");
    h_sleep_ms(3000);
    s_alive(&fx);
    /* Still cut (the fleet's apply worker retries every 200 ms and is refused). */
    assert_int_equal(h_query_ll(b, "SELECT count(*) FROM pg_stat_activity WHERE usename ="
                                   " 'ww_feed'"),
                     0);
    assert_int_equal(h_query_ll(b, "SELECT count(*) FROM pg_replication_slots WHERE slot_name ="
                                   " 'ww_site_b' AND NOT active"),
                     1);
    /* B goes on; the fleet's rows of dc-b do not; A's still flow. */
    assert_true(s_windows(b, "dc-b") > site_b_windows);
    assert_true(s_caprows(b, "dc-b") > site_b_rows);
    assert_int_equal(s_windows(&fx.fleet, "dc-b"), fleet_b_windows);
    assert_int_equal(s_caprows(&fx.fleet, "dc-b"), fleet_b_rows);
    assert_true(s_caprows(&fx.fleet, "dc-a") > fleet_a_rows);
    /* Every evaluation that marked dc-b stale counted its capacity: no breach. */
    char sql[600];
    for (int p = 1; p <= 2; p++) {
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FILTER (WHERE reporting_nodes = %d AND NOT breach) || '/' ||"
                 " count(*) FROM capacity_evaluations WHERE phase = 'p%d' AND time > '%s' AND"
                 " stale_sites = '{dc-b}'",
                 p == 1 ? 3 : 1, p, cut_at);
        char got[64];
        s_text(&fx.fleet, sql, got, sizeof got);
        long long ok = atoll(got), all = atoll(strchr(got, '/') + 1);
        print_message("p%d: %lld evaluations with dc-b stale, %lld of them at full capacity\n", p,
                      all, ok);
        assert_true(all >= 2);
        assert_int_equal(ok, all);
    }
    s_cap_t live = s_fleet_capacity(&fx, "p1");
    assert_string_equal(live.stale, "dc-b");
    assert_string_equal(live.sites, "dc-a,dc-b");
    assert_int_equal(live.reporting, 3);

    /* 4. Restored: the fleet catches up from the slot. */
    long long site_b_windows_cut = s_windows(b, "dc-b");
    char b_newest[64];
    s_text(b, "SELECT max(time) FROM site_capacity WHERE site = 'dc-b'", b_newest, sizeof b_newest);
    PQclear(h_query(b, "ALTER ROLE ww_feed LOGIN"));
    int64_t t_restore = ww_time_mono_ns();
    snprintf(sql, sizeof sql,
             "SELECT count(*) > 0 FROM site_capacity WHERE site = 'dc-b' AND time >= '%s'",
             b_newest);
    s_wait_text(&fx, &fx.fleet, sql, "t", WAIT_MS, "the fleet caught up with site B");
    long long catch_up_ms = (long long)((ww_time_mono_ns() - t_restore) / WW_NS_PER_MS);
    s_wait_eval(&fx, "p1", "3|{}|false", WAIT_MS);
    s_wait_eval(&fx, "p2", "1|{}|false", WAIT_MS);
    long long fresh_ms = (long long)((ww_time_mono_ns() - t_restore) / WW_NS_PER_MS);
    s_wait_stale_metric(&fx, fleet_port, 0);
    print_message("site B restored: the fleet caught up from the slot in %lld ms (%lld windows"
                  " written while cut off), dc-b fresh in its evaluation after %lld ms\n",
                  catch_up_ms, s_windows(&fx.fleet, "dc-b") - fleet_b_windows, fresh_ms);

    /* 5. Everything stopped (agents drained, site collectors ended): equal again, the
     * minutes of the cut included. */
    for (int k = 0; k < 3; k++) {
        assert_int_equal(h_stop(fx.agent[k], 30000), 0);
    }
    for (int i = 0; i < N_SITES; i++) {
        assert_int_equal(h_stop(fx.site[i].collector, 15000), 0);
        fx.site[i].collector = 0;
    }
    s_caught_up(&fx, at, sizeof at);
    s_evaluated_since(&fx, at);
    /* Caught up means equal rows: what B wrote while cut off is on the fleet. */
    assert_int_equal(s_windows(&fx.fleet, "dc-b"), s_windows(b, "dc-b"));
    assert_true(s_windows(&fx.fleet, "dc-b") >= site_b_windows_cut);
    s_check_capacity(&fx, "p1", at, -1, "dc-a,dc-b");
    s_check_capacity(&fx, "p2", at, -1, "dc-b");
    long long ttft_total_2 = s_check_sli(&fx);
    assert_true(ttft_total_2 > ttft_total_1);
    /* The fleet evaluated the SLOs from the replicated minutes. */
    assert_true(h_query_ll(&fx.fleet, "SELECT count(*) FROM slo_evaluations WHERE phase = 'p1'") >
                0);
    /* The range held the whole test. */
    snprintf(sql, sizeof sql, "SELECT (now() < '%s')::int", fx.to);
    assert_int_equal(h_query_ll(&fx.fleet, sql), 1);

    assert_int_equal(h_stop(fx.fleet_collector, 15000), 0);
    fx.fleet_collector = 0;
    h_pg_stop(&fx.fpg, &fx.fleet); /* first: its apply workers stop asking the sites */
    for (int i = 0; i < N_SITES; i++) {
        h_pg_stop(&fx.site[i].pg, &fx.site[i].db);
    }
    print_message("test_sites: %lld ms\n",
                  (long long)((ww_time_mono_ns() - t_test) / WW_NS_PER_MS));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_two_sites_feed_the_fleet_cut_and_restored),
};
WW_TEST_MAIN(tests, NULL, NULL)
