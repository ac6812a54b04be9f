/* store_pg: the collector's PostgreSQL writer.
 *
 * A group of received messages is written in one transaction: per stream the progress
 * row is locked and read, each batch is classified (newer than the stream's progress:
 * written, and the seqs it skips are recorded as a hole in stream_holes and counted in
 * streams.lost_batches; older: written if it falls inside a recorded hole, which shrinks
 * and uncounts it, otherwise a duplicate), the samples of every written batch go through
 * one binary COPY into node_samples, its latency windows through a staging table into
 * latency_windows (a second part of a window already stored, e.g. from an agent that
 * restarted inside the window, is merged into that row: one row per (node, model, window
 * start), a unique key), the stream progress, outages, Hello node labels and rejected
 * messages are written, then COMMIT. Only after COMMIT does the caller ack.
 *
 * Nothing is altered on its way into a column: values outside a column's range are
 * refused on receipt (ww_wire); should one reach the writer anyway, the write is refused
 * as data (WW_STORE_REJECT), never clamped. (Fluent Bit's out_pgsql flush and its OK/RETRY/ERROR
 * three-way result are the model.)
 */
#ifndef WW_STORE_H
#define WW_STORE_H

#include "ww_hist.h"
#include "ww_wire.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    WW_STORE_OK = 0,     /* committed */
    WW_STORE_RETRY = 1,  /* not committed; the data is fine, try again later (keep it) */
    WW_STORE_REJECT = 2, /* not committed; the data itself was refused by PostgreSQL */
} ww_store_rc_t;

typedef enum {
    WW_ITEM_HELLO,  /* env is a Hello: upsert its nodes */
    WW_ITEM_BATCH,  /* env is a Batch: write its samples if next in sequence */
    WW_ITEM_REJECT, /* a refused message: record it in ingest_rejects (seq only for the Nack;
                       a refused batch never moves its stream, the next one skips past it) */
} ww_item_kind_t;

typedef enum {
    WW_DISP_NONE = 0,
    WW_DISP_WRITTEN,   /* rows committed */
    WW_DISP_DUPLICATE, /* already committed before: ack again */
    /* a batch after a hole (a seq the agent dropped and counted) is WRITTEN; the hole is
       counted in ww_store_stats_t.gaps */
} ww_disposition_t;

/* At most this many refused samples of one batch get a row of their own in
 * ingest_rejects; the rest are counted in one more row. */
#define WW_STORE_MAX_SAMPLE_REJECTS 16

typedef struct {
    ww_item_kind_t kind;
    const char *agent_id; /* stream identity */
    /* A batch's (epoch, seq); a Hello's epoch with seq 0. In a reject: epoch 0 when the
     * message did not decode that far (then epoch and seq are recorded NULL); a seq above
     * INT64_MAX, which bigint cannot hold, is recorded NULL (the reason names it). */
    uint64_t epoch, seq;
    const ww_envelope_t *env;
    const char *reject_code;   /* WW_ITEM_REJECT */
    const char *reject_reason; /* WW_ITEM_REJECT */
    ww_disposition_t disp;     /* out */
    /* out: > 0: sequence numbers skipped before this batch (a hole is recorded); -1: the
     * batch arrived late inside a hole, which it fills (the stream's loss goes down). */
    int64_t holes;
    uint32_t bad_samples; /* WW_ITEM_BATCH: samples refused alone on receipt */
    /* ... their reasons, one per line, for the first WW_STORE_MAX_SAMPLE_REJECTS of them
     * (each recorded in ingest_rejects; a further row counts the rest) */
    const char *bad_reason;
    bool committed; /* out: its transaction committed */
    /* out, WW_ITEM_HELLO: the newest hole [missing_first, missing_last] of the Hello's
     * stream (stream_holes; 0, 0: none), for its Ack to name (waferwatch.proto, Ack) */
    uint64_t missing_first, missing_last;
} ww_store_item_t;

typedef struct {
    uint64_t transactions, rows, windows, duplicates, gaps, rejects, retries;
    uint64_t implausible_samples; /* samples refused alone (batch written without them) */
    uint64_t late;                /* batches written into a hole of their stream */
    uint64_t window_parts;        /* latency windows merged into a row already stored */
    uint64_t outages;             /* outage reports recorded */
    uint64_t late_buckets;        /* tier buckets recorded for rebuilding (late data) */
    bool pg_auth_failed;          /* now: the last connect was refused for its credentials */
} ww_store_stats_t;

typedef struct ww_store ww_store_t;

/* Creates a writer for conninfo ("" = libpq's PG* environment). Does not connect. */
ww_store_t *ww_store_new(const char *conninfo);
void ww_store_destroy(ww_store_t **self_p);

/* Connects if not connected, applies migrations when `migrate` (first time only) and
 * makes sure the daily partitions exist. Returns 0 or a negative errno (logged once per
 * outage, recovery logged once): -EACCES when PostgreSQL refused the credentials (no such
 * role or database, a wrong password, no pg_hba.conf entry: a configuration error, not an
 * outage; logged as an ERROR saying so), -ECONNREFUSED for any other failed connect. */
int ww_store_ensure(ww_store_t *self, int migrate);

/* One round trip on the connection (a store that writes nothing: a fleet database's):
 * 0, or -ENOTCONN / -EIO, the connection then dropped (ww_store_ensure connects again). */
int ww_store_ping(ww_store_t *self);

/* Connects and reads the schema version (0 when not migrated yet) without changing
 * anything: for --check-config. Returns the version (>= 0) or a negative errno (-EACCES as
 * for ww_store_ensure). */
int ww_store_check(ww_store_t *self);

/* Writes items[0..n) in one transaction, filling each item's disp. */
ww_store_rc_t ww_store_write(ww_store_t *self, ww_store_item_t *items, size_t n);

/* Creates missing partitions around today and applies the retention (if set); call at
 * least daily. 0 or negative errno (a failed retention is logged, not returned). */
int ww_store_maintain(ww_store_t *self);

/* Retention applied by ww_store_maintain: daily partitions of raw data older than
 * raw_days are dropped, rollups and evaluations older than rollup_days deleted (0: keep).
 * SQL ww_drop_old_data(). */
void ww_store_set_retention(ww_store_t *self, int raw_days, int rollup_days);

/* Makes ww_store_maintain that of a fleet database (collector.role fleet): no hour rolled
 * up, and the retention in days of node_rollup_1m, node_rollup_1h and latency_node_1h
 * (tier_days, 0: keep) applied there (ww_maint_run). */
void ww_store_set_fleet(ww_store_t *self, const int64_t tier_days[3]);

/* Empties the node -> phase cache of the latency rollups (ww_rollup.h), as
 * ww_store_maintain does: for the stores of a collector's other writers, which need no
 * maintenance of their own. */
void ww_store_forget_phases(ww_store_t *self);

void ww_store_stats(const ww_store_t *self, ww_store_stats_t *out);

/* Adds the counters of st to sum (pg_auth_failed: either), for a collector's writers. */
void ww_store_stats_add(ww_store_stats_t *sum, const ww_store_stats_t *st);

/* Merges the sample-to-commit delay of the batches written so far (from a batch's sample
 * time to the COMMIT that made it durable, seconds; ww_hist.h) into `into`, so that the
 * delays of several writers give one quantile. 0 or -ENOMEM / -EOVERFLOW (ww_hist_merge). */
int ww_store_delay_merge(const ww_store_t *self, ww_hist_t *into);

/* Microseconds since 2000-01-01 (PostgreSQL's timestamptz epoch) of ns since 1970. */
int64_t ww_store_pg_time(int64_t unix_ns);

#endif
