/* ww_wire: see ww_wire.h. */
#define WW_LOG_MODULE "wire"
#include "ww_wire.h"

#include "ww_hist_wire.h"
#include "ww_wire_scan.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ww_wire_limits_default(ww_wire_limits_t *lim)
{
    lim->max_message_bytes = 16u << 20;
    lim->max_samples = 65536;
    lim->max_windows = 65536;
    lim->max_buckets = 8192;
    lim->max_nodes = 4096;
    lim->max_outages = 1024;
    lim->max_string = 128;
    lim->max_past_ns = INT64_C(7) * 24 * 3600 * 1000000000;
    lim->max_future_ns = INT64_C(300) * 1000000000;
}

int ww_wire_fail(ww_wire_why_t *why, int rc, const char *fmt, ...)
{
    if (why) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why->msg, sizeof why->msg, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int ww_wire_text_ok(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c < 0x20 || c == 0x7f) {
            return 0;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned min;
        unsigned cp;
        if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000, cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + n >= len) {
            return 0; /* truncated sequence */
        }
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        /* Overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8. */
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }
        i += n + 1;
    }
    return 1;
}

/* A string field: required ones must be non-empty; all bounded and clean UTF-8. */
static int s_check_str(const char *s, int required, const ww_wire_limits_t *lim, ww_wire_why_t *why,
                       const char *path)
{
    size_t len = s ? strlen(s) : 0;
    if (required && len == 0) {
        return ww_wire_fail(why, -EINVAL, "%s: required, missing or empty", path);
    }
    if (len > lim->max_string) {
        return ww_wire_fail(why, -EINVAL, "%s: %zu bytes, longer than the limit %zu", path, len,
                            lim->max_string);
    }
    if (!ww_wire_text_ok(s, len)) {
        return ww_wire_fail(why, -EINVAL, "%s: not valid UTF-8 text (control or malformed bytes)",
                            path);
    }
    return 0;
}

/* Node ids become primary-key text and file names: a conservative alphabet. */
static int s_check_node_id(const char *s, const ww_wire_limits_t *lim, ww_wire_why_t *why,
                           const char *path)
{
    int rc = s_check_str(s, 1, lim, why, path);
    if (rc < 0) {
        return rc;
    }
    if (!ww_wire_node_id_chars_ok(s)) {
        return ww_wire_fail(why, -EINVAL, "%s: \"%s\" has a character outside [A-Za-z0-9._:-]",
                            path, s);
    }
    return 0;
}

