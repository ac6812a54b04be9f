/* ww_pg: the PostgreSQL type ww_hist and its scalar functions (waferwatch--1.0.sql says
 * what each one means in SQL; this file only how). The aggregate is in ww_pg_agg.c.
 *
 * A value is a varlena holding the canonical bytes of ww_hist_pack() (lib/ww_hist_pack.h),
 * so equality is byte equality and binary send/recv is those bytes. Functions that read
 * only the head (count, sum, min ...) use ww_hist_pack_head() and never decode buckets;
 * the others decode into a ww_hist_t in the call's memory context and run the very C code
 * the agent and the collector run (lib/ww_hist.c), so SQL and C agree bit for bit.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"

#include "ww_hist.h"
#include "ww_hist_pack.h"
#include "ww_hist_text.h"
#include "ww_pg.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(ww_pg_hist_in);
PG_FUNCTION_INFO_V1(ww_pg_hist_out);
PG_FUNCTION_INFO_V1(ww_pg_hist_recv);
PG_FUNCTION_INFO_V1(ww_pg_hist_send);
PG_FUNCTION_INFO_V1(ww_pg_hist_eq);
PG_FUNCTION_INFO_V1(ww_pg_hist_ne);
PG_FUNCTION_INFO_V1(ww_pg_hist_make);
PG_FUNCTION_INFO_V1(ww_pg_hist_scale);
PG_FUNCTION_INFO_V1(ww_pg_hist_count);
PG_FUNCTION_INFO_V1(ww_pg_hist_sum);
PG_FUNCTION_INFO_V1(ww_pg_hist_min);
PG_FUNCTION_INFO_V1(ww_pg_hist_max);
PG_FUNCTION_INFO_V1(ww_pg_hist_zero_count);
PG_FUNCTION_INFO_V1(ww_pg_hist_underflow);
PG_FUNCTION_INFO_V1(ww_pg_hist_overflow);
PG_FUNCTION_INFO_V1(ww_pg_hist_offset);
PG_FUNCTION_INFO_V1(ww_pg_hist_counts);
PG_FUNCTION_INFO_V1(ww_pg_hist_buckets);
PG_FUNCTION_INFO_V1(ww_pg_hist_mean);
PG_FUNCTION_INFO_V1(ww_pg_hist_add);
PG_FUNCTION_INFO_V1(ww_pg_hist_downscale);
PG_FUNCTION_INFO_V1(ww_pg_quantile);
PG_FUNCTION_INFO_V1(ww_pg_hist_le);
PG_FUNCTION_INFO_V1(ww_pg_hist_count_above);

/* ---- shared helpers (ww_pg.h) ---------------------------------------------------------- */

const uint8_t *ww_pg_bytes(Datum d, size_t *n)
{
    struct varlena *v = PG_DETOAST_DATUM_PACKED(d);
    *n = VARSIZE_ANY_EXHDR(v);
    return (const uint8_t *)VARDATA_ANY(v);
}

/* ERRORs for a stored value that does not decode (rc < 0 and why of the decoder). */
static void s_decode_failed(int rc, const char *why)
{
    if (rc == -ENOMEM) {
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
    }
    if (rc < 0) {
        ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                        errmsg("corrupt ww_hist value: %s", why ? why : "invalid")));
    }
}

void ww_pg_unpack(const uint8_t *p, size_t n, ww_hist_t *h)
{
    const char *why = NULL;
    ww_hist_init(h, 0);
    s_decode_failed(ww_hist_unpack(p, n, h, &why), why);
}

Datum ww_pg_pack(const ww_hist_t *h, const char *fn)
{
    ww_pg_check_range(fn, h, NULL);
    size_t cap = ww_hist_pack_bound(h);
    struct varlena *v = palloc(VARHDRSZ + cap);
    long n = ww_hist_pack(h, (uint8_t *)VARDATA(v), cap);
    if (n < 0) {
        /* Only an invalid histogram gets here: a bug of the function that built it. */
        elog(ERROR, "%s: cannot encode the result (error %ld)", fn, n);
    }
    SET_VARSIZE(v, VARHDRSZ + n);
    return PointerGetDatum(v);
}

