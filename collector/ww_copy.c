/* ww_copy: see ww_copy.h. */
#include "ww_copy.h"

#include "ww_hist_pack.h"
#include "ww_hist_wire.h"

#include <errno.h>
#include <math.h>
#include <string.h>

/* Seconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch. */
#define WW_PG_EPOCH_S INT64_C(946684800)

void ww_copy_begin(ww_copy_t *c)
{
    static const char header[] = "PGCOPY\n\377\r\n\0";
    ww_buf_reset(&c->buf);
    c->range = false;
    ww_buf_put(&c->buf, header, 11);
    ww_copy_put32(c, 0); /* flags */
    ww_copy_put32(c, 0); /* header extension */
}

void ww_copy_end(ww_copy_t *c)
{
    ww_copy_put16(c, 0xffff);
}

void ww_copy_fini(ww_copy_t *c)
{
    ww_buf_free(&c->buf);
    c->range = false;
}

int64_t ww_copy_pg_time(int64_t unix_ns)
{
    int64_t us = unix_ns / 1000;
    if (unix_ns < 0 && us * 1000 != unix_ns) {
        us--;
    }
    return us - WW_PG_EPOCH_S * 1000000;
}

void ww_copy_put16(ww_copy_t *c, uint16_t v)
{
    unsigned char x[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    ww_buf_put(&c->buf, x, 2);
}

void ww_copy_put32(ww_copy_t *c, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    ww_buf_put(&c->buf, x, 4);
}

void ww_copy_put64(ww_copy_t *c, uint64_t v)
{
    ww_copy_put32(c, (uint32_t)(v >> 32));
    ww_copy_put32(c, (uint32_t)v);
}

static void s_put_f8(ww_copy_t *c, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    ww_copy_put64(c, bits);
}

static void s_field_f4(ww_copy_t *c, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    ww_copy_put32(c, 4);
    ww_copy_put32(c, bits);
}

static void s_field_i4(ww_copy_t *c, uint32_t v)
{
    /* Counts are uint32 on the wire, PostgreSQL integer is signed: ww_wire_check_sample
     * refuses a sample above INT32_MAX on receipt; never clamp one that got here. */
    c->range = c->range || v > INT32_MAX;
    ww_copy_put32(c, 4);
    ww_copy_put32(c, v);
}

void ww_copy_field_i8(ww_copy_t *c, uint64_t v)
{
    /* Validation bounds every count far below INT64_MAX; never clamp one that got here. */
    c->range = c->range || v > (uint64_t)INT64_MAX;
    ww_copy_put32(c, 8);
    ww_copy_put64(c, v);
}

void ww_copy_field_text(ww_copy_t *c, const char *s)
{
    size_t n = strlen(s);
    ww_copy_put32(c, (uint32_t)n);
    ww_buf_put(&c->buf, s, n);
}

static void s_field_bool(ww_copy_t *c, bool v)
{
    ww_copy_put32(c, 1);
    unsigned char t = v ? 1 : 0;
    ww_buf_put(&c->buf, &t, 1);
}

/* A sample's reading fields, expanded from ww_fields.h: the field by its kind, or NULL (a
 * length of -1) for an OPTIONAL one the sample does not carry and an ALWAYS one its
 * not_measured marks. */
#define S_FIELD_F32 s_field_f4
#define S_FIELD_U32 s_field_i4
#define S_FIELD_BOOL s_field_bool
#define S_SAMPLE_FIELD_ALWAYS(kind, name, pb)                                                      \
    if (!(s->not_measured & WW_FIELD_BIT(pb))) {                                                   \
        WW_FIELD_CAT(S_FIELD_, kind)(c, s->name);                                                  \
    } else {                                                                                       \
        ww_copy_put32(c, UINT32_MAX);                                                              \
    }
#define S_SAMPLE_FIELD_OPTIONAL(kind, name, pb)                                                    \
    if (WW_WIRE_HAS(s, name)) {                                                                    \
        WW_FIELD_CAT(S_FIELD_, kind)(c, s->name);                                                  \
    } else {                                                                                       \
        ww_copy_put32(c, UINT32_MAX);                                                              \
    }
#define S_SAMPLE_FIELD_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)               \
    WW_FIELD_CAT(S_SAMPLE_FIELD_, presence)(kind, name, pb)

void ww_copy_sample(ww_copy_t *c, const ww_node_sample_t *s)
{
    ww_copy_put16(c, WW_SAMPLE_NCOLS);
    ww_copy_put32(c, 8);
    ww_copy_put64(c, (uint64_t)ww_copy_pg_time(s->time_ns));
    ww_copy_field_text(c, s->node_id);
    WW_READING_FIELDS(S_SAMPLE_FIELD_)
}

void ww_copy_field_hist(ww_copy_t *c, const ww_hist_t *h)
{
    /* The value of a ww_hist of the extension in binary form is its packed bytes (what its
     * receive function takes): packed straight into the stream behind the length. */
    size_t bound = ww_hist_pack_bound(h);
    ww_buf_reserve(&c->buf, 4 + bound);
    if (c->buf.oom) {
        return;
    }
    uint8_t *at = (uint8_t *)c->buf.p + c->buf.len;
    long n = ww_hist_pack(h, at + 4, bound);
    if (n < 0) {
        c->range = true; /* not a histogram the type holds: refuse the write */
        return;
    }
    at[0] = (uint8_t)(n >> 24);
    at[1] = (uint8_t)(n >> 16);
    at[2] = (uint8_t)(n >> 8);
    at[3] = (uint8_t)n;
    c->buf.len += 4 + (size_t)n;
    c->buf.p[c->buf.len] = '\0'; /* ww_buf keeps its bytes NUL-terminated */
}

/* A wire histogram as a ww_hist field. Validation (ww_hist_from_pb on receipt) has already
 * bounded it; this only rebuilds it. A missing one is an empty histogram. */
static void s_field_hist_pb(ww_copy_t *c, const Waferwatch__V1__Histogram *pb)
{
    static const Waferwatch__V1__Histogram empty = WAFERWATCH__V1__HISTOGRAM__INIT;
    ww_hist_t h;
    int rc = ww_hist_from_pb(pb ? pb : &empty, &h, WW_HIST_WIRE_MAX_BUCKETS, NULL, "");
    if (rc == -ENOMEM) {
        c->buf.oom = true;
        return;
    }
    if (rc < 0) {
        c->range = true;
        return;
    }
    ww_copy_field_hist(c, &h);
    ww_hist_fini(&h);
}

void ww_copy_window(ww_copy_t *c, const Waferwatch__V1__LatencyWindow *w)
{
    ww_copy_put16(c, WW_LATENCY_NCOLS);
    ww_copy_put32(c, 8);
    ww_copy_put64(c, (uint64_t)ww_copy_pg_time(w->start_ns));
    ww_copy_field_text(c, w->node_id);
    ww_copy_field_text(c, w->model);
    ww_copy_put32(c, 8);
    s_put_f8(c, (double)w->duration_ns / 1e9);
    ww_copy_field_i8(c, w->requests_ok);
    ww_copy_field_i8(c, w->requests_error);
    ww_copy_field_i8(c, w->requests_timeout);
    ww_copy_field_i8(c, w->requests_rejected);
    ww_copy_field_i8(c, w->prompt_tokens);
    ww_copy_field_i8(c, w->output_tokens);
    s_field_hist_pb(c, w->queue);
    s_field_hist_pb(c, w->ttft);
    s_field_hist_pb(c, w->tpot);
    s_field_hist_pb(c, w->e2e);
}