int ww_wire_node_id_chars_ok(const char *s)
{
    for (const char *p = s; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.' || c == ':';
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

static int s_check_num(double v, double lo, double hi, ww_wire_why_t *why, const char *path,
                       size_t idx, const char *field)
{
    if (!isfinite(v)) {
        return ww_wire_fail(why, -EINVAL, "%s[%zu].%s: %g is not a finite number", path, idx, field,
                            v);
    }
    if (v < lo || v > hi) {
        return ww_wire_fail(why, -EINVAL, "%s[%zu].%s: %g is outside the plausible range [%g, %g]",
                            path, idx, field, v, lo, hi);
    }
    return 0;
}

/* A time stored as timestamptz (microseconds) within the accepted window around now. */
static bool s_time_ok(int64_t t, const ww_wire_limits_t *lim, int64_t now_ns)
{
    return t > 0 && t % 1000 == 0 && t >= now_ns - lim->max_past_ns &&
           t <= now_ns + lim->max_future_ns;
}

/* Expansions of WW_READING_FIELDS (ww_fields.h) by kind and presence. */
#define S_PRESENT_ALWAYS(s, name) true
/* An unset[] entry per ALWAYS field: its bit and whether it holds a value. */
#define S_UNSET_ALWAYS(name, pb) {#name, WW_FIELD_BIT(pb), s->name != 0},
#define S_UNSET_OPTIONAL(name, pb)
#define S_UNSET_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                      \
    WW_FIELD_CAT(S_UNSET_, presence)(name, pb)
#define S_PRESENT_OPTIONAL(s, name) WW_WIRE_HAS(s, name)
#define S_PRESENT(presence, s, name) WW_FIELD_CAT(S_PRESENT_, presence)(s, name)
/* A counters[] entry for a U32 field, nothing for the others. */
#define S_COUNTER_F32(name, hi)
#define S_COUNTER_BOOL(name, hi)
#define S_COUNTER_U32(name, hi) {#name, s->name, (uint32_t)(hi)},
#define S_COUNTER_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                    \
    WW_FIELD_CAT(S_COUNTER_, kind)(name, hi)
/* A nums[] entry for an F32 field, nothing for the others. */
#define S_NUM_U32(name, presence, lo, hi, pb)
#define S_NUM_BOOL(name, presence, lo, hi, pb)
#define S_NUM_F32(name, presence, lo, hi, pb)                                                      \
    {#name, S_PRESENT(presence, s, name) && !(s->not_measured & S_BIT_##presence(pb)), s->name,    \
     lo, hi},
#define S_BIT_ALWAYS(pb) WW_FIELD_BIT(pb)
#define S_BIT_OPTIONAL(pb) 0u
#define S_NUM_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                        \
    WW_FIELD_CAT(S_NUM_, kind)(name, presence, lo, hi, pb)

int ww_wire_check_sample(const ww_node_sample_t *s, size_t i, const ww_wire_limits_t *lim,
                         int64_t now_ns, ww_wire_why_t *why)
{
    /* The time first: a sample outside the window is refused alone, like a reading, so
     * that one node's clock does not cost the batch its other nodes' samples. */
    if (!s_time_ok(s->time_ns, lim, now_ns)) {
        return ww_wire_fail(
            why, -EINVAL,
            "batch.samples[%zu].time_ns: %lld is not a whole microsecond within [now - "
            "%llds, now + %llds]",
            i, (long long)s->time_ns, (long long)(lim->max_past_ns / 1000000000),
            (long long)(lim->max_future_ns / 1000000000));
    }
    /* Readings not measured: only ALWAYS fields have a bit, and such a field must be
     * unset (a bit beside a value is a sender that contradicts itself: which is true?). */
    if (s->not_measured & ~WW_FIELD_NOT_MEASURED_BITS) {
        return ww_wire_fail(why, -EINVAL,
                            "batch.samples[%zu].not_measured: 0x%x has bits that name no "
                            "reading that may be left out (allowed: 0x%x)",
                            i, (unsigned)s->not_measured, (unsigned)WW_FIELD_NOT_MEASURED_BITS);
    }
    const struct {
        const char *name;
        uint32_t bit;
        bool set;
    } unset[] = {WW_READING_FIELDS(S_UNSET_)};
    for (size_t k = 0; k < sizeof unset / sizeof unset[0]; k++) {
        if ((s->not_measured & unset[k].bit) && unset[k].set) {
            return ww_wire_fail(why, -EINVAL,
                                "batch.samples[%zu].%s: marked not measured (not_measured) but "
                                "holds a value",
                                i, unset[k].name);
        }
    }
    /* uint32 on the wire, integer in node_samples: what does not fit is refused, never
     * clamped. The U32 fields of ww_fields.h, in its order. */
    const struct {
        const char *name;
        uint32_t v, max;
    } counters[] = {WW_READING_FIELDS(S_COUNTER_)};
    for (size_t k = 0; k < sizeof counters / sizeof counters[0]; k++) {
        if (counters[k].v > counters[k].max) {
            return ww_wire_fail(
                why, -EINVAL, "batch.samples[%zu].%s: %u is more than %u (a PostgreSQL integer)", i,
                counters[k].name, (unsigned)counters[k].v, (unsigned)counters[k].max);
        }
    }
    /* Plausible ranges (the F32 fields of ww_fields.h, in its order): loose enough for any
     * real system, tight enough that a unit mix-up (kW for W, K for °C) or garbage is
     * refused. An OPTIONAL field that was not sent is not checked (it is stored as NULL). */
    const struct {
        const char *name;
        bool present;
        double v, lo, hi;
    } nums[] = {WW_READING_FIELDS(S_NUM_)};
    for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++) {
        if (!nums[k].present) {
            continue;
        }
        int rc =
            s_check_num(nums[k].v, nums[k].lo, nums[k].hi, why, "batch.samples", i, nums[k].name);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int s_check_hello(const ww_hello_t *h, const ww_wire_limits_t *lim, ww_wire_why_t *why)
{
    char path[64];
    if (h->n_nodes == 0) {
        return ww_wire_fail(why, -EINVAL, "hello.nodes: at least one node is required");
    }
    if (h->n_nodes > lim->max_nodes) {
        return ww_wire_fail(why, -EINVAL, "hello.nodes: %zu nodes, more than the limit %zu",
                            h->n_nodes, lim->max_nodes);
    }
    int rc = s_check_str(h->agent_version, 0, lim, why, "hello.agent_version");
    if (rc == 0) {
        rc = s_check_str(h->source, 0, lim, why, "hello.source");
    }
    if (rc < 0) {
        return rc;
    }
    if (h->interval_ms > INT32_MAX) {
        return ww_wire_fail(why, -EINVAL,
                            "hello.interval_ms: %u is more than 2147483647 (a PostgreSQL integer)",
                            (unsigned)h->interval_ms);
    }
    for (size_t i = 0; i < h->n_nodes; i++) {
        const ww_node_info_t *n = h->nodes[i];
        static const char *const names[] = {"site", "hall", "rack", "phase", "system_model"};
        const char *vals[] = {n->site, n->hall, n->rack, n->phase, n->system_model};
        snprintf(path, sizeof path, "hello.nodes[%zu].node_id", i);
        if ((rc = s_check_node_id(n->node_id, lim, why, path)) < 0) {
            return rc;
        }
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
            snprintf(path, sizeof path, "hello.nodes[%zu].%s", i, names[k]);
            if ((rc = s_check_str(vals[k], 0, lim, why, path)) < 0) {
                return rc;
            }
        }
        if ((rc = s_check_num(n->rated_kw, 0, 1000, why, "hello.nodes", i, "rated_kw")) < 0) {
            return rc;
        }
    }
    return 0;
}

/* A model name becomes a label and a key of rollups: printable, bounded, non-empty. */
#define WW_MODEL_MAX 47

/* What one window may hold at per_s: per_s for the longest window, an hour. Not the
 * window's own duration: a part of a window (an agent that started inside it) covers
 * less time than its requests span, since records can complete before the first tick. */
static uint64_t s_window_max(uint64_t per_s)
{
    return 3600u * per_s;
}

/* "10^6" for a power of ten (the rates above), else the number. */
static const char *s_rate_text(uint64_t v, char *buf, size_t cap)
{
    int k = 0;
    uint64_t x = v;
    while (x >= 10 && x % 10 == 0) {
        x /= 10;
        k++;
    }
    if (x == 1 && k > 1) {
        snprintf(buf, cap, "10^%d", k);
    } else {
        snprintf(buf, cap, "%llu", (unsigned long long)v);
    }
    return buf;
}

/* A counter of window i against its bound (duration * rate). */
static int s_check_window_count(uint64_t v, const char *field, size_t i, uint64_t per_s,
                                ww_wire_why_t *why)
{
    uint64_t max = s_window_max(per_s);
    if (v <= max) {
        return 0;
    }
    char rate[24];
    return ww_wire_fail(why, -EINVAL,
                        "batch.latency_windows[%zu].%s: %llu is more than a window may hold (%s "
                        "per second for an hour: %llu)",
                        i, field, (unsigned long long)v, s_rate_text(per_s, rate, sizeof rate),
                        (unsigned long long)max);
}

static int s_check_hist(const Waferwatch__V1__Histogram *pb, const ww_wire_limits_t *lim,
                        ww_wire_why_t *why, size_t i, const char *name, uint64_t *count)
{
    char path[96];
    snprintf(path, sizeof path, "batch.latency_windows[%zu].%s", i, name);
    *count = 0;
    if (!pb) {
        return 0; /* absent: an empty histogram */
    }
    char field[32];
    snprintf(field, sizeof field, "%s.count", name);
    int rc = s_check_window_count(pb->count, field, i, WW_WIRE_MAX_REQ_PER_S, why);
    if (rc < 0) {
        return rc;
    }
    ww_hist_t h;
    rc = ww_hist_from_pb(pb, &h, lim->max_buckets, why, path);
    *count = h.count;
    ww_hist_fini(&h);
    return rc;
}

static int s_check_window(const Waferwatch__V1__LatencyWindow *w, size_t i,
                          const ww_wire_limits_t *lim, int64_t now_ns, ww_wire_why_t *why)
{
    char path[96];
    int rc;
    snprintf(path, sizeof path, "batch.latency_windows[%zu].node_id", i);
    if ((rc = s_check_node_id(w->node_id, lim, why, path)) < 0) {
        return rc;
    }
    snprintf(path, sizeof path, "batch.latency_windows[%zu].model", i);
    if ((rc = s_check_str(w->model, 1, lim, why, path)) < 0) {
        return rc;
    }
    if (strlen(w->model) > WW_MODEL_MAX) {
        return ww_wire_fail(why, -EINVAL, "%s: longer than %d bytes", path, WW_MODEL_MAX);
    }
    if (w->duration_ns < 1000000 || w->duration_ns > INT64_C(3600) * 1000000000) {
        return ww_wire_fail(why, -EINVAL,
                            "batch.latency_windows[%zu].duration_ns: %lld is outside [1 ms, 1 h]",
                            i, (long long)w->duration_ns);
    }
    /* Windows start on whole milliseconds (a grid of the duration, shifted by whole
     * sampling intervals: agents stagger their nodes' windows). */
    if (w->start_ns <= 0 || w->start_ns % 1000000 != 0 || w->start_ns < now_ns - lim->max_past_ns ||
        w->start_ns > now_ns + lim->max_future_ns) {
        return ww_wire_fail(why, -EINVAL,
                            "batch.latency_windows[%zu].start_ns: %lld is not a whole millisecond "
                            "within [now - %llds, now + %llds]",
                            i, (long long)w->start_ns, (long long)(lim->max_past_ns / 1000000000),
                            (long long)(lim->max_future_ns / 1000000000));
    }
    /* Bounded so that a window is stored as it came (bigint) and any number of windows a
     * rollup could ever merge still fits: see WW_WIRE_MAX_REQ_PER_S. */
    const struct {
        const char *name;
        uint64_t v, per_s;
    } counts[] = {
        {"requests_ok", w->requests_ok, WW_WIRE_MAX_REQ_PER_S},
        {"requests_error", w->requests_error, WW_WIRE_MAX_REQ_PER_S},
        {"requests_timeout", w->requests_timeout, WW_WIRE_MAX_REQ_PER_S},
        {"requests_rejected", w->requests_rejected, WW_WIRE_MAX_REQ_PER_S},
        {"prompt_tokens", w->prompt_tokens, WW_WIRE_MAX_TOKENS_PER_S},
        {"output_tokens", w->output_tokens, WW_WIRE_MAX_TOKENS_PER_S},
    };
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        rc = s_check_window_count(counts[k].v, counts[k].name, i, counts[k].per_s, why);
        if (rc < 0) {
            return rc;
        }
    }
    uint64_t nq, nt, np, ne;
    if ((rc = s_check_hist(w->queue, lim, why, i, "queue", &nq)) < 0 ||
        (rc = s_check_hist(w->ttft, lim, why, i, "ttft", &nt)) < 0 ||
        (rc = s_check_hist(w->tpot, lim, why, i, "tpot", &np)) < 0 ||
        (rc = s_check_hist(w->e2e, lim, why, i, "e2e", &ne)) < 0) {
        return rc;
    }
    /* Each successful request is one TTFT and one end-to-end value; queue time is
     * recorded for every admitted request (ok or error); TPOT needs two output tokens.
     * Not for an aggregated window: its histograms were counted apart (waferwatch.proto). */
    if (!w->aggregated && (nt != w->requests_ok || ne != w->requests_ok || np > w->requests_ok ||
                           nq != w->requests_ok + w->requests_error)) {
        return ww_wire_fail(
            why, -EINVAL,
            "batch.latency_windows[%zu]: histogram counts (queue %llu, ttft %llu, "
            "tpot %llu, e2e %llu) disagree with requests_ok %llu / requests_error %llu",
            i, (unsigned long long)nq, (unsigned long long)nt, (unsigned long long)np,
            (unsigned long long)ne, (unsigned long long)w->requests_ok,
            (unsigned long long)w->requests_error);
    }
    return 0;
}

/* SpoolLoss counters go to bigint columns. */
static int s_check_loss(const Waferwatch__V1__SpoolLoss *l, ww_wire_why_t *why)
{
    if (!l) {
        return 0;
    }
    const struct {
        const char *name;
        uint64_t v;
    } f[] = {
        {"dropped_batches", l->dropped_batches},
        {"corrupt_records", l->corrupt_records},
        {"skipped_ticks", l->skipped_ticks},
    };
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
        if (f[k].v > (uint64_t)INT64_MAX) {
            return ww_wire_fail(why, -EINVAL,
                                "batch.loss.%s: %llu is more than 2^63 - 1 (a PostgreSQL bigint)",
                                f[k].name, (unsigned long long)f[k].v);
        }
    }
    return 0;
}

