/* Unit tests of ww_mpq (the monotone priority queue, a radix heap): random interleavings
 * of pushes and pops checked against a sorted-array reference after every operation, on
 * the key distributions the simulator produces (exponential gaps, ties, six decades, zero
 * and the adjacent double); the "pop everything <= x" contract with duplicates and keys
 * pushed below the current minimum; growth while non-empty; the empty queue and reuse. */
#include "ww_mpq.h"
#include "ww_test.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static double rng_exp(uint64_t *s, double mean)
{
    return -mean * log(ww_test_rng_unit(s));
}

/* ---- the reference: every queued key in a descending array (the minimum is last) and
 * the key of every slot, so a pop can be checked for both its key and its slot. ---- */

typedef struct {
    double *keys; /* descending */
    size_t n;
    double *slot_key; /* per slot; meaningful when queued[slot] */
    bool *queued;
    uint32_t *free_slots; /* slots not queued */
    size_t n_free;
    size_t cap;
    double last_popped;
} ref_t;

static void ref_init(ref_t *r, size_t cap)
{
    r->keys = calloc(cap, sizeof(*r->keys));
    r->slot_key = calloc(cap, sizeof(*r->slot_key));
    r->queued = calloc(cap, sizeof(*r->queued));
    r->free_slots = calloc(cap, sizeof(*r->free_slots));
    assert_non_null(r->keys);
    assert_non_null(r->slot_key);
    assert_non_null(r->queued);
    assert_non_null(r->free_slots);
    r->n = 0;
    r->cap = cap;
    for (size_t i = 0; i < cap; i++) {
        r->free_slots[i] = (uint32_t)(cap - 1 - i);
    }
    r->n_free = cap;
    r->last_popped = 0.0;
}

static void ref_fini(ref_t *r)
{
    free(r->keys);
    free(r->slot_key);
    free(r->queued);
    free(r->free_slots);
}

static double ref_min(const ref_t *r)
{
    return r->n > 0 ? r->keys[r->n - 1] : INFINITY;
}

/* Pushes key into both, on a free slot picked at random. */
static void both_push(ww_mpq_t *q, ref_t *r, double key, uint64_t *rng)
{
    assert_true(r->n_free > 0);
    size_t f = (size_t)(ww_test_rng_next(rng) % r->n_free);
    uint32_t slot = r->free_slots[f];
    r->free_slots[f] = r->free_slots[--r->n_free];
    size_t lo = 0, hi = r->n; /* first index whose key is < key: insert there */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->keys[mid] >= key) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    memmove(r->keys + lo + 1, r->keys + lo, (r->n - lo) * sizeof(*r->keys));
    r->keys[lo] = key;
    r->n++;
    r->slot_key[slot] = key;
    r->queued[slot] = true;
    ww_mpq_push(q, key, slot);
}

/* Pops from q and checks the slot was queued with the reference's smallest key. */
static double both_pop(ww_mpq_t *q, ref_t *r)
{
    assert_true(r->n > 0);
    double want = r->keys[--r->n];
    uint32_t slot = ww_mpq_pop(q);
    assert_true(slot < r->cap);
    assert_true(r->queued[slot]);
    assert_true(r->slot_key[slot] == want);
    r->queued[slot] = false;
    r->free_slots[r->n_free++] = slot;
    r->last_popped = want;
    return want;
}

static void both_check(const ww_mpq_t *q, const ref_t *r)
{
    assert_int_equal(ww_mpq_len(q), r->n);
    double got = ww_mpq_min(q), want = ref_min(r);
    if (got != want) {
        fail_msg("min %.17g, want %.17g (len %zu)", got, want, r->n);
    }
}

/* ---- key distributions: each returns a key >= floor (the caller passes a value between
 * the last key popped and the current minimum, as the simulator's clock is). ---- */

typedef enum {
    KEYS_EXP,   /* floor + exponential, mean 0.5 s: the simulator's prefill/decode ends */
    KEYS_TIES,  /* floor + 0, 1/8, 2/8 or 3/8: many equal keys, a quarter equal to floor */
    KEYS_SPAN,  /* floor + 10^U(-9, 6), or floor itself, or the next double above it */
    KEYS_ZERO,  /* 0, -0.0, the smallest denormal, 1e-300, then floor and its neighbour */
    KEYS_MIXED, /* any of the above, per key */
} keys_t;

