/* ww_metrics: see ww_metrics.h. */
#define WW_LOG_MODULE "metrics"
#include "ww_metrics.h"

#include "ww_buf.h"
#include "ww_log.h"
#include "ww_md.h"
#include "ww_mhd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One family. Values are uint64 bit patterns of doubles (counters, gauges) or counts:
 * counters and gauges hold one slot per series; a histogram holds, per series, the
 * non-cumulative count of each bucket (n_bounds + 1 with +Inf) and then the sum's bits.
 * Cumulative counts and _count are computed at render time from one read of the buckets,
 * so `_count` always equals the `+Inf` bucket. */
struct ww_metric {
    ww_metric_type_t type;
    char *name;
    char *help;
    char **labels; /* per series: the escaped label pairs without braces; "" for none */
    char *label;   /* the label name(s) as the listing shows them ("reason", "version,component");
                      NULL for none */
    char **values; /* the fixed values of `label`, n_series of them as given; NULL if none */
    size_t n_series;
    double *bounds;
    size_t n_bounds;
    _Atomic uint64_t *vals;
    struct ww_metric *next;
};

struct ww_metrics {
    ww_metric_t *head, *tail;
};

/* ---- numbers ---------------------------------------------------------------------- */

static uint64_t s_bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double s_double(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static void s_atomic_add_double(_Atomic uint64_t *slot, double v)
{
    uint64_t old = atomic_load_explicit(slot, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(slot, &old, s_bits(s_double(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

/* Shortest text that reads back as v: integers without a fraction or exponent, the
 * special values as Prometheus spells them. */
static void s_format_double(double v, char *out, size_t cap)
{
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
    } else if (isinf(v)) {
        snprintf(out, cap, "%s", v > 0 ? "+Inf" : "-Inf");
    } else if (v == 0) {
        snprintf(out, cap, "0");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(out, cap, "%.0f", v);
    } else {
        snprintf(out, cap, "%.15g", v);
        if (strtod(out, NULL) != v) {
            snprintf(out, cap, "%.17g", v);
        }
    }
}

/* ---- text (ww_buf) ----------------------------------------------------------------- */

/* HELP text: backslash and newline escaped. Label values: also the double quote. */
static void s_put_escaped(ww_buf_t *t, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\') {
            ww_buf_puts(t, "\\\\");
        } else if (*s == '\n') {
            ww_buf_puts(t, "\\n");
        } else if (quote && *s == '"') {
            ww_buf_puts(t, "\\\"");
        } else {
            ww_buf_put(t, s, 1);
        }
    }
}

/* ---- registry --------------------------------------------------------------------- */

static bool s_valid_name(const char *s, bool colon)
{
    if (!s || !*s) {
        return false;
    }
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon && c == ':') || (p != s && c >= '0' && c <= '9');
        if (!ok) {
            return false;
        }
    }
    return true;
}

ww_metrics_t *ww_metrics_new(void)
{
    return calloc(1, sizeof(ww_metrics_t));
}

static void s_metric_free(ww_metric_t *m)
{
    if (!m) {
        return;
    }
    for (size_t i = 0; m->labels && i < m->n_series; i++) {
        free(m->labels[i]);
    }
    free(m->labels);
    for (size_t i = 0; m->values && i < m->n_series; i++) {
        free(m->values[i]);
    }
    free(m->values);
    free(m->label);
    free(m->name);
    free(m->help);
    free(m->bounds);
    free((void *)m->vals);
    free(m);
}

void ww_metrics_destroy(ww_metrics_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    ww_metric_t *m = (*self_p)->head;
    while (m) {
        ww_metric_t *next = m->next;
        s_metric_free(m);
        m = next;
    }
    free(*self_p);
    *self_p = NULL;
}

static size_t s_slots_per_series(const ww_metric_t *m)
{
    return m->type == WW_METRIC_HISTOGRAM ? m->n_bounds + 2 : 1;
}

/* Links a family whose name, help, labels, series and bounds are set: allocates its
 * values. Frees m and returns NULL on failure. */
static ww_metric_t *s_link(ww_metrics_t *self, ww_metric_t *m)
{
    for (const ww_metric_t *o = self->head; o; o = o->next) {
        if (strcmp(o->name, m->name) == 0) {
            WW_ERROR("metric %s registered twice", m->name);
            s_metric_free(m);
            return NULL;
        }
    }
    size_t n = m->n_series * s_slots_per_series(m);
    m->vals = calloc(n, sizeof *m->vals);
    if (!m->vals) {
        s_metric_free(m);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        atomic_init(&m->vals[i], m->type == WW_METRIC_HISTOGRAM ? 0 : s_bits(0.0));
    }
    for (size_t s = 0; m->type == WW_METRIC_HISTOGRAM && s < m->n_series; s++) {
        atomic_init(&m->vals[s * s_slots_per_series(m) + m->n_bounds + 1], s_bits(0.0));
    }
    if (self->tail) {
        self->tail->next = m;
    } else {
        self->head = m;
    }
    self->tail = m;
    return m;
}

static char *s_label_pair(const char *name, const char *value)
{
    ww_buf_t t = {0};
    ww_buf_puts(&t, name);
    ww_buf_puts(&t, "=\"");
    s_put_escaped(&t, value, true);
    ww_buf_puts(&t, "\"");
    return ww_buf_take(&t); /* NULL when out of memory */
}

ww_metric_t *ww_metrics_add(ww_metrics_t *self, ww_metric_type_t type, const char *name,
                            const char *help, const char *label, const char *const *values,
                            const double *buckets, size_t n_buckets)
{
    if (!self || !s_valid_name(name, true) || !help ||
        (type != WW_METRIC_COUNTER && type != WW_METRIC_GAUGE && type != WW_METRIC_HISTOGRAM)) {
        return NULL;
    }
    size_t n_values = 0;
    if (label) {
        if (!s_valid_name(label, false) || strncmp(label, "__", 2) == 0 ||
            strcmp(label, "le") == 0 || !values) {
            return NULL;
        }
        while (values[n_values]) {
            n_values++;
        }
        if (n_values == 0 || n_values > WW_METRICS_MAX_SERIES) {
            return NULL;
        }
    }
    if (type == WW_METRIC_HISTOGRAM) {
        if (!buckets || n_buckets == 0 || n_buckets > WW_METRICS_MAX_BUCKETS) {
            return NULL;
        }
        for (size_t i = 0; i < n_buckets; i++) {
            if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1]))) {
                return NULL;
            }
        }
    } else if (buckets || n_buckets) {
        return NULL;
    }
    ww_metric_t *m = calloc(1, sizeof *m);
    if (!m) {
        return NULL;
    }
    m->type = type;
    m->n_series = label ? n_values : 1;
    m->name = strdup(name);
    m->help = strdup(help);
    m->labels = calloc(m->n_series, sizeof *m->labels);
    if (!m->name || !m->help || !m->labels) {
        s_metric_free(m);
        return NULL;
    }
    if (label &&
        (!(m->label = strdup(label)) || !(m->values = calloc(n_values, sizeof *m->values)))) {
        s_metric_free(m);
        return NULL;
    }
    for (size_t i = 0; i < m->n_series; i++) {
        m->labels[i] = label ? s_label_pair(label, values[i]) : strdup("");
        if (!m->labels[i] || (label && !(m->values[i] = strdup(values[i])))) {
            s_metric_free(m);
            return NULL;
        }
    }
    if (type == WW_METRIC_HISTOGRAM) {
        m->bounds = malloc(n_buckets * sizeof *m->bounds);
        if (!m->bounds) {
            s_metric_free(m);
            return NULL;
        }
        memcpy(m->bounds, buckets, n_buckets * sizeof *m->bounds);
        m->n_bounds = n_buckets;
    }
    return s_link(self, m);
}