/* Outages go to stream_outages, keyed by (agent, epoch, to_time): times are whole
 * microseconds (timestamptz), counts bigint, and to_ns is unique within the batch. */
static int s_check_outages(const ww_batch_t *b, const ww_wire_limits_t *lim, int64_t now_ns,
                           ww_wire_why_t *why)
{
    if (b->n_outages > lim->max_outages) {
        return ww_wire_fail(why, -EINVAL, "batch.outages: %zu outages, more than the limit %zu",
                            b->n_outages, lim->max_outages);
    }
    for (size_t i = 0; i < b->n_outages; i++) {
        const ww_outage_t *o = b->outages[i];
        if (!s_time_ok(o->to_ns, lim, now_ns)) {
            return ww_wire_fail(why, -EINVAL,
                                "batch.outages[%zu].to_ns: %lld is not a whole microsecond within "
                                "[now - %llds, now + %llds]",
                                i, (long long)o->to_ns, (long long)(lim->max_past_ns / 1000000000),
                                (long long)(lim->max_future_ns / 1000000000));
        }
        if (o->from_ns != 0 && (o->from_ns < 0 || o->from_ns % 1000 != 0 || o->from_ns > o->to_ns ||
                                o->from_ns < o->to_ns - WW_WIRE_MAX_OUTAGE_NS)) {
            return ww_wire_fail(
                why, -EINVAL,
                "batch.outages[%zu].from_ns: %lld is neither 0 (not known) nor a whole "
                "microsecond within [to_ns - 366 days, to_ns]",
                i, (long long)o->from_ns);
        }
        if (o->lost_ticks > (uint64_t)INT64_MAX || o->lost_requests > (uint64_t)INT64_MAX) {
            return ww_wire_fail(
                why, -EINVAL,
                "batch.outages[%zu].%s: %llu is more than 2^63 - 1 (a PostgreSQL bigint)", i,
                o->lost_ticks > (uint64_t)INT64_MAX ? "lost_ticks" : "lost_requests",
                (unsigned long long)(o->lost_ticks > (uint64_t)INT64_MAX ? o->lost_ticks
                                                                         : o->lost_requests));
        }
        const char *cause = o->cause ? o->cause : "";
        if (strcmp(cause, "stop") != 0 && strcmp(cause, "crash") != 0) {
            char path[48];
            snprintf(path, sizeof path, "batch.outages[%zu].cause", i);
            int rc = s_check_str(cause, 1, lim, why, path);
            if (rc < 0) {
                return rc;
            }
            return ww_wire_fail(why, -EINVAL, "%s: \"%s\" is neither \"stop\" nor \"crash\"", path,
                                cause);
        }
        for (size_t k = 0; k < i; k++) {
            if (b->outages[k]->to_ns == o->to_ns) {
                return ww_wire_fail(why, -EINVAL,
                                    "batch.outages[%zu].to_ns: %lld is also outages[%zu]'s (one "
                                    "outage ends at a time)",
                                    i, (long long)o->to_ns, k);
            }
        }
    }
    return 0;
}

