/* make_seeds: writes the seed corpora of the fuzz targets, most seeds VALID messages, so
 * the fuzzers start from inputs that pass validation and mutate from there, and beside
 * them the hostile shapes of issue 14 (wire/hostile_*), each checked to be refused as
 * documented: extreme counts (2^64 - 1), seqs at 2^63 - 1, 2^63 and 2^64 - 1, NULs in
 * strings, repeated fields one past their limit, outages and a Pending body.
 *
 *   make_seeds OUTDIR [CONFIG.yaml ...]
 *
 * writes OUTDIR/wire/ (encoded Envelopes: hello, batches with samples and latency windows,
 * heartbeat, ack, nack), OUTDIR/hist/ (encoded Histograms), OUTDIR/config/ (the given YAML
 * files, the printed defaults of the agent and collector schemas and a few small ones),
 * OUTDIR/hist_pack/ (the same histograms packed, NAME.bin, and as text, NAME.json),
 * OUTDIR/reqlog/ (request-log datagrams: readings, REQUESTS batches from empty to full)
 * and OUTDIR/config.dict (a libFuzzer dictionary: every key component of both schemas and
 * YAML tokens). Each seed is checked with the decoder it is for; the time fields are
 * around WW_FUZZ_NOW_NS, the fixed "now" fuzz_wire decodes with. Exits non-zero (failing
 * the build) when a generated seed does not decode or cannot be written; a given YAML
 * file that neither schema loads is left out with a warning.
 */
#include "ww_agent_conf.h"
#include "ww_collector_conf.h"
#include "ww_config.h"
#include "ww_hist.h"
#include "ww_hist_pack.h"
#include "ww_hist_text.h"
#include "ww_hist_wire.h"
#include "ww_reqlog.h"
#include "ww_wire.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef WW_FUZZ_NOW_NS
#error "WW_FUZZ_NOW_NS must be defined (tests/fuzz/CMakeLists.txt)"
#endif

#define NOW ((int64_t)WW_FUZZ_NOW_NS)
#define SEC INT64_C(1000000000)

static const char *s_out;
static int s_failed;

static void s_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void s_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "make_seeds: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    s_failed = 1;
}

static void s_mkdir(const char *sub)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", s_out, sub ? "/" : "", sub ? sub : "");
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
        s_fail("cannot create %s: %s", path, strerror(errno));
    }
}

static void s_write(const char *sub, const char *name, const void *buf, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", s_out, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        s_fail("cannot write %s: %s", path, strerror(errno));
    }
}

/* Checks that buf decodes at NOW with the result `want` and writes it as wire/NAME. */
static void s_raw(const char *name, const uint8_t *buf, size_t n, int want)
{
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    ww_envelope_t *back = NULL;
    ww_wire_why_t why;
    int rc = ww_wire_decode(buf, n, &lim, NOW, &back, &why);
    if (rc != want) {
        s_fail("%s: decodes with %d, not %d: %s", name, rc, want, rc ? why.msg : "accepted");
    }
    ww_wire_free(&back);
    s_write("wire", name, buf, n);
}

/* Packs env; when `nul` is set, the first occurrence of that string in the bytes gets a
 * NUL in place of its '#' (protobuf-c cannot encode one); then as s_raw. */
static void s_envelope_rc(const char *name, const ww_envelope_t *env, const char *nul, int want)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    long n = ww_wire_encode(env, &buf, &cap);
    if (n <= 0) {
        s_fail("%s: cannot encode", name);
        free(buf);
        return;
    }
    size_t k = nul ? strlen(nul) : 0;
    for (size_t i = 0; nul && i + k <= (size_t)n; i++) {
        if (memcmp(buf + i, nul, k) == 0) {
            buf[i + (size_t)(strchr(nul, '#') - nul)] = 0;
            nul = NULL;
        }
    }
    if (nul) {
        s_fail("%s: the marker %s is not in the message", name, nul);
    }
    s_raw(name, buf, (size_t)n, want);
    free(buf);
}

/* Packs env, checks that it decodes and validates at NOW, and writes it as wire/NAME. */
static void s_envelope(const char *name, const ww_envelope_t *env)
{
    s_envelope_rc(name, env, NULL, 0);
}

