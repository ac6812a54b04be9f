/* ww_pg_sblock: sample blocks in SQL (extension 1.1). A block is a bytea holding exactly the
 * canonical bytes of lib/ww_sblock.h: one node's samples of a stretch of time (the collector
 * compacts a node-hour into one). Two functions, both over the codec the tests and the fuzzer
 * check, so that SQL and C agree bit for bit:
 *
 *   ww_sblock_agg(time, power_w, .. humidity_pct): the block of the rows aggregated. The rows
 *     are taken in any order and sorted first (by time, then by the bits of the sample), so
 *     one set of rows gives one block whatever the plan: a re-compaction of the same samples
 *     is byte-equal, and blocks compare by their bytes.
 *   ww_sblock_samples(block): the rows back, in that order, every bit as it was given.
 *
 * The state of the aggregate is a growing array of ww_sblock_sample_t in the aggregate's
 * memory context. The encoder's buffer (lib/ww_buf.c, plain malloc) lives only between the
 * encode and the copy into a palloc'd bytea, with nothing that can ERROR in between.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "ww_buf.h"
#include "ww_pg.h"
#include "ww_sblock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

PG_FUNCTION_INFO_V1(ww_pg_sblock_sfunc);
PG_FUNCTION_INFO_V1(ww_pg_sblock_final);
PG_FUNCTION_INFO_V1(ww_pg_sblock_samples);
PG_FUNCTION_INFO_V1(ww_pg_sblock_count);

/* The aggregate's arguments: the time, then one per field, in ww_fields.h order. */
#define S_NARGS WW_SBLOCK_NCOLS

typedef struct {
    ww_sblock_sample_t *s;
    size_t n, cap;
} s_state_t;

/* Reads argument i + 1 of the row (argument 0 is the state) into field i of *out. A NULL
 * in a field that cannot be NULL is refused: the block could not give it back. */
#define S_ARG_F32(name) out->name = DatumGetFloat4(PG_GETARG_DATUM(a))
#define S_ARG_U32(name)                                                                            \
    do {                                                                                           \
        int32 v = DatumGetInt32(PG_GETARG_DATUM(a));                                               \
        if (v < 0) {                                                                               \
            ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),                           \
                            errmsg("ww_sblock_agg: %s = %d at %s is negative: a sample block "     \
                                   "holds counts of 0 .. 2147483647",                              \
                                   #name, (int)v, timestamptz_to_str(out->time_us))));             \
        }                                                                                          \
        out->name = (uint32_t)v;                                                                   \
    } while (0)
#define S_ARG_BOOL(name) out->name = DatumGetBool(PG_GETARG_DATUM(a))
/* A NULL reading (not measured) is kept as NULL. */
#define S_ARG_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                        \
    a++;                                                                                           \
    if (PG_ARGISNULL(a)) {                                                                         \
        out->name##_null = true;                                                                   \
    } else {                                                                                       \
        WW_FIELD_CAT(S_ARG_, kind)(name);                                                          \
    }

static void s_row(FunctionCallInfo fcinfo, ww_sblock_sample_t *out)
{
    /* Zeroed whole (padding included): the sort below compares samples as bytes, and a
     * NULL field's value is then 0, as decode gives it. */
    memset(out, 0, sizeof *out);
    if (PG_ARGISNULL(1)) {
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("ww_sblock_agg: a sample's time is NULL")));
    }
    out->time_us = PG_GETARG_TIMESTAMPTZ(1);
    int a = 1;
    WW_READING_FIELDS(S_ARG_)
}

Datum ww_pg_sblock_sfunc(PG_FUNCTION_ARGS)
{
    MemoryContext ctx;
    if (!AggCheckCallContext(fcinfo, &ctx)) {
        elog(ERROR, "ww_sblock_agg_sfunc called in non-aggregate context");
    }
    if (PG_NARGS() != 1 + S_NARGS) {
        elog(ERROR, "ww_sblock_agg_sfunc: %d arguments, this library reads %d", PG_NARGS(),
             1 + S_NARGS);
    }
    s_state_t *st = PG_ARGISNULL(0) ? NULL : (s_state_t *)PG_GETARG_POINTER(0);
    if (!st) {
        st = MemoryContextAllocZero(ctx, sizeof *st);
    }
    if (st->n == st->cap) {
        if (st->n >= WW_SBLOCK_MAX_SAMPLES) {
            ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                            errmsg("ww_sblock_agg: more than %d samples in one block",
                                   WW_SBLOCK_MAX_SAMPLES),
                            errhint("Group by a shorter stretch of time (the collector "
                                    "compacts one node-hour per block).")));
        }
        size_t cap = st->cap ? st->cap * 2 : 256;
        if (cap > WW_SBLOCK_MAX_SAMPLES) {
            cap = WW_SBLOCK_MAX_SAMPLES;
        }
        st->s = st->s ? repalloc_huge(st->s, cap * sizeof *st->s)
                      : MemoryContextAllocHuge(ctx, cap * sizeof *st->s);
        st->cap = cap;
    }
    s_row(fcinfo, &st->s[st->n]);
    st->n++;
    PG_RETURN_POINTER(st);
}

