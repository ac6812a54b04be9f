/* ww_otlp_json: see ww_otlp_json.h. The JSON tree (ww_json) is read into the protobuf-c
 * structs of proto/otlp/otlp_trace.proto and otlp_metrics.proto, every part malloc'd so that
 * free_unpacked frees the whole request, then packed. */
#include "ww_otlp_json.h"

#include "otlp/otlp_metrics.pb-c.h"
#include "otlp/otlp_trace.pb-c.h"
#include "ww_json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *why;
    size_t why_cap;
    int rc; /* the first error: -EBADMSG or -ENOMEM */
} s_ctx_t;

static void s_bad(s_ctx_t *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_bad(s_ctx_t *x, const char *fmt, ...)
{
    if (x->rc == 0) {
        x->rc = -EBADMSG;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->why, x->why_cap, fmt, ap);
        va_end(ap);
    }
}

static void s_oom(s_ctx_t *x)
{
    if (x->rc == 0) {
        x->rc = -ENOMEM;
        snprintf(x->why, x->why_cap, "out of memory");
    }
}

/* The field of o named in lowerCamelCase or the .proto's snake_case. */
static const ww_json_t *s_field(const ww_json_t *o, const char *camel, const char *snake)
{
    const ww_json_t *v = ww_json_get(o, camel);
    return v ? v : ww_json_get(o, snake);
}

/* An array field (absent: n = 0); its items, or NULL with *n = 0 after an error. */
static ww_json_t *const *s_array(s_ctx_t *x, const ww_json_t *o, const char *camel,
                                 const char *snake, const char *path, size_t *n)
{
    const ww_json_t *a = s_field(o, camel, snake);
    *n = 0;
    if (!a || a->type == WW_JSON_NULL) {
        return NULL;
    }
    if (a->type != WW_JSON_ARR) {
        s_bad(x, "%s.%s: not an array (line %d)", path, camel, a->line);
        return NULL;
    }
    *n = a->n;
    return a->items;
}

/* A copy of a JSON string as protobuf bytes (malloc'd). */
static ProtobufCBinaryData s_bytes(s_ctx_t *x, const char *s)
{
    ProtobufCBinaryData b = {0, NULL};
    size_t len = strlen(s);
    if ((b.data = malloc(len ? len : 1)) == NULL) {
        s_oom(x);
        return b;
    }
    memcpy(b.data, s, len);
    b.len = len;
    return b;
}

static void s_any(s_ctx_t *x, const ww_json_t *j, Ww__Otlp__V1__AnyValue *v, const char *path)
{
    const ww_json_t *f;
    int64_t i;
    double d;
    if ((f = s_field(j, "stringValue", "string_value")) != NULL) {
        if (!ww_json_str(f)) {
            s_bad(x, "%s.stringValue: not a string (line %d)", path, f->line);
            return;
        }
        v->value_case = WW__OTLP__V1__ANY_VALUE__VALUE_STRING_VALUE;
        v->string_value = s_bytes(x, ww_json_str(f));
    } else if ((f = s_field(j, "intValue", "int_value")) != NULL) {
        int rc = ww_json_int64(f, &i);
        if (rc < 0) {
            s_bad(x, "%s.intValue: %s (line %d)", path,
                  rc == -ERANGE ? "past int64" : "not an integer", f->line);
            return;
        }
        v->value_case = WW__OTLP__V1__ANY_VALUE__VALUE_INT_VALUE;
        v->int_value = i;
    } else if ((f = s_field(j, "doubleValue", "double_value")) != NULL) {
        if (ww_json_double(f, &d) < 0) {
            s_bad(x, "%s.doubleValue: not a number (line %d)", path, f->line);
            return;
        }
        v->value_case = WW__OTLP__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
        v->double_value = d;
    } else if ((f = s_field(j, "boolValue", "bool_value")) != NULL) {
        if (f->type != WW_JSON_BOOL) {
            s_bad(x, "%s.boolValue: not a boolean (line %d)", path, f->line);
            return;
        }
        v->value_case = WW__OTLP__V1__ANY_VALUE__VALUE_BOOL_VALUE;
        v->bool_value = f->boolean != 0;
    }
    /* Anything else (array, kvlist, bytes, none): a value of no type, as an unset oneof. */
}