ww_metric_t *ww_metrics_counter(ww_metrics_t *self, const char *name, const char *help)
{
    return ww_metrics_add(self, WW_METRIC_COUNTER, name, help, NULL, NULL, NULL, 0);
}

ww_metric_t *ww_metrics_gauge(ww_metrics_t *self, const char *name, const char *help)
{
    return ww_metrics_add(self, WW_METRIC_GAUGE, name, help, NULL, NULL, NULL, 0);
}

ww_metric_t *ww_metrics_histogram(ww_metrics_t *self, const char *name, const char *help,
                                  const double *buckets, size_t n_buckets)
{
    return ww_metrics_add(self, WW_METRIC_HISTOGRAM, name, help, NULL, NULL, buckets, n_buckets);
}

int ww_metrics_build_info(ww_metrics_t *self, const char *prefix, const char *version,
                          const char *component)
{
    if (!self || !prefix || !version || !component) {
        return -EINVAL;
    }
    char name[256];
    if ((size_t)snprintf(name, sizeof name, "%s_build_info", prefix) >= sizeof name) {
        return -EINVAL;
    }
    ww_metric_t *m = ww_metrics_gauge(self, name, "Build information; the value is always 1.");
    if (!m) {
        return -EINVAL;
    }
    /* Two constant labels: replace the unlabelled series' empty label text. */
    char *v = s_label_pair("version", version);
    free(m->label);
    m->label = strdup("version,component"); /* listed without values: the version varies */
    char *c = s_label_pair("component", component);
    size_t cap = v && c ? strlen(v) + strlen(c) + 2 : 0;
    char *both = cap ? malloc(cap) : NULL;
    if (both) {
        snprintf(both, cap, "%s,%s", v, c);
        free(m->labels[0]);
        m->labels[0] = both;
    }
    free(v);
    free(c);
    if (!both) {
        return -ENOMEM; /* the family stays, unlabelled */
    }
    ww_metric_set(m, 0, 1);
    return 0;
}

