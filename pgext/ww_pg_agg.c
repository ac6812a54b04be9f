/* ww_pg_agg: the ww_merge(ww_hist) aggregate, the extension's performance target (an hour
 * of TTFT windows per model is thousands of ~500-bucket histograms).
 *
 * The state is a ww_hist_t (struct and buckets) in the aggregate's memory context; each
 * row is merged straight from its packed bytes with ww_hist_merge_stored(), which adds the
 * bucket stream into the state's dense array without building a decoded histogram. Every
 * call that may allocate runs with the aggregate context current, because lib/ww_hist.c
 * allocates a first bucket array from CurrentMemoryContext (ww_pg_alloc.h); growth stays
 * in the array's own context. The state starts empty at the finest scale, the identity of
 * a merge (a coarser row reduces it), so the first row needs no special path.
 *
 * Parallel aggregation: partial states are serialised as the packed bytes in a bytea and
 * combined with ww_hist_merge(). The state's counters are kept within bigint after every
 * row (one comparison), so a partial state always packs and two of them cannot pass 2^64.
 *
 * A group of one row (a panel whose step is its tier's bucket: every group of the latency
 * series over 24 h) is that row: the state keeps the row's bytes and decodes them only when
 * a second row comes, and the final function returns them as they are. Decoding and packing
 * cost ~20 us a group of ~400 buckets, 4 histograms a row (bench/fleetday.sh: the latency
 * panels over 24 h, 12,888 groups, 1.2 s). The bytes are the same as a merge would pack: a
 * stored ww_hist is canonical (its input functions refuse any other form), and merging it
 * into the empty state changes nothing (the packed form has no -0 or infinite sum, the only
 * values 0 + sum would change). test_pgext.test_merge_groups_of_one checks it.
 */
#include "postgres.h"

#include "fmgr.h"

#include "ww_hist.h"
#include "ww_hist_pack.h"
#include "ww_pg.h"

#include <errno.h>
#include <string.h>

PG_FUNCTION_INFO_V1(ww_pg_merge_sfunc);
PG_FUNCTION_INFO_V1(ww_pg_merge_final);
PG_FUNCTION_INFO_V1(ww_pg_merge_combine);
PG_FUNCTION_INFO_V1(ww_pg_merge_serial);
PG_FUNCTION_INFO_V1(ww_pg_merge_deserial);

#define S_FN "ww_merge"

/* The aggregate's memory context; an ERROR outside an aggregate. */
static MemoryContext s_aggctx(FunctionCallInfo fcinfo, const char *what)
{
    MemoryContext ctx;
    if (!AggCheckCallContext(fcinfo, &ctx)) {
        elog(ERROR, "%s called in non-aggregate context", what);
    }
    return ctx;
}

/* The state: the merged histogram first (a ww_hist_t * to what reads it once
 * s_settle()d), and the bytes of a first row not decoded yet. */
typedef struct {
    ww_hist_t h;
    uint8_t *first; /* NULL, or the only row so far: first_n bytes in the aggregate context */
    size_t first_n;
} s_state_t;

/* The state's ww_hist (or bytea: the same bytes) in the current memory context: the row
 * kept as it is, else the merge packed. The state is not changed (a final function may be
 * called again on it). */
static Datum s_bytes(const s_state_t *st)
{
    if (!st->first) {
        return ww_pg_pack(&st->h, S_FN);
    }
    struct varlena *v = palloc(VARHDRSZ + st->first_n);
    memcpy(VARDATA(v), st->first, st->first_n);
    SET_VARSIZE(v, VARHDRSZ + st->first_n);
    return PointerGetDatum(v);
}

/* A new empty state in ctx. */
static s_state_t *s_state_new(MemoryContext ctx)
{
    s_state_t *st = MemoryContextAlloc(ctx, sizeof *st);
    ww_hist_init(&st->h, WW_HIST_MAX_SCALE);
    st->first = NULL;
    st->first_n = 0;
    return st;
}

/* h += the stored ww_hist p[0 .. n), allocating in ctx; ERRORs as the merge fails. */
static void s_merge_row(ww_hist_t *h, MemoryContext ctx, const uint8_t *p, size_t n)
{
    const char *why = NULL;
    MemoryContext old = MemoryContextSwitchTo(ctx);
    int rc = ww_hist_merge_stored(h, p, n, &why);
    MemoryContextSwitchTo(old);
    if (rc < 0) {
        ww_pg_merge_failed(S_FN, rc, why, h, p, n);
    }
    ww_pg_check_range(S_FN, h, NULL);
}

/* Merges a row kept undecoded into st->h (allocating in ctx). */
static void s_settle(s_state_t *st, MemoryContext ctx)
{
    if (st->first) {
        uint8_t *p = st->first;
        st->first = NULL;
        s_merge_row(&st->h, ctx, p, st->first_n);
    }
}

