/* ww_otlp_metrics: see ww_otlp_metrics.h. */
#include "ww_otlp_metrics.h"

#include "otlp/otlp_metrics.pb-c.h"
#include "ww_otlp_pb.h"
#include "ww_reading.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Ww__Otlp__V1__KeyValue s_kv_t;
typedef Ww__Otlp__V1__ExponentialHistogramDataPoint s_exp_t;

/* OpenTelemetry's scales: 20 is the finest its SDKs produce; below 0 a bucket spans
 * several octaves, which our range's edges (2^-20, 2^12) would cut. */
#define S_MAX_IN_SCALE 20
/* A point holds at most this many values: far past any inference server's (2^40 is a
 * million requests a second for twelve days), and sums of them never wrap. */
#define S_MAX_POINT_COUNT (UINT64_C(1) << 40)
/* A cumulative point that began before its stream's latest start is not a restart: two
 * exporters share one identity (their resources differ in nothing), and taking each
 * one's points as restarts would count them over and over. */
#define S_OLDER_START                                                                              \
    "a cumulative point that began before its stream's last start (two exporters with one "        \
    "identity? give each a service.instance.id)"
/* Token sums are doubles: whole numbers are exact up to 2^53. */
#define S_MAX_TOKENS 9007199254740992.0

/* One cumulative stream: its key, and the point it last took. */
typedef struct {
    char *key; /* NULL: a free slot */
    size_t key_len;
    uint64_t hash;
    int64_t start_ns, time_ns;
    ww_hist_t prev;  /* latency metrics: the last cumulative histogram (at <= conf scale) */
    double prev_sum; /* token usage: the last cumulative sum */
} s_stream_t;

struct ww_otlp_metrics {
    ww_otlp_metrics_conf_t conf;
    int64_t since_ns;
    s_stream_t *tab; /* open addressing, cap a power of two >= 2 * max_streams */
    size_t cap, n;
};

/* What one metric is to us. */
typedef enum { S_OTHER, S_TTFT, S_TPOT, S_E2E, S_TOKENS } s_metric_t;

typedef struct {
    ww_otlp_metrics_t *self;
    ww_otlp_point_fn fn;
    void *arg;
    ww_otlp_metrics_counts_t *c;
    const Ww__Otlp__V1__Resource *resource;
    const Ww__Otlp__V1__InstrumentationScope *scope;
    const ProtobufCBinaryData *name;
    s_metric_t what;
    int temporality;
    int64_t now_ns; /* the time of the point being read */
    bool unit_bad;  /* a latency metric whose unit is set and is not "s" */
    bool oom;
} s_ctx_t;

/* The first reason of an export's refusals, kept in c->why. */
#define s_why(c, ...) ww_otlp_pb_why((c)->why, sizeof(c)->why, __VA_ARGS__)

/* Refuses the point being read, with the metric's name in front of the reason. */
static void s_refuse(s_ctx_t *x, const char *reason)
{
    x->c->refused++;
    s_why(x->c, "%.*s: %s", (int)(x->name->len > 64 ? 64 : x->name->len),
          (const char *)x->name->data, reason);
}

static bool s_named(const ProtobufCBinaryData *name, const char *want)
{
    size_t n = strlen(want);
    return n > 0 && name->len == n && memcmp(name->data, want, n) == 0;
}

/* --- Streams ---------------------------------------------------------------------------- */

static uint64_t s_fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * UINT64_C(0x100000001b3);
    }
    return h;
}

