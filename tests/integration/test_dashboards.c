/* The Grafana dashboards (every JSON file in dashboards/) against a database filled by a
 * real run: two agents (two sites, two phases, three nodes each) stream to a collector that
 * evaluates the phases' SLOs; a coolant pump fault on one phase throttles its wafers and
 * fires its alerts; the storage tiers are then built over the run. Then every dashboard is
 * parsed (lib/ww_json.c) and checked: schema version, the `${datasource}` variable on every panel,
 * target and variable query, unique panel ids, every variable a query uses is defined.
 * Every variable query and every panel's rawSql is expanded the way Grafana does it
 * (template variables first, as the browser does, then the PostgreSQL data source's macros)
 * and run as waferwatch_reader. Over the last 15 minutes: with every variable at All each
 * must return rows; for each single value a user can pick each must run, and some value
 * must give rows. Over 24 hours, 7 and 30 days (other tiers, and $__interval as Grafana
 * computes it for the range) every query must run. A `$` left after expansion (a misspelt
 * variable or macro) fails. The views of migration 0007 are checked too: commented,
 * readable by the reader, filled. */
#include "harness.h"
#include "ww_json.h"
#include "ww_test.h"

#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef WW_DASHBOARDS_DIR
#error "WW_DASHBOARDS_DIR (the source dashboards/ folder) must be defined"
#endif

#define S_PLUGIN "grafana-postgresql-datasource"
#define S_DS_UID "${datasource}"
#define S_MAX_VARS 16
#define S_MAX_QUERIES 128
#define S_MAX_OPTS 64
#define S_MAX_FILES 32

/* ------------------------------------------------------------------ error list */

typedef struct {
    char *text;
    size_t len;
    int n;
} s_errs_t;