static int s_check_batch(const ww_envelope_t *env, const ww_wire_limits_t *lim, int64_t now_ns,
                         ww_wire_why_t *why)
{
    const ww_batch_t *b = env->batch;
    char path[64];
    int rc;
    if (env->epoch == 0 || env->seq == 0) {
        return ww_wire_fail(why, -EINVAL, "envelope: a batch needs a non-zero epoch and seq");
    }
    if (b->n_samples > lim->max_samples) {
        return ww_wire_fail(why, -EINVAL, "batch.samples: %zu samples, more than the limit %zu",
                            b->n_samples, lim->max_samples);
    }
    for (size_t i = 0; i < b->n_samples; i++) {
        const ww_node_sample_t *s = b->samples[i];
        snprintf(path, sizeof path, "batch.samples[%zu].node_id", i);
        if ((rc = s_check_node_id(s->node_id, lim, why, path)) < 0) {
            return rc;
        }
        /* The time and the readings are checked one sample at a time by the receiver
         * (ww_wire_check_sample): one implausible sensor or clock must not cost a fleet
         * agent the whole tick of every node it speaks for. */
    }
    if (b->n_latency_windows > lim->max_windows) {
        return ww_wire_fail(why, -EINVAL,
                            "batch.latency_windows: %zu windows, more than the limit %zu",
                            b->n_latency_windows, lim->max_windows);
    }
    for (size_t i = 0; i < b->n_latency_windows; i++) {
        if ((rc = s_check_window(b->latency_windows[i], i, lim, now_ns, why)) < 0) {
            return rc;
        }
    }
    if ((rc = s_check_loss(b->loss, why)) < 0) {
        return rc;
    }
    return s_check_outages(b, lim, now_ns, why);
}