/* Reports part `what` (at bucket index `index` when what is "bucket") out of range. */
static pg_attribute_noreturn() void s_range_error(const char *fn, const char *what, int32_t index,
                                                  unsigned __int128 v)
{
    /* v < 2^65: print it as high and low decimal halves without 128-bit printf. */
    char num[48];
    uint64_t hi = (uint64_t)(v / 10000000000000000000u), lo = (uint64_t)(v % 10000000000000000000u);
    if (hi) {
        snprintf(num, sizeof num, "%" PRIu64 "%019" PRIu64, hi, lo);
    } else {
        snprintf(num, sizeof num, "%" PRIu64, lo);
    }
    if (strcmp(what, "bucket") == 0) {
        ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                        errmsg("%s: the count of bucket %d would be %s, out of range for bigint",
                               fn, (int)index, num)));
    }
    ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                    errmsg("%s: %s would be %s, out of range for bigint", fn, what, num)));
}

/* The count of bucket `index` of h (0 outside its array). */
static uint64_t s_bucket(const ww_hist_t *h, int64_t index)
{
    int64_t j = index - h->offset;
    return j >= 0 && j < (int64_t)h->len ? h->counts[j] : 0;
}

/* A copy of src reduced to `scale` (<= src's), in the current context. */
static void s_copy_at(ww_hist_t *dst, const ww_hist_t *src, int scale)
{
    ww_hist_init(dst, src->scale);
    if (ww_hist_merge(dst, src) < 0 || ww_hist_downscale(dst, scale) < 0) {
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
    }
}

void ww_pg_check_range(const char *fn, const ww_hist_t *a, const ww_hist_t *b)
{
    const unsigned __int128 max = INT64_MAX;
    if (!b) {
        if (a->count <= (uint64_t)INT64_MAX) {
            return; /* count bounds every part: the usual case costs one comparison */
        }
        for (uint32_t j = 0; j < a->len; j++) {
            if (a->counts[j] > max) {
                s_range_error(fn, "bucket", a->offset + (int32_t)j, a->counts[j]);
            }
        }
        if (a->zero_count > max) {
            s_range_error(fn, "zero_count", 0, a->zero_count);
        }
        if (a->underflow > max) {
            s_range_error(fn, "underflow", 0, a->underflow);
        }
        if (a->overflow > max) {
            s_range_error(fn, "overflow", 0, a->overflow);
        }
        s_range_error(fn, "count", 0, a->count);
    }
    /* a + b: bring both to the coarser scale, as the merge does, then add part by part. */
    int scale = a->scale < b->scale ? a->scale : b->scale;
    ww_hist_t x, y;
    s_copy_at(&x, a, scale);
    s_copy_at(&y, b, scale);
    for (uint32_t j = 0; j < x.len; j++) {
        int32_t i = x.offset + (int32_t)j;
        unsigned __int128 s = (unsigned __int128)x.counts[j] + s_bucket(&y, i);
        if (s > max) {
            s_range_error(fn, "bucket", i, s);
        }
    }
    for (uint32_t j = 0; j < y.len; j++) {
        if (y.counts[j] > max) {
            s_range_error(fn, "bucket", y.offset + (int32_t)j, y.counts[j]);
        }
    }
    const struct {
        const char *name;
        uint64_t a, b;
    } parts[] = {{"zero_count", x.zero_count, y.zero_count},
                 {"underflow", x.underflow, y.underflow},
                 {"overflow", x.overflow, y.overflow},
                 {"count", x.count, y.count}};
    for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
        unsigned __int128 s = (unsigned __int128)parts[k].a + parts[k].b;
        if (s > max) {
            s_range_error(fn, parts[k].name, 0, s);
        }
    }
    ww_hist_fini(&x);
    ww_hist_fini(&y);
}

