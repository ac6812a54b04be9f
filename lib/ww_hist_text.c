/* ww_hist_text: see ww_hist_text.h.
 *
 * Output is built with snprintf into the caller's buffer, counting what did not fit, so
 * one pass gives both the text and the length it needs. A double is printed with the
 * fewest significant digits (1 .. 17) that strtod reads back to the same double: 17 always
 * do, and PostgreSQL's float8 output (shortest round trip) gives the same digits (and, as
 * it, writes an exponent only outside 1e-4 .. 1e15).
 *
 * The parser is a hand-written recursive descent over the one object this format has: a
 * general JSON reader would accept much that is refused here (nesting, strings as values,
 * duplicate keys) and give worse messages. Numbers follow the JSON grammar exactly; the
 * integers are read digit by digit with overflow checks (never through a double), the
 * doubles by strtod over the span the grammar accepted. Buckets are added to the
 * histogram as they are read (ww_hist_reserve grows it; no other allocation).
 */
#include "ww_hist_text.h"

#include "ww_hist_pack.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- output ------------------------------------------------------------------------ */

typedef struct {
    char *out;
    size_t cap, len;
} s_out_t;

static void s_put(s_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_put(s_out_t *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->len < o->cap ? o->cap - o->len : 0;
    int n = vsnprintf(room ? o->out + o->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) {
        o->len += (size_t)n;
    }
}

/* The shortest %.Ng of a finite d that reads back as d. */
static void s_put_double(s_out_t *o, double d)
{
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) {
            break;
        }
    }
    /* %g writes 5000 as 5e+03; PostgreSQL writes exponents from -4 to 14 out in full. Such
     * a value, with no more digits than its exponent, is an integer: %.0f is exact. */
    const char *e = strchr(buf, 'e');
    if (e) {
        int x = atoi(e + 1);
        if (x >= 0 && x < 15) {
            snprintf(buf, sizeof buf, "%.0f", d);
        }
    }
    s_put(o, "%s", buf);
}

static void s_put_opt_double(s_out_t *o, double d)
{
    if (isnan(d)) {
        s_put(o, "null");
    } else {
        s_put_double(o, d);
    }
}

long ww_hist_text_format(const ww_hist_t *h, char *out, size_t cap)
{
    if (ww_hist_check_form(h) != 0 || h->count > INT64_MAX) {
        return -EINVAL;
    }
    s_out_t o = {out, cap, 0};
    if (cap > 0) {
        out[0] = '\0';
    }
    s_put(&o, "{\"scale\":%d,\"count\":%" PRIu64 ",\"sum\":", (int)h->scale, h->count);
    s_put_double(&o, h->sum);
    s_put(&o, ",\"min\":");
    s_put_opt_double(&o, h->min);
    s_put(&o, ",\"max\":");
    s_put_opt_double(&o, h->max);
    s_put(&o,
          ",\"zero\":%" PRIu64 ",\"underflow\":%" PRIu64 ",\"overflow\":%" PRIu64 ",\"buckets\":[",
          h->zero_count, h->underflow, h->overflow);
    bool any = false;
    for (uint32_t j = 0; j < h->len; j++) {
        if (h->counts[j] == 0) {
            continue;
        }
        s_put(&o, "%s[%" PRId32 ",%" PRIu64 "]", any ? "," : "", h->offset + (int32_t)j,
              h->counts[j]);
        any = true;
    }
    s_put(&o, "]}");
    return (long)o.len;
}

/* ---- input ------------------------------------------------------------------------- */

typedef struct {
    const char *s;
    size_t pos;
    char *err;
    size_t err_cap;
} s_in_t;

