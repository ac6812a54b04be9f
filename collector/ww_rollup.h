/* ww_rollup: the per-minute latency rollups (latency_rollup_1m) of one write, merged in C
 * rather than by ww_merge() in PostgreSQL, and the node -> (phase, site) cache they are
 * keyed by.
 *
 * One row per (minute, phase, model, site) (the site: nodes.site, migration 0024): every latency
 * window written is added to its row exactly as SQL ww_merge() would (the first window taken as is,
 * later ones merged at the coarser of the two scales; counts summed, checked against bigint). The
 * caller (ww_store) COPYs the rows into the session's staging table ww_stage_rollup with
 * WW_ROLLUP_COPY_SQL and upserts them with WW_ROLLUP_SQL, in the write's transaction.
 *
 * The phase cache holds node_id -> phase and site from the Hellos this collector wrote and
 * from the nodes table (a node that never said hello has phase '' and site ''). It is emptied by
 * the hourly maintenance, so that a relabelling made through another collector is picked up.
 *
 * A zeroed ww_rollup_t is empty and ready; ww_rollup_fini() frees it. Not thread-safe.
 */
#ifndef WW_ROLLUP_H
#define WW_ROLLUP_H

#include "ww_copy.h"
#include "ww_hist.h"
#include "ww_wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One row of latency_rollup_1m being merged: (minute, phase, model, site). */
typedef struct {
    int64_t minute_us; /* PostgreSQL time of the minute */
    /* borrowed: the phase cache's strings, the window's model */
    const char *phase, *model, *site;
    uint64_t windows, ok, error, timeout, rejected, prompt_tokens, output_tokens;
    uint64_t added; /* windows and window parts added (windows counts only whole ones) */
    ww_hist_t h[4]; /* queue, ttft, tpot, e2e */
} ww_rollup_row_t;

typedef struct {
    /* node_id -> "phase\0site": open addressing, cap a power of two or 0 */
    char **key, **val;
    size_t n_phases, phases_cap;
    /* the rows of the write under way; rows[n_rows..rows_cap) are zeroed or spent */
    ww_rollup_row_t *rows;
    size_t n_rows, rows_cap;
} ww_rollup_t;

/* Frees everything; the struct is then zeroed (empty), so safe twice. */
void ww_rollup_fini(ww_rollup_t *r);

/* FNV-1a of a C string: the phase cache's hash, also used to key latency windows. */
uint64_t ww_rollup_hash(const char *s);

/* The cached phase of node ("" for a node known to have none), or NULL when not cached. */
const char *ww_rollup_phase(const ww_rollup_t *r, const char *node);

/* Caches node's phase and site (NULL is cached as ""). On out of memory the cache is
 * emptied (it is only a cache: the phases are read again). Invalidates the phase pointers
 * of rows only when it empties the cache: call it before ww_rollup_add(), never between
 * adds. */
void ww_rollup_set_phase(ww_rollup_t *r, const char *node, const char *phase, const char *site);

/* Empties the phase cache. */
void ww_rollup_forget_phases(ww_rollup_t *r);

/* Forgets the rows (at the start of each write; memory kept). */
void ww_rollup_clear(ww_rollup_t *r);

/* Adds one window into its (minute, phase, model, site) row; the node's phase and site are
 * taken from the cache ("" when not cached). part: a second part of a window already counted
 * (merged into its stored row), which adds its requests but is not another window. 0, -ENOMEM, or
 * -EOVERFLOW when a sum would pass what bigint holds (the row is then part-added: the
 * caller refuses the whole write, and the rows are rebuilt by the next one). The window
 * must stay alive until the rows are encoded (its model is borrowed). */
int ww_rollup_add(ww_rollup_t *r, const Waferwatch__V1__LatencyWindow *w, bool part);

/* Encodes the rows as a whole COPY stream (header, rows, trailer) into c, for
 * WW_ROLLUP_COPY_SQL. The caller checks c->buf.oom and c->range. */
void ww_rollup_encode(const ww_rollup_t *r, ww_copy_t *c);

/* Stages the rows encoded by ww_rollup_encode(). */
#define WW_ROLLUP_COPY_SQL "COPY ww_stage_rollup FROM STDIN (FORMAT binary)"

/* Upserts the staged rows into latency_rollup_1m, merging into the stored ones. In key
 * order: every writer connection of every collector updates the same (minute, phase, model,
 * site) rows, and locking them in one order means they wait for each other, never deadlock. */
#define WW_ROLLUP_SQL                                                                              \
    "INSERT INTO latency_rollup_1m AS r SELECT * FROM ww_stage_rollup"                             \
    " ORDER BY time, phase, model, site"                                                           \
    " ON CONFLICT (time, phase, model, site) DO UPDATE SET"                                        \
    " windows = r.windows + EXCLUDED.windows,"                                                     \
    " requests_ok = r.requests_ok + EXCLUDED.requests_ok,"                                         \
    " requests_error = r.requests_error + EXCLUDED.requests_error,"                                \
    " requests_timeout = r.requests_timeout + EXCLUDED.requests_timeout,"                          \
    " requests_rejected = r.requests_rejected + EXCLUDED.requests_rejected,"                       \
    " prompt_tokens = r.prompt_tokens + EXCLUDED.prompt_tokens,"                                   \
    " output_tokens = r.output_tokens + EXCLUDED.output_tokens,"                                   \
    " queue = ww_hist_add(r.queue, EXCLUDED.queue), ttft = ww_hist_add(r.ttft, EXCLUDED.ttft),"    \
    " tpot = ww_hist_add(r.tpot, EXCLUDED.tpot), e2e = ww_hist_add(r.e2e, EXCLUDED.e2e)"

#endif