/* Appends an attribute list to the key being built: each key and its typed value. */
static bool s_key_attrs(char **key, size_t *len, size_t *cap, s_kv_t *const *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char val[64];
        const void *vp = val;
        size_t vn = 0;
        const Ww__Otlp__V1__AnyValue *v = a[i]->value;
        int vc = v ? (int)v->value_case : 0;
        if (vc == WW__OTLP__V1__ANY_VALUE__VALUE_STRING_VALUE) {
            vp = v->string_value.data;
            vn = v->string_value.len;
        } else if (vc == WW__OTLP__V1__ANY_VALUE__VALUE_INT_VALUE) {
            vn = (size_t)snprintf(val, sizeof val, "i%lld", (long long)v->int_value);
        } else if (vc == WW__OTLP__V1__ANY_VALUE__VALUE_DOUBLE_VALUE) {
            vn = (size_t)snprintf(val, sizeof val, "d%.17g", v->double_value);
        } else if (vc == WW__OTLP__V1__ANY_VALUE__VALUE_BOOL_VALUE) {
            vn = (size_t)snprintf(val, sizeof val, "b%d", v->bool_value ? 1 : 0);
        } else if (vc == WW__OTLP__V1__ANY_VALUE__VALUE_BYTES_VALUE) {
            vp = v->bytes_value.data;
            vn = v->bytes_value.len;
        }
        /* (Arrays and key-value lists are not decoded: they count by their kind only.) */
        size_t need = a[i]->key.len + vn + 3;
        if (*len + need > *cap) {
            size_t c = (*cap ? *cap : 256);
            while (c < *len + need) {
                c *= 2;
            }
            char *k = realloc(*key, c);
            if (!k) {
                return false;
            }
            *key = k;
            *cap = c;
        }
        char *at = *key + *len;
        if (a[i]->key.len > 0) {
            memcpy(at, a[i]->key.data, a[i]->key.len);
        }
        at += a[i]->key.len;
        *at++ = '\x1f';
        *at++ = (char)('0' + vc % 10);
        if (vn > 0) {
            memcpy(at, vp, vn);
        }
        at += vn;
        *at++ = '\x1e';
        *len = (size_t)(at - *key);
    }
    return true;
}

/* Forgets the streams whose last point ended over WW_OTLP_METRICS_STREAM_IDLE_NS before
 * now_ns (an exporter gone: a restarted pod has a new identity), rebuilding the table.
 * Returns how many were forgotten. */
static size_t s_sweep(ww_otlp_metrics_t *self, int64_t now_ns)
{
    size_t gone = 0;
    s_stream_t *old = self->tab;
    s_stream_t *tab = calloc(self->cap, sizeof *tab);
    if (!tab) {
        return 0;
    }
    for (size_t i = 0; i < self->cap; i++) {
        s_stream_t *s = &old[i];
        if (!s->key) {
            continue;
        }
        if (s->time_ns < now_ns - WW_OTLP_METRICS_STREAM_IDLE_NS) {
            free(s->key);
            ww_hist_fini(&s->prev);
            gone++;
            continue;
        }
        size_t j = (size_t)s->hash & (self->cap - 1);
        while (tab[j].key) {
            j = (j + 1) & (self->cap - 1);
        }
        tab[j] = *s;
    }
    free(old);
    self->tab = tab;
    self->n -= gone;
    return gone;
}

/* The stream of a point: found, or a new one (zeroed but for its key); NULL when the
 * table is full (*full) or out of memory. */
