/* ww_otlp_json: see ww_otlp_json.h. The JSON tree (ww_json) is read into the protobuf-c
 * structs of proto/otlp/otlp_trace.proto, every part malloc'd so that free_unpacked frees
 * the whole request, then packed. */
#include "ww_otlp_json.h"

#include "otlp/otlp_trace.pb-c.h"
#include "ww_json.h"

#include <errno.h>
#include <stdarg.h>
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

static void s_resource(s_ctx_t *x, const ww_json_t *j, Ww__Otlp__V1__ResourceSpans *rs,
                       const char *path)
{
    if (j->type != WW_JSON_OBJ) {
        s_bad(x, "%s: not an object (line %d)", path, j->line);
        return;
    }
    const ww_json_t *res = ww_json_get(j, "resource");
    if (res && res->type == WW_JSON_OBJ) {
        if (!(rs->resource = malloc(sizeof *rs->resource))) {
            s_oom(x);
            return;
        }
        ww__otlp__v1__resource__init(rs->resource);
        char sub[160];
        snprintf(sub, sizeof sub, "%.100s.resource", path);
        s_attributes(x, res, sub, &rs->resource->attributes, &rs->resource->n_attributes);
    }
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

int ww_otlp_json_to_pb(const char *json, uint8_t **out, size_t *out_len, char *why, size_t why_cap)
{
    s_ctx_t x = {why, why_cap, 0};
    char err[160];
    ww_json_t *root = ww_json_parse(json, WW_OTLP_JSON_MAX_VALUES, err, sizeof err);
    if (!root) {
        if (strstr(err, "out of memory")) {
            s_oom(&x);
        } else {
            s_bad(&x, "not JSON: %s", err);
        }
        return x.rc;
    }
    if (root->type != WW_JSON_OBJ) {
        s_bad(&x, "not an ExportTraceServiceRequest (a JSON object)");
        ww_json_free(&root);
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
    if (x.rc == 0) {
        *out_len = ww__otlp__v1__export_trace_service_request__get_packed_size(req);
        if ((*out = malloc(*out_len ? *out_len : 1)) == NULL) {
            s_oom(&x);
        } else {
            ww__otlp__v1__export_trace_service_request__pack(req, *out);
        }
    }
    ww__otlp__v1__export_trace_service_request__free_unpacked(req, NULL);
    return x.rc;
}
