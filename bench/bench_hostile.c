/* bench_hostile: what one hostile agent costs a real collector and the other agents,
 * measured side by side in one run (issue 14, item 4). Run by bench/hostile.sh, which
 * starts the throwaway PostgreSQL, the keys and the collector.
 *
 * AGENTS normal agents (raw CURVE DEALERs with enrolled keys, one node each) send one
 * one-sample batch per second each, and measure their own send -> Ack delay. Three phases
 * of SECONDS each:
 *   none     no attack;
 *   samples  one enrolled agent sends maximum-size messages back to back: 16 MiB
 *            envelopes holding ~8.4 M empty samples (2 bytes each on the wire);
 *   buckets  the same agent sends maximum-size messages of one histogram with ~16.7 M
 *            bucket counts (1 byte each on the wire, 8 bytes each once unpacked).
 * "Back to back" with a window: the attacker keeps WINDOW messages unanswered (a real
 * agent keeps its queue_batches), sending the next one as soon as one is answered. It is
 * the most the collector can be made to decode, without the attacker's own queue in the
 * collector's socket growing without bound (that bound is ZMQ_RCVHWM's, see ww_ingest.c).
 *
 * For each phase: the collector's peak RSS (VmHWM of COLLECTOR_PID, reset through
 * /proc/PID/clear_refs before the phase), the normal agents' ack delay p50 / p99 / max
 * and the attacker's messages answered; then the attack phases beside the quiet one as
 * ratios.
 *
 *   bench_hostile ENDPOINT KEYDIR COLLECTOR_PID [SECONDS=20] [AGENTS=8] [WINDOW=4]
 *
 * KEYDIR holds collector.pub, normal-I.key (I < AGENTS, enrolled as agent normal-I for
 * node normal-I-node) and hostile.key (enrolled as hostile for hostile-*).
 */
#include "ww_curve.h"
#include "ww_time.h"
#include "ww_wire.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_PHASES 3
#define S_MAX_AGENTS 64
#define S_MAX_SEQ 4096
#define S_MAX_MSG (16u << 20) /* the collector's default ingest.max_message_bytes */

static const char *const s_phase_names[S_PHASES] = {"none", "samples", "buckets"};

typedef struct {
    void *sock;
    char id[32], node[48];
    int64_t sent_ns[S_MAX_SEQ]; /* by seq; 0 = not sent */
    int8_t phase[S_MAX_SEQ];
    bool acked[S_MAX_SEQ];
    uint64_t seq;
} s_agent_t;

typedef struct {
    double *v;
    size_t n, cap;
} s_vec_t;

typedef struct {
    void *ctx;
    const char *endpoint, *keydir;
    int window;
    int kind; /* 1 samples, 2 buckets */
    atomic_bool stop;
    uint8_t *msg;
    size_t len;
    uint64_t sent, answered;
    int64_t busy_ns; /* sum of send -> answer */
} s_attack_t;

static int s_curve(void *sock, const char *keydir, const char *name)
{
    char path[512], why[256];
    ww_curve_key_t server, me;
    snprintf(path, sizeof path, "%s/collector.pub", keydir);
    if (ww_curve_load(path, 0, &server, why, sizeof why) < 0) {
        fprintf(stderr, "bench_hostile: %s\n", why);
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s.key", keydir, name);
    if (ww_curve_load(path, 1, &me, why, sizeof why) < 0) {
        fprintf(stderr, "bench_hostile: %s\n", why);
        return -1;
    }
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server.public_z85, WW_Z85_KEY_LEN);
    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, me.public_z85, WW_Z85_KEY_LEN);
    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, me.secret_z85, WW_Z85_KEY_LEN);
    return 0;
}

static size_t s_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* A length-delimited field's tag and length. */
static size_t s_ld(uint8_t *p, unsigned field, uint64_t len)
{
    size_t n = s_varint(p, (uint64_t)field << 3 | 2);
    return n + s_varint(p + n, len);
}

/* The hostile envelope of `kind`, as large as the limit allows (seq patched in place at
 * offset *seq_at, a 9-byte varint). */