static s_stream_t *s_stream(s_ctx_t *x, s_kv_t *const *attrs, size_t n_attrs, bool *is_new,
                            bool *full)
{
    ww_otlp_metrics_t *self = x->self;
    char *key = NULL;
    size_t len = 0, cap = 0;
    /* The metric's name, then its scope's name and version (as attribute keys: the value
     * part is empty), then the point's and the resource's attributes. */
    s_kv_t name_kv[3] = {WW__OTLP__V1__KEY_VALUE__INIT, WW__OTLP__V1__KEY_VALUE__INIT,
                         WW__OTLP__V1__KEY_VALUE__INIT};
    name_kv[0].key = *x->name;
    if (x->scope) {
        name_kv[1].key = x->scope->name;
        name_kv[2].key = x->scope->version;
    }
    s_kv_t *name_list[] = {&name_kv[0], &name_kv[1], &name_kv[2]};
    bool ok = s_key_attrs(&key, &len, &cap, name_list, 3) &&
              s_key_attrs(&key, &len, &cap, attrs, n_attrs) &&
              (!x->resource ||
               s_key_attrs(&key, &len, &cap, x->resource->attributes, x->resource->n_attributes));
    if (!ok) {
        free(key);
        x->oom = true;
        return NULL;
    }
    uint64_t h = s_fnv(UINT64_C(0xcbf29ce484222325), key, len);
    size_t i = (size_t)h & (self->cap - 1);
    while (self->tab[i].key) {
        s_stream_t *s = &self->tab[i];
        if (s->hash == h && s->key_len == len && memcmp(s->key, key, len) == 0) {
            free(key);
            *is_new = false;
            return s;
        }
        i = (i + 1) & (self->cap - 1);
    }
    if (self->n >= self->conf.max_streams && s_sweep(self, x->now_ns) > 0) {
        /* Room made: find the free slot again (the table was rebuilt). */
        i = (size_t)h & (self->cap - 1);
        while (self->tab[i].key) {
            i = (i + 1) & (self->cap - 1);
        }
    }
    if (self->n >= self->conf.max_streams) {
        free(key);
        *full = true;
        return NULL;
    }
    s_stream_t *s = &self->tab[i];
    memset(s, 0, sizeof *s);
    s->key = key;
    s->key_len = len;
    s->hash = h;
    ww_hist_init(&s->prev, self->conf.scale);
    self->n++;
    *is_new = true;
    return s;
}

/* --- Histograms ------------------------------------------------------------------------- */

/* Adds c to *sum; false when it would pass S_MAX_POINT_COUNT. */
static bool s_add(uint64_t *sum, uint64_t c)
{
    if (c > S_MAX_POINT_COUNT || *sum > S_MAX_POINT_COUNT - c) {
        return false;
    }
    *sum += c;
    return true;
}

/* The lowest and highest bucket of one exponential point's positive buckets, at scale t,
 * among those in our range; false when none. */
static void s_range(const s_exp_t *p, int t, int32_t *lo, int32_t *hi, bool *any)
{
    *any = false;
    const Ww__Otlp__V1__ExponentialHistogramDataPoint__Buckets *b = p->positive;
    int64_t below = -((int64_t)20 << p->scale), above = (int64_t)12 << p->scale;
    for (size_t k = 0; b && k < b->n_bucket_counts; k++) {
        int64_t idx = (int64_t)b->offset + (int64_t)k;
        if (b->bucket_counts[k] == 0 || idx < below || idx >= above) {
            continue;
        }
        int32_t j = (int32_t)(idx >> (p->scale - t));
        if (!*any || j < *lo) {
            *lo = j;
        }
        if (!*any || j > *hi) {
            *hi = j;
        }
        *any = true;
    }
}

/* One exponential point as a ww_hist at scale min(p->scale, conf scale), min and max left
 * NaN (the caller sets them). Returns 0, -EINVAL with a reason (counts), -ENOMEM. */
static int s_from_exp(const s_exp_t *p, int scale, ww_hist_t *h, const char **reason)
{
    int t = p->scale < scale ? p->scale : scale;
    ww_hist_init(h, t);
    uint64_t total = 0, zero = 0, under = 0, over = 0;
    if (!s_add(&zero, p->zero_count)) {
        *reason = "counts past 2^40";
        return -EINVAL;
    }
    const Ww__Otlp__V1__ExponentialHistogramDataPoint__Buckets *neg = p->negative;
    for (size_t k = 0; neg && k < neg->n_bucket_counts; k++) {
        if (!s_add(&zero, neg->bucket_counts[k])) {
            *reason = "counts past 2^40";
            return -EINVAL;
        }
    }
    int32_t lo = 0, hi = 0;
    bool any;
    s_range(p, t, &lo, &hi, &any);
    if (any) {
        int rc = ww_hist_reserve(h, lo, hi);
        if (rc < 0) {
            *reason = "buckets out of range";
            return rc;
        }
    }
    const Ww__Otlp__V1__ExponentialHistogramDataPoint__Buckets *b = p->positive;
    int64_t below = -((int64_t)20 << p->scale), above = (int64_t)12 << p->scale;
    for (size_t k = 0; b && k < b->n_bucket_counts; k++) {
        uint64_t c = b->bucket_counts[k];
        if (c == 0) {
            continue; /* an empty bucket may lie outside the span s_range reserved */
        }
        int64_t idx = (int64_t)b->offset + (int64_t)k;
        uint64_t *to = idx < below    ? &under
                       : idx >= above ? &over
                                      : &h->counts[(int32_t)(idx >> (p->scale - t)) - h->offset];
        if (!s_add(&total, c) || !s_add(to, c)) {
            *reason = "counts past 2^40";
            return -EINVAL;
        }
    }
    if (!s_add(&total, zero) || !s_add(&total, 0) || total != p->count) {
        *reason = "count is not the sum of its buckets and zero count";
        return -EINVAL;
    }
    h->count = total;
    h->zero_count = zero;
    h->underflow = under;
    h->overflow = over;
    h->sum = p->sum;
    h->min = h->max = NAN;
    return 0;
}