static double draw_key(keys_t kind, double floor_key, uint64_t *rng)
{
    if (kind == KEYS_MIXED) {
        kind = (keys_t)(ww_test_rng_next(rng) % KEYS_MIXED);
    }
    switch (kind) {
    case KEYS_EXP:
        return floor_key + rng_exp(rng, 0.5);
    case KEYS_TIES:
        return floor_key + 0.125 * (double)(ww_test_rng_next(rng) % 4);
    case KEYS_SPAN: {
        uint64_t u = ww_test_rng_next(rng) % 20;
        if (u == 0) {
            return floor_key;
        }
        if (u == 1) {
            return nextafter(floor_key, INFINITY);
        }
        return floor_key + pow(10.0, -9.0 + 15.0 * ww_test_rng_unit(rng));
    }
    case KEYS_ZERO: {
        uint64_t u = ww_test_rng_next(rng) % 6;
        if (floor_key == 0.0) {
            static const double zeroish[] = {0.0, -0.0, 0x1p-1074, 1e-300, 0.0, 1e-9};
            return zeroish[u];
        }
        if (u < 3) {
            return floor_key;
        }
        return u == 3 ? nextafter(floor_key, INFINITY) : floor_key + 1e-9 * (double)u;
    }
    default:
        break;
    }
    fail();
    return 0.0;
}

/* n_ops random pushes and pops (the push share changes every 2000 operations, so the
 * queue fills and drains), each checked against the reference, min and len after each. */
static void run_random(keys_t kind, uint64_t seed, size_t cap, size_t n_ops)
{
    uint64_t rng = seed;
    ww_mpq_t q;
    ww_mpq_init(&q);
    assert_int_equal(ww_mpq_reserve(&q, cap), 0);
    ref_t r;
    ref_init(&r, cap);
    both_check(&q, &r);
    double p_push = 0.5;
    for (size_t op = 0; op < n_ops; op++) {
        if (op % 2000 == 0) {
            static const double shares[] = {0.5, 0.9, 0.3, 0.55, 0.1, 0.7};
            p_push = shares[(op / 2000) % 6];
        }
        bool push = r.n == 0 || (r.n_free > 0 && ww_test_rng_unit(&rng) < p_push);
        if (push) {
            /* A clock between the last key popped and the current minimum: keys may go
             * below the minimum, never below the last key popped. */
            double lo = r.last_popped, hi = ref_min(&r), floor_key = lo;
            if (isfinite(hi) && (ww_test_rng_next(&rng) & 1)) {
                floor_key = lo + (hi - lo) * ww_test_rng_unit(&rng);
                floor_key = floor_key < lo ? lo : floor_key > hi ? hi : floor_key;
            }
            both_push(&q, &r, draw_key(kind, floor_key, &rng), &rng);
        } else {
            both_pop(&q, &r);
        }
        both_check(&q, &r);
    }
    while (r.n > 0) {
        both_pop(&q, &r);
        both_check(&q, &r);
    }
    assert_true(ww_mpq_min(&q) == INFINITY);
    ref_fini(&r);
    ww_mpq_fini(&q);
}

static void test_random_exponential_gaps(void **state)
{
    run_random(KEYS_EXP, 1, 1024, 200000);
}

static void test_random_many_ties(void **state)
{
    run_random(KEYS_TIES, 2, 1024, 200000);
}

static void test_random_six_decades(void **state)
{
    run_random(KEYS_SPAN, 3, 1024, 200000);
}

static void test_random_zero_and_neighbours(void **state)
{
    run_random(KEYS_ZERO, 4, 256, 100000);
}

static void test_random_mixed(void **state)
{
    for (uint64_t seed = 10; seed < 20; seed++) {
        run_random(KEYS_MIXED, seed, 64 << (seed % 5), 40000);
    }
}

/* The simulator's steady state: ~3000 queued, each step pops the minimum and pushes the
 * clock plus an exponential gap. */
