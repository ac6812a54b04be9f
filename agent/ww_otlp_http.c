/* ww_otlp_http: see ww_otlp_http.h. */
#define WW_LOG_MODULE "otlp"
#include "ww_otlp_http.h"

#include "otlp/otlp_metrics.pb-c.h"
#include "otlp/otlp_trace.pb-c.h"
#include "ww_log.h"
#include "ww_mhd.h"
#include "ww_otlp_json.h"
#include "ww_time.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zlib.h>

#define S_PROTOBUF "application/x-protobuf"
#define S_JSON "application/json"
/* 413, named differently by each libmicrohttpd release. */
#define S_HTTP_TOO_LARGE 413
/* google.rpc.Code values of a Status body. */
#define S_RPC_INVALID_ARGUMENT 3
#define S_RPC_RESOURCE_EXHAUSTED 8
#define S_RPC_UNIMPLEMENTED 12
#define S_RPC_UNAVAILABLE 14

struct ww_otlp_http {
    ww_otlp_http_conf_t conf;
    const ww_mhd_t *mhd;
    struct MHD_Daemon *daemon;
    unsigned port;
    int efd;
    pthread_mutex_t mu;
    /* The records waiting for the agent: q[head .. head + n), capacity cap (under mu). */
    ww_request_t *q;
    size_t head, n, cap;
    /* The metric points waiting: aq[0 .. an), capacity acap (under mu). Only the server's
     * thread adds, so the room it sees before decoding an export is still there after. */
    ww_otlp_agg_t *aq;
    size_t ahead, an, acap;     /* aq[ahead .. ahead + an) */
    ww_otlp_metrics_t *metrics; /* the server's thread only */
    ww_otlp_http_stats_t st;    /* under mu */
};

/* One POST being read (libmicrohttpd's per-request pointer). */
typedef struct {
    uint8_t *body;
    size_t len, cap;
    bool gzip;
    bool json; /* the JSON encoding (else protobuf): the reply is in the same */
    bool too_large;
    bool metrics; /* POST /v1/metrics (else /v1/traces) */
} s_post_t;

/* The records of one export while it is decoded. */
typedef struct {
    ww_otlp_http_t *self;
    ww_request_t *r;
    size_t n, cap;
    uint64_t refused; /* an unknown model, a time out of bounds (s_slot) */
    char why[160];    /* the first unknown model */
    bool oom;
} s_export_t;

static enum MHD_Result s_send(ww_otlp_http_t *self, struct MHD_Connection *c, unsigned status,
                              const uint8_t *body, size_t len, const char *type,
                              const char *retry_after)
{
    struct MHD_Response *r =
        self->mhd->create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) {
        return MHD_NO;
    }
    self->mhd->add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (retry_after) {
        self->mhd->add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, retry_after);
    }
    enum MHD_Result ret = self->mhd->queue_response(c, status, r);
    self->mhd->destroy_response(r);
    return ret;
}

/* text as the inside of a JSON string (quotes, backslashes and control characters
 * escaped), cut to fit cap. */
static void s_json_text(char *dst, size_t cap, const char *text)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p && n + 7 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            dst[n++] = '\\';
            dst[n++] = (char)*p;
        } else if (*p < 0x20) {
            n += (size_t)snprintf(dst + n, cap - n, "\\u%04x", *p);
        } else {
            dst[n++] = (char)*p;
        }
    }
    dst[n] = '\0';
}

/* An error reply: a Status (google.rpc.Status's fields 1 and 2, in the request's encoding)
 * with the reason, counted. */
