/* ww_mpq: the monotone priority queue (radix heap); see ww_mpq.h. Only the slow parts
 * live here: memory, and refilling bucket 0 when it runs dry. */
#include "ww_mpq.h"

#include <errno.h>
#include <stdlib.h>

/* Empty buckets, nothing popped yet; the slot array is left as it is. */
static void s_empty(ww_mpq_t *q)
{
    q->len = 0;
    q->last = 0;
    q->min = WW_MPQ_INF;
    q->mask = 0;
    for (size_t b = 0; b < WW_MPQ_BUCKETS; b++) {
        q->head[b] = WW_MPQ_NONE;
        q->bmin[b] = WW_MPQ_INF;
    }
}

void ww_mpq_init(ww_mpq_t *q)
{
    q->node = NULL;
    q->cap = 0;
    q->shared = 0;
    s_empty(q);
}

void ww_mpq_fini(ww_mpq_t *q)
{
    if (!q->shared) {
        free(q->node);
    }
    ww_mpq_init(q);
}

void ww_mpq_use(ww_mpq_t *q, ww_mpq_node_t *node, size_t cap)
{
    assert(q->shared || q->node == NULL);
    assert(cap <= UINT32_MAX);
    q->node = node;
    q->cap = cap;
    q->shared = 1;
}

int ww_mpq_reserve(ww_mpq_t *q, size_t cap)
{
    assert(!q->shared);
    if (cap <= q->cap) {
        return 0;
    }
    if (cap > UINT32_MAX || cap > SIZE_MAX / sizeof(ww_mpq_node_t)) {
        return -ENOMEM;
    }
    ww_mpq_node_t *node = realloc(q->node, cap * sizeof(*node));
    if (node == NULL) {
        return -ENOMEM;
    }
    for (size_t s = q->cap; s < cap; s++) {
        node[s] = (ww_mpq_node_t){WW_MPQ_FREE, WW_MPQ_NONE};
    }
    q->node = node;
    q->cap = cap;
    return 0;
}

void ww_mpq_clear(ww_mpq_t *q)
{
    assert(!q->shared);
    for (size_t s = 0; s < q->cap; s++) {
        q->node[s] = (ww_mpq_node_t){WW_MPQ_FREE, WW_MPQ_NONE};
    }
    s_empty(q);
}

/* Bucket 0 is empty and q is not: the smallest key is the minimum of the lowest
 * non-empty bucket i. It becomes `last`, and each entry of bucket i moves to its bucket
 * relative to it: bucket 0 when equal, else one below i (k and the new last agree on every
 * bit above i - 1, where both differ from the old last). Buckets below i were empty, so
 * their minima are those of the entries moved in. */
void ww_mpq_settle(ww_mpq_t *q)
{
    assert(q->len > 0 && !(q->mask & 1) && q->mask != 0);
    const unsigned i = (unsigned)__builtin_ctzll(q->mask);
    const uint64_t last = q->bmin[i];
    assert(last == q->min);
    uint64_t mask = q->mask & ~(UINT64_C(1) << i);
    ww_mpq_node_t *node = q->node;
    uint32_t s = q->head[i];
    q->head[i] = WW_MPQ_NONE;
    q->bmin[i] = WW_MPQ_INF;
    while (s != WW_MPQ_NONE) {
        ww_mpq_node_t *n = &node[s];
        const uint32_t next = n->next;
        const uint64_t k = n->key;
        assert(k >= last);
        const unsigned b = ww_mpq_bucket(k, last);
        assert(b < i);
        n->next = q->head[b];
        q->head[b] = s;
        mask |= UINT64_C(1) << b;
        q->bmin[b] = k < q->bmin[b] ? k : q->bmin[b];
        s = next;
    }
    q->last = last;
    q->mask = mask;
}