/* protobuf-c keeps fields it does not know (a newer writer's: fine, ignored), but it also
 * accepts field number 0, which protobuf forbids and which re-encodes into bytes it then
 * refuses. Refuse it on arrival. */
static bool s_has_tag0(const ProtobufCMessage *m)
{
    for (size_t i = 0; m && i < m->n_unknown_fields; i++) {
        if (m->unknown_fields[i].tag == 0) {
            return true;
        }
    }
    return false;
}

static bool s_any_tag0(const ww_envelope_t *env)
{
    if (s_has_tag0(&env->base)) {
        return true;
    }
    switch (env->body_case) {
    case WAFERWATCH__V1__ENVELOPE__BODY_HELLO:
        if (s_has_tag0(&env->hello->base)) {
            return true;
        }
        for (size_t i = 0; i < env->hello->n_nodes; i++) {
            if (s_has_tag0(&env->hello->nodes[i]->base)) {
                return true;
            }
        }
        return false;
    case WAFERWATCH__V1__ENVELOPE__BODY_BATCH: {
        const ww_batch_t *b = env->batch;
        if (s_has_tag0(&b->base) || (b->loss && s_has_tag0(&b->loss->base))) {
            return true;
        }
        for (size_t i = 0; i < b->n_outages; i++) {
            if (s_has_tag0(&b->outages[i]->base)) {
                return true;
            }
        }
        for (size_t i = 0; i < b->n_samples; i++) {
            if (s_has_tag0(&b->samples[i]->base)) {
                return true;
            }
        }
        for (size_t i = 0; i < b->n_latency_windows; i++) {
            const Waferwatch__V1__LatencyWindow *w = b->latency_windows[i];
            const ProtobufCMessage *parts[] = {
                &w->base, w->queue ? &w->queue->base : NULL, w->ttft ? &w->ttft->base : NULL,
                w->tpot ? &w->tpot->base : NULL, w->e2e ? &w->e2e->base : NULL};
            for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
                if (s_has_tag0(parts[k])) {
                    return true;
                }
            }
        }
        return false;
    }
    case WAFERWATCH__V1__ENVELOPE__BODY_HEARTBEAT:
        return s_has_tag0(&env->heartbeat->base);
    case WAFERWATCH__V1__ENVELOPE__BODY_ACK:
        return s_has_tag0(&env->ack->base);
    case WAFERWATCH__V1__ENVELOPE__BODY_NACK:
        return s_has_tag0(&env->nack->base);
    case WAFERWATCH__V1__ENVELOPE__BODY_PENDING:
        return s_has_tag0(&env->pending->base);
    default:
        return false;
    }
}