static enum MHD_Result s_fail(ww_otlp_http_t *self, struct MHD_Connection *c, unsigned status,
                              int32_t code, const char *reason, bool json)
{
    pthread_mutex_lock(&self->mu);
    if (status == MHD_HTTP_BAD_REQUEST) {
        self->st.bad_request++;
    } else if (status == S_HTTP_TOO_LARGE) {
        self->st.too_large++;
    } else if (status == MHD_HTTP_SERVICE_UNAVAILABLE) {
        self->st.overloaded++;
    } else {
        self->st.unsupported++;
    }
    pthread_mutex_unlock(&self->mu);
    const char *retry = status == MHD_HTTP_SERVICE_UNAVAILABLE ? "1" : NULL;
    if (json) {
        char text[400], body[512];
        s_json_text(text, sizeof text, reason);
        int len = snprintf(body, sizeof body, "{\"code\":%d,\"message\":\"%s\"}", (int)code, text);
        return s_send(self, c, status, (const uint8_t *)body, (size_t)len, S_JSON, retry);
    }
    Ww__Otlp__V1__RpcStatus st = WW__OTLP__V1__RPC_STATUS__INIT;
    st.code = code;
    st.message = (char *)reason;
    uint8_t buf[512];
    size_t len = 0;
    if (ww__otlp__v1__rpc_status__get_packed_size(&st) <= sizeof buf) {
        len = ww__otlp__v1__rpc_status__pack(&st, buf);
    }
    return s_send(self, c, status, buf, len, S_PROTOBUF, retry);
}

/* Appends len bytes to the body; false past max_body. */
static bool s_append(s_post_t *p, const uint8_t *data, size_t len, size_t max)
{
    if (len == 0) {
        return true; /* nothing (and maybe no buffer yet) */
    }
    if (len > max - p->len) {
        return false;
    }
    if (p->len + len > p->cap) {
        size_t cap = p->cap ? p->cap : 64 * 1024;
        while (cap < p->len + len) {
            cap *= 2;
        }
        cap = cap > max ? max : cap;
        uint8_t *b = realloc(p->body, cap);
        if (!b) {
            return false;
        }
        p->body = b;
        p->cap = cap;
    }
    memcpy(p->body + p->len, data, len);
    p->len += len;
    return true;
}

/* Inflates the gzip body in p into a new buffer of at most max bytes. Returns 0, -EFBIG past
 * max, -EBADMSG when it is not gzip (why says what zlib said), -ENOMEM. */
static int s_gunzip(s_post_t *p, size_t max, char *why, size_t why_cap)
{
    s_post_t out = {0};
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        return -ENOMEM;
    }
    z.next_in = p->body;
    z.avail_in = (uInt)p->len;
    uint8_t chunk[64 * 1024];
    int zrc = Z_OK, rc = 0;
    while (rc == 0 && zrc != Z_STREAM_END) {
        z.next_out = chunk;
        z.avail_out = sizeof chunk;
        zrc = inflate(&z, Z_NO_FLUSH);
        if (zrc != Z_OK && zrc != Z_STREAM_END) {
            snprintf(why, why_cap, "the body is not gzip: %s",
                     z.msg ? z.msg : (zrc == Z_BUF_ERROR ? "it ends early" : "zlib error"));
            rc = zrc == Z_MEM_ERROR ? -ENOMEM : -EBADMSG;
        } else if (!s_append(&out, chunk, sizeof chunk - z.avail_out, max)) {
            rc = out.len + (sizeof chunk - z.avail_out) > max ? -EFBIG : -ENOMEM;
        }
    }
    inflateEnd(&z);
    if (rc < 0) {
        free(out.body);
        return rc;
    }
    free(p->body);
    *p = out;
    return 0;
}

/* The slot of model among the agent's for a record or point that ends at end_ns; SIZE_MAX
 * (counted in *refused, the first reason kept in why) when the model is not one of them, or
 * when end_ns is past WW_OTLP_MAX_AHEAD_NS after the agent's clock or over
 * WW_OTLP_MAX_BEHIND_NS before it: its window would start where the collector refuses a
 * window (ingest.max_future 5 min, ingest.max_past 7 days), taking the batch's samples with
 * it, and a window open in the future would hold every later request until then. */
static size_t s_slot(const ww_otlp_http_t *self, const char *model, int64_t end_ns,
                     uint64_t *refused, char *why, size_t why_cap)
{
    int64_t now = ww_time_now_ns();
    if (end_ns > now + WW_OTLP_MAX_AHEAD_NS || end_ns < now - WW_OTLP_MAX_BEHIND_NS) {
        if ((*refused)++ == 0) {
            snprintf(why, why_cap,
                     "a request that ends %.0f s %s the agent's clock (at most %d s ahead, %d h "
                     "behind)",
                     fabs((double)(end_ns - now)) / 1e9, end_ns > now ? "ahead of" : "behind",
                     (int)(WW_OTLP_MAX_AHEAD_NS / WW_NS_PER_S),
                     (int)(WW_OTLP_MAX_BEHIND_NS / WW_NS_PER_S / 3600));
        }
        return SIZE_MAX;
    }
    const ww_otlp_http_conf_t *c = &self->conf;
    for (size_t slot = 0; slot < c->n_models; slot++) {
        if (strcmp(c->models[slot], model) == 0) {
            return slot;
        }
    }
    if ((*refused)++ == 0) {
        snprintf(why, why_cap, "model \"%s\" is not one of this agent's models", model);
    }
    return SIZE_MAX;
}