void ww_pg_merge_failed(const char *fn, int rc, const char *why, const ww_hist_t *dst,
                        const uint8_t *p, size_t n)
{
    if (rc == -EOVERFLOW) {
        ww_hist_t src;
        ww_pg_unpack(p, n, &src);
        ww_pg_check_range(fn, dst, &src);
        /* Past 2^64 is past INT64_MAX: check_range has reported it. */
        elog(ERROR, "%s: merge overflow not located", fn);
    }
    if (rc == -EINVAL) {
        ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                        errmsg("corrupt ww_hist value: %s", why ? why : "invalid")));
    }
    ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
}

/* The checked head of a ww_hist argument (buckets not decoded). */
static void s_head(Datum d, ww_hist_pack_head_t *hd)
{
    size_t n;
    const uint8_t *p = ww_pg_bytes(d, &n);
    const char *why = NULL;
    if (ww_hist_pack_head(p, n, hd, &why) < 0) {
        ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                        errmsg("corrupt ww_hist value: %s", why ? why : "invalid")));
    }
}

/* The decoded histogram of argument `arg`. */
static void s_arg_hist(FunctionCallInfo fcinfo, int arg, ww_hist_t *h)
{
    size_t n;
    const uint8_t *p = ww_pg_bytes(PG_GETARG_DATUM(arg), &n);
    ww_pg_unpack(p, n, h);
}

/* Argument arg's buckets, counts, min and max, for what reads no more (ww_quantile): merged
 * into an empty histogram as the aggregate reads a stored row (ww_hist_merge_stored: a
 * value of the type was checked whole when it was made; memory safety is checked again),
 * at half the cost of s_arg_hist's full check, which a panel pays per row and quantile.
 * The sum is not exact here (0 + sum, clamped to finite). */
static void s_arg_hist_counts(FunctionCallInfo fcinfo, int arg, ww_hist_t *h)
{
    size_t n;
    const uint8_t *p = ww_pg_bytes(PG_GETARG_DATUM(arg), &n);
    const char *why = NULL;
    ww_hist_init(h, WW_HIST_MAX_SCALE);
    s_decode_failed(ww_hist_merge_stored(h, p, n, &why), why);
}

/* A varlena (bytea or ww_hist) holding a copy of p[0 .. n). */
static struct varlena *s_varlena(const uint8_t *p, size_t n)
{
    struct varlena *v = palloc(VARHDRSZ + n);
    memcpy(VARDATA(v), p, n);
    SET_VARSIZE(v, VARHDRSZ + n);
    return v;
}

/* ---- input, output, send, receive, equality ------------------------------------------ */

Datum ww_pg_hist_in(PG_FUNCTION_ARGS)
{
    const char *s = PG_GETARG_CSTRING(0);
    char err[256];
    ww_hist_t h;
    ww_hist_init(&h, 0);
    err[0] = '\0';
    int rc = ww_hist_text_parse(s, &h, err, sizeof err);
    if (rc == -ENOMEM) {
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
    }
    if (rc < 0) {
        ereport(ERROR, (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
                        errmsg("invalid input syntax for type ww_hist: %s", err)));
    }
    PG_RETURN_DATUM(ww_pg_pack(&h, "ww_hist_in"));
}

Datum ww_pg_hist_out(PG_FUNCTION_ARGS)
{
    ww_hist_t h;
    s_arg_hist(fcinfo, 0, &h);
    size_t cap = 192 + (size_t)h.len * 32;
    char *buf = palloc(cap);
    long n = ww_hist_text_format(&h, buf, cap);
    if (n >= 0 && (size_t)n >= cap) {
        cap = (size_t)n + 1;
        buf = repalloc(buf, cap);
        n = ww_hist_text_format(&h, buf, cap);
    }
    if (n < 0 || (size_t)n >= cap) {
        elog(ERROR, "ww_hist_out: cannot format a decoded histogram (error %ld)", n);
    }
    PG_RETURN_CSTRING(buf);
}

/* The bytes of ww_hist_pack() exactly, as binary COPY sends them; refused unless the
 * decoder accepts them (canonical, consistent), so a stored value always decodes. */