/* A histogram in its wire form with the scratch arrays it borrows. */
typedef struct {
    ww_hist_t h;
    Waferwatch__V1__Histogram pb;
    int32_t idx[512];
    uint64_t cnt[512];
} seed_hist_t;

static void s_hist_pb(seed_hist_t *s, const char *name)
{
    if (ww_hist_to_pb(&s->h, &s->pb, s->idx, s->cnt, 512) != 0) {
        s_fail("%s: ww_hist_to_pb: more than 512 buckets", name);
    }
    ww_hist_t back;
    ww_wire_why_t why;
    if (ww_hist_from_pb(&s->pb, &back, 8192, &why, name) != 0) {
        s_fail("%s: the histogram does not validate: %s", name, why.msg);
    }
    ww_hist_fini(&back);
}

static void s_hist_file(seed_hist_t *s, const char *name)
{
    s_hist_pb(s, name);
    size_t n = waferwatch__v1__histogram__get_packed_size(&s->pb);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        s_fail("%s: out of memory", name);
        return;
    }
    waferwatch__v1__histogram__pack(&s->pb, buf);
    s_write("hist", name, buf, n);
    free(buf);
}

/* The packed (NAME.bin) and text (NAME.json) forms of h as hist_pack/ seeds, each checked
 * to decode back. */
static void s_hist_pack_file(const ww_hist_t *h, const char *name)
{
    static uint8_t buf[1 << 16];
    static char txt[1 << 16];
    char file[256];
    const char *why = "";
    long n = ww_hist_pack(h, buf, sizeof buf);
    ww_hist_t back;
    ww_hist_init(&back, 0);
    if (n <= 0 || ww_hist_unpack(buf, (size_t)n, &back, &why) != 0) {
        s_fail("%s: packed form does not unpack: %ld %s", name, n, why);
    } else {
        snprintf(file, sizeof file, "%s.bin", name);
        s_write("hist_pack", file, buf, (size_t)n);
    }
    char err[256] = "";
    long t = ww_hist_text_format(h, txt, sizeof txt);
    if (t <= 0 || (size_t)t >= sizeof txt || ww_hist_text_parse(txt, &back, err, sizeof err) != 0) {
        s_fail("%s: text form does not parse: %ld %s", name, t, err);
    } else {
        snprintf(file, sizeof file, "%s.json", name);
        s_write("hist_pack", file, txt, (size_t)t);
    }
    ww_hist_fini(&back);
}

static void s_hist_seeds(void)
{
    static const struct {
        const char *name;
        int scale;
        double v[8];
        int nv;
        int spread; /* also record v * (1 + k / 100) for k < spread */
    } hs[] = {
        {"empty.pb", WW_HIST_DEFAULT_SCALE, {0}, 0, 0},
        {"ttft_s6.pb", 6, {0.24, 0.3, 0.18}, 3, 40},
        {"tpot_s8.pb", 8, {0.0011, 0.0009}, 2, 30},
        {"edges_s3.pb", 3, {0, -0.5, 1e-7, 5000, 1.0, 4096.0, 1.0 / 1048576.0}, 7, 1},
        {"wide_s0.pb", 0, {2e-6, 0.01, 1, 100, 4000}, 5, 3},
        {"underflow_only.pb", 4, {1e-9, 5e-7}, 2, 1},
    };
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        seed_hist_t s;
        ww_hist_init(&s.h, hs[i].scale);
        for (int k = 0; k < hs[i].nv; k++) {
            for (int j = 0; j < (hs[i].spread ? hs[i].spread : 1); j++) {
                ww_hist_record(&s.h, hs[i].v[k] * (1 + j / 100.0));
            }
        }
        if (ww_hist_check(&s.h) != 0) {
            s_fail("%s: ww_hist_check fails on a recorded histogram", hs[i].name);
        }
        s_hist_file(&s, hs[i].name);
        s_hist_pack_file(&s.h, hs[i].name);
        ww_hist_fini(&s.h);
    }
}

