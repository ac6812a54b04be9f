/* ww_config: see ww_config.h.
 *
 * How it works: the YAML text (a file, or the flow text of a flag, env var or default) is
 * first checked event by event (nesting depth, no anchors or aliases: see prescan_yaml),
 * then loaded into a libyaml document; the walk over that document is driven by the
 * schema, so it only goes as deep as the schema's dotted keys and nested tables go. Each
 * node may be visited once: with the document API an alias is a second reference to the
 * anchored node, so "10^6 aliases to a 1 MB string" (a billion-laughs file) would expand
 * to terabytes. The prescan already refuses aliases; the visit check keeps the walk safe
 * on its own.
 *
 * Every value is built aside and swapped in only when it is complete, so a failed set
 * leaves the old value in place and nothing half-built to leak.
 */
#include "ww_config.h"

#include "ww_md.h"
#include "ww_version.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* Nested tables and dotted keys deeper than this are a schema bug, not a real config. */
#define CFG_MAX_DEPTH 32
/* Deeper YAML nesting than this is refused before libyaml builds a document. */
#define CFG_MAX_YAML_DEPTH 64
/* A configuration file is a few kilobytes; refuse to slurp anything absurd. */
#define CFG_MAX_FILE_BYTES ((size_t)16 << 20)

/* Where values come from while one source is being applied. */
typedef struct {
    const char *origin;   /* file name, "environment WW_X", "flag --x", "default" */
    bool marks;           /* origin is a file: errors carry line:col of the node */
    yaml_document_t *doc; /* document being walked, or NULL for plain text */
    unsigned char *seen;  /* one flag per document node: a second visit is an alias */
    ww_cfg_err_t *err;
    int depth;
} cfg_ctx_t;

typedef struct {
    char why[256];
    bool has_mark;
    size_t line, col; /* 1-based, when has_mark */
} yaml_fail_t;

static void set_err(ww_cfg_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(ww_cfg_err_t *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

static char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *str_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        return NULL;
    }
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* "origin:line:col: key: why" for file nodes, "origin: key: why" otherwise. */
static int ctx_fail(cfg_ctx_t *c, const yaml_node_t *node, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int ctx_fail(cfg_ctx_t *c, const yaml_node_t *node, const char *key, const char *fmt, ...)
{
    char why[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    const char *sep = (key && *key) ? ": " : "";
    if (!key) {
        key = "";
    }
    /* Appended, not overwritten: a file's walk goes on past an error (see s_go_on), so
     * that the operator sees every mistake of the file in one run. */
    if (c->marks && node) {
        ww_cfg_err_add(c->err, "%s:%zu:%zu: %s%s%s", c->origin, node->start_mark.line + 1,
                       node->start_mark.column + 1, key, sep, why);
    } else {
        ww_cfg_err_add(c->err, "%s: %s%s%s", c->origin, key, sep, why);
    }
    return -EINVAL;
}

static void s_err_stop(ww_cfg_err_t *err);

/* True when a walk should go on to the next key or item after rc: a value error (already
 * in err) while fewer than WW_CFG_MAX_ERRORS are listed. At the cap the list gets its
 * "stopped" line; out of memory stops at once. */
static bool s_go_on(const cfg_ctx_t *c, int rc)
{
    if (rc == 0) {
        return true;
    }
    if (rc != -EINVAL) {
        return false;
    }
    if (ww_cfg_err_count(c->err) >= WW_CFG_MAX_ERRORS) {
        s_err_stop(c->err);
        return false;
    }
    return true;
}

static int ctx_oom(cfg_ctx_t *c, const char *key)
{
    ctx_fail(c, NULL, key, "out of memory");
    return -ENOMEM;
}

/* The last line of a list cut at WW_CFG_MAX_ERRORS; the number is in ww_config.h. */
static const char s_stopped[] = "(stopped after " WW_CFG_MAX_ERRORS_TEXT " errors)";

int ww_cfg_err_count(const ww_cfg_err_t *err)
{
    if (!err || !err->msg[0]) {
        return 0;
    }
    int n = 1;
    for (const char *p = err->msg; *p; p++) {
        n += *p == '\n';
    }
    return n;
}

void ww_cfg_err_print(const ww_cfg_err_t *err, const char *program, FILE *out)
{
    for (const char *line = err->msg; *line;) {
        size_t len = strcspn(line, "\n");
        fprintf(out, "%s: %.*s\n", program, (int)len, line);
        line += len + (line[len] == '\n');
    }
}

static bool s_err_stopped(const ww_cfg_err_t *err)
{
    size_t len = strlen(err->msg), sl = sizeof s_stopped - 1;
    return len >= sl && strcmp(err->msg + len - sl, s_stopped) == 0;
}

/* Ends the list with the "stopped" line, once. */
static void s_err_stop(ww_cfg_err_t *err)
{
    if (!s_err_stopped(err)) {
        size_t len = strlen(err->msg);
        snprintf(err->msg + len, sizeof err->msg - len, "%s%s", len ? "\n" : "", s_stopped);
    }
}

int ww_cfg_err_add(ww_cfg_err_t *err, const char *fmt, ...)
{
    if (!err) {
        return 0;
    }
    int n = ww_cfg_err_count(err);
    size_t len = strlen(err->msg);
    /* Room is kept for the "stopped" line, so the list never ends cut mid-line. */
    size_t room = sizeof err->msg - sizeof s_stopped - 1;
    if (s_err_stopped(err) || n >= WW_CFG_MAX_ERRORS || len + 2 >= room) {
        s_err_stop(err);
        return ww_cfg_err_count(err);
    }
    if (n) {
        err->msg[len++] = '\n';
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + len, room - len, fmt, ap);
    va_end(ap);
    return n + 1;
}

/* ---- text formats ---------------------------------------------------------------------- */

/* Shortest "%g" form that reads back to the same double. */
static void fmt_double(double v, char *buf, size_t len)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) {
            return;
        }
    }
}

static const struct {
    const char *unit;
    int64_t ns;
} s_units[] = {
    {"d", INT64_C(86400000000000)},
    {"h", INT64_C(3600000000000)},
    {"m", INT64_C(60000000000)},
    {"s", INT64_C(1000000000)},
    {"ms", INT64_C(1000000)},
    {"us", INT64_C(1000)},
    {"ns", INT64_C(1)},
};

/* Largest unit that represents ns exactly, so printing and parsing round-trip. */
static void fmt_duration(int64_t ns, char *buf, size_t len)
{
    if (ns == 0) {
        snprintf(buf, len, "0s");
        return;
    }
    for (size_t i = 0; i < sizeof s_units / sizeof s_units[0]; i++) {
        if (ns % s_units[i].ns == 0) {
            snprintf(buf, len, "%" PRId64 "%s", ns / s_units[i].ns, s_units[i].unit);
            return;
        }
    }
}

/* Byte sizes in the binary units people write ("16 MiB"), largest first. */
static const struct {
    const char *unit;
    int64_t bytes;
} s_size_units[] = {
    {"PiB", INT64_C(1) << 50}, {"TiB", INT64_C(1) << 40}, {"GiB", INT64_C(1) << 30},
    {"MiB", INT64_C(1) << 20}, {"KiB", INT64_C(1) << 10}, {"B", 1},
};

/* Largest unit that represents the size exactly ("4 KiB", "1 PiB", "1000 B"), so printing
 * and parsing round-trip. */
static void s_fmt_size(int64_t v, char *buf, size_t len)
{
    if (v == 0) {
        snprintf(buf, len, "0 B");
        return;
    }
    for (size_t i = 0; i < sizeof s_size_units / sizeof s_size_units[0]; i++) {
        if (v % s_size_units[i].bytes == 0) {
            snprintf(buf, len, "%" PRId64 " %s", v / s_size_units[i].bytes, s_size_units[i].unit);
            return;
        }
    }
}

/* A range bound as the user wrote it: seconds for durations, shown as a duration; bytes
 * for sizes, shown in binary units; integers in full, never as 1e+15. */
static void fmt_bound(const ww_cfg_opt_t *o, double b, char *buf, size_t len)
{
    if (o->type == WW_CFG_DURATION && fabs(b) < 9e9) {
        fmt_duration((int64_t)llround(b * 1e9), buf, len);
    } else if (o->type == WW_CFG_SIZE && b >= 0 && b < 9e18) {
        s_fmt_size((int64_t)llround(b), buf, len);
    } else if (o->type == WW_CFG_INT && fabs(b) < 9e18) {
        snprintf(buf, len, "%lld", (long long)llround(b));
    } else {
        fmt_double(b, buf, len);
    }
}

static bool has_range(const ww_cfg_opt_t *o)
{
    return !(o->min == 0 && o->max == 0);
}

/* v is the value in the bound's unit (seconds for durations); shown is the value as text. */
static int check_range(const ww_cfg_opt_t *o, double v, const char *shown, char *why, size_t wl)
{
    char b[40];
    if (!has_range(o)) {
        return 0;
    }
    if (v < o->min) {
        fmt_bound(o, o->min, b, sizeof b);
        snprintf(why, wl, "%s is below the minimum %s", shown, b);
        return -EINVAL;
    }
    if (v > o->max) {
        fmt_bound(o, o->max, b, sizeof b);
        snprintf(why, wl, "%s is above the maximum %s", shown, b);
        return -EINVAL;
    }
    return 0;
}

static int parse_int(const char *t, int64_t *out, char *why, size_t wl)
{
    if (*t == '\0') {
        snprintf(why, wl, "empty value, expected an integer");
        return -EINVAL;
    }
    /* strtoll would skip leading blanks; a value with blanks is a typo, not a number. */
    if (isspace((unsigned char)t[0])) {
        snprintf(why, wl, "'%.64s' is not an integer", t);
        return -EINVAL;
    }
    char *end;
    errno = 0;
    long long v = strtoll(t, &end, 10);
    if (end == t || *end != '\0') {
        snprintf(why, wl, "'%.64s' is not an integer", t);
        return -EINVAL;
    }
    if (errno == ERANGE) {
        snprintf(why, wl, "'%.64s' is out of range for a 64-bit integer", t);
        return -EINVAL;
    }
    *out = (int64_t)v;
    return 0;
}

