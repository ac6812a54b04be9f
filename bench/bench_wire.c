/* bench_wire: the cost of the wire format, measured side by side in one run.
 *
 * Prints protobuf bytes per node-sample in a realistic batch, and per sample the time to
 * encode a batch and to decode + validate it, beside a memcpy of the same encoded bytes
 * (the floor: what moving the bytes costs at all). Ratios, not absolute times, are what
 * compare across the shared, noisy machines this runs on.
 *
 *   build/bench/bench_wire [samples_per_batch] [rounds]
 */
#include "ww_time.h"
#include "ww_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double s_per_sample_ns(int64_t t0, int64_t t1, long rounds, size_t n)
{
    return (double)(t1 - t0) / ((double)rounds * (double)n);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 1000;
    long rounds = argc > 2 ? atol(argv[2]) : 200;
    if (n == 0 || rounds <= 0) {
        fprintf(stderr, "usage: bench_wire [samples_per_batch>0] [rounds>0]\n");
        return 2;
    }
    ww_node_sample_t *s = calloc(n, sizeof *s);
    ww_node_sample_t **p = calloc(n, sizeof *p);
    char(*ids)[32] = calloc(n, sizeof *ids);
    if (!s || !p || !ids) {
        return 1;
    }
    int64_t tick = ww_time_next_tick(ww_time_now_ns(), WW_NS_PER_S) - WW_NS_PER_S;
    for (size_t i = 0; i < n; i++) {
        waferwatch__v1__node_sample__init(&s[i]);
        snprintf(ids[i], sizeof ids[i], "okc1-h%zu-r%02zu-%zu", i / 640, (i / 16) % 40, i % 16);
        s[i].node_id = ids[i];
        s[i].time_ns = tick;
        s[i].power_w = 17000.0f + (float)(i % 6000);
        s[i].inlet_c = 25.0f;
        s[i].outlet_c = 31.0f + (float)(i % 7) * 0.13f;
        s[i].flow_lpm = 40.0f;
        s[i].wafer_hotspot_c = 66.0f + (float)(i % 11) * 0.37f;
        s[i].utilization = 0.58f;
        s[i].tokens_per_s = 20000.0f + (float)(i % 900);
        s[i].requests_queued = (uint32_t)(i % 5);
        s[i].requests_in_flight = 40 + (uint32_t)(i % 24);
        s[i].requests_completed = 30 + (uint32_t)(i % 9);
        s[i].throttle_factor = 1.0f;
        p[i] = &s[i];
    }
    ww_batch_t b = WAFERWATCH__V1__BATCH__INIT;
    b.samples = p;
    b.n_samples = n;
    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    env.wire_version = WW_WIRE_VERSION;
    env.agent_id = (char *)"bench-agent";
    env.epoch = 0x5eed;
    env.seq = 1;
    env.sent_ns = tick;
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_BATCH;
    env.batch = &b;

    uint8_t *buf = NULL;
    size_t cap = 0;
    long len = ww_wire_encode(&env, &buf, &cap);
    uint8_t *copy = malloc((size_t)len);
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    lim.max_samples = n;

    int64_t t0 = ww_time_mono_ns();
    for (long r = 0; r < rounds; r++) {
        memcpy(copy, buf, (size_t)len);
        __asm__ volatile("" ::"r"(copy) : "memory");
    }
    int64_t t1 = ww_time_mono_ns();
    for (long r = 0; r < rounds; r++) {
        env.seq = (uint64_t)r + 1;
        len = ww_wire_encode(&env, &buf, &cap);
    }
    int64_t t2 = ww_time_mono_ns();
    for (long r = 0; r < rounds; r++) {
        ww_envelope_t *out = NULL;
        ww_wire_why_t why;
        if (ww_wire_decode(buf, (size_t)len, &lim, ww_time_now_ns(), &out, &why) != 0) {
            fprintf(stderr, "decode failed: %s\n", why.msg);
            return 1;
        }
        ww_wire_free(&out);
    }
    int64_t t3 = ww_time_mono_ns();

    double floor_ns = s_per_sample_ns(t0, t1, rounds, n);
    double enc_ns = s_per_sample_ns(t1, t2, rounds, n);
    double dec_ns = s_per_sample_ns(t2, t3, rounds, n);
    printf("bench_wire: %zu samples per batch, %ld rounds\n", n, rounds);
    printf("%-38s %10s %10s\n", "measure", "value", "x floor");
    printf("%-38s %10.1f %10s\n", "wire bytes per node-sample", (double)len / (double)n, "");
    printf("%-38s %10.2f %10.1f\n", "memcpy of the batch, ns/sample (floor)", floor_ns, 1.0);
    printf("%-38s %10.2f %10.1f\n", "encode, ns/sample", enc_ns, enc_ns / floor_ns);
    printf("%-38s %10.2f %10.1f\n", "decode + validate, ns/sample", dec_ns, dec_ns / floor_ns);
    free(buf);
    free(copy);
    free(s);
    free(p);
    free(ids);
    return 0;
}
