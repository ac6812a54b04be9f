/* ww_spool: the agent's on-disk spool of encoded batches, kept until the collector acks,
 * and for keep_acked_ns after.
 *
 * Every batch is appended here before it is sent and removed only once acked, so an
 * agent that restarts (crash, SIGKILL, reboot) sends again what was never acked, in
 * order, under the same stream epoch with continuing sequence numbers.
 *
 * Kept acked records: an Ack means the collector's database committed the batch, but an
 * asynchronous standby promoted after the primary's crash may lack the last commits. So
 * acked records stay on disk for keep_acked_ns (spool.keep_acked, default 10 min), and
 * ww_spool_get reads any record still here, acked or not, to send it again when the
 * collector reports the seqs its database does not hold (ww_link.h, "Repair"). A segment
 * whose records are all acked is deleted once keep_acked_ns has passed since its last
 * append (its file's mtime after a restart), checked at every append and ack; sooner
 * whenever the bound needs its room: kept acked records always go before unacked ones,
 * under either policy and on a full filesystem, and are never counted as dropped.
 *
 * Layout in `dir`:
 *   meta          epoch, next sequence number, cumulative loss counters (written
 *                 atomically: temp file, fsync, rename)
 *   acked         the highest acked sequence number (two CRC-checked slots, overwritten in
 *                 turn on ack, so a torn write leaves the previous watermark)
 *   seg-<first seq, 20 digits>.wws   segment files of records:
 *       u32 magic 'WWR1' | u32 payload length | u64 seq | u32 CRC-32C of (seq, payload)
 *       | payload
 *   run           not the spool's: the agent's run log (ww_runlog.h), kept beside it
 *                 with the same fsync mode; the spool leaves other entries alone.
 *   lock          the holder's pid; flock'ed while the spool is open (ww_spool_lock.h)
 * A segment is closed when it reaches segment_bytes; a new one starts. Acked segments are
 * deleted whole (after keep_acked_ns); records <= acked are skipped by ww_spool_next.
 *
 * Recovery (ww_spool_open): every segment is scanned; a torn or corrupt record (bad
 * magic, length past the end, CRC mismatch) ends that segment: the file is truncated
 * there, and the records lost are counted in corrupt_records (the count of bytes cut is
 * logged). Nothing in a damaged spool makes open fail unless the directory itself cannot
 * be used.
 *
 * Bounds: at most max_bytes on disk. When an append would pass it, the policy applies:
 * WW_SPOOL_DROP_OLDEST deletes the oldest segment(s) (their records counted in
 * dropped_batches, persisted in meta) and appends; WW_SPOOL_REFUSE returns -ENOSPC and
 * the caller stops sampling (counting the ticks it skipped).
 *
 * A full filesystem (a write or flush fails with ENOSPC or EDQUOT before max_bytes is
 * reached) is not the spool's bound: it is logged as such, once until it clears, with the
 * directory and the bytes statvfs says are free, and ww_spool_state reports disk_full.
 * The record is taken back (the segment truncated to where it was), then the same policy
 * applies: WW_SPOOL_DROP_OLDEST deletes the oldest segment (its unacked records counted in
 * dropped_batches) and retries, until the append succeeds or only an empty segment is
 * left; WW_SPOOL_REFUSE, or nothing left to delete, returns -ENOSPC with disk_full set.
 *
 * Durability: fdatasync after every append (WW_FSYNC_ALWAYS, the default: a batch is on
 * disk before it is sent), at most every fsync_interval (WW_FSYNC_INTERVAL), or never
 * (WW_FSYNC_NEVER: page cache only, survives a process crash but not a power loss).
 * Exactly, in fdatasync calls (counted through ww_spool_io_t in tests/unit/test_spool.c):
 *   ALWAYS    one per append (the segment) and one per ww_spool_ack that moves the
 *             watermark (the acked file);
 *   INTERVAL  none per append or ack until fsync_interval has passed since the last
 *             flush; then the next append or ack flushes what is pending: one for the
 *             segment (if appended to), one for acked (if acked since);
 *   NEVER     none per append or ack; only ww_spool_sync (an explicit request) flushes.
 * In every mode ww_spool_sync and close flush what is pending (NEVER: close flushes
 * nothing but meta), closing a full segment flushes it first (not under NEVER), and meta
 * (rewritten at open, close and when a loss counter moves) and new directory entries are
 * made durable with fsync.
 */
#ifndef WW_SPOOL_H
#define WW_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef enum { WW_SPOOL_DROP_OLDEST = 0, WW_SPOOL_REFUSE = 1 } ww_spool_policy_t;
typedef enum { WW_FSYNC_ALWAYS = 0, WW_FSYNC_INTERVAL = 1, WW_FSYNC_NEVER = 2 } ww_fsync_t;

/* The system calls through which the spool writes records and meta and flushes files,
 * replaceable so that tests can count the flushes each fsync mode makes and make a write
 * fail as a full filesystem does. Each behaves as the system call (-1 with errno). A NULL
 * ww_spool_conf_t.io, or a NULL member, means the real call. */