static int parse_double(const char *t, double *out, char *why, size_t wl)
{
    if (*t == '\0') {
        snprintf(why, wl, "empty value, expected a number");
        return -EINVAL;
    }
    if (isspace((unsigned char)t[0])) {
        snprintf(why, wl, "'%.64s' is not a number", t);
        return -EINVAL;
    }
    char *end;
    double v = strtod(t, &end);
    if (end == t || *end != '\0') {
        snprintf(why, wl, "'%.64s' is not a number", t);
        return -EINVAL;
    }
    /* Overflow gives HUGE_VAL, and "nan"/"inf" parse: all are refused here. Underflow to a
     * denormal or zero is harmless and accepted. */
    if (!isfinite(v)) {
        snprintf(why, wl, "'%.64s' is not a finite number", t);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int parse_bool(const char *t, bool *out, char *why, size_t wl)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(t, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(t, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    snprintf(why, wl, "'%.64s' is not a boolean (use true/false, yes/no, on/off or 1/0)", t);
    return -EINVAL;
}

/* "250ms", "1.5s", "1h30m", or a bare number of seconds. The integer part is exact; the
 * fraction goes through a double, which is exact to the nanosecond for any fraction of a
 * unit up to a day (< 2^53 ns). */
static int parse_duration(const char *t, int64_t *out, char *why, size_t wl)
{
    const char *p = t;
    int64_t total = 0;
    bool any = false;
    if (*p == '\0') {
        snprintf(why, wl, "empty value, expected a duration (e.g. 250ms, 1.5s, 5m)");
        return -EINVAL;
    }
    while (*p) {
        uint64_t ip = 0;
        size_t nd = 0;
        while (isdigit((unsigned char)*p)) {
            if (ip > (UINT64_MAX - 9) / 10) {
                goto too_large;
            }
            ip = ip * 10 + (uint64_t)(*p - '0');
            nd++;
            p++;
        }
        double frac = 0;
        size_t nf = 0;
        if (*p == '.') {
            p++;
            uint64_t num = 0;
            double scale = 1;
            while (isdigit((unsigned char)*p)) {
                if (nf < 18) {
                    num = num * 10 + (uint64_t)(*p - '0');
                    scale *= 10;
                }
                nf++;
                p++;
            }
            frac = (double)num / scale;
        }
        if (nd == 0 && nf == 0) {
            snprintf(why, wl, "'%.64s' is not a duration (e.g. 250ms, 1.5s, 5m; not negative)", t);
            return -EINVAL;
        }
        const char *u = p;
        while (isalpha((unsigned char)*p)) {
            p++;
        }
        size_t ul = (size_t)(p - u);
        int64_t mult = 0;
        if (ul == 0) {
            if (any || *p != '\0') {
                snprintf(why, wl, "'%.64s' is not a duration (a unit is missing)", t);
                return -EINVAL;
            }
            mult = INT64_C(1000000000);
        } else {
            for (size_t i = 0; i < sizeof s_units / sizeof s_units[0]; i++) {
                if (strlen(s_units[i].unit) == ul && strncmp(u, s_units[i].unit, ul) == 0) {
                    mult = s_units[i].ns;
                }
            }
            if (mult == 0) {
                snprintf(why, wl,
                         "'%.64s' has an unknown duration unit '%.*s' (use ns, us, ms, s, m, h "
                         "or d)",
                         t, (int)(ul > 16 ? 16 : ul), u);
                return -EINVAL;
            }
        }
        if (ip > (uint64_t)(INT64_MAX / mult)) {
            goto too_large;
        }
        int64_t whole = (int64_t)ip * mult;
        int64_t part = (int64_t)llround(frac * (double)mult);
        if (whole > INT64_MAX - part || whole + part > INT64_MAX - total) {
            goto too_large;
        }
        total += whole + part;
        any = true;
    }
    *out = total;
    return 0;
too_large:
    snprintf(why, wl, "'%.64s' is too large a duration", t);
    return -EINVAL;
}

/* "16MiB", "16 MiB", "4KiB", a bare number of bytes, "512 B"; binary units only, since
 * "MB" would leave the reader guessing between 10^6 and 2^20. */
static int s_parse_size(const char *t, int64_t *out, char *why, size_t wl)
{
    const char *p = t;
    uint64_t v = 0;
    size_t nd = 0;
    while (isdigit((unsigned char)*p)) {
        if (v > (UINT64_MAX - 9) / 10) {
            snprintf(why, wl, "'%.64s' is too large a size", t);
            return -EINVAL;
        }
        v = v * 10 + (uint64_t)(*p - '0');
        nd++;
        p++;
    }
    if (nd == 0) {
        snprintf(why, wl, "'%.64s' is not a size (bytes, or e.g. 512 KiB, 16 MiB, 1 GiB)", t);
        return -EINVAL;
    }
    if (*p == ' ') {
        p++;
    }
    int64_t mult = *p == '\0' ? 1 : 0;
    for (size_t i = 0; *p && i < sizeof s_size_units / sizeof s_size_units[0]; i++) {
        if (strcmp(p, s_size_units[i].unit) == 0) {
            mult = s_size_units[i].bytes;
        }
    }
    if (mult == 0) {
        snprintf(why, wl, "'%.64s' has an unknown size unit (use B, KiB, MiB, GiB, TiB or PiB)", t);
        return -EINVAL;
    }
    if (v > (uint64_t)(INT64_MAX / mult)) {
        snprintf(why, wl, "'%.64s' is too large a size", t);
        return -EINVAL;
    }
    *out = (int64_t)v * mult;
    return 0;
}

/* ---- values ------------------------------------------------------------------------------ */

static void free_rows(const ww_cfg_opt_t *rows, size_t n, void *base);

static void free_value(const ww_cfg_opt_t *o, void *field)
{
    switch (o->type) {
    case WW_CFG_STRING: {
        char **p = field;
        free(*p);
        *p = NULL;
        break;
    }
    case WW_CFG_STRLIST: {
        ww_cfg_strlist_t *l = field;
        for (size_t i = 0; i < l->n; i++) {
            free(l->v[i]);
        }
        free(l->v);
        l->v = NULL;
        l->n = 0;
        break;
    }
    case WW_CFG_TABLE: {
        ww_cfg_table_t *t = field;
        if (t->items && o->sub) {
            for (size_t i = 0; i < t->n; i++) {
                free_rows(o->sub, o->n_sub, (char *)t->items + i * o->elem_size);
            }
        }
        free(t->items);
        t->items = NULL;
        t->n = 0;
        break;
    }
    default:
        break;
    }
}

static void free_rows(const ww_cfg_opt_t *rows, size_t n, void *base)
{
    for (size_t i = 0; i < n; i++) {
        free_value(&rows[i], (char *)base + rows[i].offset);
    }
}

static const ww_cfg_opt_t *find_row(const ww_cfg_opt_t *rows, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (rows[i].name && strcmp(rows[i].name, name) == 0) {
            return &rows[i];
        }
    }
    return NULL;
}

/* True when some row lives below `prefix` ("sim" for "sim.nodes"). */
static bool is_prefix(const ww_cfg_opt_t *rows, size_t n, const char *prefix)
{
    size_t len = strlen(prefix);
    for (size_t i = 0; i < n; i++) {
        if (rows[i].name && strncmp(rows[i].name, prefix, len) == 0 && rows[i].name[len] == '.') {
            return true;
        }
    }
    return false;
}

static const char *type_what(ww_cfg_type_t t)
{
    switch (t) {
    case WW_CFG_STRING:
        return "a string";
    case WW_CFG_INT:
        return "an integer";
    case WW_CFG_DOUBLE:
        return "a number";
    case WW_CFG_BOOL:
        return "a boolean";
    case WW_CFG_DURATION:
        return "a duration";
    case WW_CFG_SIZE:
        return "a size";
    case WW_CFG_STRLIST:
        return "a list of strings";
    case WW_CFG_TABLE:
        return "a list of mappings";
    case WW_CFG_ENUM:
        return "one of its names";
    }
    return "a value";
}

static const char *type_name(ww_cfg_type_t t)
{
    switch (t) {
    case WW_CFG_STRING:
        return "string";
    case WW_CFG_INT:
        return "int";
    case WW_CFG_DOUBLE:
        return "double";
    case WW_CFG_BOOL:
        return "bool";
    case WW_CFG_DURATION:
        return "duration";
    case WW_CFG_SIZE:
        return "size";
    case WW_CFG_STRLIST:
        return "list of strings";
    case WW_CFG_TABLE:
        return "table";
    case WW_CFG_ENUM:
        return "enum";
    }
    return "?";
}

/* ---- enums ------------------------------------------------------------------------------- */

/* An enum row's names (its `sub`), NULL-terminated. */
static const char *const *s_enum_names(const ww_cfg_opt_t *o)
{
    return o->sub;
}

/* The number of names of an enum row (0: a schema error, refused when the row is set). */
static size_t s_enum_count(const ww_cfg_opt_t *o)
{
    const char *const *names = s_enum_names(o);
    size_t n = 0;
    while (names && names[n]) {
        n++;
    }
    return n;
}

/* "a, b, c": an enum row's names, for --help and errors (cut at cap, NUL-terminated). */
static void s_enum_list(const ww_cfg_opt_t *o, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < s_enum_count(o) && len < cap; i++) {
        int n = snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", s_enum_names(o)[i]);
        if (n < 0) {
            break;
        }
        len += (size_t)n;
    }
}

/* What a row expects, for "missing value (expected ...)": the names of an enum. */
static const char *s_what(const ww_cfg_opt_t *o, char *buf, size_t cap)
{
    if (o->type != WW_CFG_ENUM || s_enum_count(o) == 0) {
        return type_what(o->type);
    }
    int n = snprintf(buf, cap, "one of ");
    s_enum_list(o, buf + n, cap - (size_t)n);
    return buf;
}

/* A plain (unquoted) empty, "~" or "null" scalar: YAML's null. "" quoted is a string. */
static bool is_null(const yaml_node_t *node)
{
    if (!node) {
        return true;
    }
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return false;
    }
    const char *v = (const char *)node->data.scalar.value;
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static const char *node_what(const yaml_node_t *node)
{
    if (is_null(node)) {
        return "nothing (null)";
    }
    switch (node->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a sequence";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "an empty node";
    }
}

/* Fetches a child node, refusing a second visit (an alias, or a cycle through one). */
static int get_node(cfg_ctx_t *c, int index, const char *key, yaml_node_t **out)
{
    yaml_node_t *n = yaml_document_get_node(c->doc, index);
    if (!n) {
        return ctx_fail(c, NULL, key, "malformed YAML document");
    }
    size_t k = (size_t)(n - c->doc->nodes.start);
    if (c->seen[k]) {
        return ctx_fail(c, n, key, "YAML aliases (*name) are not supported");
    }
    c->seen[k] = 1;
    *out = n;
    return 0;
}

/* The scalar's text; a "\0" escape would silently cut a C string, so it is refused. */
static int scalar_text(cfg_ctx_t *c, const yaml_node_t *node, const char *key, const char **out)
{
    const char *v = (const char *)node->data.scalar.value;
    if (strlen(v) != node->data.scalar.length) {
        return ctx_fail(c, node, key, "contains a NUL character");
    }
    *out = v;
    return 0;
}

static int describe_parser_error(const yaml_parser_t *p, yaml_fail_t *f)
{
    if (p->error == YAML_MEMORY_ERROR) {
        snprintf(f->why, sizeof f->why, "out of memory");
        return -ENOMEM;
    }
    if (p->error == YAML_READER_ERROR) {
        snprintf(f->why, sizeof f->why, "invalid input at byte %zu: %s", p->problem_offset,
                 p->problem ? p->problem : "unreadable");
        return -EINVAL;
    }
    f->has_mark = true;
    f->line = p->problem_mark.line + 1;
    f->col = p->problem_mark.column + 1;
    snprintf(f->why, sizeof f->why, "YAML syntax error: %s%s%s%s",
             p->problem ? p->problem : "unknown error", p->context ? " (" : "",
             p->context ? p->context : "", p->context ? ")" : "");
    return -EINVAL;
}

static int fail_at(yaml_fail_t *f, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_at(yaml_fail_t *f, yaml_mark_t m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->why, sizeof f->why, fmt, ap);
    va_end(ap);
    f->has_mark = true;
    f->line = m.line + 1;
    f->col = m.column + 1;
    return -EINVAL;
}

/* A libyaml parser over text (which must outlive it). Returns 0, or -ENOMEM with f->why. */
static int s_parser_open(yaml_parser_t *p, const char *text, size_t len, yaml_fail_t *f)
{
    if (!yaml_parser_initialize(p)) {
        snprintf(f->why, sizeof f->why, "out of memory");
        return -ENOMEM;
    }
    yaml_parser_set_input_string(p, (const unsigned char *)text, len);
    return 0;
}

/* A pass over the events before libyaml builds the document. libyaml's scanner costs
 * O(flow depth) per token and its composer O(anchors) per anchor and alias, so a hostile
 * "[[[[..." or a file of 10^5 anchors takes minutes; stopping at CFG_MAX_YAML_DEPTH and at
 * the first anchor or alias keeps every input linear. A configuration has no use for
 * anchors: aliases would only repeat values the schema reads once. */
static int prescan_yaml(const char *text, size_t len, yaml_fail_t *f)
{
    yaml_parser_t p;
    if (s_parser_open(&p, text, len, f) < 0) {
        return -ENOMEM;
    }
    int depth = 0, docs = 0, rc = 0;
    bool done = false;
    while (!done && rc == 0) {
        yaml_event_t e;
        if (!yaml_parser_parse(&p, &e)) {
            rc = describe_parser_error(&p, f);
            break;
        }
        const yaml_char_t *anchor = NULL;
        switch (e.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                rc = fail_at(f, e.start_mark, "more than one YAML document");
            }
            break;
        case YAML_ALIAS_EVENT:
            rc = fail_at(f, e.start_mark, "YAML aliases (*%.32s) are not supported",
                         (const char *)e.data.alias.anchor);
            break;
        case YAML_SCALAR_EVENT:
            anchor = e.data.scalar.anchor;
            break;
        case YAML_SEQUENCE_START_EVENT:
            anchor = e.data.sequence_start.anchor;
            depth++;
            break;
        case YAML_MAPPING_START_EVENT:
            anchor = e.data.mapping_start.anchor;
            depth++;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        default:
            break;
        }
        if (rc == 0 && anchor) {
            rc = fail_at(f, e.start_mark, "YAML anchors (&%.32s) are not supported",
                         (const char *)anchor);
        }
        if (rc == 0 && depth > CFG_MAX_YAML_DEPTH) {
            rc = fail_at(f, e.start_mark, "nested more than %d levels deep", CFG_MAX_YAML_DEPTH);
        }
        yaml_event_delete(&e);
    }
    yaml_parser_delete(&p);
    return rc;
}

