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
 */
#include "postgres.h"

#include "fmgr.h"

#include "ww_hist.h"
#include "ww_hist_pack.h"
#include "ww_pg.h"

#include <errno.h>

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

/* A new empty state in ctx. */
static ww_hist_t *s_state_new(MemoryContext ctx)
{
    ww_hist_t *st = MemoryContextAlloc(ctx, sizeof *st);
    ww_hist_init(st, WW_HIST_MAX_SCALE);
    return st;
}

/* st + one row (NULL rows skipped; the state stays NULL until a non-NULL row). */
Datum ww_pg_merge_sfunc(PG_FUNCTION_ARGS)
{
    MemoryContext ctx = s_aggctx(fcinfo, "ww_hist_merge_sfunc");
    ww_hist_t *st = PG_ARGISNULL(0) ? NULL : (ww_hist_t *)PG_GETARG_POINTER(0);
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
    }
    const char *why = NULL;
    MemoryContext old = MemoryContextSwitchTo(ctx);
    int rc = ww_hist_merge_stored(st, p, n, &why);
    MemoryContextSwitchTo(old);
    if (rc < 0) {
        ww_pg_merge_failed(S_FN, rc, why, st, p, n);
    }
    ww_pg_check_range(S_FN, st, NULL);
    PG_RETURN_POINTER(st);
}

/* The canonical ww_hist of the state; NULL for no (non-NULL) rows. */
Datum ww_pg_merge_final(PG_FUNCTION_ARGS)
{
    (void)s_aggctx(fcinfo, "ww_hist_merge_final");
    if (PG_ARGISNULL(0)) {
        PG_RETURN_NULL();
    }
    const ww_hist_t *st = (const ww_hist_t *)PG_GETARG_POINTER(0);
    PG_RETURN_DATUM(ww_pg_pack(st, S_FN));
}

/* a + b of two partial states, into a (or a new state when a is NULL). */
Datum ww_pg_merge_combine(PG_FUNCTION_ARGS)
{
    MemoryContext ctx = s_aggctx(fcinfo, "ww_hist_merge_combine");
    ww_hist_t *a = PG_ARGISNULL(0) ? NULL : (ww_hist_t *)PG_GETARG_POINTER(0);
    const ww_hist_t *b = PG_ARGISNULL(1) ? NULL : (const ww_hist_t *)PG_GETARG_POINTER(1);
    if (!b) {
        if (!a) {
            PG_RETURN_NULL();
        }
        PG_RETURN_POINTER(a);
    }
    if (!a) {
        a = s_state_new(ctx); /* b may live elsewhere: copy it in by merging */
    }
    MemoryContext old = MemoryContextSwitchTo(ctx);
    int rc = ww_hist_merge(a, b);
    MemoryContextSwitchTo(old);
    if (rc == -EOVERFLOW) {
        ww_pg_check_range(S_FN, a, b);
    }
    if (rc < 0) {
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
    }
    ww_pg_check_range(S_FN, a, NULL);
    PG_RETURN_POINTER(a);
}

/* A partial state as the packed bytes in a bytea (the same bytes as a ww_hist). */
Datum ww_pg_merge_serial(PG_FUNCTION_ARGS)
{
    /* Its argument is an internal pointer: only an aggregate may pass one. */
    (void)s_aggctx(fcinfo, "ww_hist_merge_serial");
    const ww_hist_t *st = (const ww_hist_t *)PG_GETARG_POINTER(0);
    PG_RETURN_DATUM(ww_pg_pack(st, S_FN));
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
    ww_hist_t *st = palloc(sizeof *st);
    ww_pg_unpack(p, n, st);
    PG_RETURN_POINTER(st);
}