/* Doubles the array *v of *cap items of size (first: first items); false when out of
 * memory (*v unchanged). */
static bool s_grow(void **v, size_t *cap, size_t size, size_t first)
{
    size_t n = *cap ? 2 * *cap : first;
    void *p = realloc(*v, n * size);
    if (!p) {
        return false;
    }
    *v = p;
    *cap = n;
    return true;
}

static void s_on_request(void *arg, const char *model, const ww_request_t *r)
{
    s_export_t *e = arg;
    size_t slot = s_slot(e->self, model, r->done_ns, &e->refused, e->why, sizeof e->why);
    if (slot == SIZE_MAX) {
        return;
    }
    if (e->n == e->cap && !s_grow((void **)&e->r, &e->cap, sizeof *e->r, 256)) {
        e->oom = true;
        return;
    }
    e->r[e->n] = *r;
    e->r[e->n].model = (uint32_t)slot;
    e->n++;
}

static int s_by_done(const void *a, const void *b)
{
    const ww_request_t *x = a, *y = b;
    return (x->done_ns > y->done_ns) - (x->done_ns < y->done_ns);
}

/* Queues the export's records whole, or none. Returns false when they do not fit. */
static bool s_enqueue(ww_otlp_http_t *self, const s_export_t *e, uint64_t spans, uint64_t refused)
{
    pthread_mutex_lock(&self->mu);
    bool ok = self->n + e->n <= self->conf.max_queue;
    if (ok && self->head + self->n + e->n > self->cap) {
        if (self->n > 0) { /* (never with a NULL queue: UBSan holds memmove to that) */
            memmove(self->q, self->q + self->head, self->n * sizeof *self->q);
        }
        self->head = 0;
        if (self->n + e->n > self->cap) {
            size_t cap = self->cap ? self->cap : 1024;
            while (cap < self->n + e->n) {
                cap *= 2;
            }
            cap = cap > self->conf.max_queue ? self->conf.max_queue : cap;
            ww_request_t *q = realloc(self->q, cap * sizeof *q);
            ok = q != NULL;
            if (q) {
                self->q = q;
                self->cap = cap;
            }
        }
    }
    if (ok) {
        if (e->n > 0) {
            memcpy(self->q + self->head + self->n, e->r, e->n * sizeof *e->r);
        }
        self->n += e->n;
        self->st.exports++;
        self->st.spans += spans;
        self->st.requests += e->n;
        self->st.refused += refused;
    }
    pthread_mutex_unlock(&self->mu);
    if (ok && e->n > 0) {
        uint64_t one = 1;
        ssize_t w = write(self->efd, &one, sizeof one); /* full: already readable */
        (void)w;
    }
    return ok;
}

/* The JSON body into its protobuf encoding (a trace or, for /v1/metrics, a metrics export),
 * replacing it. Returns 0, -EBADMSG with why, -ENOMEM. */
static int s_from_json(s_post_t *p, char *why, size_t why_cap)
{
    char *text = malloc(p->len + 1); /* NUL-terminated for the reader */
    if (!text) {
        return -ENOMEM;
    }
    if (p->len > 0) { /* an empty body has no buffer */
        memcpy(text, p->body, p->len);
    }
    text[p->len] = '\0';
    if (memchr(text, '\0', p->len)) {
        free(text);
        snprintf(why, why_cap, "not JSON: a NUL byte in the body");
        return -EBADMSG;
    }
    uint8_t *pb = NULL;
    size_t len = 0;
    int rc = p->metrics ? ww_otlp_json_metrics_to_pb(text, &pb, &len, why, why_cap)
                        : ww_otlp_json_to_pb(text, &pb, &len, why, why_cap);
    free(text);
    if (rc == 0) {
        free(p->body);
        p->body = pb;
        p->len = p->cap = len;
    }
    return rc;
}

