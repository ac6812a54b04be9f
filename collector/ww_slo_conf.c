/* slo_config: see ww_slo_conf.h. */
#include "ww_slo_conf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROW WW_CFG_ROW
#define L(f) offsetof(ww_slo_t, f)
#define P(f) offsetof(ww_phase_t, f)
#define C(f) offsetof(ww_slo_conf_t, f)

/* Most SLOs in one phase; a guard against runaway files, not a design limit. */
#define WW_SLO_MAX_PER_PHASE 256

static const ww_cfg_opt_t s_slo_rows[] = {
    ROW("name", WW_CFG_STRING, NULL, L(name), 0, 0, NULL,
        "SLO name, unique within its phase (e.g. ttft-8b)"),
    ROW("model", WW_CFG_STRING, "*", L(model), 0, 0, NULL, "model name, or * for all models"),
    ROW("metric", WW_CFG_STRING, NULL, L(metric), 0, 0, NULL,
        "ttft, tpot, e2e, queue (latencies) or availability"),
    ROW("threshold", WW_CFG_DOUBLE, "0", L(threshold_s), 0, 86400, NULL,
        "latency SLOs: a good request is at or under this many seconds (required, > 0)"),
    ROW("objective", WW_CFG_DOUBLE, NULL, L(objective), 0, 1, NULL,
        "share of good requests over the period, strictly between 0 and 1 (e.g. 0.99)"),
    ROW("period", WW_CFG_DURATION, "30d", L(period_ns), 1, 400 * 86400.0, NULL,
        "error-budget period"),
    ROW("min_requests", WW_CFG_INT, "100", L(min_requests), 0, 1e12, NULL,
        "a burn-rate alert fires only when its long window holds at least this many requests"),
};

static const ww_cfg_opt_t s_phase_rows[] = {
    ROW("id", WW_CFG_STRING, NULL, P(id), 0, 0, NULL,
        "phase id; the agents' node.phase (e.g. phase-2026a)"),
    ROW("name", WW_CFG_STRING, "", P(name), 0, 0, NULL, "human-readable name"),
    ROW("go_live", WW_CFG_STRING, NULL, P(go_live), 0, 0, NULL,
        "go-live date YYYY-MM-DD (UTC); capacity is owed from midnight"),
    ROW("contracted_mw", WW_CFG_DOUBLE, NULL, P(contracted_mw), 0, 100000, NULL,
        "IT capacity contracted for this phase, MW"),
    ROW("capacity_breach_share", WW_CFG_DOUBLE, "0.95", P(capacity_breach_share), 0, 1, NULL,
        "after go-live, delivered/contracted below this is a capacity breach"),
    ROW("power_ceiling_mw", WW_CFG_DOUBLE, "0", P(power_ceiling_mw), 0, 100000, NULL,
        "alert when the phase draws more than this, MW (0 = contracted_mw)"),
    ROW("hotspot_max_c", WW_CFG_DOUBLE, "95", P(hotspot_max_c), 0, 200, NULL,
        "alert when any node's hotspot temperature exceeds this, degrees C"),
    ROW("outlet_max_c", WW_CFG_DOUBLE, "45", P(outlet_max_c), 0, 200, NULL,
        "alert when any node's coolant outlet temperature exceeds this, degrees C"),
    {"slos", WW_CFG_TABLE, NULL, P(slos), 0, 0, NULL,
     "service level objectives: list of {name, model, metric, threshold, objective, period, "
     "min_requests}",
     s_slo_rows, sizeof s_slo_rows / sizeof s_slo_rows[0], sizeof(ww_slo_t), 0,
     WW_SLO_MAX_PER_PHASE},
};

static const ww_cfg_opt_t s_rows[] = {
    ROW("evaluation.interval", WW_CFG_DURATION, "30s", C(interval_ns), 0.1, 3600, NULL,
        "how often SLOs, capacity, power and thermal limits are evaluated"),
    ROW("evaluation.window_scale", WW_CFG_DOUBLE, "1", C(window_scale), 1e-6, 1000, NULL,
        "multiplies every alerting window (5m..3d) and the budget period (tests: 0.001)"),
    ROW("evaluation.healthy_window", WW_CFG_DURATION, "30s", C(healthy_window_ns), 0.1, 86400, NULL,
        "a node that reported within this counts as reporting"),
    ROW("alertmanager.url", WW_CFG_STRING, "", C(alertmanager_url), 0, 0, NULL,
        "Prometheus Alertmanager base URL (e.g. http://127.0.0.1:9093); empty = no push"),
    ROW("alertmanager.timeout", WW_CFG_DURATION, "5s", C(alertmanager_timeout_ns), 0.1, 300, NULL,
        "longest wait for one Alertmanager push"),
    ROW("notify.channel", WW_CFG_STRING, "waferwatch_alerts", C(notify_channel), 0, 0, NULL,
        "PostgreSQL NOTIFY channel for alert transitions"),
    {"phases", WW_CFG_TABLE, NULL, C(phases), 0, 0, NULL,
     "capacity phases: list of {id, name, go_live, contracted_mw, ..., slos}", s_phase_rows,
     sizeof s_phase_rows / sizeof s_phase_rows[0], sizeof(ww_phase_t), 1, 64},
};