/* min and max of a histogram whose own are unknown (a delta of two cumulative points): the
 * bounds its counters and buckets give, within the cumulative [cmin, cmax] when known. */
static void s_bounds(ww_hist_t *h, double cmin, double cmax)
{
    int32_t first = 0, last = -1;
    for (uint32_t k = 0; k < h->len; k++) {
        if (h->counts[k]) {
            if (last < 0) {
                first = (int32_t)k;
            }
            last = (int32_t)k;
        }
    }
    bool have = last >= 0;
    double lo, hi;
    if (h->zero_count > 0) {
        lo = isfinite(cmin) && cmin <= 0 ? cmin : 0.0;
    } else if (h->underflow > 0) {
        lo = isfinite(cmin) && cmin > 0 && cmin <= WW_HIST_MIN ? cmin : WW_HIST_MIN;
    } else if (have) {
        lo = ww_hist_lower(h->offset + first, h->scale);
        if (isfinite(cmin) && cmin > lo && cmin <= ww_hist_upper(h->offset + first, h->scale)) {
            lo = cmin;
        }
    } else {
        lo = isfinite(cmax) ? cmax : WW_HIST_MAX;
    }
    if (h->overflow > 0) {
        hi = isfinite(cmax) ? cmax : WW_HIST_MAX;
    } else if (have) {
        hi = ww_hist_upper(h->offset + last, h->scale);
        if (isfinite(cmax) && cmax < hi && cmax > ww_hist_lower(h->offset + last, h->scale)) {
            hi = cmax;
        }
    } else if (h->underflow > 0) {
        hi = WW_HIST_MIN;
    } else {
        hi = 0.0;
    }
    h->min = lo < hi ? lo : hi;
    h->max = hi;
}

/* d = a - b (a's scale <= b's or b reduced to it first; d at a's scale). Returns 0, 1 when
 * some counter of b is above a's (a reset), -ENOMEM. */
static int s_sub(const ww_hist_t *a, const ww_hist_t *b, ww_hist_t *d)
{
    int t = a->scale < b->scale ? a->scale : b->scale;
    ww_hist_t aa, bb;
    ww_hist_init(&aa, t);
    ww_hist_init(&bb, t);
    int rc = ww_hist_merge(&aa, a) < 0 || ww_hist_merge(&bb, b) < 0 ? -ENOMEM : 0;
    if (rc == 0 && (bb.count > aa.count || bb.zero_count > aa.zero_count ||
                    bb.underflow > aa.underflow || bb.overflow > aa.overflow)) {
        rc = 1;
    }
    for (uint32_t k = 0; rc == 0 && k < bb.len; k++) {
        int32_t idx = bb.offset + (int32_t)k;
        uint64_t av =
            idx >= aa.offset && idx < aa.offset + (int32_t)aa.len ? aa.counts[idx - aa.offset] : 0;
        if (bb.counts[k] > av) {
            rc = 1;
        } else if (bb.counts[k] > 0) {
            aa.counts[idx - aa.offset] = av - bb.counts[k];
        }
    }
    if (rc == 0) {
        aa.count -= bb.count;
        aa.zero_count -= bb.zero_count;
        aa.underflow -= bb.underflow;
        aa.overflow -= bb.overflow;
        /* A negative difference (values below zero) is left to ww_hist_check. */
        aa.sum = aa.count == 0 ? 0.0 : a->sum - b->sum;
        ww_hist_fini(d);
        *d = aa; /* moved */
        ww_hist_init(&aa, t);
    }
    ww_hist_fini(&aa);
    ww_hist_fini(&bb);
    return rc;
}