/* ---- updates ---------------------------------------------------------------------- */

void ww_metric_set(ww_metric_t *m, size_t series, double v)
{
    if (!m || series >= m->n_series || m->type == WW_METRIC_HISTOGRAM) {
        return;
    }
    atomic_store_explicit(&m->vals[series], s_bits(v), memory_order_relaxed);
}

void ww_metric_add(ww_metric_t *m, size_t series, double v)
{
    if (!m || series >= m->n_series || m->type == WW_METRIC_HISTOGRAM) {
        return;
    }
    s_atomic_add_double(&m->vals[series], v);
}

void ww_metric_observe(ww_metric_t *m, size_t series, double v)
{
    if (!m || series >= m->n_series || m->type != WW_METRIC_HISTOGRAM) {
        return;
    }
    _Atomic uint64_t *slots = &m->vals[series * s_slots_per_series(m)];
    size_t b = 0;
    while (b < m->n_bounds && !(v <= m->bounds[b])) { /* NaN lands in +Inf */
        b++;
    }
    atomic_fetch_add_explicit(&slots[b], 1, memory_order_relaxed);
    s_atomic_add_double(&slots[m->n_bounds + 1], v);
}

double ww_metric_value(const ww_metric_t *m, size_t series)
{
    if (!m || series >= m->n_series) {
        return 0;
    }
    if (m->type != WW_METRIC_HISTOGRAM) {
        return s_double(atomic_load_explicit(&m->vals[series], memory_order_relaxed));
    }
    const _Atomic uint64_t *slots = &m->vals[series * s_slots_per_series(m)];
    uint64_t n = 0;
    for (size_t b = 0; b <= m->n_bounds; b++) {
        n += atomic_load_explicit(&slots[b], memory_order_relaxed);
    }
    return (double)n;
}

/* ---- exposition ------------------------------------------------------------------- */

static const char *s_type_name(ww_metric_type_t t)
{
    switch (t) {
    case WW_METRIC_COUNTER:
        return "counter";
    case WW_METRIC_GAUGE:
        return "gauge";
    case WW_METRIC_HISTOGRAM:
        return "histogram";
    }
    return "untyped";
}

