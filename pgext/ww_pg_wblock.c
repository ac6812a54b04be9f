/* ww_pg_wblock: latency-window blocks in SQL (extension 1.2). A block is a bytea holding
 * exactly the canonical bytes of lib/ww_wblock.h: one node's latency windows of a stretch of
 * time (the collector compacts a node-hour into one). Two functions over the codec the tests
 * check, so that SQL and C agree bit for bit:
 *
 *   ww_wblock_agg(time, model, duration_s, requests_ok .. output_tokens, parts, queue, ttft,
 *     tpot, e2e): the block of the rows aggregated (the columns of latency_windows after
 *     node_id). The rows are taken in any order and sorted first (by model, time, then the
 *     rest of the row), so one set of rows gives one block whatever the plan.
 *   ww_wblock_windows(block): the rows back, in that order, every bit as it was given, each
 *     histogram the very bytes it was (checked whole by the decoder).
 *
 * The aggregate's state copies each row's model and histograms into the aggregate's memory
 * context. The encoder's buffer (lib/ww_buf.c, plain malloc) lives only between the encode
 * and the copy into a palloc'd bytea, with nothing that can ERROR in between.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "ww_buf.h"
#include "ww_pg.h"
#include "ww_wblock.h"

#include <errno.h>
#include <string.h>

PG_FUNCTION_INFO_V1(ww_pg_wblock_sfunc);
PG_FUNCTION_INFO_V1(ww_pg_wblock_final);
PG_FUNCTION_INFO_V1(ww_pg_wblock_windows);
PG_FUNCTION_INFO_V1(ww_pg_wblock_count);

/* time, model, duration_s, 6 counters, parts, 4 histograms */
#define S_NARGS 14
#define S_NCOLS S_NARGS

typedef struct {
    ww_wblock_window_t w; /* model: unused until the final function numbers the models */
    const char *model;
    size_t model_len;
} s_row_t;

typedef struct {
    s_row_t *r;
    size_t n, cap;
} s_state_t;

static const char *const s_cols[S_NARGS] = {"time",
                                            "model",
                                            "duration_s",
                                            "requests_ok",
                                            "requests_error",
                                            "requests_timeout",
                                            "requests_rejected",
                                            "prompt_tokens",
                                            "output_tokens",
                                            "parts",
                                            "queue",
                                            "ttft",
                                            "tpot",
                                            "e2e"};

static char *s_copy(MemoryContext ctx, const void *p, size_t n)
{
    char *c = MemoryContextAlloc(ctx, n ? n : 1);
    memcpy(c, p, n);
    return c;
}

Datum ww_pg_wblock_sfunc(PG_FUNCTION_ARGS)
{
    MemoryContext ctx;
    if (!AggCheckCallContext(fcinfo, &ctx)) {
        elog(ERROR, "ww_wblock_agg_sfunc called in non-aggregate context");
    }
    if (PG_NARGS() != 1 + S_NARGS) {
        elog(ERROR, "ww_wblock_agg_sfunc: %d arguments, this library reads %d", PG_NARGS(),
             1 + S_NARGS);
    }
    for (int a = 1; a <= S_NARGS; a++) {
        if (PG_ARGISNULL(a)) {
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                            errmsg("ww_wblock_agg: %s is NULL: a window block holds no NULL",
                                   s_cols[a - 1])));
        }
    }
    s_state_t *st = PG_ARGISNULL(0) ? NULL : (s_state_t *)PG_GETARG_POINTER(0);
    if (!st) {
        st = MemoryContextAllocZero(ctx, sizeof *st);
    }
    if (st->n == st->cap) {
        if (st->n >= WW_WBLOCK_MAX_WINDOWS) {
            ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                            errmsg("ww_wblock_agg: more than %d windows in one block",
                                   WW_WBLOCK_MAX_WINDOWS),
                            errhint("Group by a shorter stretch of time (the collector "
                                    "compacts one node-hour per block).")));
        }
        size_t cap = st->cap ? st->cap * 2 : 256;
        st->r = st->r ? repalloc_huge(st->r, cap * sizeof *st->r)
                      : MemoryContextAllocHuge(ctx, cap * sizeof *st->r);
        st->cap = cap;
    }
    s_row_t *r = &st->r[st->n];
    memset(r, 0, sizeof *r);
    r->w.time_us = PG_GETARG_TIMESTAMPTZ(1);
    text *model = PG_GETARG_TEXT_PP(2);
    r->model_len = VARSIZE_ANY_EXHDR(model);
    r->model = s_copy(ctx, VARDATA_ANY(model), r->model_len);
    r->w.duration_s = PG_GETARG_FLOAT8(3);
    int64_t *ctr[6] = {&r->w.requests_ok,       &r->w.requests_error, &r->w.requests_timeout,
                       &r->w.requests_rejected, &r->w.prompt_tokens,  &r->w.output_tokens};
    for (int c = 0; c < 6; c++) {
        *ctr[c] = PG_GETARG_INT64(4 + c);
    }
    r->w.parts = PG_GETARG_INT32(10);
    for (int k = 0; k < WW_WBLOCK_NHIST; k++) {
        size_t n;
        const uint8_t *p = ww_pg_bytes(PG_GETARG_DATUM(11 + k), &n);
        r->w.hist[k] = (const uint8_t *)s_copy(ctx, p, n);
        r->w.hist_len[k] = n;
    }
    st->n++;
    PG_RETURN_POINTER(st);
}