/* The copy of h (at its scale) into dst, replacing what dst held. 0 or -ENOMEM. */
static int s_copy(ww_hist_t *dst, const ww_hist_t *h)
{
    ww_hist_t c;
    ww_hist_init(&c, h->scale);
    if (ww_hist_merge(&c, h) < 0) {
        ww_hist_fini(&c);
        return -ENOMEM;
    }
    c.min = h->min;
    c.max = h->max;
    ww_hist_fini(dst);
    *dst = c;
    return 0;
}

/* --- Points ----------------------------------------------------------------------------- */

/* The model of a point's attributes into name; false (refused) without one. */
static bool s_model(s_ctx_t *x, s_kv_t *const *a, size_t n, char *name)
{
    const ww_otlp_metrics_conf_t *conf = &x->self->conf;
    int got = ww_otlp_pb_attr_text(a, n, conf->response_model, name, WW_MODEL_NAME_MAX);
    if (got == 0) {
        got = ww_otlp_pb_attr_text(a, n, conf->request_model, name, WW_MODEL_NAME_MAX);
    }
    if (got <= 0) {
        s_refuse(x, got == 0 ? "a point without gen_ai.response.model or gen_ai.request.model"
                             : "a model name empty, too long or not clean UTF-8");
        return false;
    }
    return true;
}

/* The times of a point: false (refused) when missing or reversed. */
static bool s_times(s_ctx_t *x, uint64_t start, uint64_t time)
{
    if (time == 0 || time > (uint64_t)INT64_MAX || start > time) {
        s_refuse(x, "a point without time_unix_nano, or one before its start");
        return false;
    }
    return true;
}

static void s_take(s_ctx_t *x, const char *model, ww_otlp_m_point_t *p)
{
    x->c->taken++;
    x->fn(x->arg, model, p);
}