static uint8_t *s_hostile_message(int kind, size_t *len, size_t *seq_at)
{
    uint8_t *m = malloc(S_MAX_MSG);
    if (!m) {
        return NULL;
    }
    size_t n = 0;
    m[n++] = 0x08; /* wire_version = 1 */
    m[n++] = 1;
    n += s_ld(m + n, 2, 7); /* agent_id */
    memcpy(m + n, "hostile", 7);
    n += 7;
    m[n++] = 0x19; /* epoch, fixed64 */
    uint64_t epoch = 0x686f7374696c65ULL;
    memcpy(m + n, &epoch, 8);
    n += 8;
    m[n++] = 0x20; /* seq: a 9-byte varint, patched per message */
    *seq_at = n;
    n += s_varint(m + n, UINT64_C(1) << 56);
    m[n++] = 0x28; /* sent_ns */
    n += s_varint(m + n, (uint64_t)ww_time_now_ns());
    /* Field 11 (batch) with a 4-byte length prefix in every nesting level, sized so the
     * whole envelope is exactly the limit. */
    size_t room = S_MAX_MSG - n - 5; /* tag + 4-byte length of the batch */
    uint8_t *batch = m + n + 5;
    size_t b = 0;
    if (kind == 1) {
        size_t pairs = room / 2;
        for (size_t i = 0; i < pairs; i++) {
            batch[b++] = 0x0a; /* samples: an empty NodeSample */
            batch[b++] = 0x00;
        }
    } else {
        /* latency_windows { node_id "hostile-1"; ttft { scale 0; bucket_count [1, 1, ...] } } */
        const size_t hdr = 5 + 2 + 9 + 5 + 5; /* window tag+len, node_id, ttft tag+len, counts */
        size_t counts = room - hdr;
        batch[b++] = 0x12; /* latency_windows, 4-byte length */
        size_t win_len_at = b;
        b += 4;
        size_t win_start = b;
        batch[b++] = 0x0a;
        batch[b++] = 9;
        memcpy(batch + b, "hostile-1", 9);
        b += 9;
        batch[b++] = 0x62; /* ttft (12), 4-byte length */
        size_t h_len_at = b;
        b += 4;
        size_t h_start = b;
        batch[b++] = 0x52; /* bucket_count (10), packed, 4-byte length */
        size_t c_len_at = b;
        b += 4;
        memset(batch + b, 1, counts);
        b += counts;
        size_t lens[3][2] = {
            {c_len_at, counts}, {h_len_at, b - h_start}, {win_len_at, b - win_start}};
        for (int k = 0; k < 3; k++) {
            uint64_t v = lens[k][1];
            for (int j = 0; j < 4; j++) {
                batch[lens[k][0] + (size_t)j] = (uint8_t)((v & 0x7f) | (j < 3 ? 0x80 : 0));
                v >>= 7;
            }
        }
    }
    m[n] = 0x5a; /* batch (11) */
    uint64_t v = b;
    for (int j = 0; j < 4; j++) {
        m[n + 1 + (size_t)j] = (uint8_t)((v & 0x7f) | (j < 3 ? 0x80 : 0));
        v >>= 7;
    }
    *len = n + 5 + b;
    return m;
}

static void s_patch_seq(uint8_t *m, size_t at, uint64_t seq)
{
    for (int j = 0; j < 9; j++) {
        m[at + (size_t)j] = (uint8_t)((seq & 0x7f) | (j < 8 ? 0x80 : 0));
        seq >>= 7;
    }
}

static void *s_attacker(void *arg)
{
    s_attack_t *a = arg;
    void *sock = zmq_socket(a->ctx, ZMQ_DEALER);
    int hwm = a->window + 1;
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (s_curve(sock, a->keydir, "hostile") < 0 || zmq_connect(sock, a->endpoint) != 0) {
        zmq_close(sock);
        return NULL;
    }
    size_t seq_at = 0;
    a->msg = s_hostile_message(a->kind, &a->len, &seq_at);
    if (!a->msg) {
        zmq_close(sock);
        return NULL;
    }
    int64_t sent_at[1024] = {0};
    uint64_t seq = (uint64_t)a->kind << 40;
    int outstanding = 0;
    while (!atomic_load(&a->stop)) {
        while (outstanding < a->window) {
            seq++;
            s_patch_seq(a->msg, seq_at, seq);
            sent_at[seq % 1024] = ww_time_mono_ns();
            if (zmq_send(sock, a->msg, a->len, 0) < 0) {
                break;
            }
            a->sent++;
            outstanding++;
        }
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) <= 0) {
            continue; /* look at the stop flag again */
        }
        uint8_t buf[4096];
        int n = zmq_recv(sock, buf, sizeof buf, ZMQ_DONTWAIT);
        if (n < 0) {
            continue;
        }
        ww_envelope_t *env = waferwatch__v1__envelope__unpack(
            NULL, (size_t)n < sizeof buf ? (size_t)n : sizeof buf, buf);
        if (env && env->body_case == WAFERWATCH__V1__ENVELOPE__BODY_NACK) {
            a->answered++;
            outstanding--;
            a->busy_ns += ww_time_mono_ns() - sent_at[env->nack->seq % 1024];
        }
        if (env) {
            waferwatch__v1__envelope__free_unpacked(env, NULL);
        }
    }
    free(a->msg);
    zmq_close(sock);
    return NULL;
}