/* The 200 reply: an Export{Trace,Metrics}ServiceResponse in the request's encoding, with
 * partial_success when request spans (metrics: data points) were refused. */
static enum MHD_Result s_accept(ww_otlp_http_t *self, struct MHD_Connection *c, bool json,
                                bool metrics, uint64_t refused, const char *why)
{
    if (json) {
        char text[300], body[400];
        s_json_text(text, sizeof text, why);
        int len = refused == 0 ? snprintf(body, sizeof body, "{}")
                               : snprintf(body, sizeof body,
                                          "{\"partialSuccess\":{\"%s\":\"%llu\","
                                          "\"errorMessage\":\"%s\"}}",
                                          metrics ? "rejectedDataPoints" : "rejectedSpans",
                                          (unsigned long long)refused, text);
        return s_send(self, c, MHD_HTTP_OK, (const uint8_t *)body, (size_t)len, S_JSON, NULL);
    }
    char msg[200];
    snprintf(msg, sizeof msg, "%s", why);
    uint8_t buf[256];
    size_t len = 0;
    if (metrics) {
        Ww__Otlp__V1__ExportMetricsServiceResponse resp =
            WW__OTLP__V1__EXPORT_METRICS_SERVICE_RESPONSE__INIT;
        Ww__Otlp__V1__ExportMetricsPartialSuccess part =
            WW__OTLP__V1__EXPORT_METRICS_PARTIAL_SUCCESS__INIT;
        part.rejected_data_points = (int64_t)refused;
        part.error_message = msg;
        resp.partial_success = refused > 0 ? &part : NULL;
        if (ww__otlp__v1__export_metrics_service_response__get_packed_size(&resp) <= sizeof buf) {
            len = ww__otlp__v1__export_metrics_service_response__pack(&resp, buf);
        }
    } else {
        Ww__Otlp__V1__ExportTraceServiceResponse resp =
            WW__OTLP__V1__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
        Ww__Otlp__V1__ExportTracePartialSuccess part =
            WW__OTLP__V1__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
        part.rejected_spans = (int64_t)refused;
        part.error_message = msg;
        resp.partial_success = refused > 0 ? &part : NULL;
        if (ww__otlp__v1__export_trace_service_response__get_packed_size(&resp) <= sizeof buf) {
            len = ww__otlp__v1__export_trace_service_response__pack(&resp, buf);
        }
    }
    return s_send(self, c, MHD_HTTP_OK, buf, len, S_PROTOBUF, NULL);
}

static enum MHD_Result s_export_metrics(ww_otlp_http_t *self, struct MHD_Connection *c,
                                        s_post_t *p);

/* The whole body is read: decode, queue, answer. */
static enum MHD_Result s_export(ww_otlp_http_t *self, struct MHD_Connection *c, s_post_t *p)
{
    char why[200];
    bool json = p->json;
    if (p->too_large) {
        snprintf(why, sizeof why, "the body is over %zu bytes", self->conf.max_body);
        return s_fail(self, c, S_HTTP_TOO_LARGE, S_RPC_INVALID_ARGUMENT, why, json);
    }
    int rc = p->gzip ? s_gunzip(p, self->conf.max_body, why, sizeof why) : 0;
    if (rc == -EFBIG) {
        snprintf(why, sizeof why, "the body decompresses to over %zu bytes", self->conf.max_body);
        return s_fail(self, c, S_HTTP_TOO_LARGE, S_RPC_INVALID_ARGUMENT, why, json);
    }
    if (rc == 0 && json) {
        rc = s_from_json(p, why, sizeof why);
    }
    if (rc == 0 && p->metrics) {
        return s_export_metrics(self, c, p);
    }
    s_export_t e = {.self = self};
    ww_otlp_trace_counts_t counts;
    if (rc == 0) {
        snprintf(why, sizeof why, "the body is not an OTLP ExportTraceServiceRequest (protobuf)");
        rc = ww_otlp_trace_decode(p->body, p->len, &self->conf.trace, s_on_request, &e, &counts);
    }
    if (rc == 0 && e.oom) {
        rc = -ENOMEM;
    }
    if (rc < 0) {
        free(e.r);
        return rc == -EBADMSG
                   ? s_fail(self, c, MHD_HTTP_BAD_REQUEST, S_RPC_INVALID_ARGUMENT, why, json)
                   : s_fail(self, c, MHD_HTTP_SERVICE_UNAVAILABLE, S_RPC_UNAVAILABLE,
                            "out of memory: retry later", json);
    }
    if (e.n > 1) {
        qsort(e.r, e.n, sizeof *e.r, s_by_done);
    }
    uint64_t refused = counts.incomplete + counts.invalid + e.refused;
    bool queued = s_enqueue(self, &e, counts.spans, refused);
    free(e.r);
    if (!queued) {
        return s_fail(self, c, MHD_HTTP_SERVICE_UNAVAILABLE, S_RPC_RESOURCE_EXHAUSTED,
                      "the agent's queue of requests is full: retry later", json);
    }
    return s_accept(self, c, json, false, refused, counts.why[0] ? counts.why : e.why);
}