/* attributes: [{key, value}], into *kv / *n. */
static void s_attributes(s_ctx_t *x, const ww_json_t *o, const char *path,
                         Ww__Otlp__V1__KeyValue ***kv, size_t *n)
{
    size_t m;
    ww_json_t *const *a = s_array(x, o, "attributes", "attributes", path, &m);
    if (m == 0 || x->rc) {
        return;
    }
    if (!(*kv = calloc(m, sizeof **kv))) {
        s_oom(x);
        return;
    }
    for (size_t i = 0; i < m && x->rc == 0; i++) {
        Ww__Otlp__V1__KeyValue *e = malloc(sizeof *e);
        if (!e) {
            s_oom(x);
            return;
        }
        ww__otlp__v1__key_value__init(e);
        (*kv)[(*n)++] = e;
        const char *key = ww_json_str(ww_json_get(a[i], "key"));
        if (!key) {
            s_bad(x, "%s.attributes[%zu].key: not a string (line %d)", path, i, a[i]->line);
            return;
        }
        e->key = s_bytes(x, key);
        const ww_json_t *val = ww_json_get(a[i], "value");
        if (val && val->type == WW_JSON_OBJ) {
            if (!(e->value = malloc(sizeof *e->value))) {
                s_oom(x);
                return;
            }
            ww__otlp__v1__any_value__init(e->value);
            char sub[160];
            snprintf(sub, sizeof sub, "%.100s.attributes[%zu].value", path, i);
            s_any(x, val, e->value, sub);
        }
    }
}

/* A time in Unix ns (fixed64), absent = 0. */
static uint64_t s_time(s_ctx_t *x, const ww_json_t *sp, const char *camel, const char *snake,
                       const char *path)
{
    const ww_json_t *f = s_field(sp, camel, snake);
    int64_t t = 0;
    if (f && (ww_json_int64(f, &t) < 0 || t < 0)) {
        s_bad(x, "%s.%s: not a time in Unix ns (line %d)", path, camel, f->line);
    }
    return (uint64_t)t;
}

static void s_status(s_ctx_t *x, const ww_json_t *j, Ww__Otlp__V1__Span *s, const char *path)
{
    if (!j || j->type != WW_JSON_OBJ) {
        return;
    }
    if (!(s->status = malloc(sizeof *s->status))) {
        s_oom(x);
        return;
    }
    ww__otlp__v1__status__init(s->status);
    const ww_json_t *code = ww_json_get(j, "code");
    const ww_json_t *msg = ww_json_get(j, "message");
    int64_t c = 0;
    static const char *const names[] = {"STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"};
    if (code && code->type == WW_JSON_STR) {
        for (c = 0; c < 3 && strcmp(code->str, names[c]) != 0; c++) {
        }
    } else if (code && ww_json_int64(code, &c) < 0) {
        c = 3;
    }
    if (code && (c < 0 || c > 2)) {
        s_bad(x, "%s.status.code: not a status code (line %d)", path, code->line);
        return;
    }
    s->status->code = (int32_t)c;
    if (ww_json_str(msg)) {
        s->status->message = s_bytes(x, ww_json_str(msg));
    }
}

static void s_span(s_ctx_t *x, const ww_json_t *j, Ww__Otlp__V1__Span *s, const char *path)
{
    if (j->type != WW_JSON_OBJ) {
        s_bad(x, "%s: not an object (line %d)", path, j->line);
        return;
    }
    const ww_json_t *name = ww_json_get(j, "name");
    if (name && !ww_json_str(name)) {
        s_bad(x, "%s.name: not a string (line %d)", path, name->line);
        return;
    }
    if (name) {
        s->name = s_bytes(x, ww_json_str(name));
    }
    s->start_time_unix_nano = s_time(x, j, "startTimeUnixNano", "start_time_unix_nano", path);
    s->end_time_unix_nano = s_time(x, j, "endTimeUnixNano", "end_time_unix_nano", path);
    s_attributes(x, j, path, &s->attributes, &s->n_attributes);
    s_status(x, ww_json_get(j, "status"), s, path);
}

/* An array of objects of one message type into *out / *n, each read by fn. */
#define S_EACH(x, items, m, out, n, type, init, fn, fmt, ...)                                      \
    do {                                                                                           \
        if ((m) > 0 && (x)->rc == 0 && !((out) = calloc((m), sizeof *(out)))) {                    \
            s_oom(x);                                                                              \
        }                                                                                          \
        for (size_t i_ = 0; i_ < (m) && (x)->rc == 0; i_++) {                                      \
            type *e_ = malloc(sizeof *e_);                                                         \
            if (!e_) {                                                                             \
                s_oom(x);                                                                          \
                break;                                                                             \
            }                                                                                      \
            init(e_);                                                                              \
            (out)[(n)++] = e_;                                                                     \
            char p_[160];                                                                          \
            snprintf(p_, sizeof p_, fmt, __VA_ARGS__, i_);                                         \
            fn(x, (items)[i_], e_, p_);                                                            \
        }                                                                                          \
    } while (0)