/* Loads exactly one YAML document from text (an empty stream gives an empty document). */
static int load_yaml(const char *text, size_t len, yaml_document_t *doc, yaml_fail_t *f)
{
    memset(f, 0, sizeof *f);
    int rc = prescan_yaml(text, len, f);
    if (rc < 0) {
        return rc;
    }
    yaml_parser_t p;
    if (s_parser_open(&p, text, len, f) < 0) {
        return -ENOMEM;
    }
    if (!yaml_parser_load(&p, doc)) {
        rc = describe_parser_error(&p, f); /* libyaml has already deleted doc */
    }
    yaml_parser_delete(&p);
    return rc;
}

static int set_from_node(cfg_ctx_t *c, const ww_cfg_opt_t *o, void *field, yaml_node_t *node,
                         const char *key);
static int rows_defaults(const ww_cfg_opt_t *rows, size_t n, void *base, const char *errbase,
                         int depth, ww_cfg_err_t *err);

/* Text that holds YAML (a flow list from a flag, env var or default): load it and apply its
 * root. Positions are not reported: the origin already says which flag or variable. */
static int set_from_yaml_text(cfg_ctx_t *c, const ww_cfg_opt_t *o, void *field, const char *text,
                              const char *key, const yaml_node_t *at)
{
    yaml_document_t doc;
    yaml_fail_t f;
    int rc = load_yaml(text, strlen(text), &doc, &f);
    if (rc == -ENOMEM) {
        return ctx_oom(c, key);
    }
    if (rc < 0) {
        if (f.has_mark) {
            return ctx_fail(c, at, key, "invalid YAML at line %zu, column %zu: %s", f.line, f.col,
                            f.why);
        }
        return ctx_fail(c, at, key, "invalid YAML: %s", f.why);
    }
    size_t n_nodes = (size_t)(doc.nodes.top - doc.nodes.start);
    cfg_ctx_t sub = {
        .origin = c->origin,
        .marks = false,
        .doc = &doc,
        .seen = calloc(n_nodes ? n_nodes : 1, 1),
        .err = c->err,
        .depth = c->depth + 1,
    };
    if (!sub.seen) {
        yaml_document_delete(&doc);
        return ctx_oom(c, key);
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) {
        sub.seen[0] = 1; /* the root is node 1 */
    }
    rc = set_from_node(&sub, o, field, root, key);
    free(sub.seen);
    yaml_document_delete(&doc);
    return rc;
}

static int strlist_from_text(cfg_ctx_t *c, const ww_cfg_opt_t *o, void *field, const char *text,
                             const char *key, const yaml_node_t *at)
{
    const char *p = text;
    while (isspace((unsigned char)*p)) {
        p++;
    }
    if (*p == '[') {
        return set_from_yaml_text(c, o, field, text, key, at);
    }
    ww_cfg_strlist_t nl = {0};
    if (*p) {
        size_t n = 1;
        for (const char *q = p; *q; q++) {
            n += *q == ',';
        }
        nl.v = calloc(n, sizeof *nl.v);
        if (!nl.v) {
            return ctx_oom(c, key);
        }
        const char *seg = p;
        for (;;) {
            size_t len = strcspn(seg, ",");
            const char *b = seg, *e = seg + len;
            while (b < e && isspace((unsigned char)*b)) {
                b++;
            }
            while (e > b && isspace((unsigned char)e[-1])) {
                e--;
            }
            if (b == e) {
                size_t item = nl.n + 1;
                free_value(o, &nl);
                return ctx_fail(c, at, key, "empty item %zu in the list '%.64s'", item, text);
            }
            if (!(nl.v[nl.n] = strndup(b, (size_t)(e - b)))) {
                free_value(o, &nl);
                return ctx_oom(c, key);
            }
            nl.n++;
            if (seg[len] == '\0') {
                break;
            }
            seg += len + 1;
        }
    }
    free_value(o, field);
    *(ww_cfg_strlist_t *)field = nl;
    return 0;
}

/* An enum row from its name (NULL: the first name); anything else is refused with the list
 * of names, so the operator sees the choices where the mistake is reported. */
static int s_enum_set(cfg_ctx_t *c, const ww_cfg_opt_t *o, void *field, const char *text,
                      const char *key, const yaml_node_t *at)
{
    size_t n = s_enum_count(o);
    if (n == 0) {
        return ctx_fail(c, at, key, "schema error: an enum row needs names");
    }
    size_t i = 0;
    while (text && i < n && strcmp(text, s_enum_names(o)[i]) != 0) {
        i++;
    }
    if (i == n) {
        char list[256];
        s_enum_list(o, list, sizeof list);
        return ctx_fail(c, at, key, "\"%.64s\" is not one of %s", text, list);
    }
    *(int *)field = (int)i;
    return 0;
}

static void s_fmt_int(int64_t v, char *buf, size_t len)
{
    snprintf(buf, len, "%" PRId64, v);
}

/* An int64 row (INT, DURATION, SIZE) from text: parsed, shown as a human writes it and
 * checked against the row's range in the range's unit (value x scale: a duration's range
 * is in seconds). NULL text means 0. */
static int s_set_i64(cfg_ctx_t *c, const ww_cfg_opt_t *o, void *field, const char *text,
                     const char *key, const yaml_node_t *at,
                     int (*parse)(const char *, int64_t *, char *, size_t),
                     void (*fmt)(int64_t, char *, size_t), double scale)
{
    char why[256], shown[40];
    int64_t v = 0;
    if (text) {
        if (parse(text, &v, why, sizeof why) < 0) {
            return ctx_fail(c, at, key, "%s", why);
        }
        fmt(v, shown, sizeof shown);
        if (check_range(o, (double)v * scale, shown, why, sizeof why) < 0) {
            return ctx_fail(c, at, key, "%s", why);
        }
    }
    *(int64_t *)field = v;
    return 0;
}

/* Sets a row from text in the flag syntax; NULL text means the empty/zero value. `at` is the
 * YAML scalar the text came from (for line:col in errors), or NULL. */
static int set_from_text(cfg_ctx_t *c, const ww_cfg_opt_t *o, void *field, const char *text,
                         const char *key, const yaml_node_t *at)
{
    char why[256];
    char shown[40];
    switch (o->type) {
    case WW_CFG_STRING: {
        char *v = NULL;
        if (text && !(v = strdup(text))) {
            return ctx_oom(c, key);
        }
        free_value(o, field);
        *(char **)field = v;
        return 0;
    }
    case WW_CFG_INT:
        return s_set_i64(c, o, field, text, key, at, parse_int, s_fmt_int, 1);
    case WW_CFG_DOUBLE: {
        double v = 0;
        if (text) {
            if (parse_double(text, &v, why, sizeof why) < 0) {
                return ctx_fail(c, at, key, "%s", why);
            }
            fmt_double(v, shown, sizeof shown);
            if (check_range(o, v, shown, why, sizeof why) < 0) {
                return ctx_fail(c, at, key, "%s", why);
            }
        }
        *(double *)field = v;
        return 0;
    }
    case WW_CFG_BOOL: {
        bool v = false;
        if (text && parse_bool(text, &v, why, sizeof why) < 0) {
            return ctx_fail(c, at, key, "%s", why);
        }
        *(bool *)field = v;
        return 0;
    }
    case WW_CFG_DURATION:
        return s_set_i64(c, o, field, text, key, at, parse_duration, fmt_duration, 1e-9);
    case WW_CFG_SIZE:
        return s_set_i64(c, o, field, text, key, at, s_parse_size, s_fmt_size, 1);
    case WW_CFG_STRLIST:
        if (!text) {
            free_value(o, field);
            return 0;
        }
        return strlist_from_text(c, o, field, text, key, at);
    case WW_CFG_TABLE:
        if (!text) {
            free_value(o, field);
            return 0;
        }
        return set_from_yaml_text(c, o, field, text, key, at);
    case WW_CFG_ENUM:
        return s_enum_set(c, o, field, text, key, at);
    }
    return ctx_fail(c, at, key, "unknown type %d in the schema", (int)o->type);
}

static int strlist_from_node(cfg_ctx_t *c, const ww_cfg_opt_t *o, void *field, yaml_node_t *node,
                             const char *key)
{
    if (is_null(node)) {
        free_value(o, field);
        return 0;
    }
    if (node->type != YAML_SEQUENCE_NODE) {
        return ctx_fail(c, node, key, "expected a list of strings, found %s", node_what(node));
    }
    size_t n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    ww_cfg_strlist_t nl = {0};
    if (n && !(nl.v = calloc(n, sizeof *nl.v))) {
        return ctx_oom(c, key);
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = NULL;
        const char *text = NULL;
        if ((rc = get_node(c, node->data.sequence.items.start[i], key, &item)) < 0) {
            goto fail;
        }
        if (item->type != YAML_SCALAR_NODE || is_null(item)) {
            rc = ctx_fail(c, item, key, "item %zu: expected a string, found %s", i + 1,
                          node_what(item));
            goto fail;
        }
        if ((rc = scalar_text(c, item, key, &text)) < 0) {
            goto fail;
        }
        if (!(nl.v[nl.n] = strdup(text))) {
            rc = ctx_oom(c, key);
            goto fail;
        }
        nl.n++;
    }
    free_value(o, field);
    *(ww_cfg_strlist_t *)field = nl;
    return 0;
fail:
    free_value(o, &nl);
    return rc;
}

static int apply_mapping(cfg_ctx_t *c, const ww_cfg_opt_t *rows, size_t n, void *base,
                         const char *relprefix, const char *errbase, yaml_node_t *map);

