/* slo_report: see ww_slo_report.h.
 *
 * The JSON document is built by PostgreSQL itself (jsonb_build_object), so every string
 * is escaped by the server and numbers keep their full precision; the text report reads
 * the same tables row by row. */
#include "ww_slo_report.h"

#include <stdlib.h>
#include <string.h>

static const char *const s_tables[] = {"phases", "slo_status",    "capacity_evaluations",
                                       "alerts", "slo_evaluator", "slo_leader"};

/* Window names in time order, for burn-rate columns; others sort last by name. */
#define S_WINDOW_ORDER                                                                             \
    "CASE key WHEN '5m' THEN 1 WHEN '30m' THEN 2 WHEN '1h' THEN 3 WHEN '2h' THEN 4 "               \
    "WHEN '6h' THEN 5 WHEN '1d' THEN 6 WHEN '3d' THEN 7 WHEN 'period' THEN 8 ELSE 9 END, key"

#define S_UTC(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* An alert of what is configured now: its phase is not retired, and its slo is the
 * phase's own rule (capacity, power, thermal) or an SLO whose status is not retired. The
 * evaluator resolves the others at its next start or reload (migration 0012); until then
 * they are listed apart and do not count in the exit code. */
#define S_CURRENT(a)                                                                               \
    "(EXISTS (SELECT 1 FROM phases cp WHERE cp.id = " a ".phase AND cp.retired_at IS NULL)"        \
    " AND (" a ".slo IN ('capacity', 'power', 'thermal') OR EXISTS (SELECT 1 FROM slo_status"      \
    " cs WHERE cs.phase = " a ".phase AND cs.slo = " a ".slo AND cs.retired_at IS NULL)))"

/* When the state is stale: the evaluator has missed a few intervals (3, and at least
 * 30 s, so that one slow evaluation of a short test interval is not "down"). */
#define S_STALE_INTERVALS 3
#define S_STALE_MIN_S 30.0

/* clang-format off */
static const char s_json_sql[] =
    "SELECT jsonb_pretty(jsonb_build_object("
    " 'generated_at', " S_UTC("now()") ","
    " 'evaluated_at', (SELECT " S_UTC("e.evaluated_at") " FROM slo_evaluator e),"
    " 'evaluation_age_s', (SELECT round(extract(epoch FROM now() - e.evaluated_at)::numeric, 1)"
    "   FROM slo_evaluator e),"
    " 'evaluation_interval_s', (SELECT e.interval_s FROM slo_evaluator e),"
    " 'stale', $1::boolean,"
    " 'leader', (SELECT jsonb_build_object('holder', l.holder, 'term', l.term,"
    "   'since', " S_UTC("l.since") ", 'renewed_at', " S_UTC("l.renewed_at") ","
    "   'expires_at', " S_UTC("l.expires_at") ","
    "   'expires_in_s', round(extract(epoch FROM l.expires_at - clock_timestamp())::numeric, 1))"
    "   FROM slo_leader l WHERE l.term > 0),"
    " 'paging', EXISTS (SELECT 1 FROM alerts a WHERE a.state = 'firing' AND a.severity = 'page'"
    "   AND " S_CURRENT("a") "),"
    " 'firing_alerts', (SELECT count(*) FROM alerts a WHERE a.state = 'firing' AND "
    S_CURRENT("a") "),"
    " 'phases', COALESCE((SELECT jsonb_agg(jsonb_build_object("
    "   'id', p.id, 'name', p.name, 'go_live', p.go_live::text,"
    "   'contracted_mw', p.contracted_mw, 'capacity_breach_share', p.capacity_breach_share,"
    "   'power_ceiling_mw', p.power_ceiling_mw, 'hotspot_max_c', p.hotspot_max_c,"
    "   'outlet_max_c', p.outlet_max_c,"
    "   'capacity', (SELECT to_jsonb(c) - 'phase' - 'time' || jsonb_build_object('time', "
    S_UTC("c.time") ")"
    "      FROM capacity_evaluations c WHERE c.phase = p.id ORDER BY c.time DESC LIMIT 1),"
    "   'slos', COALESCE((SELECT jsonb_agg(jsonb_build_object("
    "      'slo', s.slo, 'metric', s.metric, 'model', s.model, 'objective', s.objective,"
    "      'threshold_s', s.threshold_s, 'time', " S_UTC("s.time") ","
    "      'attainment', s.attainment, 'budget_remaining', s.budget_remaining,"
    "      'burn_rates', s.burn_rates) ORDER BY s.slo)"
    "      FROM slo_status s WHERE s.phase = p.id AND s.retired_at IS NULL), '[]'::jsonb),"
    "   'alerts', COALESCE((SELECT jsonb_agg(jsonb_build_object("
    "      'id', a.id, 'alertname', a.alertname, 'slo', a.slo, 'model', a.model,"
    "      'severity', a.severity, 'started_at', " S_UTC("a.started_at") ","
    "      'summary', a.summary, 'details', a.details) ORDER BY a.severity, a.started_at)"
    "      FROM alerts a WHERE a.phase = p.id AND a.state = 'firing' AND " S_CURRENT("a")
    "), '[]'::jsonb))"
    "   ORDER BY p.go_live, p.id) FROM phases p WHERE p.retired_at IS NULL), '[]'::jsonb),"
    " 'other_alerts', COALESCE((SELECT jsonb_agg(jsonb_build_object("
    "      'id', a.id, 'alertname', a.alertname, 'phase', a.phase, 'slo', a.slo,"
    "      'severity', a.severity, 'started_at', " S_UTC("a.started_at") ","
    "      'summary', a.summary) ORDER BY a.started_at)"
    "      FROM alerts a WHERE a.state = 'firing' AND NOT " S_CURRENT("a") "), '[]'::jsonb)"
    "))";