static void s_scope(s_ctx_t *x, const ww_json_t *j, Ww__Otlp__V1__ScopeSpans *ss, const char *path)
{
    size_t m;
    ww_json_t *const *a = s_array(x, j, "spans", "spans", path, &m);
    S_EACH(x, a, m, ss->spans, ss->n_spans, Ww__Otlp__V1__Span, ww__otlp__v1__span__init, s_span,
           "%.100s.spans[%zu]", path);
}

/* The resource of a resourceSpans / resourceMetrics item: its attributes. */
static void s_resource_attrs(s_ctx_t *x, const ww_json_t *j, const char *path,
                             Ww__Otlp__V1__Resource **out)
{
    const ww_json_t *res = ww_json_get(j, "resource");
    if (res && res->type == WW_JSON_OBJ) {
        if (!(*out = malloc(sizeof **out))) {
            s_oom(x);
            return;
        }
        ww__otlp__v1__resource__init(*out);
        char sub[160];
        snprintf(sub, sizeof sub, "%.100s.resource", path);
        s_attributes(x, res, sub, &(*out)->attributes, &(*out)->n_attributes);
    }
}

static void s_resource(s_ctx_t *x, const ww_json_t *j, Ww__Otlp__V1__ResourceSpans *rs,
                       const char *path)
{
    if (j->type != WW_JSON_OBJ) {
        s_bad(x, "%s: not an object (line %d)", path, j->line);
        return;
    }
    s_resource_attrs(x, j, path, &rs->resource);
    size_t m;
    ww_json_t *const *a = s_array(x, j, "scopeSpans", "scope_spans", path, &m);
    for (size_t i = 0; i < m && x->rc == 0; i++) {
        if (a[i]->type != WW_JSON_OBJ) {
            s_bad(x, "%s.scopeSpans[%zu]: not an object (line %d)", path, i, a[i]->line);
        }
    }
    S_EACH(x, a, m, rs->scope_spans, rs->n_scope_spans, Ww__Otlp__V1__ScopeSpans,
           ww__otlp__v1__scope_spans__init, s_scope, "%.100s.scopeSpans[%zu]", path);
}

/* The document's root object, or NULL with the error in x. */
static ww_json_t *s_root(s_ctx_t *x, const char *json, const char *what)
{
    char err[160];
    ww_json_t *root = ww_json_parse(json, WW_OTLP_JSON_MAX_VALUES, err, sizeof err);
    if (!root) {
        if (strstr(err, "out of memory")) {
            s_oom(x);
        } else {
            s_bad(x, "not JSON: %s", err);
        }
        return NULL;
    }
    if (root->type != WW_JSON_OBJ) {
        s_bad(x, "not an %s (a JSON object)", what);
        ww_json_free(&root);
    }
    return root;
}

/* The request read (when nothing failed) packed into *out, then freed whole (every part was
 * malloc'd). Returns x's result. */
static int s_pack_free(s_ctx_t *x, ProtobufCMessage *req, uint8_t **out, size_t *out_len)
{
    if (x->rc == 0) {
        *out_len = protobuf_c_message_get_packed_size(req);
        if ((*out = malloc(*out_len ? *out_len : 1)) == NULL) {
            s_oom(x);
        } else {
            protobuf_c_message_pack(req, *out);
        }
    }
    protobuf_c_message_free_unpacked(req, NULL);
    return x->rc;
}

int ww_otlp_json_to_pb(const char *json, uint8_t **out, size_t *out_len, char *why, size_t why_cap)
{
    s_ctx_t x = {why, why_cap, 0};
    ww_json_t *root = s_root(&x, json, "ExportTraceServiceRequest");
    if (!root) {
        return x.rc;
    }
    Ww__Otlp__V1__ExportTraceServiceRequest *req = malloc(sizeof *req);
    if (!req) {
        ww_json_free(&root);
        s_oom(&x);
        return x.rc;
    }
    ww__otlp__v1__export_trace_service_request__init(req);
    size_t m;
    ww_json_t *const *a = s_array(&x, root, "resourceSpans", "resource_spans", "", &m);
    S_EACH(&x, a, m, req->resource_spans, req->n_resource_spans, Ww__Otlp__V1__ResourceSpans,
           ww__otlp__v1__resource_spans__init, s_resource, "%sresourceSpans[%zu]", "");
    ww_json_free(&root);
    return s_pack_free(&x, &req->base, out, out_len);
}