static int table_from_node(cfg_ctx_t *c, const ww_cfg_opt_t *o, void *field, yaml_node_t *node,
                           const char *key)
{
    if (o->elem_size == 0 || (o->n_sub && !o->sub)) {
        return ctx_fail(c, node, key, "schema error: a table row needs sub rows and elem_size");
    }
    if (c->depth >= CFG_MAX_DEPTH) {
        return ctx_fail(c, node, key, "tables nested too deeply");
    }
    size_t n = 0;
    if (!is_null(node)) {
        if (node->type != YAML_SEQUENCE_NODE) {
            return ctx_fail(c, node, key, "expected a list of mappings, found %s", node_what(node));
        }
        n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    }
    ww_cfg_table_t nt = {0};
    if (n && !(nt.items = calloc(n, o->elem_size))) {
        return ctx_oom(c, key);
    }
    /* Every element is zeroed, so freeing all n is safe whatever step fails. */
    nt.n = n;
    int rc = 0, item_rc = 0;
    /* An item's errors do not hide the next item's: the walk goes on (s_go_on). */
    for (size_t i = 0; i < n && s_go_on(c, item_rc); i++) {
        void *elem = (char *)nt.items + i * o->elem_size;
        char *ekey = str_printf("%s[%zu]", key, i);
        yaml_node_t *item = NULL;
        if (!ekey) {
            rc = ctx_oom(c, key);
        } else if ((rc = rows_defaults(o->sub, o->n_sub, elem, ekey, c->depth + 1, c->err)) < 0) {
            /* a bad sub-row default: err is set */
        } else if ((rc = get_node(c, node->data.sequence.items.start[i], ekey, &item)) < 0) {
            /* err is set */
        } else if (item->type != YAML_MAPPING_NODE) {
            rc = ctx_fail(c, item, ekey, "expected a mapping of keys, found %s", node_what(item));
        } else {
            c->depth++;
            rc = apply_mapping(c, o->sub, o->n_sub, elem, "", ekey, item);
            c->depth--;
        }
        free(ekey);
        if (rc < 0 && item_rc != -ENOMEM) {
            item_rc = rc;
        }
    }
    rc = item_rc;
    if (rc == 0 && (o->min_items || o->max_items)) {
        if (n < o->min_items) {
            rc = ctx_fail(c, node, key, "%zu items given, at least %zu required", n, o->min_items);
        } else if (o->max_items && n > o->max_items) {
            rc = ctx_fail(c, node, key, "%zu items given, at most %zu allowed", n, o->max_items);
        }
    }
    if (rc < 0) {
        free_value(o, &nt);
        return rc;
    }
    free_value(o, field);
    *(ww_cfg_table_t *)field = nt;
    return 0;
}

/* Sets a row from a YAML node (NULL: an empty document). */
static int set_from_node(cfg_ctx_t *c, const ww_cfg_opt_t *o, void *field, yaml_node_t *node,
                         const char *key)
{
    const char *text = NULL;
    char what[256];
    int rc;
    switch (o->type) {
    case WW_CFG_STRLIST:
        return strlist_from_node(c, o, field, node, key);
    case WW_CFG_TABLE:
        return table_from_node(c, o, field, node, key);
    case WW_CFG_STRING:
        if (is_null(node)) {
            free_value(o, field);
            return 0;
        }
        break;
    default:
        if (is_null(node)) {
            return ctx_fail(c, node, key, "missing value (expected %s)",
                            s_what(o, what, sizeof what));
        }
        break;
    }
    if (node->type != YAML_SCALAR_NODE) {
        return ctx_fail(c, node, key, "expected %s, found %s", s_what(o, what, sizeof what),
                        node_what(node));
    }
    if ((rc = scalar_text(c, node, key, &text)) < 0) {
        return rc;
    }
    return set_from_text(c, o, field, text, key, node);
}

/* Applies one key: value pair of a mapping (see apply_mapping). */
static int s_apply_pair(cfg_ctx_t *c, const ww_cfg_opt_t *rows, size_t n, void *base,
                        const char *relprefix, const char *errbase, yaml_node_pair_t *start,
                        yaml_node_pair_t *pair)
{
    yaml_node_t *kn = NULL, *vn = NULL;
    const char *k = NULL;
    int rc = get_node(c, pair->key, relprefix, &kn);
    if (rc < 0) {
        return rc;
    }
    if (kn->type != YAML_SCALAR_NODE) {
        return ctx_fail(c, kn, relprefix, "keys must be plain names, found %s", node_what(kn));
    }
    if ((rc = scalar_text(c, kn, relprefix, &k)) < 0) {
        return rc;
    }
    char *full = *relprefix ? str_printf("%s.%s", relprefix, k) : strdup(k);
    char *errkey = NULL;
    if (full) {
        errkey = *errbase ? str_printf("%s.%s", errbase, full) : strdup(full);
    }
    if (!full || !errkey) {
        free(full);
        return ctx_oom(c, relprefix);
    }
    /* The walk stops after WW_CFG_MAX_ERRORS errors and every valid key is distinct and
     * the schema's, so this scan is bounded by the schema, not by the input. */
    for (yaml_node_pair_t *q = start; q < pair && rc == 0; q++) {
        yaml_node_t *qk = yaml_document_get_node(c->doc, q->key);
        if (qk && qk->type == YAML_SCALAR_NODE &&
            strcmp((const char *)qk->data.scalar.value, k) == 0) {
            rc = ctx_fail(c, kn, errkey, "duplicate key (first set at line %zu)",
                          qk->start_mark.line + 1);
        }
    }
    const ww_cfg_opt_t *row = NULL;
    if (rc == 0 && *k && !strchr(k, '.')) {
        row = find_row(rows, n, full);
    }
    if (rc < 0) {
        /* duplicate: err is set */
    } else if (row) {
        if ((rc = get_node(c, pair->value, errkey, &vn)) == 0) {
            rc = set_from_node(c, row, (char *)base + row->offset, vn, errkey);
        }
    } else if (*k && !strchr(k, '.') && is_prefix(rows, n, full)) {
        if ((rc = get_node(c, pair->value, errkey, &vn)) == 0) {
            if (vn->type == YAML_MAPPING_NODE) {
                c->depth++;
                rc = apply_mapping(c, rows, n, base, full, errbase, vn);
                c->depth--;
            } else if (!is_null(vn)) {
                rc = ctx_fail(c, vn, errkey, "expected a mapping of keys, found %s", node_what(vn));
            }
        }
    } else {
        rc = ctx_fail(c, kn, errkey, "unknown key");
    }
    free(full);
    free(errkey);
    return rc;
}

/* Applies a mapping whose keys are the next component of the rows' dotted names below
 * relprefix ("" at the top). errbase prefixes key paths in errors ("sim.models[2]"). A bad
 * key or value does not hide the next one: the walk goes on (s_go_on), and the mapping
 * fails with its first error once every key has been seen. */
static int apply_mapping(cfg_ctx_t *c, const ww_cfg_opt_t *rows, size_t n, void *base,
                         const char *relprefix, const char *errbase, yaml_node_t *map)
{
    if (c->depth >= CFG_MAX_DEPTH) {
        return ctx_fail(c, map, relprefix, "mappings nested too deeply");
    }
    int rc = 0, first = 0;
    yaml_node_pair_t *start = map->data.mapping.pairs.start;
    yaml_node_pair_t *top = map->data.mapping.pairs.top;
    for (yaml_node_pair_t *pair = start; pair < top && s_go_on(c, rc); pair++) {
        rc = s_apply_pair(c, rows, n, base, relprefix, errbase, start, pair);
        if (rc < 0 && first != -ENOMEM) {
            first = first ? first : rc;
            first = rc == -ENOMEM ? rc : first;
        }
    }
    return first;
}