const ww_cfg_schema_t ww_slo_schema = {
    .program = "waferwatch-slo",
    .summary = "capacity phases and their service level objectives",
    .env_prefix = "WW_SLO_",
    .opts = s_rows,
    .n_opts = sizeof s_rows / sizeof s_rows[0],
};

static const char *const s_sli_names[] = {"ttft", "tpot", "e2e", "queue", "availability"};

const char *ww_sli_name(ww_sli_t sli)
{
    if ((unsigned)sli < sizeof s_sli_names / sizeof s_sli_names[0]) {
        return s_sli_names[sli];
    }
    return "?";
}

/* The file being validated: its text, so that every error can name the line and column
 * of the value it refuses, as the parser's own errors do. */
typedef struct {
    const char *text; /* the YAML text, or NULL (errors then name the key only) */
    size_t len;
    const char *name; /* file name in errors */
    ww_cfg_err_t *err;
    int n_bad; /* errors found by the checks here */
} s_check_t;

/* Adds "NAME:LINE:COL: KEY: why" for the value at key; for a key the file does not hold (a
 * required field left out) the line of the nearest enclosing item ("phases[1]"). Returns
 * -EINVAL, so that a check can `return s_bad(...)` or go on. */
static int s_bad(s_check_t *k, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_bad(s_check_t *k, const char *key, const char *fmt, ...)
{
    char why[384], at[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    size_t line = 0, col = 0;
    snprintf(at, sizeof at, "%s", key);
    k->n_bad++;
    /* Each look-up parses the file again: none once the list is full (it only says
     * "stopped" then), so a file of 10^4 bad SLOs costs no 10^4 parses. */
    if (ww_cfg_err_count(k->err) >= WW_CFG_MAX_ERRORS) {
        ww_cfg_err_add(k->err, "%s", key);
        return -EINVAL;
    }
    while (ww_cfg_locate(k->text, k->len, at, &line, &col) < 0) {
        char *cut = strrchr(at, '.');
        char *br = strrchr(at, '[');
        cut = br && (!cut || br > cut) ? br : cut;
        if (!cut) {
            break;
        }
        *cut = '\0';
    }
    if (line) {
        ww_cfg_err_add(k->err, "%s:%zu:%zu: %s: %s", k->name, line, col, key, why);
    } else {
        ww_cfg_err_add(k->err, "%s: %s: %s", k->name, key, why);
    }
    return -EINVAL;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t s_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* Parses exactly YYYY-MM-DD (a real calendar date, years 1970..2200) to midnight UTC in
 * ns. Returns 0 or -EINVAL. */
static int s_parse_date(const char *s, int64_t *ns)
{
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-') {
        return -EINVAL;
    }
    for (int i = 0; i < 10; i++) {
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) {
            return -EINVAL;
        }
    }
    unsigned y =
        (unsigned)((s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0'));
    unsigned m = (unsigned)((s[5] - '0') * 10 + (s[6] - '0'));
    unsigned d = (unsigned)((s[8] - '0') * 10 + (s[9] - '0'));
    if (y < 1970 || y > 2200 || m < 1 || m > 12 || d < 1) {
        return -EINVAL;
    }
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    unsigned max = mdays[m - 1] + (m == 2 && leap ? 1u : 0u);
    if (d > max) {
        return -EINVAL;
    }
    *ns = s_days_from_civil(y, m, d) * 86400 * (int64_t)1000000000;
    return 0;
}

/* "phases[1].slos[0].metric": the key of one field of an SLO, as errors spell it. */
static const char *s_slo_key(char *buf, size_t cap, size_t pi, size_t si, const char *field)
{
    snprintf(buf, cap, "phases[%zu].slos[%zu].%s", pi, si, field);
    return buf;
}

static void s_check_slo(s_check_t *k, ww_slo_t *l, size_t pi, size_t si)
{
    char key[600];
#define S_FIELD(name) s_slo_key(key, sizeof key, pi, si, name)
    if (!l->name || !l->name[0]) {
        s_bad(k, S_FIELD("name"), "required (a non-empty name unique within the phase)");
    }
    if (!l->model || !l->model[0]) {
        s_bad(k, S_FIELD("model"), "must not be empty (a model name, or * for all models)");
    }
    size_t m = sizeof s_sli_names / sizeof s_sli_names[0];
    if (!l->metric) {
        s_bad(k, S_FIELD("metric"), "required (one of ttft, tpot, e2e, queue, availability)");
    } else {
        for (m = 0; m < sizeof s_sli_names / sizeof s_sli_names[0]; m++) {
            if (strcmp(l->metric, s_sli_names[m]) == 0) {
                break;
            }
        }
        if (m == sizeof s_sli_names / sizeof s_sli_names[0]) {
            s_bad(k, S_FIELD("metric"), "'%s' is not one of ttft, tpot, e2e, queue, availability",
                  l->metric);
        }
    }
    /* An unknown metric is already an error; as availability it asks for no threshold. */
    l->sli = m < sizeof s_sli_names / sizeof s_sli_names[0] ? (ww_sli_t)m : WW_SLI_AVAILABILITY;
    if (!(l->objective > 0 && l->objective < 1)) {
        s_bad(k, S_FIELD("objective"), "%g must be strictly between 0 and 1 (e.g. 0.99)",
              l->objective);
    }
    if (l->metric && l->sli != WW_SLI_AVAILABILITY && !(l->threshold_s > 0)) {
        s_bad(k, S_FIELD("threshold"),
              "required for a %s SLO: seconds > 0 (a good request is at or under it)", l->metric);
    }
    /* A budget period shorter than a rule's long window would make that rule compare a
     * window against a budget it outlasts: the burn rates mean nothing. */
    if (l->period_ns < WW_SLO_LONGEST_WINDOW_S * INT64_C(1000000000)) {
        s_bad(k, S_FIELD("period"),
              "%.6gd is shorter than 3d, the longest window of the burn-rate rules (at least 3d; "
              "the default is 30d)",
              (double)l->period_ns / 86400e9);
    }
#undef S_FIELD
}

/* True for http://HOST... or https://HOST... with no blank or control character: what the
 * Alertmanager push can use. Anything else would fail every push, at evaluation time. */
static bool s_is_http_url(const char *u)
{
    size_t p = strncmp(u, "http://", 7) == 0 ? 7 : strncmp(u, "https://", 8) == 0 ? 8 : 0;
    if (p == 0 || u[p] == '\0' || u[p] == '/' || u[p] == ':') {
        return false;
    }
    for (const char *c = u; *c; c++) {
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            return false;
        }
    }
    return true;
}

static void s_check_phase(s_check_t *k, ww_phase_t *ph, size_t i)
{
    ww_phase_t *p = &ph[i];
    char key[600];
    if (!p->id || !p->id[0]) {
        snprintf(key, sizeof key, "phases[%zu].id", i);
        s_bad(k, key, "required (the agents' node.phase)");
    } else {
        for (size_t j = 0; j < i; j++) {
            if (ph[j].id && strcmp(ph[j].id, p->id) == 0) {
                snprintf(key, sizeof key, "phases[%zu].id", i);
                s_bad(k, key, "'%s' is already the id of phases[%zu]", p->id, j);
                break;
            }
        }
    }
    snprintf(key, sizeof key, "phases[%zu].go_live", i);
    if (!p->go_live) {
        s_bad(k, key, "required (YYYY-MM-DD)");
    } else if (s_parse_date(p->go_live, &p->go_live_ns) < 0) {
        s_bad(k, key, "'%s' is not a calendar date YYYY-MM-DD", p->go_live);
    }
    if (!(p->contracted_mw > 0)) {
        snprintf(key, sizeof key, "phases[%zu].contracted_mw", i);
        s_bad(k, key, "required: the phase's contracted MW (> 0)");
    }
    if (p->power_ceiling_mw == 0) {
        p->power_ceiling_mw = p->contracted_mw;
    } else if (p->power_ceiling_mw < p->contracted_mw) {
        /* The phase would alert on its own contracted draw. */
        snprintf(key, sizeof key, "phases[%zu].power_ceiling_mw", i);
        s_bad(k, key,
              "%g is below contracted_mw %g (the ceiling is at least the contracted MW; 0 = "
              "contracted_mw)",
              p->power_ceiling_mw, p->contracted_mw);
    }
    ww_slo_t *ls = p->slos.items;
    for (size_t s = 0; s < p->slos.n; s++) {
        s_check_slo(k, &ls[s], i, s);
        for (size_t t = 0; t < s && ls[s].name && ls[s].name[0]; t++) {
            if (ls[t].name && strcmp(ls[t].name, ls[s].name) == 0) {
                snprintf(key, sizeof key, "phases[%zu].slos[%zu].name", i, s);
                s_bad(k, key, "'%s' is already used by slos[%zu] of phase %s", ls[s].name, t,
                      p->id ? p->id : "?");
                break;
            }
        }
    }
}

/* Every check of the whole file, each failure one error line: one mistake must not hide
 * the next. Returns 0 or -EINVAL. */
static int s_validate(ww_slo_conf_t *c, s_check_t *k)
{
    if (c->alertmanager_url && c->alertmanager_url[0] && !s_is_http_url(c->alertmanager_url)) {
        s_bad(k, "alertmanager.url",
              "'%s' is not an http(s) URL (e.g. http://127.0.0.1:9093; empty = no push)",
              c->alertmanager_url);
    }
    for (size_t i = 0; i < c->phases.n; i++) {
        s_check_phase(k, c->phases.items, i);
    }
    return k->n_bad ? -EINVAL : 0;
}

/* ww_config checks "required" only for whole tables, so fields without defaults (phase
 * id, go_live, contracted_mw; SLO name, metric, objective) are checked in s_validate: a
 * missing number reads as 0 and fails its (0, ...) check, naming the field. The checks run
 * even after the parser refused something, so one run lists the parser's errors and the
 * checks' together; a table with a refused item is not loaded at all, so no check runs on
 * half an item. */
static int s_load_text(const char *text, size_t len, const char *name, ww_slo_conf_t *out,
                       ww_cfg_err_t *err)
{
    ww_cfg_err_t scratch;
    if (!err) {
        err = &scratch;
    }
    memset(out, 0, sizeof *out);
    int rc = ww_cfg_defaults(&ww_slo_schema, out, err);
    if (rc == 0) {
        rc = ww_cfg_load_buffer(&ww_slo_schema, out, text, len, name, err);
    }
    /* A syntax error leaves no document to check; a value error leaves the rest of it. */
    size_t line, col;
    bool parsed = rc == 0 || (rc == -EINVAL && ww_cfg_locate(text, len, "", &line, &col) == 0);
    if (parsed && rc == 0 && out->phases.n == 0) {
        ww_cfg_err_add(err, "%s: phases: 0 items given, at least 1 required", name);
        rc = -EINVAL;
    }
    if (parsed) {
        s_check_t k = {.text = text, .len = len, .name = name, .err = err};
        int vrc = s_validate(out, &k);
        rc = rc < 0 ? rc : vrc;
    }
    if (rc < 0) {
        ww_slo_conf_free(out);
    }
    return rc;
}

int ww_slo_conf_load(const char *path, ww_slo_conf_t *out, ww_cfg_err_t *err)
{
    memset(out, 0, sizeof *out);
    char *buf = NULL;
    size_t len = 0;
    int rc = ww_cfg_read_file(path, &buf, &len, err);
    if (rc == 0) {
        rc = s_load_text(buf, len, path, out, err);
    }
    free(buf);
    return rc;
}

int ww_slo_conf_load_buffer(const char *text, size_t len, const char *name, ww_slo_conf_t *out,
                            ww_cfg_err_t *err)
{
    return s_load_text(text, len, name ? name : "(buffer)", out, err);
}

void ww_slo_conf_free(ww_slo_conf_t *c)
{
    if (!c) {
        return;
    }
    ww_cfg_free(&ww_slo_schema, c);
    memset(c, 0, sizeof *c);
}

const ww_phase_t *ww_slo_phase(const ww_slo_conf_t *c, const char *id)
{
    if (!c || !id) {
        return NULL;
    }
    const ww_phase_t *ph = c->phases.items;
    for (size_t i = 0; i < c->phases.n; i++) {
        if (ph[i].id && strcmp(ph[i].id, id) == 0) {
            return &ph[i];
        }
    }
    return NULL;
}