/* name{labels[,extra]} value */
static void s_series_line(ww_buf_t *t, const char *name, const char *suffix, const char *labels,
                          const char *extra, const char *value)
{
    ww_buf_puts(t, name);
    ww_buf_puts(t, suffix);
    bool have = labels && *labels;
    if (have || extra) {
        ww_buf_puts(t, "{");
        if (have) {
            ww_buf_puts(t, labels);
        }
        if (extra) {
            ww_buf_printf(t, "%s%s", have ? "," : "", extra);
        }
        ww_buf_puts(t, "}");
    }
    ww_buf_printf(t, " %s\n", value);
}

static void s_render_histogram(ww_buf_t *t, const ww_metric_t *m, size_t s)
{
    const _Atomic uint64_t *slots = &m->vals[s * s_slots_per_series(m)];
    uint64_t counts[WW_METRICS_MAX_BUCKETS + 1];
    for (size_t b = 0; b <= m->n_bounds; b++) {
        counts[b] = atomic_load_explicit(&slots[b], memory_order_relaxed);
    }
    double sum = s_double(atomic_load_explicit(&slots[m->n_bounds + 1], memory_order_relaxed));
    uint64_t cum = 0;
    char num[64], le[80];
    for (size_t b = 0; b <= m->n_bounds; b++) {
        cum += counts[b];
        if (b < m->n_bounds) {
            s_format_double(m->bounds[b], num, sizeof num);
            snprintf(le, sizeof le, "le=\"%s\"", num);
        } else {
            snprintf(le, sizeof le, "le=\"+Inf\"");
        }
        snprintf(num, sizeof num, "%llu", (unsigned long long)cum);
        s_series_line(t, m->name, "_bucket", m->labels[s], le, num);
    }
    s_format_double(sum, num, sizeof num);
    s_series_line(t, m->name, "_sum", m->labels[s], NULL, num);
    snprintf(num, sizeof num, "%llu", (unsigned long long)cum);
    s_series_line(t, m->name, "_count", m->labels[s], NULL, num);
}

int ww_metrics_render(const ww_metrics_t *self, char **out, size_t *len)
{
    ww_buf_t t = {0};
    ww_buf_reserve(&t, 0);
    for (const ww_metric_t *m = self ? self->head : NULL; m; m = m->next) {
        ww_buf_printf(&t, "# HELP %s ", m->name);
        s_put_escaped(&t, m->help, false);
        ww_buf_printf(&t, "\n# TYPE %s %s\n", m->name, s_type_name(m->type));
        for (size_t s = 0; s < m->n_series; s++) {
            if (m->type == WW_METRIC_HISTOGRAM) {
                s_render_histogram(&t, m, s);
            } else {
                char num[64];
                s_format_double(ww_metric_value(m, s), num, sizeof num);
                s_series_line(&t, m->name, "", m->labels[s], NULL, num);
            }
        }
    }
    if (t.oom) {
        ww_buf_free(&t);
        *out = NULL;
        *len = 0;
        return -ENOMEM;
    }
    *out = t.p;
    *len = t.len;
    return 0;
}

/* ---- listing ---------------------------------------------------------------------- */

void ww_metrics_markdown(const ww_metrics_t *self, FILE *out)
{
    fputs("| metric | type | labels | help |\n|---|---|---|---|\n", out);
    for (const ww_metric_t *m = self ? self->head : NULL; m; m = m->next) {
        fputs("| ", out);
        ww_md_code(out, m->name);
        fprintf(out, " | %s | ", s_type_name(m->type));
        /* "`reason`: `a`, `b`"; "`version`, `component`"; a histogram's `le` bounds */
        for (const char *l = m->label; l && *l;) {
            size_t len = strcspn(l, ",");
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)len, l);
            ww_md_code(out, name);
            l += len + (l[len] == ',');
            fputs(*l ? ", " : "", out);
        }
        for (size_t i = 0; m->values && i < m->n_series; i++) {
            fputs(i ? ", " : ": ", out);
            ww_md_code(out, m->values[i]);
        }
        if (m->type == WW_METRIC_HISTOGRAM) {
            fputs(m->label ? "; " : "", out);
            ww_md_code(out, "le");
            fputs(":", out);
            for (size_t b = 0; b < m->n_bounds; b++) {
                char num[64];
                s_format_double(m->bounds[b], num, sizeof num);
                fprintf(out, "%s%s", b ? ", " : " ", num);
            }
            fputs(", +Inf", out);
        }
        fputs(" | ", out);
        ww_md_text(out, m->help);
        fputs(" |\n", out);
    }
}