Datum ww_pg_hist_recv(PG_FUNCTION_ARGS)
{
    StringInfo buf = (StringInfo)PG_GETARG_POINTER(0);
    const uint8_t *p = (const uint8_t *)buf->data + buf->cursor;
    size_t n = (size_t)(buf->len - buf->cursor);
    ww_hist_t h;
    const char *why = NULL;
    ww_hist_init(&h, 0);
    int rc = ww_hist_unpack(p, n, &h, &why);
    if (rc == -ENOMEM) {
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
    }
    if (rc < 0) {
        ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
                        errmsg("invalid binary ww_hist: %s", why ? why : "invalid")));
    }
    ww_hist_fini(&h);
    struct varlena *v = s_varlena(p, n);
    buf->cursor = buf->len;
    PG_RETURN_POINTER(v);
}

Datum ww_pg_hist_send(PG_FUNCTION_ARGS)
{
    size_t n;
    const uint8_t *p = ww_pg_bytes(PG_GETARG_DATUM(0), &n);
    PG_RETURN_BYTEA_P(s_varlena(p, n));
}

/* One histogram has one encoding, so equal histograms have equal bytes. */
static bool s_equal(FunctionCallInfo fcinfo)
{
    size_t na, nb;
    const uint8_t *a = ww_pg_bytes(PG_GETARG_DATUM(0), &na);
    const uint8_t *b = ww_pg_bytes(PG_GETARG_DATUM(1), &nb);
    return na == nb && memcmp(a, b, na) == 0;
}

Datum ww_pg_hist_eq(PG_FUNCTION_ARGS)
{
    PG_RETURN_BOOL(s_equal(fcinfo));
}

Datum ww_pg_hist_ne(PG_FUNCTION_ARGS)
{
    PG_RETURN_BOOL(!s_equal(fcinfo));
}

/* ---- ww_hist_make ---------------------------------------------------------------------- */

#define S_MAKE "ww_hist_make"

static pg_attribute_noreturn() void s_make_error(const char *msg)
{
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg(S_MAKE ": %s", msg)));
}

/* A bigint counter argument: NULL is 0 unless required; negative is refused. */
static uint64_t s_make_counter(FunctionCallInfo fcinfo, int arg, const char *name, bool required)
{
    if (PG_ARGISNULL(arg)) {
        if (required) {
            s_make_error(psprintf("%s must not be NULL", name));
        }
        return 0;
    }
    int64 v = PG_GETARG_INT64(arg);
    if (v < 0) {
        s_make_error(psprintf("%s must be >= 0, got " INT64_FORMAT, name, v));
    }
    return (uint64_t)v;
}

/* min or max: NULL or NaN is "no finite value" (NaN returned), infinities are refused. */
static double s_make_minmax(FunctionCallInfo fcinfo, int arg, const char *name)
{
    if (PG_ARGISNULL(arg)) {
        return NAN;
    }
    double v = PG_GETARG_FLOAT8(arg);
    if (isinf(v)) {
        s_make_error(psprintf("%s must be finite or NULL, got %s", name, float8out_internal(v)));
    }
    return v;
}

/* The constructor from today's composite fields; see waferwatch--1.0.sql. Checks each
 * field by name, then what the fields say together (ww_hist_check_form: min, max and sum
 * agree on whether a finite value was recorded), so a value that exists always decodes
 * and packs. */