static const char s_phases_sql[] =
    "SELECT id, name, go_live::text, contracted_mw, go_live <= (now() AT TIME ZONE 'UTC')::date"
    " FROM phases WHERE retired_at IS NULL ORDER BY go_live, id";

static const char s_cap_sql[] =
    "SELECT " S_UTC("time") ", live, reporting_nodes, healthy_nodes, delivered_mw, contracted_mw,"
    " delivered_share * 100, power_mw, hotspot_max_c, outlet_max_c, throttled_share * 100,"
    " j_per_token, breach, array_to_string(stale_sites, ', ') FROM capacity_evaluations"
    " WHERE phase = $1"
    " ORDER BY time DESC LIMIT 1";

static const char s_slo_sql[] =
    "SELECT slo, metric, model, objective * 100, threshold_s, attainment * 100,"
    " budget_remaining * 100,"
    " (SELECT string_agg(key || ' ' || CASE WHEN jsonb_typeof(value) = 'number'"
    "   THEN round((value::text)::numeric, 2)::text ELSE value #>> '{}' END, '  '"
    "   ORDER BY " S_WINDOW_ORDER ") FROM jsonb_each(burn_rates))"
    " FROM slo_status WHERE phase = $1 AND retired_at IS NULL ORDER BY slo";

/* $1 a phase: its current alerts; NULL: the firing alerts of what is no longer
 * configured. */
static const char s_alert_sql[] =
    "SELECT severity, alertname, slo, " S_UTC("started_at") ", summary, phase"
    " FROM alerts a WHERE state = 'firing' AND ((phase = $1 AND " S_CURRENT("a") ")"
    " OR ($1 IS NULL AND NOT " S_CURRENT("a") "))"
    " ORDER BY severity, started_at";

/* The evaluator's heartbeat (migration 0012). */
static const char s_eval_sql[] =
    "SELECT " S_UTC("evaluated_at") ", extract(epoch FROM now() - evaluated_at), interval_s,"
    " host, pid FROM slo_evaluator";
/* The evaluators' lease (migration 0023): who leads, since when, until when. */
static const char s_leader_sql[] =
    "SELECT holder, term, " S_UTC("since") ", " S_UTC("expires_at") ","
    " extract(epoch FROM expires_at - clock_timestamp()) FROM slo_leader WHERE term > 0";