static void test_simulator_steady_state(void **state)
{
    uint64_t rng = 77;
    ww_mpq_t q;
    ww_mpq_init(&q);
    assert_int_equal(ww_mpq_reserve(&q, 3001), 0);
    ref_t r;
    ref_init(&r, 3001);
    for (int i = 0; i < 3000; i++) {
        both_push(&q, &r, rng_exp(&rng, 0.5), &rng);
    }
    for (int step = 0; step < 100000; step++) {
        double t = both_pop(&q, &r);
        both_check(&q, &r);
        both_push(&q, &r, t + rng_exp(&rng, 0.5), &rng);
        both_check(&q, &r);
    }
    ref_fini(&r);
    ww_mpq_fini(&q);
}

/* `while (min(q) <= x) pop(q)` pops exactly the slots whose key is <= x: with many equal
 * keys, x on a key and between keys, and keys pushed after each drain below the current
 * minimum (at x, as the simulator pushes at its clock). */
static void test_pop_until_set_semantics(void **state)
{
    enum { CAP = 4096 };
    uint64_t rng = 5;
    static double key[CAP];
    static bool queued[CAP], popped[CAP];
    ww_mpq_t q;
    ww_mpq_init(&q);
    assert_int_equal(ww_mpq_reserve(&q, CAP), 0);
    uint32_t next_slot = 0;
    double x = 0.0;
    for (int round = 0; round < 200; round++) {
        /* Pushes: keys on a coarse grid above x (many duplicates), some equal to x. */
        int n_push = 5 + (int)(ww_test_rng_next(&rng) % 15);
        for (int i = 0; i < n_push && next_slot < CAP; i++) {
            uint32_t s = next_slot++;
            key[s] = x + 0.25 * (double)(ww_test_rng_next(&rng) % 8);
            queued[s] = true;
            ww_mpq_push(&q, key[s], s);
        }
        double m = ww_mpq_min(&q);
        /* The next x: on a queued key, or between two, or equal to the last one. */
        switch (ww_test_rng_next(&rng) % 3) {
        case 0:
            x = m + 0.25 * (double)(ww_test_rng_next(&rng) % 3);
            break;
        case 1:
            x = m + 0.125 + 0.25 * (double)(ww_test_rng_next(&rng) % 3);
            break;
        default:
            x = m;
            break;
        }
        memset(popped, 0, sizeof(popped));
        while (ww_mpq_min(&q) <= x) {
            uint32_t s = ww_mpq_pop(&q);
            assert_true(s < next_slot);
            assert_true(queued[s]);
            assert_false(popped[s]);
            popped[s] = true;
        }
        size_t left = 0;
        for (uint32_t s = 0; s < next_slot; s++) {
            if (!queued[s]) {
                continue;
            }
            if (key[s] <= x) {
                assert_true(popped[s]); /* every key <= x went */
                queued[s] = false;
            } else {
                assert_false(popped[s]); /* and nothing above x */
                left++;
            }
        }
        assert_int_equal(ww_mpq_len(&q), left);
    }
    ww_mpq_fini(&q);
}

/* A key pushed after min() reported a larger one, not below the last key popped, becomes
 * the minimum (min must not have moved the queue's base past it). */
static void test_push_below_current_min(void **state)
{
    ww_mpq_t q;
    ww_mpq_init(&q);
    assert_int_equal(ww_mpq_reserve(&q, 8), 0);
    ww_mpq_push(&q, 10.0, 0);
    ww_mpq_push(&q, 12.0, 1);
    assert_true(ww_mpq_min(&q) == 10.0);
    ww_mpq_push(&q, 3.0, 2);
    assert_true(ww_mpq_min(&q) == 3.0);
    assert_int_equal(ww_mpq_pop(&q), 2);
    assert_true(ww_mpq_min(&q) == 10.0);
    ww_mpq_push(&q, 3.0, 3); /* equal to the last popped */
    ww_mpq_push(&q, 5.0, 4);
    assert_true(ww_mpq_min(&q) == 3.0);
    assert_int_equal(ww_mpq_pop(&q), 3);
    assert_int_equal(ww_mpq_pop(&q), 4);
    assert_int_equal(ww_mpq_pop(&q), 0);
    ww_mpq_push(&q, 11.0, 5);
    assert_true(ww_mpq_min(&q) == 11.0);
    assert_int_equal(ww_mpq_pop(&q), 5);
    assert_int_equal(ww_mpq_pop(&q), 1);
    assert_int_equal(ww_mpq_len(&q), 0);
    assert_true(ww_mpq_min(&q) == INFINITY);
    ww_mpq_fini(&q);
}