static int rows_defaults(const ww_cfg_opt_t *rows, size_t n, void *base, const char *errbase,
                         int depth, ww_cfg_err_t *err)
{
    cfg_ctx_t c = {.origin = "default", .marks = false, .err = err, .depth = depth};
    for (size_t i = 0; i < n; i++) {
        const ww_cfg_opt_t *o = &rows[i];
        char *key = *errbase ? str_printf("%s.%s", errbase, o->name) : strdup(o->name);
        if (!key) {
            return ctx_oom(&c, o->name);
        }
        int rc = set_from_text(&c, o, (char *)base + o->offset, o->def, key, NULL);
        free(key);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* The error list a public entry point writes: the caller's (emptied), or scratch when
 * the caller passed NULL (errors not wanted). */
static ww_cfg_err_t *s_err_begin(ww_cfg_err_t *err, ww_cfg_err_t *scratch)
{
    err = err ? err : scratch;
    err->msg[0] = '\0';
    return err;
}

/* ---- public API -------------------------------------------------------------------------- */

int ww_cfg_defaults(const ww_cfg_schema_t *s, void *cfg, ww_cfg_err_t *err)
{
    ww_cfg_err_t scratch;
    err = s_err_begin(err, &scratch);
    return rows_defaults(s->opts, s->n_opts, cfg, "", 0, err);
}

int ww_cfg_load_buffer(const ww_cfg_schema_t *s, void *cfg, const char *text, size_t len,
                       const char *name, ww_cfg_err_t *err)
{
    ww_cfg_err_t scratch;
    err = s_err_begin(err, &scratch);
    if (!name) {
        name = "(buffer)";
    }
    if (!text) {
        if (len) {
            set_err(err, "%s: no text", name);
            return -EINVAL;
        }
        text = "";
    }
    yaml_document_t doc;
    yaml_fail_t f;
    int rc = load_yaml(text, len, &doc, &f);
    if (rc < 0) {
        if (f.has_mark) {
            set_err(err, "%s:%zu:%zu: %s", name, f.line, f.col, f.why);
        } else {
            set_err(err, "%s: %s", name, f.why);
        }
        return rc;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    size_t n_nodes = (size_t)(doc.nodes.top - doc.nodes.start);
    cfg_ctx_t c = {
        .origin = name,
        .marks = true,
        .doc = &doc,
        .seen = calloc(n_nodes ? n_nodes : 1, 1),
        .err = err,
    };
    if (!c.seen) {
        rc = ctx_oom(&c, NULL);
    } else if (is_null(root)) {
        rc = 0; /* an empty file (or only comments, or "~"): all defaults */
    } else if (root->type != YAML_MAPPING_NODE) {
        rc = ctx_fail(&c, root, NULL, "the top level must be a mapping of keys, found %s",
                      node_what(root));
    } else {
        c.seen[0] = 1;
        rc = apply_mapping(&c, s->opts, s->n_opts, cfg, "", "", root);
    }
    free(c.seen);
    yaml_document_delete(&doc);
    return rc;
}

/* Reads a whole configuration file into *buf (malloc'd; NULL for an empty file). */
static int s_read_file(const char *path, char **buf_out, size_t *len_out, ww_cfg_err_t *err)
{
    *buf_out = NULL;
    *len_out = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno ? errno : EIO;
        set_err(err, "%s: %s", path, strerror(e));
        return -e;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (cap - len < 4096) {
            size_t ncap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                set_err(err, "%s: out of memory", path);
                rc = -ENOMEM;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        errno = 0;
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len > CFG_MAX_FILE_BYTES) {
            set_err(err, "%s: file too large (over %zu bytes)", path, CFG_MAX_FILE_BYTES);
            rc = -EFBIG;
            break;
        }
        if (got == 0) {
            if (ferror(f)) {
                int e = errno ? errno : EIO;
                set_err(err, "%s: %s", path, strerror(e));
                rc = -e;
            }
            break;
        }
    }
    fclose(f);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *buf_out = buf;
    *len_out = len;
    return 0;
}

int ww_cfg_read_file(const char *path, char **buf, size_t *len, ww_cfg_err_t *err)
{
    ww_cfg_err_t scratch;
    err = s_err_begin(err, &scratch);
    if (!path) {
        set_err(err, "no configuration file name");
        return -EINVAL;
    }
    int rc = s_read_file(path, buf, len, err);
    if (rc == 0 && !*buf && !(*buf = calloc(1, 1))) {
        set_err(err, "%s: out of memory", path);
        return -ENOMEM;
    }
    if (rc == 0) {
        (*buf)[*len] = '\0'; /* s_read_file always leaves room after the data */
    }
    return rc;
}

/* The node at `key` ("a.b[2].c") below node, or NULL. Each dotted component is one
 * mapping level (file keys never hold a dot); each [i] one sequence level. */
static yaml_node_t *s_locate(yaml_document_t *doc, yaml_node_t *node, const char *key)
{
    for (int depth = 0; node && *key && depth < CFG_MAX_DEPTH; depth++) {
        if (*key == '[') {
            char *end;
            unsigned long long i = strtoull(key + 1, &end, 10);
            if (end == key + 1 || *end != ']' || node->type != YAML_SEQUENCE_NODE) {
                return NULL;
            }
            size_t n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
            if (i >= n) {
                return NULL;
            }
            node = yaml_document_get_node(doc, node->data.sequence.items.start[i]);
            key = end + 1;
            key += *key == '.';
            continue;
        }
        size_t kl = strcspn(key, ".[");
        if (node->type != YAML_MAPPING_NODE) {
            return NULL;
        }
        yaml_node_t *next = NULL;
        for (yaml_node_pair_t *pair = node->data.mapping.pairs.start;
             pair < node->data.mapping.pairs.top && !next; pair++) {
            yaml_node_t *kn = yaml_document_get_node(doc, pair->key);
            if (kn && kn->type == YAML_SCALAR_NODE && kn->data.scalar.length == kl &&
                strncmp((const char *)kn->data.scalar.value, key, kl) == 0) {
                next = yaml_document_get_node(doc, pair->value);
            }
        }
        node = next;
        key += kl;
        key += *key == '.';
    }
    return *key ? NULL : node;
}

int ww_cfg_locate(const char *text, size_t len, const char *key, size_t *line, size_t *col)
{
    *line = 0;
    *col = 0;
    yaml_document_t doc;
    yaml_fail_t f;
    if (!text || !key || load_yaml(text, len, &doc, &f) < 0) {
        return -ENOENT;
    }
    yaml_node_t *n = s_locate(&doc, yaml_document_get_root_node(&doc), key);
    if (n) {
        *line = n->start_mark.line + 1;
        *col = n->start_mark.column + 1;
    }
    yaml_document_delete(&doc);
    return n ? 0 : -ENOENT;
}

int ww_cfg_load_file(const ww_cfg_schema_t *s, void *cfg, const char *path, ww_cfg_err_t *err)
{
    ww_cfg_err_t scratch;
    err = s_err_begin(err, &scratch);
    if (!path) {
        set_err(err, "no configuration file name");
        return -EINVAL;
    }
    char *buf = NULL;
    size_t len = 0;
    int rc = s_read_file(path, &buf, &len, err);
    if (rc == 0) {
        rc = ww_cfg_load_buffer(s, cfg, buf ? buf : "", len, path, err);
    }
    free(buf);
    return rc;
}

int ww_cfg_set(const ww_cfg_schema_t *s, void *cfg, const char *key, const char *text,
               const char *origin, ww_cfg_err_t *err)
{
    ww_cfg_err_t scratch;
    err = s_err_begin(err, &scratch);
    if (!origin) {
        origin = "setting";
    }
    const ww_cfg_opt_t *o = key ? find_row(s->opts, s->n_opts, key) : NULL;
    if (!o) {
        set_err(err, "%s: unknown key %s", origin, key ? key : "(null)");
        return -ENOENT;
    }
    cfg_ctx_t c = {.origin = origin, .marks = false, .err = err};
    return set_from_text(&c, o, (char *)cfg + o->offset, text, key, NULL);
}

/* env_prefix + the key upper-cased, with '.' and '-' as '_'. */
static char *env_name(const ww_cfg_schema_t *s, const char *key)
{
    char *name = str_printf("%s%s", s->env_prefix ? s->env_prefix : "", key);
    if (!name) {
        return NULL;
    }
    for (char *p = name + (s->env_prefix ? strlen(s->env_prefix) : 0); *p; p++) {
        *p = (*p == '.' || *p == '-') ? '_' : (char)toupper((unsigned char)*p);
    }
    return name;
}

/* Levenshtein distance, two rows; names are short (< 64 bytes compared). */
static size_t s_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    la = la > 63 ? 63 : la;
    lb = lb > 63 ? 63 : lb;
    size_t prev[64], cur[64];
    for (size_t j = 0; j <= lb; j++) {
        prev[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb];
}

extern char **environ;

/* Refuses a variable under the schema's prefix that names no key: WW_AGENT_SIM_SEEDS=7
 * would otherwise be ignored, and the operator would believe the seed is 7. */
static int s_env_check_unknown(const ww_cfg_schema_t *s, ww_cfg_err_t *err)
{
    size_t plen = strlen(s->env_prefix);
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (strncmp(*e, s->env_prefix, plen) != 0 || !eq) {
            continue;
        }
        size_t nlen = (size_t)(eq - *e);
        char *name = str_printf("%.*s", (int)nlen, *e);
        if (!name) {
            set_err(err, "environment: out of memory");
            return -ENOMEM;
        }
        bool known = false;
        size_t best_d = SIZE_MAX;
        char *best = NULL;
        for (size_t i = 0; i < s->n_opts && !known; i++) {
            char *cand = env_name(s, s->opts[i].name);
            if (!cand) {
                continue;
            }
            if (strcmp(cand, name) == 0) {
                known = true;
            } else {
                size_t d = s_edit_distance(name + plen, cand + plen);
                if (d < best_d) {
                    best_d = d;
                    free(best);
                    best = cand;
                    cand = NULL;
                }
            }
            free(cand);
        }
        if (!known) {
            if (best) {
                set_err(err, "environment %.128s: unknown key (did you mean %.128s?)", name, best);
            } else {
                set_err(err, "environment %.128s: unknown key", name);
            }
        }
        free(best);
        free(name);
        if (!known) {
            return -EINVAL;
        }
    }
    return 0;
}

int ww_cfg_apply_env(const ww_cfg_schema_t *s, void *cfg, ww_cfg_err_t *err)
{
    ww_cfg_err_t scratch;
    err = s_err_begin(err, &scratch);
    /* Without a prefix every variable would be a candidate: only the known names are read. */
    int urc = s->env_prefix && *s->env_prefix ? s_env_check_unknown(s, err) : 0;
    if (urc < 0) {
        return urc;
    }
    for (size_t i = 0; i < s->n_opts; i++) {
        const ww_cfg_opt_t *o = &s->opts[i];
        char *name = env_name(s, o->name);
        if (!name) {
            set_err(err, "environment: out of memory");
            return -ENOMEM;
        }
        const char *v = getenv(name);
        int rc = 0;
        if (v) {
            char *origin = str_printf("environment %s", name);
            cfg_ctx_t c = {.origin = origin ? origin : "environment", .marks = false, .err = err};
            rc = set_from_text(&c, o, (char *)cfg + o->offset, v, o->name, NULL);
            free(origin);
        }
        free(name);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

typedef enum { ARG_HELP, ARG_VERSION, ARG_CHECK, ARG_PRINT, ARG_CONFIG, ARG_OPT } arg_kind_t;

typedef struct {
    arg_kind_t kind;
    const ww_cfg_opt_t *opt; /* ARG_OPT */
    const char *value;       /* ARG_CONFIG, ARG_OPT */
    const char *name;        /* the flag as written, without "--" */
    size_t name_len;
} arg_t;

static const ww_cfg_opt_t *find_flag(const ww_cfg_schema_t *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->n_opts; i++) {
        const char *f = s->opts[i].flag;
        if (f && strlen(f) == len && strncmp(f, name, len) == 0) {
            return &s->opts[i];
        }
    }
    return NULL;
}

/* Reads argv[*i], and its value from argv[*i + 1] when it takes one (advancing *i). */
static int next_arg(const ww_cfg_schema_t *s, int argc, char **argv, int *i, arg_t *a,
                    ww_cfg_err_t *err)
{
    const char *arg = argv[*i] ? argv[*i] : "";
    memset(a, 0, sizeof *a);
    if (strcmp(arg, "-h") == 0) {
        a->kind = ARG_HELP;
        return 0;
    }
    if (strncmp(arg, "-c", 2) == 0) {
        a->kind = ARG_CONFIG;
        if (arg[2]) {
            a->value = arg + 2;
        } else if (*i + 1 < argc && argv[*i + 1]) {
            a->value = argv[++*i];
        } else {
            set_err(err, "flag -c: missing value (a file name)");
            return -EINVAL;
        }
        return 0;
    }
    if (arg[0] != '-' || arg[1] != '-' || arg[2] == '\0') {
        if (arg[0] == '-' && arg[1] && arg[1] != '-') {
            set_err(err, "unknown flag %.64s (see --help)", arg);
        } else {
            set_err(err, "unexpected argument '%.64s' (flags start with --; see --help)", arg);
        }
        return -EINVAL;
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    a->name = name;
    a->name_len = len;
    static const struct {
        const char *name;
        arg_kind_t kind;
    } generic[] = {{"help", ARG_HELP},
                   {"version", ARG_VERSION},
                   {"check-config", ARG_CHECK},
                   {"print-config", ARG_PRINT},
                   {"config", ARG_CONFIG}};
    for (size_t g = 0; g < sizeof generic / sizeof generic[0]; g++) {
        if (strlen(generic[g].name) != len || strncmp(name, generic[g].name, len) != 0) {
            continue;
        }
        a->kind = generic[g].kind;
        if (a->kind != ARG_CONFIG) {
            if (eq) {
                set_err(err, "flag --%s takes no value", generic[g].name);
                return -EINVAL;
            }
            return 0;
        }
        if (eq) {
            a->value = eq + 1;
        } else if (*i + 1 < argc && argv[*i + 1]) {
            a->value = argv[++*i];
        } else {
            set_err(err, "flag --config: missing value (a file name)");
            return -EINVAL;
        }
        return 0;
    }
    a->kind = ARG_OPT;
    a->opt = find_flag(s, name, len);
    if (!a->opt && !eq && len > 3 && strncmp(name, "no-", 3) == 0) {
        const ww_cfg_opt_t *o = find_flag(s, name + 3, len - 3);
        if (o && o->type == WW_CFG_BOOL) {
            a->opt = o;
            a->value = "false";
            return 0;
        }
    }
    if (!a->opt) {
        set_err(err, "unknown flag --%.*s (see --help)", (int)(len > 64 ? 64 : len), name);
        return -EINVAL;
    }
    if (eq) {
        a->value = eq + 1;
    } else if (a->opt->type == WW_CFG_BOOL) {
        a->value = "true"; /* a bool flag alone; "--x=false" or "--no-x" turns it off */
    } else if (*i + 1 < argc && argv[*i + 1]) {
        a->value = argv[++*i];
    } else {
        set_err(err, "flag --%.*s: missing value", (int)(len > 64 ? 64 : len), name);
        return -EINVAL;
    }
    return 0;
}

int ww_cfg_parse_args(const ww_cfg_schema_t *s, void *cfg, int argc, char **argv, ww_cfg_err_t *err)
{
    ww_cfg_err_t scratch, first, later;
    if (!err) {
        err = &scratch;
    }
    err->msg[0] = '\0';
    first.msg[0] = '\0';
    int rc = ww_cfg_defaults(s, cfg, err);
    if (rc < 0) {
        return -EINVAL;
    }
    /* Pass 1: the generic flags, the config file name, and every syntax error. --help and
     * --version win over errors elsewhere on the line, as users expect. */
    bool help = false, version = false, check = false, print = false, bad = false;
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        arg_t a;
        if (next_arg(s, argc, argv, &i, &a, bad ? &later : &first) < 0) {
            bad = true;
            continue;
        }
        help |= a.kind == ARG_HELP;
        version |= a.kind == ARG_VERSION;
        check |= a.kind == ARG_CHECK;
        print |= a.kind == ARG_PRINT;
        if (a.kind == ARG_CONFIG) {
            config = a.value;
        }
    }
    const char *program = s->program ? s->program : (argc > 0 && argv[0] ? argv[0] : "waferwatch");
    if (help) {
        ww_cfg_usage(s, stdout);
        return WW_CFG_HELP;
    }
    if (version) {
        printf("%s %s\n", program, WW_VERSION);
        return WW_CFG_VERSION;
    }
    if (bad) {
        *err = first;
        return -EINVAL;
    }
    if (config && ww_cfg_load_file(s, cfg, config, err) < 0) {
        return -EINVAL;
    }
    if (ww_cfg_apply_env(s, cfg, err) < 0) {
        return -EINVAL;
    }
    /* Pass 2: flags last, whatever their position relative to --config. */
    for (int i = 1; i < argc; i++) {
        arg_t a;
        if (next_arg(s, argc, argv, &i, &a, err) < 0) {
            return -EINVAL;
        }
        if (a.kind != ARG_OPT) {
            continue;
        }
        char *origin = str_printf("flag --%.*s", (int)a.name_len, a.name);
        cfg_ctx_t c = {.origin = origin ? origin : "flag", .marks = false, .err = err};
        rc = set_from_text(&c, a.opt, (char *)cfg + a.opt->offset, a.value, a.opt->name, NULL);
        free(origin);
        if (rc < 0) {
            return -EINVAL;
        }
    }
    /* A table with min_items and no default must have been given somewhere. */
    for (size_t i = 0; i < s->n_opts; i++) {
        const ww_cfg_opt_t *o = &s->opts[i];
        if (o->type != WW_CFG_TABLE) {
            continue;
        }
        const ww_cfg_table_t *t = (const ww_cfg_table_t *)((const char *)cfg + o->offset);
        if (t->n < o->min_items) {
            set_err(err, "%s: %zu items given, at least %zu required", o->name, t->n, o->min_items);
            return -EINVAL;
        }
    }
    if (print) {
        ww_cfg_print(s, cfg, stdout);
        return WW_CFG_PRINT;
    }
    return check ? WW_CFG_CHECK : WW_CFG_RUN;
}

/* The value node of a dotted key below a mapping, or NULL. File keys never hold a dot
 * (apply_mapping refuses them), so each component is one level; duplicates are refused at
 * load, so the first match is the one that was used. */
static yaml_node_t *s_find_value(yaml_document_t *doc, yaml_node_t *map, const char *key, int depth)
{
    if (!map || map->type != YAML_MAPPING_NODE || depth > CFG_MAX_DEPTH) {
        return NULL;
    }
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *kn = yaml_document_get_node(doc, pair->key);
        if (!kn || kn->type != YAML_SCALAR_NODE) {
            continue;
        }
        const char *k = (const char *)kn->data.scalar.value;
        size_t kl = strlen(k);
        if (kl == 0 || strncmp(key, k, kl) != 0) {
            continue;
        }
        yaml_node_t *vn = yaml_document_get_node(doc, pair->value);
        if (key[kl] == '\0') {
            return vn;
        }
        if (key[kl] == '.') {
            return s_find_value(doc, vn, key + kl + 1, depth + 1);
        }
    }
    return NULL;
}

int ww_cfg_origin(const ww_cfg_schema_t *s, int argc, char **argv, const char *key, char *out,
                  size_t cap)
{
    snprintf(out, cap, "default");
    const ww_cfg_opt_t *row = key ? find_row(s->opts, s->n_opts, key) : NULL;
    if (!row) {
        return -ENOENT;
    }
    /* The same precedence as ww_cfg_parse_args: the last flag, the environment, the file. */
    const char *config = NULL, *flag = NULL;
    size_t flag_len = 0;
    for (int i = 1; i < argc; i++) {
        arg_t a;
        ww_cfg_err_t scratch;
        if (next_arg(s, argc, argv, &i, &a, &scratch) < 0) {
            continue;
        }
        if (a.kind == ARG_CONFIG) {
            config = a.value;
        } else if (a.kind == ARG_OPT && a.opt == row) {
            flag = a.name;
            flag_len = a.name_len;
        }
    }
    if (flag) {
        snprintf(out, cap, "flag --%.*s", (int)flag_len, flag);
        return 0;
    }
    char *env = env_name(s, row->name);
    if (env && getenv(env)) {
        snprintf(out, cap, "environment %s", env);
        free(env);
        return 0;
    }
    free(env);
    if (!config) {
        return 0;
    }
    char *buf = NULL;
    size_t len = 0;
    ww_cfg_err_t scratch;
    yaml_document_t doc;
    yaml_fail_t f;
    if (s_read_file(config, &buf, &len, &scratch) < 0 ||
        load_yaml(buf ? buf : "", len, &doc, &f) < 0) {
        free(buf);
        snprintf(out, cap, "%s", config);
        return 0;
    }
    yaml_node_t *vn = s_find_value(&doc, yaml_document_get_root_node(&doc), row->name, 0);
    if (vn) {
        snprintf(out, cap, "%s:%zu:%zu", config, vn->start_mark.line + 1,
                 vn->start_mark.column + 1);
    }
    yaml_document_delete(&doc);
    free(buf);
    return 0;
}

/* ---- usage and reference ----------------------------------------------------------------- */

/* The flags every program takes besides its settings' (next_arg reads them). A hidden one
 * is left out of --help: the reference documents it. */
static const struct {
    const char *short_flag; /* "-c", or NULL */
    const char *flag;       /* "--config" */
    const char *arg;        /* "FILE", or NULL */
    const char *help;
    bool hidden;
} s_general[] = {
    {"-c", "--config", "FILE", "read settings from a YAML file", false},
    {"-h", "--help", NULL, "print this help and exit", false},
    {NULL, "--version", NULL, "print the version and exit", false},
    {NULL, "--check-config", NULL, "load and validate the configuration, then exit", false},
    {NULL, "--print-config", NULL, "print the effective configuration as YAML and exit", false},
    {NULL, "--reference", "FORMAT",
     "print this reference (FORMAT markdown or man) and exit 0, without reading any file or "
     "starting anything; the only argument when given",
     true},
};

/* How the sources combine; --help shows it as is, the reference as a paragraph. */
static const char s_sources_text[] =
    "Settings (YAML key; later sources win: default, file, environment, flag).\n"
    "Lists and tables take YAML flow text on flags and in the environment, e.g.\n"
    "[a, b] or [{name: x}]; a list of strings also takes a,b.\n";

/* What --help and the reference say of one row: one formatter, so they never disagree. */
typedef struct {
    const char *type;  /* "duration", "enum", ... */
    const char *def;   /* the default as --help shows it: "1s", "1 GiB", "none" */
    char def_buf[48];  /* where def points for a reformatted size */
    char range[96];    /* "10ms..1h", or "" */
    char items[64];    /* tables: "1..8 items", "at least 1 items", or "" */
    char choices[512]; /* enums: "a, b, c", or "" */
    char flag[160];    /* "--x VALUE", "--x or --no-x", or "" */
} s_row_text_t;

static void s_row_text(const ww_cfg_opt_t *o, s_row_text_t *t)
{
    memset(t, 0, sizeof *t);
    t->type = type_name(o->type);
    int64_t size = 0;
    char why[128];
    if (o->type == WW_CFG_ENUM) {
        /* "spool.policy (one of: drop_oldest, stop_sampling; default drop_oldest)" */
        s_enum_list(o, t->choices, sizeof t->choices);
        t->def = o->def ? o->def : s_enum_count(o) ? s_enum_names(o)[0] : "none";
    } else if (o->type == WW_CFG_SIZE && o->def &&
               s_parse_size(o->def, &size, why, sizeof why) == 0) {
        s_fmt_size(size, t->def_buf, sizeof t->def_buf);
        t->def = t->def_buf;
    } else if (o->def && *o->def) {
        t->def = o->def;
    } else {
        /* "default " followed by nothing reads as a printing bug; the help line says what
         * an empty value means. */
        t->def = "none";
    }
    if (has_range(o) && (o->type == WW_CFG_INT || o->type == WW_CFG_DOUBLE ||
                         o->type == WW_CFG_DURATION || o->type == WW_CFG_SIZE)) {
        char lo[40], hi[40];
        fmt_bound(o, o->min, lo, sizeof lo);
        fmt_bound(o, o->max, hi, sizeof hi);
        snprintf(t->range, sizeof t->range, "%s..%s", lo, hi);
    }
    if (o->type == WW_CFG_TABLE && o->max_items) {
        snprintf(t->items, sizeof t->items, "%zu..%zu items", o->min_items, o->max_items);
    } else if (o->type == WW_CFG_TABLE && o->min_items) {
        snprintf(t->items, sizeof t->items, "at least %zu items", o->min_items);
    }
    if (o->flag && o->type == WW_CFG_BOOL) {
        snprintf(t->flag, sizeof t->flag, "--%s or --no-%s", o->flag, o->flag);
    } else if (o->flag) {
        snprintf(t->flag, sizeof t->flag, "--%s VALUE", o->flag);
    }
}

/* The parenthesis of a row in --help and the man page, malloc'd (NULL when out of memory):
 * "duration, default 1s, range 10ms..1h", "one of: a, b; default a". */
static char *s_row_summary(const ww_cfg_opt_t *o, const s_row_text_t *t)
{
    if (o->type == WW_CFG_ENUM) {
        return str_printf("one of: %s; default %s", t->choices, t->def);
    }
    return str_printf("%s, default %s%s%s%s%s", t->type, t->def, t->range[0] ? ", range " : "",
                      t->range, t->items[0] ? ", " : "", t->items);
}

static void usage_rows(const ww_cfg_schema_t *s, const ww_cfg_opt_t *rows, size_t n, int indent,
                       bool top, FILE *out)
{
    for (size_t i = 0; i < n; i++) {
        const ww_cfg_opt_t *o = &rows[i];
        s_row_text_t t;
        s_row_text(o, &t);
        char *sum = s_row_summary(o, &t);
        fprintf(out, "%*s%s (%s)\n", indent, "", o->name, sum ? sum : "?");
        free(sum);
        if (top) {
            char *env = env_name(s, o->name);
            fprintf(out, "%*s", indent + 4, "");
            if (t.flag[0]) {
                fprintf(out, "flag %s, ", t.flag);
            }
            fprintf(out, "env %s\n", env ? env : "?");
            free(env);
        }
        if (o->help) {
            fprintf(out, "%*s%s\n", indent + 4, "", o->help);
        }
        if (o->type == WW_CFG_TABLE && o->sub) {
            fprintf(out, "%*seach item has:\n", indent + 4, "");
            usage_rows(s, o->sub, o->n_sub, indent + 6, false, out);
        }
    }
}

void ww_cfg_usage(const ww_cfg_schema_t *s, FILE *out)
{
    const char *program = s->program ? s->program : "waferwatch";
    if (s->summary) {
        fprintf(out, "%s - %s\n\n", program, s->summary);
    }
    fprintf(out, "Usage: %s [--config FILE] [flags]\n\n", program);
    fputs("General flags:\n", out);
    for (size_t i = 0; i < sizeof s_general / sizeof s_general[0]; i++) {
        char sh[8] = "", f[64];
        if (s_general[i].hidden) {
            continue;
        }
        if (s_general[i].short_flag) {
            snprintf(sh, sizeof sh, "%s,", s_general[i].short_flag);
        }
        snprintf(f, sizeof f, "%s%s%s", s_general[i].flag, s_general[i].arg ? " " : "",
                 s_general[i].arg ? s_general[i].arg : "");
        fprintf(out, "  %-4s%-16s%s\n", sh, f, s_general[i].help);
    }
    fprintf(out, "\n%s\n", s_sources_text);
    usage_rows(s, s->opts, s->n_opts, 2, true, out);
}

/* --reference FORMAT: the only argument when given, so that nothing else on the line can
 * seem to matter (no file is read, nothing starts). */
int ww_cfg_reference_arg(int argc, char **argv, ww_cfg_err_t *err)
{
    static const char flag[] = "--reference";
    const size_t fl = sizeof flag - 1;
    ww_cfg_err_t scratch;
    if (!err) {
        err = &scratch;
    }
    int at = 0;
    for (int i = 1; i < argc && !at; i++) {
        if (argv[i] && strncmp(argv[i], flag, fl) == 0 &&
            (argv[i][fl] == '\0' || argv[i][fl] == '=')) {
            at = i;
        }
    }
    if (!at) {
        return 0;
    }
    const char *fmt = argv[at][fl] == '=' ? argv[at] + fl + 1 : at + 1 < argc ? argv[at + 1] : NULL;
    int used = argv[at][fl] == '=' || !fmt ? 1 : 2;
    if (at != 1 || argc != 1 + used) {
        set_err(err, "flag --reference: takes no other argument (--reference markdown|man)");
        return -EINVAL;
    }
    if (fmt && strcmp(fmt, "markdown") == 0) {
        return WW_CFG_REF_MARKDOWN;
    }
    if (fmt && strcmp(fmt, "man") == 0) {
        return WW_CFG_REF_MAN;
    }
    set_err(err, "flag --reference: %s (use markdown or man)",
            fmt ? "unknown format" : "missing value");
    return -EINVAL;
}

/* The next paragraph of *text (paragraphs are separated by a blank line; a text's last
 * newline ends it and is no space), malloc'd, advancing *text past it; NULL at the end
 * (or out of memory: the rest is left out of a reference page, never half-written). */
static char *s_next_paragraph(const char **text)
{
    const char *t = *text;
    if (!t || !*t) {
        return NULL;
    }
    const char *end = strstr(t, "\n\n");
    size_t len = end ? (size_t)(end - t) : strlen(t);
    *text = end ? end + 2 : t + len;
    while (len && t[len - 1] == '\n') {
        len--;
    }
    return strndup(t, len);
}

/* -- Markdown -- */

/* Paragraphs separated by a blank line, each ended by one. */
static void s_md_paragraphs(FILE *out, const char *text)
{
    char *para;
    while ((para = s_next_paragraph(&text)) != NULL) {
        ww_md_text(out, para);
        fputs("\n\n", out);
        free(para);
    }
}

/* A two-column table of items (ended by a NULL term), with the term as code. */
static void s_md_items(FILE *out, const char *head, const char *head2, const ww_cfg_item_t *items)
{
    fprintf(out, "| %s | %s |\n|---|---|\n", head, head2);
    for (; items && items->term; items++) {
        fputs("| ", out);
        ww_md_code(out, items->term);
        fputs(" | ", out);
        ww_md_text(out, items->text ? items->text : "");
        fputs(" |\n", out);
    }
    fputc('\n', out);
}

/* The element rows of a table setting, as one Markdown table (nested tables flattened as
 * "outer[].inner"). */
static void s_md_sub_rows(FILE *out, const ww_cfg_opt_t *rows, size_t n, const char *prefix,
                          int depth)
{
    for (size_t i = 0; i < n && depth < CFG_MAX_DEPTH; i++) {
        const ww_cfg_opt_t *o = &rows[i];
        s_row_text_t t;
        s_row_text(o, &t);
        char *name = str_printf("%s%s", prefix, o->name);
        fputs("| ", out);
        ww_md_code(out, name ? name : o->name);
        fprintf(out, " | %s | ", t.type);
        if (strcmp(t.def, "none") == 0) {
            fputs("none", out);
        } else {
            ww_md_code(out, t.def);
        }
        fputs(" | ", out);
        if (o->type == WW_CFG_ENUM) {
            ww_md_text(out, "one of: ");
            ww_md_text(out, t.choices);
        } else if (t.range[0] || t.items[0]) {
            ww_md_text(out, t.range[0] ? t.range : t.items);
        }
        fputs(" | ", out);
        ww_md_text(out, o->help ? o->help : "");
        fputs(" |\n", out);
        if (o->type == WW_CFG_TABLE && o->sub) {
            char *inner = str_printf("%s%s[].", prefix, o->name);
            if (inner) {
                s_md_sub_rows(out, o->sub, o->n_sub, inner, depth + 1);
            }
            free(inner);
        }
        free(name);
    }
}

static void s_md_row(const ww_cfg_schema_t *s, const ww_cfg_opt_t *o, FILE *out)
{
    s_row_text_t t;
    s_row_text(o, &t);
    fputs("### ", out);
    ww_md_code(out, o->name);
    fputs("\n\n", out);
    if (o->help) {
        ww_md_text(out, o->help);
        fputs("\n\n", out);
    }
    fprintf(out, "- type: %s", t.type);
    if (o->type == WW_CFG_ENUM) {
        fputs(", one of ", out);
        for (size_t i = 0; i < s_enum_count(o); i++) {
            fputs(i ? ", " : "", out);
            ww_md_code(out, s_enum_names(o)[i]);
        }
    }
    fputs("\n- default: ", out);
    if (strcmp(t.def, "none") == 0) {
        fputs("none", out);
    } else {
        ww_md_code(out, t.def);
    }
    if (t.range[0]) {
        fputs("\n- range: ", out);
        ww_md_code(out, t.range);
    }
    if (t.items[0]) {
        fprintf(out, "\n- %s", t.items);
    }
    if (t.flag[0]) {
        fputs("\n- flag: ", out);
        ww_md_code(out, t.flag);
    }
    char *env = env_name(s, o->name);
    if (env) {
        fputs("\n- environment: ", out);
        ww_md_code(out, env);
    }
    free(env);
    fputs("\n\n", out);
    if (o->type == WW_CFG_TABLE && o->sub) {
        fputs("Each item has:\n\n| key | type | default | range | meaning |\n"
              "|---|---|---|---|---|\n",
              out);
        s_md_sub_rows(out, o->sub, o->n_sub, "", 0);
        fputc('\n', out);
    }
}

void ww_cfg_markdown(const ww_cfg_schema_t *s, const ww_cfg_page_t *page, FILE *out)
{
    static const ww_cfg_page_t none = {0};
    const char *program = s->program ? s->program : "waferwatch";
    page = page ? page : &none;
    fprintf(out,
            "<!-- Generated by `%s --reference markdown`: do not edit. Regenerate with\n"
            "     `cmake --build BUILD --target reference` (tests/docs/check_reference.sh). "
            "-->\n\n",
            program);
    fprintf(out, "# %s reference\n\n", program);
    if (s->summary) {
        fprintf(out, "%s: ", program);
        ww_md_text(out, s->summary);
        fputs(".\n\n", out);
    }
    s_md_paragraphs(out, page->description);
    fputs("## Synopsis\n\n", out);
    fprintf(out, "    %s %s\n\n", program,
            page->synopsis ? page->synopsis : "[--config FILE] [flags]");
    if (page->commands) {
        fputs("## Commands\n\n", out);
        s_md_items(out, "command", "what it does", page->commands);
    }
    if (s->n_opts) {
        fputs("## Flags\n\n| flag | meaning |\n|---|---|\n", out);
        for (size_t i = 0; i < sizeof s_general / sizeof s_general[0]; i++) {
            char f[64];
            snprintf(f, sizeof f, "%s%s%s", s_general[i].flag, s_general[i].arg ? " " : "",
                     s_general[i].arg ? s_general[i].arg : "");
            fputs("| ", out);
            if (s_general[i].short_flag) {
                ww_md_code(out, s_general[i].short_flag);
                fputs(", ", out);
            }
            ww_md_code(out, f);
            fputs(" | ", out);
            ww_md_text(out, s_general[i].help);
            fputs(s_general[i].hidden ? " (not listed by `--help`) |\n" : " |\n", out);
        }
        fputs("\nEvery setting below also has a flag when one is listed with it.\n\n"
              "## Settings\n\n",
              out);
        s_md_paragraphs(out, s_sources_text);
        for (size_t i = 0; i < s->n_opts; i++) {
            s_md_row(s, &s->opts[i], out);
        }
    }
    fputs("## Environment\n\n", out);
    if (s->n_opts && s->env_prefix) {
        fprintf(out,
                "Each setting is read from the variable `%s` followed by its key upper-cased, "
                "with `.` and `-` as `_` (listed with each setting above). A variable that "
                "starts with `%s` and names no setting is an error, with the nearest known "
                "name.\n\n",
                s->env_prefix, s->env_prefix);
    }
    if (page->environment) {
        s_md_items(out, "variable", "meaning", page->environment);
    }
    if (page->exit_status) {
        fputs("## Exit status\n\n", out);
        s_md_items(out, "status", "meaning", page->exit_status);
    }
    if (page->files) {
        fputs("## Files\n\n", out);
        s_md_items(out, "path", "what", page->files);
    }
}

/* -- man page (roff) -- */

/* Text escaped for roff: '\' and '-' (so that flags copy as ASCII), and a '.' or '\'' that
 * would start a control line. A newline is kept (roff fills the lines). */
static void s_roff_text(FILE *out, const char *text)
{
    bool bol = true;
    for (const char *p = text; p && *p; p++) {
        if (bol && (*p == '.' || *p == '\'')) {
            fputs("\\&", out);
        }
        if (*p == '\\') {
            fputs("\\e", out);
        } else if (*p == '-') {
            fputs("\\-", out);
        } else {
            fputc(*p, out);
        }
        bol = *p == '\n';
    }
}

/* Paragraphs separated by a blank line, each after a .PP. */
static void s_roff_paragraphs(FILE *out, const char *text)
{
    char *para;
    while ((para = s_next_paragraph(&text)) != NULL) {
        fputs(".PP\n", out);
        s_roff_text(out, para);
        fputc('\n', out);
        free(para);
    }
}

/* .TP lists: the term bold. */
static void s_roff_items(FILE *out, const ww_cfg_item_t *items)
{
    for (; items && items->term; items++) {
        fputs(".TP\n\\fB", out);
        s_roff_text(out, items->term);
        fputs("\\fR\n", out);
        s_roff_text(out, items->text ? items->text : "");
        fputc('\n', out);
    }
}

/* The rows as --help lists them: name (summary), flag and env, help, table elements. */
static void s_roff_rows(const ww_cfg_schema_t *s, const ww_cfg_opt_t *rows, size_t n, bool top,
                        int depth, FILE *out)
{
    for (size_t i = 0; i < n && depth < CFG_MAX_DEPTH; i++) {
        const ww_cfg_opt_t *o = &rows[i];
        s_row_text_t t;
        s_row_text(o, &t);
        char *sum = s_row_summary(o, &t);
        fputs(".TP\n\\fB", out);
        s_roff_text(out, o->name);
        fputs("\\fR (", out);
        s_roff_text(out, sum ? sum : "?");
        fputs(")\n", out);
        free(sum);
        if (top) {
            char *env = env_name(s, o->name);
            if (t.flag[0]) {
                fputs("flag \\fB", out);
                s_roff_text(out, t.flag);
                fputs("\\fR, ", out);
            }
            fputs("env \\fB", out);
            s_roff_text(out, env ? env : "?");
            fputs("\\fR\n.br\n", out);
            free(env);
        }
        s_roff_text(out, o->help ? o->help : "");
        fputc('\n', out);
        if (o->type == WW_CFG_TABLE && o->sub) {
            fputs(".br\nEach item has:\n.RS\n", out);
            s_roff_rows(s, o->sub, o->n_sub, false, depth + 1, out);
            fputs(".RE\n", out);
        }
    }
}

/* OPTIONS: the general flags, --reference included. */
static void s_roff_general(FILE *out)
{
    for (size_t i = 0; i < sizeof s_general / sizeof s_general[0]; i++) {
        fputs(".TP\n", out);
        if (s_general[i].short_flag) {
            fputs("\\fB", out);
            s_roff_text(out, s_general[i].short_flag);
            fputs("\\fR, ", out);
        }
        fputs("\\fB", out);
        s_roff_text(out, s_general[i].flag);
        fputs("\\fR", out);
        if (s_general[i].arg) {
            fputs(" \\fI", out);
            s_roff_text(out, s_general[i].arg);
            fputs("\\fR", out);
        }
        fputc('\n', out);
        s_roff_text(out, s_general[i].help);
        s_roff_text(out, s_general[i].hidden ? " (not listed by --help)\n" : "\n");
    }
}

void ww_cfg_man(const ww_cfg_schema_t *s, const ww_cfg_page_t *page, FILE *out)
{
    static const ww_cfg_page_t none = {0};
    const char *program = s->program ? s->program : "waferwatch";
    page = page ? page : &none;
    fprintf(out,
            ".\\\" Generated by `%s --reference man`: do not edit. Regenerate with\n"
            ".\\\" `cmake --build BUILD --target reference` (tests/docs/check_reference.sh).\n",
            program);
    fputs(".TH \"", out);
    for (const char *p = program; *p; p++) {
        if (*p == '-') {
            fputs("\\-", out);
        } else {
            fputc(toupper((unsigned char)*p), out);
        }
    }
    /* Left-aligned, no hyphenation: keys, flags and paths stay whole. */
    fputs("\" 1 \"\" \"waferwatch\" \"waferwatch manual\"\n.ad l\n.nh\n.SH NAME\n", out);
    s_roff_text(out, program);
    fputs(" \\- ", out);
    s_roff_text(out, s->summary ? s->summary : "");
    fputs("\n.SH SYNOPSIS\n.B ", out);
    s_roff_text(out, program);
    fputc('\n', out);
    s_roff_text(out, page->synopsis ? page->synopsis : "[--config FILE] [flags]");
    fputs("\n.SH DESCRIPTION\n", out);
    s_roff_paragraphs(out, page->description);
    if (page->commands) {
        fputs(".SH COMMANDS\n", out);
        s_roff_items(out, page->commands);
    }
    if (s->n_opts) {
        fputs(".SH OPTIONS\n", out);
        s_roff_general(out);
        fputs(".PP\nEvery setting below also has a flag when one is listed with it.\n"
              ".SH SETTINGS\n",
              out);
        s_roff_text(out, s_sources_text);
        s_roff_rows(s, s->opts, s->n_opts, true, 0, out);
    }
    bool settings_env = s->n_opts && s->env_prefix;
    if (settings_env || page->environment) {
        fputs(".SH ENVIRONMENT\n", out);
    }
    if (settings_env) {
        fputs("Each setting is read from the variable \\fB", out);
        s_roff_text(out, s->env_prefix);
        fputs("\\fR followed by its key upper-cased, with . and \\- as _ (listed with each "
              "setting under SETTINGS). A variable that starts with \\fB",
              out);
        s_roff_text(out, s->env_prefix);
        fputs("\\fR and names no setting is an error, with the nearest known name.\n", out);
    }
    s_roff_items(out, page->environment);
    if (page->exit_status) {
        fputs(".SH EXIT STATUS\n", out);
        s_roff_items(out, page->exit_status);
    }
    if (page->files) {
        fputs(".SH FILES\n", out);
        s_roff_items(out, page->files);
    }
    if (page->see_also) {
        fputs(".SH SEE ALSO\n", out);
        s_roff_text(out, page->see_also);
        fputc('\n', out);
    }
}

/* ---- printing ------------------------------------------------------------------------- */

/* Decodes one UTF-8 sequence; 0 when invalid (overlong, surrogate, truncated). */
static size_t utf8_decode(const unsigned char *p, uint32_t *cp)
{
    size_t n;
    uint32_t c;
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    } else if ((p[0] & 0xE0) == 0xC0) {
        n = 2;
        c = p[0] & 0x1F;
    } else if ((p[0] & 0xF0) == 0xE0) {
        n = 3;
        c = p[0] & 0x0F;
    } else if ((p[0] & 0xF8) == 0xF0) {
        n = 4;
        c = p[0] & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return 0; /* also stops at the terminating NUL */
        }
        c = (c << 6) | (p[i] & 0x3F);
    }
    if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) || (n == 4 && c < 0x10000) || c > 0x10FFFF ||
        (c >= 0xD800 && c <= 0xDFFF)) {
        return 0;
    }
    *cp = c;
    return n;
}