static int s_bytes_cmp(const void *a, size_t na, const void *b, size_t nb)
{
    int c = memcmp(a, b, na < nb ? na : nb);
    return c ? c : (na > nb) - (na < nb);
}

/* Model (bytes), time, then the rest of the row: a total order on distinct rows. */
static int s_cmp(const void *pa, const void *pb)
{
    const s_row_t *x = pa, *y = pb;
    int c = s_bytes_cmp(x->model, x->model_len, y->model, y->model_len);
    if (c) {
        return c;
    }
    if (x->w.time_us != y->w.time_us) {
        return x->w.time_us < y->w.time_us ? -1 : 1;
    }
    const ww_wblock_window_t *a = &x->w, *b = &y->w;
    int64_t va[7] = {a->requests_ok,
                     a->requests_error,
                     a->requests_timeout,
                     a->requests_rejected,
                     a->prompt_tokens,
                     a->output_tokens,
                     a->parts};
    int64_t vb[7] = {b->requests_ok,
                     b->requests_error,
                     b->requests_timeout,
                     b->requests_rejected,
                     b->prompt_tokens,
                     b->output_tokens,
                     b->parts};
    for (int i = 0; i < 7; i++) {
        if (va[i] != vb[i]) {
            return va[i] < vb[i] ? -1 : 1;
        }
    }
    c = memcmp(&a->duration_s, &b->duration_s, sizeof a->duration_s);
    for (int k = 0; c == 0 && k < WW_WBLOCK_NHIST; k++) {
        c = s_bytes_cmp(a->hist[k], a->hist_len[k], b->hist[k], b->hist_len[k]);
    }
    return c;
}

Datum ww_pg_wblock_final(PG_FUNCTION_ARGS)
{
    if (PG_ARGISNULL(0)) {
        PG_RETURN_NULL();
    }
    s_state_t *st = (s_state_t *)PG_GETARG_POINTER(0);
    qsort(st->r, st->n, sizeof *st->r, s_cmp);
    /* The models in sorted order, each row's index into them. */
    const char **models = palloc_extended(st->n * sizeof *models, MCXT_ALLOC_HUGE);
    size_t *model_len = palloc_extended(st->n * sizeof *model_len, MCXT_ALLOC_HUGE);
    ww_wblock_window_t *w = palloc_extended(st->n * sizeof *w, MCXT_ALLOC_HUGE);
    size_t m = 0;
    for (size_t i = 0; i < st->n; i++) {
        const s_row_t *r = &st->r[i];
        if (m == 0 || s_bytes_cmp(models[m - 1], model_len[m - 1], r->model, r->model_len)) {
            models[m] = r->model;
            model_len[m] = r->model_len;
            m++;
        }
        w[i] = r->w;
        w[i].model = (uint32_t)(m - 1);
    }
    ww_buf_t out = WW_BUF_INIT;
    char why[256] = "";
    int rc = ww_wblock_encode(models, model_len, m, w, st->n, &out, why, sizeof why);
    PG_RETURN_BYTEA_P(ww_pg_block_bytea(&out, rc, why, "ww_wblock_agg", "windows", st->n));
}

