/* ww_mpq: a monotone priority queue of slots keyed by double (a radix heap: Ahuja,
 * Mehlhorn, Orlin, Tarjan, "Faster algorithms for the shortest path problem", 1990).
 *
 * Monotone: every key pushed is finite, >= 0 and >= the last key popped, so the keys
 * popped come out in nondecreasing order (an event queue, a virtual clock). Keys pushed
 * may be below the current minimum as long as they are not below the last key popped.
 *
 * The queue holds slots 0..cap-1, each at most once: it is intrusive (a key and a link per
 * slot, in one array grown by ww_mpq_reserve), so push and pop never allocate. Among equal
 * keys any may pop first, but `while (ww_mpq_min(q) <= x) ww_mpq_pop(q)` pops exactly the
 * slots whose key is <= x.
 *
 * How it works. A non-negative double's IEEE bits, read as a uint64, order like its value.
 * Relative to `last` (the last key popped, 0 at first), a key k sits in bucket
 *     b(k) = 0 when k == last, else 64 - clz(k ^ last)   (the highest bit where they differ)
 * and b never decreases as k grows. The sign bit is always clear, so b <= 63: 64 buckets,
 * each a singly linked list through the slots' links, and a bit per non-empty bucket in
 * `mask`. Push prepends to a bucket: O(1). Pop takes from bucket 0 (all == last); when it
 * is empty, the lowest non-empty bucket i is emptied: last becomes its minimum and every
 * entry moves to its bucket relative to the new last, all below i. A key moves down at
 * most 63 times in all, so a pop costs O(1) amortized (about 6.5 moves per pop with 3000
 * distinct random keys queued; none when bucket 0 still holds a tie).
 *
 * Each bucket's smallest key is kept (bmin), so neither a pop nor min ever walks a list to
 * find a minimum: last becomes bmin of the lowest non-empty bucket, the entries moving down
 * update the minima of the buckets they land in, and the queue's smallest key is kept in
 * `min` (ww_mpq_min is one load).
 *
 * push, min and pop are inline; only refilling bucket 0 (ww_mpq_settle) is a call.
 * Keys and the slot invariants are checked with assert() in debug builds only.
 */
#ifndef WW_MPQ_H
#define WW_MPQ_H

#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define WW_MPQ_NONE UINT32_MAX                  /* no slot: the end of a bucket's list */
#define WW_MPQ_BUCKETS 64                       /* b(k) <= 63: the sign bit never differs */
#define WW_MPQ_FREE UINT64_MAX                  /* key of a slot that is not queued */
#define WW_MPQ_INF UINT64_C(0x7ff0000000000000) /* bits of +INFINITY */

/* A slot's key bits and the next slot in its bucket (16 bytes: a walk down a bucket
 * touches one cache line per entry). */
typedef struct {
    uint64_t key;  /* bits of the key; WW_MPQ_FREE when the slot is not queued */
    uint32_t next; /* next slot in the same bucket, WW_MPQ_NONE at the end */
} ww_mpq_node_t;

/* All fields are private: use the functions below. */
typedef struct {
    ww_mpq_node_t *node;           /* cap entries, one per slot */
    size_t cap;                    /* slots 0..cap-1 may be pushed */
    int shared;                    /* node belongs to the caller (ww_mpq_use) */
    size_t len;                    /* slots queued */
    uint64_t last;                 /* bits of the last key popped (0 at first) */
    uint64_t min;                  /* bits of the smallest key queued, +INF when empty */
    uint64_t mask;                 /* bit b set when bucket b is not empty */
    uint32_t head[WW_MPQ_BUCKETS]; /* first slot of each bucket, WW_MPQ_NONE when empty */
    uint64_t bmin[WW_MPQ_BUCKETS]; /* bits of each bucket's smallest key, +INF when empty
                                      (bmin[0] is never read: bucket 0 holds only last) */
} ww_mpq_t;

/* Makes q an empty queue of capacity 0. Allocates nothing. */
void ww_mpq_init(ww_mpq_t *q);

/* Frees q's memory and leaves it as after ww_mpq_init (so calling it twice is safe). */
void ww_mpq_fini(ww_mpq_t *q);