/* The hostile shapes, from the valid messages of s_wire_seeds (restored as they were). */
static void s_hostile_seeds(ww_envelope_t *env, ww_hello_t *hello, ww_node_info_t *node,
                            ww_batch_t *batch, ww_node_sample_t *smp,
                            Waferwatch__V1__LatencyWindow *win)
{
    env->agent_id = (char *)"fuzz-agent";
    env->epoch = UINT64_C(0x1234567890abcdef);

    /* seqs around the bigint range, an epoch of all ones */
    env->body_case = WAFERWATCH__V1__ENVELOPE__BODY_BATCH;
    env->batch = batch;
    batch->samples = NULL;
    batch->n_samples = 0;
    Waferwatch__V1__LatencyWindow *w1 = &win[1];
    batch->latency_windows = &w1;
    batch->n_latency_windows = 1;
    env->seq = (uint64_t)INT64_MAX;
    s_envelope("seq_2p63m1.pb", env);
    env->seq = UINT64_C(1) << 63;
    s_envelope_rc("hostile_seq_2p63.pb", env, NULL, -EINVAL);
    env->seq = UINT64_MAX;
    s_envelope_rc("hostile_seq_2p64m1.pb", env, NULL, -EINVAL);
    env->seq = 5;
    env->epoch = UINT64_MAX;
    s_envelope("epoch_max.pb", env);
    env->epoch = UINT64_C(0x1234567890abcdef);

    /* extreme counts: every counter of a window at 2^64 - 1 */
    Waferwatch__V1__LatencyWindow w = win[1];
    Waferwatch__V1__Histogram h = *win[1].ttft;
    h.zero_count += UINT64_MAX - h.count; /* the parts still sum exactly to count */
    h.count = UINT64_MAX;
    w.requests_ok = w.requests_error = w.requests_timeout = w.requests_rejected = UINT64_MAX;
    w.prompt_tokens = w.output_tokens = UINT64_MAX;
    w.ttft = w.e2e = &h;
    Waferwatch__V1__LatencyWindow *wp = &w;
    batch->latency_windows = &wp;
    s_envelope_rc("hostile_window_counts_2p64m1.pb", env, NULL, -EINVAL);
    w = win[1];
    w.requests_rejected = 10 * 1000000; /* 10 s at 10^6/s: the most */
    w.prompt_tokens = w.output_tokens = 10 * 10000000;
    s_envelope("window_counts_at_bound.pb", env);

    /* a sample's counter past integer: the batch decodes, the sample is refused alone */
    ww_node_sample_t s = smp[0];
    ww_node_sample_t *sp = &s;
    s.requests_queued = UINT32_MAX;
    batch->samples = &sp;
    batch->n_samples = 1;
    batch->latency_windows = NULL;
    batch->n_latency_windows = 0;
    s_envelope("sample_counter_2p32m1.pb", env);

    /* NULs */
    s.requests_queued = 3;
    s.node_id = (char *)"okc1-r01-ab#cd";
    s_envelope_rc("hostile_nul_node_id.pb", env, "ab#cd", -EINVAL);
    s.node_id = smp[0].node_id;

    /* outages: two valid ones, then a NUL in a cause */
    ww_outage_t o[2];
    ww_outage_t *op[2] = {&o[0], &o[1]};
    for (int k = 0; k < 2; k++) {
        waferwatch__v1__outage__init(&o[k]);
        o[k].from_ns = k ? 0 : NOW - 3600 * SEC;
        o[k].to_ns = NOW - (10 + 100 * k) * SEC;
        o[k].lost_ticks = 3590;
        o[k].lost_requests = 12;
        o[k].cause = (char *)(k ? "stop" : "crash");
    }
    batch->outages = op;
    batch->n_outages = 2;
    s_envelope("batch_outages.pb", env);
    o[1].cause = (char *)"stab#cd";
    s_envelope_rc("hostile_nul_outage_cause.pb", env, "ab#cd", -EINVAL);
    o[1].cause = (char *)"stop";
    o[1].lost_ticks = UINT64_MAX;
    s_envelope_rc("hostile_outage_lost_2p64m1.pb", env, NULL, -EINVAL);
    o[1].lost_ticks = 1;

    /* one past the limits: outages, nodes, histogram buckets */
    ww_wire_limits_t lim;
    ww_wire_limits_default(&lim);
    size_t many = lim.max_nodes + 1;
    ww_outage_t **omany = calloc(lim.max_outages + 1, sizeof *omany);
    ww_node_info_t **nmany = calloc(many, sizeof *nmany);
    int32_t *idx = calloc(lim.max_buckets + 1, sizeof *idx);
    uint64_t *cnt = calloc(lim.max_buckets + 1, sizeof *cnt);
    if (!omany || !nmany || !idx || !cnt) {
        s_fail("out of memory");
    } else {
        for (size_t i = 0; i <= lim.max_outages; i++) {
            omany[i] = &o[0];
        }
        batch->outages = omany;
        batch->n_outages = lim.max_outages + 1;
        s_envelope_rc("hostile_outages_past_limit.pb", env, NULL, -EINVAL);

        for (size_t i = 0; i <= lim.max_buckets; i++) {
            idx[i] = i ? 1 : -5120;
            cnt[i] = 1;
        }
        batch->outages = NULL;
        batch->n_outages = 0;
        batch->samples = NULL;
        batch->n_samples = 0;
        w = win[1];
        h = *win[1].ttft;
        h.scale = 8;
        h.index_delta = idx;
        h.bucket_count = cnt;
        h.n_index_delta = h.n_bucket_count = lim.max_buckets + 1;
        w.ttft = &h;
        batch->latency_windows = &wp;
        batch->n_latency_windows = 1;
        s_envelope_rc("hostile_buckets_past_limit.pb", env, NULL, -EINVAL);
        batch->latency_windows = NULL;
        batch->n_latency_windows = 0;

        for (size_t i = 0; i < many; i++) {
            nmany[i] = node;
        }
        env->seq = 0;
        env->body_case = WAFERWATCH__V1__ENVELOPE__BODY_HELLO;
        env->hello = hello;
        ww_node_info_t **keep = hello->nodes;
        size_t nkeep = hello->n_nodes;
        hello->nodes = nmany;
        hello->n_nodes = many;
        s_envelope_rc("hostile_nodes_past_limit.pb", env, NULL, -EINVAL);
        hello->nodes = keep;
        hello->n_nodes = nkeep;
    }
    free(omany);
    free(nmany);
    free(idx);
    free(cnt);

    /* the report's Hello: site = "site\0\x1b[31mEVIL" */
    env->seq = 0;
    env->body_case = WAFERWATCH__V1__ENVELOPE__BODY_HELLO;
    env->hello = hello;
    char *site = node->site;
    node->site = (char *)"site#\x1b[31mEVIL";
    s_envelope_rc("hostile_nul_site.pb", env, "site#", -EINVAL);
    node->site = site;
}