typedef struct {
    ssize_t (*writev)(void *arg, int fd, const struct iovec *iov, int cnt);
    int (*fdatasync)(void *arg, int fd);
    int (*fsync)(void *arg, int fd);
    int64_t (*now)(void *arg); /* wall clock, ns since 1970: ages kept acked records */
    void *arg;
} ww_spool_io_t;

/* Returns io (NULL: none) with every NULL member set to the real system call: what the
 * spool, and the run log beside it in the spool directory, write and flush through. */
ww_spool_io_t ww_spool_io_fill(const ww_spool_io_t *io);

typedef struct {
    const char *dir;        /* created (mode 0700) if missing */
    uint64_t max_bytes;     /* whole spool on disk */
    uint64_t segment_bytes; /* segment size at which a new segment starts */
    ww_spool_policy_t policy;
    ww_fsync_t fsync;
    int64_t fsync_interval_ns;
    int64_t keep_acked_ns;   /* acked records kept this long for a resend; 0: not kept */
    const ww_spool_io_t *io; /* NULL: the system calls; borrowed, must outlive the spool */
} ww_spool_conf_t;

typedef struct {
    uint64_t epoch;             /* stream epoch, random at first open, then persisted */
    uint64_t next_seq;          /* sequence number of the next append (>= 1) */
    uint64_t acked;             /* highest acked sequence number */
    uint64_t records;           /* unacked records on disk */
    uint64_t kept;              /* acked records still on disk (keep_acked_ns) */
    uint64_t oldest;            /* lowest seq on disk, acked or not; 0: none */
    uint64_t bytes;             /* bytes on disk in segments */
    uint64_t dropped_batches;   /* cumulative: dropped by the policy (persisted) */
    uint64_t corrupt_records;   /* cumulative: torn/corrupt records cut at recovery (persisted) */
    bool disk_full;             /* the last append met a full filesystem (ENOSPC/EDQUOT) */
    uint64_t disk_full_appends; /* appends that met a full filesystem, since open */
    uint64_t disk_free;         /* bytes free to the spool (statvfs) when it was last met */
} ww_spool_state_t;

typedef struct ww_spool ww_spool_t;

/* Opens (creating or recovering) the spool, holding the directory's lock (the file
 * `lock`, ww_spool_lock.h) until close. Returns NULL with *err set to a negative errno
 * when the directory cannot be created, read or written, or -EBUSY when another process
 * (or another open spool) holds the lock: then "spool DIR is in use by pid N" is logged
 * at ERROR. Recovery of damaged segments is not an error (see above). */
ww_spool_t *ww_spool_open(const ww_spool_conf_t *conf, int *err);

/* For --check-config: whether dir can hold a spool, without opening it (a running agent
 * holds it, see the lock below) and without side effects: a probe file is created and
 * removed in dir or, when dir is missing (ww_spool_open creates it), in its deepest
 * existing ancestor, which must be a directory. Returns 0, or a negative errno with why
 * (cap bytes) naming the path that failed and how. */
int ww_spool_probe(const char *dir, char *why, size_t cap);

/* Closes files and frees; NULLs *self_p; safe on NULL and twice. Nothing is lost: the
 * spool on disk is complete after every successful append. */
void ww_spool_close(ww_spool_t **self_p);

/* Appends one record under sequence number `seq`, which must be next_seq (the caller
 * takes it from ww_spool_state and encodes it into the payload). On success next_seq
 * advances. Returns 0; -ENOSPC when the spool is at max_bytes under REFUSE, or when the
 * filesystem is full and the policy cannot make room (ww_spool_state's disk_full tells
 * which); -EMSGSIZE (one record larger than max_bytes); or another negative errno on I/O
 * failure. With DROP_OLDEST, *dropped (may be NULL) receives how many unacked records
 * were dropped to make room (for max_bytes or for a full filesystem). */
int ww_spool_append(ww_spool_t *self, uint64_t seq, const void *data, size_t len,
                    uint64_t *dropped);

/* Everything up to and including seq is acked: deletes fully acked segments and persists
 * the watermark (fsync per the policy). Returns 0 or a negative errno. */
int ww_spool_ack(ww_spool_t *self, uint64_t seq);

/* Reads the first unacked record with sequence number > after. Returns 1 with *seq,
 * *data (malloc'd, the caller frees) and *len set; 0 when there is none; negative errno
 * on I/O failure. A record found corrupt now is skipped and counted. */
int ww_spool_next(ww_spool_t *self, uint64_t after, uint64_t *seq, void **data, size_t *len);

/* Reads the record with sequence number seq, acked (kept, see above) or not. Returns 1
 * with *data (malloc'd, the caller frees) and *len set; 0 when the spool no longer holds
 * it (deleted, dropped, never written, or found corrupt now: skipped and counted);
 * -EINVAL for seq 0; another negative errno on I/O failure. */
int ww_spool_get(ww_spool_t *self, uint64_t seq, void **data, size_t *len);

/* Flushes pending writes to disk now (for WW_FSYNC_INTERVAL at shutdown). */
int ww_spool_sync(ww_spool_t *self);

void ww_spool_state(const ww_spool_t *self, ww_spool_state_t *out);

/* CRC-32C (Castagnoli) of len bytes, continuing from crc (0 to start). */
uint32_t ww_crc32c(uint32_t crc, const void *data, size_t len);

#endif