/* The points of one metrics export while it is decoded. */
typedef struct {
    ww_otlp_http_t *self;
    ww_otlp_agg_t *a;
    size_t n, cap;
    uint64_t refused; /* an unknown model, a time out of bounds (s_slot) */
    char why[160];
    bool oom;
} s_mexport_t;

static void s_on_point(void *arg, const char *model, const ww_otlp_m_point_t *p)
{
    s_mexport_t *e = arg;
    size_t slot = s_slot(e->self, model, p->time_ns, &e->refused, e->why, sizeof e->why);
    if (slot == SIZE_MAX) {
        return;
    }
    if (e->n == e->cap && !s_grow((void **)&e->a, &e->cap, sizeof *e->a, 64)) {
        e->oom = true;
        return;
    }
    ww_otlp_agg_t *a = &e->a[e->n];
    memset(a, 0, sizeof *a);
    a->model = (unsigned)slot;
    a->kind = p->kind;
    a->time_ns = p->time_ns;
    a->count = p->count;
    a->prompt_tokens = p->prompt_tokens;
    a->output_tokens = p->output_tokens;
    ww_hist_init(&a->hist, p->hist ? p->hist->scale : WW_HIST_DEFAULT_SCALE);
    if (p->hist && ww_hist_merge(&a->hist, p->hist) < 0) {
        ww_hist_fini(&a->hist);
        e->oom = true;
        return;
    }
    e->n++;
}

static void s_mexport_free(s_mexport_t *e)
{
    for (size_t i = 0; i < e->n; i++) {
        ww_hist_fini(&e->a[i].hist);
    }
    free(e->a);
}