static void s_wire_seeds(void)
{
    ww_envelope_t env;

    /* hello: two nodes with every label */
    ww_node_info_t nodes[2];
    ww_node_info_t *np[2];
    static const char *const ids[] = {"okc1-r01-0", "okc1-r01-1"};
    for (int i = 0; i < 2; i++) {
        waferwatch__v1__node_info__init(&nodes[i]);
        nodes[i].node_id = (char *)ids[i];
        nodes[i].site = (char *)"okc1";
        nodes[i].hall = (char *)"hall-1";
        nodes[i].rack = (char *)"r01";
        nodes[i].phase = (char *)"phase-2026a";
        nodes[i].system_model = (char *)"cs3";
        nodes[i].rated_kw = 23;
        np[i] = &nodes[i];
    }
    ww_hello_t hello;
    waferwatch__v1__hello__init(&hello);
    hello.nodes = np;
    hello.n_nodes = 2;
    hello.agent_version = (char *)"0.1.0";
    hello.source = (char *)"sim";
    hello.interval_ms = 1000;
    waferwatch__v1__envelope__init(&env);
    env.wire_version = WW_WIRE_VERSION;
    env.agent_id = (char *)"fuzz-agent";
    env.epoch = UINT64_C(0x1234567890abcdef);
    env.sent_ns = NOW;
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    s_envelope("hello.pb", &env);

    /* batch: samples only */
    ww_node_sample_t smp[3];
    ww_node_sample_t *sp[3];
    for (int i = 0; i < 3; i++) {
        waferwatch__v1__node_sample__init(&smp[i]);
        smp[i].node_id = (char *)ids[i % 2];
        smp[i].time_ns = NOW - (i + 1) * SEC;
        smp[i].power_w = 21000.5f + (float)i;
        smp[i].inlet_c = 25.0f;
        smp[i].outlet_c = 32.5f;
        smp[i].flow_lpm = 40.0f;
        smp[i].wafer_hotspot_c = 70.25f;
        smp[i].utilization = 0.75f;
        smp[i].tokens_per_s = 9000.0f;
        smp[i].requests_queued = 3;
        smp[i].requests_in_flight = 40;
        smp[i].throttled = i == 2;
        smp[i].throttle_factor = i == 2 ? 0.7f : 1.0f;
        smp[i].requests_completed = 12;
        if (i == 0) { /* humidity_pct: sent by one sample, absent from the others */
            ww_reading_t rd;
            ww_wire_sample_to_reading(&smp[i], &rd);
            rd.humidity_pct = 41.5f;
            ww_wire_sample_from_reading(&smp[i], &rd);
        }
        sp[i] = &smp[i];
    }
    ww_batch_t batch;
    waferwatch__v1__batch__init(&batch);
    batch.samples = sp;
    batch.n_samples = 3;
    env.seq = 1;
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_BATCH;
    env.batch = &batch;
    s_envelope("batch_samples.pb", &env);

    /* batch: samples and two latency windows with all four histograms. Window 0 has ok
     * and error requests at the default scale, window 1 a coarse scale and out-of-range
     * values (a zero queue time, an overflowing e2e). */
    static seed_hist_t hs[2][4];
    Waferwatch__V1__LatencyWindow win[2];
    Waferwatch__V1__LatencyWindow *wp[2];
    static const char *const models[] = {"llama3.1-8b", "llama3.1-405b"};
    for (int w = 0; w < 2; w++) {
        int scale = w == 0 ? WW_HIST_DEFAULT_SCALE : 2;
        for (int k = 0; k < 4; k++) {
            ww_hist_init(&hs[w][k].h, scale);
        }
        unsigned ok = w == 0 ? 20 : 5, err = w == 0 ? 2 : 0;
        for (unsigned r = 0; r < ok + err; r++) {
            double q = w == 1 && r == 0 ? 0.0 : 0.001 * (r + 1);
            ww_hist_record(&hs[w][0].h, q); /* queue: every admitted request */
            if (r >= ok) {
                continue;
            }
            double ttft = 0.2 + 0.01 * r;
            double tpot = 0.0005 + 0.00001 * r;
            double e2e = w == 1 && r == 1 ? 5000.0 : ttft + 250 * tpot;
            ww_hist_record(&hs[w][1].h, ttft);
            if (r % 4 != 3) {
                ww_hist_record(&hs[w][2].h, tpot); /* some requests had one token */
            }
            ww_hist_record(&hs[w][3].h, e2e);
        }
        for (int k = 0; k < 4; k++) {
            s_hist_pb(&hs[w][k], "window histogram");
        }
        waferwatch__v1__latency_window__init(&win[w]);
        win[w].node_id = (char *)ids[w];
        win[w].model = (char *)models[w];
        win[w].duration_ns = 10 * SEC;
        win[w].start_ns = NOW - (NOW % (10 * SEC)) - 10 * SEC * (w + 1);
        win[w].requests_ok = ok;
        win[w].requests_error = err;
        win[w].requests_timeout = w;
        win[w].requests_rejected = 1;
        win[w].prompt_tokens = 1000 * ok;
        win[w].output_tokens = 250 * ok;
        win[w].queue = &hs[w][0].pb;
        win[w].ttft = &hs[w][1].pb;
        win[w].tpot = &hs[w][2].pb;
        win[w].e2e = &hs[w][3].pb;
        wp[w] = &win[w];
    }
    batch.latency_windows = wp;
    batch.n_latency_windows = 2;
    env.seq = 2;
    s_envelope("batch_windows.pb", &env);

    /* batch: a window only, no samples */
    batch.samples = NULL;
    batch.n_samples = 0;
    batch.latency_windows = wp + 1;
    batch.n_latency_windows = 1;
    env.seq = 3;
    s_envelope("batch_window_only.pb", &env);
    for (int w = 0; w < 2; w++) {
        for (int k = 0; k < 4; k++) {
            ww_hist_fini(&hs[w][k].h);
        }
    }

    /* heartbeat, ack, nack */
    ww_heartbeat_t hb;
    waferwatch__v1__heartbeat__init(&hb);
    env.seq = 0;
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    s_envelope("heartbeat.pb", &env);

    ww_ack_t ack;
    waferwatch__v1__ack__init(&ack);
    ack.epoch = env.epoch;
    ack.seq = 2;
    env.agent_id = (char *)"collector";
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_ACK;
    env.ack = &ack;
    s_envelope("ack.pb", &env);

    ww_nack_t nack;
    waferwatch__v1__nack__init(&nack);
    nack.epoch = env.epoch;
    nack.seq = 3;
    nack.code = WAFERWATCH__V1__NACK_CODE__NACK_INVALID;
    nack.reason = (char *)"batch.samples[0].power_w: NaN is not a finite number";
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_NACK;
    env.nack = &nack;
    s_envelope("nack.pb", &env);
    nack.seq = UINT64_MAX; /* a Nack echoes any refused seq */
    nack.reason = (char *)"envelope.seq: ab#cd";
    s_envelope("nack_seq_max.pb", &env);
    s_envelope_rc("hostile_nul_nack_reason.pb", &env, "ab#cd", -EINVAL);

    ww_pending_t pending;
    waferwatch__v1__pending__init(&pending);
    pending.epoch = env.epoch;
    pending.seq = 2;
    pending.retry_after_ms = 2000;
    env.body_case = WAFERWATCH__V1__ENVELOPE__BODY_PENDING;
    env.pending = &pending;
    s_envelope("pending.pb", &env);
    pending.seq = UINT64_C(1) << 63;
    s_envelope_rc("hostile_pending_seq_2p63.pb", &env, NULL, -EINVAL);

    s_hostile_seeds(&env, &hello, &nodes[0], &batch, smp, win);
}