/* --- Metrics ----------------------------------------------------------------------------- */

/* An unsigned 64-bit count (a decimal string or a number), absent = 0. */
static uint64_t s_count(s_ctx_t *x, const ww_json_t *o, const char *camel, const char *snake,
                        const char *path)
{
    const ww_json_t *f = s_field(o, camel, snake);
    int64_t v = 0;
    if (f && (ww_json_int64(f, &v) < 0 || v < 0)) {
        s_bad(x, "%s.%s: not a count (line %d)", path, camel, f->line);
    }
    return (uint64_t)v;
}

/* An optional double (a number, or "NaN" / "Infinity" as strings): whether it is there. */
static bool s_opt_double(s_ctx_t *x, const ww_json_t *o, const char *name, const char *path,
                         double *v)
{
    const ww_json_t *f = ww_json_get(o, name);
    if (!f || f->type == WW_JSON_NULL) {
        return false;
    }
    if (ww_json_double(f, v) < 0) {
        s_bad(x, "%s.%s: not a number (line %d)", path, name, f->line);
        return false;
    }
    return true;
}

/* A 32-bit integer field (scale, offset), absent = 0. */
static int32_t s_int32(s_ctx_t *x, const ww_json_t *o, const char *name, const char *path)
{
    const ww_json_t *f = ww_json_get(o, name);
    int64_t v = 0;
    if (f && (ww_json_int64(f, &v) < 0 || v < INT32_MIN || v > INT32_MAX)) {
        s_bad(x, "%s.%s: not a 32-bit integer (line %d)", path, name, f->line);
        return 0;
    }
    return (int32_t)v;
}

/* positive / negative: {offset, bucketCounts: [counts]}. */
static void s_buckets(s_ctx_t *x, const ww_json_t *o, const char *name, const char *path,
                      Ww__Otlp__V1__ExponentialHistogramDataPoint__Buckets **out)
{
    const ww_json_t *b = ww_json_get(o, name);
    if (!b || b->type == WW_JSON_NULL) {
        return;
    }
    char sub[160];
    snprintf(sub, sizeof sub, "%.100s.%s", path, name);
    if (b->type != WW_JSON_OBJ) {
        s_bad(x, "%s: not an object (line %d)", sub, b->line);
        return;
    }
    if (!(*out = malloc(sizeof **out))) {
        s_oom(x);
        return;
    }
    ww__otlp__v1__exponential_histogram_data_point__buckets__init(*out);
    (*out)->offset = s_int32(x, b, "offset", sub);
    size_t m;
    ww_json_t *const *a = s_array(x, b, "bucketCounts", "bucket_counts", sub, &m);
    if (m == 0 || x->rc) {
        return;
    }
    if (!((*out)->bucket_counts = calloc(m, sizeof *(*out)->bucket_counts))) {
        s_oom(x);
        return;
    }
    (*out)->n_bucket_counts = m;
    for (size_t i = 0; i < m; i++) {
        int64_t v;
        if (ww_json_int64(a[i], &v) < 0 || v < 0) {
            s_bad(x, "%s.bucketCounts[%zu]: not a count (line %d)", sub, i, a[i]->line);
            return;
        }
        (*out)->bucket_counts[i] = (uint64_t)v;
    }
}

static void s_exp_point(s_ctx_t *x, const ww_json_t *j,
                        Ww__Otlp__V1__ExponentialHistogramDataPoint *p, const char *path)
{
    if (j->type != WW_JSON_OBJ) {
        s_bad(x, "%s: not an object (line %d)", path, j->line);
        return;
    }
    s_attributes(x, j, path, &p->attributes, &p->n_attributes);
    p->start_time_unix_nano = s_time(x, j, "startTimeUnixNano", "start_time_unix_nano", path);
    p->time_unix_nano = s_time(x, j, "timeUnixNano", "time_unix_nano", path);
    p->count = s_count(x, j, "count", "count", path);
    p->zero_count = s_count(x, j, "zeroCount", "zero_count", path);
    p->scale = s_int32(x, j, "scale", path);
    if (s_opt_double(x, j, "sum", path, &p->sum)) {
        p->sum_present_case = WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__SUM_PRESENT_SUM;
    }
    if (s_opt_double(x, j, "min", path, &p->min)) {
        p->min_present_case = WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__MIN_PRESENT_MIN;
    }
    if (s_opt_double(x, j, "max", path, &p->max)) {
        p->max_present_case = WW__OTLP__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__MAX_PRESENT_MAX;
    }
    double zt = 0;
    if (s_opt_double(x, j, "zeroThreshold", path, &zt)) {
        p->zero_threshold = zt;
    }
    s_buckets(x, j, "positive", path, &p->positive);
    s_buckets(x, j, "negative", path, &p->negative);
}