int ww_wire_validate(const ww_envelope_t *env, const ww_wire_limits_t *lim, int64_t now_ns,
                     ww_wire_why_t *why)
{
    if (s_any_tag0(env)) {
        return ww_wire_fail(why, -EBADMSG, "message: a field numbered 0 (not valid protobuf)");
    }
    if (env->wire_version != WW_WIRE_VERSION) {
        return ww_wire_fail(why, -EPROTONOSUPPORT,
                            "envelope.wire_version: %u is not supported (%u is)", env->wire_version,
                            WW_WIRE_VERSION);
    }
    int rc = s_check_str(env->agent_id, 1, lim, why, "envelope.agent_id");
    if (rc < 0) {
        return rc;
    }
    /* seq is stored as bigint (streams, ingest_rejects): above 2^63 - 1 it would wrap and
     * a replay would no longer be recognised. epoch is stored as the bigint of the same
     * 64 bits, so any value is fine. */
    if (env->seq > (uint64_t)INT64_MAX) {
        return ww_wire_fail(why, -EINVAL,
                            "envelope.seq: %llu is more than 2^63 - 1 (9223372036854775807, a "
                            "PostgreSQL bigint)",
                            (unsigned long long)env->seq);
    }
    switch (env->body_case) {
    case WAFERWATCH__V1__ENVELOPE__BODY_HELLO:
        return s_check_hello(env->hello, lim, why);
    case WAFERWATCH__V1__ENVELOPE__BODY_BATCH:
        return s_check_batch(env, lim, now_ns, why);
    case WAFERWATCH__V1__ENVELOPE__BODY_HEARTBEAT:
        return 0;
    case WAFERWATCH__V1__ENVELOPE__BODY_ACK:
        if (env->ack->seq > (uint64_t)INT64_MAX) {
            return ww_wire_fail(why, -EINVAL, "ack.seq: %llu is more than 2^63 - 1",
                                (unsigned long long)env->ack->seq);
        }
        if ((env->ack->missing_first | env->ack->missing_last) != 0 &&
            !(env->ack->missing_first >= 1 && env->ack->missing_first <= env->ack->missing_last &&
              env->ack->missing_last <= (uint64_t)INT64_MAX &&
              (env->ack->seq == 0 || env->ack->missing_last < env->ack->seq))) {
            return ww_wire_fail(why, -EINVAL,
                                "ack.missing_first..missing_last: %llu..%llu is not a range of "
                                "seqs before the acked seq %llu (any seqs for a Hello's Ack, "
                                "seq 0)",
                                (unsigned long long)env->ack->missing_first,
                                (unsigned long long)env->ack->missing_last,
                                (unsigned long long)env->ack->seq);
        }
        return 0;
    case WAFERWATCH__V1__ENVELOPE__BODY_NACK:
        return s_check_str(env->nack->reason, 0, lim, why, "nack.reason");
    case WAFERWATCH__V1__ENVELOPE__BODY_PENDING:
        if (env->pending->seq > (uint64_t)INT64_MAX) {
            return ww_wire_fail(why, -EINVAL, "pending.seq: %llu is more than 2^63 - 1",
                                (unsigned long long)env->pending->seq);
        }
        if (env->pending->retry_after_ms > WW_WIRE_MAX_RETRY_AFTER_MS) {
            return ww_wire_fail(why, -EINVAL, "pending.retry_after_ms: %u is more than %u (10 min)",
                                (unsigned)env->pending->retry_after_ms, WW_WIRE_MAX_RETRY_AFTER_MS);
        }
        return 0;
    default:
        return ww_wire_fail(why, -EINVAL,
                            "envelope.body: missing (no hello, batch, heartbeat, ack, nack or "
                            "pending)");
    }
}