/* Checks that a request-log datagram parses and that each of its records decodes, and
 * writes it as reqlog/NAME. */
static void s_reqlog(const char *name, const uint8_t *buf, size_t len)
{
    ww_reqlog_msg_t m;
    const char *why = NULL;
    if (ww_reqlog_parse(buf, len, &m, &why) != 0) {
        s_fail("%s: the datagram does not parse: %s", name, why);
        return;
    }
    for (uint32_t k = 0; m.type == WW_REQLOG_REQUESTS && k < m.count; k++) {
        ww_request_t r;
        if (ww_reqlog_record(&m, k, &r, &why) != 0) {
            s_fail("%s: record %u does not decode: %s", name, (unsigned)k, why);
            return;
        }
    }
    s_write("reqlog", name, buf, len);
}

static void s_reqlog_batch(const char *name, const char *const *models, unsigned n_models,
                           uint32_t count)
{
    static ww_reqlog_batch_t b;
    if (ww_reqlog_begin(&b, models, n_models) != 0) {
        s_fail("%s: ww_reqlog_begin refused the model table", name);
        return;
    }
    for (uint32_t k = 0; k < count; k++) {
        ww_request_t r;
        memset(&r, 0, sizeof r);
        r.model = (uint16_t)(k % n_models);
        r.status = (ww_req_status_t)(k % 4);
        r.done_ns = NOW - SEC + (int64_t)k * 1000;
        r.arrival_ns = r.done_ns - 2 * SEC + (int64_t)(k % 5) * 1000;
        r.start_ns = r.arrival_ns + (k % 3 == 0 ? 0 : 1000000);
        r.first_token_ns = r.status == WW_REQ_REJECTED ? r.done_ns : r.start_ns + 200000000;
        r.prompt_tokens = 1000 + k;
        r.output_tokens = r.status == WW_REQ_REJECTED ? 0 : 250 + k;
        if (ww_reqlog_add(&b, &r) != 1) {
            break; /* full */
        }
    }
    s_reqlog(name, b.buf, b.len);
}

