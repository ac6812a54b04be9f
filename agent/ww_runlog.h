/* agent_runlog: what one run of the agent leaves for the next, so that the next run can
 * report the time nobody sampled (a Batch.outages entry) and the requests a crash lost.
 *
 * Every tick, before its batch is appended to the spool, the agent records here: the
 * tick, the seq its batch will be appended under, the last tick spooled before it, the
 * requests in the tick's latency windows and those still open after it. At a clean exit
 * it records a stop. The next run reads the last record at open and ww_runlog_outage
 * turns it into the Outage its first batch carries:
 *   from_ns        the last tick spooled: the recorded tick if its batch reached the spool
 *                  (a stop; or the spool's next seq is past the recorded seq, same epoch),
 *                  else the tick spooled before it;
 *   to_ns          the first tick of the new run;
 *   lost_ticks     the ticks strictly between them;
 *   lost_requests  the requests in windows open after the last spooled tick, plus those
 *                  in the recorded tick's batch when it never reached the spool;
 *   cause          "stop" when the last record is a clean stop, else "crash".
 * Requests recorded after the last tick and before a SIGKILL (a request-log source feeds
 * the windows between ticks) are not known to anyone: the count is exact at tick
 * resolution. An outage not yet spooled when the next crash comes is carried: its lost
 * requests ride in the open_requests of every record until its batch is spooled, and
 * from_ns stays the last tick spooled by any run.
 *
 * File `run` in the spool directory: two 68-byte slots overwritten in turn, in place (no
 * new blocks, so it works on a full disk; a torn write leaves the other slot):
 *   "WWU1" | u64 generation | u64 epoch | u64 seq | i64 tick_ns | i64 last_ns
 *   | u64 open_requests | u64 batch_requests | u32 flags | u32 CRC-32C of the 64 bytes
 *   before it (little-endian, as the spool). The valid slot of the highest generation wins.
 * Durability follows the spool's fsync mode: fdatasync after every record (ALWAYS),
 * when fsync_interval has passed (INTERVAL), never (NEVER; a stop is flushed in every mode
 * but NEVER). A SIGKILL loses nothing written (page cache); a power loss may lose the
 * last unsynced record, which then reads as one tick more lost than was.
 *
 * Not thread-safe: the agent's main loop owns it.
 */
#ifndef WW_RUNLOG_H
#define WW_RUNLOG_H

#include "ww_spool.h"
#include "ww_wire.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    uint64_t epoch;          /* stream of the batch below */
    uint64_t seq;            /* seq the batch of tick_ns is appended under (stop: unused) */
    int64_t tick_ns;         /* the tick being spooled (stop: the last tick spooled) */
    int64_t last_ns;         /* the last tick spooled before it; 0: none known */
    uint64_t open_requests;  /* requests in latency windows still open after tick_ns */
    uint64_t batch_requests; /* requests in the latency windows of tick_ns's batch */
    bool stop;               /* a clean stop: nothing after tick_ns was sampled */
} ww_run_t;

typedef struct ww_runlog ww_runlog_t;

/* Opens (creating) dir/run with the spool's conf (dir, fsync mode, io seam) and reads the
 * previous run's last record. The directory must exist (the spool creates it). Returns
 * NULL with *err set to a negative errno. An unreadable file is not an error: it is
 * logged, and the previous run is then unknown. */
ww_runlog_t *ww_runlog_open(const ww_spool_conf_t *conf, int *err);

/* Closes; NULLs *self_p; safe on NULL and twice. */
void ww_runlog_destroy(ww_runlog_t **self_p);

/* The previous run's last record, as read at open. Returns true when there was one. */
bool ww_runlog_prev(const ww_runlog_t *self, ww_run_t *out);

/* Records a tick (before its batch is appended) or, with run->stop, a clean stop; flushed
 * per the fsync mode. Returns 0 or a negative errno (the agent logs it and goes on: only
 * the next run's report depends on it). */
int ww_runlog_record(ww_runlog_t *self, const ww_run_t *run);

/* ---- the agent's use of it, one call per step (agent_main.c; tests drive the same) ---- */

/* Once, before the first tick: computes the previous run's outage (ww_runlog_outage) from
 * the spool's epoch and next seq as found at open (before this run appended anything) and
 * this run's first tick, and keeps it to be reported. Returns true when there is one
 * (then *out, may be NULL, receives a copy). */
bool ww_runlog_begin(ww_runlog_t *self, uint64_t epoch, uint64_t next_seq, int64_t first_tick_ns,
                     int64_t interval_ns, Waferwatch__V1__Outage *out);

/* Before the append of a batch under seq: records tick_ns (the tick it samples; for the
 * windows sent at a stop, the last tick), the requests still open and the requests
 * emitted into windows so far (a running total: the batch's are those since the last
 * append), and attaches the outage still to be reported to batch->outages. Returns
 * ww_runlog_record's result. */
int ww_runlog_tick(ww_runlog_t *self, ww_batch_t *batch, uint64_t epoch, uint64_t seq,
                   int64_t tick_ns, uint64_t open_requests, uint64_t emitted);

/* After the append: when ok, tick_ns is spooled, and with it the outage (reported from now
 * on by the collector's copy). Detaches the outage from batch either way. */
void ww_runlog_appended(ww_runlog_t *self, ww_batch_t *batch, bool ok, int64_t tick_ns,
                        uint64_t emitted);

/* A clean exit, after the last append: records a stop. The requests it counts lost are
 * those still open, those emitted but never spooled, and an outage's never reported. */
int ww_runlog_stop(ww_runlog_t *self, uint64_t open_requests, uint64_t emitted);

/* The Outage a new run reports, from the previous run's last record, the spool's epoch and
 * next seq as found at open (before this run appended anything), this run's first tick
 * and the interval. Fills *out (cause points at a static string) and returns true; false
 * when there is nothing to report (no previous record). Pure. */
bool ww_runlog_outage(const ww_run_t *prev, uint64_t epoch, uint64_t next_seq,
                      int64_t first_tick_ns, int64_t interval_ns, Waferwatch__V1__Outage *out);

#endif