/* Growing while non-empty keeps every queued slot and key; a smaller reserve is a no-op;
 * a capacity past the uint32_t slot range is refused without touching the queue. */
static void test_reserve_grows_keeping_contents(void **state)
{
    uint64_t rng = 9;
    ww_mpq_t q;
    ww_mpq_init(&q);
    ref_t r;
    ref_init(&r, 4000);
    size_t cap = 0;
    for (size_t next = 4; next <= 4000; next = next * 3 / 2 + 1) {
        assert_int_equal(ww_mpq_reserve(&q, next), 0);
        assert_int_equal(ww_mpq_reserve(&q, next / 2), 0); /* never shrinks */
        cap = next < 4000 ? next : 4000;
        /* Only slots below the new capacity: hand the reference's free list out in
         * order by pushing the lowest free slots. */
        r.n_free = 0;
        for (size_t s = cap; s-- > 0;) {
            if (!r.queued[s]) {
                r.free_slots[r.n_free++] = (uint32_t)s;
            }
        }
        while (r.n_free > 0 && r.n < cap * 3 / 4) {
            both_push(&q, &r, draw_key(KEYS_MIXED, r.last_popped, &rng), &rng);
            both_check(&q, &r);
        }
        for (int i = 0; i < 3 && r.n > 0; i++) {
            both_pop(&q, &r);
            both_check(&q, &r);
        }
    }
#if SIZE_MAX > UINT32_MAX
    size_t before = ww_mpq_len(&q);
    assert_int_equal(ww_mpq_reserve(&q, (size_t)UINT32_MAX + 1), -ENOMEM);
    assert_int_equal(ww_mpq_len(&q), before);
#endif
    while (r.n > 0) {
        both_pop(&q, &r);
        both_check(&q, &r);
    }
    ref_fini(&r);
    ww_mpq_fini(&q);
}

/* The empty queue: min INFINITY, len 0, before and after use; fini twice is safe; after
 * fini/init or clear the queue works again with keys starting from 0. */
static void test_empty_and_reuse(void **state)
{
    ww_mpq_t q;
    ww_mpq_init(&q);
    assert_int_equal(ww_mpq_len(&q), 0);
    assert_true(ww_mpq_min(&q) == INFINITY);
    ww_mpq_fini(&q);
    ww_mpq_fini(&q);
    for (int round = 0; round < 3; round++) {
        ww_mpq_init(&q);
        assert_true(ww_mpq_min(&q) == INFINITY);
        assert_int_equal(ww_mpq_reserve(&q, 16), 0);
        for (int pass = 0; pass < 2; pass++) {
            ww_mpq_push(&q, 7.5, 3);
            ww_mpq_push(&q, -0.0, 9);
            ww_mpq_push(&q, 100.0, 15);
            assert_int_equal(ww_mpq_len(&q), 3);
            assert_true(ww_mpq_min(&q) == 0.0);
            assert_false(signbit(ww_mpq_min(&q)));
            assert_int_equal(ww_mpq_pop(&q), 9);
            assert_true(ww_mpq_min(&q) == 7.5);
            assert_int_equal(ww_mpq_pop(&q), 3);
            assert_int_equal(ww_mpq_pop(&q), 15);
            assert_int_equal(ww_mpq_len(&q), 0);
            assert_true(ww_mpq_min(&q) == INFINITY);
            /* The queue's base is now 100: clear forgets it, so 0 can be pushed again. */
            ww_mpq_push(&q, 200.0, 1);
            ww_mpq_clear(&q);
            assert_int_equal(ww_mpq_len(&q), 0);
            assert_true(ww_mpq_min(&q) == INFINITY);
        }
        ww_mpq_push(&q, 1.0, 0); /* left queued: fini frees it anyway */
        ww_mpq_fini(&q);
        assert_int_equal(ww_mpq_len(&q), 0);
        assert_true(ww_mpq_min(&q) == INFINITY);
    }
}