/* A whole metrics body (decompressed): decode into the points, queue them, answer. */
static enum MHD_Result s_export_metrics(ww_otlp_http_t *self, struct MHD_Connection *c, s_post_t *p)
{
    pthread_mutex_lock(&self->mu);
    size_t room = self->conf.max_queue > self->an ? self->conf.max_queue - self->an : 0;
    pthread_mutex_unlock(&self->mu);
    s_mexport_t e = {.self = self};
    ww_otlp_metrics_counts_t counts;
    int rc = ww_otlp_metrics_decode(self->metrics, p->body, p->len, room, s_on_point, &e, &counts);
    if (rc == 0 && e.oom) {
        rc = -ENOMEM;
    }
    if (rc < 0) {
        s_mexport_free(&e);
        return rc == -EBADMSG
                   ? s_fail(self, c, MHD_HTTP_BAD_REQUEST, S_RPC_INVALID_ARGUMENT,
                            "the body is not an OTLP ExportMetricsServiceRequest (protobuf)",
                            p->json)
               : rc == -ENOSPC
                   ? s_fail(self, c, MHD_HTTP_SERVICE_UNAVAILABLE, S_RPC_RESOURCE_EXHAUSTED,
                            "the agent's queue of metric points is full: retry later", p->json)
                   : s_fail(self, c, MHD_HTTP_SERVICE_UNAVAILABLE, S_RPC_UNAVAILABLE,
                            "out of memory: retry later", p->json);
    }
    pthread_mutex_lock(&self->mu);
    bool ok = true;
    if (self->ahead + self->an + e.n > self->acap) {
        if (self->an > 0) { /* what was taken is dropped from the front */
            memmove(self->aq, self->aq + self->ahead, self->an * sizeof *self->aq);
        }
        self->ahead = 0;
    }
    if (self->an + e.n > self->acap) {
        size_t cap = self->acap ? self->acap : 256;
        while (cap < self->an + e.n) {
            cap *= 2;
        }
        ww_otlp_agg_t *q = realloc(self->aq, cap * sizeof *q);
        ok = q != NULL;
        if (q) {
            self->aq = q;
            self->acap = cap;
        }
    }
    uint64_t refused = counts.refused + e.refused;
    if (ok) {
        if (e.n > 0) {
            memcpy(self->aq + self->ahead + self->an, e.a, e.n * sizeof *e.a);
        }
        self->an += e.n;
        self->st.metric_exports++;
        self->st.points += counts.points;
        self->st.points_taken += e.n;
        self->st.points_refused += refused;
    }
    pthread_mutex_unlock(&self->mu);
    if (!ok) {
        s_mexport_free(&e);
        return s_fail(self, c, MHD_HTTP_SERVICE_UNAVAILABLE, S_RPC_UNAVAILABLE,
                      "out of memory: retry later", p->json);
    }
    free(e.a); /* the histograms moved into the queue */
    if (e.n > 0) {
        uint64_t one = 1;
        ssize_t w = write(self->efd, &one, sizeof one); /* full: already readable */
        (void)w;
    }
    return s_accept(self, c, p->json, true, refused, counts.why[0] ? counts.why : e.why);
}

/* Whether header value v is `want` (case-insensitive), parameters after ';' aside. */
static bool s_is(const char *v, const char *want)
{
    size_t n = strlen(want);
    return v && strncasecmp(v, want, n) == 0 && (v[n] == '\0' || v[n] == ';' || v[n] == ' ');
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls)
{
    (void)version;
    ww_otlp_http_t *self = cls;
    s_post_t *p = *con_cls;
    if (!p) {
        /* The headers: refuse what is not ours before reading a body (in JSON when the
         * request is JSON). */
        const char *type =
            self->mhd->lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        bool json = s_is(type, S_JSON);
        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
            return s_fail(self, c, MHD_HTTP_METHOD_NOT_ALLOWED, S_RPC_UNIMPLEMENTED,
                          "use POST (OTLP/HTTP)", json);
        }
        bool metrics = strcmp(url, "/v1/metrics") == 0;
        if (!metrics && strcmp(url, "/v1/traces") != 0) {
            return s_fail(self, c, MHD_HTTP_NOT_FOUND, S_RPC_UNIMPLEMENTED,
                          "not found: spans go to /v1/traces, metrics to /v1/metrics", json);
        }
        if (!json && !s_is(type, S_PROTOBUF)) {
            return s_fail(self, c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, S_RPC_UNIMPLEMENTED,
                          "Content-Type must be application/x-protobuf or application/json", false);
        }
        const char *enc = self->mhd->lookup_connection_value(c, MHD_HEADER_KIND,
                                                             MHD_HTTP_HEADER_CONTENT_ENCODING);
        if (enc && !s_is(enc, "gzip") && !s_is(enc, "identity")) {
            return s_fail(self, c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, S_RPC_UNIMPLEMENTED,
                          "Content-Encoding must be gzip or none", json);
        }
        const char *clen =
            self->mhd->lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (clen && strtoull(clen, NULL, 10) > self->conf.max_body) {
            char why[120];
            snprintf(why, sizeof why, "the body is over %zu bytes", self->conf.max_body);
            return s_fail(self, c, S_HTTP_TOO_LARGE, S_RPC_INVALID_ARGUMENT, why, json);
        }
        if (!(p = calloc(1, sizeof *p))) {
            return MHD_NO;
        }
        p->gzip = s_is(enc, "gzip");
        p->json = json;
        p->metrics = metrics;
        *con_cls = p;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!p->too_large &&
            !s_append(p, (const uint8_t *)upload_data, *upload_data_size, self->conf.max_body)) {
            p->too_large = true; /* read on and refused whole (413) */
            free(p->body);
            p->body = NULL;
            p->len = p->cap = 0;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    return s_export(self, c, p);
}