/* A latency point of an exponential histogram. */
static void s_latency(s_ctx_t *x, const s_exp_t *p)
{
    const ww_otlp_metrics_conf_t *conf = &x->self->conf;
    char model[WW_MODEL_NAME_MAX];
    if (!s_model(x, p->attributes, p->n_attributes, model) ||
        !s_times(x, p->start_time_unix_nano, p->time_unix_nano)) {
        return;
    }
    x->now_ns = (int64_t)p->time_unix_nano;
    if (x->unit_bad) {
        s_refuse(x, "a latency metric whose unit is not s (seconds)");
        return;
    }
    bool error = x->what == S_E2E &&
                 ww_otlp_pb_attr(p->attributes, p->n_attributes, conf->error_type) != NULL;
    if (x->temporality != 1 && x->temporality != 2) {
        s_refuse(x, "aggregation temporality unspecified");
        return;
    }
    if (p->sum_present_case != WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__SUM_PRESENT_SUM ||
        !isfinite(p->sum)) {
        s_refuse(x, "a point without a finite sum");
        return;
    }
    if (p->scale < 0 || p->scale > S_MAX_IN_SCALE) {
        s_refuse(x, "a scale outside 0..20");
        return;
    }
    const char *reason = "out of memory";
    ww_hist_t h, d;
    ww_hist_init(&d, conf->scale);
    int rc = s_from_exp(p, conf->scale, &h, &reason);
    if (rc < 0) {
        ww_hist_fini(&h);
        if (rc == -ENOMEM) {
            x->oom = true;
        } else {
            s_refuse(x, reason);
        }
        return;
    }
    double pmin = p->min_present_case ? p->min : NAN, pmax = p->max_present_case ? p->max : NAN;
    const ww_hist_t *take = &h;
    if (x->temporality == 1) {
        if (isfinite(pmin) && isfinite(pmax) && h.count > 0) {
            h.min = pmin;
            h.max = pmax;
        } else {
            s_bounds(&h, NAN, NAN);
        }
    } else {
        bool is_new = false, full = false;
        s_stream_t *s = s_stream(x, p->attributes, p->n_attributes, &is_new, &full);
        if (!s) {
            ww_hist_fini(&h);
            if (full) {
                s_refuse(x, "more cumulative streams than otlp.max_streams");
            }
            return;
        }
        int64_t start = (int64_t)p->start_time_unix_nano, time = (int64_t)p->time_unix_nano;
        bool whole = false;
        if (is_new) {
            whole = start >= x->self->since_ns;
            if (!whole) {
                x->c->baseline++;
            }
        } else if (start < s->start_ns) {
            ww_hist_fini(&h);
            s_refuse(x, S_OLDER_START);
            return;
        } else if (start != s->start_ns) {
            whole = true; /* the stream restarted */
        } else if (time < s->time_ns) {
            ww_hist_fini(&h);
            s_refuse(x, "a cumulative point older than the one before it");
            return;
        } else {
            rc = s_sub(&h, &s->prev, &d);
            if (rc < 0) {
                x->oom = true;
                ww_hist_fini(&h);
                ww_hist_fini(&d);
                return;
            }
            whole = rc == 1; /* counts went down: a reset */
            if (rc == 0) {
                s_bounds(&d, pmin, pmax);
                take = &d;
            }
        }
        if (whole) {
            if (isfinite(pmin) && isfinite(pmax) && h.count > 0) {
                h.min = pmin;
                h.max = pmax;
            } else {
                s_bounds(&h, NAN, NAN);
            }
        }
        /* The point is the stream's new baseline, taken or not. */
        if (s_copy(&s->prev, &h) < 0) {
            x->oom = true;
        }
        s->start_ns = start;
        s->time_ns = time;
        if (is_new && !whole) {
            ww_hist_fini(&h);
            ww_hist_fini(&d);
            return;
        }
    }
    if (take->count == 0) {
        x->c->repeated += x->temporality == 2;
    } else if (ww_hist_check(take) < 0) {
        s_refuse(x, "values that disagree with their buckets (min, max or sum)");
    } else {
        ww_otlp_m_point_t out = {.time_ns = (int64_t)p->time_unix_nano, .count = take->count};
        out.kind = error               ? WW_OTLP_M_ERRORS
                   : x->what == S_TTFT ? WW_OTLP_M_TTFT
                   : x->what == S_TPOT ? WW_OTLP_M_TPOT
                                       : WW_OTLP_M_E2E;
        out.hist = error ? NULL : take;
        s_take(x, model, &out);
    }
    ww_hist_fini(&h);
    ww_hist_fini(&d);
}