static long s_status_kb(int pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            v = atol(line + n + 1);
        }
    }
    if (f) {
        fclose(f);
    }
    return v;
}

/* Resets VmHWM to the current RSS (Linux >= 4.0). Returns false when it cannot. */
static bool s_reset_peak(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/clear_refs", pid);
    FILE *f = fopen(path, "w");
    if (!f) {
        return false;
    }
    bool ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

static long s_encode_batch(s_agent_t *ag, uint8_t **buf, size_t *cap)
{
    ww_node_sample_t s;
    waferwatch__v1__node_sample__init(&s);
    s.node_id = ag->node;
    s.time_ns = ww_time_now_ns() / 1000 * 1000; /* a whole microsecond, as the wire wants */
    s.power_w = 20000;
    s.inlet_c = 25;
    s.outlet_c = 30;
    s.flow_lpm = 40;
    s.wafer_hotspot_c = 60;
    s.utilization = 0.5f;
    s.throttle_factor = 1;
    ww_node_sample_t *sp = &s;
    ww_batch_t b = WAFERWATCH__V1__BATCH__INIT;
    b.n_samples = 1;
    b.samples = &sp;
    ww_envelope_t env = WAFERWATCH__V1__ENVELOPE__INIT;
    env.wire_version = WW_WIRE_VERSION;
    env.agent_id = ag->id;
    env.epoch = 0x6e6f726d616cULL;
    env.seq = ag->seq;
    env.sent_ns = s.time_ns;
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_BATCH;
    env.batch = &b;
    return ww_wire_encode(&env, buf, cap);
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double s_q(s_vec_t *v, double q)
{
    if (v->n == 0) {
        return -1;
    }
    size_t r = (size_t)(q * (double)v->n + 0.999999);
    r = r < 1 ? 1 : r > v->n ? v->n : r;
    return v->v[r - 1];
}

static void s_push(s_vec_t *v, double x)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 256;
        v->v = realloc(v->v, v->cap * sizeof *v->v);
    }
    v->v[v->n++] = x;
}