Datum ww_pg_hist_make(PG_FUNCTION_ARGS)
{
    if (PG_ARGISNULL(0)) {
        s_make_error("scale must not be NULL");
    }
    int32 scale = PG_GETARG_INT32(0);
    if (scale < 0 || scale > WW_HIST_MAX_SCALE) {
        s_make_error(psprintf("scale must be in [0, %d], got %d", WW_HIST_MAX_SCALE, scale));
    }
    ww_hist_t h;
    ww_hist_init(&h, scale);
    h.count = s_make_counter(fcinfo, 1, "count", true);
    h.sum = PG_ARGISNULL(2) ? 0.0 : PG_GETARG_FLOAT8(2);
    if (!isfinite(h.sum)) {
        s_make_error(psprintf("sum must be finite, got %s", float8out_internal(h.sum)));
    }
    h.min = s_make_minmax(fcinfo, 3, "min");
    h.max = s_make_minmax(fcinfo, 4, "max");
    if (isnan(h.min) != isnan(h.max)) {
        s_make_error("min and max must both be numbers or both be NULL (no finite value)");
    }
    if (!isnan(h.min) && h.min > h.max) {
        s_make_error(psprintf("min %s is above max %s", float8out_internal(h.min),
                              float8out_internal(h.max)));
    }
    h.zero_count = s_make_counter(fcinfo, 5, "zero_count", false);
    h.underflow = s_make_counter(fcinfo, 6, "underflow", false);
    h.overflow = s_make_counter(fcinfo, 7, "overflow", false);
    int64 offset = PG_ARGISNULL(8) ? 0 : PG_GETARG_INT32(8);

    Datum *elems = NULL;
    bool *nulls = NULL;
    int ne = 0, lbound = 1;
    if (!PG_ARGISNULL(9)) {
        ArrayType *arr = PG_GETARG_ARRAYTYPE_P(9);
        if (ARR_NDIM(arr) > 1) {
            s_make_error("counts must be a one-dimensional array");
        }
        if (ARR_NDIM(arr) == 1) {
            lbound = ARR_LBOUND(arr)[0];
        }
        deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &ne);
    }
    /* Find the non-empty span and check every element on the way. */
    int first = -1, last = -1;
    unsigned __int128 total = (unsigned __int128)h.zero_count + h.underflow + h.overflow;
    int32 lo = WW_HIST_MIN_LOG2 * (1 << scale), hi = WW_HIST_MAX_LOG2 * (1 << scale) - 1;
    for (int k = 0; k < ne; k++) {
        if (nulls[k]) {
            s_make_error(psprintf("counts[%d] is NULL", lbound + k));
        }
        int64 c = DatumGetInt64(elems[k]);
        if (c < 0) {
            s_make_error(psprintf("counts[%d] must be >= 0, got " INT64_FORMAT, lbound + k, c));
        }
        if (c == 0) {
            continue;
        }
        int64 index = offset + k;
        if (index < lo || index > hi) {
            s_make_error(psprintf("counts[%d]: bucket index " INT64_FORMAT
                                  " (offset + %d) is outside [%d, %d] at scale %d",
                                  lbound + k, index, k, lo, hi, scale));
        }
        total += (uint64_t)c;
        if (first < 0) {
            first = k;
        }
        last = k;
    }
    if (total != h.count) {
        s_make_error(psprintf("count " INT64_FORMAT " is not zero_count + underflow + overflow "
                              "+ the sum of counts",
                              (int64)h.count));
    }
    if (first >= 0) {
        if (ww_hist_reserve(&h, (int32_t)(offset + first), (int32_t)(offset + last)) < 0) {
            ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
        }
        for (int k = first; k <= last; k++) {
            h.counts[offset + k - h.offset] += (uint64_t)DatumGetInt64(elems[k]);
        }
    }
    if (ww_hist_check_form(&h) < 0) {
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg(S_MAKE ": min, max and sum do not fit the counts"),
                        errdetail("min and max are both NULL (no finite value recorded; then sum "
                                  "is 0) or both numbers with min <= max and count > 0")));
    }
    PG_RETURN_DATUM(ww_pg_pack(&h, S_MAKE));
}

/* ---- accessors ------------------------------------------------------------------------- */

/* An accessor of the head: reads it without decoding the buckets and returns `value`, an
 * expression of the head `hd`, with PostgreSQL's RET macro. */
#define S_HEAD_ACCESSOR(fn, ret, value)                                                            \
    Datum fn(PG_FUNCTION_ARGS)                                                                     \
    {                                                                                              \
        ww_hist_pack_head_t hd;                                                                    \
        s_head(PG_GETARG_DATUM(0), &hd);                                                           \
        ret(value);                                                                                \
    }

/* min or max: NULL when no finite value was recorded (NaN in the packed form). */
#define S_HEAD_MINMAX(fn, field)                                                                   \
    Datum fn(PG_FUNCTION_ARGS)                                                                     \
    {                                                                                              \
        ww_hist_pack_head_t hd;                                                                    \
        s_head(PG_GETARG_DATUM(0), &hd);                                                           \
        if (isnan(hd.field)) {                                                                     \
            PG_RETURN_NULL();                                                                      \
        }                                                                                          \
        PG_RETURN_FLOAT8(hd.field);                                                                \
    }