/* Makes slots 0..cap-1 usable, growing the slot array if needed; what is queued stays
 * queued (with its key). Never shrinks. Returns 0, or -ENOMEM when the memory cannot be
 * had or cap is above UINT32_MAX (slot numbers are uint32_t, UINT32_MAX meaning none);
 * q is unchanged on failure. */
int ww_mpq_reserve(ww_mpq_t *q, size_t cap);

/* Makes q use the caller's slot array instead of its own: node has cap entries, each
 * {WW_MPQ_FREE, WW_MPQ_NONE} while its slot is queued nowhere. Several queues may share
 * one array when each slot is queued in at most one of them at a time (a request waiting
 * either for its prefill or for its decode to end): one entry per slot instead of one per
 * slot and queue. The caller grows it (realloc keeps what is queued; call this again with
 * the new pointer) and frees it; ww_mpq_fini then forgets it without freeing it, and
 * ww_mpq_reserve and ww_mpq_clear must not be used on q. */
void ww_mpq_use(ww_mpq_t *q, ww_mpq_node_t *node, size_t cap);

/* Empties q (keeping its memory) and forgets the last key popped, so keys may start again
 * from 0. O(cap). */
void ww_mpq_clear(ww_mpq_t *q);

/* Internal, for ww_mpq_pop: refills bucket 0 from the lowest non-empty bucket. */
void ww_mpq_settle(ww_mpq_t *q);

/* The bucket of key bits k relative to last bits l: 0 when k == l, else 64 - clz(k ^ l).
 * (d << 1 | 1) is never 0, so clz is defined, and shifting out the sign bit loses nothing
 * (both signs are clear). 63 ^ clz is 63 - clz, written so that the compiler folds it
 * into the bsr it computes clz with. */
static inline unsigned ww_mpq_bucket(uint64_t k, uint64_t l)
{
    uint64_t d = k ^ l;
    return 63u ^ (unsigned)__builtin_clzll(d << 1 | 1);
}

static inline uint64_t ww_mpq_bits(double key)
{
    uint64_t k;
    memcpy(&k, &key, sizeof(k));
    return k & ~(UINT64_C(1) << 63); /* -0.0 is +0.0 */
}

static inline double ww_mpq_value(uint64_t k)
{
    double key;
    memcpy(&key, &k, sizeof(key));
    return key;
}

/* Queues slot with key. slot < the reserved capacity and not queued; key finite, >= 0
 * (-0.0 counts as +0.0) and >= the last key popped. O(1), no allocation. */
static inline void ww_mpq_push(ww_mpq_t *q, double key, uint32_t slot)
{
    assert(slot < q->cap);
    assert(q->node[slot].key == WW_MPQ_FREE);
    assert(isfinite(key) && key >= 0.0);
    uint64_t k = ww_mpq_bits(key);
    assert(k >= q->last);
    unsigned b = ww_mpq_bucket(k, q->last);
    q->node[slot].key = k;
    q->node[slot].next = q->head[b];
    q->head[b] = slot;
    q->mask |= UINT64_C(1) << b;
    q->bmin[b] = k < q->bmin[b] ? k : q->bmin[b];
    q->min = k < q->min ? k : q->min;
    q->len++;
}

/* The smallest key queued, INFINITY when q is empty. O(1). */
static inline double ww_mpq_min(const ww_mpq_t *q)
{
    return ww_mpq_value(q->min);
}

/* Removes a slot with the smallest key and returns it. q must not be empty. O(1)
 * amortized. */
static inline uint32_t ww_mpq_pop(ww_mpq_t *q)
{
    assert(q->len > 0);
    if (!(q->mask & 1)) {
        ww_mpq_settle(q);
    }
    uint32_t slot = q->head[0];
    q->head[0] = q->node[slot].next;
    q->node[slot].key = WW_MPQ_FREE;
    if (q->head[0] == WW_MPQ_NONE) {
        /* Bucket 0 ran dry: the next smallest heads the lowest non-empty bucket. */
        q->mask &= ~UINT64_C(1);
        q->min = q->mask != 0 ? q->bmin[__builtin_ctzll(q->mask)] : WW_MPQ_INF;
    }
    q->len--;
    return slot;
}

/* The number of slots queued. */
static inline size_t ww_mpq_len(const ww_mpq_t *q)
{
    return q->len;
}

#endif