/* Time first; samples of one time by their bytes (zeroed padding: a total order). */
static int s_cmp(const void *a, const void *b)
{
    const ww_sblock_sample_t *x = a, *y = b;
    if (x->time_us != y->time_us) {
        return x->time_us < y->time_us ? -1 : 1;
    }
    return memcmp(x, y, sizeof *x);
}

Datum ww_pg_sblock_final(PG_FUNCTION_ARGS)
{
    if (PG_ARGISNULL(0)) {
        PG_RETURN_NULL();
    }
    s_state_t *st = (s_state_t *)PG_GETARG_POINTER(0);
    qsort(st->s, st->n, sizeof *st->s, s_cmp);
    ww_buf_t out = WW_BUF_INIT;
    char why[256] = "";
    int rc = ww_sblock_encode(st->s, st->n, &out, why, sizeof why);
    PG_RETURN_BYTEA_P(ww_pg_block_bytea(&out, rc, why, "ww_sblock_agg", "samples", st->n));
}

/* A block that fails the decoder's checks: storage damaged, or bytes that were never a
 * block. */
static pg_attribute_noreturn() void s_bad_block(const char *fn, const char *why)
{
    ereport(ERROR,
            (errcode(ERRCODE_DATA_CORRUPTED), errmsg("%s: not a valid sample block: %s", fn, why)));
}

Datum ww_pg_sblock_count(PG_FUNCTION_ARGS)
{
    size_t len, n;
    const uint8_t *p = ww_pg_bytes(PG_GETARG_DATUM(0), &len);
    if (ww_sblock_count(p, len, &n) < 0) {
        s_bad_block("ww_sblock_count", "its head (version, field count, sample count)");
    }
    PG_RETURN_INT32((int32)n); /* n <= WW_SBLOCK_MAX_SAMPLES */
}

/* One output row of sample *s into values / nulls (the columns of node_samples without
 * node_id: time, then the fields). */
#define S_OUT_F32(name) values[c] = Float4GetDatum(s->name)
#define S_OUT_U32(name) values[c] = Int32GetDatum((int32)s->name) /* <= INT32_MAX: checked */
#define S_OUT_BOOL(name) values[c] = BoolGetDatum(s->name)
#define S_OUT_(name, kind, pb, lo, hi, rl_off, rl_ver, presence, unit, doc)                        \
    c++;                                                                                           \
    nulls[c] = s->name##_null;                                                                     \
    if (!nulls[c]) {                                                                               \
        WW_FIELD_CAT(S_OUT_, kind)(name);                                                          \
    }

static void s_out(const ww_sblock_sample_t *s, Datum *values, bool *nulls)
{
    int c = 0;
    values[0] = TimestampTzGetDatum(s->time_us);
    nulls[0] = false;
    WW_READING_FIELDS(S_OUT_)
}

/* Materialized: a block is at most WW_SBLOCK_MAX_SAMPLES samples (a node-hour is 3,600),
 * decoded whole once and handed to the executor as a tuplestore. */
Datum ww_pg_sblock_samples(PG_FUNCTION_ARGS)
{
    ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    InitMaterializedSRF(fcinfo, 0);
    if (rsinfo->setDesc->natts != S_NARGS) {
        elog(ERROR, "ww_sblock_samples: %d result columns, this library gives %d",
             rsinfo->setDesc->natts, S_NARGS);
    }
    size_t len, n;
    const uint8_t *p = ww_pg_bytes(PG_GETARG_DATUM(0), &len);
    if (ww_sblock_count(p, len, &n) < 0) {
        s_bad_block("ww_sblock_samples", "its head (version, field count, sample count)");
    }
    ww_sblock_sample_t *s = palloc_extended((n ? n : 1) * sizeof *s, MCXT_ALLOC_HUGE);
    char why[256];
    size_t got;
    if (ww_sblock_decode(p, len, s, n, &got, why, sizeof why) < 0) {
        s_bad_block("ww_sblock_samples", why);
    }
    Datum values[S_NARGS];
    bool nulls[S_NARGS];
    for (size_t i = 0; i < got; i++) {
        s_out(&s[i], values, nulls);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    pfree(s);
    return (Datum)0;
}