static void s_reqlog_seeds(void)
{
    uint8_t buf[WW_REQLOG_HEADER + WW_REQLOG_READING_BYTES];
    ww_reading_t rd;
    memset(&rd, 0, sizeof rd);
    rd.power_w = 21000.5f;
    rd.inlet_c = 25.0f;
    rd.outlet_c = 32.5f;
    rd.flow_lpm = 40.0f;
    rd.wafer_hotspot_c = 70.25f;
    rd.utilization = 0.75f;
    rd.tokens_per_s = 9000.0f;
    rd.throttle_factor = 1.0f;
    rd.requests_queued = 3;
    rd.requests_in_flight = 40;
    rd.requests_completed = 120;
    rd.humidity_pct = 42.5f;
    s_reqlog("reading.bin", buf, ww_reqlog_reading(buf, NOW, &rd));
    /* the first layout (no humidity), which the agent still accepts */
    s_reqlog("reading_v1.bin", buf, ww_reqlog_reading_v(buf, 1, NOW, &rd));
    rd.throttled = true;
    rd.throttle_factor = 0.7f;
    rd.wafer_hotspot_c = 96.5f;
    rd.humidity_pct = NAN; /* not measured */
    s_reqlog("reading_throttled.bin", buf, ww_reqlog_reading(buf, NOW + SEC, &rd));

    static const char *const one[] = {"llama3.1-8b"};
    static const char *const three[] = {"llama3.1-8b", "llama3.1-70b", "llama3.1-405b"};
    static const char *const eight[] = {
        "m", "model-b", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJK", "x.y/z:1", "d", "e",
        "f", "~!"};
    s_reqlog_batch("requests_empty.bin", one, 1, 0);
    s_reqlog_batch("requests_one.bin", one, 1, 1);
    s_reqlog_batch("requests_three_models.bin", three, 3, 12);
    s_reqlog_batch("requests_eight_models.bin", eight, 8, 16);
    /* 340 records after a 48-byte table: exactly WW_REQLOG_MAX_DGRAM bytes */
    s_reqlog_batch("requests_full.bin", eight + 2, 1, 1000);
}

