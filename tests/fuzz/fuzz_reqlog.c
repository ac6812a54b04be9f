/* fuzz_reqlog: libFuzzer target of ww_reqlog_parse() and ww_reqlog_record(), the decoding of
 * the request log's datagrams (the input is one datagram, as the agent's socket gives it).
 *
 * Invariants checked on every input (a violation traps):
 *  - a refusal returns -EBADMSG with a reason;
 *  - an accepted READING is 72 bytes with a positive time and finite values, and encodes
 *    back (ww_reqlog_reading) to the same bytes;
 *  - an accepted REQUESTS datagram has 1..8 model names of 1..47 printable characters
 *    inside the input, its records end exactly at the end of the input, and every record
 *    decodes (ww_reqlog_record) to either -EINVAL with a reason or a record with a model in
 *    the table, a known status and ordered times;
 *  - one whose records all decode encodes back (ww_reqlog_begin/add) to the same bytes.
 */
#include "ww_reqlog.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_reqlog: invariant violated: %s (%s:%d)\n", #cond, __FILE__,      \
                    __LINE__);                                                                     \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check_reading(const uint8_t *data, size_t size, const ww_reqlog_msg_t *m)
{
    CHECK(size == WW_REQLOG_HEADER +
                      (m->version == 1 ? WW_REQLOG_READING_BYTES_V1 : WW_REQLOG_READING_BYTES_V2));
    CHECK(m->time_ns > 0);
    const ww_reading_t *r = &m->reading;
    const float f[] = {r->power_w,         r->inlet_c,     r->outlet_c,     r->flow_lpm,
                       r->wafer_hotspot_c, r->utilization, r->tokens_per_s, r->throttle_factor};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        CHECK(isfinite(f[i]));
    }
    uint8_t back[WW_REQLOG_HEADER + WW_REQLOG_READING_BYTES];
    CHECK(ww_reqlog_reading_v(back, m->version, m->time_ns, r) == size);
    CHECK(memcmp(back, data, size) == 0);
}

static void s_check_requests(const uint8_t *data, size_t size, const ww_reqlog_msg_t *m)
{
    CHECK(m->n_models >= 1 && m->n_models <= WW_REQLOG_MAX_MODELS);
    char names[WW_REQLOG_MAX_MODELS][WW_MODEL_NAME_MAX];
    const char *np[WW_REQLOG_MAX_MODELS];
    for (unsigned i = 0; i < m->n_models; i++) {
        size_t len = m->model_len[i];
        CHECK(len >= 1 && len < WW_MODEL_NAME_MAX);
        const uint8_t *p = (const uint8_t *)m->model[i];
        CHECK(p > data && p + len <= data + size);
        for (size_t k = 0; k < len; k++) {
            CHECK(p[k] > ' ' && p[k] <= '~');
        }
        memcpy(names[i], p, len);
        names[i][len] = '\0';
        np[i] = names[i];
    }
    CHECK(m->records >= data + WW_REQLOG_HEADER);
    CHECK((size_t)(m->records - data) % 8 == 0);
    CHECK((size_t)(m->records - data) + (size_t)m->count * WW_REQLOG_RECORD == size);

    static ww_reqlog_batch_t b; /* 16 KiB: not on the stack */
    CHECK(ww_reqlog_begin(&b, np, m->n_models) == 0);
    CHECK(b.records_off == (size_t)(m->records - data));
    bool all_good = true;
    for (uint32_t k = 0; k < m->count; k++) {
        ww_request_t r;
        const char *why = NULL;
        int rc = ww_reqlog_record(m, k, &r, &why);
        if (rc != 0) {
            CHECK(rc == -EINVAL);
            CHECK(why != NULL && why[0] != '\0');
            all_good = false;
            continue;
        }
        CHECK(r.model < m->n_models);
        CHECK((unsigned)r.status <= WW_REQ_REJECTED);
        CHECK(r.arrival_ns > 0 && r.arrival_ns <= r.start_ns && r.start_ns <= r.first_token_ns &&
              r.first_token_ns <= r.done_ns);
        CHECK(ww_reqlog_add(&b, &r) == 1);
    }
    if (all_good) {
        /* The same bytes, but for the version: REQUESTS are one layout in versions 1 and 2,
         * both accepted, and written as WW_REQLOG_REQUESTS_VERSION. */
        CHECK(b.count == m->count && b.len == size);
        CHECK(b.buf[4] == WW_REQLOG_REQUESTS_VERSION);
        CHECK(memcmp(b.buf, data, 4) == 0);
        CHECK(memcmp(b.buf + 5, data + 5, size - 5) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so a read past the datagram is a heap overflow. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        return 0;
    }
    memcpy(buf, data, size);
    ww_reqlog_msg_t m;
    const char *why = NULL;
    int rc = ww_reqlog_parse(buf, size, &m, &why);
    if (rc != 0) {
        CHECK(rc == -EBADMSG);
        CHECK(why != NULL && why[0] != '\0');
    } else if (m.type == WW_REQLOG_READING) {
        s_check_reading(buf, size, &m);
    } else {
        CHECK(m.type == WW_REQLOG_REQUESTS);
        CHECK(size <= WW_REQLOG_MAX_DGRAM);
        s_check_requests(buf, size, &m);
    }
    free(buf);
    return 0;
}