static int s_fail(s_in_t *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int s_fail(s_in_t *in, const char *fmt, ...)
{
    if (in->err && in->err_cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(in->err, in->err_cap, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static void s_ws(s_in_t *in)
{
    while (in->s[in->pos] == ' ' || in->s[in->pos] == '\t' || in->s[in->pos] == '\n' ||
           in->s[in->pos] == '\r') {
        in->pos++;
    }
}

/* What is at the current position, for messages. */
static const char *s_what(const s_in_t *in)
{
    return in->s[in->pos] ? "" : " (end of text)";
}

static int s_expect(s_in_t *in, char c, const char *where)
{
    s_ws(in);
    if (in->s[in->pos] != c) {
        return s_fail(in, "%s: expected '%c' at byte %zu%s", where, c, in->pos, s_what(in));
    }
    in->pos++;
    return 0;
}

/* A JSON number's span at the current position: its length, and whether it has a fraction
 * or an exponent. 0 when there is no number there. */
static size_t s_number_span(const s_in_t *in, bool *real)
{
    const char *p = in->s + in->pos, *q = p;
    *real = false;
    if (*q == '-') {
        q++;
    }
    if (*q == '0') {
        q++;
    } else if (*q >= '1' && *q <= '9') {
        while (*q >= '0' && *q <= '9') {
            q++;
        }
    } else {
        return 0;
    }
    if (*q == '.') {
        q++;
        if (!(*q >= '0' && *q <= '9')) {
            return 0;
        }
        while (*q >= '0' && *q <= '9') {
            q++;
        }
        *real = true;
    }
    if (*q == 'e' || *q == 'E') {
        q++;
        if (*q == '+' || *q == '-') {
            q++;
        }
        if (!(*q >= '0' && *q <= '9')) {
            return 0;
        }
        while (*q >= '0' && *q <= '9') {
            q++;
        }
        *real = true;
    }
    return (size_t)(q - p);
}

/* A JSON integer in [lo, hi] (hi <= INT64_MAX). */
static int s_int(s_in_t *in, const char *what, int64_t lo, int64_t hi, int64_t *v)
{
    s_ws(in);
    bool real;
    size_t start = in->pos, n = s_number_span(in, &real);
    if (n == 0) {
        return s_fail(in, "%s: expected an integer at byte %zu%s", what, start, s_what(in));
    }
    if (real) {
        return s_fail(in, "%s: expected an integer at byte %zu, not a fraction or exponent: %.*s",
                      what, start, (int)n, in->s + start);
    }
    const char *p = in->s + start;
    bool neg = *p == '-';
    uint64_t mag = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (p += neg; p < in->s + start + n; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (mag > (limit - d) / 10) {
            return s_fail(in, "%s: %.*s out of range [%" PRId64 ", %" PRId64 "]", what, (int)n,
                          in->s + start, lo, hi);
        }
        mag = mag * 10 + d;
    }
    int64_t r = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
    if (r < lo || r > hi) {
        return s_fail(in, "%s: %.*s out of range [%" PRId64 ", %" PRId64 "]", what, (int)n,
                      in->s + start, lo, hi);
    }
    in->pos += n;
    *v = r;
    return 0;
}

/* A finite JSON number, or null (NaN) when nullable. */
static int s_double(s_in_t *in, const char *what, bool nullable, double *v)
{
    s_ws(in);
    size_t start = in->pos;
    if (nullable && strncmp(in->s + start, "null", 4) == 0) {
        in->pos += 4;
        *v = NAN;
        return 0;
    }
    bool real;
    size_t n = s_number_span(in, &real);
    if (n == 0) {
        return s_fail(in, "%s: expected a number%s at byte %zu%s", what, nullable ? " or null" : "",
                      start, s_what(in));
    }
    char buf[400];
    if (n >= sizeof buf) {
        return s_fail(in, "%s: number at byte %zu longer than %zu characters", what, start,
                      sizeof buf - 1);
    }
    memcpy(buf, in->s + start, n);
    buf[n] = '\0';
    double d = strtod(buf, NULL);
    if (!isfinite(d)) {
        return s_fail(in, "%s: %s is not a finite double", what, buf);
    }
    in->pos += n;
    *v = d;
    return 0;
}

/* "buckets": [[index, count], ...], added into h (empty, at WW_HIST_MAX_SCALE while it is
 * read: "scale" may come later, and the range of the finest scale holds every other's) as
 * read. */
static int s_buckets(s_in_t *in, ww_hist_t *h, uint64_t *total)
{
    int32_t imin = WW_HIST_MIN_LOG2 * (1 << WW_HIST_MAX_SCALE);
    int32_t imax = WW_HIST_MAX_LOG2 * (1 << WW_HIST_MAX_SCALE) - 1;
    int rc = s_expect(in, '[', "\"buckets\"");
    if (rc != 0) {
        return rc;
    }
    s_ws(in);
    if (in->s[in->pos] == ']') {
        in->pos++;
        return 0;
    }
    int64_t prev = INT64_MIN;
    char what[64];
    for (size_t k = 0;; k++) {
        snprintf(what, sizeof what, "\"buckets\"[%zu]", k);
        int64_t idx, cnt;
        if ((rc = s_expect(in, '[', what)) != 0 || (rc = s_int(in, what, imin, imax, &idx)) != 0 ||
            (rc = s_expect(in, ',', what)) != 0 ||
            (rc = s_int(in, what, INT64_MIN, INT64_MAX, &cnt)) != 0 ||
            (rc = s_expect(in, ']', what)) != 0) {
            return rc;
        }
        if (idx <= prev) {
            return s_fail(in, "%s: index %" PRId64 " not above the previous %" PRId64, what, idx,
                          prev);
        }
        if (cnt < 1) {
            return s_fail(in, "%s: count %" PRId64 " below 1 (list only non-empty buckets)", what,
                          cnt);
        }
        if (*total + (uint64_t)cnt > (uint64_t)INT64_MAX) {
            return s_fail(in, "%s: bucket counts add up past INT64_MAX", what);
        }
        *total += (uint64_t)cnt;
        int32_t first = h->len ? h->offset : (int32_t)idx;
        if (ww_hist_reserve(h, first, (int32_t)idx) != 0) {
            return -ENOMEM;
        }
        h->counts[idx - h->offset] = (uint64_t)cnt;
        prev = idx;
        s_ws(in);
        if (in->s[in->pos] == ',') {
            in->pos++;
            continue;
        }
        if (in->s[in->pos] == ']') {
            in->pos++;
            return 0;
        }
        return s_fail(in, "\"buckets\": expected ',' or ']' at byte %zu%s", in->pos, s_what(in));
    }
}

enum { K_SCALE, K_COUNT, K_SUM, K_MIN, K_MAX, K_ZERO, K_UNDER, K_OVER, K_BUCKETS, K_N };
static const char *const s_keys[K_N] = {"scale", "count",     "sum",      "min",    "max",
                                        "zero",  "underflow", "overflow", "buckets"};

/* One "key": value pair into h. */
static int s_member(s_in_t *in, ww_hist_t *h, bool seen[K_N], int *scale, uint64_t *total)
{
    s_ws(in);
    size_t start = in->pos;
    if (in->s[start] != '"') {
        return s_fail(in, "expected a key (a string) at byte %zu%s", start, s_what(in));
    }
    const char *name = in->s + start + 1;
    const char *end = strchr(name, '"');
    if (!end) {
        return s_fail(in, "key at byte %zu: no closing '\"'", start);
    }
    size_t len = (size_t)(end - name);
    int key = -1;
    for (int k = 0; k < K_N; k++) {
        if (strlen(s_keys[k]) == len && memcmp(s_keys[k], name, len) == 0) {
            key = k;
        }
    }
    if (key < 0) {
        return s_fail(in,
                      "unknown key \"%.*s\" at byte %zu (keys: scale, count, sum, min, max, "
                      "zero, underflow, overflow, buckets)",
                      (int)(len < 64 ? len : 64), name, start);
    }
    if (seen[key]) {
        return s_fail(in, "key \"%s\" repeated at byte %zu", s_keys[key], start);
    }
    seen[key] = true;
    in->pos = (size_t)(end - in->s) + 1;
    char what[24];
    snprintf(what, sizeof what, "\"%s\"", s_keys[key]);
    int rc = s_expect(in, ':', what);
    if (rc != 0) {
        return rc;
    }
    int64_t v = 0;
    switch (key) {
    case K_SCALE:
        if ((rc = s_int(in, what, 0, WW_HIST_MAX_SCALE, &v)) != 0) {
            return rc;
        }
        *scale = (int)v;
        return 0;
    case K_COUNT:
    case K_ZERO:
    case K_UNDER:
    case K_OVER:
        if ((rc = s_int(in, what, 0, INT64_MAX, &v)) != 0) {
            return rc;
        }
        *(key == K_COUNT   ? &h->count
          : key == K_ZERO  ? &h->zero_count
          : key == K_UNDER ? &h->underflow
                           : &h->overflow) = (uint64_t)v;
        return 0;
    case K_SUM:
        return s_double(in, what, false, &h->sum);
    case K_MIN:
        return s_double(in, what, true, &h->min);
    case K_MAX:
        return s_double(in, what, true, &h->max);
    default:
        return s_buckets(in, h, total);
    }
}

/* The checks of a decoded packed histogram (ww_hist_pack.h), with messages. */
static int s_validate(s_in_t *in, const ww_hist_t *h, uint64_t total)
{
    uint64_t parts; /* each <= INT64_MAX, but three of them can pass 2^64 */
    if (__builtin_add_overflow(h->zero_count, h->underflow, &parts) ||
        __builtin_add_overflow(parts, h->overflow, &parts)) {
        return s_fail(in, "\"zero\" + \"underflow\" + \"overflow\" pass 2^64");
    }
    if (parts > h->count || h->count - parts != total) {
        return s_fail(in,
                      "\"count\" %" PRIu64 " is not zero + underflow + overflow + the bucket "
                      "counts (%" PRIu64 " + %" PRIu64 ")",
                      h->count, parts, total);
    }
    if (isnan(h->min) != isnan(h->max)) {
        return s_fail(in, "\"min\" and \"max\" must both be numbers or both null");
    }
    if (isnan(h->min) && h->sum != 0) {
        return s_fail(in, "\"sum\" not 0 with no finite value (min/max null)");
    }
    if (!isnan(h->min) && h->count == 0) {
        return s_fail(in, "\"min\"/\"max\" given for an empty histogram");
    }
    if (h->min > h->max) {
        return s_fail(in, "\"min\" above \"max\"");
    }
    if (ww_hist_check_form(h) != 0) {
        return s_fail(in, "\"min\"/\"max\" outside what the buckets and counters allow");
    }
    return 0;
}

int ww_hist_text_parse(const char *s, ww_hist_t *h, char *err, size_t err_cap)
{
    s_in_t in = {s, 0, err, err_cap};
    if (err && err_cap > 0) {
        err[0] = '\0';
    }
    ww_hist_clear(h);
    h->scale = WW_HIST_MAX_SCALE;
    bool seen[K_N] = {false};
    int scale = 0;
    uint64_t total = 0;
    int rc = s_expect(&in, '{', "histogram");
    s_ws(&in);
    if (rc == 0 && in.s[in.pos] == '}') {
        rc = s_fail(&in, "empty object: \"scale\", \"count\" and \"buckets\" are required");
    }
    while (rc == 0) {
        if ((rc = s_member(&in, h, seen, &scale, &total)) != 0) {
            break;
        }
        s_ws(&in);
        if (in.s[in.pos] == ',') {
            in.pos++;
            continue;
        }
        if (in.s[in.pos] != '}') {
            rc = s_fail(&in, "expected ',' or '}' at byte %zu%s", in.pos, s_what(&in));
            break;
        }
        in.pos++;
        s_ws(&in);
        if (in.s[in.pos] != '\0') {
            rc = s_fail(&in, "text after the object at byte %zu", in.pos);
        }
        break;
    }
    if (rc == 0) {
        for (int k = 0; k < K_N; k++) {
            if (!seen[k] && (k == K_SCALE || k == K_COUNT || k == K_BUCKETS)) {
                rc = s_fail(&in, "missing \"%s\"", s_keys[k]);
                break;
            }
        }
    }
    if (rc == 0 && h->len > 0) {
        int32_t lo = h->offset, hi = h->offset + (int32_t)h->len - 1;
        int32_t imin = WW_HIST_MIN_LOG2 * (1 << scale), imax = WW_HIST_MAX_LOG2 * (1 << scale) - 1;
        if (lo < imin || hi > imax) {
            rc = s_fail(&in,
                        "\"buckets\": index %" PRId32 " out of range [%" PRId32 ", %" PRId32
                        "] at scale %d",
                        lo < imin ? lo : hi, imin, imax, scale);
        }
    }
    h->scale = scale;
    if (rc == 0) {
        rc = s_validate(&in, h, total);
    }
    if (rc != 0) {
        if (rc == -ENOMEM && err && err_cap > 0) {
            snprintf(err, err_cap, "out of memory");
        }
        ww_hist_clear(h);
    }
    return rc;
}