/* The effective configuration of a schema with its defaults, as --print-config writes it. */
static void s_print_defaults(const ww_cfg_schema_t *s, void *cfg, const char *name)
{
    ww_cfg_err_t err;
    if (ww_cfg_defaults(s, cfg, &err) != 0) {
        s_fail("%s: defaults: %s", name, err.msg);
        return;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        s_fail("%s: open_memstream: %s", name, strerror(errno));
        ww_cfg_free(s, cfg);
        return;
    }
    ww_cfg_print(s, cfg, f);
    fclose(f);
    s_write("config", name, text, len);
    free(text);
    ww_cfg_free(s, cfg);
}

/* Copies a YAML file into config/ when one of the schemas loads it. */
static void s_copy_config(const char *path)
{
    FILE *f = fopen(path, "rb");
    char buf[1 << 16];
    size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (!f || ferror(f) || len == sizeof buf) {
        s_fail("cannot read %s (or larger than 64 KiB)", path);
        if (f) {
            fclose(f);
        }
        return;
    }
    fclose(f);
    ww_agent_conf_t a;
    ww_collector_conf_t c;
    ww_cfg_err_t ea, ec;
    memset(&a, 0, sizeof a);
    memset(&c, 0, sizeof c);
    int ok = ww_cfg_defaults(&ww_agent_schema, &a, &ea) == 0 &&
             ww_cfg_load_buffer(&ww_agent_schema, &a, buf, len, path, &ea) == 0;
    ok = ok || (ww_cfg_defaults(&ww_collector_schema, &c, &ec) == 0 &&
                ww_cfg_load_buffer(&ww_collector_schema, &c, buf, len, path, &ec) == 0);
    ww_cfg_free(&ww_agent_schema, &a);
    ww_cfg_free(&ww_collector_schema, &c);
    if (!ok) {
        /* Not fatal: the example file is out of step with the schema (a bug for its owner
         * to fix, which --check-config on it shows); the corpus just lacks this seed. */
        fprintf(stderr, "make_seeds: warning: %s loads with neither schema, not a seed: %s\n", path,
                ea.msg);
        return;
    }
    const char *base = strrchr(path, '/');
    s_write("config", base ? base + 1 : path, buf, len);
}