/* Reads every reply waiting on the agents' sockets. */
static void s_read_acks(s_agent_t *ag, int n, s_vec_t *delays, long timeout_ms)
{
    zmq_pollitem_t items[S_MAX_AGENTS];
    for (int i = 0; i < n; i++) {
        items[i] = (zmq_pollitem_t){ag[i].sock, 0, ZMQ_POLLIN, 0};
    }
    if (zmq_poll(items, n, timeout_ms) <= 0) {
        return;
    }
    for (int i = 0; i < n; i++) {
        uint8_t buf[4096];
        int len;
        while ((len = zmq_recv(ag[i].sock, buf, sizeof buf, ZMQ_DONTWAIT)) >= 0) {
            ww_envelope_t *env = waferwatch__v1__envelope__unpack(
                NULL, (size_t)len < sizeof buf ? (size_t)len : sizeof buf, buf);
            if (env && env->body_case == WAFERWATCH__V1__ENVELOPE__BODY_ACK &&
                env->ack->seq < S_MAX_SEQ && ag[i].sent_ns[env->ack->seq] &&
                !ag[i].acked[env->ack->seq]) {
                uint64_t q = env->ack->seq;
                ag[i].acked[q] = true;
                s_push(&delays[ag[i].phase[q]],
                       (double)(ww_time_mono_ns() - ag[i].sent_ns[q]) / WW_NS_PER_MS);
            }
            if (env) {
                waferwatch__v1__envelope__free_unpacked(env, NULL);
            }
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_hostile ENDPOINT KEYDIR COLLECTOR_PID [SECONDS=20] "
                        "[AGENTS=8] [WINDOW=4]\n");
        return 2;
    }
    const char *endpoint = argv[1], *keydir = argv[2];
    int pid = atoi(argv[3]);
    int secs = argc > 4 ? atoi(argv[4]) : 20;
    int n = argc > 5 ? atoi(argv[5]) : 8;
    int window = argc > 6 ? atoi(argv[6]) : 4;
    if (n < 1 || n > S_MAX_AGENTS || secs < 2 || secs * S_PHASES >= S_MAX_SEQ / 2 || window < 1) {
        fprintf(stderr, "bench_hostile: bad arguments\n");
        return 2;
    }
    void *ctx = zmq_ctx_new();
    s_agent_t *ag = calloc((size_t)n, sizeof *ag);
    for (int i = 0; i < n; i++) {
        snprintf(ag[i].id, sizeof ag[i].id, "normal-%d", i);
        snprintf(ag[i].node, sizeof ag[i].node, "normal-%d-node", i);
        ag[i].sock = zmq_socket(ctx, ZMQ_DEALER);
        if (s_curve(ag[i].sock, keydir, ag[i].id) < 0 || zmq_connect(ag[i].sock, endpoint) != 0) {
            return 1;
        }
    }
    s_vec_t delays[S_PHASES] = {{0}};
    long peak_kb[S_PHASES], base_kb[S_PHASES];
    s_attack_t att[S_PHASES];
    bool reset_ok = true;
    uint8_t *buf = NULL;
    size_t cap = 0;
    for (int ph = 0; ph < S_PHASES; ph++) {
        base_kb[ph] = s_status_kb(pid, "VmRSS");
        reset_ok = s_reset_peak(pid) && reset_ok;
        memset(&att[ph], 0, sizeof att[ph]);
        pthread_t th;
        bool attacking = ph > 0;
        if (attacking) {
            att[ph].ctx = ctx;
            att[ph].endpoint = endpoint;
            att[ph].keydir = keydir;
            att[ph].window = window;
            att[ph].kind = ph;
            atomic_init(&att[ph].stop, false);
            pthread_create(&th, NULL, s_attacker, &att[ph]);
        }
        int64_t start = ww_time_mono_ns(), end = start + (int64_t)secs * WW_NS_PER_S;
        long peak_seen = 0;
        for (int tick = 0; tick < secs; tick++) {
            for (int i = 0; i < n; i++) {
                /* Agents spread over the second, as a fleet's ticks are. */
                int64_t at = start + (int64_t)tick * WW_NS_PER_S + (int64_t)i * WW_NS_PER_S / n;
                while (ww_time_mono_ns() < at) {
                    s_read_acks(ag, n, delays, (long)((at - ww_time_mono_ns()) / WW_NS_PER_MS) + 1);
                    long rss = s_status_kb(pid, "VmRSS");
                    peak_seen = rss > peak_seen ? rss : peak_seen;
                }
                s_agent_t *a = &ag[i];
                a->seq++;
                long len = s_encode_batch(a, &buf, &cap);
                a->sent_ns[a->seq] = ww_time_mono_ns();
                a->phase[a->seq] = (int8_t)ph;
                zmq_send(a->sock, buf, (size_t)len, 0);
            }
        }
        while (ww_time_mono_ns() < end) {
            s_read_acks(ag, n, delays, 100);
        }
        if (attacking) {
            atomic_store(&att[ph].stop, true);
            pthread_join(th, NULL);
        }
        long hwm = s_status_kb(pid, "VmHWM");
        peak_kb[ph] = reset_ok ? hwm : peak_seen;
        /* Let what the attack queued drain before the next phase measures. */
        int64_t settle = ww_time_mono_ns() + 3 * WW_NS_PER_S;
        while (ww_time_mono_ns() < settle) {
            s_read_acks(ag, n, delays, 100);
        }
    }
    int64_t grace = ww_time_mono_ns() + 10 * WW_NS_PER_S;
    while (ww_time_mono_ns() < grace) {
        s_read_acks(ag, n, delays, 100);
    }
    printf("%d normal agents x 1 batch/s, %d s per phase; attacker window %d; peak RSS %s\n", n,
           secs, window, reset_ok ? "VmHWM (reset per phase)" : "largest VmRSS sample");
    printf("| phase | collector peak RSS MB | normal acks / sent | ack p50 ms | ack p99 ms | "
           "ack max ms | hostile answered / sent | hostile answer mean ms |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (int ph = 0; ph < S_PHASES; ph++) {
        s_vec_t *d = &delays[ph];
        qsort(d->v, d->n, sizeof *d->v, s_cmp);
        long sent = (long)n * secs;
        printf(
            "| %s | %.1f (%.1f at start) | %zu / %ld | %.1f | %.1f | %.1f | %llu / %llu | %.0f |\n",
            s_phase_names[ph], (double)peak_kb[ph] / 1024, (double)base_kb[ph] / 1024, d->n, sent,
            s_q(d, 0.5), s_q(d, 0.99), s_q(d, 1.0), (unsigned long long)att[ph].answered,
            (unsigned long long)att[ph].sent,
            att[ph].answered ? (double)att[ph].busy_ns / (double)att[ph].answered / 1e6 : 0.0);
    }
    for (int ph = 1; ph < S_PHASES; ph++) {
        printf("%s / none: peak RSS x%.1f, ack p99 x%.1f\n", s_phase_names[ph],
               (double)peak_kb[ph] / (double)peak_kb[0],
               s_q(&delays[ph], 0.99) / s_q(&delays[0], 0.99));
    }
    for (int i = 0; i < n; i++) {
        zmq_close(ag[i].sock);
    }
    zmq_ctx_term(ctx);
    free(buf);
    return 0;
}