/* clang-format on */

static PGresult *s_query(PGconn *conn, const char *sql, const char *param, FILE *err)
{
    const char *params[1] = {param};
    PGresult *r = PQexecParams(conn, sql, strstr(sql, "$1") ? 1 : 0, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(err, "waferwatch slo: query failed: %s", PQerrorMessage(conn));
        PQclear(r);
        return NULL;
    }
    return r;
}

/* A column as text, or "-" when NULL. */
static const char *s_v(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? "-" : PQgetvalue(r, row, col);
}

/* A numeric column with dec decimals, or "-" when NULL. */
static const char *s_num(char *buf, size_t len, const PGresult *r, int row, int col, int dec)
{
    if (PQgetisnull(r, row, col)) {
        return "-";
    }
    snprintf(buf, len, "%.*f", dec, strtod(PQgetvalue(r, row, col), NULL));
    return buf;
}

static bool s_true(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

static int s_print_alerts(PGconn *conn, const char *phase, FILE *out, FILE *err)
{
    PGresult *r = s_query(conn, s_alert_sql, phase, err);
    if (!r) {
        return -1;
    }
    int n = PQntuples(r);
    if (n == 0 && phase) {
        fprintf(out, "  alerts: none firing\n");
    } else if (n > 0) {
        fprintf(out, phase
                         ? "  firing alerts:\n"
                         : "\nfiring alerts of phases or SLOs no longer configured (not counted;\n"
                           "the evaluator resolves them at its next start or reload):\n");
    }
    for (int i = 0; i < n; i++) {
        fprintf(out, "    %-7s %-16s %-16s since %s", s_v(r, i, 0), s_v(r, i, 1), s_v(r, i, 2),
                s_v(r, i, 3));
        if (!phase) {
            fprintf(out, "  phase %s", s_v(r, i, 5));
        }
        fputc('\n', out);
        fprintf(out, "            %s\n", s_v(r, i, 4));
    }
    PQclear(r);
    return 0;
}

static int s_print_phase(PGconn *conn, const PGresult *ph, int i, FILE *out, FILE *err)
{
    char a[32], b[32], c[32], d[32], e[32], f[32], g[32];
    const char *id = PQgetvalue(ph, i, 0);
    fprintf(out, "%s  %s\n  go-live %s (%s)   contracted %s MW\n", id, s_v(ph, i, 1), s_v(ph, i, 2),
            s_true(ph, i, 4) ? "live" : "not yet live", s_num(a, sizeof a, ph, i, 3, 1));

    PGresult *r = s_query(conn, s_cap_sql, id, err);
    if (!r) {
        return -1;
    }
    if (PQntuples(r) == 0) {
        fprintf(out, "  capacity: no evaluation yet\n");
    } else {
        fprintf(out,
                "  capacity at %s: delivered %s MW of %s (%s%%)  nodes %s reporting, %s healthy"
                "  %s\n",
                s_v(r, 0, 0), s_num(a, sizeof a, r, 0, 4, 1), s_num(b, sizeof b, r, 0, 5, 1),
                s_num(c, sizeof c, r, 0, 6, 1), s_v(r, 0, 2), s_v(r, 0, 3),
                s_true(r, 0, 12) ? "BREACH" : "no breach");
        fprintf(out,
                "  power %s MW  hotspot max %s C  outlet max %s C  throttled %s%%  %s J/token\n",
                s_num(a, sizeof a, r, 0, 7, 1), s_num(b, sizeof b, r, 0, 8, 1),
                s_num(c, sizeof c, r, 0, 9, 1), s_num(d, sizeof d, r, 0, 10, 2),
                s_num(e, sizeof e, r, 0, 11, 3));
        if (*PQgetvalue(r, 0, 13)) {
            /* A fleet database (collector.role fleet): sites it has not heard from. */
            fprintf(out, "  stale sites (no recent figures; their last ones counted): %s\n",
                    PQgetvalue(r, 0, 13));
        }
    }
    PQclear(r);

    r = s_query(conn, s_slo_sql, id, err);
    if (!r) {
        return -1;
    }
    if (PQntuples(r) == 0) {
        fprintf(out, "  SLOs: no status yet\n");
    } else {
        fprintf(out, "  %-16s %-12s %-16s %9s %10s %9s %9s  %s\n", "SLO", "METRIC", "MODEL",
                "OBJECTIVE", "THRESHOLD", "ATTAINED", "BUDGET", "BURN RATE BY WINDOW");
    }
    for (int k = 0; k < PQntuples(r); k++) {
        const char *thr = "-";
        if (!PQgetisnull(r, k, 4)) {
            snprintf(f, sizeof f, "%g s", strtod(PQgetvalue(r, k, 4), NULL));
            thr = f;
        }
        char obj[40];
        snprintf(obj, sizeof obj, "%s%%", s_num(a, sizeof a, r, k, 3, 3));
        char att[40], bud[40];
        snprintf(att, sizeof att, "%s%s", s_num(b, sizeof b, r, k, 5, 3),
                 PQgetisnull(r, k, 5) ? "" : "%");
        snprintf(bud, sizeof bud, "%s%s", s_num(g, sizeof g, r, k, 6, 1),
                 PQgetisnull(r, k, 6) ? "" : "%");
        fprintf(out, "  %-16s %-12s %-16s %9s %10s %9s %9s  %s\n", s_v(r, k, 0), s_v(r, k, 1),
                s_v(r, k, 2), obj, thr, att, bud, s_v(r, k, 7));
    }
    PQclear(r);
    return s_print_alerts(conn, id, out, err);
}

int ww_slo_report(PGconn *conn, FILE *out, FILE *err, bool json)
{
    int rc = WW_SLO_ERROR;
    PGresult *r = NULL;

    /* The tables come from migration 0006: say so instead of a bare SQL error. */
    for (size_t i = 0; i < sizeof s_tables / sizeof s_tables[0]; i++) {
        r = s_query(conn, "SELECT to_regclass($1) IS NOT NULL", s_tables[i], err);
        if (!r) {
            return WW_SLO_ERROR;
        }
        bool there = s_true(r, 0, 0);
        PQclear(r);
        if (!there) {
            fprintf(err,
                    "waferwatch slo: schema missing: table \"%s\" not found in database \"%s\" "
                    "(apply the migrations: waferwatch-collector --migrate-only)\n",
                    s_tables[i], PQdb(conn));
            return WW_SLO_ERROR;
        }
    }
    /* How old the state is: none at all, or stale when the evaluator stopped. */
    r = s_query(conn, s_eval_sql, NULL, err);
    if (!r) {
        return WW_SLO_ERROR;
    }
    if (PQntuples(r) == 0) {
        fprintf(err,
                "waferwatch slo: no SLO evaluation yet in database \"%s\": no collector with a "
                "phases file (slo.file, --slo) has evaluated here; start one, wait one "
                "evaluation.interval and run this again\n",
                PQdb(conn));
        PQclear(r);
        return WW_SLO_STALE;
    }
    char when[48], host[128];
    snprintf(when, sizeof when, "%s", PQgetvalue(r, 0, 0));
    snprintf(host, sizeof host, "%s pid %s", PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 4));
    double age = strtod(PQgetvalue(r, 0, 1), NULL);
    double interval = strtod(PQgetvalue(r, 0, 2), NULL);
    PQclear(r);
    double stale_after = S_STALE_INTERVALS * interval;
    stale_after = stale_after < S_STALE_MIN_S ? S_STALE_MIN_S : stale_after;
    bool stale = age > stale_after;
    if (stale) {
        fprintf(err,
                "waferwatch slo: WARNING: the last SLO evaluation is %.0f s old (%s, by %s), "
                "more than %.0f s (%d evaluation intervals of %g s): the evaluator is down, "
                "this state is stale\n",
                age, when, host, stale_after, S_STALE_INTERVALS, interval);
    }

    r = s_query(conn,
                "SELECT EXISTS (SELECT 1 FROM alerts a WHERE a.state = 'firing' AND"
                " a.severity = 'page' AND " S_CURRENT("a") ")",
                NULL, err);
    if (!r) {
        return WW_SLO_ERROR;
    }
    bool paging = s_true(r, 0, 0);
    PQclear(r);
    /* A stale state cannot promise that nothing pages, nor that a page still fires. */
    int verdict = stale ? WW_SLO_STALE : paging ? WW_SLO_PAGING : WW_SLO_OK;

    if (json) {
        r = s_query(conn, s_json_sql, stale ? "true" : "false", err);
        if (!r) {
            return WW_SLO_ERROR;
        }
        fprintf(out, "%s\n", PQgetvalue(r, 0, 0));
        PQclear(r);
        return verdict;
    }

    fprintf(out, "last evaluation %s, %.0f s ago (every %g s, by %s)%s\n\n", when, age, interval,
            host, stale ? ": STALE, the evaluator is down" : "");
    r = s_query(conn, s_leader_sql, NULL, err);
    if (!r) {
        return WW_SLO_ERROR;
    }
    if (PQntuples(r) == 1) {
        double left = strtod(PQgetvalue(r, 0, 4), NULL);
        fprintf(out, "leader %s, term %s since %s, lease %s %s (%.1f s %s)\n\n", s_v(r, 0, 0),
                s_v(r, 0, 1), s_v(r, 0, 2), left >= 0 ? "until" : "EXPIRED at", s_v(r, 0, 3),
                left >= 0 ? left : -left,
                left >= 0 ? "left"
                          : "ago: no evaluator holds it, one takes it over at its next poll");
    } else {
        fprintf(out, "leader: none yet\n\n");
    }
    PQclear(r);
    r = s_query(conn, s_phases_sql, NULL, err);
    if (!r) {
        return WW_SLO_ERROR;
    }
    if (PQntuples(r) == 0) {
        fprintf(out, "no phases configured (the SLO evaluator writes them at start)\n");
    }
    for (int i = 0; i < PQntuples(r); i++) {
        if (i > 0) {
            fputc('\n', out);
        }
        if (s_print_phase(conn, r, i, out, err) < 0) {
            goto cleanup;
        }
    }
    /* Firing alerts of what is no longer configured: listed, not counted. */
    if (s_print_alerts(conn, NULL, out, err) < 0) {
        goto cleanup;
    }
    rc = verdict;

cleanup:
    PQclear(r);
    return rc;
}