/* A token-usage point: its sum, by token type. */
static void s_tokens(s_ctx_t *x, s_kv_t *const *a, size_t n, uint64_t start, uint64_t time,
                     bool has_sum, double sum)
{
    const ww_otlp_metrics_conf_t *conf = &x->self->conf;
    char model[WW_MODEL_NAME_MAX], type[16];
    if (!s_model(x, a, n, model) || !s_times(x, start, time)) {
        return;
    }
    x->now_ns = (int64_t)time;
    int got = ww_otlp_pb_attr_text(a, n, conf->token_type, type, sizeof type);
    bool input = got > 0 && strcmp(type, "input") == 0;
    if (got <= 0 || (!input && strcmp(type, "output") != 0)) {
        s_refuse(x, "a token usage point whose gen_ai.token.type is not input or output");
        return;
    }
    if (x->temporality != 1 && x->temporality != 2) {
        s_refuse(x, "aggregation temporality unspecified");
        return;
    }
    if (!has_sum || !(sum >= 0) || sum > S_MAX_TOKENS || sum != floor(sum)) {
        s_refuse(x, "a token sum that is not a whole number of tokens");
        return;
    }
    double add = sum;
    if (x->temporality == 2) {
        bool is_new = false, full = false;
        s_stream_t *s = s_stream(x, a, n, &is_new, &full);
        if (!s) {
            if (full) {
                s_refuse(x, "more cumulative streams than otlp.max_streams");
            }
            return;
        }
        if (is_new) {
            if ((int64_t)start < x->self->since_ns) {
                x->c->baseline++;
                add = 0;
            }
        } else if ((int64_t)start < s->start_ns) {
            s_refuse(x, S_OLDER_START);
            return;
        } else if ((int64_t)start == s->start_ns && (int64_t)time < s->time_ns) {
            s_refuse(x, "a cumulative point older than the one before it");
            return;
        } else if ((int64_t)start == s->start_ns && sum >= s->prev_sum) {
            add = sum - s->prev_sum; /* else a reset: the sum whole */
        }
        s->start_ns = (int64_t)start;
        s->time_ns = (int64_t)time;
        s->prev_sum = sum;
        if (is_new && add == 0 && (int64_t)start < x->self->since_ns) {
            return;
        }
    }
    if (add == 0) {
        x->c->repeated += x->temporality == 2;
        return;
    }
    ww_otlp_m_point_t out = {.kind = WW_OTLP_M_TOKENS, .time_ns = (int64_t)time};
    if (input) {
        out.prompt_tokens = (uint64_t)add;
    } else {
        out.output_tokens = (uint64_t)add;
    }
    s_take(x, model, &out);
}

static void s_metric(s_ctx_t *x, const Ww__Otlp__V1__Metric *m)
{
    const ww_otlp_metrics_conf_t *conf = &x->self->conf;
    x->name = &m->name;
    x->unit_bad = m->unit.len > 0 && !(m->unit.len == 1 && m->unit.data[0] == 's');
    x->what = s_named(&m->name, conf->ttft)     ? S_TTFT
              : s_named(&m->name, conf->tpot)   ? S_TPOT
              : s_named(&m->name, conf->e2e)    ? S_E2E
              : s_named(&m->name, conf->tokens) ? S_TOKENS
                                                : S_OTHER;
    if (m->data_case == WW__OTLP__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM) {
        const Ww__Otlp__V1__ExponentialHistogram *e = m->exponential_histogram;
        x->temporality = e->aggregation_temporality;
        for (size_t i = 0; i < e->n_data_points && !x->oom; i++) {
            const s_exp_t *p = e->data_points[i];
            x->c->points++;
            if (x->what == S_OTHER) {
                x->c->other++;
            } else if (x->what == S_TOKENS) {
                s_tokens(x, p->attributes, p->n_attributes, p->start_time_unix_nano,
                         p->time_unix_nano, p->sum_present_case != 0, p->sum);
            } else {
                s_latency(x, p);
            }
        }
    } else if (m->data_case == WW__OTLP__V1__METRIC__DATA_HISTOGRAM) {
        const Ww__Otlp__V1__Histogram *e = m->histogram;
        x->temporality = e->aggregation_temporality;
        for (size_t i = 0; i < e->n_data_points && !x->oom; i++) {
            const Ww__Otlp__V1__HistogramDataPoint *p = e->data_points[i];
            x->c->points++;
            if (x->what == S_OTHER) {
                x->c->other++;
            } else if (x->what == S_TOKENS) {
                s_tokens(x, p->attributes, p->n_attributes, p->start_time_unix_nano,
                         p->time_unix_nano, p->sum_present_case != 0, p->sum);
            } else {
                s_refuse(x, "an explicit-bucket histogram: send the latency metrics as "
                            "exponential histograms");
            }
        }
    } else if (m->data_case != WW__OTLP__V1__METRIC__DATA__NOT_SET) {
        /* A gauge, sum or summary: its points are not read (nor counted one by one). */
        x->c->other++;
        x->c->points++;
    }
}