S_HEAD_ACCESSOR(ww_pg_hist_scale, PG_RETURN_INT32, hd.scale)
S_HEAD_ACCESSOR(ww_pg_hist_count, PG_RETURN_INT64, (int64)hd.count)
S_HEAD_ACCESSOR(ww_pg_hist_sum, PG_RETURN_FLOAT8, hd.sum)
S_HEAD_MINMAX(ww_pg_hist_min, min)
S_HEAD_MINMAX(ww_pg_hist_max, max)
S_HEAD_ACCESSOR(ww_pg_hist_zero_count, PG_RETURN_INT64, (int64)hd.zero_count)
S_HEAD_ACCESSOR(ww_pg_hist_underflow, PG_RETURN_INT64, (int64)hd.underflow)
S_HEAD_ACCESSOR(ww_pg_hist_overflow, PG_RETURN_INT64, (int64)hd.overflow)
S_HEAD_ACCESSOR(ww_pg_hist_offset, PG_RETURN_INT32, hd.nb > 0 ? hd.first : 0)

/* The span [*first, *last] (array positions) of h's non-empty buckets; false if none. */
static bool s_span(const ww_hist_t *h, uint32_t *first, uint32_t *last)
{
    uint32_t a = 0, z = h->len;
    while (a < z && h->counts[a] == 0) {
        a++;
    }
    while (z > a && h->counts[z - 1] == 0) {
        z--;
    }
    *first = a;
    *last = z - 1;
    return a < z;
}