static void s_err(s_errs_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_err(s_errs_t *e, const char *fmt, ...)
{
    e->n++;
    if (e->len > 200000) {
        return; /* enough to read */
    }
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *t = realloc(e->text, e->len + (size_t)need + 16);
    assert_non_null(t);
    e->text = t;
    e->len += (size_t)snprintf(e->text + e->len, 16, "\n[%d] ", e->n);
    va_start(ap, fmt);
    vsnprintf(e->text + e->len, (size_t)need + 1, fmt, ap);
    va_end(ap);
    e->len += (size_t)need;
}

/* ------------------------------------------------------------------ string builder */

typedef struct {
    char *s;
    size_t len, cap;
} s_buf_t;

static void s_put(s_buf_t *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *s = realloc(b->s, cap);
        assert_non_null(s);
        b->s = s;
        b->cap = cap;
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void s_puts(s_buf_t *b, const char *p)
{
    s_put(b, p, strlen(p));
}

static void s_putf(s_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_putf(s_buf_t *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof tmp);
    s_put(b, tmp, (size_t)n);
}

/* ------------------------------------------------------------------ the dashboard model */

typedef struct {
    const char *name, *type, *query, *all_value;
    bool multi, include_all;
    char *opts[S_MAX_OPTS]; /* options with every other variable at All (owned) */
    size_t n_opts;
    char *cur[S_MAX_OPTS]; /* options in the case being run (owned) */
    size_t n_cur;
    const char *vals[S_MAX_OPTS]; /* the values picked in the case being run */
    size_t n_vals;
    bool all;
} s_var_t;

typedef struct {
    int id;
    const char *title, *type, *sql, *format, *interval;
    char *base_sql; /* expanded with every variable at All (owned) */
    bool affected[S_MAX_VARS], gave_rows[S_MAX_VARS];
} s_query_t;

typedef struct {
    const char *file;
    ww_json_t *root;
    s_var_t vars[S_MAX_VARS];
    size_t n_vars;
    s_query_t qs[S_MAX_QUERIES];
    size_t n_qs;
    int ids[S_MAX_QUERIES];
    size_t n_ids;
    long long from_ms, to_ms;
    char from[40], to[40]; /* RFC 3339 UTC, as Grafana renders them */
    char range[32];        /* "last 15 min", for the messages */
    s_errs_t *errs;
    long long ran; /* queries run */
} s_dash_t;

static bool s_is_word(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static s_var_t *s_var(s_dash_t *d, const char *name, size_t len)
{
    for (size_t i = 0; i < d->n_vars; i++) {
        if (strlen(d->vars[i].name) == len && strncmp(d->vars[i].name, name, len) == 0) {
            return &d->vars[i];
        }
    }
    return NULL;
}

static const char *const s_macros[] = {"__time",
                                       "__timeEpoch",
                                       "__timeFilter",
                                       "__timeFrom",
                                       "__timeTo",
                                       "__timeGroup",
                                       "__timeGroupAlias",
                                       "__unixEpochFilter",
                                       "__unixEpochNanoFilter",
                                       "__unixEpochNanoFrom",
                                       "__unixEpochNanoTo",
                                       "__unixEpochGroup",
                                       "__unixEpochGroupAlias",
                                       "__unixEpochFrom",
                                       "__unixEpochTo",
                                       NULL};
static const char *const s_globals[] = {"__interval", "__interval_ms", "__from",     "__to",
                                        "__range",    "__range_s",     "__range_ms", NULL};
static const char *const s_formats[] = {"sqlstring",   "csv",         "raw",  "text",
                                        "singlequote", "doublequote", "pipe", NULL};

static bool s_in(const char *const *list, const char *s, size_t len)
{
    for (size_t i = 0; list[i]; i++) {
        if (strlen(list[i]) == len && strncmp(list[i], s, len) == 0) {
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------ Grafana intervals */

/* "1m", "10s", "500ms", "1h", "1d", "1w", "1y" (gtime.ParseInterval): seconds, or -1. */
static double s_interval_s(const char *text, size_t len)
{
    char buf[32];
    if (len == 0 || len >= sizeof buf) {
        return -1;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *unit;
    double v = strtod(buf, &unit);
    if (unit == buf || !(v >= 0)) {
        return -1;
    }
    static const struct {
        const char *u;
        double s;
    } units[] = {{"ms", 0.001}, {"s", 1},      {"m", 60},      {"h", 3600},
                 {"d", 86400},  {"w", 604800}, {"M", 2592000}, {"y", 31536000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(unit, units[i].u) == 0) {
            return v * units[i].s;
        }
    }
    return -1;
}

/* Shortest decimal that reads back as v, like Go's %v of a float64 (no exponent for whole
 * numbers under 1e21). */
static void s_num(char *out, size_t cap, double v)
{
    if (v == floor(v) && fabs(v) < 1e21) {
        snprintf(out, cap, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v) {
            return;
        }
    }
}

static void s_rfc3339(char *out, size_t cap, long long ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    char frac[8];
    snprintf(frac, sizeof frac, ".%03lld", ms % 1000);
    size_t n = strlen(frac);
    while (n > 1 && frac[n - 1] == '0') { /* RFC3339Nano drops trailing zeros */
        frac[--n] = '\0';
    }
    snprintf(out, cap, "%s%sZ", base, n > 1 ? frac : "");
}

static void s_set_range(s_dash_t *d, long long from_ms, long long to_ms)
{
    d->from_ms = from_ms;
    d->to_ms = to_ms;
    s_rfc3339(d->from, sizeof d->from, from_ms);
    s_rfc3339(d->to, sizeof d->to, to_ms);
    long long min = (to_ms - from_ms) / 60000;
    if (min % 1440 == 0) {
        snprintf(d->range, sizeof d->range, "last %lld d", min / 1440);
    } else if (min % 60 == 0) {
        snprintf(d->range, sizeof d->range, "last %lld h", min / 60);
    } else {
        snprintf(d->range, sizeof d->range, "last %lld min", min);
    }
}

/* A panel's $__interval over the dashboard's range, as Grafana's calculateInterval gives it:
 * the range over S_POINTS points rounded to a "nice" interval (roundInterval), raised to the
 * panel's minimum interval, or the data source's (1s) when the panel sets none. */
#define S_POINTS 1000

static const char *s_panel_interval(const s_dash_t *d, const char *min_interval)
{
    static const struct {
        double below_ms;
        const char *iv;
    } nice[] = {{1500, "1s"},       {3500, "2s"},       {7500, "5s"},      {12500, "10s"},
                {17500, "15s"},     {25000, "20s"},     {45000, "30s"},    {90000, "1m"},
                {210000, "2m"},     {450000, "5m"},     {750000, "10m"},   {1050000, "15m"},
                {1500000, "20m"},   {2700000, "30m"},   {5400000, "1h"},   {9000000, "2h"},
                {16200000, "3h"},   {32400000, "6h"},   {86400000, "12h"}, {604800000, "1d"},
                {1814400000, "1w"}, {3628800000, "30d"}};
    double ms = (double)(d->to_ms - d->from_ms) / S_POINTS;
    const char *iv = "1y";
    for (size_t i = 0; i < sizeof nice / sizeof nice[0]; i++) {
        if (ms < nice[i].below_ms) {
            iv = nice[i].iv;
            break;
        }
    }
    const char *low = min_interval ? min_interval : "1s";
    return s_interval_s(low, strlen(low)) > s_interval_s(iv, strlen(iv)) ? low : iv;
}

/* ------------------------------------------------------------------ expansion */

/* A variable's value in a format (Grafana's formatters; a SQL data source quotes every
 * value of a multi-value or include-All variable when no format is given). */
static int s_format(s_buf_t *out, const s_var_t *v, const char *fmt, size_t fmt_len, char *err,
                    size_t errcap)
{
    char f[32] = "";
    if (fmt) {
        snprintf(f, sizeof f, "%.*s", (int)(fmt_len < 31 ? fmt_len : 31), fmt);
        if (!s_in(s_formats, fmt, fmt_len)) {
            snprintf(err, errcap, "unknown format \"%s\" of $%s", f, v->name);
            return -1;
        }
    }
    if (v->all && v->all_value && v->all_value[0]) {
        s_puts(out, v->all_value); /* a custom All value goes in as it is */
        return 0;
    }
    bool sqlq = fmt ? strcmp(f, "sqlstring") == 0 : (v->multi || v->include_all);
    const char *sep = strcmp(f, "pipe") == 0 ? "|" : ",";
    for (size_t i = 0; i < v->n_vals; i++) {
        const char *s = v->vals[i];
        if (i) {
            s_puts(out, sep);
        }
        if (sqlq || strcmp(f, "singlequote") == 0 || strcmp(f, "doublequote") == 0) {
            char q = strcmp(f, "doublequote") == 0 ? '"' : '\'';
            s_put(out, &q, 1);
            for (; *s; s++) {
                if (*s == q) {
                    s_puts(out, sqlq ? "''" : (q == '"' ? "\\\"" : "\\'"));
                } else {
                    s_put(out, s, 1);
                }
            }
            s_put(out, &q, 1);
        } else {
            s_puts(out, s);
        }
    }
    return 0;
}

/* Grafana's global variables: 1 when name is not one. */
static int s_global(const s_dash_t *d, const char *name, size_t len, const char *interval,
                    s_buf_t *out)
{
    if (!s_in(s_globals, name, len)) {
        return 1;
    }
    char n[32];
    snprintf(n, sizeof n, "%.*s", (int)len, name);
    double range_s = (double)(d->to_ms - d->from_ms) / 1000.0;
    if (strcmp(n, "__interval") == 0) {
        s_puts(out, interval);
    } else if (strcmp(n, "__interval_ms") == 0) {
        s_putf(out, "%lld", (long long)llround(s_interval_s(interval, strlen(interval)) * 1000));
    } else if (strcmp(n, "__from") == 0) {
        s_putf(out, "%lld", d->from_ms);
    } else if (strcmp(n, "__to") == 0) {
        s_putf(out, "%lld", d->to_ms);
    } else if (strcmp(n, "__range") == 0) {
        s_putf(out, "%llds", (long long)llround(range_s));
    } else if (strcmp(n, "__range_s") == 0) {
        s_putf(out, "%lld", (long long)llround(range_s));
    } else {
        s_putf(out, "%lld", d->to_ms - d->from_ms);
    }
    return 0;
}

/* One reference: 0 replaced, 1 left as it is (not a variable), -1 error. */
static int s_subst(s_dash_t *d, const char *name, size_t len, const char *fmt, size_t fmt_len,
                   const char *interval, s_buf_t *out, char *err, size_t errcap)
{
    s_var_t *v = s_var(d, name, len);
    if (v) {
        return s_format(out, v, fmt, fmt_len, err, errcap);
    }
    if (fmt && !(fmt_len == 3 && strncmp(fmt, "raw", 3) == 0) && s_in(s_globals, name, len)) {
        snprintf(err, errcap, "format of $%.*s not supported here", (int)len, name);
        return -1;
    }
    return s_global(d, name, len, interval, out);
}

/* Pass 1, Grafana's template service: $var, ${var}, ${var.field}, ${var:format},
 * [[var]], [[var:format]]. What is not a variable is left as it is. */
static int s_pass_vars(s_dash_t *d, const char *in, const char *interval, s_buf_t *out, char *err,
                       size_t errcap)
{
    const char *p = in;
    while (*p) {
        const char *name = NULL, *fmt = NULL, *end = NULL;
        size_t len = 0, fmt_len = 0;
        if (p[0] == '$' && p[1] == '{') {
            const char *q = p + 2;
            while (s_is_word(*q)) {
                q++;
            }
            const char *close = strchr(q, '}');
            if (q > p + 2 && close && (*q == '}' || *q == '.' || *q == ':')) {
                name = p + 2;
                len = (size_t)(q - name);
                const char *colon = memchr(q, ':', (size_t)(close - q));
                if (colon) {
                    fmt = colon + 1;
                    fmt_len = (size_t)(close - fmt);
                }
                end = close + 1;
            }
        } else if (p[0] == '[' && p[1] == '[') {
            const char *q = p + 2;
            while (s_is_word(*q)) {
                q++;
            }
            if (q > p + 2 && q[0] == ']' && q[1] == ']') {
                name = p + 2;
                len = (size_t)(q - name);
                end = q + 2;
            } else if (q > p + 2 && q[0] == ':') {
                const char *f = q + 1;
                while (s_is_word(*f)) {
                    f++;
                }
                if (f[0] == ']' && f[1] == ']') {
                    name = p + 2;
                    len = (size_t)(q - name);
                    fmt = q + 1;
                    fmt_len = (size_t)(f - fmt);
                    end = f + 2;
                }
            }
        } else if (p[0] == '$' && s_is_word(p[1])) {
            name = p + 1;
            end = name;
            while (s_is_word(*end)) {
                end++;
            }
            len = (size_t)(end - name);
        }
        if (!name) {
            s_put(out, p, 1);
            p++;
            continue;
        }
        int rc = s_subst(d, name, len, fmt, fmt_len, interval, out, err, errcap);
        if (rc < 0) {
            return -1;
        }
        if (rc == 1) {
            s_put(out, p, (size_t)(end - p));
        }
        p = end;
    }
    return 0;
}

static void s_trim(const char **s, size_t *len)
{
    while (*len && isspace((unsigned char)**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && isspace((unsigned char)(*s)[*len - 1])) {
        (*len)--;
    }
}

/* One macro of the PostgreSQL data source (pkg/tsdb/grafana-postgresql-datasource,
 * macros.go). args: the text between the parentheses. */
static int s_macro(const s_dash_t *d, const char *name, const char *args, size_t args_len,
                   bool comma_after, s_buf_t *out, char *err, size_t errcap)
{
    const char *a[4] = {NULL};
    size_t al[4] = {0};
    size_t n = 0;
    const char *p = args;
    const char *end = args + args_len;
    while (n < 4) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        a[n] = p;
        al[n] = (size_t)((c ? c : end) - p);
        s_trim(&a[n], &al[n]);
        n++;
        if (!c) {
            break;
        }
        p = c + 1;
    }
    bool col = al[0] > 0;
    long long from_s = d->from_ms / 1000, to_s = d->to_ms / 1000;
    if (strcmp(name, "__timeGroup") == 0 && comma_after) {
        name = "__timeGroupAlias"; /* the pre-5.3 form, as Grafana reads it */
    }
    if (strcmp(name, "__time") == 0 && col) {
        s_putf(out, "%.*s AS \"time\"", (int)al[0], a[0]);
    } else if (strcmp(name, "__timeEpoch") == 0 && col) {
        s_putf(out, "extract(epoch from %.*s) as \"time\"", (int)al[0], a[0]);
    } else if (strcmp(name, "__timeFilter") == 0 && col) {
        s_putf(out, "%.*s BETWEEN '%s' AND '%s'", (int)al[0], a[0], d->from, d->to);
    } else if (strcmp(name, "__timeFrom") == 0) {
        s_putf(out, "'%s'", d->from);
    } else if (strcmp(name, "__timeTo") == 0) {
        s_putf(out, "'%s'", d->to);
    } else if ((strcmp(name, "__timeGroup") == 0 || strcmp(name, "__timeGroupAlias") == 0 ||
                strcmp(name, "__unixEpochGroup") == 0 ||
                strcmp(name, "__unixEpochGroupAlias") == 0) &&
               n >= 2) {
        const char *iv = a[1];
        size_t il = al[1];
        if (il >= 2 && iv[0] == '\'' && iv[il - 1] == '\'') {
            iv++;
            il -= 2;
        }
        double s = s_interval_s(iv, il);
        if (s <= 0) {
            snprintf(err, errcap, "$%s: bad interval \"%.*s\"", name, (int)al[1], a[1]);
            return -1;
        }
        char sec[32];
        s_num(sec, sizeof sec, s);
        if (strncmp(name, "__unix", 6) == 0) {
            s_putf(out, "floor((%.*s)/%s)*%s", (int)al[0], a[0], sec, sec);
        } else {
            s_putf(out, "floor(extract(epoch from %.*s)/%s)*%s", (int)al[0], a[0], sec, sec);
        }
        if (strstr(name, "Alias")) {
            s_puts(out, " AS \"time\"");
        }
    } else if (strcmp(name, "__unixEpochFilter") == 0 && col) {
        s_putf(out, "%.*s >= %lld AND %.*s <= %lld", (int)al[0], a[0], from_s, (int)al[0], a[0],
               to_s);
    } else if (strcmp(name, "__unixEpochNanoFilter") == 0 && col) {
        s_putf(out, "%.*s >= %lld AND %.*s <= %lld", (int)al[0], a[0], d->from_ms * 1000000,
               (int)al[0], a[0], d->to_ms * 1000000);
    } else if (strcmp(name, "__unixEpochNanoFrom") == 0) {
        s_putf(out, "%lld", d->from_ms * 1000000);
    } else if (strcmp(name, "__unixEpochNanoTo") == 0) {
        s_putf(out, "%lld", d->to_ms * 1000000);
    } else if (strcmp(name, "__unixEpochFrom") == 0) {
        s_putf(out, "%lld", from_s);
    } else if (strcmp(name, "__unixEpochTo") == 0) {
        s_putf(out, "%lld", to_s);
    } else if (s_in(s_macros, name, strlen(name))) {
        snprintf(err, errcap, "macro $%s(%.*s): missing arguments", name, (int)args_len, args);
        return -1;
    } else {
        snprintf(err, errcap, "unknown macro $%s(", name);
        return -1;
    }
    return 0;
}

/* Pass 2, the data source's macro engine: $name(args) with args up to the first ')'. */
static int s_pass_macros(const s_dash_t *d, const char *in, s_buf_t *out, char *err, size_t errcap)
{
    const char *p = in;
    while (*p) {
        if (p[0] == '$' && s_is_word(p[1])) {
            const char *q = p + 1;
            while (s_is_word(*q)) {
                q++;
            }
            const char *close = *q == '(' ? strchr(q, ')') : NULL;
            if (close) {
                char name[64];
                snprintf(name, sizeof name, "%.*s", (int)(q - p - 1), p + 1);
                if (s_macro(d, name, q + 1, (size_t)(close - q - 1), close[1] == ',', out, err,
                            errcap) < 0) {
                    return -1;
                }
                p = close + 1;
                continue;
            }
        }
        s_put(out, p, 1);
        p++;
    }
    return 0;
}

/* The SQL Grafana would send for sql with the variables' current values and $__interval =
 * interval: malloc'd, or NULL with err. A '$' left over is an error: a misspelt variable
 * or macro. */
static char *s_expand(s_dash_t *d, const char *sql, const char *interval, char *err, size_t errcap)
{
    s_buf_t a = {0}, b = {0};
    s_puts(&a, "");
    s_puts(&b, "");
    err[0] = '\0';
    if (s_pass_vars(d, sql, interval, &a, err, errcap) < 0 ||
        s_pass_macros(d, a.s, &b, err, errcap) < 0) {
        free(a.s);
        free(b.s);
        return NULL;
    }
    free(a.s);
    const char *left = strchr(b.s, '$');
    if (left) {
        snprintf(err, errcap,
                 "unexpanded '$' left at \"%.40s\" (an undefined variable or "
                 "macro?)",
                 left);
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* ------------------------------------------------------------------ loading and structure */

/* Every reference of sql names a defined variable, a global, or a known macro. */
static void s_check_refs(s_dash_t *d, const char *where, const char *sql)
{
    for (const char *p = sql; *p; p++) {
        const char *name = NULL, *fmt = NULL;
        size_t len = 0, fmt_len = 0;
        bool macro = false;
        if (p[0] == '$' && p[1] == '{') {
            name = p + 2;
            const char *q = name;
            while (s_is_word(*q)) {
                q++;
            }
            len = (size_t)(q - name);
            const char *close = strchr(q, '}');
            const char *colon = close ? memchr(q, ':', (size_t)(close - q)) : NULL;
            if (colon) {
                fmt = colon + 1;
                fmt_len = (size_t)(close - fmt);
            }
        } else if (p[0] == '[' && p[1] == '[') {
            name = p + 2;
            const char *q = name;
            while (s_is_word(*q)) {
                q++;
            }
            len = (size_t)(q - name);
            if (*q == ':') {
                fmt = q + 1;
                fmt_len = strcspn(fmt, "]");
            }
        } else if (p[0] == '$') {
            name = p + 1;
            const char *q = name;
            while (s_is_word(*q)) {
                q++;
            }
            len = (size_t)(q - name);
            macro = *q == '(';
        } else {
            continue;
        }
        if (len == 0) {
            if (p[0] == '$') {
                s_err(d->errs, "%s: %s: a '$' that starts no variable at \"%.30s\"", d->file, where,
                      p);
            }
            continue;
        }
        if (macro && s_in(s_macros, name, len)) {
            continue;
        }
        if (macro && !s_var(d, name, len)) {
            s_err(d->errs, "%s: %s: unknown macro $%.*s(", d->file, where, (int)len, name);
        } else if (!s_var(d, name, len) && !s_in(s_globals, name, len)) {
            s_err(d->errs, "%s: %s: variable $%.*s is not defined in templating", d->file, where,
                  (int)len, name);
        } else if (fmt && !s_in(s_formats, fmt, fmt_len)) {
            s_err(d->errs, "%s: %s: unknown format \"%.*s\" of $%.*s", d->file, where, (int)fmt_len,
                  fmt, (int)len, name);
        }
    }
}

static void s_check_ds(s_dash_t *d, const char *where, const ww_json_t *ds)
{
    const char *type = ww_json_str(ww_json_get(ds, "type"));
    const char *uid = ww_json_str(ww_json_get(ds, "uid"));
    if (!type || strcmp(type, S_PLUGIN) != 0 || !uid || strcmp(uid, S_DS_UID) != 0) {
        s_err(d->errs,
              "%s: %s: datasource must be {\"type\": \"" S_PLUGIN "\", \"uid\": \"" S_DS_UID
              "\"}, is type %s uid %s",
              d->file, where, type ? type : "(none)", uid ? uid : "(none)");
    }
}

static void s_load_vars(s_dash_t *d)
{
    const ww_json_t *list = ww_json_get(ww_json_get(d->root, "templating"), "list");
    if (!list || list->type != WW_JSON_ARR) {
        s_err(d->errs, "%s: templating.list is not an array", d->file);
        return;
    }
    bool have_ds = false;
    for (size_t i = 0; i < list->n && d->n_vars < S_MAX_VARS; i++) {
        const ww_json_t *j = list->items[i];
        s_var_t *v = &d->vars[d->n_vars];
        memset(v, 0, sizeof *v);
        v->name = ww_json_str(ww_json_get(j, "name"));
        v->type = ww_json_str(ww_json_get(j, "type"));
        if (!v->name || !v->type || !v->name[0]) {
            s_err(d->errs, "%s: templating.list[%zu] has no name or type", d->file, i);
            continue;
        }
        if (s_var(d, v->name, strlen(v->name))) {
            s_err(d->errs, "%s: variable %s defined twice", d->file, v->name);
            continue;
        }
        v->multi = ww_json_is_true(ww_json_get(j, "multi"));
        v->include_all = ww_json_is_true(ww_json_get(j, "includeAll"));
        v->all_value = ww_json_str(ww_json_get(j, "allValue"));
        const ww_json_t *q = ww_json_get(j, "query");
        v->query = ww_json_str(q) ? ww_json_str(q) : ww_json_str(ww_json_get(q, "rawSql"));
        if (!v->query) {
            v->query = ww_json_str(ww_json_get(q, "query"));
        }
        char where[96];
        snprintf(where, sizeof where, "variable %s", v->name);
        if (strcmp(v->type, "datasource") == 0) {
            if (!v->query || strcmp(v->query, S_PLUGIN) != 0) {
                s_err(d->errs, "%s: %s: a datasource variable of query \"" S_PLUGIN "\" expected",
                      d->file, where);
            }
            have_ds = have_ds || strcmp(v->name, "datasource") == 0;
        } else if (strcmp(v->type, "query") == 0) {
            s_check_ds(d, where, ww_json_get(j, "datasource"));
            if (!v->query || !v->query[0]) {
                s_err(d->errs, "%s: %s has no query", d->file, where);
            }
            /* A variable over nodes has no All: Grafana opens a variable with All and no
             * saved value at All, and the node panels over all 32,600 nodes read every
             * node's rows (78 s for 1 h; bench/fleetday.sh). Without All it opens on the
             * first node. Every other variable opens at All. */
            bool per_node = v->query && strstr(v->query, "node_id FROM") != NULL;
            if (!v->multi || v->include_all == per_node) {
                s_err(d->errs, "%s: %s must be multi-value %s", d->file, where,
                      per_node ? "without All (a variable over nodes: multi, no includeAll)"
                               : "with All (multi, includeAll)");
            }
            double refresh = ww_json_get(j, "refresh") ? ww_json_get(j, "refresh")->num : 0;
            if (refresh != 1 && refresh != 2) {
                s_err(d->errs, "%s: %s: refresh must be 1 (on load) or 2 (on time range change)",
                      d->file, where);
            }
        } else if (strcmp(v->type, "custom") != 0 && strcmp(v->type, "constant") != 0 &&
                   strcmp(v->type, "textbox") != 0) {
            s_err(d->errs, "%s: %s: type %s not supported by this test", d->file, where, v->type);
            continue;
        }
        d->n_vars++;
    }
    if (!have_ds) {
        s_err(d->errs, "%s: no datasource variable named \"datasource\"", d->file);
    }
    for (size_t i = 0; i < d->n_vars; i++) {
        if (strcmp(d->vars[i].type, "query") == 0 && d->vars[i].query) {
            char where[96];
            snprintf(where, sizeof where, "variable %s", d->vars[i].name);
            s_check_refs(d, where, d->vars[i].query);
        }
    }
}

static void s_load_panels(s_dash_t *d, const ww_json_t *panels, int depth)
{
    if (!panels || panels->type != WW_JSON_ARR) {
        s_err(d->errs, "%s: panels is not an array", d->file);
        return;
    }
    for (size_t i = 0; i < panels->n; i++) {
        const ww_json_t *p = panels->items[i];
        const ww_json_t *idj = ww_json_get(p, "id");
        const char *type = ww_json_str(ww_json_get(p, "type"));
        const char *title = ww_json_str(ww_json_get(p, "title"));
        char where[200];
        snprintf(where, sizeof where, "panel \"%s\"", title ? title : "(untitled)");
        if (!idj || idj->type != WW_JSON_NUM || idj->num != floor(idj->num) || !type) {
            s_err(d->errs, "%s: %s has no numeric id or no type", d->file, where);
            continue;
        }
        int id = (int)idj->num;
        snprintf(where, sizeof where, "panel \"%s\" (id %d)", title ? title : "(untitled)", id);
        for (size_t k = 0; k < d->n_ids; k++) {
            if (d->ids[k] == id) {
                s_err(d->errs, "%s: %s: panel id %d used twice", d->file, where, id);
            }
        }
        if (d->n_ids < S_MAX_QUERIES) {
            d->ids[d->n_ids++] = id;
        }
        if (!ww_json_get(p, "gridPos")) {
            s_err(d->errs, "%s: %s has no gridPos", d->file, where);
        }
        if (strcmp(type, "row") == 0) {
            const ww_json_t *inner = ww_json_get(p, "panels");
            if (depth > 0) {
                s_err(d->errs, "%s: %s: rows do not nest", d->file, where);
            } else if (inner && inner->n > 0 && !ww_json_is_true(ww_json_get(p, "collapsed"))) {
                s_err(d->errs, "%s: %s: an expanded row keeps its panels at the top level", d->file,
                      where);
            } else if (inner) {
                s_load_panels(d, inner, depth + 1);
            }
            continue;
        }
        if (!title || !title[0]) {
            s_err(d->errs, "%s: %s has no title", d->file, where);
        }
        if (strcmp(type, "text") == 0) {
            continue;
        }
        s_check_ds(d, where, ww_json_get(p, "datasource"));
        const ww_json_t *targets = ww_json_get(p, "targets");
        if (!targets || targets->type != WW_JSON_ARR || targets->n == 0) {
            s_err(d->errs, "%s: %s has no targets", d->file, where);
            continue;
        }
        const char *interval = ww_json_str(ww_json_get(p, "interval"));
        if (interval && s_interval_s(interval, strlen(interval)) <= 0) {
            s_err(d->errs, "%s: %s: bad interval \"%s\"", d->file, where, interval);
            interval = NULL;
        }
        for (size_t t = 0; t < targets->n; t++) {
            const ww_json_t *tg = targets->items[t];
            const char *sql = ww_json_str(ww_json_get(tg, "rawSql"));
            const char *format = ww_json_str(ww_json_get(tg, "format"));
            s_check_ds(d, where, ww_json_get(tg, "datasource"));
            if (!sql || !sql[0]) {
                s_err(d->errs, "%s: %s: target %zu has no rawSql", d->file, where, t);
                continue;
            }
            if (!format || (strcmp(format, "table") != 0 && strcmp(format, "time_series") != 0)) {
                s_err(d->errs, "%s: %s: format must be table or time_series", d->file, where);
                continue;
            }
            if (!ww_json_is_true(ww_json_get(tg, "rawQuery")) ||
                !ww_json_str(ww_json_get(tg, "refId"))) {
                s_err(d->errs, "%s: %s: a code target needs rawQuery: true and a refId", d->file,
                      where);
            }
            s_check_refs(d, where, sql);
            if (d->n_qs == S_MAX_QUERIES) {
                s_err(d->errs, "%s: more than %d targets", d->file, S_MAX_QUERIES);
                return;
            }
            s_query_t *q = &d->qs[d->n_qs++];
            memset(q, 0, sizeof *q);
            q->id = id;
            q->title = title;
            q->type = type;
            q->sql = sql;
            q->format = format;
            q->interval = interval;
        }
    }
}

/* Parses text and checks its structure into errs; 0 when the JSON parsed. */
static int s_dash_load(s_dash_t *d, const char *file, const char *text, s_errs_t *errs)
{
    memset(d, 0, sizeof *d);
    d->file = file;
    d->errs = errs;
    char err[256];
    d->root = ww_json_parse(text, 0, err, sizeof err);
    if (!d->root) {
        s_err(errs, "%s: not JSON: %s", file, err);
        return -1;
    }
    if (d->root->type != WW_JSON_OBJ) {
        s_err(errs, "%s: not a JSON object", file);
        return -1;
    }
    const char *uid = ww_json_str(ww_json_get(d->root, "uid"));
    if (!uid || !uid[0] || strlen(uid) > 40) {
        s_err(errs, "%s: uid must be set (1 to 40 characters)", file);
    }
    if (!ww_json_str(ww_json_get(d->root, "title"))) {
        s_err(errs, "%s: no title", file);
    }
    const ww_json_t *sv = ww_json_get(d->root, "schemaVersion");
    if (!sv || sv->type != WW_JSON_NUM || sv->num != 39) {
        s_err(errs, "%s: schemaVersion must be 39", file);
    }
    s_load_vars(d);
    s_load_panels(d, ww_json_get(d->root, "panels"), 0);
    if (d->n_qs == 0) {
        s_err(errs, "%s: no panel queries", file);
    }
    return 0;
}

static void s_dash_free(s_dash_t *d)
{
    for (size_t i = 0; i < d->n_vars; i++) {
        for (size_t k = 0; k < d->vars[i].n_opts; k++) {
            free(d->vars[i].opts[k]);
        }
        for (size_t k = 0; k < d->vars[i].n_cur; k++) {
            free(d->vars[i].cur[k]);
        }
    }
    for (size_t i = 0; i < d->n_qs; i++) {
        free(d->qs[i].base_sql);
    }
    ww_json_free(&d->root);
}

/* ------------------------------------------------------------------ running */

/* Runs sql; 0 with *rows and whether a "time" column came back, or -1 with err. */
static int s_run(PGconn *rd, const char *sql, int *rows, bool *has_time, char *err, size_t errcap)
{
    PGresult *r = PQexec(rd, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errcap, "%s", PQerrorMessage(rd));
        PQclear(r);
        return -1;
    }
    *rows = PQntuples(r);
    *has_time = PQfnumber(r, "time") >= 0;
    if (getenv("WW_DASHBOARDS_VERBOSE")) { /* for dashboard authors: what each query gives */
        printf("-- %d row(s)\n%s\n", *rows, sql);
        for (int i = 0; i < *rows && i < 3; i++) {
            printf("   ");
            for (int c = 0; c < PQnfields(r); c++) {
                printf("%s%s=%.60s", c ? ", " : "", PQfname(r, c), PQgetvalue(r, i, c));
            }
            printf("\n");
        }
    }
    PQclear(r);
    return 0;
}

/* Evaluates the variables in order, the way Grafana refreshes them: the variable `fixed`
 * (or none: -1) has the single value `value`, every other one is at All over the options
 * its query returns given the variables before it. base: this is the all-All case (its
 * options are kept, and each query must return some). */
static void s_eval_vars(s_dash_t *d, PGconn *rd, int fixed, const char *value, bool base)
{
    for (size_t i = 0; i < d->n_vars; i++) {
        s_var_t *v = &d->vars[i];
        for (size_t k = 0; k < v->n_cur; k++) {
            free(v->cur[k]);
        }
        v->n_cur = 0;
        if (strcmp(v->type, "datasource") == 0) {
            v->cur[v->n_cur++] = strdup("waferwatch");
        } else if (strcmp(v->type, "query") == 0 && v->query) {
            char err[512];
            char *sql = s_expand(d, v->query, "1s", err, sizeof err);
            PGresult *r = sql ? PQexec(rd, sql) : NULL;
            d->ran += sql != NULL;
            if (!sql) {
                s_err(d->errs, "%s: variable %s: %s\n    query: %s", d->file, v->name, err,
                      v->query);
            } else if (PQresultStatus(r) != PGRES_TUPLES_OK) {
                s_err(d->errs, "%s: variable %s failed: %s    SQL: %s", d->file, v->name,
                      PQerrorMessage(rd), sql);
            } else {
                int col = PQfnumber(r, "__value") >= 0 ? PQfnumber(r, "__value") : 0;
                for (int k = 0; k < PQntuples(r) && v->n_cur < S_MAX_OPTS; k++) {
                    v->cur[v->n_cur++] = strdup(PQgetvalue(r, k, col));
                }
                if (base && PQntuples(r) == 0) {
                    s_err(d->errs, "%s: variable %s has no options\n    SQL: %s", d->file, v->name,
                          sql);
                }
            }
            PQclear(r);
            free(sql);
        } else if (v->query) { /* custom, constant, textbox */
            const char *p = v->query;
            while (v->n_cur < S_MAX_OPTS) {
                size_t len = strcspn(p, ",");
                const char *s = p;
                size_t sl = len;
                s_trim(&s, &sl);
                v->cur[v->n_cur++] = strndup(s, sl);
                if (!p[len] || strcmp(v->type, "custom") != 0) {
                    break;
                }
                p += len + 1;
            }
        }
        if (base) {
            for (size_t k = 0; k < v->n_cur; k++) {
                v->opts[k] = strdup(v->cur[k]);
            }
            v->n_opts = v->n_cur;
        }
        if ((int)i == fixed) {
            v->vals[0] = value;
            v->n_vals = 1;
            v->all = false;
        } else if (v->n_cur == 0) {
            v->vals[0] = ""; /* Grafana's "None" */
            v->n_vals = 1;
            v->all = v->include_all;
        } else {
            size_t n = v->include_all ? v->n_cur : 1; /* else Grafana's default: the first */
            for (size_t k = 0; k < n; k++) {
                v->vals[k] = v->cur[k];
            }
            v->n_vals = n;
            v->all = v->include_all;
        }
    }
}

/* Runs one panel query in the current case. Returns the rows, or -1 after an error. */
static int s_run_query(s_dash_t *d, PGconn *rd, s_query_t *q, const char *case_name,
                       char **expanded)
{
    char err[1024];
    const char *interval = s_panel_interval(d, q->interval);
    char *sql = s_expand(d, q->sql, interval, err, sizeof err);
    *expanded = sql;
    if (!sql) {
        s_err(d->errs, "%s: panel \"%s\" (id %d), %s: %s\n    rawSql: %s", d->file, q->title, q->id,
              case_name, err, q->sql);
        return -1;
    }
    int rows = 0;
    bool has_time = false;
    d->ran++;
    if (s_run(rd, sql, &rows, &has_time, err, sizeof err) < 0) {
        s_err(d->errs, "%s: panel \"%s\" (id %d), %s: %s    SQL: %s", d->file, q->title, q->id,
              case_name, err, sql);
        return -1;
    }
    if (strcmp(q->format, "time_series") == 0 && !has_time) {
        s_err(d->errs,
              "%s: panel \"%s\" (id %d): format time_series without a \"time\" column"
              "\n    SQL: %s",
              d->file, q->title, q->id, sql);
    }
    return rows;
}

/* Runs every panel of d over its current range (s_set_range). need_rows: with every variable
 * at All each panel must return rows, and for each variable some single value must give
 * rows; else the queries need only run. */
static void s_check_dash(s_dash_t *d, PGconn *rd, bool need_rows)
{
    for (size_t i = 0; i < d->n_vars; i++) { /* options of a previous range */
        for (size_t k = 0; k < d->vars[i].n_opts; k++) {
            free(d->vars[i].opts[k]);
        }
        d->vars[i].n_opts = 0;
    }
    for (size_t i = 0; i < d->n_qs; i++) {
        free(d->qs[i].base_sql);
        d->qs[i].base_sql = NULL;
        memset(d->qs[i].affected, 0, sizeof d->qs[i].affected);
        memset(d->qs[i].gave_rows, 0, sizeof d->qs[i].gave_rows);
    }
    /* Everything at All: every panel runs, and returns rows if need_rows. */
    char case_name[200];
    snprintf(case_name, sizeof case_name, "%s, every variable at All", d->range);
    s_eval_vars(d, rd, -1, NULL, true);
    for (size_t i = 0; i < d->n_qs; i++) {
        s_query_t *q = &d->qs[i];
        int rows = s_run_query(d, rd, q, case_name, &q->base_sql);
        if (rows == 0 && need_rows) {
            s_err(d->errs,
                  "%s: panel \"%s\" (id %d) returned no rows with every variable at All"
                  "\n    SQL: %s",
                  d->file, q->title, q->id, q->base_sql);
        }
    }
    /* One variable at a time at each of its values, the rest at All (re-evaluated, as
     * chained variables are): every panel runs, and some value gives each panel rows. */
    for (size_t v = 0; v < d->n_vars; v++) {
        if (strcmp(d->vars[v].type, "query") != 0 && strcmp(d->vars[v].type, "custom") != 0) {
            continue;
        }
        for (size_t o = 0; o < d->vars[v].n_opts && o < 16; o++) {
            const char *value = d->vars[v].opts[o];
            snprintf(case_name, sizeof case_name, "%s, $%s = '%s'", d->range, d->vars[v].name,
                     value);
            s_eval_vars(d, rd, (int)v, value, false);
            for (size_t i = 0; i < d->n_qs; i++) {
                s_query_t *q = &d->qs[i];
                if (!q->base_sql) {
                    continue; /* already reported: it does not even expand */
                }
                char err[1024];
                char *sql = s_expand(d, q->sql, s_panel_interval(d, q->interval), err, sizeof err);
                bool same = sql && strcmp(sql, q->base_sql) == 0;
                free(sql);
                if (same) {
                    continue; /* this choice does not change the panel */
                }
                q->affected[v] = true;
                int rows = s_run_query(d, rd, q, case_name, &sql);
                free(sql);
                if (rows > 0) {
                    q->gave_rows[v] = true;
                }
            }
        }
    }
    for (size_t i = 0; i < d->n_qs && need_rows; i++) {
        for (size_t v = 0; v < d->n_vars; v++) {
            if (d->qs[i].affected[v] && !d->qs[i].gave_rows[v]) {
                s_err(d->errs,
                      "%s: panel \"%s\" (id %d) returns no rows for any single value "
                      "of $%s (%s)",
                      d->file, d->qs[i].title, d->qs[i].id, d->vars[v].name, d->range);
            }
        }
    }
}

/* ------------------------------------------------------------------ the data */

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Starts an agent for 20 s; fills log with its log path. */
static pid_t s_agent(h_db_t *db, const char *name, const char *site, const char *phase,
                     const char *extra_env[], char *log, size_t log_cap)
{
    const char *args[] = {"--site",     site,    "--phase",          phase, "--sim-nodes", "3",
                          "--interval", "200ms", "--latency-window", "1s",  "--run-for",   "20s",
                          NULL};
    return h_agent_spawn_secure(db, name, getenv("WW_TEST_ENDPOINT"), extra_env, args, log,
                                log_cap);
}

/* Two phases at two sites, three nodes each, for 20 s. The pump of every node of the hot
 * phase runs at 10% flow from the start and never recovers: its wafers throttle, its TTFT
 * SLO burns and its delivered capacity falls below the contract, so alerts fire and stay
 * firing. The cool phase is healthy. The collector is stopped once the SLO tables have rows
 * for both phases and an alert fires, so the database holds still while it is read. */
static void s_fill(h_db_t *db)
{
    h_db_create(db, "dash");
    h_secure(db->dir, "unused", "none");
    h_enrol(db->dir, "dash-hot", "dash-hot", "dash-hot-node-*");
    h_enrol(db->dir, "dash-cool", "dash-cool", "dash-cool-node-*");
    h_enrol(db->dir, "dash-host", "dash-host", "dash-host-node-*");
    char slo_path[256];
    snprintf(slo_path, sizeof slo_path, "%s/phases.yaml", db->dir);
    /* window_scale 0.01: 5m = 3 s, 1h = 36 s. 3 nodes x 23 kW = 0.069 MW contracted. */
    s_write(slo_path,
            "evaluation:\n  interval: 1s\n  window_scale: 0.01\n  healthy_window: 5s\n"
            "alertmanager:\n  url: \"\"\n"
            "phases:\n"
            "  - {id: phase-hot, name: Hot, go_live: 2025-01-01, contracted_mw: 0.069,\n"
            "     hotspot_max_c: 85, outlet_max_c: 45,\n"
            "     slos: [{name: ttft-8b, model: llama3.1-8b, metric: ttft, threshold: 1.0,\n"
            "             objective: 0.99},\n"
            "            {name: availability, model: '*', metric: availability,"
            " objective: 0.99}]}\n"
            "  - {id: phase-cool, name: Cool, go_live: 2025-01-01, contracted_mw: 0.069,\n"
            "     hotspot_max_c: 85, outlet_max_c: 45,\n"
            "     slos: [{name: ttft-8b, model: llama3.1-8b, metric: ttft, threshold: 1.0,\n"
            "             objective: 0.99},\n"
            "            {name: availability, model: '*', metric: availability,"
            " objective: 0.99}]}\n");
    setenv("WW_COLLECTOR_SLO_FILE", slo_path, 1);
    char endpoint[256];
    pid_t collector = h_collector_start(db, endpoint, sizeof endpoint);
    unsetenv("WW_COLLECTOR_SLO_FILE");
    setenv("WW_TEST_ENDPOINT", endpoint, 1);
    const char *hot_env[] = {"WW_AGENT_SIM_PUMP_FAULT_ENABLED",
                             "true",
                             "WW_AGENT_SIM_PUMP_FAULT_START",
                             "0",
                             "WW_AGENT_SIM_PUMP_FAULT_FLOW_FACTOR",
                             "0.1",
                             "WW_AGENT_SIM_TAU",
                             "2",
                             "WW_AGENT_SIM_MIN_THROTTLE",
                             "0.1",
                             "WW_AGENT_SIM_THROTTLE_SLOPE",
                             "0.1",
                             NULL};
    char hot_log[256], cool_log[256];
    pid_t hot = s_agent(db, "dash-hot", "okc1", "phase-hot", hot_env, hot_log, sizeof hot_log);
    pid_t cool = s_agent(db, "dash-cool", "okc2", "phase-cool", NULL, cool_log, sizeof cool_log);
    /* Beside them in the cool phase, nodes that measure only power and their hotspot (as
     * agent.source host does): every panel must still answer, their NULLs left out. */
    const char *host_env[] = {"WW_AGENT_SIM_NOT_MEASURED",
                              "inlet_c, outlet_c, flow_lpm, utilization, tokens_per_s, "
                              "requests_queued, requests_in_flight, requests_completed, "
                              "throttled, throttle_factor",
                              NULL};
    char host_log[256];
    pid_t host =
        s_agent(db, "dash-host", "okc2", "phase-cool", host_env, host_log, sizeof host_log);
    h_agent_wait_ok(hot, hot_log, 90000);
    h_agent_wait_ok(cool, cool_log, 90000);
    h_agent_wait_ok(host, host_log, 90000);
    bool ready = false;
    for (int i = 0; i < 60 && !ready; i++) {
        ready = h_query_ll(db, "SELECT ((SELECT count(*) FROM alerts WHERE state = 'firing'"
                               " AND phase = 'phase-hot') > 0"
                               " AND (SELECT count(DISTINCT phase) FROM slo_status) = 2"
                               " AND (SELECT count(DISTINCT phase) FROM capacity_evaluations) = 2"
                               " AND (SELECT count(*) FROM latency_rollup_1m) > 0)::int") == 1;
        if (!ready) {
            h_sleep_ms(500);
        }
    }
    assert_int_equal(h_stop(collector, 15000), 0);
    assert_true(ready);
    unsetenv("WW_TEST_ENDPOINT");
    /* The range panels read the storage tiers (ww_site_series etc.), which hold closed
     * minutes and complete hours only: the collector's tier job builds a minute once it is
     * older than the watermark (now - tiers.grace), later than this run lasts. With the
     * database still, close every minute up to now and build them (and any complete hour)
     * as the owner, as the job would have. */
    PQclear(h_query(db, "UPDATE ww_tier_state"
                        " SET watermark = date_trunc('minute', now()) + interval '1 minute'"));
    PQclear(h_query(db, "SELECT * FROM ww_tier_build(100000, 1000000)"));
}

/* A connection as the dashboards' role, read-only, as Grafana's user would be. */
static PGconn *s_reader(h_db_t *db)
{
    PGconn *rd = PQconnectdb(db->conninfo);
    assert_int_equal(PQstatus(rd), CONNECTION_OK);
    const char *setup[] = {"SET ROLE waferwatch_reader", "SET default_transaction_read_only = on",
                           "SET statement_timeout = '60s'"};
    for (size_t i = 0; i < sizeof setup / sizeof setup[0]; i++) {
        PGresult *r = PQexec(rd, setup[i]);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            fail_msg("%s: %s", setup[i], PQerrorMessage(rd));
        }
        PQclear(r);
    }
    return rd;
}

/* The views of 0007: all there, commented, readable by the reader (default privileges of
 * 0005/0006) and not empty for this data. */
static void s_check_views(h_db_t *db, PGconn *rd, s_errs_t *errs)
{
    static const char *const views[] = {
        "ww_alerts_firing",         "ww_latency_1m",  "ww_node_latest",   "ww_node_samples",
        "ww_phase_capacity_latest", "ww_phase_power", "ww_phase_thermal", "ww_slo_budget",
        "ww_throttled_nodes"};
    assert_int_equal(h_query_ll(db, "SELECT count(*) FROM ww_schema_migrations"
                                    " WHERE version = 7 AND name = 'views'"),
                     1);
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "SELECT (obj_description(c.oid, 'pg_class') IS NOT NULL)::int"
                 " + 2 * has_table_privilege('waferwatch_reader', c.oid, 'SELECT')::int"
                 " FROM pg_class c WHERE c.oid = to_regclass('%s') AND c.relkind = 'v'",
                 views[i]);
        PGresult *r = h_query(db, sql);
        int v = PQntuples(r) == 1 ? atoi(PQgetvalue(r, 0, 0)) : -1;
        PQclear(r);
        if (v < 0) {
            s_err(errs, "view %s is missing", views[i]);
            continue;
        }
        if (!(v & 1)) {
            s_err(errs, "view %s has no COMMENT", views[i]);
        }
        if (!(v & 2)) {
            s_err(errs, "waferwatch_reader may not SELECT from view %s", views[i]);
        }
        snprintf(sql, sizeof sql, "SELECT * FROM %s LIMIT 1", views[i]);
        int rows = 0;
        bool has_time = false;
        char err[512];
        if (s_run(rd, sql, &rows, &has_time, err, sizeof err) < 0) {
            s_err(errs, "as waferwatch_reader, %s: %s", sql, err);
        } else if (rows == 0) {
            s_err(errs, "view %s is empty for this data", views[i]);
        }
    }
}

/* The provisioning files: the current plugin id, the dashboards' path, and no password
 * in the file (only an environment or file reference). */
static void s_check_provisioning(s_errs_t *errs)
{
    char *ds = h_read_file(WW_DASHBOARDS_DIR "/provisioning/datasources/waferwatch.yaml");
    char *prov = h_read_file(WW_DASHBOARDS_DIR "/provisioning/dashboards/waferwatch.yaml");
    if (!ds || !strstr(ds, "type: " S_PLUGIN) || !strstr(ds, "user: waferwatch_grafana")) {
        s_err(errs, "provisioning/datasources/waferwatch.yaml: no " S_PLUGIN
                    " data source for user waferwatch_grafana");
    }
    for (const char *p = ds ? strstr(ds, "password:") : NULL; p; p = strstr(p + 1, "password:")) {
        const char *v = p + strlen("password:");
        v += strspn(v, " \t\"'");
        if (strncmp(v, "$__env{", 7) != 0 && strncmp(v, "$__file{", 8) != 0 && v[0] != '$') {
            s_err(errs, "provisioning/datasources/waferwatch.yaml: a password in the file");
        }
    }
    if (!prov || !strstr(prov, "type: file") || !strstr(prov, "path:")) {
        s_err(errs, "provisioning/dashboards/waferwatch.yaml: no file provider with a path");
    }
    free(ds);
    free(prov);
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The dashboards' file names, sorted; returns how many. */
static size_t s_list(char *names[], size_t cap)
{
    DIR *dir = opendir(WW_DASHBOARDS_DIR);
    assert_non_null(dir);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL && n < cap) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0) {
            names[n++] = strdup(e->d_name);
        }
    }
    closedir(dir);
    qsort(names, n, sizeof names[0], s_cmp);
    return n;
}

static void test_every_panel_query_returns_rows(void **state)
{
    (void)state;
    h_db_t db;
    s_fill(&db);
    PGconn *rd = s_reader(&db);
    s_errs_t errs = {0};
    s_check_views(&db, rd, &errs);
    s_check_provisioning(&errs);

    long long now_ms = h_query_ll(&db, "SELECT (extract(epoch FROM now()) * 1000)::bigint");
    char *names[S_MAX_FILES];
    size_t n = s_list(names, S_MAX_FILES);
    assert_true(n >= 4);
    long long ran = 0;
    size_t panels = 0;
    char *uids[S_MAX_FILES];
    size_t n_uids = 0;
    for (size_t i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", WW_DASHBOARDS_DIR, names[i]);
        char *text = h_read_file(path);
        assert_non_null(text);
        s_dash_t *d = calloc(1, sizeof *d);
        assert_non_null(d);
        if (s_dash_load(d, names[i], text, &errs) == 0) {
            const char *uid = ww_json_str(ww_json_get(d->root, "uid"));
            for (size_t k = 0; uid && k < n_uids; k++) {
                if (strcmp(uids[k], uid) == 0) {
                    s_err(&errs, "%s: uid %s is used by another dashboard", names[i], uid);
                }
            }
            if (uid) {
                uids[n_uids++] = strdup(uid);
            }
            /* "Last 15 minutes", the way a user opens the dashboard after the run: every
             * panel gives rows. Then the ranges an SRE picks for trends, which read other
             * tiers (ww_tier_for: 24 h the minute tiers at 1m steps; 7 and 30 days the hour
             * tiers, and the minutes after the last complete hour): every panel must run as
             * the reader, rows or not. */
            static const long long range_min[] = {15, 24 * 60, 7 * 24 * 60, 30 * 24 * 60};
            for (size_t k = 0; k < sizeof range_min / sizeof range_min[0]; k++) {
                s_set_range(d, now_ms - range_min[k] * 60 * 1000, now_ms);
                s_check_dash(d, rd, k == 0);
            }
            ran += d->ran;
            panels += d->n_qs;
        }
        s_dash_free(d);
        free(d);
        free(text);
        free(names[i]);
    }
    for (size_t k = 0; k < n_uids; k++) {
        free(uids[k]);
    }
    PQfinish(rd);
    print_message("%zu dashboards, %zu panel queries, %lld queries run as waferwatch_reader\n", n,
                  panels, ran);
    h_db_drop(&db);
    if (errs.n) {
        fprintf(stderr, "%d problem(s):%s\n", errs.n, errs.text);
        free(errs.text);
        fail_msg("%d problem(s) in the dashboards or views (listed above)", errs.n);
    }
}

/* ------------------------------------------------------------------ the checker itself */

#define S_DASH_FMT                                                                                 \
    "{\"uid\": \"t\", \"title\": \"T\", \"schemaVersion\": 39,\n"                                  \
    " \"templating\": {\"list\": [\n"                                                              \
    "  {\"name\": \"datasource\", \"type\": \"datasource\", \"query\": \"" S_PLUGIN "\"},\n"       \
    "  {\"name\": \"phase\", \"type\": \"query\", \"multi\": true, \"includeAll\": true,\n"        \
    "   \"refresh\": 1, \"query\": \"SELECT id FROM phases\",\n"                                   \
    "   \"datasource\": {\"type\": \"" S_PLUGIN "\", \"uid\": \"${datasource}\"}}]},\n"            \
    " \"panels\": [\n"                                                                             \
    "  {\"id\": 1, \"type\": \"row\", \"title\": \"R\", \"collapsed\": true,\n"                    \
    "   \"gridPos\": {}, \"panels\": [\n"                                                          \
    "   {\"id\": %d, \"type\": \"timeseries\", \"title\": \"P\", \"gridPos\": {},\n"               \
    "    \"datasource\": {\"type\": \"" S_PLUGIN "\", \"uid\": \"%s\"},\n"                         \
    "    \"targets\": [{\"refId\": \"A\", \"rawQuery\": true, \"format\": \"time_series\",\n"      \
    "     \"datasource\": {\"type\": \"" S_PLUGIN "\", \"uid\": \"${datasource}\"},\n"             \
    "     \"rawSql\": \"%s\"}]}]}]%s}\n"

/* Loads a one-panel dashboard; returns the number of problems found. */
static int s_try(s_dash_t *d, int panel_id, const char *uid, const char *sql, const char *tail)
{
    char text[4096];
    snprintf(text, sizeof text, S_DASH_FMT, panel_id, uid, sql, tail);
    s_errs_t *errs = calloc(1, sizeof *errs);
    assert_non_null(errs);
    s_dash_load(d, "t.json", text, errs);
    int n = errs->n;
    free(errs->text);
    free(errs);
    d->errs = NULL;
    return n;
}

static void test_checker_catches_mistakes(void **state)
{
    (void)state;
    s_dash_t *d = calloc(1, sizeof *d);
    assert_non_null(d);
    const char *good = "SELECT $__timeGroupAlias(time, $__interval), x FROM t"
                       " WHERE $__timeFilter(time) AND phase IN ($phase) AND p2 IN (${phase:csv})"
                       " AND p3 = ${phase:sqlstring} AND t > $__timeFrom() AND [[phase]] <> ''"
                       " AND $__unixEpochFilter(e) AND $__timeGroup(time, '5m') > 0";
    assert_int_equal(s_try(d, 2, S_DS_UID, good, ""), 0);
    assert_int_equal(d->n_qs, 1);
    assert_int_equal(d->n_vars, 2);
    s_set_range(d, 1700000000000LL, 1700000900500LL);
    s_var_t *ph = &d->vars[1];
    ph->vals[0] = "a";
    ph->vals[1] = "b'c";
    ph->n_vals = 2;
    ph->all = true;
    char err[512];
    char *sql = s_expand(d, d->qs[0].sql, "1m", err, sizeof err);
    assert_non_null(sql);
    assert_string_equal(sql, "SELECT floor(extract(epoch from time)/60)*60 AS \"time\", x FROM t"
                             " WHERE time BETWEEN '2023-11-14T22:13:20Z' AND"
                             " '2023-11-14T22:28:20.5Z' AND phase IN ('a','b''c')"
                             " AND p2 IN (a,b'c) AND p3 = 'a','b''c'"
                             " AND t > '2023-11-14T22:13:20Z' AND 'a','b''c' <> ''"
                             " AND e >= 1700000000 AND e <= 1700000900"
                             " AND floor(extract(epoch from time)/300)*300 > 0");
    free(sql);
    /* A misspelt variable: undefined at load, and left as '$' by the expansion. */
    sql = s_expand(d, "SELECT 1 WHERE p IN ($phasee)", "1m", err, sizeof err);
    assert_null(sql);
    assert_non_null(strstr(err, "unexpanded '$'"));
    sql = s_expand(d, "SELECT $__timeFiltr(time)", "1m", err, sizeof err);
    assert_null(sql);
    assert_non_null(strstr(err, "unknown macro"));
    sql = s_expand(d, "SELECT ${phase:sqlstrin}", "1m", err, sizeof err);
    assert_null(sql);
    assert_non_null(strstr(err, "unknown format"));
    sql = s_expand(d, "SELECT $1", "1m", err, sizeof err);
    assert_null(sql);
    s_dash_free(d);

    assert_true(s_try(d, 2, S_DS_UID, "SELECT 1 WHERE p IN ($phasee)", "") >= 1);
    s_dash_free(d);
    assert_true(s_try(d, 2, S_DS_UID, "SELECT ${phase:sqlstrin}", "") >= 1);
    s_dash_free(d);
    assert_true(s_try(d, 2, S_DS_UID, "SELECT $__timeFiltr(time)", "") >= 1);
    s_dash_free(d);
    assert_true(s_try(d, 2, S_DS_UID, "SELECT $ 1", "") >= 1); /* a stray '$' */
    s_dash_free(d);
    assert_true(s_try(d, 1, S_DS_UID, "SELECT 1", "") >= 1); /* id 1 is the row's */
    s_dash_free(d);
    assert_true(s_try(d, 2, "waferwatch", "SELECT 1", "") >= 1); /* not ${datasource} */
    s_dash_free(d);
    assert_true(s_try(d, 2, S_DS_UID, "SELECT 1", ",") >= 1); /* trailing comma: not JSON */
    s_dash_free(d);
    free(d);

    /* The JSON reader: escapes, surrogate pairs, and what it refuses. */
    char jerr[128];
    ww_json_t *j = ww_json_parse("{\"a\": [1, -2.5e3, true, null, \"x\\u00e9\\ud83d\\ude00\\n\"]}",
                                 0, jerr, sizeof jerr);
    assert_non_null(j);
    const ww_json_t *arr = ww_json_get(j, "a");
    assert_int_equal(arr->n, 5);
    assert_true(arr->items[1]->num == -2500.0);
    assert_string_equal(ww_json_str(arr->items[4]), "x\xc3\xa9\xf0\x9f\x98\x80\n");
    ww_json_free(&j);
    assert_null(j);
    const char *bad[] = {
        "{\"a\": 1,}", "{\"a\": 1, \"a\": 2}", "[01]", "\"\\ud800\"", "\"a\tb\"", "[1] x", "{a: 1}",
        "[1.]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        j = ww_json_parse(bad[i], 0, jerr, sizeof jerr);
        if (j) {
            fail_msg("tj_parse accepted %s", bad[i]);
        }
        assert_true(strstr(jerr, "line 1, column") != NULL);
    }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_checker_catches_mistakes),
    cmocka_unit_test(test_every_panel_query_returns_rows),
};
WW_TEST_MAIN(tests, NULL, NULL)