/* A double-quoted YAML scalar. Characters libyaml refuses to read raw (controls, C1,
 * BOM, U+FFFE/F) are escaped. A byte that is not UTF-8 cannot be represented in YAML at
 * all; it is written as \xNN (which reads back as U+00NN) so the output stays loadable. */
static void print_quoted(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', out);
    while (*p) {
        uint32_t cp;
        size_t n = utf8_decode(p, &cp);
        if (n == 0) {
            fprintf(out, "\\x%02x", *p);
            p++;
            continue;
        }
        if (cp == '"') {
            fputs("\\\"", out);
        } else if (cp == '\\') {
            fputs("\\\\", out);
        } else if (cp == '\n') {
            fputs("\\n", out);
        } else if (cp == '\t') {
            fputs("\\t", out);
        } else if (cp == '\r') {
            fputs("\\r", out);
        } else if (cp < 0x20 || cp == 0x7F) {
            fprintf(out, "\\x%02x", (unsigned)cp);
        } else if ((cp >= 0x80 && cp <= 0x9F) || cp == 0xFEFF || cp == 0xFFFE || cp == 0xFFFF) {
            fprintf(out, "\\u%04x", (unsigned)cp);
        } else {
            fwrite(p, 1, n, out);
        }
        p += n;
    }
    fputc('"', out);
}