Datum ww_pg_hist_counts(PG_FUNCTION_ARGS)
{
    ww_hist_t h;
    s_arg_hist(fcinfo, 0, &h);
    uint32_t a, z;
    if (!s_span(&h, &a, &z)) {
        PG_RETURN_ARRAYTYPE_P(construct_empty_array(INT8OID));
    }
    int n = (int)(z - a + 1);
    Datum *e = palloc(sizeof(Datum) * (size_t)n);
    for (int k = 0; k < n; k++) {
        e[k] = Int64GetDatum((int64)h.counts[a + (uint32_t)k]);
    }
    PG_RETURN_ARRAYTYPE_P(construct_array(e, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

Datum ww_pg_hist_buckets(PG_FUNCTION_ARGS)
{
    ww_hist_t h;
    s_arg_hist(fcinfo, 0, &h);
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsi = (ReturnSetInfo *)fcinfo->resultinfo;
    for (uint32_t j = 0; j < h.len; j++) {
        if (h.counts[j] == 0) {
            continue;
        }
        Datum v[2] = {Int32GetDatum(h.offset + (int32)j), Int64GetDatum((int64)h.counts[j])};
        bool nulls[2] = {false, false};
        tuplestore_putvalues(rsi->setResult, rsi->setDesc, v, nulls);
    }
    return (Datum)0;
}

/* Mean of the finite values: overflow counts as finite only when max is beyond 2^12 (the
 * layout cannot tell finite overflow values from +inf/NaN otherwise). */
Datum ww_pg_hist_mean(PG_FUNCTION_ARGS)
{
    ww_hist_pack_head_t hd;
    s_head(PG_GETARG_DATUM(0), &hd);
    int64 n = (int64)hd.count;
    if (!(hd.max > WW_HIST_MAX && hd.max < INFINITY)) {
        n -= (int64)hd.overflow;
    }
    if (n <= 0) {
        PG_RETURN_NULL();
    }
    PG_RETURN_FLOAT8(hd.sum / (double)n);
}

/* ---- add, downscale -------------------------------------------------------------------- */

Datum ww_pg_hist_add(PG_FUNCTION_ARGS)
{
    if (PG_ARGISNULL(0) && PG_ARGISNULL(1)) {
        PG_RETURN_NULL();
    }
    if (PG_ARGISNULL(0)) {
        PG_RETURN_DATUM(PG_GETARG_DATUM(1)); /* stored values are canonical already */
    }
    if (PG_ARGISNULL(1)) {
        PG_RETURN_DATUM(PG_GETARG_DATUM(0));
    }
    ww_hist_t h;
    s_arg_hist(fcinfo, 0, &h);
    size_t n;
    const uint8_t *p = ww_pg_bytes(PG_GETARG_DATUM(1), &n);
    const char *why = NULL;
    int rc = ww_hist_merge_packed(&h, p, n, &why);
    if (rc < 0) {
        ww_pg_merge_failed("ww_hist_add", rc, why, &h, p, n);
    }
    PG_RETURN_DATUM(ww_pg_pack(&h, "ww_hist_add"));
}

Datum ww_pg_hist_downscale(PG_FUNCTION_ARGS)
{
    int32 new_scale = PG_GETARG_INT32(1);
    ww_hist_pack_head_t hd;
    s_head(PG_GETARG_DATUM(0), &hd);
    if (new_scale < 0 || new_scale > hd.scale) {
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("ww_hist_downscale: cannot change scale %d to %d (only 0 <= new "
                               "scale <= old scale)",
                               hd.scale, new_scale)));
    }
    if (new_scale == hd.scale) {
        PG_RETURN_DATUM(PG_GETARG_DATUM(0));
    }
    ww_hist_t h;
    s_arg_hist(fcinfo, 0, &h);
    if (ww_hist_downscale(&h, new_scale) < 0) {
        elog(ERROR, "ww_hist_downscale: cannot reduce scale %d to %d", hd.scale, new_scale);
    }
    PG_RETURN_DATUM(ww_pg_pack(&h, "ww_hist_downscale"));
}

/* ---- quantiles and counts ---------------------------------------------------------------- */

/* NULL q: NULL. q outside [0, 1] or NaN: an error (the C function clamps; SQL callers get
 * told). NULL or empty h: NULL. Else exactly ww_hist_quantile(). */
Datum ww_pg_quantile(PG_FUNCTION_ARGS)
{
    if (PG_ARGISNULL(1)) {
        PG_RETURN_NULL();
    }
    double q = PG_GETARG_FLOAT8(1);
    if (!(q >= 0 && q <= 1)) {
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("ww_quantile: q must be in [0, 1], got %s", float8out_internal(q)),
                        errhint("the 99th percentile is q = 0.99")));
    }
    if (PG_ARGISNULL(0)) {
        PG_RETURN_NULL();
    }
    ww_hist_pack_head_t hd;
    s_head(PG_GETARG_DATUM(0), &hd);
    if (hd.count == 0) {
        PG_RETURN_NULL();
    }
    ww_hist_t h;
    s_arg_hist_counts(fcinfo, 0, &h);
    PG_RETURN_FLOAT8(ww_hist_quantile(&h, q));
}

/* Adds one (le, count) row to the materialized result. */
static void s_le_row(ReturnSetInfo *rsi, double le, uint64_t count)
{
    Datum v[2] = {Float8GetDatum(le), Int64GetDatum((int64)count)};
    bool nulls[2] = {false, false};
    tuplestore_putvalues(rsi->setResult, rsi->setDesc, v, nulls);
}