/* The decoder's allocator: plain malloc() blocks (a part of a decoded envelope may be
 * freed on its own with protobuf-c's default allocator), counted against a budget. */
typedef struct {
    size_t used;   /* bytes requested, each block with WW_WIRE_ALLOC_OVERHEAD */
    size_t budget; /* refuse past this */
    bool over;     /* a request was refused for the budget */
    bool oom;      /* malloc failed within the budget */
} s_budget_t;

static void *s_budget_alloc(void *data, size_t size)
{
    s_budget_t *b = data;
    size_t cost = size + WW_WIRE_ALLOC_OVERHEAD;
    if (cost < size || cost > b->budget - b->used) {
        b->over = true;
        return NULL;
    }
    b->used += cost;
    void *p = malloc(size);
    b->oom = b->oom || !p;
    return p;
}

static void s_budget_free(void *data, void *p)
{
    (void)data; /* the budget counts what was requested: frees do not give it back */
    free(p);
}

/* Reports the stream position of a refused message for its Nack, when the envelope names
 * one (non-zero epoch and seq, and an agent_id that is clean text). */
static void s_why_seq(ww_wire_why_t *why, uint64_t epoch, uint64_t seq, const char *agent_id,
                      size_t id_len, const ww_wire_limits_t *lim)
{
    if (!why || epoch == 0 || seq == 0 || id_len == 0 || id_len >= sizeof why->agent_id ||
        id_len > lim->max_string || memchr(agent_id, 0, id_len) ||
        !ww_wire_text_ok(agent_id, id_len)) {
        return;
    }
    why->have_seq = 1;
    memcpy(why->agent_id, agent_id, id_len);
    why->agent_id[id_len] = '\0';
    why->epoch = epoch;
    why->seq = seq;
}

int ww_wire_decode(const uint8_t *buf, size_t len, const ww_wire_limits_t *lim, int64_t now_ns,
                   ww_envelope_t **out, ww_wire_why_t *why)
{
    *out = NULL;
    if (why) {
        why->have_seq = 0;
        why->epoch = why->seq = 0;
        why->agent_id[0] = '\0';
        why->unpack_bytes = 0;
    }
    if (len > lim->max_message_bytes) {
        return ww_wire_fail(why, -EMSGSIZE, "message: %zu bytes, larger than the limit %zu", len,
                            lim->max_message_bytes);
    }
    /* Limits and NULs on the raw bytes, before protobuf-c allocates anything. */
    ww_wire_scan_head_t head;
    int rc = ww_wire_scan(buf, len, lim, &head, why);
    if (rc < 0) {
        if (rc == -EINVAL) {
            s_why_seq(why, head.epoch, head.seq, (const char *)head.agent_id, head.agent_id_len,
                      lim);
        }
        return rc;
    }
    s_budget_t budget = {0, WW_WIRE_ALLOC_BUDGET(len), false, false};
    ProtobufCAllocator alloc = {s_budget_alloc, s_budget_free, &budget};
    ww_envelope_t *env = waferwatch__v1__envelope__unpack(&alloc, len, buf);
    if (why) {
        why->unpack_bytes = budget.used;
    }
    if (!env) {
        if (budget.over) {
            s_why_seq(why, head.epoch, head.seq, (const char *)head.agent_id, head.agent_id_len,
                      lim);
            return ww_wire_fail(
                why, -EMSGSIZE,
                "message: unpacking its %zu bytes needs more than the memory budget of "
                "%zu bytes",
                len, budget.budget);
        }
        if (budget.oom) {
            return ww_wire_fail(why, -ENOMEM, "message: out of memory unpacking %zu bytes", len);
        }
        return ww_wire_fail(why, -EBADMSG, "message: %zu bytes that do not decode as an Envelope",
                            len);
    }
    rc = ww_wire_validate(env, lim, now_ns, why);
    if (rc < 0) {
        if (env->agent_id) {
            s_why_seq(why, env->epoch, env->seq, env->agent_id, strlen(env->agent_id), lim);
        }
        waferwatch__v1__envelope__free_unpacked(env, NULL);
        return rc;
    }
    *out = env;
    return 0;
}