static void s_usage(FILE *out)
{
    fprintf(out, "usage: waferwatch slo [--pg CONNINFO] [--json]\n"
                 "  --pg CONNINFO  libpq connection string or URI (default: PGHOST, PGPORT,\n"
                 "                 PGDATABASE, PGUSER, ... from the environment)\n"
                 "  --json         one JSON document instead of the text report\n"
                 "exit: 0 ok, 1 a firing alert has severity page, 2 error, 3 no evaluation\n"
                 "      yet, or the last one is older than 3 evaluation intervals (at least\n"
                 "      30 s): the evaluator is down and the state is stale\n");
}

int ww_slo_report_main(int argc, char **argv)
{
    const char *conninfo = "";
    bool json = false;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--pg") == 0 && i + 1 < argc) {
            conninfo = argv[++i];
        } else if (strncmp(argv[i], "--pg=", 5) == 0) {
            conninfo = argv[i] + 5;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return WW_SLO_OK;
        } else {
            fprintf(stderr, "waferwatch slo: bad argument \"%s\"\n", argv[i]);
            s_usage(stderr);
            return WW_SLO_ERROR;
        }
    }
    PGconn *conn = PQconnectdb(conninfo);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "waferwatch slo: cannot connect to PostgreSQL: %s",
                conn ? PQerrorMessage(conn) : "out of memory\n");
        PQfinish(conn);
        return WW_SLO_ERROR;
    }
    int rc = ww_slo_report(conn, stdout, stderr, json);
    PQfinish(conn);
    return rc;
}