/* ---- listen address --------------------------------------------------------------- */

int ww_metrics_check_listen(const char *address, char *why, size_t why_cap)
{
    struct sockaddr_storage sa;
    socklen_t salen;
    if (ww_metrics_parse_listen(address, &sa, &salen, why, why_cap) < 0) {
        return -EINVAL;
    }
    return ww_mhd_get(why, why_cap) != NULL ? 0 : -EINVAL;
}

int ww_metrics_parse_listen(const char *address, struct sockaddr_storage *addr, socklen_t *addrlen,
                            char *why, size_t why_cap)
{
    char host[256];
    const char *port_text;
    if (!address || !*address) {
        snprintf(why, why_cap, "empty address: expected HOST:PORT, [IPV6]:PORT or *:PORT");
        return -EINVAL;
    }
    bool v6 = address[0] == '[';
    if (v6) {
        const char *end = strchr(address, ']');
        if (!end || end[1] != ':') {
            snprintf(why, why_cap, "\"%s\": expected [IPV6]:PORT", address);
            return -EINVAL;
        }
        size_t n = (size_t)(end - address - 1);
        if (n >= sizeof host) {
            snprintf(why, why_cap, "\"%s\": address too long", address);
            return -EINVAL;
        }
        memcpy(host, address + 1, n);
        host[n] = '\0';
        port_text = end + 2;
    } else {
        const char *colon = strrchr(address, ':');
        if (!colon) {
            snprintf(why, why_cap, "\"%s\": no port: expected HOST:PORT, e.g. 0.0.0.0:9477",
                     address);
            return -EINVAL;
        }
        if (strchr(address, ':') != colon) {
            snprintf(why, why_cap, "\"%s\": an IPv6 address goes in brackets: [::1]:9477", address);
            return -EINVAL;
        }
        size_t n = (size_t)(colon - address);
        if (n >= sizeof host) {
            snprintf(why, why_cap, "\"%s\": host name too long", address);
            return -EINVAL;
        }
        memcpy(host, address, n);
        host[n] = '\0';
        port_text = colon + 1;
    }
    long port = 0;
    if (!*port_text || strlen(port_text) > 5 ||
        strspn(port_text, "0123456789") != strlen(port_text) ||
        (port = strtol(port_text, NULL, 10)) > 65535) {
        snprintf(why, why_cap, "\"%s\": the port must be a number 0..65535 (0: any free port)",
                 address);
        return -EINVAL;
    }
    memset(addr, 0, sizeof *addr);
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) {
            snprintf(why, why_cap, "\"%s\": \"%s\" is not an IPv6 address", address, host);
            return -EINVAL;
        }
        *addrlen = sizeof *a;
        return 0;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)addr;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (!*host || strcmp(host, "*") == 0) {
        a->sin_addr.s_addr = htonl(INADDR_ANY);
        *addrlen = sizeof *a;
        return 0;
    }
    if (inet_pton(AF_INET, host, &a->sin_addr) == 1) {
        *addrlen = sizeof *a;
        return 0;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int grc = getaddrinfo(host, NULL, &hints, &res);
    if (grc != 0 || !res) {
        snprintf(why, why_cap, "\"%s\": cannot resolve \"%s\": %s", address, host,
                 grc ? gai_strerror(grc) : "no address");
        return -EINVAL;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *addrlen = (socklen_t)res->ai_addrlen;
    if (addr->ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)addr)->sin6_port = htons((uint16_t)port);
    } else {
        ((struct sockaddr_in *)addr)->sin_port = htons((uint16_t)port);
    }
    freeaddrinfo(res);
    return 0;
}

/* ---- HTTP server ------------------------------------------------------------------ */