static void s_hist_point(s_ctx_t *x, const ww_json_t *j, Ww__Otlp__V1__HistogramDataPoint *p,
                         const char *path)
{
    if (j->type != WW_JSON_OBJ) {
        s_bad(x, "%s: not an object (line %d)", path, j->line);
        return;
    }
    s_attributes(x, j, path, &p->attributes, &p->n_attributes);
    p->start_time_unix_nano = s_time(x, j, "startTimeUnixNano", "start_time_unix_nano", path);
    p->time_unix_nano = s_time(x, j, "timeUnixNano", "time_unix_nano", path);
    p->count = s_count(x, j, "count", "count", path);
    if (s_opt_double(x, j, "sum", path, &p->sum)) {
        p->sum_present_case = WW__OTLP__V1__HISTOGRAM_DATA_POINT__SUM_PRESENT_SUM;
    }
}

/* aggregationTemporality: its number or its name. */
static int32_t s_temporality(s_ctx_t *x, const ww_json_t *o, const char *path)
{
    const ww_json_t *f = s_field(o, "aggregationTemporality", "aggregation_temporality");
    static const char *const names[] = {"AGGREGATION_TEMPORALITY_UNSPECIFIED",
                                        "AGGREGATION_TEMPORALITY_DELTA",
                                        "AGGREGATION_TEMPORALITY_CUMULATIVE"};
    int64_t t = 0;
    if (f && f->type == WW_JSON_STR) {
        for (t = 0; t < 3 && strcmp(f->str, names[t]) != 0; t++) {
        }
    } else if (f && ww_json_int64(f, &t) < 0) {
        t = 3;
    }
    if (f && (t < 0 || t > 2)) {
        s_bad(x, "%s.aggregationTemporality: not a temporality (line %d)", path, f->line);
        return 0;
    }
    return (int32_t)t;
}

static void s_metric(s_ctx_t *x, const ww_json_t *j, Ww__Otlp__V1__Metric *m, const char *path)
{
    if (j->type != WW_JSON_OBJ) {
        s_bad(x, "%s: not an object (line %d)", path, j->line);
        return;
    }
    static const char *const texts[] = {"name", "unit"};
    ProtobufCBinaryData *dst[] = {&m->name, &m->unit};
    for (size_t k = 0; k < 2; k++) {
        const ww_json_t *f = ww_json_get(j, texts[k]);
        if (f && !ww_json_str(f)) {
            s_bad(x, "%s.%s: not a string (line %d)", path, texts[k], f->line);
            return;
        }
        if (f) {
            *dst[k] = s_bytes(x, ww_json_str(f));
        }
    }
    const ww_json_t *d;
    char sub[160];
    size_t n;
    if ((d = s_field(j, "exponentialHistogram", "exponential_histogram")) != NULL &&
        d->type == WW_JSON_OBJ) {
        snprintf(sub, sizeof sub, "%.100s.exponentialHistogram", path);
        Ww__Otlp__V1__ExponentialHistogram *e = malloc(sizeof *e);
        if (!e) {
            s_oom(x);
            return;
        }
        ww__otlp__v1__exponential_histogram__init(e);
        m->data_case = WW__OTLP__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM;
        m->exponential_histogram = e;
        e->aggregation_temporality = s_temporality(x, d, sub);
        ww_json_t *const *a = s_array(x, d, "dataPoints", "data_points", sub, &n);
        S_EACH(x, a, n, e->data_points, e->n_data_points,
               Ww__Otlp__V1__ExponentialHistogramDataPoint,
               ww__otlp__v1__exponential_histogram_data_point__init, s_exp_point,
               "%.100s.dataPoints[%zu]", sub);
    } else if ((d = ww_json_get(j, "histogram")) != NULL && d->type == WW_JSON_OBJ) {
        snprintf(sub, sizeof sub, "%.100s.histogram", path);
        Ww__Otlp__V1__Histogram *h = malloc(sizeof *h);
        if (!h) {
            s_oom(x);
            return;
        }
        ww__otlp__v1__histogram__init(h);
        m->data_case = WW__OTLP__V1__METRIC__DATA_HISTOGRAM;
        m->histogram = h;
        h->aggregation_temporality = s_temporality(x, d, sub);
        ww_json_t *const *a = s_array(x, d, "dataPoints", "data_points", sub, &n);
        S_EACH(x, a, n, h->data_points, h->n_data_points, Ww__Otlp__V1__HistogramDataPoint,
               ww__otlp__v1__histogram_data_point__init, s_hist_point, "%.100s.dataPoints[%zu]",
               sub);
    } else if (ww_json_get(j, "gauge") || ww_json_get(j, "sum") || ww_json_get(j, "summary")) {
        /* Not read: known as another kind (counted `other`), like the protobuf body's. */
        Ww__Otlp__V1__Gauge *g = malloc(sizeof *g);
        if (!g) {
            s_oom(x);
            return;
        }
        ww__otlp__v1__gauge__init(g);
        m->data_case = WW__OTLP__V1__METRIC__DATA_GAUGE;
        m->gauge = g;
    }
}