static pg_attribute_noreturn() void s_bad_block(const char *fn, const char *why)
{
    ereport(ERROR,
            (errcode(ERRCODE_DATA_CORRUPTED), errmsg("%s: not a valid window block: %s", fn, why)));
}

Datum ww_pg_wblock_count(PG_FUNCTION_ARGS)
{
    size_t len, n, m;
    const uint8_t *p = ww_pg_bytes(PG_GETARG_DATUM(0), &len);
    if (ww_wblock_count(p, len, &n, &m) < 0) {
        s_bad_block("ww_wblock_count", "its head (version, window count, model count)");
    }
    PG_RETURN_INT32((int32)n); /* n <= WW_WBLOCK_MAX_WINDOWS */
}

static Datum s_varlena(const void *p, size_t n)
{
    struct varlena *v = palloc(VARHDRSZ + n);
    SET_VARSIZE(v, VARHDRSZ + n);
    memcpy(VARDATA(v), p, n);
    return PointerGetDatum(v);
}

/* Materialized: a block is decoded whole once and handed to the executor as a tuplestore. */
Datum ww_pg_wblock_windows(PG_FUNCTION_ARGS)
{
    ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    InitMaterializedSRF(fcinfo, 0);
    if (rsinfo->setDesc->natts != S_NCOLS) {
        elog(ERROR, "ww_wblock_windows: %d result columns, this library gives %d",
             rsinfo->setDesc->natts, S_NCOLS);
    }
    size_t len, n, m;
    const uint8_t *p = ww_pg_bytes(PG_GETARG_DATUM(0), &len);
    if (ww_wblock_count(p, len, &n, &m) < 0) {
        s_bad_block("ww_wblock_windows", "its head (version, window count, model count)");
    }
    ww_wblock_window_t *w = palloc_extended(n * sizeof *w, MCXT_ALLOC_HUGE);
    const char **models = palloc(m * sizeof *models);
    size_t *model_len = palloc(m * sizeof *model_len);
    size_t acap = ww_wblock_arena_bound(len, n);
    uint8_t *arena = palloc_extended(acap, MCXT_ALLOC_HUGE);
    char why[256];
    int rc = ww_wblock_decode(p, len, w, n, models, model_len, m, arena, acap, why, sizeof why);
    if (rc == -ENOMEM) {
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
                        errmsg("ww_wblock_windows: out of memory decoding %zu windows", n)));
    }
    if (rc < 0) {
        s_bad_block("ww_wblock_windows", why);
    }
    /* The models as text, checked to be text of the database's encoding. */
    Datum *model_d = palloc(m * sizeof *model_d);
    for (size_t j = 0; j < m; j++) {
        if (memchr(models[j], 0, model_len[j]) ||
            !pg_verifymbstr(models[j], (int)model_len[j], true)) {
            s_bad_block("ww_wblock_windows", "a model name that is not valid text");
        }
        model_d[j] = s_varlena(models[j], model_len[j]);
    }
    Datum values[S_NCOLS];
    bool nulls[S_NCOLS];
    memset(nulls, 0, sizeof nulls);
    for (size_t i = 0; i < n; i++) {
        const ww_wblock_window_t *x = &w[i];
        if (!IS_VALID_TIMESTAMP(x->time_us)) {
            s_bad_block("ww_wblock_windows", "a time out of PostgreSQL's range");
        }
        values[0] = TimestampTzGetDatum(x->time_us);
        values[1] = model_d[x->model];
        values[2] = Float8GetDatum(x->duration_s);
        const int64_t ctr[6] = {x->requests_ok,       x->requests_error, x->requests_timeout,
                                x->requests_rejected, x->prompt_tokens,  x->output_tokens};
        for (int c = 0; c < 6; c++) {
            values[3 + c] = Int64GetDatum(ctr[c]);
        }
        values[9] = Int32GetDatum(x->parts);
        for (int k = 0; k < WW_WBLOCK_NHIST; k++) {
            values[10 + k] = s_varlena(x->hist[k], x->hist_len[k]);
        }
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
        for (int k = 0; k < WW_WBLOCK_NHIST; k++) {
            pfree(DatumGetPointer(values[10 + k]));
        }
    }
    pfree(arena);
    pfree(w);
    return (Datum)0;
}