ww_otlp_metrics_t *ww_otlp_metrics_new(const ww_otlp_metrics_conf_t *conf, int64_t since_ns)
{
    ww_otlp_metrics_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->conf = *conf;
    if (self->conf.scale < 0 || self->conf.scale > WW_HIST_MAX_SCALE) {
        self->conf.scale = WW_HIST_DEFAULT_SCALE;
    }
    self->since_ns = since_ns;
    size_t cap = 16;
    while (cap < 2 * conf->max_streams) {
        cap *= 2;
    }
    self->cap = cap;
    self->tab = calloc(cap, sizeof *self->tab);
    if (!self->tab) {
        free(self);
        return NULL;
    }
    return self;
}

/* The data points of an export (a gauge, sum or summary counts one). */
static size_t s_points(const Ww__Otlp__V1__ExportMetricsServiceRequest *req)
{
    size_t n = 0;
    for (size_t i = 0; i < req->n_resource_metrics; i++) {
        const Ww__Otlp__V1__ResourceMetrics *rm = req->resource_metrics[i];
        for (size_t k = 0; k < rm->n_scope_metrics; k++) {
            const Ww__Otlp__V1__ScopeMetrics *sm = rm->scope_metrics[k];
            for (size_t m = 0; m < sm->n_metrics; m++) {
                const Ww__Otlp__V1__Metric *mt = sm->metrics[m];
                n += mt->data_case == WW__OTLP__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM
                         ? mt->exponential_histogram->n_data_points
                     : mt->data_case == WW__OTLP__V1__METRIC__DATA_HISTOGRAM
                         ? mt->histogram->n_data_points
                         : mt->data_case != WW__OTLP__V1__METRIC__DATA__NOT_SET;
            }
        }
    }
    return n;
}

int ww_otlp_metrics_decode(ww_otlp_metrics_t *self, const uint8_t *body, size_t len,
                           size_t max_points, ww_otlp_point_fn fn, void *arg,
                           ww_otlp_metrics_counts_t *counts)
{
    memset(counts, 0, sizeof *counts);
    bool oom = false;
    ProtobufCAllocator alloc = WW_OTLP_PB_ALLOCATOR(&oom);
    Ww__Otlp__V1__ExportMetricsServiceRequest *req =
        ww__otlp__v1__export_metrics_service_request__unpack(&alloc, len, body);
    if (!req) {
        return oom ? -ENOMEM : -EBADMSG;
    }
    if (s_points(req) > max_points) {
        ww__otlp__v1__export_metrics_service_request__free_unpacked(req, &alloc);
        return -ENOSPC;
    }
    s_ctx_t x = {.self = self, .fn = fn, .arg = arg, .c = counts};
    for (size_t i = 0; i < req->n_resource_metrics && !x.oom; i++) {
        const Ww__Otlp__V1__ResourceMetrics *rm = req->resource_metrics[i];
        x.resource = rm->resource;
        for (size_t k = 0; k < rm->n_scope_metrics && !x.oom; k++) {
            const Ww__Otlp__V1__ScopeMetrics *sm = rm->scope_metrics[k];
            x.scope = sm->scope;
            for (size_t m = 0; m < sm->n_metrics && !x.oom; m++) {
                s_metric(&x, sm->metrics[m]);
            }
        }
    }
    ww__otlp__v1__export_metrics_service_request__free_unpacked(req, &alloc);
    return x.oom ? -ENOMEM : 0;
}

size_t ww_otlp_metrics_streams(const ww_otlp_metrics_t *self)
{
    return self->n;
}

void ww_otlp_metrics_destroy(ww_otlp_metrics_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    ww_otlp_metrics_t *self = *self_p;
    for (size_t i = 0; i < self->cap; i++) {
        if (self->tab[i].key) {
            free(self->tab[i].key);
            ww_hist_fini(&self->tab[i].prev);
        }
    }
    free(self->tab);
    free(self);
    *self_p = NULL;
}