/* An enum's name as it reads best: plain when YAML reads it back as the same text (a word
 * of letters, digits, '_', '-' and '.', and not a YAML null), quoted otherwise. */
static void s_print_name(FILE *out, const char *name)
{
    bool plain = isalpha((unsigned char)name[0]) && strcmp(name, "null") != 0 &&
                 strcmp(name, "Null") != 0 && strcmp(name, "NULL") != 0;
    for (const char *p = name; plain && *p; p++) {
        plain = isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.';
    }
    if (plain) {
        fputs(name, out);
    } else {
        print_quoted(out, name);
    }
}

/* Indentation, or "- " in its last two columns for the first key of a sequence item. */
static void print_indent(FILE *out, int indent, bool *dash)
{
    if (*dash) {
        fprintf(out, "%*s- ", indent - 2, "");
        *dash = false;
    } else {
        fprintf(out, "%*s", indent, "");
    }
}

static void print_level(const ww_cfg_opt_t *rows, size_t n, const void *base, const char *prefix,
                        int indent, bool *dash, FILE *out, int depth);

static void print_value(const ww_cfg_opt_t *o, const void *field, int indent, FILE *out, int depth)
{
    char buf[40];
    switch (o->type) {
    case WW_CFG_STRING: {
        const char *v = *(char *const *)field;
        if (v) {
            fputc(' ', out);
            print_quoted(out, v);
            fputc('\n', out);
        } else {
            fputs(" ~\n", out);
        }
        break;
    }
    case WW_CFG_INT:
        fprintf(out, " %" PRId64 "\n", *(const int64_t *)field);
        break;
    case WW_CFG_DOUBLE:
        fmt_double(*(const double *)field, buf, sizeof buf);
        fprintf(out, " %s\n", buf);
        break;
    case WW_CFG_BOOL:
        fprintf(out, " %s\n", *(const bool *)field ? "true" : "false");
        break;
    case WW_CFG_DURATION:
        fmt_duration(*(const int64_t *)field, buf, sizeof buf);
        fprintf(out, " %s\n", buf);
        break;
    case WW_CFG_SIZE:
        s_fmt_size(*(const int64_t *)field, buf, sizeof buf);
        fprintf(out, " %s\n", buf);
        break;
    case WW_CFG_ENUM: {
        int v = *(const int *)field;
        if (v >= 0 && (size_t)v < s_enum_count(o)) {
            fputc(' ', out);
            s_print_name(out, s_enum_names(o)[v]);
            fputc('\n', out);
        } else {
            fputs(" ~\n", out); /* not a name: a program's bug; loading it back is refused */
        }
        break;
    }
    case WW_CFG_STRLIST: {
        const ww_cfg_strlist_t *l = field;
        fputs(" [", out);
        for (size_t i = 0; i < l->n; i++) {
            if (i) {
                fputs(", ", out);
            }
            print_quoted(out, l->v[i]);
        }
        fputs("]\n", out);
        break;
    }
    case WW_CFG_TABLE: {
        const ww_cfg_table_t *t = field;
        if (t->n == 0 || !t->items || !o->elem_size) {
            fputs(" []\n", out);
            break;
        }
        fputc('\n', out);
        for (size_t i = 0; i < t->n; i++) {
            const void *elem = (const char *)t->items + i * o->elem_size;
            if (o->n_sub == 0 || !o->sub || depth >= CFG_MAX_DEPTH) {
                fprintf(out, "%*s- {}\n", indent + 2, "");
                continue;
            }
            bool dash = true;
            print_level(o->sub, o->n_sub, elem, "", indent + 4, &dash, out, depth + 1);
        }
        break;
    }
    }
}