Datum ww_pg_hist_le(PG_FUNCTION_ARGS)
{
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsi = (ReturnSetInfo *)fcinfo->resultinfo;
    if (PG_ARGISNULL(0)) {
        return (Datum)0;
    }
    ww_hist_t h;
    s_arg_hist(fcinfo, 0, &h);
    if (PG_ARGISNULL(1)) {
        /* One row per non-empty bucket at its upper bound; zero and underflow from the
         * first row on. */
        uint64_t cum = h.zero_count + h.underflow;
        for (uint32_t j = 0; j < h.len; j++) {
            if (h.counts[j] != 0) {
                cum += h.counts[j];
                s_le_row(rsi, ww_hist_upper(h.offset + (int32_t)j, h.scale), cum);
            }
        }
    } else {
        ArrayType *arr = PG_GETARG_ARRAYTYPE_P(1);
        Datum *elems;
        bool *nulls;
        int ne;
        deconstruct_array(arr, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &ne);
        double prev = -INFINITY;
        for (int k = 0; k < ne; k++) {
            double l = nulls[k] ? NAN : DatumGetFloat8(elems[k]);
            if (isnan(l) || l < prev) {
                ereport(ERROR,
                        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                         errmsg("ww_hist_le: les must be ascending numbers without NULL or NaN, "
                                "got %s",
                                OidOutputFunctionCall(F_ARRAY_OUT, PG_GETARG_DATUM(1)))));
            }
            prev = l;
        }
        uint64_t cum = 0; /* the buckets already at or below the current le */
        uint32_t j = 0;
        for (int k = 0; k < ne; k++) {
            double l = DatumGetFloat8(elems[k]);
            if (l == INFINITY) {
                continue; /* the final row stands for +Inf */
            }
            while (j < h.len && ww_hist_upper(h.offset + (int32_t)j, h.scale) <= l) {
                cum += h.counts[j];
                j++;
            }
            s_le_row(rsi, l,
                     cum + (l >= 0 ? h.zero_count : 0) + (l >= WW_HIST_MIN ? h.underflow : 0));
        }
    }
    s_le_row(rsi, INFINITY, h.count);
    return (Datum)0;
}

/* Each part counts above x by the point ww_quantile reports for it (see the .sql). */
Datum ww_pg_hist_count_above(PG_FUNCTION_ARGS)
{
    if (PG_ARGISNULL(0)) {
        PG_RETURN_INT64(0);
    }
    ww_hist_pack_head_t hd;
    s_head(PG_GETARG_DATUM(0), &hd);
    if (hd.count == 0) {
        PG_RETURN_INT64(0);
    }
    if (PG_ARGISNULL(1)) {
        PG_RETURN_NULL();
    }
    double x = PG_GETARG_FLOAT8(1);
    ww_hist_t h;
    s_arg_hist(fcinfo, 0, &h);
    uint64_t n = 0;
    if (0 > x) {
        n += h.zero_count;
    }
    /* least(2^-20, max), max NaN (none) ignored as SQL's least() ignores NULL. */
    double under = h.max < WW_HIST_MIN ? h.max : WW_HIST_MIN;
    if (under > x) {
        n += h.underflow;
    }
    /* Bucket points never decrease with the index: the buckets above x are a suffix. */
    bool above = false;
    for (uint32_t j = 0; j < h.len; j++) {
        if (!above && h.counts[j] != 0) {
            int32_t i = h.offset + (int32_t)j;
            double lo = ww_hist_lower(i, h.scale), hi = ww_hist_upper(i, h.scale);
            double v = 2 * lo * hi / (lo + hi);
            if (v < h.min) { /* false for NaN: no clamp, as greatest(v, NULL) = v */
                v = h.min;
            }
            if (v > h.max) {
                v = h.max;
            }
            above = v > x;
        }
        if (above) {
            n += h.counts[j];
        }
    }
    double top = h.max > WW_HIST_MAX && h.max < INFINITY ? h.max : INFINITY;
    if (top > x) {
        n += h.overflow;
    }
    PG_RETURN_INT64((int64)n);
}

bytea *ww_pg_block_bytea(ww_buf_t *out, int rc, const char *why, const char *fn, const char *what,
                         size_t n)
{
    if (rc < 0) {
        ww_buf_free(out);
        if (rc == -ENOMEM) {
            ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
                            errmsg("%s: out of memory encoding %zu %s", fn, n, what)));
        }
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s: %s", fn, why)));
    }
    /* The encoder's buffer is plain malloc: copied out, then freed before anything can
     * ERROR. */
    bytea *res = palloc_extended(VARHDRSZ + out->len, MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
    if (!res) {
        size_t len = out->len;
        ww_buf_free(out);
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
                        errmsg("%s: out of memory for a block of %zu bytes", fn, len)));
    }
    SET_VARSIZE(res, VARHDRSZ + out->len);
    memcpy(VARDATA(res), out->p, out->len);
    ww_buf_free(out);
    return res;
}
