/* fuzz_wire: libFuzzer target of ww_wire_decode(), the collector's decoder of every
 * message an agent sends (and the agent's of the collector's replies).
 *
 * Invariants checked on every input (a violation traps):
 *  - a refusal returns one of the documented errors with *out NULL, a non-empty reason
 *    and a Nack code other than UNSPECIFIED; when it reports the (epoch, seq) to Nack,
 *    both are non-zero and the agent_id is clean non-empty text; the decoder's allocator
 *    never passed its budget (WW_WIRE_ALLOC_BUDGET);
 *  - the raw scan (ww_wire_scan) calls malformed only what protobuf-c cannot unpack (the
 *    padded field number 0 excepted), and refuses nothing protobuf-c unpacks into an
 *    envelope that then validates;
 *  - an accepted envelope validates again on its own, each of its samples passes or is
 *    refused by ww_wire_check_sample with the field named, every histogram of its latency
 *    windows decodes into a histogram that passes ww_hist_check(), and the envelope
 *    re-encodes into bytes that decode to an envelope that validates and re-encodes to
 *    the very same bytes (the codec is a fixed point after one round).
 * "now" is the fixed WW_FUZZ_NOW_NS (the seeds' time), so runs are reproducible.
 */
#include "ww_hist.h"
#include "ww_hist_wire.h"
#include "ww_wire.h"
#include "ww_wire_scan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef WW_FUZZ_NOW_NS
#error "WW_FUZZ_NOW_NS must be defined (tests/fuzz/CMakeLists.txt)"
#endif

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_wire: invariant violated: %s (%s:%d)\n", #cond, __FILE__,        \
                    __LINE__);                                                                     \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check_hist(const Waferwatch__V1__Histogram *pb, const ww_wire_limits_t *lim)
{
    if (!pb) {
        return;
    }
    ww_hist_t h;
    ww_wire_why_t why;
    int rc = ww_hist_from_pb(pb, &h, lim->max_buckets, &why, "h");
    CHECK(rc == 0 || rc == -ENOMEM);
    if (rc == 0) {
        CHECK(ww_hist_check(&h) == 0);
        CHECK(h.count == pb->count);
        CHECK(ww_hist_nonempty(&h) == pb->n_index_delta);
    }
    ww_hist_fini(&h);
}

static void s_check_accepted(const ww_envelope_t *env, const ww_wire_limits_t *lim)
{
    CHECK(ww_wire_validate(env, lim, WW_FUZZ_NOW_NS, NULL) == 0);
    CHECK(env->wire_version == WW_WIRE_VERSION);
    CHECK(env->agent_id && env->agent_id[0] != '\0');
    if (env->body_case == WAFERWATCH__V1__ENVELOPE__BODY_BATCH) {
        const ww_batch_t *b = env->batch;
        CHECK(env->epoch != 0 && env->seq != 0);
        /* The readings are checked one sample at a time: a refusal names the field. */
        for (size_t i = 0; i < b->n_samples; i++) {
            ww_wire_why_t why;
            int rc = ww_wire_check_sample(b->samples[i], i, lim, WW_FUZZ_NOW_NS, &why);
            CHECK(rc == 0 || (rc == -EINVAL && strstr(why.msg, "batch.samples[") != NULL));
        }
        for (size_t i = 0; i < b->n_latency_windows; i++) {
            const Waferwatch__V1__LatencyWindow *w = b->latency_windows[i];
            s_check_hist(w->queue, lim);
            s_check_hist(w->ttft, lim);
            s_check_hist(w->tpot, lim);
            s_check_hist(w->e2e, lim);
        }
    }

    uint8_t *b1 = NULL, *b2 = NULL;
    size_t c1 = 0, c2 = 0;
    long n1 = ww_wire_encode(env, &b1, &c1);
    if (n1 == -ENOMEM) {
        free(b1);
        return;
    }
    CHECK(n1 > 0 && (size_t)n1 <= c1);
    ww_envelope_t *again = NULL;
    ww_wire_why_t why;
    int rc = ww_wire_decode(b1, (size_t)n1, lim, WW_FUZZ_NOW_NS, &again, &why);
    if (rc != 0) {
        fprintf(stderr, "fuzz_wire: the re-encoded envelope is refused (%d): %s\n", rc, why.msg);
    }
    CHECK(rc == 0 && again);
    CHECK(again->body_case == env->body_case);
    CHECK(again->epoch == env->epoch && again->seq == env->seq);
    CHECK(strcmp(again->agent_id, env->agent_id) == 0);
    long n2 = ww_wire_encode(again, &b2, &c2);
    if (n2 != -ENOMEM) {
        CHECK(n2 == n1 && memcmp(b1, b2, (size_t)n1) == 0);
    }
    ww_wire_free(&again);
    CHECK(again == NULL);
    free(b1);
    free(b2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    ww_envelope_t *env = (ww_envelope_t *)1; /* must be set to NULL on failure */
    ww_wire_why_t why;
    memset(&why, 0x5a, sizeof why);
    int rc = ww_wire_decode(data, size, &lim, WW_FUZZ_NOW_NS, &env, &why);
    CHECK(why.unpack_bytes <= WW_WIRE_ALLOC_BUDGET(size));
    ww_wire_scan_head_t head;
    ww_wire_why_t swhy;
    int src = ww_wire_scan(data, size, &lim, &head, &swhy);
    CHECK(src == 0 || src == -EBADMSG || src == -EINVAL);
    if (src == -EBADMSG && !strstr(swhy.msg, "numbered 0")) {
        ww_envelope_t *raw = waferwatch__v1__envelope__unpack(NULL, size, data);
        CHECK(raw == NULL);
    }
    if (rc == 0) {
        CHECK(src == 0);
    }
    if (rc < 0) {
        CHECK(env == NULL);
        CHECK(rc == -EMSGSIZE || rc == -EBADMSG || rc == -EPROTONOSUPPORT || rc == -EINVAL);
        if (size <= lim.max_message_bytes) {
            CHECK(src == 0 || rc == src); /* the scan's refusal is the decoder's */
        }
        CHECK(memchr(why.msg, '\0', sizeof why.msg) != NULL && why.msg[0] != '\0');
        CHECK(ww_wire_nack_code(rc) != WAFERWATCH__V1__NACK_CODE__NACK_UNSPECIFIED);
        CHECK(why.have_seq == 0 || why.have_seq == 1);
        if (why.have_seq) {
            CHECK(why.epoch != 0 && why.seq != 0);
            size_t len = strnlen(why.agent_id, sizeof why.agent_id);
            CHECK(len > 0 && len < sizeof why.agent_id);
            CHECK(ww_wire_text_ok(why.agent_id, len));
        } else {
            CHECK(why.epoch == 0 && why.seq == 0 && why.agent_id[0] == '\0');
        }
        return 0;
    }
    CHECK(rc == 0 && env != NULL);
    s_check_accepted(env, &lim);
    ww_wire_free(&env);
    CHECK(env == NULL);
    return 0;
}