/* Writes the rows below `prefix` as a mapping, grouping rows that share a component even
 * when the schema lists them apart (two "sim:" keys would be a duplicate-key error). */
static void print_level(const ww_cfg_opt_t *rows, size_t n, const void *base, const char *prefix,
                        int indent, bool *dash, FILE *out, int depth)
{
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < n; i++) {
        const char *name = rows[i].name;
        if (plen && (strncmp(name, prefix, plen) != 0 || name[plen] != '.')) {
            continue;
        }
        const char *rest = plen ? name + plen + 1 : name;
        size_t clen = strcspn(rest, ".");
        size_t upto = (size_t)(rest - name) + clen; /* name[0, upto) is this component's path */
        bool done = false;
        for (size_t j = 0; j < i && !done; j++) {
            done = strncmp(rows[j].name, name, upto) == 0 &&
                   (rows[j].name[upto] == '\0' || rows[j].name[upto] == '.');
        }
        if (done) {
            continue;
        }
        print_indent(out, indent, dash);
        fprintf(out, "%.*s:", (int)clen, rest);
        if (rest[clen] == '\0') {
            print_value(&rows[i], (const char *)base + rows[i].offset, indent, out, depth);
            continue;
        }
        fputc('\n', out);
        char *child = strndup(name, upto);
        if (child && depth < CFG_MAX_DEPTH) {
            print_level(rows, n, base, child, indent + 2, dash, out, depth + 1);
        }
        free(child);
    }
}

void ww_cfg_print(const ww_cfg_schema_t *s, const void *cfg, FILE *out)
{
    bool dash = false;
    fprintf(out, "# %s effective configuration\n", s->program ? s->program : "waferwatch");
    print_level(s->opts, s->n_opts, cfg, "", 0, &dash, out, 0);
}

void ww_cfg_free(const ww_cfg_schema_t *s, void *cfg)
{
    if (s && cfg) {
        free_rows(s->opts, s->n_opts, cfg);
    }
}