/* Dictionary entries: each dotted-key component of the rows (and their sub rows), once. */
static void s_dict_key(FILE *f, const char *key, size_t len)
{
    static char seen[512][64];
    static size_t n_seen;
    if (len >= sizeof seen[0]) {
        return;
    }
    for (size_t i = 0; i < n_seen; i++) {
        if (strlen(seen[i]) == len && memcmp(seen[i], key, len) == 0) {
            return;
        }
    }
    if (n_seen < sizeof seen / sizeof seen[0]) {
        memcpy(seen[n_seen], key, len);
        seen[n_seen++][len] = '\0';
    }
    fprintf(f, "\"%.*s:\"\n", (int)len, key);
}

static void s_dict_rows(FILE *f, const ww_cfg_opt_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *p = rows[i].name;
        while (*p) {
            size_t len = strcspn(p, ".");
            s_dict_key(f, p, len);
            p += len;
            p += *p == '.';
        }
        if (rows[i].type == WW_CFG_TABLE && rows[i].sub) {
            s_dict_rows(f, rows[i].sub, rows[i].n_sub);
        }
    }
}

static void s_config_seeds(int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        s_copy_config(argv[i]);
    }
    ww_agent_conf_t a;
    ww_collector_conf_t c;
    memset(&a, 0, sizeof a);
    memset(&c, 0, sizeof c);
    s_print_defaults(&ww_agent_schema, &a, "agent_defaults.yaml");
    s_print_defaults(&ww_collector_schema, &c, "collector_defaults.yaml");
    static const char small[] = "sim:\n  models: [{name: m, weight: 2}]\n  nodes: 3\n"
                                "agent: {interval: 250ms, log_level: debug}\n";
    s_write("config", "small_flow.yaml", small, sizeof small - 1);
    s_write("config", "empty.yaml", "", 0);

    char path[4096];
    snprintf(path, sizeof path, "%s/config.dict", s_out);
    FILE *f = fopen(path, "w");
    if (!f) {
        s_fail("cannot write %s: %s", path, strerror(errno));
        return;
    }
    s_dict_rows(f, ww_agent_schema.opts, ww_agent_schema.n_opts);
    s_dict_rows(f, ww_collector_schema.opts, ww_collector_schema.n_opts);
    static const char *const tokens[] = {
        "- ",  ": ",   "{",    "}",      "[",      "]",    ", ",      "\\\"",      "'",
        "~",   "null", "true", "false",  "yes",    "off",  "1.5s",    "250ms",     "500us",
        "2d",  "5m",   "1h",   "1e308",  "-0",     "0x10", "&a ",     "*a",        "!!str ",
        "---", "...",  "#",    "|\\x0a", ">\\x0a", "? ",   "\\\\x41", "\\\\u00e9", "\\\\n",
    };
    for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++) {
        fprintf(f, "\"%s\"\n", tokens[i]);
    }
    if (fclose(f) != 0) {
        s_fail("cannot write %s: %s", path, strerror(errno));
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: make_seeds OUTDIR [CONFIG.yaml ...]\n");
        return 2;
    }
    s_out = argv[1];
    s_mkdir(NULL);
    s_mkdir("wire");
    s_mkdir("hist");
    s_mkdir("hist_pack");
    s_mkdir("config");
    s_mkdir("reqlog");
    s_wire_seeds();
    s_hist_seeds();
    s_reqlog_seeds();
    s_config_seeds(argc, argv);
    return s_failed ? 1 : 0;
}