struct ww_metrics_server {
    const ww_mhd_t *mhd; /* libmicrohttpd, loaded by the first server */
    struct MHD_Daemon *daemon;
    ww_metrics_t *reg;
    ww_metrics_health_fn health;
    void *arg;
    unsigned port;
};

#define WW_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

static enum MHD_Result s_send(const ww_mhd_t *mhd, struct MHD_Connection *c, unsigned status,
                              void *body, size_t len, enum MHD_ResponseMemoryMode mode,
                              const char *content_type)
{
    struct MHD_Response *r = mhd->create_response_from_buffer(len, body, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE) {
            free(body);
        }
        return MHD_NO;
    }
    mhd->add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        mhd->add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    }
    enum MHD_Result ret = mhd->queue_response(c, status, r);
    mhd->destroy_response(r);
    return ret;
}

static enum MHD_Result s_text(const ww_mhd_t *mhd, struct MHD_Connection *c, unsigned status,
                              const char *text)
{
    return s_send(mhd, c, status, (void *)text, strlen(text), MHD_RESPMEM_MUST_COPY,
                  "text/plain; charset=utf-8");
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls)
{
    ww_metrics_server_t *self = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        return s_text(self->mhd, c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use GET\n");
    }
    if (strcmp(url, "/metrics") == 0) {
        char *body = NULL;
        size_t len = 0;
        if (ww_metrics_render(self->reg, &body, &len) < 0) {
            return s_text(self->mhd, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
        }
        return s_send(self->mhd, c, MHD_HTTP_OK, body, len, MHD_RESPMEM_MUST_FREE,
                      WW_METRICS_CONTENT_TYPE);
    }
    if (strcmp(url, "/healthz") == 0) {
        char reason[512] = "";
        if (self->health && self->health(self->arg, reason, sizeof reason - 1) != 0) {
            reason[sizeof reason - 2] = '\0';
            size_t n = strcspn(reason, "\n");
            reason[n] = '\n';
            reason[n + 1] = '\0';
            return s_text(self->mhd, c, MHD_HTTP_SERVICE_UNAVAILABLE, reason);
        }
        return s_text(self->mhd, c, MHD_HTTP_OK, "ok\n");
    }
    return s_text(self->mhd, c, MHD_HTTP_NOT_FOUND,
                  "not found: /metrics and /healthz are served here\n");
}

ww_metrics_server_t *ww_metrics_server_new(ww_metrics_t *reg, const char *address,
                                           ww_metrics_health_fn health, void *arg, char *why,
                                           size_t why_cap)
{
    struct sockaddr_storage sa;
    socklen_t salen = 0;
    if (!reg || ww_metrics_parse_listen(address, &sa, &salen, why, why_cap) < 0) {
        return NULL;
    }
    /* Loaded here, not linked: a process without metrics.listen never maps libmicrohttpd
     * and the TLS stack it pulls in (see ww_mhd.h). */
    const ww_mhd_t *mhd = ww_mhd_get(why, why_cap);
    if (!mhd) {
        return NULL;
    }
    ww_metrics_server_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(why, why_cap, "out of memory");
        return NULL;
    }
    self->mhd = mhd;
    self->reg = reg;
    self->health = health;
    self->arg = arg;
    char addr[INET6_ADDRSTRLEN];
    self->daemon = ww_mhd_serve(mhd, address, s_handle, self, NULL, 64, 10, addr, sizeof addr,
                                &self->port, why, why_cap);
    if (!self->daemon) {
        free(self);
        return NULL;
    }
    WW_INFO("listening addr=%s port=%u (http://%s%s%s:%u/metrics, /healthz)", addr, self->port,
            sa.ss_family == AF_INET6 ? "[" : "", addr, sa.ss_family == AF_INET6 ? "]" : "",
            self->port);
    return self;
}

unsigned ww_metrics_server_port(const ww_metrics_server_t *self)
{
    return self ? self->port : 0;
}

void ww_metrics_server_destroy(ww_metrics_server_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    ww_metrics_server_t *self = *self_p;
    if (self->daemon) {
        self->mhd->stop_daemon(self->daemon); /* joins the thread and closes the listen socket */
    }
    free(self);
    *self_p = NULL;
}