static void s_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    s_post_t *p = *con_cls;
    if (p) {
        free(p->body);
        free(p);
        *con_cls = NULL;
    }
}

ww_otlp_http_t *ww_otlp_http_new(const ww_otlp_http_conf_t *conf, char *why, size_t why_cap)
{
    const ww_mhd_t *mhd = ww_mhd_get(why, why_cap);
    if (!mhd) {
        return NULL;
    }
    ww_otlp_http_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(why, why_cap, "out of memory");
        return NULL;
    }
    self->conf = *conf;
    self->mhd = mhd;
    pthread_mutex_init(&self->mu, NULL);
    if (!(self->metrics = ww_otlp_metrics_new(&conf->metrics, conf->since_ns))) {
        snprintf(why, why_cap, "out of memory");
        pthread_mutex_destroy(&self->mu);
        free(self);
        return NULL;
    }
    self->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->efd < 0) {
        snprintf(why, why_cap, "cannot make an eventfd: %s", strerror(errno));
        ww_otlp_http_destroy(&self);
        return NULL;
    }
    char addr[INET6_ADDRSTRLEN];
    self->daemon = ww_mhd_serve(mhd, conf->listen, s_handle, self, s_completed, 64, 30, addr,
                                sizeof addr, &self->port, why, why_cap);
    if (!self->daemon) {
        ww_otlp_http_destroy(&self);
        return NULL;
    }
    WW_INFO("listening addr=%s port=%u (OTLP/HTTP: POST /v1/traces, /v1/metrics)", addr,
            self->port);
    return self;
}

int ww_otlp_http_fd(const ww_otlp_http_t *self)
{
    return self->efd;
}

unsigned ww_otlp_http_port(const ww_otlp_http_t *self)
{
    return self->port;
}

size_t ww_otlp_http_take(ww_otlp_http_t *self, ww_request_t *out, size_t cap)
{
    pthread_mutex_lock(&self->mu);
    size_t k = self->n < cap ? self->n : cap;
    if (k > 0) {
        memcpy(out, self->q + self->head, k * sizeof *out);
    }
    self->head += k;
    self->n -= k;
    if (self->n == 0 && self->an == 0) {
        self->head = 0;
        uint64_t v;
        ssize_t r = read(self->efd, &v, sizeof v); /* EAGAIN: not readable already */
        (void)r;
    }
    pthread_mutex_unlock(&self->mu);
    return k;
}

size_t ww_otlp_http_take_points(ww_otlp_http_t *self, ww_otlp_agg_t *out, size_t cap)
{
    pthread_mutex_lock(&self->mu);
    size_t k = self->an < cap ? self->an : cap;
    if (k > 0) {
        memcpy(out, self->aq + self->ahead, k * sizeof *out);
    }
    self->ahead += k;
    self->an -= k;
    if (self->an == 0) {
        self->ahead = 0;
    }
    if (self->n == 0 && self->an == 0) {
        uint64_t v;
        ssize_t r = read(self->efd, &v, sizeof v); /* EAGAIN: not readable already */
        (void)r;
    }
    pthread_mutex_unlock(&self->mu);
    return k;
}

void ww_otlp_http_stats(const ww_otlp_http_t *self, ww_otlp_http_stats_t *out)
{
    pthread_mutex_lock((pthread_mutex_t *)&self->mu);
    *out = self->st;
    pthread_mutex_unlock((pthread_mutex_t *)&self->mu);
}

void ww_otlp_http_stop(ww_otlp_http_t *self)
{
    if (self->daemon) {
        self->mhd->stop_daemon(self->daemon); /* joins its thread, closes the socket */
        self->daemon = NULL;
    }
}

void ww_otlp_http_destroy(ww_otlp_http_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    ww_otlp_http_t *self = *self_p;
    ww_otlp_http_stop(self);
    if (self->efd >= 0) {
        close(self->efd);
    }
    pthread_mutex_destroy(&self->mu);
    free(self->q);
    for (size_t i = 0; i < self->an; i++) {
        ww_hist_fini(&self->aq[self->ahead + i].hist);
    }
    free(self->aq);
    ww_otlp_metrics_destroy(&self->metrics);
    free(self);
    *self_p = NULL;
}