/* Two queues on one caller-owned slot array (ww_mpq_use), slots moving from the first to
 * the second and back to free, as the simulator's requests go from prefill to decode to
 * done: every pop is the smallest key of its own queue, by a scan of the slots; the array
 * grows midway (realloc, ww_mpq_use again) with both queues non-empty; fini leaves the
 * array to its owner (ASan would see a double free). */
static void test_two_queues_share_one_array(void **state)
{
    (void)state;
    enum { CAP1 = 300, CAP2 = 700, STEPS = 200000 };
    ww_mpq_node_t *node = malloc(CAP1 * sizeof(*node));
    assert_non_null(node);
    for (size_t i = 0; i < CAP1; i++) {
        node[i] = (ww_mpq_node_t){WW_MPQ_FREE, WW_MPQ_NONE};
    }
    ww_mpq_t q[2];
    ww_mpq_init(&q[0]);
    ww_mpq_init(&q[1]);
    ww_mpq_use(&q[0], node, CAP1);
    ww_mpq_use(&q[1], node, CAP1);
    static double key[CAP2];
    static int where[CAP2]; /* 0 free, 1 in q[0], 2 in q[1] */
    size_t cap = CAP1, len[2] = {0, 0};
    double clock[2] = {0.0, 0.0}; /* each queue's last key popped */
    uint64_t rng = 11;
    for (size_t step = 0; step < STEPS; step++) {
        if (step == STEPS / 2) {
            assert_true(len[0] > 0 && len[1] > 0);
            node = realloc(node, CAP2 * sizeof(*node));
            assert_non_null(node);
            for (size_t i = cap; i < CAP2; i++) {
                node[i] = (ww_mpq_node_t){WW_MPQ_FREE, WW_MPQ_NONE};
            }
            cap = CAP2;
            ww_mpq_use(&q[0], node, cap);
            ww_mpq_use(&q[1], node, cap);
        }
        unsigned act = (unsigned)(ww_test_rng_next(&rng) % 3);
        if (act == 0) { /* a new request: a free slot into q[0] */
            size_t s = (size_t)(ww_test_rng_next(&rng) % cap);
            while (where[s] != 0 && len[0] + len[1] < cap) {
                s = (s + 1) % cap;
            }
            if (where[s] == 0) {
                key[s] = clock[0] + rng_exp(&rng, 0.5);
                where[s] = 1;
                len[0]++;
                ww_mpq_push(&q[0], key[s], (uint32_t)s);
            }
        } else {
            unsigned k = act - 1; /* pop q[k]: its slot moves to q[1] or is freed */
            double want = INFINITY;
            for (size_t s = 0; s < cap; s++) {
                want = where[s] == (int)k + 1 && key[s] < want ? key[s] : want;
            }
            assert_true(ww_mpq_min(&q[k]) == want);
            if (len[k] > 0) {
                uint32_t s = ww_mpq_pop(&q[k]);
                assert_true(s < cap && where[s] == (int)k + 1 && key[s] == want);
                clock[k] = want;
                len[k]--;
                if (k == 0) {
                    key[s] = clock[1] + rng_exp(&rng, 0.5) * (double)(ww_test_rng_next(&rng) % 2);
                    where[s] = 2;
                    len[1]++;
                    ww_mpq_push(&q[1], key[s], s);
                } else {
                    where[s] = 0;
                }
            }
        }
        assert_int_equal(ww_mpq_len(&q[0]), len[0]);
        assert_int_equal(ww_mpq_len(&q[1]), len[1]);
    }
    ww_mpq_fini(&q[0]);
    ww_mpq_fini(&q[1]);
    node[0].next = 0; /* still ours */
    free(node);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_random_exponential_gaps),
    cmocka_unit_test(test_random_many_ties),
    cmocka_unit_test(test_random_six_decades),
    cmocka_unit_test(test_random_zero_and_neighbours),
    cmocka_unit_test(test_random_mixed),
    cmocka_unit_test(test_simulator_steady_state),
    cmocka_unit_test(test_pop_until_set_semantics),
    cmocka_unit_test(test_push_below_current_min),
    cmocka_unit_test(test_reserve_grows_keeping_contents),
    cmocka_unit_test(test_empty_and_reuse),
    cmocka_unit_test(test_two_queues_share_one_array),
};

WW_TEST_MAIN(tests, NULL, NULL)
