/* ww_copy: see ww_copy.h. */
#include "ww_copy.h"

#include <math.h>
#include <string.h>

/* Seconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch. */
#define WW_PG_EPOCH_S INT64_C(946684800)

/* PostgreSQL type OIDs (pg_type.dat; fixed across versions) for binary records. */
#define WW_OID_INT4 23
#define WW_OID_INT8 20
#define WW_OID_FLOAT8 701
#define WW_OID_INT8_ARRAY 1016

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
 * length of -1) for an OPTIONAL one the sample does not carry. */
#define S_FIELD_F32 s_field_f4
#define S_FIELD_U32 s_field_i4
#define S_FIELD_BOOL s_field_bool
#define S_SAMPLE_FIELD_ALWAYS(kind, name) WW_FIELD_CAT(S_FIELD_, kind)(c, s->name);
#define S_SAMPLE_FIELD_OPTIONAL(kind, name)                                                        \
    if (WW_WIRE_HAS(s, name)) {                                                                    \
        WW_FIELD_CAT(S_FIELD_, kind)(c, s->name);                                                  \
    } else {                                                                                       \
        ww_copy_put32(c, UINT32_MAX);                                                              \
    }
#define S_SAMPLE_FIELD_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)               \
    WW_FIELD_CAT(S_SAMPLE_FIELD_, presence)(kind, name)

void ww_copy_sample(ww_copy_t *c, const ww_node_sample_t *s)
{
    ww_copy_put16(c, WW_SAMPLE_NCOLS);
    ww_copy_put32(c, 8);
    ww_copy_put64(c, (uint64_t)ww_copy_pg_time(s->time_ns));
    ww_copy_field_text(c, s->node_id);
    WW_READING_FIELDS(S_SAMPLE_FIELD_)
}

/* Writes a 4-byte length placeholder; s_len_end patches it with what followed. */
static size_t s_len_begin(ww_copy_t *c)
{
    size_t at = c->buf.len;
    ww_copy_put32(c, 0);
    return at;
}

static void s_len_end(ww_copy_t *c, size_t at)
{
    if (c->buf.oom) {
        return;
    }
    uint32_t n = (uint32_t)(c->buf.len - at - 4);
    unsigned char x[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                          (unsigned char)(n >> 8), (unsigned char)n};
    memcpy(c->buf.p + at, x, 4);
}

/* Fields of a binary record: type OID, length, value. */
static void s_rec_i4(ww_copy_t *c, int32_t v)
{
    ww_copy_put32(c, WW_OID_INT4);
    ww_copy_put32(c, 4);
    ww_copy_put32(c, (uint32_t)v);
}

static void s_rec_i8(ww_copy_t *c, uint64_t v)
{
    ww_copy_put32(c, WW_OID_INT8);
    ww_copy_field_i8(c, v);
}

static void s_rec_f8(ww_copy_t *c, double v, bool null_if_nan)
{
    ww_copy_put32(c, WW_OID_FLOAT8);
    if (null_if_nan && isnan(v)) {
        ww_copy_put32(c, 0xffffffffu); /* NULL */
        return;
    }
    ww_copy_put32(c, 8);
    s_put_f8(c, v);
}

/* The head of a ww_hist composite (scale, count, sum, min, max, zero_count, underflow,
 * overflow, offset, counts bigint[]) in binary record form, up to the array's elements:
 * the caller writes `span` int8 fields, then s_hist_end(). min/max NaN are written NULL. */
static void s_hist_begin(ww_copy_t *c, int32_t scale, uint64_t count, double sum, double min,
                         double max, uint64_t zero_count, uint64_t underflow, uint64_t overflow,
                         int32_t first, size_t span, size_t *at, size_t *arr)
{
    *at = s_len_begin(c);
    ww_copy_put32(c, 10); /* fields */
    s_rec_i4(c, scale);
    s_rec_i8(c, count);
    s_rec_f8(c, sum, false);
    s_rec_f8(c, min, true);
    s_rec_f8(c, max, true);
    s_rec_i8(c, zero_count);
    s_rec_i8(c, underflow);
    s_rec_i8(c, overflow);
    s_rec_i4(c, span ? first : 0);
    /* bigint[]: ndim, has-nulls flag, element type, then per dimension its size and lower
     * bound, then the elements; an empty array has no dimension. */
    ww_copy_put32(c, WW_OID_INT8_ARRAY);
    *arr = s_len_begin(c);
    ww_copy_put32(c, span ? 1 : 0);
    ww_copy_put32(c, 0);
    ww_copy_put32(c, WW_OID_INT8);
    if (span) {
        ww_copy_put32(c, (uint32_t)span);
        ww_copy_put32(c, 1);
    }
}

static void s_hist_end(ww_copy_t *c, size_t at, size_t arr)
{
    s_len_end(c, arr);
    s_len_end(c, at);
}

void ww_copy_field_hist(ww_copy_t *c, const ww_hist_t *h)
{
    uint32_t a = 0, z = h->len;
    while (a < z && h->counts[a] == 0) {
        a++;
    }
    while (z > a && h->counts[z - 1] == 0) {
        z--;
    }
    size_t at, arr;
    s_hist_begin(c, h->scale, h->count, h->sum, h->min, h->max, h->zero_count, h->underflow,
                 h->overflow, h->offset + (int32_t)a, z - a, &at, &arr);
    for (uint32_t i = a; i < z; i++) {
        ww_copy_field_i8(c, h->counts[i]);
    }
    s_hist_end(c, at, arr);
}

/* A ww_hist composite in binary record form, the dense counts rebuilt from the sparse
 * wire buckets. Validation (ww_hist_from_pb) has already bounded the span and checked the
 * counts. min/max are NULL when the histogram holds no finite value (NaN on the wire). */
static void s_field_hist_pb(ww_copy_t *c, const Waferwatch__V1__Histogram *h)
{
    static const Waferwatch__V1__Histogram empty = WAFERWATCH__V1__HISTOGRAM__INIT;
    if (!h) {
        h = &empty;
    }
    int32_t first = 0, last = -1, idx = 0;
    for (size_t k = 0; k < h->n_index_delta; k++) {
        idx = k == 0 ? h->index_delta[0] : idx + h->index_delta[k];
        if (k == 0) {
            first = idx;
        }
        last = idx;
    }
    size_t span = h->n_index_delta ? (size_t)(last - first + 1) : 0;
    bool no_values = h->count == 0;
    size_t at, arr;
    s_hist_begin(c, h->scale, h->count, no_values ? 0.0 : h->sum, no_values ? NAN : h->min,
                 no_values ? NAN : h->max, h->zero_count, h->underflow, h->overflow, first, span,
                 &at, &arr);
    if (span) {
        size_t k = 0;
        idx = first;
        for (int32_t i = first; i <= last; i++) {
            uint64_t n = 0;
            if (k < h->n_index_delta && i == idx) {
                n = h->bucket_count[k++];
                if (k < h->n_index_delta) {
                    idx += h->index_delta[k];
                }
            }
            ww_copy_field_i8(c, n);
        }
    }
    s_hist_end(c, at, arr);
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