static void s_scope_metrics(s_ctx_t *x, const ww_json_t *j, Ww__Otlp__V1__ScopeMetrics *sm,
                            const char *path)
{
    if (j->type != WW_JSON_OBJ) {
        s_bad(x, "%s: not an object (line %d)", path, j->line);
        return;
    }
    const ww_json_t *scope = ww_json_get(j, "scope");
    if (scope && scope->type == WW_JSON_OBJ) {
        if (!(sm->scope = malloc(sizeof *sm->scope))) {
            s_oom(x);
            return;
        }
        ww__otlp__v1__instrumentation_scope__init(sm->scope);
        const char *name = ww_json_str(ww_json_get(scope, "name"));
        const char *version = ww_json_str(ww_json_get(scope, "version"));
        if (name) {
            sm->scope->name = s_bytes(x, name);
        }
        if (version) {
            sm->scope->version = s_bytes(x, version);
        }
    }
    size_t m;
    ww_json_t *const *a = s_array(x, j, "metrics", "metrics", path, &m);
    S_EACH(x, a, m, sm->metrics, sm->n_metrics, Ww__Otlp__V1__Metric, ww__otlp__v1__metric__init,
           s_metric, "%.100s.metrics[%zu]", path);
}

static void s_resource_metrics(s_ctx_t *x, const ww_json_t *j, Ww__Otlp__V1__ResourceMetrics *rm,
                               const char *path)
{
    if (j->type != WW_JSON_OBJ) {
        s_bad(x, "%s: not an object (line %d)", path, j->line);
        return;
    }
    s_resource_attrs(x, j, path, &rm->resource);
    size_t m;
    ww_json_t *const *a = s_array(x, j, "scopeMetrics", "scope_metrics", path, &m);
    S_EACH(x, a, m, rm->scope_metrics, rm->n_scope_metrics, Ww__Otlp__V1__ScopeMetrics,
           ww__otlp__v1__scope_metrics__init, s_scope_metrics, "%.100s.scopeMetrics[%zu]", path);
}

int ww_otlp_json_metrics_to_pb(const char *json, uint8_t **out, size_t *out_len, char *why,
                               size_t why_cap)
{
    s_ctx_t x = {why, why_cap, 0};
    ww_json_t *root = s_root(&x, json, "ExportMetricsServiceRequest");
    if (!root) {
        return x.rc;
    }
    Ww__Otlp__V1__ExportMetricsServiceRequest *req = malloc(sizeof *req);
    if (!req) {
        ww_json_free(&root);
        s_oom(&x);
        return x.rc;
    }
    ww__otlp__v1__export_metrics_service_request__init(req);
    size_t m;
    ww_json_t *const *a = s_array(&x, root, "resourceMetrics", "resource_metrics", "", &m);
    S_EACH(&x, a, m, req->resource_metrics, req->n_resource_metrics, Ww__Otlp__V1__ResourceMetrics,
           ww__otlp__v1__resource_metrics__init, s_resource_metrics, "%sresourceMetrics[%zu]", "");
    ww_json_free(&root);
    return s_pack_free(&x, &req->base, out, out_len);
}