/* Whether a row can stand for a group of one as it is: its head reads (corrupt bytes are
 * merged at once, for the merge's error). */
static bool s_keepable(const uint8_t *p, size_t n)
{
    ww_hist_pack_head_t hd;
    const char *why = NULL;
    return ww_hist_pack_head(p, n, &hd, &why) == 0;
}

/* st + one row (NULL rows skipped; the state stays NULL until a non-NULL row). */
Datum ww_pg_merge_sfunc(PG_FUNCTION_ARGS)
{
    MemoryContext ctx = s_aggctx(fcinfo, "ww_hist_merge_sfunc");
    s_state_t *st = PG_ARGISNULL(0) ? NULL : (s_state_t *)PG_GETARG_POINTER(0);
    if (PG_ARGISNULL(1)) {
        if (!st) {
            PG_RETURN_NULL();
        }
        PG_RETURN_POINTER(st);
    }
    size_t n;
    const uint8_t *p = ww_pg_bytes(PG_GETARG_DATUM(1), &n);
    if (!st) {
        st = s_state_new(ctx);
        if (s_keepable(p, n)) {
            st->first = MemoryContextAlloc(ctx, n);
            memcpy(st->first, p, n);
            st->first_n = n;
            PG_RETURN_POINTER(st);
        }
    }
    s_settle(st, ctx);
    s_merge_row(&st->h, ctx, p, n);
    PG_RETURN_POINTER(st);
}

/* The canonical ww_hist of the state; NULL for no (non-NULL) rows. */
Datum ww_pg_merge_final(PG_FUNCTION_ARGS)
{
    (void)s_aggctx(fcinfo, "ww_hist_merge_final");
    if (PG_ARGISNULL(0)) {
        PG_RETURN_NULL();
    }
    const s_state_t *st = (const s_state_t *)PG_GETARG_POINTER(0);
    PG_RETURN_DATUM(s_bytes(st));
}

/* a + b of two partial states, into a (or a new state when a is NULL). */
Datum ww_pg_merge_combine(PG_FUNCTION_ARGS)
{
    MemoryContext ctx = s_aggctx(fcinfo, "ww_hist_merge_combine");
    s_state_t *a = PG_ARGISNULL(0) ? NULL : (s_state_t *)PG_GETARG_POINTER(0);
    const s_state_t *b = PG_ARGISNULL(1) ? NULL : (const s_state_t *)PG_GETARG_POINTER(1);
    if (!b) {
        if (!a) {
            PG_RETURN_NULL();
        }
        PG_RETURN_POINTER(a);
    }
    if (!a) {
        a = s_state_new(ctx); /* b may live elsewhere: copy it in by merging */
    }
    s_settle(a, ctx);
    if (b->first) { /* a partial state of this process (partitionwise): its one row */
        s_merge_row(&a->h, ctx, b->first, b->first_n);
        PG_RETURN_POINTER(a);
    }
    MemoryContext old = MemoryContextSwitchTo(ctx);
    int rc = ww_hist_merge(&a->h, &b->h);
    MemoryContextSwitchTo(old);
    if (rc == -EOVERFLOW) {
        ww_pg_check_range(S_FN, &a->h, &b->h);
    }
    if (rc < 0) {
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
    }
    ww_pg_check_range(S_FN, &a->h, NULL);
    PG_RETURN_POINTER(a);
}

/* A partial state as the packed bytes in a bytea (the same bytes as a ww_hist). */
Datum ww_pg_merge_serial(PG_FUNCTION_ARGS)
{
    /* Its argument is an internal pointer: only an aggregate may pass one. */
    (void)s_aggctx(fcinfo, "ww_hist_merge_serial");
    PG_RETURN_DATUM(s_bytes((const s_state_t *)PG_GETARG_POINTER(0)));
}

/* A partial state back from its bytea, in the current (per-call) memory context, as
 * PostgreSQL's own deserialize functions do: the combine function only reads it, merging
 * it into a state of its own, so it is garbage right after. Allocated in the aggregate
 * context instead it would stay there: in a Finalize HashAggregate, for the whole query,
 * one state per group and worker. */
Datum ww_pg_merge_deserial(PG_FUNCTION_ARGS)
{
    (void)s_aggctx(fcinfo, "ww_hist_merge_deserial");
    size_t n;
    const uint8_t *p = ww_pg_bytes(PG_GETARG_DATUM(0), &n);
    s_state_t *st = palloc(sizeof *st);
    ww_pg_unpack(p, n, &st->h);
    st->first = NULL;
    st->first_n = 0;
    PG_RETURN_POINTER(st);
}