void ww_wire_free(ww_envelope_t **env)
{
    if (env && *env) {
        waferwatch__v1__envelope__free_unpacked(*env, NULL);
        *env = NULL;
    }
}

long ww_wire_encode(const ww_envelope_t *env, uint8_t **buf, size_t *cap)
{
    size_t need = waferwatch__v1__envelope__get_packed_size(env);
    if (need == 0) {
        need = 1; /* an all-default envelope packs to nothing; keep a valid buffer */
    }
    if (*cap < need) {
        size_t ncap = *cap ? *cap : 256;
        while (ncap < need) {
            ncap *= 2;
        }
        uint8_t *nb = realloc(*buf, ncap);
        if (!nb) {
            return -ENOMEM;
        }
        *buf = nb;
        *cap = ncap;
    }
    return (long)waferwatch__v1__envelope__pack(env, *buf);
}

Waferwatch__V1__NackCode ww_wire_nack_code(int decode_rc)
{
    switch (decode_rc) {
    case -EMSGSIZE:
        return WAFERWATCH__V1__NACK_CODE__NACK_TOO_LARGE;
    case -EBADMSG:
        return WAFERWATCH__V1__NACK_CODE__NACK_MALFORMED;
    case -EPROTONOSUPPORT:
        return WAFERWATCH__V1__NACK_CODE__NACK_UNSUPPORTED_VERSION;
    case -EINVAL:
        return WAFERWATCH__V1__NACK_CODE__NACK_INVALID;
    default:
        return WAFERWATCH__V1__NACK_CODE__NACK_UNSPECIFIED;
    }
}

/* Reading <-> NodeSample, one statement per field of ww_fields.h. An OPTIONAL field is NaN
 * in the reading when not measured, and unset (<name>_present_case 0) in the NodeSample. */
/* An ALWAYS field not measured (its bit, or an F32 NaN): 0 on the wire, its bit set. */
#define S_NAN_F32(v) isnan(v)
#define S_NAN_U32(v) false
#define S_NAN_BOOL(v) false
#define S_TO_PB_ALWAYS(name, pb, kind)                                                             \
    if ((r->not_measured & WW_FIELD_BIT(pb)) || WW_FIELD_CAT(S_NAN_, kind)(r->name)) {             \
        s->not_measured |= WW_FIELD_BIT(pb);                                                       \
        s->name = 0;                                                                               \
    } else {                                                                                       \
        s->name = r->name;                                                                         \
    }
#define S_TO_PB_OPTIONAL(name, pb, kind)                                                           \
    if (isnan(r->name)) {                                                                          \
        s->name##_present_case = 0;                                                                \
        s->name = 0;                                                                               \
    } else {                                                                                       \
        s->name##_present_case = pb;                                                               \
        s->name = r->name;                                                                         \
    }
#define S_TO_PB_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                      \
    WW_FIELD_CAT(S_TO_PB_, presence)(name, pb, kind)

void ww_wire_sample_from_reading(ww_node_sample_t *s, const ww_reading_t *r)
{
    s->not_measured = 0;
    WW_READING_FIELDS(S_TO_PB_)
}

#define S_FROM_PB_ALWAYS(name) r->name = s->name;
#define S_FROM_PB_F32_NAN(name, pb)                                                                \
    if (s->not_measured & WW_FIELD_BIT(pb)) {                                                      \
        r->name = NAN;                                                                             \
    }
#define S_FROM_PB_U32_NAN(name, pb)
#define S_FROM_PB_BOOL_NAN(name, pb)
#define S_FROM_PB_NAN_ALWAYS(kind, name, pb)                                                       \
    WW_FIELD_CAT(WW_FIELD_CAT(S_FROM_PB_, kind), _NAN)(name, pb)
#define S_FROM_PB_NAN_OPTIONAL(kind, name, pb)
#define S_FROM_PB_NAN_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                \
    WW_FIELD_CAT(S_FROM_PB_NAN_, presence)(kind, name, pb)
#define S_FROM_PB_OPTIONAL(name) r->name = WW_WIRE_HAS(s, name) ? s->name : NAN;
#define S_FROM_PB_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                    \
    WW_FIELD_CAT(S_FROM_PB_, presence)(name)

void ww_wire_sample_to_reading(const ww_node_sample_t *s, ww_reading_t *r)
{
    WW_READING_FIELDS(S_FROM_PB_)
    /* Not measured: the bits, and NaN for an F32 reading, as sources give them. */
    r->not_measured = s->not_measured & WW_FIELD_NOT_MEASURED_BITS;
    WW_READING_FIELDS(S_FROM_PB_NAN_)
}
